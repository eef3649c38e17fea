#!/usr/bin/env bash
# Full-system QEMU tests: boots Debian trixie kernels (x86_64, aarch64, riscv64 with the JIT on
# and off) and two x86_64 kernels built here without BTF (nobtf, and noringbuf: no ring
# buffers either; targets/qemu/build-kernels.sh) from an initramfs holding the static edge-ecli
# of that arch and the same packages built once on this host; /init (targets/qemu/init.c) runs
# the cases and prints result lines.
#   targets/qemu/run.sh [x86_64] [aarch64] [riscv64] [nobtf] [noringbuf]   (default: all)
# Needs the static binaries from targets/build.sh. A missing EDGE-RESULT line, a failed case or
# a timeout fails the run. Results: target/qemu/results.txt (the README tier table's source).
set -euo pipefail
cd "$(dirname "$0")/../.."
work=target/qemu
mkdir -p "$work/pkg"
bash targets/qemu/fetch-kernels.sh "$work" >&2
want_nobtf=0
for a in ${*:-nobtf}; do case "$a" in nobtf|noringbuf) want_nobtf=1 ;; esac; done
if [ $want_nobtf = 1 ]; then
    t0=$SECONDS
    bash targets/qemu/build-kernels.sh "$work/nobtf" >&2
    echo "kernels without BTF ready in $((SECONDS - t0))s" >&2
fi

# Packages, built once on the host for every arch.
pkg="$work/pkg"
[ -s "$pkg/vmlinux.h" ] || bpftool btf dump file /sys/kernel/btf/vmlinux format c > "$pkg/vmlinux.h"
bpf() { clang-19 -g -O2 -target bpf -D__TARGET_ARCH_x86 -I third_party/libbpf/include -I "$pkg" "$@"; }
for f in sigsnoop bootstrap opensnoop ksyscall fentry lsmmkdir alternatives ksymvar kstacks; do
    bpf -c "tests/fixtures/$f.bpf.c" -o "$pkg/$f.bpf.o"
done
bpf -DKILL_SECTION='"kprobe/__riscv_sys_kill+8"' -c tests/fixtures/ksyscall.bpf.c -o "$pkg/kprobe_riscv.bpf.o"
bpf -I sdk/c -c tests/fixtures/execcompat.bpf.c -o "$pkg/execcompat.bpf.o"
bpf -c tests/fixtures/tpbtf.bpf.c -o "$pkg/tpbtf.bpf.o"
host=target/x86_64-unknown-linux-musl/release/edge-ecli
for f in sigsnoop bootstrap execcompat; do "$host" pack "$pkg/$f.bpf.o" -o "$pkg/$f.json"; done
clang-19 --target=wasm32-wasi --sysroot=/usr -O2 -Wno-c23-extensions -Wl,--export-table -I sdk/c \
    -DSIGSNOOP_OBJ="\"$PWD/$pkg/sigsnoop.bpf.o\"" examples/c/sigsnoop.c -o "$pkg/sigsnoop.wasm"
if [ $want_nobtf = 1 ]; then
    # The BTF an operator made for each kernel (pahole), in BTFHub layout, cut into packages.
    hub="$work/hub"; : > "$work/btfgen.txt"
    rm -rf "$hub"; mkdir -p "$hub/debian/12/x86_64"
    for v in nobtf noringbuf; do
        cp "$work/nobtf/$v.btf" "$hub/debian/12/x86_64/$(cat "$work/nobtf/$v.release").btf"
    done
    for f in execcompat bootstrap; do
        "$host" pack "$pkg/$f.bpf.o" --btfgen "$hub" -o "$pkg/${f}_btf.json" 2>> "$work/btfgen.txt"
    done
    "$host" pack "$pkg/sigsnoop.wasm" --btfgen "$hub" -o "$pkg/sigsnoop_btf.wasm" 2>> "$work/btfgen.txt"
    cat "$work/btfgen.txt" >&2
fi

boot() { # arch variant qemu-args...
    local arch=$1 variant=$2; shift 2
    local log="$work/$arch$variant.log" t0=$SECONDS
    timeout 900 "$@" < /dev/null > "$log" 2>&1 || true
    local secs=$((SECONDS - t0))
    local result; result=$(grep -a "EDGE-RESULT" "$log" | tr -d '\r' || true)
    grep -a -E "EDGE-(GUEST|CASE)" "$log" | tr -d '\r' | sed "s/^/[$arch$variant] /"
    if [ -z "$result" ]; then
        echo "[$arch$variant] no EDGE-RESULT line after ${secs}s (timeout or guest crash); log tail:"
        tail -n 30 "$log"
        return 1
    fi
    echo "[$arch$variant] $result (${secs}s)"
    { echo "$result secs=$secs"; grep -a "EDGE-CASE" "$log" | tr -d '\r'; } >> "$work/results.txt"
    case "$result" in *" fail=0"*) return 0 ;; *) grep -a -A12 "FAIL" "$log" | head -60; return 1 ;; esac
}

