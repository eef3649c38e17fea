// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The seed article's sigsnoop: every signal generated, through a perf event array.
 *
 * Self-contained: instead of a vmlinux.h dumped from one kernel, it declares the one kernel
 * type it reads with preserve_access_index, so CO-RE finds the fields on whatever kernel runs
 * it, and the build is the same on every machine (examples/build.sh). */

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef signed char __s8;
typedef short __s16;
typedef int __s32;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef int pid_t;
typedef _Bool bool;
#define false 0

enum bpf_map_type { BPF_MAP_TYPE_PERF_EVENT_ARRAY = 4 };
#define BPF_F_CURRENT_CPU 0xffffffffULL

#include <bpf/bpf_helpers.h>

#include "sigsnoop.h"

/* The tracepoint's record, as far as this program reads it. */
struct trace_event_raw_signal_generate {
	int sig;
	int errno;
	pid_t pid;
} __attribute__((preserve_access_index));

/// Trace only signals sent by this process id
const volatile pid_t filtered_pid = 0;
/// Trace only this signal number
const volatile int target_signal = 0;
/// Trace only signals that failed to be delivered
const volatile bool failed_only = false;

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} sig_events SEC(".maps");

/* What ecc adds to keep the event struct in BTF. */
const volatile struct event *__eunomia_dummy_event_ptr __attribute__((unused));

SEC("tracepoint/signal/signal_generate")
int sig_trace(struct trace_event_raw_signal_generate *ctx)
{
	struct event event = {};
	pid_t tpid = ctx->pid;
	int ret = ctx->errno;
	int sig = ctx->sig;
	__u32 pid = bpf_get_current_pid_tgid() >> 32;

	if (filtered_pid && pid != filtered_pid)
		return 0;
	if (target_signal && sig != target_signal)
		return 0;
	if (failed_only && ret == 0)
		return 0;
	event.pid = pid;
	event.tpid = tpid;
	event.sig = sig;
	event.ret = ret;
	bpf_get_current_comm(event.comm, sizeof(event.comm));
	bpf_perf_event_output(ctx, &sig_events, BPF_F_CURRENT_CPU, &event, sizeof(event));
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
