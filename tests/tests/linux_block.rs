//! Debian's stock Linux 6.1 as a DomU of our Dom0 uses a disk that our
//! blkback serves: its initramfs loads `xen-blkfront` and ext4 (Debian's
//! own modules, fetched by scripts/fetch-linux.sh), finds `/dev/xvda`,
//! makes a filesystem on it (busybox's `mke2fs`; ext4's driver mounts
//! ext2), writes a file, reads it back and reboots; Dom0's `xl` restarts
//! the guest with the same disk and the second boot finds the file. On
//! xen-core and on Xen 4.17, the same Dom0.

use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tests::{guest_archive, linux_disk_modules, newc_archive, on_both_hypervisors, Boot, Hypervisor, Outcome, Status};

/// The initramfs's /init. The marker to write comes on the kernel's
/// command line (`marker=`), so a file left by another run cannot pass.
const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
say() { echo "linux-blk: $*"; }
fail() { say "FAILED: $*"; poweroff -f; }
marker=$(sed -n 's/.*marker=\([^ ]*\).*/\1/p' /proc/cmdline)
for m in $(cat /lib/modules/load-order); do
    insmod /lib/modules/$m || fail "insmod $m"
done
say "modules loaded"
i=0
while [ ! -b /dev/xvda ] && [ $i -lt 600 ]; do
    if [ -r /sys/block/xvda/dev ]; then
        IFS=: read major minor < /sys/block/xvda/dev
        mknod /dev/xvda b $major $minor
    fi
    sleep 0.1
    i=$((i + 1))
done
[ -b /dev/xvda ] || fail "no /dev/xvda"
say "xvda has $(cat /sys/block/xvda/size) sectors"
mkdir -p /mnt
if ! mount -t ext4 /dev/xvda /mnt 2>/dev/null; then
    say "no filesystem on xvda: mke2fs"
    mke2fs -q /dev/xvda || fail "mke2fs"
    mount -t ext4 /dev/xvda /mnt || fail "mount after mke2fs"
fi
say "mounted xvda"
if [ -f /mnt/marker ]; then
    say "found the file: $(cat /mnt/marker)"
    umount /mnt || fail "umount"
    say "powering off"
    poweroff -f
fi
echo "$marker" > /mnt/marker || fail "write"
sync
echo 3 > /proc/sys/vm/drop_caches
say "read back: $(cat /mnt/marker)"
umount /mnt || fail "umount"
say "rebooting"
reboot -f
"#;

/// Linux under TCG takes 10-60 s to its /init, and boots twice here.
fn timeout() -> Duration {
    let base: u64 = std::env::var("XEN_CORE_TEST_TIMEOUT").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    Duration::from_secs(base.max(60) * 5)
}

/// The initramfs: busybox, the modules and /init, in directories Linux's
/// unpacker needs to exist before their files.
fn initramfs() -> Vec<u8> {
    let (busybox, modules) = linux_disk_modules();
    let order: String = modules.iter().map(|(m, _)| format!("{m}\n")).collect();
    let paths: Vec<String> = modules.iter().map(|(m, _)| format!("lib/modules/{m}")).collect();
    let mut entries: Vec<(&str, u32, &[u8])> = vec![
        ("bin", 0o040755, b""),
        ("dev", 0o040755, b""),
        ("proc", 0o040755, b""),
        ("sys", 0o040755, b""),
        ("lib", 0o040755, b""),
        ("lib/modules", 0o040755, b""),
        ("bin/busybox", 0o100755, &busybox),
        ("init", 0o100755, INIT.as_bytes()),
        ("lib/modules/load-order", 0o100644, order.as_bytes()),
    ];
    for ((_, data), path) in modules.iter().zip(&paths) {
        entries.push((path, 0o100644, data));
    }
    newc_archive(&entries)
}

/// Our Dom0 with Debian's bzImage, the initramfs above and a config with a
/// disk: `xl create`, then serve consoles until the guest has powered off
/// (its reboot restarts it, as `on_reboot = "restart"` says).
fn linux_with_a_disk(hv: Hypervisor, marker: &str) -> Outcome {
    let (kernel, _) = tests::linux_images();
    let cfg = format!(
        "name = \"linux\"\n\
         kernel = \"vmlinuz\"\n\
         ramdisk = \"initrd-blk.cpio\"\n\
         memory = 192\n\
         disk = [ 'format=raw, vdev=xvda, access=rw, target=linuxdisk' ]\n\
         on_reboot = \"restart\"\n\
         on_poweroff = \"preserve\"\n\
         extra = \"console=hvc0 marker={marker}\"\n"
    );
    let files = [
        ("vmlinuz", std::fs::read(kernel).expect("vmlinuz")),
        ("initrd-blk.cpio", initramfs()),
        ("guests/linux.cfg", cfg.into_bytes()),
    ];
    // One archive per hypervisor: both tests run in one process at once,
    // each with its own marker.
    let archive = guest_archive(&format!("linux-block-{}", hv.name().replace(' ', "-")), &files);
    Boot::new(hv)
        .dom0_image("dom0")
        .module(&archive, "")
        .dom0_cmdline("xl=\"create guests/linux.cfg; wait; destroy linux\"")
        .mem(512)
        .dom0_mem("176M")
        .append("smap=0")
        .timeout(timeout())
        .run()
}

fn markers<'a>(out: &'a Outcome, name: &str) -> Vec<&'a str> {
    tests::guest_markers(out, name, "linux-blk: ")
}

on_both_hypervisors! {
    /// First boot: blkfront connects to our blkback (persistent grants,
    /// indirect requests, flushes carrying data), mke2fs and ext4 write
    /// through it, the file reads back after the page cache is dropped;
    /// Linux reboots (SCHEDOP_shutdown reboot), Dom0 builds it again with
    /// the same image, and the second boot mounts the filesystem and
    /// finds the file.
    fn linux_domu_writes_a_file_on_xvda_and_finds_it_after_a_reboot(hv) {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let marker = format!("m{}-{}", std::process::id(), nanos);
        let out = linux_with_a_disk(hv, &marker);
        let found = format!("linux-blk: found the file: {marker}");
        let read_back = format!("linux-blk: read back: {marker}");
        let expected = [
            "linux-blk: modules loaded",
            "linux-blk: xvda has 16384 sectors",
            "linux-blk: no filesystem on xvda: mke2fs",
            "linux-blk: mounted xvda",
            &read_back,
            "linux-blk: rebooting",
            "linux-blk: modules loaded",
            "linux-blk: xvda has 16384 sectors",
            "linux-blk: mounted xvda",
            &found,
            "linux-blk: powering off",
        ];
        assert_eq!(markers(&out, "linux"), expected, "Linux DomU's /init lines differ:\n{}", out.tail(120));
        assert!(out.lines().any(|l| l.starts_with("xl: domain linux (1) has shut down, reason code 1 (reboot): action restart")), "{}", out.tail(40));
        assert!(out.lines().any(|l| l.contains("blkback: domain 1 vbd 51712 connected: image linuxdisk, 16384 sectors, read-write, persistent grants")), "{}", out.tail(40));
        assert!(out.lines().any(|l| l.contains("blkback: domain 2 vbd 51712 connected: image linuxdisk")), "{}", out.tail(40));
        assert!(out.lines().any(|l| l.contains("has shut down, reason code 0 (poweroff)")), "{}", out.tail(40));
        out.assert_status(Status::PoweredOff);
    }
}
