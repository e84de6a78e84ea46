//! Split block devices: Dom0's blkback serves an image in its memory to a
//! guest's blkfront (pv-rt) over `io/blkif.h`, connected through the
//! XenbusState handshake in XenStore.

use tests::{Boot, Outcome, Status};

/// A config; `disk` empty: none, else a `disk=` entry, or whole extra
/// lines when it starts with a newline.
fn run(boot: Boot, tag: &str, cfgs: &[(&str, &str, &str)], script: &str) -> Outcome {
    tests::run_disk_guests(boot.icount(), tag, cfgs, script)
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
            ("r", "workload=blk-read pattern=7 persistent=0", IMG1),
            ("other", "workload=blk-read pattern=8", IMG1),
        ],
        "create w; wait w; create r; wait r; create other; wait other",
    );
    out.assert_status(Status::PoweredOff);
    out.assert_guest_line("[w] blk: xvda connected: 16384 sectors, info 0, persistent grants yes");
    out.assert_guest_line("blkback: domain 1 vbd 51712 connected: image img1, 16384 sectors, read-write, persistent grants");
    out.assert_guest_line("[r] blk: xvda connected: 16384 sectors, info 0, persistent grants no");
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
    assert_eq!(checks.len(), 9, "the hostile checks ran\n{}", out.tail(40));
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
        "create a; create b; create c; create d; list|xl_keep_going",
    );
    out.assert_status(Status::PoweredOff);
    out.assert_guest_line("xl: cannot create domain 'b': disk xvda: image img1 is in use by domain 1");
    out.assert_guest_line("xl: cannot create domain 'c': disk xvda: image img1 is in use by domain 1 read-write");
    assert!(out.guest_lines().iter().any(|l| l.starts_with("d ")), "another image is fine\n{}", out.tail(20));
}

/// `xl block-attach` to a running guest (its frontend waits for the
/// device), `block-list`, `block-detach` (refused while the frontend does
/// not close, forced with `-f`); config keys that are not understood are
/// warned about, `vif` says networking is not offered.
#[test]
fn xl_block_attach_list_detach_and_config_warnings() {
    let idle = "workload=grant-offer peer=0 timeout=0";
    let out = run(
        Boot::xen_core(),
        "blk-xl",
        &[
            ("w", "workload=blk-write pattern=5", ""),
            ("idle", idle, "\nvif = [ 'bridge=xenbr0' ]\ncolour = \"blue\"\n"),
            ("r", "workload=blk-read pattern=5", "vdev=xvda, target=img9"),
        ],
        "create w; block-attach w 'format=raw, vdev=xvda, access=rw, target=img9'; block-list w; wait w; \
         create idle; block-attach idle vdev=xvdb access=ro target=img9; block-list idle; block-detach idle xvdb; \
         block-detach -f idle xvdb; block-list idle; create r; wait r|xl_keep_going",
    );
    out.assert_status(Status::PoweredOff);
    let lines = out.guest_lines();
    out.assert_guest_line("[w] blk: wrote 64 sectors of pattern 5");
    assert!(lines.iter().any(|l| l.starts_with("51712 0   51712 ")), "block-list shows xvda\n{}", out.tail(40));
    out.assert_guest_line("guests/idle.cfg: warning: line 6: vif: networking is not offered yet; the guest gets no network interface");
    out.assert_guest_line("guests/idle.cfg: warning: line 7: unknown or unsupported key 'colour' ignored");
    assert!(lines.iter().any(|l| l.starts_with("51728 0   51728 ")), "block-list shows xvdb\n{}", out.tail(40));
    out.assert_guest_line("xl: block-detach: the frontend of xvdb did not close within 5 s; 'xl block-detach -f' removes it anyway");
    let last_list = lines.iter().rposition(|l| l.ends_with("block-list idle")).unwrap();
    assert!(!lines[last_list..].iter().any(|l| l.starts_with("51728 ")), "detached\n{}", out.tail(40));
    out.assert_guest_line("[r] blk: read 64 sectors of pattern 5: same");
}
