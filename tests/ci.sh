#!/usr/bin/env bash
# The one command that runs every test on a fresh machine of this kind (Debian, root, BPF
# kernel with BTF). It does all set-up itself (tests/setup.sh), then: format and lint gates,
# the three static binaries, the tests (one binary, tests/all), a short run of every fuzz target, the kernel-facing tests again
# against the static release binary, the foreign arches' unit tests under qemu-user, and the
# full-system QEMU guests.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/setup.sh

echo "== format and lints"
cargo fmt --check
cargo fmt --check --manifest-path fuzz/Cargo.toml
cargo clippy --locked --all-targets -- -D warnings

echo "== static release binaries"
bash targets/build.sh x86_64 aarch64 riscv64

echo "== tests"
cargo test --locked -- --test-threads=2

echo "== fuzz targets: a short run of each (fuzz/run.sh; the campaign's figures are in the README)"
SMOKE_SECS=5 bash fuzz/run.sh smoke

echo "== kernel-facing tests against the static release binary"
EDGE_ECLI_BIN="$PWD/target/x86_64-unknown-linux-musl/release/edge-ecli" \
    cargo test --locked --test all -- --test-threads=2 kernel:: kernel_btf:: wasm:: core_btf:: examples::

echo "== unit tests of aarch64 and riscv64 under qemu-user"
bash targets/build.sh --unit-tests aarch64 riscv64

echo "== full-system QEMU guests: x86_64, aarch64, riscv64 (JIT on and off), and two x86_64 kernels"
echo "   built here without BTF (cached by source and config: targets/qemu/build-kernels.sh)"
bash targets/qemu/run.sh x86_64 aarch64 riscv64 nobtf noringbuf
