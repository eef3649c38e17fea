/* SPDX-License-Identifier: GPL-2.0 */
/* The record the benchmark generators write (flood.bpf.c, syscall.bpf.c), and its map
 * EVENT_MAP: a ring buffer, or with -DPERF a perf event array. Define EVENT_MAP first. */
#include "../../tests/fixtures/common.h"

struct event {
	__u64 seq;
	__u64 ts;
	__u32 pid;
	__u32 cpu;
	char comm[TASK_COMM_LEN];
};

#ifdef PERF
struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} EVENT_MAP SEC(".maps");
#else
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} EVENT_MAP SEC(".maps");
#endif

const volatile struct event *__eunomia_dummy_event_ptr __attribute__((unused));
