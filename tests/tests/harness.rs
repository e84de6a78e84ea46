//! The harness itself, checked with a PV kernel of a page of assembly
//! (`tests/fixtures/probe-kernel.S`) that needs nothing of this project: it
//! prints one line, then powers off, reboots, crashes, or takes a #GP. On Xen
//! 4.17 this pins down the log lines the harness maps to statuses; on xen-core it
//! is the smallest foreign PV kernel there is.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

use tests::{on_both_hypervisors, repo_root, Boot, Hypervisor, Status};

/// Assemble and link the probe kernel for `mode` (once per process and mode).
fn probe_kernel(mode: u32) -> PathBuf {
    static BUILT: Mutex<Vec<u32>> = Mutex::new(Vec::new());
    let root = repo_root();
    let dir = root.join("target/fixtures");
    let out = dir.join(format!("probe-kernel-{mode}"));
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !built.contains(&mode) {
        std::fs::create_dir_all(&dir).expect("create target/fixtures");
        // Link to a name of this process, then rename: other test processes may
        // be reading the previous file.
        let tmp = dir.join(format!("probe-kernel-{mode}.{}", std::process::id()));
        let fixtures = root.join("tests/fixtures");
        let status = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
            .args(["-nostdlib", "-static", "-no-pie", "-Wl,--build-id=none", "-Wl,--no-warn-rwx-segments"])
            .arg(format!("-Wl,-T,{}", fixtures.join("probe-kernel.ld").display()))
            .arg(format!("-DMODE={mode}"))
            .arg("-o")
            .arg(&tmp)
            .arg(fixtures.join("probe-kernel.S"))
            .status()
            .expect("run cc");
        assert!(status.success(), "cc failed to build the probe kernel: {status}");
        std::fs::rename(&tmp, &out).expect("rename probe kernel");
        built.push(mode);
    }
    out
}

fn probe(hv: Hypervisor, mode: u32) -> tests::Outcome {
    let out = Boot::new(hv).dom0(probe_kernel(mode)).dom0_cmdline("probe=1 list=a,b").run();
    out.assert_guest_line("probe: hello");
    // The module's command line reaches start_info without the module's path.
    out.assert_guest_line("probe: cmdline=probe=1 list=a,b");
    out
}

on_both_hypervisors! {
    fn probe_poweroff_ends_the_run_powered_off(hv) {
        probe(hv, 0).assert_status(Status::PoweredOff);
    }

    fn probe_reboot_ends_the_run_with_reboot(hv) {
        probe(hv, 1).assert_status(Status::Reboot);
    }

    fn probe_shutdown_crash_ends_the_run_crashed(hv) {
        probe(hv, 3).assert_status(Status::Crashed);
    }

    fn probe_unhandled_gp_crashes_dom0_not_the_hypervisor(hv) {
        let out = probe(hv, 9);
        out.assert_status(Status::Crashed);
        out.assert_hypervisor_line("reporting vector 13 (#GP)", |l| {
            l.contains("#GP") || l.contains("vec 13") || l.contains("vector 13")
        });
    }
}

#[test]
fn timeout_kills_qemu_and_says_so() {
    // Xen needs about a second to boot Dom0: 200 ms ends the run first.
    let out = Boot::xen()
        .dom0(probe_kernel(0))
        .timeout(std::time::Duration::from_millis(200))
        .run();
    out.assert_status(Status::Timeout);
}
