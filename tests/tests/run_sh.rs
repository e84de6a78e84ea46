//! `scripts/run.sh` as a user runs it: Dom0's `xl>` prompt typed into
//! through a pseudo-terminal (util-linux `script` gives run.sh and QEMU a
//! real terminal, as an interactive shell would), and run.sh's exit
//! statuses, including a user's ^C-free ways out: Ctrl-A x, SIGTERM to
//! run.sh, a killed QEMU, the end of standard input.

use std::process::Command;
use std::thread;
use std::time::Duration;

use tests::repo_root;
use tests::run_sh::{signal, Run};

#[test]
fn typed_lines_during_sleep_queue_instead_of_nesting_and_ctrl_c_interrupts() {
    let mut run = Run::start(&[], true);
    run.wait_for("xl> ");
    // Sixteen sleeps typed while one runs used to nest sixteen deep and
    // overflow Dom0's stack.
    run.type_keys(b"sleep 100\r");
    for _ in 0..16 {
        run.type_keys(b"sleep 100\r");
    }
    thread::sleep(Duration::from_secs(2));
    // ^C reaches Dom0 (not QEMU): the sleep stops, the typed-ahead sleeps go.
    run.type_keys(b"\x03");
    run.wait_for("xl: sleep: interrupted");
    run.type_keys(b"list\r");
    run.wait_for("Domain-0 ");
    // Up recalls `list` (it used to type `[A`).
    run.type_keys(b"\x1b[A\r");
    run.wait_for_n("Domain-0 ", 2);
    // ^U drops what was typed; ^W a word; Left and an insert fix a typo.
    run.type_keys(b"garbage\x15destroy nobody\x17Domain-0\r");
    run.wait_for("destroy: not for Domain-0");
    run.type_keys(b"lst\x1b[D\x1b[Di\x1b[F Domain-0\r");
    run.wait_for_n("Domain-0 ", 3);
    // Ctrl-A x: QEMU's escape still leaves; run.sh says it was the user.
    run.type_keys(b"\x01x");
    let (st, text) = run.finish();
    assert_eq!(st.code(), Some(130), "{text}");
    assert!(text.contains("run: stopped by the user"), "{text}");
    assert!(!text.contains("unknown command"), "every key was understood\n{text}");
    assert!(!text.contains("crashed"), "{text}");
    assert_eq!(text.matches("xl: sleep: interrupted").count(), 1, "the queued sleeps never ran\n{text}");
}

#[test]
fn end_of_input_powers_dom0_off_and_run_sh_ends_with_0() {
    let mut run = Run::start(&[], false);
    run.stdin.take(); // like </dev/null
    let (st, text) = run.finish();
    assert!(text.contains("xl: end of input"), "{text}");
    assert!(text.contains("(XEN) Hardware Dom0 halted"), "{text}");
    assert_eq!(st.code(), Some(0), "{text}");
}

#[test]
fn piped_commands_run_in_order_and_the_end_of_the_pipe_ends_the_run() {
    let mut run = Run::start(&[], false);
    run.type_keys(b"sleep 1\nlist\ninfo\n");
    run.stdin.take();
    let (st, text) = run.finish();
    assert_eq!(st.code(), Some(0), "{text}");
    let list = text.find("Domain-0 ").expect("list ran");
    let info = text.find("xen_version").expect("info ran");
    assert!(list < info, "in the order given\n{text}");
}

#[test]
fn sigterm_to_run_sh_ends_qemu_and_exits_130() {
    let run = Run::start(&[], false);
    run.wait_for("xl> ");
    signal(run.child.id(), "-TERM");
    let (st, text) = run.finish();
    assert_eq!(st.code(), Some(130), "{text}");
    assert!(text.contains("run: stopped by the user (status 130)"), "{text}");
}

#[test]
fn a_killed_qemu_is_not_reported_as_a_power_off() {
    let pidfile = std::env::temp_dir().join(format!("xen-core-run-test-{}.pid", std::process::id()));
    let run = Run::start(&["--qemu", "-pidfile", "--qemu", pidfile.to_str().unwrap()], false);
    run.wait_for("xl> ");
    let pid: u32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    signal(pid, "-KILL");
    let (st, text) = run.finish();
    let _ = std::fs::remove_file(&pidfile);
    assert_eq!(st.code(), Some(130), "{text}");
    assert!(!text.contains("powered off"), "{text}");
}

