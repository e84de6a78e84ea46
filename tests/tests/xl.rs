//! The Dom0 toolstack on xen-core: `xl` commands given on Dom0's command
//! line (`xl="cmd; cmd"`), guests from the cpio archive in Dom0's initrd,
//! their console output relayed by Dom0 as `[name] line`.

use tests::{guest_archive, image, Boot, Outcome, Status};

fn guest_cfg(name: &str, extra: &str) -> Vec<u8> {
    format!("name=\"{name}\"\nkernel=\"pv-guest-kernel\"\nmemory=16\nvcpus=1\nextra=\"{extra}\"\n").into_bytes()
}

fn xl(tag: &str, cfgs: &[(&str, &str)], script: &str) -> Outcome {
    let kernel = std::fs::read(image("pv-guest-kernel")).expect("guest image");
    let mut files = vec![("pv-guest-kernel", kernel)];
    let names: Vec<String> = cfgs.iter().map(|(n, _)| format!("guests/{n}.cfg")).collect();
    for ((name, extra), path) in cfgs.iter().zip(&names) {
        files.push((path.as_str(), guest_cfg(name, extra)));
    }
    let archive = guest_archive(tag, &files);
    // -icount: Dom0's `sleep`s and the guests' progress are measured in the
    // same (instruction) time, whatever else the host is doing.
    Boot::xen_core()
        .dom0_image("dom0")
        .module(&archive, "")
        .dom0_cmdline(&format!("xl=\"{script}\""))
        .icount()
        .run()
}

#[test]
fn xl_creates_lists_and_destroys_a_guest_whose_console_reaches_dom0() {
    let out = xl("create", &[("g1", "workload=banner")], "create guests/g1.cfg on_poweroff=preserve; wait g1; list; destroy g1");
    out.assert_status(Status::PoweredOff);
    out.assert_guest_line("[g1] pv-guest-kernel: Xen PV kernel 0.1.0");
    out.assert_guest_line("[g1] workload: banner");
    assert!(out.guest_lines().iter().any(|l| l.starts_with("Domain-0 ")), "xl list shows Dom0\n{}", out.tail(30));
    assert!(out.guest_lines().iter().any(|l| l.starts_with("g1 ")), "xl list shows g1\n{}", out.tail(30));
    out.assert_hypervisor_line("destroying the guest", |l| l.contains("Destroyed domain 1"));
}

#[test]
fn a_crashing_guest_is_reported_to_dom0_and_removed_while_others_run() {
    let idle = String::from_utf8(std::fs::read(tests::repo_root().join("guests/idle.cfg")).expect("idle.cfg")).unwrap();
    let extra = idle.lines().find_map(|l| l.strip_prefix("extra = \"")).map(|e| e.trim_end_matches('"').to_string()).unwrap();
    let out = xl("crash", &[("bad", "workload=privop"), ("idle", &extra)], "create guests/idle.cfg; create guests/bad.cfg; wait bad; list; destroy idle");
    out.assert_status(Status::PoweredOff);
    out.assert_hypervisor_line("reporting the crash", |l| l.contains("Domain 2 crashed"));
    out.assert_hypervisor_line("removing it", |l| l.contains("Destroyed domain 2"));
    let listed: Vec<&str> = out.guest_lines().into_iter().filter(|l| l.starts_with("idle ") || l.starts_with("bad ")).collect();
    assert_eq!(listed.len(), 1, "only idle is left after the crash: {listed:?}\n{}", out.tail(30));
    assert!(listed[0].starts_with("idle "), "{listed:?}");
}

#[test]
fn xl_refuses_unknown_names_and_bad_configs_clearly() {
    let out = xl("errors", &[("g1", "workload=banner")], "create guests/nope.cfg; destroy ghost; pause 99");
    out.assert_status(Status::PoweredOff);
    // Script mode echoes each command, so the names alone prove nothing:
    // each command must print its own error line, and nothing was created.
    out.assert_guest_line("xl: config file 'guests/nope.cfg' not found in Dom0's initrd (try 'ls')");
    out.assert_guest_line("xl: 'ghost' is not a domain name or id");
    out.assert_guest_line("xl: there is no domain with id 99");
    assert!(
        !out.hypervisor_lines().iter().any(|l| l.contains("Created domain") || l.contains("Destroyed domain")),
        "no domain was created or destroyed\n{}",
        out.tail(30)
    );
}

/// 1,000 guests created, run and destroyed in a row leave the host's free
/// memory exactly where it was (`xl info` before and after).
#[test]
fn a_thousand_guests_created_and_destroyed_leave_free_memory_unchanged() {
    let kernel = std::fs::read(image("pv-guest-kernel")).expect("guest image");
    let idle = std::fs::read(tests::repo_root().join("guests/idle.cfg")).expect("guests/idle.cfg");
    let archive = guest_archive("thousand", &[("pv-guest-kernel", kernel), ("guests/idle.cfg", idle)]);
    let out = Boot::xen_core()
        .dom0_image("dom0")
        .module(&archive, "")
        .dom0_cmdline("xl=\"info; repeat -q 1000 'create idle; sleep 0.02; destroy idle'; list; info\"")
        .icount()
        .timeout(std::time::Duration::from_secs(300))
        .run();
    out.assert_status(Status::PoweredOff);
    out.assert_guest_line("repeat: 1000/1000");
    let free: Vec<&str> = out.guest_lines().into_iter().filter(|l| l.starts_with("free_memory")).collect();
    assert_eq!(free.len(), 2, "two xl info reports\n{}", out.tail(20));
    assert_eq!(free[0], free[1], "free memory before and after");
    out.assert_hypervisor_line("the thousandth guest destroyed", |l| l.contains("Destroyed domain 1000"));
}

/// The grant demo: two guests find each other (`${domid:NAME}`), share a
/// page through the grant table and talk over an event channel; the
/// accepting guest also checks what it must not be able to do. Both succeed.
#[test]
fn two_guests_talk_over_a_granted_page_and_an_event_channel() {
    let kernel = std::fs::read(image("pv-guest-kernel")).expect("guest image");
    let cfg = |n: &str| std::fs::read(tests::repo_root().join(format!("guests/{n}.cfg"))).expect("guest config");
    let archive = guest_archive(
        "demo",
        &[("pv-guest-kernel", kernel), ("guests/offer.cfg", cfg("offer")), ("guests/accept.cfg", cfg("accept"))],
    );
    let out = Boot::xen_core()
        .dom0_image("dom0")
        .module(&archive, "")
        .dom0_cmdline("xl=\"create offer; create accept; wait accept; sleep 1; list; destroy offer; list\"")
        .icount()
        .timeout(std::time::Duration::from_secs(120))
        .run();
    out.assert_status(Status::PoweredOff);
    out.assert_guest_line("[offer] Test result: SUCCESS");
    out.assert_guest_line("[accept] Test result: SUCCESS");
    let failed: Vec<&str> = out.guest_lines().into_iter().filter(|l| l.contains("check ") && l.ends_with(" FAIL")).collect();
    assert!(failed.is_empty(), "{failed:#?}");
}
