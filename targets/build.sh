#!/usr/bin/env bash
# Builds static release binaries: targets/build.sh [x86_64|aarch64|riscv64]...
# Each must be statically linked with no dynamic section, and at most 3 MiB.
#
# All three are musl (its resolver and everything else work on a bare node; static glibc needs
# its NSS libraries at run time for DNS). They are built with nightly's -Zbuild-std: std is
# rebuilt with this profile (opt-level "z") and without unwind tables (panic = "abort" never
# unwinds), which saves ~0.7 MB per binary and is what keeps HTTPS within the budget; without
# std's `backtrace` feature (cargo's default for build-std: symbolized backtraces need gimli,
# addr2line and an inflater, ~140 KB; a panic still prints its message and location); and
# rustup has no std at all for riscv64gc-unknown-linux-musl. The tests themselves run on the
# stable toolchain (rust-version). C code (ring) and the final link of aarch64 and riscv64 use
# zig (PyPI ziglang), which carries musl for both; x86_64 links with the musl rust-std ships.
# wasmi's tail-call dispatch is miscompiled at opt-level "z" on riscv64 by LLVM's machine
# outliner: it is turned off there.
#
#   targets/build.sh --unit-tests aarch64 riscv64   the library's unit tests under qemu-user
#                                                   (stable toolchain; riscv64 on its gnu target)
set -euo pipefail
cd "$(dirname "$0")/.."
max=$((3 * 1024 * 1024))
triple_of() {
    case "$1" in
        x86_64) echo x86_64-unknown-linux-musl ;;
        aarch64) echo aarch64-unknown-linux-musl ;;
        riscv64) echo riscv64gc-unknown-linux-musl ;;
        *) echo "unknown arch $1 (x86_64, aarch64, riscv64)" >&2; exit 2 ;;
    esac
}
# Non-PIE static: `file` says "statically linked" and there is no dynamic section at all.
static="-C target-feature=+crt-static -C relocation-model=static -C force-unwind-tables=no"
zigcc="$PWD/targets/zig-cc"

if [ "${1:-}" = "--unit-tests" ]; then
    shift
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=aarch64-linux-gnu-gcc
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUNNER=qemu-aarch64-static
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="-C target-feature=+crt-static"
    export CARGO_TARGET_RISCV64GC_UNKNOWN_LINUX_GNU_LINKER=riscv64-linux-gnu-gcc
    export CARGO_TARGET_RISCV64GC_UNKNOWN_LINUX_GNU_RUNNER=qemu-riscv64-static
    export CARGO_TARGET_RISCV64GC_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C target-feature=+crt-static -C llvm-args=-enable-machine-outliner=never"
    export CC_aarch64_unknown_linux_musl=aarch64-linux-gnu-gcc
    for arch in "$@"; do
        case "$arch" in
            aarch64) triple=aarch64-unknown-linux-musl ;;
            riscv64) triple=riscv64gc-unknown-linux-gnu ;;
            *) echo "unit tests run for aarch64 and riscv64" >&2; exit 2 ;;
        esac
        echo "== unit tests for $arch under qemu-user ($triple)"
        cargo test --locked --lib --target "$triple"
    done
    exit 0
fi

export CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="$static"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="$static -C link-self-contained=no"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER="$zigcc"
export CC_aarch64_unknown_linux_musl="$zigcc"
export CARGO_TARGET_RISCV64GC_UNKNOWN_LINUX_MUSL_RUSTFLAGS="$static -C link-self-contained=no -C llvm-args=-enable-machine-outliner=never"
export CARGO_TARGET_RISCV64GC_UNKNOWN_LINUX_MUSL_LINKER="$zigcc"
export CC_riscv64gc_unknown_linux_musl="$zigcc"

for arch in "${@:-x86_64}"; do
    triple=$(triple_of "$arch")
    # zig-cc learns the target from the name cargo gives the compiler or linker.
    export EDGE_ZIG_TARGET="${arch}-linux-musl"
    [ "$arch" = riscv64 ] && export EDGE_ZIG_TARGET=riscv64-linux-musl
    cargo +nightly build --locked --release --target "$triple" -Z build-std=std,panic_abort -Z build-std-features=
    bin="target/$triple/release/edge-ecli"
    size=$(stat -c %s "$bin")
    file "$bin" | grep -q "statically linked" || { echo "$bin is not statically linked: $(file "$bin")" >&2; exit 1; }
    if readelf -d "$bin" 2>/dev/null | grep -q "Dynamic section"; then
        echo "$bin has a dynamic section" >&2; exit 1
    fi
    echo "$arch: $bin $size bytes (static)"
    [ "$size" -le "$max" ] || { echo "$bin is larger than 3 MiB" >&2; exit 1; }
done
