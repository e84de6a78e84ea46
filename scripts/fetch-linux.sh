#!/usr/bin/env bash
# Provide Debian's stock Linux 6.1 (a Xen PV kernel nobody here wrote) and a
# tiny busybox initramfs at .cache/linux/, the same way fetch-xen.sh provides
# Xen 4.17: `apt-get download` + `dpkg -x`, nothing else downloaded, nothing
# committed. Idempotent.
#
#   .cache/linux/vmlinuz        the kernel's bzImage (XZ payload, CONFIG_XEN_PV=y)
#   .cache/linux/initrd.cpio    busybox /init: mounts proc and sysfs, prints
#                               "linux-init: reached /init" and what
#                               /sys/hypervisor says, then powers off
#   .cache/linux/busybox        busybox-static's binary (for other initramfs)
#   .cache/linux/modules/       the kernel's modules an initramfs needs for a
#                               disk: xen-blkfront and ext4 with what they
#                               depend on; load-order lists them, dependencies
#                               first (Debian 12's are plain .ko, busybox's
#                               insmod loads them)
#   .cache/linux/version        the two package files it came from
#
#   scripts/fetch-linux.sh          # prints the directory on stdout
#   scripts/fetch-linux.sh --help
set -euo pipefail
cd "$(dirname "$0")/.."

case ${1:-} in
-h|--help)
    echo "Usage: scripts/fetch-linux.sh [--help]"
    echo
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
    exit 0 ;;
esac

cache=.cache/linux
if [ -s "$cache/vmlinuz" ] && [ -s "$cache/initrd.cpio" ] && [ -s "$cache/busybox" ] && [ -s "$cache/modules/load-order" ]; then
    echo "fetch-linux: $cache already present" >&2
    echo "$cache"
    exit 0
fi

sudo=
[ "$(id -u)" -eq 0 ] || sudo=sudo
mkdir -p "$cache"
work=$(realpath "$(mktemp -d "$cache/fetch.XXXXXX")")
trap 'rm -rf "$work"' EXIT
chmod 777 "$work"

# The newest linux-image-6.1.0-N-amd64-unsigned the package lists know.
pick_kernel() {
    apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64-unsigned$' 2>/dev/null |
        awk '{print $1}' | sort -t- -k4,4n | tail -n1
}
kpkg=$(pick_kernel)
if [ -z "$kpkg" ]; then
    echo "fetch-linux: apt-get update (package lists missing or stale)" >&2
    $sudo apt-get update -qq >&2
    kpkg=$(pick_kernel)
fi
[ -n "$kpkg" ] || { echo "fetch-linux: no linux-image-6.1.0-*-amd64-unsigned in the package lists" >&2; exit 1; }

for pkg in "$kpkg" busybox-static; do
    echo "fetch-linux: apt-get download $pkg" >&2
    (cd "$work" && apt-get download "$pkg") >&2
done
for deb in "$work"/*.deb; do
    dpkg -x "$deb" "$work/root"
done
vmlinuz=$(ls "$work"/root/boot/vmlinuz-* | head -n1)
busybox=$work/root/bin/busybox
[ -x "$busybox" ] || { echo "fetch-linux: no bin/busybox in busybox-static" >&2; exit 1; }

# The initramfs: busybox and an /init script.
rd=$work/initrd
mkdir -p "$rd/bin" "$rd/proc" "$rd/sys" "$rd/dev"
cp "$busybox" "$rd/bin/busybox"
cat > "$rd/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
echo "linux-init: reached /init"
echo "linux-init: hypervisor type $(cat /sys/hypervisor/type 2>/dev/null)"
echo "linux-init: hypervisor version $(cat /sys/hypervisor/version/major 2>/dev/null).$(cat /sys/hypervisor/version/minor 2>/dev/null)"
echo "linux-init: powering off"
poweroff -f
INIT
chmod 755 "$rd/init"
# busybox's own cpio writes the newc archive: nothing more to install.
(cd "$rd" && find . | "$busybox" cpio -o -H newc) > "$work/initrd.cpio" 2>/dev/null

# The modules a disk needs, with their dependencies. The package has no
# modules.dep (depmod writes it at install time): each module names what it
# needs in its .modinfo section (`depends=a,b`), which is what depmod reads.
moddir=$(ls -d "$work"/root/lib/modules/* | head -n1)
mods=$work/modules
mkdir -p "$mods"
: > "$mods/load-order"
add_module() {
    local name=$1 ko dep
    grep -qx "$name.ko" "$mods/load-order" && return 0
    ko=$(find "$moddir/kernel" \( -name "$name.ko*" -o -name "${name//_/-}.ko*" -o -name "${name//-/_}.ko*" \) | head -n1)
    case $ko in
    "") echo "fetch-linux: module $name not in $kpkg" >&2; exit 1 ;;
    *.ko) ;;
    *) echo "fetch-linux: $ko: compressed modules need an insmod that unpacks them" >&2; exit 1 ;;
    esac
    for dep in $(grep -ao 'depends=[a-z0-9_,-]*' "$ko" | head -n1 | sed 's/^depends=//; s/,/ /g'); do
        add_module "$dep"
    done
    cp "$ko" "$mods/$name.ko"
    echo "$name.ko" >> "$mods/load-order"
}
# crc32c_generic: ext4 and jbd2 ask the crypto API for crc32c (by name, so
# no `depends=`) when a filesystem has metadata checksums.
for m in xen-blkfront crc32c_generic ext4; do
    add_module "$m"
done

cp "$vmlinuz" "$work/vmlinuz" && mv "$work/vmlinuz" "$cache/vmlinuz"
mv "$work/initrd.cpio" "$cache/initrd.cpio"
cp "$busybox" "$work/busybox.bin" && mv "$work/busybox.bin" "$cache/busybox"
rm -rf "$cache/modules.old"
[ ! -d "$cache/modules" ] || mv "$cache/modules" "$cache/modules.old"
mv "$mods" "$cache/modules"
rm -rf "$cache/modules.old"
(cd "$work" && ls *.deb) > "$cache/version"
echo "fetch-linux: ready: $cache ($(tr '\n' ' ' < "$cache/version"))" >&2
echo "$cache"
