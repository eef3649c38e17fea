/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* edge-ecli C SDK, the BPF side: one way to send records that works on kernels with ring
 * buffers (Linux 5.8+) and on kernels without them, as libbpf-tools' compat.bpf.h does.
 *
 *	#include "vmlinux.h"
 *	#include <bpf/bpf_helpers.h>
 *	#include <edge/compat.bpf.h>	(edge-ecli build carries it; else -I sdk/c)
 *
 *	struct event *e = reserve_buf(sizeof(*e));
 *	if (!e)
 *		return 0;
 *	e->pid = ...;
 *	submit_buf(ctx, e, sizeof(*e));
 *
 * Where the kernel has ring buffers, EDGE_EVENTS (default `events`) is one and reserve/submit
 * are bpf_ringbuf_reserve/submit. Where it has none, bpf_core_type_exists(struct bpf_ringbuf)
 * is false (the kernel's BTF, its own or the one the package carries, has no such struct):
 * the record is built in a per-CPU scratch map and sent with bpf_perf_event_output, and the
 * loader (edge-ecli, or libbpf-tools' user space) creates EDGE_EVENTS as a perf event array.
 * A record is at most EDGE_MAX_EVENT_SIZE bytes (default 10240); the ring buffer has
 * EDGE_RINGBUF_SIZE bytes (default 256 KiB).
 */
#ifndef __EDGE_COMPAT_BPF_H
#define __EDGE_COMPAT_BPF_H

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#ifndef EDGE_EVENTS
#define EDGE_EVENTS events
#endif
#ifndef EDGE_MAX_EVENT_SIZE
#define EDGE_MAX_EVENT_SIZE 10240
#endif
#ifndef EDGE_RINGBUF_SIZE
#define EDGE_RINGBUF_SIZE (256 * 1024)
#endif

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, EDGE_RINGBUF_SIZE);
} EDGE_EVENTS SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u8[EDGE_MAX_EVENT_SIZE]);
} edge_compat_heap SEC(".maps");

/* Does this kernel have ring buffers? Decided at load time, by CO-RE. */
static __always_inline int edge_has_ringbuf(void)
{
	return bpf_core_type_exists(struct bpf_ringbuf);
}

/* Room for a record of `size` bytes, or NULL. */
static __always_inline void *reserve_buf(__u64 size)
{
	__u32 zero = 0;

	if (edge_has_ringbuf())
		return bpf_ringbuf_reserve(&EDGE_EVENTS, size, 0);
	return bpf_map_lookup_elem(&edge_compat_heap, &zero);
}

/* Sends the record reserve_buf() gave; `ctx` is the program's context. */
static __always_inline long submit_buf(void *ctx, void *buf, __u64 size)
{
	if (edge_has_ringbuf()) {
		bpf_ringbuf_submit(buf, 0);
		return 0;
	}
	return bpf_perf_event_output(ctx, &EDGE_EVENTS, BPF_F_CURRENT_CPU, buf, size);
}

/* Drops the record reserve_buf() gave. */
static __always_inline void discard_buf(void *buf)
{
	if (edge_has_ringbuf())
		bpf_ringbuf_discard(buf, 0);
}

#endif /* __EDGE_COMPAT_BPF_H */
