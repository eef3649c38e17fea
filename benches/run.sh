#!/usr/bin/env bash
# The one command for every benchmark: builds the static x86_64 binary, then runs
# benches/events.rs against it and the libbpf baseline in the same run, printing a table of
# ratios (edge-ecli / baseline), and benches/daemon.rs (the daemon against separate `run`
# processes), benches/native.rs (the objects of Debian's libbpf-tools through edge-ecli beside
# the native tools), and benches/idle.sh (steady RSS and CPU tracing a few events per second).
# Needs root and a BPF kernel; tests/ci.sh's packages.
#   bash benches/run.sh            EDGE_BENCH_EVENTS=N to change the 2 M events per run
set -euo pipefail
cd "$(dirname "$0")/.."
bash targets/build.sh x86_64
EDGE_ECLI_BIN="$PWD/target/x86_64-unknown-linux-musl/release/edge-ecli" cargo bench --locked --bench events
EDGE_ECLI_BIN="$PWD/target/x86_64-unknown-linux-musl/release/edge-ecli" cargo bench --locked --bench daemon
EDGE_ECLI_BIN="$PWD/target/x86_64-unknown-linux-musl/release/edge-ecli" cargo bench --locked --bench native
bash benches/idle.sh
