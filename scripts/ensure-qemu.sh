#!/usr/bin/env bash
# Make sure qemu-system-x86_64 is installed: installs Debian's qemu-system-x86
# with apt-get when it is missing (as root, or through sudo). Idempotent.
#
#   scripts/ensure-qemu.sh
set -euo pipefail

case "${1:-}" in
    -h|--help)
        cat <<'EOF'
Usage: scripts/ensure-qemu.sh

Make sure qemu-system-x86_64 is installed: when it is missing, install
Debian's qemu-system-x86 with apt-get (as root or through sudo; apt-get
update first if needed). Does nothing when QEMU is already there.

  -h, --help   this text
EOF
        exit 0 ;;
    "") ;;
    *) echo "ensure-qemu: unknown argument $1 (see --help)" >&2; exit 2 ;;
esac

if command -v qemu-system-x86_64 >/dev/null 2>&1; then
    exit 0
fi

sudo=
[ "$(id -u)" -eq 0 ] || sudo=sudo
export DEBIAN_FRONTEND=noninteractive
echo "ensure-qemu: qemu-system-x86_64 missing: apt-get install qemu-system-x86" >&2
if ! $sudo apt-get install -y -qq --no-install-recommends qemu-system-x86 >&2; then
    # A fresh machine has no package lists yet.
    echo "ensure-qemu: apt-get update" >&2
    $sudo apt-get update -qq >&2
    $sudo apt-get install -y -qq --no-install-recommends qemu-system-x86 >&2
fi
command -v qemu-system-x86_64 >/dev/null
echo "ensure-qemu: $(qemu-system-x86_64 --version | head -n1)" >&2
