#!/usr/bin/env bash
# Builds the ready-to-run example packages from their sources, into examples/sigsnoop/:
#   sigsnoop.bpf.o   the kernel half (clang-19 -target bpf; self-contained, no vmlinux.h)
#   package.json     the eunomia package of it, with the doc comments (edge-ecli build)
#   sigsnoop.wasm    the whole tool as a Wasm app (examples/c/sigsnoop.c, wasi-libc)
# and examples/STAMP: the SHA-256 of every input and the compilers' versions, which the tests
# compare with the sources (a stale example fails them).
#   bash examples/build.sh [EDGE_ECLI_BINARY [OUT_DIR]]
# (default: builds target/release/edge-ecli; OUT_DIR: build there instead, without the STAMP,
# which is how the tests check that a rebuild gives the committed bytes)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-}
if [ -z "$bin" ]; then
    cargo build --release --locked >&2
    bin=target/release/edge-ecli
fi
src=examples/sigsnoop
out=${2:-$src}
mkdir -p "$out"
# What a user of ecc does: `ecc sigsnoop.bpf.c sigsnoop.h`. The prefix map keeps the checkout's
# path out of the object, so every checkout rebuilds the same bytes.
CLANG=clang-19 "$bin" build "$src/sigsnoop.bpf.c" "$src/sigsnoop.h" -o "$out/package.json" \
    --cflag -fdebug-prefix-map="$PWD"=.
rm -f "$out/sigsnoop.skel.h" # the C app embeds the object itself (examples/c/sigsnoop.c)
clang-19 --target=wasm32-wasi --sysroot=/usr -O2 -Wno-c23-extensions -Wl,--export-table -I sdk/c \
    -DSIGSNOOP_OBJ="\"$out/sigsnoop.bpf.o\"" examples/c/sigsnoop.c -o "$out/sigsnoop.wasm"
[ "$out" = "$src" ] || exit 0
inputs=(examples/build.sh "$src/sigsnoop.bpf.c" "$src/sigsnoop.h" examples/c/sigsnoop.c sdk/c/edge_bpf.h)
{
    echo "# examples/build.sh wrote this; the tests check it against the sources."
    echo "clang: $(clang-19 --version | head -n1)"
    sha256sum "${inputs[@]}"
} > examples/STAMP
echo "examples rebuilt: $out/{sigsnoop.bpf.o,package.json,sigsnoop.wasm}" >&2
