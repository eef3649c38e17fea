#!/usr/bin/env bash
# Full-system QEMU tests: boots Debian trixie kernels (x86_64, aarch64, riscv64 with the JIT on
# and off) from an initramfs holding the static edge-ecli of that arch and the same packages
# built once on this host; /init (targets/qemu/init.c) runs the cases and prints result lines.
#   targets/qemu/run.sh [x86_64] [aarch64] [riscv64]      (default: all three)
# Needs the static binaries from targets/build.sh. A missing EDGE-RESULT line, a failed case or
# a timeout fails the run. Results: target/qemu/results.txt (the README tier table's source).
set -euo pipefail
cd "$(dirname "$0")/../.."
work=target/qemu
mkdir -p "$work/pkg"
bash targets/qemu/fetch-kernels.sh "$work" >&2

# Packages, built once on the host for every arch.
pkg="$work/pkg"
[ -s "$pkg/vmlinux.h" ] || bpftool btf dump file /sys/kernel/btf/vmlinux format c > "$pkg/vmlinux.h"
bpf() { clang-19 -g -O2 -target bpf -D__TARGET_ARCH_x86 -I third_party/libbpf/include -I "$pkg" "$@"; }
for f in sigsnoop bootstrap opensnoop ksyscall fentry lsmmkdir alternatives ksymvar kstacks; do
    bpf -c "tests/fixtures/$f.bpf.c" -o "$pkg/$f.bpf.o"
done
bpf -DKILL_SECTION='"kprobe/__riscv_sys_kill+8"' -c tests/fixtures/ksyscall.bpf.c -o "$pkg/kprobe_riscv.bpf.o"
host=target/x86_64-unknown-linux-musl/release/edge-ecli
for f in sigsnoop bootstrap; do "$host" pack "$pkg/$f.bpf.o" -o "$pkg/$f.json"; done
clang-19 --target=wasm32-wasi --sysroot=/usr -O2 -Wno-c23-extensions -Wl,--export-table -I sdk/c \
    -DSIGSNOOP_OBJ="\"$PWD/$pkg/sigsnoop.bpf.o\"" examples/c/sigsnoop.c -o "$pkg/sigsnoop.wasm"

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
for arch in "${@:-x86_64 aarch64 riscv64}"; do
    for a in $arch; do
    case "$a" in
        x86_64) triple=x86_64-unknown-linux-musl; cc=gcc; kern=amd64 ;;
        aarch64) triple=aarch64-unknown-linux-musl; cc=aarch64-linux-gnu-gcc; kern=arm64 ;;
        riscv64) triple=riscv64gc-unknown-linux-musl; cc=riscv64-linux-gnu-gcc; kern=riscv64 ;;
        *) echo "unknown arch $a" >&2; exit 2 ;;
    esac
    root="$work/root-$a"
    rm -rf "$root"; mkdir -p "$root/pkg" "$root/proc" "$root/sys" "$root/dev" "$root/tmp"
    "$cc" -static -O2 -o "$root/init" targets/qemu/init.c
    # sys/sdt.h (USDT probes) is a plain header: the cross compilers get the host's copy alone.
    mkdir -p "$work/sdt/sys"
    cp "$(dpkg -L systemtap-sdt-dev | grep '/sys/sdt.h$')" "$(dpkg -L systemtap-sdt-dev | grep '/sys/sdt-config.h$')" "$work/sdt/sys/"
    "$cc" -static -O2 -I "$work/sdt" -o "$root/edge-trigger" tests/fixtures/trigger.c
    cp "target/$triple/release/edge-ecli" "$root/edge-ecli"
    cp "$pkg"/*.bpf.o "$pkg"/*.json "$pkg"/*.wasm "$root/pkg/"
    (cd "$root" && find . | cpio -o -H newc --quiet) > "$work/initrd-$a.cpio"
    k="$work/$kern.vmlinuz"; i="$work/initrd-$a.cpio"
    common=(-m 1G -smp 2 -display none -monitor none -serial stdio -no-reboot -kernel "$k" -initrd "$i")
    case "$a" in
        # bpf in lsm= turns the BPF LSM on (lsm/* programs); the other arches boot without it.
        x86_64) boot x86_64 "" qemu-system-x86_64 -M q35 "${common[@]}" -append 'console=ttyS0 panic=-1 quiet lsm=lockdown,yama,bpf' || status=1 ;;
        aarch64) boot aarch64 "" qemu-system-aarch64 -M virt -cpu cortex-a57 "${common[@]}" -append 'console=ttyAMA0 panic=-1 quiet' || status=1 ;;
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
