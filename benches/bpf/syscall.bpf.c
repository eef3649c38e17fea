// SPDX-License-Identifier: GPL-2.0
/* One event per real syscall, as a tracer sees them: each getppid(2) writes one record (the
 * flood's layout) to a ring buffer or, built with -DPERF, a perf event array. Driven by
 * `edge-trigger getppid N RATE`; `ts` is bpf_ktime_get_ns (CLOCK_MONOTONIC), so a reader can
 * tell how long a record took to reach the output. */
#define EVENT_MAP sys_events
#include "event.h"

__u64 seq = 0;

SEC("tp/syscalls/sys_enter_getppid")
int on_getppid(void *ctx)
{
	struct event e = {};
	e.seq = __sync_fetch_and_add(&seq, 1);
	e.ts = bpf_ktime_get_ns();
	e.pid = bpf_get_current_pid_tgid() >> 32;
	e.cpu = bpf_get_smp_processor_id();
	bpf_get_current_comm(e.comm, sizeof(e.comm));
#ifdef PERF
	bpf_perf_event_output(ctx, &sys_events, BPF_F_CURRENT_CPU, &e, sizeof(e));
#else
	bpf_ringbuf_output(&sys_events, &e, sizeof(e), 0);
#endif
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
