#!/usr/bin/env bash
# Make Dom0's disk: a sparse file with an MBR and one FAT32 partition, where
# Dom0 keeps its guests' disk images as files (see docs/block.md). The host
# reads it with mtools (`mdir -i PATH@@1M ::`) or a loop mount.
#
#   scripts/make-disk.sh PATH [SIZE]    # SIZE as truncate takes it, default 4G
set -euo pipefail

usage() {
    cat <<'EOS'
Usage: scripts/make-disk.sh PATH [SIZE]

Create Dom0's disk at PATH: a sparse file of SIZE (default 4G, at least
100M; truncate's suffixes K, M, G), an MBR with one FAT32 partition from
1 MiB on (type 0x0c, label XENCORE; 32 KiB clusters from 4G on), formatted with
mkfs.fat (dosfstools, installed through apt-get when missing). Refuses
to touch an existing file.

  -h, --help   this text
EOS
}

case "${1:-}" in
    -h|--help) usage; exit 0 ;;
    "") usage >&2; exit 2 ;;
esac
path=$1 size=${2:-4G}
[ $# -le 2 ] || { echo "make-disk: too many arguments (see --help)" >&2; exit 2; }
[ ! -e "$path" ] || { echo "make-disk: $path exists already" >&2; exit 2; }
command -v mkfs.fat >/dev/null || "$(dirname "$0")/ensure-qemu.sh"

truncate -s "$size" "$path"
bytes=$(stat -c %s "$path")
if [ "$bytes" -lt $((100 << 20)) ] || [ "$bytes" -gt $((2000 << 30)) ]; then
    rm -f "$path"
    echo "make-disk: $size: a disk is 100M to 2000G" >&2
    exit 2
fi
start=2048 count=$((bytes / 512 - 2048))
le32() { printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($1 & 255)) $(($1 >> 8 & 255)) $(($1 >> 16 & 255)) $(($1 >> 24 & 255)); }
# Partition entry 1 at byte 446: not bootable, CHS "beyond 8 GiB", FAT32 LBA.
printf "\\x00\\xfe\\xff\\xff\\x0c\\xfe\\xff\\xff$(le32 $start)$(le32 $count)" |
    dd of="$path" bs=1 seek=446 conv=notrunc status=none
printf '\x55\xaa' | dd of="$path" bs=1 seek=510 conv=notrunc status=none
# 32 KiB clusters (fewer FAT entries to walk) where FAT32 still gets the
# 65,525 clusters it needs, from 4 GiB on; mkfs.fat's choice below that.
spc=()
[ "$bytes" -lt $((4 << 30)) ] || spc=(-s 64)
mkfs.fat -F 32 ${spc[@]+"${spc[@]}"} -n XENCORE --offset $start "$path" $((count / 2)) >/dev/null
echo "make-disk: $path: $((bytes >> 20)) MiB, FAT32 from 1 MiB on" >&2
