#!/usr/bin/env bash
# The one command that runs every test on a fresh machine of this kind (Debian, root, BPF
# kernel with BTF). It does all set-up itself: apt packages, rustup targets, tracefs/bpffs.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
for p in clang-19 llvm-19 lld-19 bpftool libbpf-dev musl-tools gcc wasi-libc libclang-rt-19-dev-wasm32 iproute2; do
    dpkg -s "$p" >/dev/null 2>&1 || need_pkgs+=("$p")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
    echo "== installing ${need_pkgs[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi
for t in x86_64-unknown-linux-musl wasm32-wasip1; do
    rustup target list --installed | grep -qx "$t" || rustup target add "$t"
done

# Tracepoints need tracefs; pinned objects need bpffs. Mount them when missing.
if [ "$(id -u)" = 0 ]; then
    [ -d /sys/kernel/tracing/events ] || mount -t tracefs none /sys/kernel/tracing || true
    mountpoint -q /sys/fs/bpf || mount -t bpf none /sys/fs/bpf || true
fi

echo "== static release binary"
bash targets/build.sh x86_64

echo "== tests"
cargo test --locked -- --test-threads=2

echo "== kernel and Wasm tests against the static release binary"
EDGE_ECLI_BIN="$PWD/target/x86_64-unknown-linux-musl/release/edge-ecli" cargo test --locked --test kernel --test wasm
