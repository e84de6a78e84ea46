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
    Boot::xen_core()
        .dom0_image("dom0")
        .module(&archive, "")
        .dom0_cmdline(&format!("xl=\"{script}\""))
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
fn a_crashing_guest_is_reported_to_dom0_and_removed() {
    let out = xl("crash", &[("bad", "workload=privop")], "create guests/bad.cfg; list");
    out.assert_status(Status::PoweredOff);
    out.assert_hypervisor_line("reporting the crash", |l| l.contains("Domain 1 crashed"));
    out.assert_hypervisor_line("removing it", |l| l.contains("Destroyed domain 1"));
}

#[test]
fn xl_refuses_unknown_names_and_bad_configs_clearly() {
    let out = xl("errors", &[("g1", "workload=banner")], "create guests/nope.cfg; destroy ghost; pause 99");
    out.assert_status(Status::PoweredOff);
    let text = out.guest_lines().join("\n");
    assert!(text.contains("nope.cfg"), "names the missing config\n{text}");
    assert!(text.contains("ghost"), "names the unknown domain\n{text}");
}
