//! XenStore served by Dom0: a guest uses it through its ring (pv-rt's
//! xenbus client, `workload=xenstore`), on xen-core and on Xen 4.17 with
//! the same Dom0; Dom0 sees what the guest wrote and the tree the
//! toolstack wrote for it; hostile rings are dropped alone.

use tests::{guest_archive, image, Boot, Outcome, Status};

fn cfg(name: &str, extra: &str) -> Vec<u8> {
    format!("name=\"{name}\"\nkernel=\"pv-guest-kernel\"\nmemory=16\nvcpus=1\nextra=\"{extra}\"\non_poweroff=\"preserve\"\n").into_bytes()
}

fn run(boot: Boot, tag: &str, cfgs: &[(&str, &str)], script: &str) -> Outcome {
    let kernel = std::fs::read(image("pv-guest-kernel")).expect("guest image");
    let mut files = vec![("pv-guest-kernel", kernel)];
    let names: Vec<String> = cfgs.iter().map(|(n, _)| format!("guests/{n}.cfg")).collect();
    for ((name, extra), path) in cfgs.iter().zip(&names) {
        files.push((path.as_str(), cfg(name, extra)));
    }
    let archive = guest_archive(tag, &files);
    // `script|flags`: words after a `|` go on Dom0's command line after the
    // script (`xl_keep_going` runs the commands after a failing one).
    let (script, flags) = script.split_once('|').unwrap_or((script, ""));
    boot.dom0_image("dom0").module(&archive, "").dom0_cmdline(format!("xl=\"{script}\" {flags}").trim_end()).icount().run()
}

fn guest_uses_the_store(boot: Boot, tag: &str) {
    let out = run(
        boot,
        tag,
        &[("xs", "workload=xenstore")],
        "create xs; wait xs; xenstore-read /local/domain/1/data/t /local/domain/1/name; xenstore-ls -f /local/domain/1/console; destroy xs; xenstore-ls /local/domain",
    );
    out.assert_status(Status::PoweredOff);
    let checks: Vec<&str> = out.guest_lines().into_iter().filter(|l| l.starts_with("[xs] check ")).collect();
    assert!(checks.len() >= 25, "the guest ran its checks\n{}", out.tail(40));
    assert!(checks.iter().all(|l| l.ends_with(" ok")), "every check passed: {checks:#?}");
    out.assert_guest_line("[xs] Test result: SUCCESS");
    let lines = out.guest_lines();
    let after = |cmd: &str| lines.iter().skip_while(|l| !l.ends_with(cmd)).nth(1).copied().unwrap_or("");
    assert_eq!(after("xenstore-read /local/domain/1/data/t /local/domain/1/name"), "committed", "Dom0 sees the guest's write");
    assert!(lines.contains(&"xs"), "and the name the toolstack wrote\n{}", out.tail(30));
    assert!(lines.contains(&"/local/domain/1/console/type = \"xenconsoled\""), "libxl's console nodes\n{}", out.tail(30));
    let tail: Vec<&str> = lines.iter().skip_while(|l| !l.ends_with("xenstore-ls /local/domain")).copied().collect();
    assert!(tail.contains(&"0 = \"\"") && !tail.contains(&"1 = \"\""), "the guest's nodes went with it: {tail:?}");
}

#[test]
fn a_guest_uses_the_store_through_its_ring_on_xen_core() {
    guest_uses_the_store(Boot::xen_core(), "xs-core");
}

#[test]
fn a_guest_uses_the_store_through_its_ring_on_xen() {
    guest_uses_the_store(Boot::xen(), "xs-xen");
}

#[test]
fn hostile_rings_are_dropped_alone_and_the_store_serves_the_next_guest() {
    let out = run(
        Boot::xen_core(),
        "xs-hostile",
        &[("len", "workload=xenstore-hostile how=length"), ("idx", "workload=xenstore-hostile how=index"), ("xs", "workload=xenstore")],
        "create len; wait len; create idx; wait idx; create xs; wait xs; xenstore-read /local/domain/3/data/t",
    );
    out.assert_status(Status::PoweredOff);
    let text = out.guest_lines().join("\n");
    assert!(text.contains("xenstored: domain 1: message longer than XENSTORE_PAYLOAD_MAX; ignoring its ring from now on"), "{text}");
    assert!(text.contains("xenstored: domain 2: ring indices out of range; ignoring its ring from now on"), "{text}");
    assert!(text.contains("[len] xenstore-hostile: a read afterwards: error timeout"), "{text}");
    out.assert_guest_line("[xs] Test result: SUCCESS");
}

