//! Split block devices: Dom0's blkback serves an image in its memory to a
//! guest's blkfront (pv-rt) over `io/blkif.h`, connected through the
//! XenbusState handshake in XenStore.

use tests::{guest_archive, image, Boot, Outcome, Status};

fn cfg(name: &str, extra: &str, disk: &str) -> Vec<u8> {
    format!("name=\"{name}\"\nkernel=\"pv-guest-kernel\"\nmemory=16\nextra=\"{extra}\"\ndisk = [ '{disk}' ]\n").into_bytes()
}

fn run(boot: Boot, tag: &str, cfgs: &[(&str, &str, &str)], script: &str) -> Outcome {
    let kernel = std::fs::read(image("pv-guest-kernel")).expect("guest image");
    let mut files = vec![("pv-guest-kernel", kernel)];
    let names: Vec<String> = cfgs.iter().map(|(n, ..)| format!("guests/{n}.cfg")).collect();
    for ((name, extra, disk), path) in cfgs.iter().zip(&names) {
        files.push((path.as_str(), cfg(name, extra, disk)));
    }
    let archive = guest_archive(tag, &files);
    boot.dom0_image("dom0").module(&archive, "").dom0_cmdline(&format!("xl=\"{script}\"")).icount().run()
}

const IMG1: &str = "format=raw, vdev=xvda, access=rw, target=img1";

/// A guest writes a pattern to xvda and is destroyed; a new guest reads the
/// same pattern back; one that expects another pattern sees the difference.
fn pattern_survives_the_guest(boot: Boot, tag: &str) {
    let out = run(
        boot,
        tag,
        &[
            ("w", "workload=blk-write pattern=7", IMG1),
            ("r", "workload=blk-read pattern=7", IMG1),
            ("other", "workload=blk-read pattern=8", IMG1),
        ],
        "create w; wait w; create r; wait r; create other; wait other",
    );
    out.assert_status(Status::PoweredOff);
    out.assert_guest_line("[w] blk: xvda connected: 16384 sectors, info 0");
    out.assert_guest_line("[w] blk: wrote 64 sectors of pattern 7");
    out.assert_guest_line("[w] Test result: SUCCESS");
    out.assert_guest_line("[r] blk: read 64 sectors of pattern 7: same");
    out.assert_guest_line("[r] Test result: SUCCESS");
    out.assert_guest_line("[other] blk: read 64 sectors of pattern 8: DIFFERENT");
}

#[test]
fn a_pattern_written_to_xvda_is_read_back_by_a_new_guest_on_xen_core() {
    pattern_survives_the_guest(Boot::xen_core(), "blk-core");
}

#[test]
fn a_pattern_written_to_xvda_is_read_back_by_a_new_guest_on_xen() {
    pattern_survives_the_guest(Boot::xen(), "blk-xen");
}

/// A hostile frontend gets error responses, is halted when its producer
/// index lies, and Dom0, the back end and the next guest keep working.
#[test]
fn a_hostile_frontend_gets_errors_and_others_keep_working() {
    let out = run(
        Boot::xen_core(),
        "blk-hostile",
        &[("bad", "workload=blk-hostile", IMG1), ("w", "workload=blk-write pattern=3", IMG1), ("r", "workload=blk-read pattern=3", IMG1)],
        "create bad; wait bad; create w; wait w; create r; wait r",
    );
    out.assert_status(Status::PoweredOff);
    let checks: Vec<&str> = out.guest_lines().into_iter().filter(|l| l.starts_with("[bad] check ")).collect();
    assert_eq!(checks.len(), 8, "the hostile checks ran\n{}", out.tail(40));
    assert!(checks.iter().all(|l| l.ends_with(" ok")), "{checks:#?}");
    out.assert_guest_line("blkback: domain 1 vbd 51712: frontend's ring indices are bogus; halting it");
    out.assert_guest_line("[r] blk: read 64 sectors of pattern 3: same");
}

/// One image is read-write for one guest at a time.
#[test]
fn an_image_in_use_read_write_is_refused_to_a_second_guest() {
    let idle = "workload=grant-offer peer=0 timeout=0";
    let out = run(
        Boot::xen_core(),
        "blk-excl",
        &[("a", idle, IMG1), ("b", idle, IMG1), ("c", idle, "format=raw, vdev=xvda, access=ro, target=img1"), ("d", idle, "target=img2")],
        "create a; create b; create c; create d; list",
    );
    out.assert_status(Status::PoweredOff);
    out.assert_guest_line("xl: cannot create domain 'b': disk xvda: image img1 is in use by domain 1");
    out.assert_guest_line("xl: cannot create domain 'c': disk xvda: image img1 is in use by domain 1 read-write");
    assert!(out.guest_lines().iter().any(|l| l.starts_with("d ")), "another image is fine\n{}", out.tail(20));
}
