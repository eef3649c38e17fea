#!/usr/bin/env bash
# The fault soak (tests/all/soak.rs) for longer than CI's 10 s, with its figures:
#   bash tests/soak.sh [SECONDS]     (default 60; needs root and the test set-up)
set -euo pipefail
cd "$(dirname "$0")/.."
EDGE_SOAK_SECS=${1:-60} cargo test --release --locked --test all -- soak:: --nocapture 2>&1 |
    grep -E '^soak|^test |panicked'
