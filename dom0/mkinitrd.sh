#!/usr/bin/env bash
# Pack guest kernels and xl configs into the cpio "newc" archive that Dom0
# reads from its initrd (what `cpio -o -H newc` writes; no cpio needed).
#
#   dom0/mkinitrd.sh OUT NAME=PATH [NAME=PATH ...]
#
# NAME is the path inside the archive, as xl commands name it, e.g.
#   dom0/mkinitrd.sh target/images/dom0-initrd \
#       pv-guest-kernel=target/images/pv-guest-kernel guests/g1.cfg=guests/g1.cfg
# then: scripts/run.sh --module target/images/dom0-initrd --dom0-cmdline 'xl="create g1; list"'
set -euo pipefail
export LC_ALL=C
usage() {
    cat <<'EOF'
Usage: dom0/mkinitrd.sh OUT NAME=PATH [NAME=PATH ...]

Write the cpio "newc" archive OUT that Dom0 reads from its initrd: each
PATH on the host is stored as NAME, the path xl commands use, e.g.
  dom0/mkinitrd.sh target/images/dom0-initrd \
      pv-guest-kernel=target/images/pv-guest-kernel guests/g1.cfg=guests/g1.cfg

  -h, --help   this text
EOF
}
case "${1:-}" in
    -h|--help) usage; exit 0 ;;
esac
[ $# -ge 1 ] || { usage >&2; exit 2; }
out=$1; shift
: > "$out"

pad() { head -c $(( (4 - $1 % 4) % 4 )) /dev/zero >> "$out"; }

# entry NAME MODE [FILE]: a 110-byte header of 8-digit hex fields (ino, mode,
# uid, gid, nlink, mtime, filesize, dev major/minor, rdev major/minor,
# namesize, check), the NUL-terminated name padded to 4, the data padded to 4.
entry() {
    local name=$1 mode=$2 file=${3:-} size=0
    [ -n "$file" ] && size=$(stat -c %s "$file")
    local namesize=$(( ${#name} + 1 ))
    printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
        1 "$mode" 0 0 1 0 "$size" 0 0 0 0 "$namesize" 0 >> "$out"
    printf '%s\0' "$name" >> "$out"
    pad $(( 110 + namesize ))
    if [ -n "$file" ]; then
        cat "$file" >> "$out"
        pad "$size"
    fi
}

for arg in "$@"; do
    name=${arg%%=*} path=${arg#*=}
    [ "$name" != "$arg" ] && [ -n "$name" ] || { echo "$0: '$arg' is not NAME=PATH" >&2; exit 2; }
    [ -f "$path" ] || { echo "$0: no file $path" >&2; exit 2; }
    entry "$name" $(( 0100644 )) "$path"
done
entry 'TRAILER!!!' 0
