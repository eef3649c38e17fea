// SPDX-License-Identifier: GPL-2.0
/* Event generator for the benchmarks: one BPF_PROG_TEST_RUN of `flood` emits args[0] records
 * with bpf_loop, into a ring buffer (default) or, built with -DPERF, a perf event array. No
 * syscall per event, so the consumer is what is measured. Attached to a raw tracepoint that
 * practically never fires (task_rename), so only test runs produce events. */
#define EVENT_MAP flood_events
#include "event.h"

struct loop_ctx {
	void *ctx;
	struct event e;
};

__u64 seq = 0;

static long emit(__u64 i, struct loop_ctx *lc)
{
	lc->e.seq = __sync_fetch_and_add(&seq, 1);
	lc->e.ts = bpf_ktime_get_ns();
#ifdef PERF
	bpf_perf_event_output(lc->ctx, &flood_events, BPF_F_CURRENT_CPU, &lc->e, sizeof(lc->e));
#else
	bpf_ringbuf_output(&flood_events, &lc->e, sizeof(lc->e), 0);
#endif
	return 0;
}

SEC("raw_tp/task_rename")
int flood(struct bpf_raw_tracepoint_args *ctx)
{
	struct loop_ctx lc = {.ctx = ctx};
	lc.e.pid = bpf_get_current_pid_tgid() >> 32;
	lc.e.cpu = bpf_get_smp_processor_id();
	bpf_get_current_comm(lc.e.comm, sizeof(lc.e.comm));
	bpf_loop(ctx->args[0], emit, &lc, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
