#!/usr/bin/env bash
# Provide real Xen 4.17 as the differential oracle at .cache/xen/xen.bin.
#
# Debian's xen-hypervisor-4.17-amd64 package carries boot/xen-4.17-amd64.gz, the
# Multiboot-loadable hypervisor; QEMU's -kernel boots it directly. Idempotent:
# does nothing when .cache/xen/xen.bin is already there. Needs apt-get (as root)
# the first time only.
#
#   scripts/fetch-xen.sh          # prints the path of xen.bin on stdout
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
    -h|--help)
        cat <<'EOF'
Usage: scripts/fetch-xen.sh

Provide real Xen 4.17 (the differential oracle) at .cache/xen/xen.bin and
print its path on stdout. Downloads Debian's xen-hypervisor-4.17-amd64 with
apt-get download (apt-get update first if needed; as root or through sudo)
and unpacks it; does nothing when .cache/xen/xen.bin is already there.

  -h, --help   this text
EOF
        exit 0 ;;
    "") ;;
    *) echo "fetch-xen: unknown argument $1 (see --help)" >&2; exit 2 ;;
esac

pkg=xen-hypervisor-4.17-amd64
cache=.cache/xen
bin=$cache/xen.bin

if [ -s "$bin" ]; then
    echo "fetch-xen: $bin already present" >&2
    echo "$bin"
    exit 0
fi

mkdir -p "$cache"
work=$(mktemp -d "$cache/fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
# apt-get download writes as the unprivileged _apt user where it can.
chmod 777 "$work"

sudo=
[ "$(id -u)" -eq 0 ] || sudo=sudo

download() { (cd "$work" && apt-get download "$pkg") >&2; }

echo "fetch-xen: apt-get download $pkg" >&2
if ! download; then
    # A fresh machine has no package lists yet.
    echo "fetch-xen: apt-get update (package lists missing or stale)" >&2
    $sudo apt-get update -qq >&2
    download
fi

deb=$(ls "$work"/${pkg}_*.deb)
echo "fetch-xen: dpkg -x $(basename "$deb")" >&2
dpkg -x "$deb" "$work/root"
gz=$(ls "$work"/root/boot/xen-4.17*-amd64.gz 2>/dev/null | head -n1)
[ -n "$gz" ] || { echo "fetch-xen: no boot/xen-4.17-amd64.gz in $deb" >&2; exit 1; }
echo "fetch-xen: zcat $(basename "$gz") > $bin" >&2
zcat "$gz" > "$work/xen.bin"
mv "$work/xen.bin" "$bin"
# Keep the package version next to it for the record.
basename "$deb" > "$cache/version"
echo "fetch-xen: ready: $bin ($(cat "$cache/version"))" >&2
echo "$bin"
