/* What upstream sockops.wasm does after its set-up: print one line, then sleep for ever. Its
 * line must reach a file or a pipe although the guest never returns from main (a stop ends it
 * by force), so its stdout must be line-buffered: a character device to wasi-libc. */
#include <stdio.h>
#include <unistd.h>

int main(void)
{
	printf("Load and attach BPF sockops successfully\n");
	printf("a second line, then sleeping\n");
	for (;;)
		sleep(10);
}
