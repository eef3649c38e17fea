/* edge_bpf.h: write the user-space half of an eBPF tool in C, compile it to WebAssembly, run
 * it with `edge-ecli run app.wasm`. Header-only; libbpf-like names.
 *
 *   clang-19 --target=wasm32-wasi --sysroot=/usr -O2 -Wl,--export-table \
 *       -I sdk/c app.c -o app.wasm
 *
 * (-Wl,--export-table exports the function table: buffer callbacks are table indices.)
 *
 *   static const unsigned char obj_bytes[] = {
 *   #embed "app.bpf.o"
 *   };
 *   struct bpf_object *obj = bpf_object__open_mem(obj_bytes, sizeof(obj_bytes));
 *   bpf_object__set_global(obj, "target_pid", &pid, sizeof(pid));   // before load
 *   bpf_object__load(obj);
 *   bpf_program__attach_by_name(obj, "handle_exec", NULL);           // by its section
 *   struct ring_buffer *rb = ring_buffer__new(obj, "events", on_event, NULL);
 *   while (ring_buffer__poll(rb, 100) >= 0) ;                       // -EINTR on Ctrl-C
 *   ring_buffer__free(rb);
 *   bpf_object__close(obj);
 *
 * SPDX-License-Identifier: MIT OR Apache-2.0
 */
#ifndef EDGE_BPF_H
#define EDGE_BPF_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- the wasm_bpf host ABI (wasm-bpf compatible) ---- */
#define EDGE_WASM_BPF(name) __attribute__((import_module("wasm_bpf"), import_name(name)))
EDGE_WASM_BPF("wasm_load_bpf_object") uint64_t wasm_load_bpf_object(const void *buf, int len);
EDGE_WASM_BPF("wasm_attach_bpf_program")
int wasm_attach_bpf_program(uint64_t obj, const char *name, const char *target);
EDGE_WASM_BPF("wasm_bpf_map_fd_by_name") int wasm_bpf_map_fd_by_name(uint64_t obj, const char *name);
EDGE_WASM_BPF("wasm_bpf_map_operate")
int wasm_bpf_map_operate(int fd, int cmd, void *key, void *value, void *next_key, uint64_t flags);
EDGE_WASM_BPF("wasm_bpf_buffer_poll")
int wasm_bpf_buffer_poll(uint64_t obj, int fd, int32_t sample_func, uint32_t ctx, char *data,
			 int max_size, int timeout_ms);
EDGE_WASM_BPF("wasm_close_bpf_object") int wasm_close_bpf_object(uint64_t obj);

/* The host returns Linux errno values; wasi-libc numbers them differently. Guests compare
 * with <errno.h> names, so the wrappers below translate. */
static inline int edge__errno(int neg)
{
	if (neg >= 0)
		return neg;
	switch (-neg) {
	case 1: return -EPERM;
	case 2: return -ENOENT;
	case 4: return -EINTR;
	case 7: return -E2BIG;
	case 9: return -EBADF;
	case 11: return -EAGAIN;
	case 12: return -ENOMEM;
	case 13: return -EACCES;
	case 14: return -EFAULT;
	case 16: return -EBUSY;
	case 17: return -EEXIST;
	case 22: return -EINVAL;
	case 28: return -ENOSPC;
	case 95: return -EOPNOTSUPP;
	default: return -EIO;
	}
}

/* ---- objects ---- */
struct bpf_object {
	unsigned char *elf; /* a private, writable copy: globals are set in it before load */
	size_t size;
	uint64_t handle;    /* 0 until loaded */
};

static inline struct bpf_object *bpf_object__open_mem(const void *buf, size_t size)
{
	struct bpf_object *o = calloc(1, sizeof(*o));
	if (!o || !(o->elf = malloc(size))) {
		free(o);
		return NULL;
	}
	memcpy(o->elf, buf, size);
	o->size = size;
	return o;
}

