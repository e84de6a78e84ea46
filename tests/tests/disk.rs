//! Dom0's real disk (`run.sh --disk`): a virtio-blk device QEMU backs with
//! a host file, a FAT filesystem on it holding raw and qcow2 images, served
//! to guests through blkback. Data a guest wrote and flushed survives the
//! guest, `kill -9` of QEMU and a new boot; the host opens the disk and the
//! images with its own tools (mtools, fsck.fat, qemu-img). On xen-core and
//! on Xen 4.17 with the same Dom0.

use std::path::{Path, PathBuf};
use std::process::Command;

use tests::{Boot, Outcome, Status};

fn run(boot: Boot, tag: &str, cfgs: &[(&str, &str, &str)], script: &str) -> Outcome {
    tests::run_disk_guests(boot, tag, cfgs, script)
}

fn host(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e} (scripts/ensure-qemu.sh installs qemu-utils, mtools, dosfstools)"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{cmd} {args:?} failed:\n{text}");
    text
}

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("xen-core-disk-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The bytes pv-guest-kernel's `blk-write pattern=N` puts in sector `s`.
fn pattern_sector(pattern: u8, s: u64) -> Vec<u8> {
    (0..512).map(|i| pattern.wrapping_mul(31).wrapping_add(s as u8).wrapping_add(i as u8)).collect()
}

fn assert_pattern(raw: &Path, pattern: u8) {
    let data = std::fs::read(raw).unwrap();
    for s in 0..64u64 {
        let got = &data[(s * 512) as usize..((s + 1) * 512) as usize];
        assert_eq!(got, &pattern_sector(pattern, s)[..], "sector {s} of {} on the host", raw.display());
    }
    assert!(data[64 * 512..].iter().all(|&b| b == 0), "the rest of {} reads as zeroes", raw.display());
}

const QCOW: &str = "format=qcow2, vdev=xvda, access=rw, target=img1";
const RAW: &str = "format=raw, vdev=xvda, access=rw, target=raw1";

fn survives_kill_and_restart(boot: fn() -> Boot, tag: &str) {
    let dir = scratch(tag);
    let disk = dir.join("disk.img");

    // First power-on: a guest tries Dom0's disk's ports and gets nothing;
    // make the images, write (each guest flushes), read back in a new
    // guest, then lose power: kill -9 once the reader is done.
    let out = run(
        boot().disk(&disk).kill_after("[r2] Test result"),
        &format!("{tag}-1"),
        &[
            ("io", "workload=ioport", ""),
            ("w", "workload=blk-write pattern=7", QCOW),
            ("r", "workload=blk-read pattern=7", QCOW),
            ("w2", "workload=blk-write pattern=5 persistent=0", RAW),
            ("r2", "workload=blk-read pattern=5", RAW),
        ],
        "create io; wait io; image-create img1 8M; image-create -f raw raw1 8M; image-list; create w; wait w; create r; wait r; create w2; wait w2; create r2; wait r2; sleep 600",
    );
    out.assert_status(Status::Other(-9));
    out.assert_guest_line("image img1: qcow2, 8M");
    out.assert_guest_line("image raw1: raw, 8M");
    // The guest's I/O privilege is virtual: no port or PCI function of the
    // machine answers it, and its writes reset nothing (the guests after
    // it use Dom0's disk).
    out.assert_guest_line("[io] ioport: PHYSDEVOP_set_iopl(1) = 0");
    out.assert_guest_line("[io] ioport: PCI configuration: 0 of 32 functions on bus 0 answered");
    out.assert_guest_line("[io] ioport: ports 0xc000-0xcfff: 0 of 1024 answered");
    out.assert_guest_line("[io] Test result: SUCCESS");
    out.assert_guest_line("blkback: domain 2 vbd 51712 connected: image img1, 16384 sectors, read-write, persistent grants");
    out.assert_guest_line("[w] blk: wrote 64 sectors of pattern 7");
    out.assert_guest_line("[r] blk: read 64 sectors of pattern 7: same");
    out.assert_guest_line("[w2] blk: wrote 64 sectors of pattern 5");
    out.assert_guest_line("[r2] blk: read 64 sectors of pattern 5: same");
    let found = out.serial.lines().find(|l| l.starts_with("virtio-blk: 0000:00:")).unwrap_or_else(|| panic!("Dom0 found no disk\n{}", out.tail(40)));
    assert!(found.contains(" I/O ports 0xc0") && found.contains("8388608 sectors (4096 MiB), flush"), "the disk's ports lie where [io] looked: {found}");

    // Second power-on, same disk: the images and their data are there.
    let out = run(
        boot().disk(&disk),
        &format!("{tag}-2"),
        &[
            ("r", "workload=blk-read pattern=7 persistent=0", QCOW),
            ("r2", "workload=blk-read pattern=5", RAW),
            ("other", "workload=blk-read pattern=8", QCOW),
            ("bad", "workload=blk-read pattern=7", "format=raw, vdev=xvda, target=img1"),
        ],
        "image-list; create r; wait r; create r2; wait r2; create other; wait other; create bad; \
         image-create -f raw gone 1M; image-rm gone; image-rm gone; image-create img1; image-list|xl_keep_going",
    );
    out.assert_status(Status::PoweredOff);
    out.assert_guest_line("xl: cannot create domain 'bad': disk xvda: image img1 is qcow2, not raw");
    out.assert_guest_line("image gone: raw, 1M");
    out.assert_guest_line("xl: image-rm: no image gone");
    out.assert_guest_line("xl: image-create: image img1 exists already");
    out.assert_guest_line("dom0: images on the disk: 2");
    out.assert_guest_line("[r] blk: read 64 sectors of pattern 7: same");
    out.assert_guest_line("[r2] blk: read 64 sectors of pattern 5: same");
    out.assert_guest_line("[other] blk: read 64 sectors of pattern 8: DIFFERENT");
    for from in [0, 1] {
        // The first listing and the last (after `gone` came and went).
        let start = out.serial.lines().enumerate().filter(|(_, l)| l.contains("xl> image-list")).nth(from).map(|(i, _)| i).unwrap();
        let list = out.serial.lines().skip(start).take(4).collect::<Vec<_>>().join("\n");
        assert!(list.contains("img1       qcow2         8M") && list.contains("raw1       raw           8M"), "{list}");
        assert!(!list.contains("gone"), "{list}");
    }

    // The host's tools: the filesystem is clean, the qcow2 is clean, both
    // images hold the patterns.
    let fat = format!("{}@@1M", disk.display());
    let listing = host("mdir", &["-i", &fat, "::"]);
    assert!(listing.contains("IMG1") && listing.contains("RAW1") && !listing.contains("GONE"), "{listing}");
    let part = dir.join("part.img");
    host("dd", &[&format!("if={}", disk.display()), &format!("of={}", part.display()), "bs=1M", "skip=1", "conv=sparse", "status=none"]);
    host("fsck.fat", &["-n", part.to_str().unwrap()]);
    let q = dir.join("img1.qcow2");
    host("mcopy", &["-o", "-i", &fat, "::IMG1.QCO", q.to_str().unwrap()]);
    let check = host("qemu-img", &["check", "-f", "qcow2", q.to_str().unwrap()]);
    assert!(check.contains("No errors were found"), "{check}");
    let qraw = dir.join("img1.raw");
    host("qemu-img", &["convert", "-f", "qcow2", "-O", "raw", q.to_str().unwrap(), qraw.to_str().unwrap()]);
    assert_pattern(&qraw, 7);
    let r = dir.join("raw1.raw");
    host("mcopy", &["-o", "-i", &fat, "::RAW1.RAW", r.to_str().unwrap()]);
    assert_pattern(&r, 5);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn flushed_writes_survive_kill_9_and_a_restart_on_xen_core() {
    survives_kill_and_restart(Boot::xen_core, "core");
}

#[test]
fn flushed_writes_survive_kill_9_and_a_restart_on_xen() {
    survives_kill_and_restart(Boot::xen, "xen");
}

/// A guest destroyed in the middle of its I/O (blk-bench writes and reads
/// for far longer than the 8 s it is given) leaves its qcow2 image
/// consistent for `qemu-img check`, Dom0 running, and the image free for
/// the next guest.
fn destroyed_during_io(boot: fn() -> Boot, tag: &str) {
    let dir = scratch(tag);
    let disk = dir.join("disk.img");
    let out = run(
        boot().disk(&disk),
        tag,
        &[
            ("busy", "workload=blk-bench iters=1000000 xs=1", "format=qcow2, vdev=xvda, target=busy"),
            ("w", "workload=blk-write pattern=9", "format=qcow2, vdev=xvda, target=busy"),
        ],
        "image-create busy 8M; create busy; sleep 8; destroy busy; image-list; create w; wait w",
    );
    out.assert_status(Status::PoweredOff);
    out.assert_guest_line("blkback: domain 1 vbd 51712 connected: image busy, 16384 sectors, read-write, persistent grants");
    assert!(!out.serial.contains("[busy] Test result"), "busy finished before it was destroyed\n{}", out.tail(30));
    // It had written (the file grew past the 256 KiB of a new image's
    // metadata) and is no longer used.
    let row = out.serial.lines().find(|l| l.starts_with("busy ")).unwrap_or_else(|| panic!("no image-list row\n{}", out.tail(30)));
    let cols: Vec<&str> = row.split_whitespace().collect();
    let bytes: u64 = cols[3].parse().unwrap();
    assert!(bytes > 256 << 10 && cols[4] == "-", "{row}");
    out.assert_guest_line("[w] blk: wrote 64 sectors of pattern 9");
    out.assert_guest_line("[w] Test result: SUCCESS");
    let q = dir.join("busy.qcow2");
    host("mcopy", &["-o", "-i", &format!("{}@@1M", disk.display()), "::BUSY.QCO", q.to_str().unwrap()]);
    let check = host("qemu-img", &["check", "-f", "qcow2", q.to_str().unwrap()]);
    assert!(check.contains("No errors were found"), "{check}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_guest_destroyed_during_io_leaves_its_qcow2_clean_on_xen_core() {
    destroyed_during_io(Boot::xen_core, "busy-core");
}

#[test]
fn a_guest_destroyed_during_io_leaves_its_qcow2_clean_on_xen() {
    destroyed_during_io(Boot::xen, "busy-xen");
}
