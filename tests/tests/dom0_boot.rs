//! Dom0 (`target/images/dom0`) boots, introduces itself and powers the machine off.

use tests::{on_both_hypervisors, Boot, Status};

on_both_hypervisors! {
    /// The hypervisor logs (`(XEN) ` lines), Dom0 prints its banner, the run ends
    /// with Dom0's poweroff (given an `xl` script, Dom0 runs it and powers
    /// off; without one it would wait at its prompt).
    fn dom0_boots_prints_banner_and_powers_off(hv) {
        let out = Boot::new(hv).dom0_image("dom0").dom0_cmdline("xl=\"list\"").run();
        out.assert_status(Status::PoweredOff);
        assert!(!out.hypervisor_lines().is_empty(), "no (XEN) lines in the serial log");
        let banner = out.banner_lines();
        assert!(
            banner.iter().any(|l| l.contains(": Xen PV kernel ")),
            "no '<name>: Xen PV kernel <version>' line; banner: {banner:#?}"
        );
        assert!(
            banner.iter().any(|l| l.starts_with("hypervisor: Xen ")),
            "no 'hypervisor: Xen <version>' line; banner: {banner:#?}"
        );
        assert!(
            banner.iter().any(|l| l.starts_with("start_info: magic=") && l.contains("xen-3.0-x86_64")),
            "no start_info magic line; banner: {banner:#?}"
        );
    }

    /// The module after Dom0 is Dom0's initial ramdisk: start_info's mod_len is
    /// its size in bytes.
    fn second_module_is_handed_to_dom0_as_initrd(hv) {
        let blob = tests::repo_root().join("tests/fixtures/probe-kernel.S");
        let len = std::fs::metadata(&blob).expect("fixture").len();
        let out = Boot::new(hv)
            .dom0_image("pv-guest-kernel")
            .dom0_cmdline("workload=banner")
            .module(&blob, "ignored=1")
            .run();
        out.assert_status(Status::PoweredOff);
        let line = out
            .banner_lines()
            .into_iter()
            .find(|l| l.starts_with("start_info: mod_start="))
            .unwrap_or_else(|| panic!("no start_info: mod_start= line\n{}", out.tail(20)));
        assert!(line.ends_with(&format!(" mod_len={len}")), "expected mod_len={len}: {line}");
        assert!(!line.starts_with("start_info: mod_start=0x0 "), "mod_start is 0: {line}");
    }
}

/// A fault in the hypervisor itself (the `debug_trap` option makes one) ends the
/// run with the panic status, after a report of registers and "Panic on CPU".
#[test]
fn hypervisor_fatal_trap_reports_and_ends_with_panic_status() {
    let out = Boot::xen_core().append("debug_trap").run();
    out.assert_status(Status::HypervisorPanic);
    out.assert_hypervisor_line("'Panic on CPU'", |l| l.starts_with("Panic on CPU"));
    out.assert_hypervisor_line("with the faulting RIP", |l| l.starts_with("RIP:"));
}
