#!/usr/bin/env bash
# Builds edge-ecli's container image for amd64, arm64 and riscv64 as one image index, offline
# (deploy/Containerfile is FROM scratch: nothing is pulled, nothing runs at build time), from
# the static binaries of `targets/build.sh x86_64 aarch64 riscv64`:
#
#   targets/image.sh [NAME]     NAME defaults to localhost/edge-ecli:VERSION (Cargo.toml)
#
# The index is in podman's storage under NAME and in target/edge-ecli-image.oci.tar (an OCI
# archive: `skopeo copy --all oci-archive:target/edge-ecli-image.oci.tar docker://REG/edge-ecli:V`
# publishes it; `podman load` or `ctr import` puts it on a node).
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
name=${1:-localhost/edge-ecli:$version}
out=target/edge-ecli-image.oci.tar
for triple in x86_64-unknown-linux-musl aarch64-unknown-linux-musl riscv64gc-unknown-linux-musl; do
    [ -x "target/$triple/release/edge-ecli" ] || {
        echo "target/$triple/release/edge-ecli is missing: bash targets/build.sh x86_64 aarch64 riscv64" >&2
        exit 1
    }
done
podman manifest rm "$name" >/dev/null 2>&1 || podman rmi -f "$name" >/dev/null 2>&1 || true
podman manifest create "$name" >/dev/null
for pair in amd64:x86_64-unknown-linux-musl arm64:aarch64-unknown-linux-musl riscv64:riscv64gc-unknown-linux-musl; do
    arch=${pair%%:*}
    triple=${pair#*:}
    podman build --quiet --network=none --platform "linux/$arch" --build-arg "TARGET=$triple" \
        -f deploy/Containerfile --manifest "$name" . >/dev/null
    echo "linux/$arch: target/$triple/release/edge-ecli"
done
rm -f "$out"
podman manifest push --quiet --all "$name" "oci-archive:$out:$name"
echo "$name: $out ($(stat -c %s "$out") bytes)"
