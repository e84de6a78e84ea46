//! Dom0 (`target/images/dom0`) boots, introduces itself and powers the machine off.

use tests::{on_both_hypervisors, Boot, Status};

on_both_hypervisors! {
    /// The hypervisor logs (`(XEN) ` lines), Dom0 prints its banner, the run ends
    /// with Dom0's poweroff.
    fn dom0_boots_prints_banner_and_powers_off(hv) {
        let out = Boot::new(hv).dom0_image("dom0").run();
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
}
