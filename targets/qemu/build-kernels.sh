#!/usr/bin/env bash
# Builds the two x86_64 kernels of an edge node without BTF, from Debian's linux-source-6.1:
#   nobtf      tinyconfig + BPF, JIT, kprobes, tracepoints (targets/qemu/kernel/nobtf.config),
#              no CONFIG_DEBUG_INFO_BTF
#   noringbuf  the same tree with ring buffers (BPF_MAP_TYPE_RINGBUF, Linux 5.8) and
#              bpf_probe_read_kernel/_user (5.5) patched out: a 5.4-like kernel
# and, for each, the BTF an operator would make for it (pahole --btf_encode_detached from the
# DWARF of its vmlinux). Cached by source version, config and this script, so a warm run
# builds nothing:
#   targets/qemu/build-kernels.sh OUTDIR
#     -> OUTDIR/{nobtf,noringbuf}.{bzImage,btf,release}, OUTDIR/kernel-build.txt (timings)
# Cache: $EDGE_KERNEL_CACHE (default ~/.cache/edge-ecli/kernels). Needs linux-source-6.1,
# gcc, make, flex, bison, bc, libelf-dev and pahole (tests/setup.sh installs them).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build-kernels.sh OUTDIR}
mkdir -p "$out"
out=$(realpath "$out")
tarball=/usr/src/linux-source-6.1.tar.xz
[ -s "$tarball" ] || { echo "build-kernels: $tarball missing (apt-get install linux-source-6.1)" >&2; exit 1; }
src_version=$(dpkg-query -W -f='${Version}' linux-source-6.1)
key=$( { echo "$src_version"; cat "$0" "$here/kernel/nobtf.config"; gcc --version | head -1;
         pahole --version; } | sha256sum | cut -c1-16)
cache=${EDGE_KERNEL_CACHE:-$HOME/.cache/edge-ecli/kernels}/$key
variants=(nobtf noringbuf)

have_all() {
    for v in "${variants[@]}"; do
        for f in bzImage btf release; do [ -s "$cache/$v.$f" ] || return 1; done
    done
}

if ! have_all; then
    work="$cache.work"
    rm -rf "$work"
    mkdir -p "$work"
    t0=$SECONDS
    echo "build-kernels: linux-source-6.1 $src_version, cache key $key: building (about 10 min on 2 cores)" >&2
    tar -xJf "$tarball" -C "$work"
    srcdir="$work/linux-source-6.1"
    build="$work/build"
    t_extract=$((SECONDS - t0))
    mk() { make -s -C "$srcdir" O="$build" ARCH=x86_64 LOCALVERSION= "$@"; }
    mk tinyconfig >/dev/null
    "$srcdir/scripts/kconfig/merge_config.sh" -m -O "$build" "$build/.config" "$here/kernel/nobtf.config" >/dev/null
    mk olddefconfig >/dev/null
    # Every option asked for must be what the kernel got (a dependency can silently drop one).
    missing=$(grep -E '^(CONFIG_[A-Z0-9_]+=.*|# CONFIG_[A-Z0-9_]+ is not set)$' "$here/kernel/nobtf.config" \
        | while read -r line; do grep -qxF "$line" "$build/.config" || echo "$line"; done)
    [ -z "$missing" ] || { echo "build-kernels: the config lost: $missing" >&2; exit 1; }

    one() { # variant
        local v=$1 t=$SECONDS
        mk -j"$(nproc)" bzImage >"$work/$v.log" 2>&1 || { tail -40 "$work/$v.log" >&2; exit 1; }
        local built=$((SECONDS - t)); t=$SECONDS
        pahole --btf_encode_detached="$work/$v.btf" "$build/vmlinux"
        local btf=$((SECONDS - t))
        cp "$build/arch/x86/boot/bzImage" "$work/$v.bzImage"
        mk -s kernelrelease > "$work/$v.release"
        echo "$v: kernel $(cat "$work/$v.release"), build ${built}s, pahole ${btf}s, bzImage $(stat -c %s "$work/$v.bzImage") bytes, vmlinux $(stat -c %s "$build/vmlinux") bytes, BTF $(stat -c %s "$work/$v.btf") bytes" >> "$work/kernel-build.txt"
    }
    echo "extract: ${t_extract}s" > "$work/kernel-build.txt"
    one nobtf

    # Ring buffers out: the map types, their helpers and ringbuf.c itself (so struct
    # bpf_ringbuf is not in the DWARF, hence not in the BTF: bpf_core_type_exists() says no);
    # bpf_probe_read_kernel/_user out, so loaders fall back to bpf_probe_read.
    perl -0pi -e 's/^BPF_MAP_TYPE\(BPF_MAP_TYPE_(USER_)?RINGBUF, \w+\)\n//mg' "$srcdir/include/linux/bpf_types.h"
    perl -0pi -e 's/ ringbuf\.o//' "$srcdir/kernel/bpf/Makefile"
    for f in kernel/bpf/helpers.c kernel/trace/bpf_trace.c; do
        perl -0pi -e 's/^\tcase BPF_FUNC_(ringbuf_\w+|user_ringbuf_drain|probe_read_(user|kernel)(_str)?):\n\t\treturn [^;]*;\n//mg' "$srcdir/$f"
    done
    left=$(cat "$srcdir/include/linux/bpf_types.h" "$srcdir/kernel/bpf/helpers.c" "$srcdir/kernel/trace/bpf_trace.c" \
        | grep -c -E 'RINGBUF, |case BPF_FUNC_(ringbuf_|user_ringbuf|probe_read_(user|kernel))' || true)
    if [ "$left" != 0 ] || grep -q ringbuf.o "$srcdir/kernel/bpf/Makefile"; then
        echo "build-kernels: the ring buffer patch did not apply to $src_version" >&2; exit 1
    fi
    "$srcdir/scripts/config" --file "$build/.config" --set-str LOCALVERSION "-edge-noringbuf"
    mk olddefconfig >/dev/null
    one noringbuf
    echo "total: $((SECONDS - t0))s" >> "$work/kernel-build.txt"

    mkdir -p "$cache"
    for v in "${variants[@]}"; do
        for f in bzImage btf release; do mv "$work/$v.$f" "$cache/$v.$f"; done
    done
    mv "$work/kernel-build.txt" "$cache/kernel-build.txt"
    rm -rf "$work"
    echo "build-kernels: built in $((SECONDS - t0))s" >&2
else
    echo "build-kernels: cached ($cache)" >&2
fi
for v in "${variants[@]}"; do
    for f in bzImage btf release; do cp "$cache/$v.$f" "$out/$v.$f"; done
done
cp "$cache/kernel-build.txt" "$out/kernel-build.txt"
cat "$out/kernel-build.txt" >&2
