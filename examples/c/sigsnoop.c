/* sigsnoop in Wasm: the seed article's tool. The kernel half (tests/fixtures/sigsnoop.bpf.c)
 * travels inside this module; filtering flags and signal names live here, in Wasm.
 *
 *   sigsnoop [-x] [-k] [-p PID] [-s SIGNAL]      JSON lines on stdout
 *
 * Build: clang-19 --target=wasm32-wasi --sysroot=/usr -O2 -Wl,--export-table -I sdk/c \
 *            -DSIGSNOOP_OBJ='"path/to/sigsnoop.bpf.o"' examples/c/sigsnoop.c -o sigsnoop.wasm
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "edge_bpf.h"

#ifndef SIGSNOOP_OBJ
#define SIGSNOOP_OBJ "sigsnoop.bpf.o"
#endif

static const unsigned char obj_bytes[] = {
#embed SIGSNOOP_OBJ
};

struct event {
	unsigned int pid;
	unsigned int tpid;
	int sig;
	int ret;
	char comm[16];
};

static const char *sig_name[] = {
	"N/A", "SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS",
	"SIGFPE", "SIGKILL", "SIGUSR1", "SIGSEGV", "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM",
	"SIGSTKFLT", "SIGCHLD", "SIGCONT", "SIGSTOP", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGURG",
	"SIGXCPU", "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGWINCH", "SIGIO", "SIGPWR", "SIGSYS",
};

static int failed_only, kill_only, target_signal;
static unsigned int target_pid;

static int on_event(void *ctx, void *data, size_t size)
{
	const struct event *e = data;
	(void)ctx;
	if (size < sizeof(*e))
		return 0;
	if (failed_only && e->ret == 0)
		return 0;
	if (kill_only && e->sig != 9)
		return 0;
	if (target_signal && e->sig != target_signal)
		return 0;
	if (target_pid && e->pid != target_pid)
		return 0;
	const char *name = e->sig >= 0 && e->sig < 32 ? sig_name[e->sig] : "SIGRT";
	printf("{\"pid\":%u,\"tpid\":%u,\"sig\":%d,\"sig_name\":\"%s\",\"ret\":%d,\"comm\":\"%.16s\"}\n",
	       e->pid, e->tpid, e->sig, name, e->ret, e->comm);
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	int opt;
	while ((opt = getopt(argc, argv, "xkp:s:h")) != -1) {
		switch (opt) {
		case 'x': failed_only = 1; break;
		case 'k': kill_only = 1; break;
		case 'p': target_pid = (unsigned)atoi(optarg); break;
		case 's': target_signal = atoi(optarg); break;
		default:
			fprintf(opt == 'h' ? stdout : stderr,
				"Usage: sigsnoop [-h] [-x] [-k] [-p PID] [-s SIGNAL]\n"
				"Trace standard and real-time signals.\n\n"
				"  -x  failed signals only\n  -k  kill only\n"
				"  -p  target pid\n  -s  target signal\n");
			return opt == 'h' ? 0 : 2;
		}
	}
	struct bpf_object *obj = bpf_object__open_mem(obj_bytes, sizeof(obj_bytes));
	if (!obj || bpf_object__load(obj)) {
		fprintf(stderr, "sigsnoop: failed to load the BPF object\n");
		return 1;
	}
	int err = bpf_program__attach_by_name(obj, "sig_trace", NULL);
	struct perf_buffer *pb = err ? NULL : perf_buffer__new(obj, "sig_events", on_event, NULL);
	if (!pb) {
		fprintf(stderr, "sigsnoop: failed to attach (%d)\n", err);
		bpf_object__close(obj);
		return 1;
	}
	fprintf(stderr, "sigsnoop: tracing signals, Ctrl-C to stop\n");
	while ((err = perf_buffer__poll(pb, 100)) >= 0)
		;
	perf_buffer__free(pb);
	bpf_object__close(obj);
	return err == -EINTR ? 0 : 1;
}
