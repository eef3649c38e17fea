#!/usr/bin/env bash
# Idle cost: steady RSS and CPU of edge-ecli and the libbpf baseline while tracing a few
# events per second (sigsnoop, 5 signals/s for 10 s). Uses the binaries and fixtures that
# `bash benches/run.sh` (or the tests) built; prints one line per consumer.
set -euo pipefail
cd "$(dirname "$0")/.."
F=target/tmp/fixtures
B=${EDGE_ECLI_BIN:-target/x86_64-unknown-linux-musl/release/edge-ecli}
[ -x "$F/baseline-consumer" ] && [ -f "$F/sigsnoop.bpf.o" ] || { echo "run bash benches/run.sh first (it builds $F)" >&2; exit 2; }
sleep 1000 & target=$!
trap 'kill $target 2>/dev/null || true' EXIT
measure() {
    local pid=$1 who=$2
    sleep 2
    local c0 c1
    c0=$(awk '{print $14+$15}' /proc/$pid/stat)
    for _ in $(seq 1 50); do kill -WINCH $target; sleep 0.2; done
    c1=$(awk '{print $14+$15}' /proc/$pid/stat)
    echo "$who: CPU $((c1 - c0)) ticks of $(getconf CLK_TCK)/s in 10 s;" \
        "$(grep -E 'VmRSS|RssAnon|VmHWM' /proc/$pid/status | tr -s ' \t' ' ' | tr '\n' ';')"
    kill -INT "$pid"
    wait "$pid" || true
}
"$B" run "$F/sigsnoop.bpf.o" > /dev/null 2>&1 &
measure $! edge-ecli
"$F/baseline-consumer" "$F/sigsnoop.bpf.o" sig_events > /dev/null 2>&1 &
measure $! baseline
