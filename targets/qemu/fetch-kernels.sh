#!/usr/bin/env bash
# Downloads the current Debian trixie kernels with BTF and BPF for the QEMU guests, under a
# private apt state (the system's apt is not touched), and extracts their images:
#   targets/qemu/fetch-kernels.sh OUTDIR      -> OUTDIR/{amd64,arm64,riscv64}.vmlinuz
# The package is resolved from the meta-package each time: versions change.
set -euo pipefail
out=${1:?usage: fetch-kernels.sh OUTDIR}
mkdir -p "$out"
out=$(realpath "$out")
state="$out/apt"
mkdir -p "$state/lists/partial" "$state/cache/archives/partial" "$state/sources" "$state/prefs" "$state/debs"
touch "$state/status" "$state/empty.list"
mirror=$( (awk '/^URIs:/ {print $2}' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | grep debian | head -1) || true)
mirror=${mirror:-http://deb.debian.org/debian}
cat > "$state/sources/trixie.sources" <<SRC
Types: deb
URIs: $mirror
Suites: trixie
Components: main
Architectures: amd64 arm64 riscv64
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
opts=(-o "Dir::State=$state" -o "Dir::State::Lists=$state/lists" -o "Dir::State::status=$state/status"
      -o "Dir::Cache=$state/cache" -o "Dir::Etc::SourceList=$state/empty.list" -o "Dir::Etc::SourceParts=$state/sources"
      -o "Dir::Etc::PreferencesParts=$state/prefs" -o "APT::Architecture=amd64"
      -o "APT::Sandbox::User=root" -o "APT::Architectures::=amd64" -o "APT::Architectures::=arm64" -o "APT::Architectures::=riscv64")
fresh=$(find "$state/lists" -maxdepth 1 -name '*trixie*Packages*' -mmin -1440 | head -1)
[ -n "$fresh" ] || apt-get "${opts[@]}" update -qq
for pair in amd64:linux-image-cloud-amd64 arm64:linux-image-cloud-arm64 riscv64:linux-image-riscv64; do
    arch=${pair%%:*}; meta=${pair#*:}
    [ -s "$out/$arch.vmlinuz" ] && continue
    pkg=$(apt-cache "${opts[@]}" depends "$meta:$arch" | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    [ -n "$pkg" ] || { echo "cannot resolve $meta for $arch" >&2; exit 1; }
    pkg=${pkg%%:*}
    (cd "$state/debs" && apt-get "${opts[@]}" download -qq "$pkg:$arch")
    deb=$(ls "$state/debs/${pkg}_"*"_$arch.deb" | head -1)
    tmp=$(mktemp -d)
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" --wildcards './boot/vmlinu*'
    cp "$(ls "$tmp"/boot/vmlinu* | head -1)" "$out/$arch.vmlinuz"
    echo "$arch: $pkg -> $out/$arch.vmlinuz ($(stat -c %s "$out/$arch.vmlinuz") bytes)" >&2
    echo "$pkg" > "$out/$arch.version"
    rm -rf "$tmp" "$deb"
done
