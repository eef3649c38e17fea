/* Wasm consumer for the benchmarks: the same per-event work as the native baseline (one
 * NDJSON line per event with printf), done in a guest callback.
 *   consumer.wasm [light]      the flood object is embedded (FLOOD_OBJ)
 */
#include <stdio.h>
#include <string.h>

#include "edge_bpf.h"

static const unsigned char obj_bytes[] = {
#embed FLOOD_OBJ
};

struct event {
	unsigned long long seq;
	unsigned long long ts;
	unsigned int pid;
	unsigned int cpu;
	char comm[16];
};

/* Light mode: the least per-event work that still proves each event reached Wasm (its
 * sequence number, one line each), to measure the callback path itself. */
static int handle_light(void *ctx, void *data, size_t size)
{
	const struct event *e = data;
	char buf[24];
	int i = sizeof(buf);
	unsigned long long v = e->seq;
	(void)ctx;
	(void)size;
	buf[--i] = '\n';
	do {
		buf[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	fwrite(buf + i, 1, sizeof(buf) - i, stdout);
	return 0;
}

static int handle(void *ctx, void *data, size_t size)
{
	const struct event *e = data;
	(void)ctx;
	if (size < sizeof(*e))
		return 0;
	printf("{\"seq\":%llu,\"ts\":%llu,\"pid\":%u,\"cpu\":%u,\"comm\":\"%.16s\"}\n", e->seq, e->ts,
	       e->pid, e->cpu, e->comm);
	return 0;
}

int main(int argc, char **argv)
{
	int light = argc > 1 && !strcmp(argv[1], "light");
	static char buf[1 << 16];
	setvbuf(stdout, buf, _IOFBF, sizeof(buf));
	struct bpf_object *obj = bpf_object__open_mem(obj_bytes, sizeof(obj_bytes));
	if (!obj || bpf_object__load(obj) || bpf_program__attach_by_name(obj, "flood", NULL))
		return 1;
	struct ring_buffer *rb = ring_buffer__new(obj, "flood_events", light ? handle_light : handle, NULL);
	if (!rb)
		return 1;
	fprintf(stderr, "attached\n");
	int err;
	while ((err = ring_buffer__poll(rb, 100)) >= 0)
		fflush(stdout);
	fflush(stdout);
	ring_buffer__free(rb);
	bpf_object__close(obj);
	return 0;
}
