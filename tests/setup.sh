#!/usr/bin/env bash
# Machine set-up for the tests, on a fresh Debian machine of this kind (root, a BPF kernel with
# BTF): apt packages, QEMU, rustup targets, tracefs and bpffs. Idempotent; tests/ci.sh calls it.
set -euo pipefail

apt_install() { # packages...
    local need=()
    for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
    [ ${#need[@]} -eq 0 ] && return 0
    echo "== installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
}

apt_install clang-19 llvm-19 lld-19 bpftool libbpf-dev musl-tools gcc wasi-libc \
    libclang-rt-19-dev-wasm32 iproute2 gcc-aarch64-linux-gnu gcc-riscv64-linux-gnu cpio file \
    util-linux coreutils \
    docker-registry skopeo minisign apache2-utils python3-cryptography openssl \
    podman runc prometheus systemtap-sdt-dev \
    zsh fish groff-base man-db systemd bsdutils curl
# The QEMU kernels without BTF (targets/qemu/build-kernels.sh): Debian's 6.1 source, its build
# tools, and pahole for the BTF an operator would make for them.
apt_install linux-source-6.1 make flex bison bc libelf-dev libssl-dev dwarves xz-utils

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
for c in clippy rustfmt; do
    rustup component list --installed | grep -q "^$c" || rustup component add "$c"
done
# The release binaries are built with nightly's -Zbuild-std (targets/build.sh says why): it
# needs the library sources and, for x86_64, the musl self-contained objects; aarch64 and
# riscv64 link with zig, which carries musl for both.
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
rustup component list --toolchain nightly --installed | grep -q '^rust-src' || rustup component add rust-src --toolchain nightly
rustup target list --toolchain nightly --installed | grep -qx x86_64-unknown-linux-musl || rustup target add x86_64-unknown-linux-musl --toolchain nightly
# The fuzz targets (fuzz/run.sh) are built and run by cargo-fuzz on nightly.
cargo +nightly fuzz --version >/dev/null 2>&1 || cargo +nightly install cargo-fuzz --locked --version 0.13.2
python3 -m ziglang version >/dev/null 2>&1 || python3 -m pip install -q "ziglang==0.17.1"
# The Kubernetes manifests are validated offline against the API's schemas (the deploy tests
# also read them with its PyYAML); runc runs the image, since crun refuses a hybrid cgroup tree.
command -v kubernetes-validate >/dev/null 2>&1 || python3 -m pip install -q "kubernetes-validate==1.37.0"
# The daemon's tests start their own services; Debian starts prometheus and the registry.
systemctl disable --now prometheus docker-registry >/dev/null 2>&1 || true

# Tracepoints need tracefs; pinned objects need bpffs. Mount them when missing.
if [ "$(id -u)" = 0 ]; then
    [ -d /sys/kernel/tracing/events ] || mount -t tracefs none /sys/kernel/tracing || true
    mountpoint -q /sys/fs/bpf || mount -t bpf none /sys/fs/bpf || true
fi
