#!/usr/bin/env bash
# Builds static release binaries: targets/build.sh [x86_64|aarch64|riscv64]...
# Each must be statically linked with no dynamic section, and at most 3 MiB.
#
# riscv64 route: riscv64gc-unknown-linux-gnu with crt-static on stable Rust (rustup ships its
# std; riscv64gc-unknown-linux-musl would need nightly -Zbuild-std plus a riscv64 musl libc that
# Debian does not have). It costs ~0.5 MB more than musl would. wasmi's tail-call dispatch is
# miscompiled at opt-level "z" on riscv64 by LLVM's machine outliner: it is turned off there.
set -euo pipefail
cd "$(dirname "$0")/.."
max=$((3 * 1024 * 1024))
triple_of() {
    case "$1" in
        x86_64) echo x86_64-unknown-linux-musl ;;
        aarch64) echo aarch64-unknown-linux-musl ;;
        riscv64) echo riscv64gc-unknown-linux-gnu ;;
        *) echo "unknown arch $1 (x86_64, aarch64, riscv64)" >&2; exit 2 ;;
    esac
}
# Non-PIE static: `file` says "statically linked" and there is no dynamic section at all.
static="-C target-feature=+crt-static -C relocation-model=static"
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="$static"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="$static"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_RISCV64GC_UNKNOWN_LINUX_GNU_RUSTFLAGS="$static -C llvm-args=-enable-machine-outliner=never"
export CARGO_TARGET_RISCV64GC_UNKNOWN_LINUX_GNU_LINKER=riscv64-linux-gnu-gcc
# Unit tests of foreign arches run under qemu-user (no bpf(2) there, so no kernel tests).
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUNNER=qemu-aarch64-static
export CARGO_TARGET_RISCV64GC_UNKNOWN_LINUX_GNU_RUNNER=qemu-riscv64-static

if [ "${1:-}" = "--unit-tests" ]; then
    shift
    for arch in "$@"; do
        triple=$(triple_of "$arch")
        echo "== unit tests for $arch under qemu-user"
        cargo test --locked --lib --target "$triple"
    done
    exit 0
fi

for arch in "${@:-x86_64}"; do
    triple=$(triple_of "$arch")
    cargo build --locked --release --target "$triple"
    bin="target/$triple/release/edge-ecli"
    size=$(stat -c %s "$bin")
    file "$bin" | grep -q "statically linked" || { echo "$bin is not statically linked: $(file "$bin")" >&2; exit 1; }
    if readelf -d "$bin" 2>/dev/null | grep -q "Dynamic section"; then
        echo "$bin has a dynamic section" >&2; exit 1
    fi
    echo "$arch: $bin $size bytes (static)"
    [ "$size" -le "$max" ] || { echo "$bin is larger than 3 MiB" >&2; exit 1; }
done
