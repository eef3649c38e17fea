#!/usr/bin/env bash
# Builds static release binaries: targets/build.sh [x86_64]...
# Fails when a binary is not static or is larger than 3 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
max=$((3 * 1024 * 1024))
for arch in "${@:-x86_64}"; do
    case "$arch" in
        x86_64) triple=x86_64-unknown-linux-musl ;;
        *) echo "unknown arch $arch" >&2; exit 2 ;;
    esac
    # Non-PIE static: `file` says "statically linked" and there is no dynamic section at all.
    env_name="CARGO_TARGET_$(echo "$triple" | tr 'a-z-' 'A-Z_')_RUSTFLAGS"
    env "$env_name=-C target-feature=+crt-static -C relocation-model=static" \
        cargo build --locked --release --target "$triple"
    bin="target/$triple/release/edge-ecli"
    size=$(stat -c %s "$bin")
    file "$bin" | grep -q "statically linked" || { echo "$bin is not statically linked" >&2; exit 1; }
    if readelf -d "$bin" 2>/dev/null | grep -q "Dynamic section"; then
        echo "$bin has a dynamic section" >&2; exit 1
    fi
    echo "$arch: $bin $size bytes (static)"
    [ "$size" -le "$max" ] || { echo "$bin is larger than 3 MiB" >&2; exit 1; }
done
