//! The Dom0 toolstack on xen-core: `xl` commands given on Dom0's command
//! line (`xl="cmd; cmd"`), guests from the cpio archive in Dom0's initrd,
//! their console output relayed by Dom0 as `[name] line`.

use tests::{guest_archive, image, Boot, Hypervisor, Outcome, Status};

fn guest_cfg(name: &str, extra: &str) -> Vec<u8> {
    format!("name=\"{name}\"\nkernel=\"pv-guest-kernel\"\nmemory=16\nvcpus=1\nextra=\"{extra}\"\n").into_bytes()
}

/// Boots Dom0 with `xl="script"`; `script|flag` adds Dom0 option `flag`.
fn xl(tag: &str, cfgs: &[(&str, &str)], script: &str) -> Outcome {
    xl_on(Hypervisor::XenCore, tag, cfgs, script)
}

fn xl_on(hv: Hypervisor, tag: &str, cfgs: &[(&str, &str)], script: &str) -> Outcome {
    let (script, flags) = script.split_once('|').unwrap_or((script, ""));
    let kernel = std::fs::read(image("pv-guest-kernel")).expect("guest image");
    let mut files = vec![("pv-guest-kernel", kernel)];
    let names: Vec<String> = cfgs.iter().map(|(n, _)| format!("guests/{n}.cfg")).collect();
    for ((name, extra), path) in cfgs.iter().zip(&names) {
        files.push((path.as_str(), guest_cfg(name, extra)));
    }
    let archive = guest_archive(tag, &files);
    // -icount: Dom0's `sleep`s and the guests' progress are measured in the
    // same (instruction) time, whatever else the host is doing.
    Boot::new(hv)
        .dom0_image("dom0")
        .module(&archive, "")
        .dom0_cmdline(format!("xl=\"{script}\" {flags}").trim_end())
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
    // The hypervisor's note of the shutdown comes after the guest's own last
    // line, which Dom0 relays later than the guest wrote it.
    let all: Vec<&str> = out.lines().collect();
    let last_guest = all.iter().rposition(|l| l.starts_with("[g1] ")).expect("g1's lines");
    let note = all.iter().position(|l| l.contains("(XEN) Domain 1 shut down: reason poweroff")).expect("the shutdown note");
    assert!(note > last_guest, "note at line {note}, guest's last line at {last_guest}\n{}", out.tail(30));
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
    let out = xl("errors", &[("g1", "workload=banner")], "create guests/nope.cfg; destroy ghost; pause 99|xl_keep_going");
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
    let text = out.guest_lines().join("\n");
    assert!(text.contains("dom0: xl script failed: 3 command(s) failed"), "counts the failures\n{text}");
}