: > "$work/results.txt"
status=0
for arch in "${@:-x86_64 aarch64 riscv64 nobtf noringbuf}"; do
    for a in $arch; do
    version_id=13
    case "$a" in
        x86_64) triple=x86_64-unknown-linux-musl; cc=gcc; kern=amd64 ;;
        aarch64) triple=aarch64-unknown-linux-musl; cc=aarch64-linux-gnu-gcc; kern=arm64 ;;
        riscv64) triple=riscv64gc-unknown-linux-musl; cc=riscv64-linux-gnu-gcc; kern=riscv64 ;;
        nobtf|noringbuf) triple=x86_64-unknown-linux-musl; cc=gcc; kern=nobtf/$a; version_id=12 ;;
        *) echo "unknown arch $a" >&2; exit 2 ;;
    esac
    root="$work/root-$a"
    rm -rf "$root"; mkdir -p "$root/pkg" "$root/proc" "$root/sys" "$root/dev" "$root/tmp" "$root/etc"
    "$cc" -static -O2 -o "$root/init" targets/qemu/init.c
    # sys/sdt.h (USDT probes) is a plain header: the cross compilers get the host's copy alone.
    mkdir -p "$work/sdt/sys"
    cp "$(dpkg -L systemtap-sdt-dev | grep '/sys/sdt.h$')" "$(dpkg -L systemtap-sdt-dev | grep '/sys/sdt-config.h$')" "$work/sdt/sys/"
    "$cc" -static -O2 -I "$work/sdt" -o "$root/edge-trigger" tests/fixtures/trigger.c
    cp "target/$triple/release/edge-ecli" "$root/edge-ecli"
    cp "$pkg"/*.bpf.o "$pkg"/*.json "$pkg"/*.wasm "$root/pkg/"
    # The BTFHub key of the guest: Debian 13 for trixie's kernels, 12 for those built from
    # bookworm's linux-source-6.1.
    printf 'ID=debian\nVERSION_ID="%s"\n' "$version_id" > "$root/etc/os-release"
    case "$a" in
        nobtf) # the node directory in BTFHub layout
            r=$(cat "$work/nobtf/nobtf.release")
            mkdir -p "$root/var/lib/edge-ecli/btf/debian/12/x86_64"
            cp "$work/nobtf/nobtf.btf" "$root/var/lib/edge-ecli/btf/debian/12/x86_64/$r.btf" ;;
        noringbuf) # flat, as btfhub-archive ships a file: RELEASE.btf.tar.xz
            r=$(cat "$work/nobtf/noringbuf.release")
            mkdir -p "$root/var/lib/edge-ecli/btf" "$work/xz"
            cp "$work/nobtf/noringbuf.btf" "$work/xz/$r.btf"
            tar -C "$work/xz" -cf - "$r.btf" | xz -9 > "$root/var/lib/edge-ecli/btf/$r.btf.tar.xz"
            rm -rf "$work/xz" ;;
    esac
    (cd "$root" && find . | cpio -o -H newc --quiet) > "$work/initrd-$a.cpio"
    k="$work/$kern.vmlinuz"; i="$work/initrd-$a.cpio"
    case "$a" in nobtf|noringbuf) k="$work/nobtf/$a.bzImage" ;; esac
    common=(-m 1G -smp 2 -display none -monitor none -serial stdio -no-reboot -kernel "$k" -initrd "$i")
    case "$a" in
        # bpf in lsm= turns the BPF LSM on (lsm/* programs); the other arches boot without it.
        x86_64) boot x86_64 "" qemu-system-x86_64 -M q35 "${common[@]}" -append 'console=ttyS0 panic=-1 quiet lsm=lockdown,yama,bpf' || status=1 ;;
        aarch64) boot aarch64 "" qemu-system-aarch64 -M virt -cpu cortex-a57 "${common[@]}" -append 'console=ttyAMA0 panic=-1 quiet' || status=1 ;;
        # Built without SMP: one CPU.
        nobtf|noringbuf) common[3]=1
            boot "$a" "" qemu-system-x86_64 -M q35 "${common[@]}" -append "console=ttyS0 panic=-1 quiet edge_suite=$a" || status=1 ;;
        riscv64)
            boot riscv64 "-jit" qemu-system-riscv64 -M virt "${common[@]}" -append 'console=ttyS0 panic=-1 quiet sysctl.net.core.bpf_jit_enable=1' || status=1
            boot riscv64 "-nojit" qemu-system-riscv64 -M virt "${common[@]}" -append 'console=ttyS0 panic=-1 quiet sysctl.net.core.bpf_jit_enable=0' || status=1 ;;
    esac
    done
done
passed=$(grep -c "^EDGE-CASE .* PASS" "$work/results.txt" || true)
failed=$(grep -c "^EDGE-CASE .* FAIL" "$work/results.txt" || true)
guests=$(grep -c "^EDGE-RESULT" "$work/results.txt" || true)
echo "qemu guests booted with a result: $guests"
echo "qemu: $passed passed, $failed failed"
exit $status
