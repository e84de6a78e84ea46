//! Debian's stock Linux 6.1 (a Xen PV kernel nobody here wrote, fetched by
//! scripts/fetch-linux.sh with apt like Xen itself) boots from its bzImage,
//! with a busybox initramfs, on xen-core and on Xen 4.17, and both reach its
//! `/init` and say the same things about the hypervisor: as Dom0, and as a
//! DomU that our Dom0's `xl create` builds with `ramdisk=`.

use std::time::Duration;
use tests::{guest_archive, on_both_hypervisors, Boot, Hypervisor, Outcome, Status};

/// What /init prints (scripts/fetch-linux.sh writes it).
const MARKERS: [&str; 4] = [
    "linux-init: reached /init",
    "linux-init: hypervisor type xen",
    "linux-init: hypervisor version 4.17",
    "linux-init: powering off",
];

/// Linux under TCG takes 10-60 s to its /init; leave room for a loaded host.
fn timeout() -> Duration {
    let base: u64 = std::env::var("XEN_CORE_TEST_TIMEOUT").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    Duration::from_secs(base.max(60) * 3)
}

/// Linux as Dom0 with 512 MiB of a 1 GiB machine. `smap=0` on both
/// hypervisors: QEMU 7.2's TCG checks the frame a ring-3 `iretq` pops
/// against SMAP, and Linux's `sync_core` (an `iretq` to itself) then faults
/// on Xen 4.17 and on xen-core alike.
pub fn linux_dom0(hv: Hypervisor) -> Boot {
    let (kernel, initrd) = tests::linux_images();
    Boot::new(hv)
        .dom0(&kernel)
        .dom0_cmdline("console=hvc0 earlyprintk=xen")
        .module(&initrd, "")
        .mem(1024)
        .dom0_mem("512M")
        .append("smap=0")
        .timeout(timeout())
}

/// The DomU's configuration, as a user would write it for Xen's xl.
const LINUX_DOMU_CFG: &str = "name = \"linux\"\n\
kernel = \"vmlinuz\"\n\
ramdisk = \"initrd.cpio\"\n\
memory = 192\n\
extra = \"console=hvc0\"\n";

/// Our Dom0 with Debian's bzImage, the initramfs and the config in its
/// initrd runs `xl create` and waits for the guest. Dom0 gets 160 MiB: its
/// heap (sized from its RAM) must hold the unpacked kernel and the XZ
/// dictionary, about 95 MiB. `smap=0` as for Linux Dom0: the guest's own
/// `iretq` trips QEMU 7.2 TCG's SMAP check whoever built it.
pub fn linux_domu(hv: Hypervisor) -> Outcome {
    let (kernel, initrd) = tests::linux_images();
    let files = [
        ("vmlinuz", std::fs::read(kernel).expect("vmlinuz")),
        ("initrd.cpio", std::fs::read(initrd).expect("initrd.cpio")),
        ("guests/linux.cfg", LINUX_DOMU_CFG.as_bytes().to_vec()),
    ];
    let archive = guest_archive("linux-domu", &files);
    Boot::new(hv)
        .dom0_image("dom0")
        .module(&archive, "")
        .dom0_cmdline("xl=\"create guests/linux.cfg on_poweroff=preserve; wait linux; destroy linux\"")
        .mem(512)
        .dom0_mem("160M")
        .append("smap=0")
        .timeout(timeout())
        .run()
}

fn markers<'a>(out: &'a Outcome, name: &str) -> Vec<&'a str> {
    tests::guest_markers(out, name, "linux-init: ")
}

on_both_hypervisors! {
    /// The bzImage is unpacked by the hypervisor, Linux runs its early
    /// setup (MSRs, CPUID, page tables written through ptwr, vcpu_info and
    /// runstate areas, the machine's E820 and ACPI tables), mounts the
    /// initramfs and runs /init, which reads /sys/hypervisor and powers the
    /// machine off (`SCHEDOP_shutdown` after Linux's own shutdown).
    fn linux_dom0_reaches_its_initramfs_init_and_powers_off(hv) {
        let out = linux_dom0(hv).run();
        // xen-core: Linux's SCHEDOP_shutdown(poweroff). Xen 4.17 lets Dom0
        // enter ACPI S5 itself (platform_op enter_acpi_sleep, which xen-core
        // does not offer): QEMU then powers off with status 0.
        let acpi_s5 = out.status == Status::Other(0) && out.lines().any(|l| l.contains("Entering ACPI S5 state"));
        if !(hv == Hypervisor::Xen && acpi_s5) {
            out.assert_status(Status::PoweredOff);
        }
        // Hypervisor log lines (guest_loglvl=all) may land on the same
        // serial line as Linux's console output: take each marker from
        // where it starts to where a `(XEN)` line cuts in.
        let lines: Vec<&str> = out
            .lines()
            .filter_map(|l| l.find("linux-init: ").map(|i| &l[i..]))
            .map(|l| l.split("(XEN)").next().unwrap_or(l).trim_end())
            .collect();
        assert_eq!(lines, MARKERS, "Linux's /init lines differ:\n{}", out.tail(60));
        assert!(out.lines().any(|l| l.contains("Booting kernel on Xen") || l.contains("Booting paravirtualized kernel on Xen")), "{}", out.tail(20));
    }

    /// Dom0's builder unpacks the bzImage (XZ) with pv-image, maps the
    /// initramfs after the kernel (`start_info.mod_start`), and Linux as a
    /// DomU reaches /init from it and powers itself off.
    fn linux_domu_from_xl_create_with_a_ramdisk_reaches_its_init(hv) {
        let out = linux_domu(hv);
        out.assert_status(Status::PoweredOff);
        assert!(out.lines().any(|l| l.contains("xl: domain linux created")), "{}", out.tail(40));
        assert_eq!(markers(&out, "linux"), MARKERS, "Linux DomU's /init lines differ:\n{}", out.tail(80));
        // Linux asks for it (SCHEDOP_shutdown), Dom0 hears it from the hypervisor.
        assert!(out.lines().any(|l| l.starts_with("xl: domain linux (1) has shut down, reason code 0 (poweroff)")), "{}", out.tail(20));
        // libxl's control/feature-* nodes are the guest's to write.
        assert!(!out.lines().any(|l| l.contains("Error -13 writing feature-suspend")), "{}", out.tail(80));
    }
}