static inline uint64_t edge__rd(const unsigned char *p, int n)
{
	uint64_t v = 0;
	for (int i = n - 1; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* Sets a `const volatile` (.rodata) or .bss/.data global in the object before it is loaded,
 * as a libbpf skeleton's `skel->rodata->name = value` does. 0, or -ENOENT / -EINVAL. */
static inline int bpf_object__set_global(struct bpf_object *o, const char *name, const void *val,
					 size_t size)
{
	const unsigned char *e = o->elf;
	if (o->handle || o->size < 64 || memcmp(e, "\177ELF", 4) || e[4] != 2)
		return -EINVAL;
	uint64_t shoff = edge__rd(e + 40, 8), shnum = edge__rd(e + 60, 2);
	if (shoff > o->size || shnum > (o->size - shoff) / 64)
		return -EINVAL;
	for (uint64_t i = 0; i < shnum; i++) {
		const unsigned char *sh = e + shoff + i * 64;
		if (edge__rd(sh + 4, 4) != 2 /* SHT_SYMTAB */)
			continue;
		uint64_t off = edge__rd(sh + 24, 8), sz = edge__rd(sh + 32, 8);
		uint64_t link = edge__rd(sh + 40, 4);
		if (off > o->size || sz > o->size - off || link >= shnum)
			return -EINVAL;
		const unsigned char *str = e + shoff + link * 64;
		uint64_t stroff = edge__rd(str + 24, 8), strsz = edge__rd(str + 32, 8);
		if (stroff > o->size || strsz > o->size - stroff)
			return -EINVAL;
		for (uint64_t s = off; s + 24 <= off + sz; s += 24) {
			uint64_t nm = edge__rd(e + s, 4), shndx = edge__rd(e + s + 6, 2);
			uint64_t value = edge__rd(e + s + 8, 8), ssize = edge__rd(e + s + 16, 8);
			if (nm >= strsz || strncmp((const char *)e + stroff + nm, name, strsz - nm) ||
			    shndx == 0 || shndx >= shnum)
				continue;
			if (ssize != size)
				return -EINVAL;
			const unsigned char *dsh = e + shoff + shndx * 64;
			uint64_t doff = edge__rd(dsh + 24, 8), dsz = edge__rd(dsh + 32, 8);
			if (edge__rd(dsh + 4, 4) == 8 /* SHT_NOBITS: .bss has no bytes in the file */ ||
			    value > dsz || size > dsz - value || doff > o->size ||
			    dsz > o->size - doff)
				return -EINVAL;
			memcpy(o->elf + doff + value, val, size);
			return 0;
		}
	}
	return -ENOENT;
}

/* Loads the object into the kernel (CO-RE against the kernel's BTF). 0 or -1; the host prints
 * the loader's message. */
static inline int bpf_object__load(struct bpf_object *o)
{
	o->handle = wasm_load_bpf_object(o->elf, (int)o->size);
	return o->handle ? 0 : -1;
}

/* Attaches one program by its C name; target is NULL (by section name), an interface name
 * (xdp, tc) or PATH:FUNC (uprobes). */
static inline int bpf_program__attach_by_name(struct bpf_object *o, const char *prog,
					      const char *target)
{
	return edge__errno(wasm_attach_bpf_program(o->handle, prog, target ? target : ""));
}

static inline int bpf_object__find_map_fd_by_name(struct bpf_object *o, const char *name)
{
	return edge__errno(wasm_bpf_map_fd_by_name(o->handle, name));
}

static inline void bpf_object__close(struct bpf_object *o)
{
	if (!o)
		return;
	if (o->handle)
		wasm_close_bpf_object(o->handle);
	free(o->elf);
	free(o);
}

/* ---- skeleton objects (what `edge-ecli build` generates uses these) ---- */
struct bpf_map {
	struct bpf_object *obj;
	const char *name;
};

struct bpf_program {
	struct bpf_object *obj;
	const char *name;
	char attach_target[256]; /* "" : what the section names */
	bool autoattach;
};

static inline struct bpf_map *bpf_map__init(struct bpf_map *m, struct bpf_object *o,
					    const char *name)
{
	m->obj = o;
	m->name = name;
	return m;
}

static inline struct bpf_program *bpf_program__init(struct bpf_program *p, struct bpf_object *o,
						    const char *name)
{
	p->obj = o;
	p->name = name;
	p->attach_target[0] = 0;
	p->autoattach = true;
	return p;
}

static inline const char *bpf_map__name(const struct bpf_map *m)
{
	return m->name;
}

/* The map's fd once the object is loaded, or -errno. */
static inline int bpf_map__fd(const struct bpf_map *m)
{
	return bpf_object__find_map_fd_by_name(m->obj, m->name);
}

/* What a section cannot name (wasm-bpf's call): a cgroup directory for cgroup and sockops
 * programs, an interface for xdp, tc and socket filters, PATH:FUNC for uprobes. */
static inline void bpf_set_prog_attach_target(struct bpf_program *p, const char *target)
{
	size_t n = strlen(target);
	if (n >= sizeof(p->attach_target))
		n = sizeof(p->attach_target) - 1;
	memcpy(p->attach_target, target, n);
	p->attach_target[n] = 0;
}

static inline int bpf_program__set_autoattach(struct bpf_program *p, bool autoattach)
{
	p->autoattach = autoattach;
	return 0;
}

/* Attaches one skeleton program (skipped when autoattach is off). 0 or -errno. */
static inline int bpf_program__attach(struct bpf_program *p)
{
	if (!p->autoattach)
		return 0;
	return bpf_program__attach_by_name(p->obj, p->name,
					   p->attach_target[0] ? p->attach_target : NULL);
}

/* The bytes of section `name` in the object's private copy, if it has at least `need` of
 * them (a skeleton's `rodata` points here, so values written before load are loaded). */
static inline void *bpf_object__section_data(struct bpf_object *o, const char *name, size_t need)
{
	const unsigned char *e = o->elf;
	if (o->size < 64 || memcmp(e, "\177ELF", 4) || e[4] != 2)
		return NULL;
	uint64_t shoff = edge__rd(e + 40, 8), shnum = edge__rd(e + 60, 2),
		 shstrndx = edge__rd(e + 62, 2);
	if (shoff > o->size || shnum > (o->size - shoff) / 64 || shstrndx >= shnum)
		return NULL;
	const unsigned char *strsh = e + shoff + shstrndx * 64;
	uint64_t stroff = edge__rd(strsh + 24, 8), strsz = edge__rd(strsh + 32, 8);
	if (stroff > o->size || strsz > o->size - stroff)
		return NULL;
	for (uint64_t i = 0; i < shnum; i++) {
		const unsigned char *sh = e + shoff + i * 64;
		uint64_t nm = edge__rd(sh, 4), off = edge__rd(sh + 24, 8), sz = edge__rd(sh + 32, 8);
		if (nm >= strsz || strncmp((const char *)e + stroff + nm, name, strsz - nm))
			continue;
		if (edge__rd(sh + 4, 4) == 8 /* SHT_NOBITS */ || off > o->size ||
		    sz > o->size - off || sz < need)
			return NULL;
		return o->elf + off;
	}
	return NULL;
}

/* ---- maps: 0 or -errno ---- */
enum { EDGE_MAP_LOOKUP = 1, EDGE_MAP_UPDATE, EDGE_MAP_DELETE, EDGE_MAP_NEXT_KEY };
#ifndef BPF_ANY
#define BPF_ANY 0
#define BPF_NOEXIST 1
#define BPF_EXIST 2
#endif

static inline int bpf_map_lookup_elem(int fd, const void *key, void *value)
{
	return edge__errno(wasm_bpf_map_operate(fd, EDGE_MAP_LOOKUP, (void *)key, value, NULL, 0));
}
static inline int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)
{
	return edge__errno(wasm_bpf_map_operate(fd, EDGE_MAP_UPDATE, (void *)key, (void *)value, NULL, flags));
}
static inline int bpf_map_delete_elem(int fd, const void *key)
{
	return edge__errno(wasm_bpf_map_operate(fd, EDGE_MAP_DELETE, (void *)key, NULL, NULL, 0));
}
/* key NULL: the first key. -ENOENT after the last. */
static inline int bpf_map_get_next_key(int fd, const void *key, void *next_key)
{
	return edge__errno(wasm_bpf_map_operate(fd, EDGE_MAP_NEXT_KEY, (void *)key, NULL, next_key, 0));
}

/* ---- ring buffers and perf buffers (one API: the host knows the map's kind) ---- */
#ifndef EDGE_BPF_SAMPLE_MAX
#define EDGE_BPF_SAMPLE_MAX 4096
#endif
typedef int (*ring_buffer_sample_fn)(void *ctx, void *data, size_t size);

struct ring_buffer {
	uint64_t obj;
	int fd;
	ring_buffer_sample_fn fn;
	void *ctx;
	char sample[EDGE_BPF_SAMPLE_MAX];
};

static inline struct ring_buffer *ring_buffer__new(struct bpf_object *o, const char *map,
						   ring_buffer_sample_fn fn, void *ctx)
{
	int fd = bpf_object__find_map_fd_by_name(o, map);
	if (fd < 0)
		return NULL;
	struct ring_buffer *rb = calloc(1, sizeof(*rb));
	if (!rb)
		return NULL;
	rb->obj = o->handle;
	rb->fd = fd;
	rb->fn = fn;
	rb->ctx = ctx;
	return rb;
}

/* Waits up to timeout_ms, then calls fn for every sample. Returns the number of samples, the
 * first non-zero return of fn, or -errno (-EINTR once edge-ecli is asked to stop). */
static inline int ring_buffer__poll(struct ring_buffer *rb, int timeout_ms)
{
	return edge__errno(wasm_bpf_buffer_poll(rb->obj, rb->fd, (int32_t)(uintptr_t)rb->fn,
						(uint32_t)(uintptr_t)rb->ctx, rb->sample,
						sizeof(rb->sample), timeout_ms));
}

static inline void ring_buffer__free(struct ring_buffer *rb)
{
	free(rb);
}

#define perf_buffer ring_buffer
#define perf_buffer__new ring_buffer__new
#define perf_buffer__poll ring_buffer__poll
#define perf_buffer__free ring_buffer__free

/* wasm-bpf's buffer API over a skeleton map (after load). */
#define bpf_buffer ring_buffer
typedef ring_buffer_sample_fn bpf_buffer_sample_fn;

static inline struct bpf_buffer *bpf_buffer__open(struct bpf_map *m, bpf_buffer_sample_fn fn,
						  void *ctx)
{
	return ring_buffer__new(m->obj, m->name, fn, ctx);
}

/* As ring_buffer__poll; a timeout of 0 or less waits 100 ms, as in wasm-bpf. */
static inline int bpf_buffer__poll(struct bpf_buffer *b, int timeout_ms)
{
	return ring_buffer__poll(b, timeout_ms > 0 ? timeout_ms : 100);
}

static inline void bpf_buffer__free(struct bpf_buffer *b)
{
	ring_buffer__free(b);
}

/* Attaches every program named in `progs` (NULL-terminated). 0 or the first error. */
static inline int bpf_object__attach_programs(struct bpf_object *o, const char *const *progs)
{
	for (; *progs; progs++) {
		int err = bpf_program__attach_by_name(o, *progs, NULL);
		if (err)
			return err;
	}
	return 0;
}

#endif /* EDGE_BPF_H */
