#!/usr/bin/env bash
# Runs the fuzz targets (cargo-fuzz on the nightly toolchain, libFuzzer + AddressSanitizer).
#   bash fuzz/run.sh smoke [TARGET...]       a few seconds each: what tests/ci.sh runs
#   bash fuzz/run.sh runs N [TARGET...]      N executions each (the campaign: N=10000000;
#                                            FUZZ_MAX_SECS=S ends each after S seconds)
#   bash fuzz/run.sh minimize [TARGET...]    merge what a campaign found into fuzz/corpus
# The committed seeds (fuzz/corpus/TARGET) are copied to target/fuzz-corpus/TARGET, where
# libFuzzer adds what it finds; crashes land in fuzz/artifacts/TARGET and fail the run.
# Each run prints "TARGET: N runs, C crashes"; a campaign (`runs`) adds its line to
# fuzz/campaign.txt, with the time it took.
# FUZZ_SANITIZER=none builds without AddressSanitizer (about 10x the executions a second for
# the host ABI; panics, aborts, timeouts and memory limits are still caught, and edge-ecli's
# unsafe code is only its syscall layer).
set -euo pipefail
cd "$(dirname "$0")"
mode=${1:-smoke}
shift || true
n=
if [ "$mode" = runs ]; then
    n=$1
    shift
fi
all=(package kernel_btf flags wasm_host wasm_host_kernel oci signature http)
targets=("${@:-${all[@]}}")
[ $# -gt 0 ] || targets=("${all[@]}")

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo +nightly install cargo-fuzz --locked --version 0.13.2
fi
# The harness of the host ABI loads a real object: the sanitizers' allocator must be allowed
# to map the guest memory and the BPF maps; leaks of the fuzzer's own one-time state are not
# findings.
export ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1
san=()
[ -n "${FUZZ_SANITIZER:-}" ] && san=(-s "$FUZZ_SANITIZER")
for t in "${targets[@]}"; do
    cargo +nightly fuzz build -O "${san[@]}" "$t" >&2
done

for t in "${targets[@]}"; do
    work=../target/fuzz-corpus/$t
    mkdir -p "$work" "artifacts/$t"
    cp -n corpus/"$t"/* "$work"/ 2>/dev/null || true
    # A command line is short (ARG_MAX aside, a package's flags fit in a few KiB); the
    # decoders read files and bodies of any size.
    max_len=65536
    [ "$t" = flags ] && max_len=4096
    args=(-rss_limit_mb=4096 -timeout=20 -max_len=$max_len -artifact_prefix="artifacts/$t/" -print_final_stats=1)
    case $mode in
        smoke) args+=(-max_total_time=${SMOKE_SECS:-8}) ;;
        runs) args+=(-runs="$n" ${FUZZ_MAX_SECS:+-max_total_time=$FUZZ_MAX_SECS}) ;;
        minimize)
            rm -rf "corpus/$t.new" && mkdir "corpus/$t.new"
            cargo +nightly fuzz run -O "${san[@]}" "$t" "corpus/$t.new" "corpus/$t" "$work" -- -merge=1 2>/dev/null
            rm -rf "corpus/$t" && mv "corpus/$t.new" "corpus/$t"
            echo "$t: corpus of $(ls "corpus/$t" | wc -l) inputs, $(du -sk "corpus/$t" | cut -f1) KiB"
            continue ;;
        *) echo "usage: fuzz/run.sh smoke|runs N|minimize [TARGET...]" >&2; exit 2 ;;
    esac
    log=../target/fuzz-$t.log
    t0=$(date +%s)
    set +e
    cargo +nightly fuzz run -O "${san[@]}" "$t" "$work" -- "${args[@]}" >"$log" 2>&1
    rc=$?
    set -e
    secs=$(($(date +%s) - t0))
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    crashes=$(ls "artifacts/$t" | wc -l)
    echo "$t: ${runs:-?} runs, $crashes crashes, exit $rc"
    if [ "$mode" = runs ]; then
        echo "$(date -u +%F) $t: ${runs:-?} runs in ${secs} s, $crashes crashes, exit $rc, sanitizer ${FUZZ_SANITIZER:-address}" >>campaign.txt
    fi
    if [ "$rc" != 0 ] || [ "$crashes" != 0 ]; then
        tail -40 "$log" >&2
        exit 1
    fi
done