#[test]
fn a_failing_xl_command_is_status_1_and_keep_going_runs_the_rest() {
    let (st, text) = Run::start(&["--xl", "create nosuch; list"], false).finish();
    assert_eq!(st.code(), Some(1), "{text}");
    assert!(!text.contains("Domain-0 "), "list did not run\n{text}");
    let (st, text) = Run::start(&["--keep-going", "--xl", "create nosuch; list"], false).finish();
    assert_eq!(st.code(), Some(1), "{text}");
    assert!(text.contains("Domain-0 "), "list ran\n{text}");
    let (st, text) = Run::start(&["--xl", "list"], false).finish();
    assert_eq!(st.code(), Some(0), "{text}");
}

#[test]
fn timeout_is_124_and_a_crashed_dom0_is_5() {
    let (st, text) = Run::start(&["--timeout", "3"], false).finish();
    assert_eq!(st.code(), Some(124), "{text}");
    // A Dom0 that takes a fault it has no handler for: crashed.
    let (st, text) = Run::start(&["--dom0", "target/images/pv-guest-kernel", "--dom0-cmdline", "workload=privop"], false).finish();
    assert_eq!(st.code(), Some(5), "{text}");
}

#[test]
fn help_does_no_work_and_a_dom0_larger_than_the_machine_is_refused() {
    for script in ["run.sh", "build.sh", "test.sh", "demo.sh"] {
        let out = Command::new("bash").arg(format!("scripts/{script}")).arg("--help").current_dir(repo_root()).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.starts_with("Usage: scripts/"), "{script} --help:\n{text}");
        // build.sh and test.sh print "build: images" / "==>" when they work.
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("build:") && !err.contains("==>"), "{script} --help did work:\n{err}");
    }
    let out = Command::new("bash").args(["scripts/run.sh", "--no-build", "--dom0-mem", "1G"]).current_dir(repo_root()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--dom0-mem 1G is not less than the machine's memory"));
    // A dry run names no temporary file that exists (or existed).
    let out = Command::new("bash").args(["scripts/run.sh", "--no-build", "--dry-run"]).current_dir(repo_root()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("xen-core-run.XXXXXX/guests.cpio"), "{text}");
    // --disk: a dry run names the device and makes no disk.
    let disk = std::env::temp_dir().join(format!("xen-core-dry-disk-{}.img", std::process::id()));
    let out = Command::new("bash")
        .args(["scripts/run.sh", "--no-build", "--dry-run", "--disk", disk.to_str().unwrap()])
        .current_dir(repo_root())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("file={}", disk.display())) && text.contains("virtio-blk-pci"), "{text}");
    assert!(!disk.exists(), "a dry run made {}", disk.display());
}

/// guests/mmu.cfg, the sample config that ended in FAILURE as a guest,
/// passes on both hypervisors.
#[test]
fn the_mmu_sample_guest_passes_on_xen_core_and_on_xen() {
    for hv in [&[][..], &["--xen"][..]] {
        let mut args = hv.to_vec();
        args.extend(["--xl", "create mmu on_poweroff=preserve; wait mmu"]);
        let (st, text) = Run::start(&args, false).finish();
        assert_eq!(st.code(), Some(0), "{args:?}\n{text}");
        assert!(text.contains("[mmu] Test result: SUCCESS"), "{args:?}\n{text}");
    }
}

/// `--guest` with a config naming its kernel by an absolute host path, as
/// XTF's configs do, and another naming it beside the config: run.sh
/// carries both kernels into Dom0's initrd and `xl create` finds them.
#[test]
fn guest_configs_bring_the_kernels_they_name() {
    let dir = std::env::temp_dir().join(format!("xen-core-guest-cfg-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("k")).unwrap();
    let kernel = repo_root().join("target/images/pv-guest-kernel");
    std::fs::copy(&kernel, dir.join("k/banner-kernel")).unwrap();
    let abs = dir.join("abs.cfg");
    std::fs::write(&abs, format!("name = \"abs\"\nkernel = \"{}\"\nmemory = 16\ncmdline = \"workload=banner\"\n", dir.join("k/banner-kernel").display())).unwrap();
    let rel = dir.join("rel.cfg");
    std::fs::write(&rel, "name = \"rel\"\nkernel = 'k/banner-kernel'\nmemory = 16\ncmdline = \"workload=banner\"\n").unwrap();
    let (st, text) = Run::start(
        &["--guest", abs.to_str().unwrap(), "--guest", rel.to_str().unwrap(), "--xl", "create abs; wait abs; create rel; wait rel"],
        false,
    )
    .finish();
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(st.code(), Some(0), "{text}");
    for name in ["abs", "rel"] {
        assert!(text.contains(&format!("[{name}] workload: banner")), "{name}\n{text}");
    }
}
