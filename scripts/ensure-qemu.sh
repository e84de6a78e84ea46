#!/usr/bin/env bash
# Make sure qemu-system-x86_64 is installed, and the disk tools Dom0's disk
# needs (qemu-img, mtools, mkfs.fat): installs Debian's qemu-system-x86,
# qemu-utils, mtools and dosfstools with apt-get when one is missing (as
# root, or through sudo). Idempotent.
#
#   scripts/ensure-qemu.sh
set -euo pipefail

case "${1:-}" in
    -h|--help)
        cat <<'EOF'
Usage: scripts/ensure-qemu.sh

Make sure qemu-system-x86_64 is installed, and the tools for Dom0's disk
(qemu-img, mtools, mkfs.fat/fsck.fat): when one is missing, install
Debian's qemu-system-x86, qemu-utils, mtools, dosfstools with apt-get (as
root or through sudo; apt-get update first if needed). Does nothing when
they are all there.

  -h, --help   this text
EOF
        exit 0 ;;
    "") ;;
    *) echo "ensure-qemu: unknown argument $1 (see --help)" >&2; exit 2 ;;
esac

# command -> Debian package
missing=()
for pair in qemu-system-x86_64:qemu-system-x86 qemu-img:qemu-utils mcopy:mtools mkfs.fat:dosfstools; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin:/sbin command -v "${pair%%:*}" >/dev/null 2>&1 ||
        missing+=("${pair#*:}")
done
[ ${#missing[@]} -gt 0 ] || exit 0

sudo=
[ "$(id -u)" -eq 0 ] || sudo=sudo
export DEBIAN_FRONTEND=noninteractive
echo "ensure-qemu: missing: apt-get install ${missing[*]}" >&2
if ! $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2; then
    # A fresh machine has no package lists yet.
    echo "ensure-qemu: apt-get update" >&2
    $sudo apt-get update -qq >&2
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
command -v qemu-system-x86_64 >/dev/null
echo "ensure-qemu: $(qemu-system-x86_64 --version | head -n1)" >&2
