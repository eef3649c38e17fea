#!/usr/bin/env bash
# The one command that runs every test on a fresh machine of this kind (Debian, root, BPF
# kernel with BTF). It does all set-up itself: apt packages, rustup targets, tracefs/bpffs.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
for p in clang-19 llvm-19 lld-19 bpftool libbpf-dev musl-tools gcc wasi-libc libclang-rt-19-dev-wasm32 \
    iproute2 gcc-aarch64-linux-gnu gcc-riscv64-linux-gnu cpio file; do
    dpkg -s "$p" >/dev/null 2>&1 || need_pkgs+=("$p")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
    echo "== installing ${need_pkgs[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi
# QEMU: this kind of machine ships qemu-utils from bookworm-backports, which breaks bookworm's
# qemu-system packages; take them from backports too.
qemu_pkgs=()
for p in qemu-system-x86 qemu-system-arm qemu-system-misc qemu-user-static; do
    dpkg -s "$p" >/dev/null 2>&1 || qemu_pkgs+=("$p")
done
if [ ${#qemu_pkgs[@]} -gt 0 ]; then
    echo "== installing ${qemu_pkgs[*]}"
    if grep -qs bookworm /etc/os-release && ! grep -rqs bookworm-backports /etc/apt/sources.list.d /etc/apt/sources.list; then
        printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
            > /etc/apt/sources.list.d/edge-ecli-backports.sources
    fi
    apt-get update -qq
    if grep -qs bookworm /etc/os-release; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports "${qemu_pkgs[@]}" >/dev/null
    else
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${qemu_pkgs[@]}" >/dev/null
    fi
fi
for t in x86_64-unknown-linux-musl aarch64-unknown-linux-musl riscv64gc-unknown-linux-gnu wasm32-wasip1; do
    rustup target list --installed | grep -qx "$t" || rustup target add "$t"
done

# Tracepoints need tracefs; pinned objects need bpffs. Mount them when missing.
if [ "$(id -u)" = 0 ]; then
    [ -d /sys/kernel/tracing/events ] || mount -t tracefs none /sys/kernel/tracing || true
    mountpoint -q /sys/fs/bpf || mount -t bpf none /sys/fs/bpf || true
fi

echo "== static release binaries"
bash targets/build.sh x86_64 aarch64 riscv64

echo "== tests"
cargo test --locked -- --test-threads=2

echo "== kernel and Wasm tests against the static release binary"
EDGE_ECLI_BIN="$PWD/target/x86_64-unknown-linux-musl/release/edge-ecli" cargo test --locked --test kernel --test wasm --test core_btf

echo "== unit tests of aarch64 and riscv64 under qemu-user"
bash targets/build.sh --unit-tests aarch64 riscv64

echo "== full-system QEMU guests: x86_64, aarch64, riscv64 (JIT on and off)"
bash targets/qemu/run.sh x86_64 aarch64 riscv64
