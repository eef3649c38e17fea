/* Exercises the WASI subset: argv, --env, files under a --dir grant (and an escape attempt),
 * sleep through poll_oneoff, clocks, random_get, and proc_exit's code. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	printf("argc=%d argv0=%s argv1=%s\n", argc, argv[0], argc > 1 ? argv[1] : "-");
	const char *v = getenv("EDGE_PROBE");
	printf("env=%s home=%s\n", v ? v : "(unset)", getenv("HOME") ? "set" : "(unset)");
	FILE *f = fopen("/data/hello.txt", "r");
	char line[64] = "";
	if (f && fgets(line, sizeof(line), f))
		line[strcspn(line, "\n")] = 0;
	printf("read=%s\n", f ? line : "(cannot open)");
	if (f)
		fclose(f);
	FILE *w = fopen("/data/out.txt", "w");
	if (w) {
		fputs("written by the guest\n", w);
		fclose(w);
	}
	printf("escape=%s\n", open("/data/../escape.txt", O_RDONLY) >= 0 ? "OPENED" : "refused");
	printf("outside=%s\n", fopen("/etc/passwd", "r") ? "OPENED" : "refused");
	struct timespec a, b, d = {0, 20 * 1000 * 1000};
	clock_gettime(CLOCK_MONOTONIC, &a);
	nanosleep(&d, NULL);
	clock_gettime(CLOCK_MONOTONIC, &b);
	long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
	printf("slept_ms_ge_20=%s\n", ms >= 20 ? "yes" : "no");
	unsigned char r[16] = {0};
	arc4random_buf(r, sizeof(r));
	int nonzero = 0;
	for (int i = 0; i < 16; i++)
		nonzero |= r[i];
	printf("random=%s\n", nonzero ? "yes" : "no");
	fflush(stdout);
	return 5;
}
