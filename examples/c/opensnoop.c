/* opensnoop in Wasm: the kernel half (tests/fixtures/opensnoop.bpf.c) reports every openat;
 * all filtering runs here, in Wasm.
 *
 *   opensnoop [-x] [-p PID] [-n COMM] [-f SUBSTRING] [-c COUNT]
 *     -x  failed opens only   -p  one process   -n  command name prefix
 *     -f  paths containing SUBSTRING            -c  exit after COUNT matching events
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "edge_bpf.h"

#ifndef OPENSNOOP_OBJ
#define OPENSNOOP_OBJ "opensnoop.bpf.o"
#endif

static const unsigned char obj_bytes[] = {
#embed OPENSNOOP_OBJ
};

struct event {
	int pid;
	unsigned int uid;
	int ret;
	int flags;
	char comm[16];
	char fname[255];
};

static int failed_only, target_pid, count_left = -1, done;
static const char *comm_prefix, *path_part;

static int on_event(void *ctx, void *data, size_t size)
{
	struct event e;
	(void)ctx;
	if (size < sizeof(e))
		return 0;
	memcpy(&e, data, sizeof(e));
	e.comm[15] = 0;
	e.fname[254] = 0;
	if (failed_only && e.ret >= 0)
		return 0;
	if (target_pid && e.pid != target_pid)
		return 0;
	if (comm_prefix && strncmp(e.comm, comm_prefix, strlen(comm_prefix)))
		return 0;
	if (path_part && !strstr(e.fname, path_part))
		return 0;
	int fd = e.ret >= 0 ? e.ret : -1, err = e.ret >= 0 ? 0 : -e.ret;
	printf("%-7d %-16s %3d %3d %s\n", e.pid, e.comm, fd, err, e.fname);
	fflush(stdout);
	if (count_left > 0 && --count_left == 0) {
		done = 1;
		return 1; /* stop this poll; the flag ends the loop */
	}
	return 0;
}

int main(int argc, char **argv)
{
	int opt;
	while ((opt = getopt(argc, argv, "xp:n:f:c:h")) != -1) {
		switch (opt) {
		case 'x': failed_only = 1; break;
		case 'p': target_pid = atoi(optarg); break;
		case 'n': comm_prefix = optarg; break;
		case 'f': path_part = optarg; break;
		case 'c': count_left = atoi(optarg); break;
		default:
			fprintf(stderr, "Usage: opensnoop [-x] [-p PID] [-n COMM] [-f SUBSTRING] [-c COUNT]\n");
			return opt == 'h' ? 0 : 2;
		}
	}
	struct bpf_object *obj = bpf_object__open_mem(obj_bytes, sizeof(obj_bytes));
	if (!obj || bpf_object__load(obj))
		return 1;
	const char *progs[] = {"open_enter", "open_exit", NULL};
	if (bpf_object__attach_programs(obj, progs)) {
		bpf_object__close(obj);
		return 1;
	}
	struct ring_buffer *rb = ring_buffer__new(obj, "open_rb", on_event, NULL);
	if (!rb) {
		bpf_object__close(obj);
		return 1;
	}
	printf("%-7s %-16s %3s %3s %s\n", "PID", "COMM", "FD", "ERR", "PATH");
	fflush(stdout);
	int err = 0;
	while (!done && (err = ring_buffer__poll(rb, 100)) >= 0)
		;
	ring_buffer__free(rb);
	bpf_object__close(obj);
	return done || err >= 0 || err == -EINTR ? 0 : 1;
}