/// `xl reboot` and `xl shutdown` write `control/shutdown`; a guest that
/// watches it (pv-rt's `xenbus::control`) takes the request and does it; a
/// guest that does not answer is left alone after the timeout, unless `-F`
/// forces it.
fn shutdown_is_cooperative(boot: Boot, tag: &str) {
    let idle = String::from_utf8(std::fs::read(tests::repo_root().join("guests/idle.cfg")).expect("idle.cfg")).unwrap();
    let deaf = idle.lines().find_map(|l| l.strip_prefix("extra = \"")).map(|e| e.trim_end_matches('"').to_string()).unwrap();
    let out = run(
        boot,
        tag,
        &[("ctl", "workload=control"), ("deaf", &deaf)],
        "create ctl; sleep 1; reboot ctl; sleep 1; shutdown ctl; create deaf; sleep 1; shutdown -T 1 deaf; shutdown -F -T 1 deaf; list|xl_keep_going",
    );
    out.assert_status(Status::PoweredOff);
    let text = out.guest_lines().join("\n");
    out.assert_guest_line("[ctl] control: shutdown request 'reboot': rebooting");
    out.assert_guest_line("xl: domain ctl (1) has shut down, reason code 1 (reboot): action restart");
    assert_eq!(text.matches("[ctl] control: listening on control/shutdown").count(), 2, "restarted once\n{text}");
    out.assert_guest_line("[ctl] control: shutdown request 'poweroff': powering off");
    out.assert_guest_line("xl: domain ctl (2) has shut down, reason code 0 (poweroff): action preserve");
    out.assert_guest_line("xl: domain deaf did not shut down within the timeout; 'xl shutdown -F deaf' forces it");
    out.assert_guest_line("xl: domain deaf did not answer: forcing the poweroff (SCHEDOP_remote_shutdown)");
    out.assert_guest_line("xl: domain deaf (3) has shut down, reason code 0 (poweroff): action preserve");
}

#[test]
fn xl_shutdown_and_reboot_go_through_the_guest_on_xen_core() {
    shutdown_is_cooperative(Boot::xen_core(), "xs-control-core");
}

#[test]
fn xl_shutdown_and_reboot_go_through_the_guest_on_xen() {
    shutdown_is_cooperative(Boot::xen(), "xs-control-xen");
}

/// `xl console`: typed bytes reach the guest's `in` ring (the `echo`
/// workload answers each line), its output shows as it comes, Ctrl-]
/// detaches and the prompt's commands run again.
fn console_carries_input(boot: Boot, tag: &str) {
    let boot = boot
        .input_after("xl: connected to echo's console", b"hello\r")
        .input_after("echo: hello", b"quit\r")
        .input_after("echo: bye", b"\x1d");
    let out = run(boot, tag, &[("echo", "workload=echo")], "create echo; console echo; list");
    out.assert_status(Status::PoweredOff);
    out.assert_guest_line("echo: hello");
    out.assert_guest_line("echo: bye");
    out.assert_guest_line("xl: console of echo detached");
    let lines = out.guest_lines();
    let detached = lines.iter().position(|l| *l == "xl: console of echo detached").unwrap();
    assert!(lines[detached..].iter().any(|l| l.starts_with("echo ")), "xl list ran after detaching\n{}", out.tail(20));
}

#[test]
fn xl_console_carries_typed_lines_to_the_guest_and_ctrl_bracket_detaches() {
    console_carries_input(Boot::xen_core(), "xs-console-core");
}

#[test]
fn xl_console_carries_typed_lines_to_the_guest_on_xen() {
    console_carries_input(Boot::xen(), "xs-console-xen");
}
