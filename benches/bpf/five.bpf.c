// SPDX-License-Identifier: GPL-2.0
/* Startup benchmark object with five programs (tracepoints and raw tracepoints). */
#include "../../tests/fixtures/common.h"

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} five_rb SEC(".maps");

struct event {
	__u32 pid;
	__u32 kind;
};
const volatile struct event *__eunomia_dummy_event_ptr __attribute__((unused));

static __always_inline int note(__u32 kind)
{
	struct event e = {.pid = bpf_get_current_pid_tgid() >> 32, .kind = kind};
	if (e.pid == 0xffffffff) /* never: keeps the map referenced */
		bpf_ringbuf_output(&five_rb, &e, sizeof(e), 0);
	return 0;
}

SEC("tp/sched/sched_process_exec") int five_exec(void *ctx) { return note(1); }
SEC("tp/sched/sched_process_exit") int five_exit(void *ctx) { return note(2); }
SEC("tp/syscalls/sys_enter_openat") int five_open(void *ctx) { return note(3); }
SEC("raw_tp/sched_switch") int five_switch(void *ctx) { return note(4); }
SEC("tp/signal/signal_generate") int five_signal(void *ctx) { return note(5); }

char LICENSE[] SEC("license") = "GPL";
