/* Wasm consumer for the benchmarks: the same per-event work as the native baseline (one
 * NDJSON line per event with printf), done in a guest callback.
 *   consumer.wasm [MAP]        the flood object is embedded (FLOOD_OBJ)
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

int main(void)
{
	static char buf[1 << 16];
	setvbuf(stdout, buf, _IOFBF, sizeof(buf));
	struct bpf_object *obj = bpf_object__open_mem(obj_bytes, sizeof(obj_bytes));
	if (!obj || bpf_object__load(obj) || bpf_program__attach_by_name(obj, "flood", NULL))
		return 1;
	struct ring_buffer *rb = ring_buffer__new(obj, "flood_events", handle, NULL);
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