#[test]
fn an_xl_script_stops_at_the_first_command_that_fails() {
    let out = xl("stop", &[("g1", "workload=banner")], "list; create guests/nope.cfg; create guests/g1.cfg");
    out.assert_status(Status::PoweredOff);
    let text = out.guest_lines().join("\n");
    assert!(text.contains("dom0: xl script failed: 'create guests/nope.cfg' failed"), "says where it stopped\n{text}");
    assert!(!text.contains("[g1]"), "the command after the failure did not run\n{text}");
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

#[test]
fn help_per_command_weight_0_refused_and_dmesg_c_clears() {
    let out = xl("small", &[("g1", "workload=banner")], "help create; destroy --help; sched-credit -d Domain-0 -w 0; dmesg -c; dmesg|xl_keep_going");
    let text = out.lines().collect::<Vec<_>>().join("\n");
    assert!(text.contains("Usage: xl create <ConfigFile> [key=value ...]"), "help create\n{text}");
    assert!(text.contains("Usage: xl destroy <Domain>"), "destroy --help is help, not a domain name\n{text}");
    assert!(text.contains("sched-credit: the weight must be 1 to 65535"), "weight 0 refused, as xl does\n{text}");
    assert!(text.contains("dom0: xl script failed: 1 command(s) failed"), "only the weight failed\n{text}");
    // The first dmesg printed the boot log; the one after -c had nothing.
    let after = text.split("xl> dmesg -c").nth(1).unwrap_or_default();
    assert!(after.contains("(XEN) Starting Dom0"), "dmesg -c printed the ring\n{text}");
    let last = text.rsplit("xl> dmesg\n").next().unwrap_or_default();
    assert!(!last.contains("(XEN) Starting Dom0"), "the ring was cleared\n{text}");
}

#[test]
fn info_has_xens_fields_and_uptime_and_list_l_describe_the_guests() {
    let out = xl("info", &[("g1", "workload=grant-offer peer=0 timeout=0")], "create guests/g1.cfg; info; info xen_version; uptime; list -l");
    out.assert_status(Status::PoweredOff);
    let text = out.guest_lines().join("\n");
    // Xen's xl info fields, in xl's order, `%-23s: value`.
    let fields = [
        "host", "release", "version", "machine", "nr_cpus", "max_cpu_id", "nr_nodes", "cores_per_socket",
        "threads_per_core", "cpu_mhz", "hw_caps", "virt_caps", "total_memory", "free_memory", "sharing_freed_memory",
        "sharing_used_memory", "outstanding_claims", "free_cpus", "xen_major", "xen_minor", "xen_extra", "xen_version",
        "xen_caps", "xen_scheduler", "xen_pagesize", "platform_params", "xen_changeset", "xen_commandline",
        "cc_compiler", "cc_compile_by", "cc_compile_domain", "cc_compile_date", "xend_config_format",
    ];
    let mut at = 0;
    for f in fields {
        let key = format!("\n{f:<23}: ");
        let Some(i) = text[at..].find(&key) else { panic!("no '{f}' after the previous field\n{text}") };
        at += i + key.len();
    }
    assert!(text.contains("xl> info xen_version\n4.17"), "info <field> prints the value alone\n{text}");
    // The machine's CPUID feature words; 1.edx first, whose bit 0 is the FPU.
    let caps = text.lines().find_map(|l| l.strip_prefix("hw_caps                : ")).unwrap_or_default();
    let words: Vec<u32> = caps.split(':').filter_map(|w| u32::from_str_radix(w, 16).ok()).collect();
    assert!(words.len() == 8 && words[0] & 1 == 1, "hw_caps are the CPU's feature words\n{text}");
    assert!(text.contains("Name                                ID Uptime"), "uptime's header\n{text}");
    assert!(text.lines().any(|l| l.starts_with("g1 ") && l.contains(" 0:00:")), "uptime lists g1, up for seconds\n{text}");
    assert!(text.contains("\"name\": \"g1\"") && text.contains("\"cmdline\": \"workload=grant-offer peer=0 timeout=0\""), "list -l\n{text}");
}

#[test]
fn a_guest_that_crashes_at_once_is_not_restarted_for_ever() {
    let out = xl("restart", &[("bad", "workload=privop")], "create guests/bad.cfg on_crash=restart; sleep 3; list");
    out.assert_status(Status::PoweredOff);
    let text = out.guest_lines().join("\n");
    assert!(text.contains("not restarting it (it would restart for ever)"), "{text}");
    assert_eq!(text.matches("[bad] workload: privop").count(), 1, "started once\n{text}");
}

#[test]
fn top_refreshes_its_table_the_given_number_of_times() {
    let out = xl("top", &[("g1", "workload=grant-offer peer=0 timeout=0")], "create guests/g1.cfg; top -d 0.5 -i 3; top -i 0|xl_keep_going");
    let text = out.guest_lines().join("\n");
    let header = "      NAME  STATE   CPU(sec) CPU(%)     MEM(k) MEM(%)  MAXMEM(k) MAXMEM(%) VCPUS";
    assert_eq!(text.matches(header).count(), 3, "three refreshes\n{text}");
    assert_eq!(text.matches("2 domains: ").count(), 3, "{text}");
    assert!(text.lines().any(|l| l.trim_start().starts_with("g1 --b---")), "the blocked guest's row\n{text}");
    assert!(text.contains("top: -i takes a number of iterations above 0"), "{text}");
}

#[test]
fn sched_credit_prints_the_cpupool_line_as_xl_and_s_alone() {
    let out = xl("sched", &[("g1", "workload=banner")], "sched-credit; sched-credit -s");
    out.assert_status(Status::PoweredOff);
    let text = out.guest_lines().join("\n");
    let pool = "Cpupool Pool-0: tslice=10ms ratelimit=0us migration-delay=0us";
    assert!(text.contains(&format!("xl> sched-credit\n{pool}\nName                                ID Weight  Cap\nDomain-0")), "{text}");
    assert!(text.contains(&format!("xl> sched-credit -s\n{pool}")), "{text}");
    assert_eq!(text.matches("Name                                ID Weight  Cap").count(), 1, "-s prints no table\n{text}");
}

/// The toolstack's table had 16 slots; it now holds what memory allows:
/// 40 guests of 4 MiB, all listed and all served.
#[test]
fn more_guests_than_the_old_table_of_16_run_and_are_listed() {
    let kernel = std::fs::read(image("pv-guest-kernel")).expect("guest image");
    let mut files = vec![("pv-guest-kernel".to_string(), kernel)];
    let mut script = String::new();
    for i in 1..=40 {
        let cfg = format!("name=\"g{i}\"\nkernel=\"pv-guest-kernel\"\nmemory=4\nextra=\"workload=grant-offer peer=0 timeout=0\"\n");
        files.push((format!("guests/g{i}.cfg"), cfg.into_bytes()));
        script.push_str(&format!("create guests/g{i}.cfg; "));
    }
    script.push_str("sleep 1; list; top -i 1 -b");
    let files: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, d)| (n.as_str(), d.clone())).collect();
    let archive = guest_archive("many", &files);
    let out = Boot::xen_core()
        .dom0_image("dom0")
        .module(&archive, "")
        .mem(1024)
        .dom0_cmdline(&format!("xl=\"{script}\""))
        .run();
    out.assert_status(Status::PoweredOff);
    let text = out.guest_lines().join("\n");
    assert!(!text.contains("at most"), "{text}");
    for i in 1..=40 {
        assert!(text.lines().any(|l| l.starts_with(&format!("g{i} "))), "g{i} is listed\n{text}");
        assert!(text.contains(&format!("[g{i}] workload: grant-offer")), "g{i}'s console was served\n{text}");
    }
    assert!(text.contains("41 domains: "), "top counts them all\n{text}");
}

#[test]
fn an_unprivileged_guest_cannot_upset_the_processor_on_either_hypervisor() {
    // workload=hostile-cpu as a DomU: breakpoints on the hypervisor, a data
    // breakpoint under a hypercall's write, a global mapping, a syscall at
    // the top of the lower half; Xen 4.17's answers on both.
    for hv in [Hypervisor::XenCore, Hypervisor::Xen] {
        let out = xl_on(hv, "hostile-cpu", &[("hc", "workload=hostile-cpu")], "create guests/hc.cfg on_poweroff=preserve; wait hc; destroy hc");
        out.assert_status(Status::PoweredOff);
        out.assert_guest_line("[hc] Test result: SUCCESS");
    }
}
