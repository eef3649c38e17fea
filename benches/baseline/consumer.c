/* Native baseline for the benchmarks: what a libbpf-tools tool does. Opens OBJ with libbpf,
 * loads it, attaches every program, prints "attached" on stderr, then consumes the event map
 * (ring buffer or perf event array) printing one line per event with printf, in the same
 * NDJSON or plain columns edge-ecli prints for the flood event.
 *
 *   consumer [-j] [-x] OBJ [MAP]     -j NDJSON, -x exit right after attaching
 */
#include <bpf/libbpf.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct event {
	unsigned long long seq;
	unsigned long long ts;
	unsigned int pid;
	unsigned int cpu;
	char comm[16];
};

static volatile sig_atomic_t stop;
static int json;
static unsigned long long lost;

static void on_sig(int s) { (void)s; stop = 1; }

static int handle(void *ctx, void *data, size_t size)
{
	const struct event *e = data;
	(void)ctx;
	if (size < sizeof(*e))
		return 0;
	if (json) {
		printf("{\"seq\":%llu,\"ts\":%llu,\"pid\":%u,\"cpu\":%u,\"comm\":\"%s\"}\n", e->seq, e->ts,
		       e->pid, e->cpu, e->comm);
	} else {
		char ts[16];
		time_t t = time(NULL);
		strftime(ts, sizeof(ts), "%H:%M:%S", localtime(&t));
		printf("%-8s %-10llu %-10llu %-7u %-7u %s\n", ts, e->seq, e->ts, e->pid, e->cpu, e->comm);
	}
	return 0;
}

static void handle_perf(void *ctx, int cpu, void *data, __u32 size) { (void)cpu; handle(ctx, data, size); }
static void handle_lost(void *ctx, int cpu, __u64 n) { (void)ctx; (void)cpu; lost += n; }

int main(int argc, char **argv)
{
	int opt, exit_after_attach = 0;
	while ((opt = getopt(argc, argv, "jx")) != -1) {
		if (opt == 'j') json = 1;
		else if (opt == 'x') exit_after_attach = 1;
		else return 2;
	}
	if (optind >= argc) {
		fprintf(stderr, "usage: consumer [-j] [-x] OBJ [MAP]\n");
		return 2;
	}
	const char *map_name = optind + 1 < argc ? argv[optind + 1] : "flood_events";
	struct bpf_object *obj = bpf_object__open_file(argv[optind], NULL);
	if (!obj || bpf_object__load(obj)) {
		fprintf(stderr, "consumer: cannot load %s\n", argv[optind]);
		return 1;
	}
	struct bpf_program *p;
	bpf_object__for_each_program(p, obj) {
		if (!bpf_program__attach(p)) {
			fprintf(stderr, "consumer: cannot attach %s\n", bpf_program__name(p));
			return 1;
		}
	}
	fprintf(stderr, "attached\n");
	if (exit_after_attach)
		return 0;
	signal(SIGINT, on_sig);
	signal(SIGTERM, on_sig);
	struct bpf_map *m = bpf_object__find_map_by_name(obj, map_name);
	if (!m)
		return 1;
	int fd = bpf_map__fd(m);
	struct ring_buffer *rb = NULL;
	struct perf_buffer *pb = NULL;
	if (bpf_map__type(m) == BPF_MAP_TYPE_RINGBUF)
		rb = ring_buffer__new(fd, handle, NULL, NULL);
	else
		pb = perf_buffer__new(fd, 64, handle_perf, handle_lost, NULL, NULL);
	if (!rb && !pb)
		return 1;
	while (!stop) {
		int err = rb ? ring_buffer__poll(rb, 100) : perf_buffer__poll(pb, 100);
		if (err < 0 && err != -EINTR)
			break;
		if (err == 0)
			fflush(stdout); /* idle: let the reader see everything so far */
	}
	fflush(stdout);
	if (lost)
		fprintf(stderr, "lost %llu\n", lost);
	ring_buffer__free(rb);
	perf_buffer__free(pb);
	bpf_object__close(obj);
	return 0;
}
