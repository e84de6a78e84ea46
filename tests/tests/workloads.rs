//! `pv-guest-kernel workload=NAME` as Dom0: each workload's verdict and how the
//! run ends. Every scenario runs on xen-core and on Xen 4.17, the oracle.

use tests::{on_both_hypervisors, Boot, Hypervisor, Outcome, Status};

fn workload(hv: Hypervisor, cmdline: &str) -> Outcome {
    Boot::new(hv).dom0_image("pv-guest-kernel").dom0_cmdline(cmdline).run()
}

/// A self-test workload passed: every check line ok, the verdict SUCCESS, poweroff.
fn assert_self_test_passed(out: &Outcome) {
    out.assert_status(Status::PoweredOff);
    let checks = out.check_lines();
    assert!(!checks.is_empty(), "no 'check ...' lines\n{}", out.tail(30));
    let failed: Vec<_> = checks.iter().filter(|l| !l.ends_with(" ok")).collect();
    assert!(failed.is_empty(), "failed checks: {failed:#?}");
    out.assert_guest_line("Test result: SUCCESS");
}

on_both_hypervisors! {
    fn banner_workload_prints_banner_and_powers_off(hv) {
        let out = workload(hv, "workload=banner");
        out.assert_status(Status::PoweredOff);
        let banner = out.banner_lines();
        assert!(banner.iter().any(|l| l.starts_with("pv-guest-kernel: Xen PV kernel ")), "{banner:#?}");
        assert!(banner.iter().any(|l| l.starts_with("hypervisor: Xen ")), "{banner:#?}");
        // Xen hands the module's command line on without the path.
        out.assert_guest_line("start_info: cmd_line=\"workload=banner\"");
    }

    /// A privileged instruction in the guest kernel (ring 3) with no trap handler
    /// crashes Dom0 alone: the hypervisor reports the fault and carries on.
    fn privop_crashes_dom0_and_the_hypervisor_reports_the_fault(hv) {
        let out = workload(hv, "workload=privop");
        out.assert_status(Status::Crashed);
        out.assert_hypervisor_line("saying the domain crashed", |l| l.to_lowercase().contains("crashed"));
        out.assert_hypervisor_line("naming vector 13 (#GP)", |l| {
            l.contains("#GP") || l.contains("vec 13") || l.contains("vector 13")
        });
        out.assert_hypervisor_line("giving the guest rip", |l| l.to_lowercase().contains("rip"));
        out.assert_hypervisor_line("giving the error code", |l| {
            let l = l.to_lowercase();
            l.contains("#gp[") || l.contains("error code") || l.contains("errcode") || l.contains("ec=")
        });
    }

    fn unknown_hypercalls_return_enosys(hv) {
        assert_self_test_passed(&workload(hv, "workload=enosys"));
    }

    fn bad_guest_pointers_return_efault(hv) {
        assert_self_test_passed(&workload(hv, "workload=efault"));
    }

    /// Legal MMU operations work; every illegal one gets an error code and
    /// the domain lives on to print the verdict.
    fn mmu_self_test_passes(hv) {
        assert_self_test_passed(&workload(hv, "workload=mmu"));
    }

    /// Traps, user mode, FPU state, descriptors and a second vCPU, then
    /// hostile values: every check as Xen 4.17 answers it.
    fn vcpu_self_test_passes(hv) {
        let out = Boot::new(hv).dom0_image("pv-guest-kernel").dom0_cmdline("workload=vcpu").append("dom0_max_vcpus=2").run();
        assert_self_test_passed(&out);
    }

    /// Debug registers on the hypervisor refused, a data breakpoint under a
    /// hypercall's write survived, a global mapping accepted, a syscall at
    /// the top of the lower half answered with #GP at the non-canonical RIP.
    fn hostile_cpu_checks_pass(hv) {
        assert_self_test_passed(&workload(hv, "workload=hostile-cpu"));
    }

    /// Event channels, VIRQs, IPIs, masking, block and poll, hostile values;
    /// with two vCPUs also a ping-pong between them.
    fn events_self_test_passes(hv) {
        // -icount keeps the timing checks independent of the host's load.
        let one = Boot::new(hv).dom0_image("pv-guest-kernel").dom0_cmdline("workload=events").icount().run();
        assert_self_test_passed(&one);
        let two = Boot::new(hv).dom0_image("pv-guest-kernel").dom0_cmdline("workload=events").append("dom0_max_vcpus=2").icount().run();
        assert_self_test_passed(&two);
    }

    /// Periodic and one-shot timers tick while the vCPU sleeps between them:
    /// no busy waiting.
    fn timer_self_test_passes(hv) {
        let out = Boot::new(hv).dom0_image("pv-guest-kernel").dom0_cmdline("workload=timer").icount().run();
        assert_self_test_passed(&out);
    }

    /// A kernel whose stack cannot take an exception frame is crashed, alone:
    /// the hypervisor survives (status Crashed, not HypervisorPanic).
    fn an_unusable_kernel_stack_crashes_the_domain_not_the_hypervisor(hv) {
        for stack in ["kernel", "hypervisor", "user"] {
            let out = workload(hv, &format!("workload=badstack stack={stack}"));
            out.assert_status(Status::Crashed);
        }
    }

    /// Running off the bottom of the stack faults in the guard page pv-rt
    /// leaves unmapped below it, instead of overwriting what lies there:
    /// the domain crashes, and xen-core says it was a stack overflow.
    fn a_stack_overflow_hits_the_guard_page_and_crashes_the_domain(hv) {
        let out = workload(hv, "workload=badstack stack=overflow");
        out.assert_status(Status::Crashed);
        if hv == tests::Hypervisor::XenCore {
            out.assert_hypervisor_line("naming a stack overflow", |l| l.contains("d0v0 stack overflow: page fault at"));
        }
    }

    fn shutdown_reboot_ends_the_run_with_reboot(hv) {
        workload(hv, "workload=reboot").assert_status(Status::Reboot);
    }

    fn shutdown_crash_ends_the_run_crashed(hv) {
        workload(hv, "workload=crash").assert_status(Status::Crashed);
    }

    /// `bench-null iters=1000` under `-icount` (where the TSC counts
    /// instructions): the line reports the iterations asked for, a per-call
    /// figure that is the total divided by them, and a cost a real hypercall
    /// round trip has (a `syscall` into the hypervisor, dispatch and the way
    /// back are hundreds of instructions, a loop that does not trap a few);
    /// the hypercall answered with the version.
    fn bench_null_reports_the_cost_of_a_real_hypercall_round_trip(hv) {
        let out = Boot::new(hv).dom0_image("pv-guest-kernel").dom0_cmdline("workload=bench-null iters=1000").icount().run();
        out.assert_status(Status::PoweredOff);
        let line = out
            .guest_lines()
            .into_iter()
            .find(|l| l.starts_with("bench null_hypercall "))
            .unwrap_or_else(|| panic!("no 'bench null_hypercall' line\n{}", out.tail(20)))
            .to_string();
        let field = |k: &str| -> String {
            line.split_whitespace().find_map(|w| w.strip_prefix(k)).unwrap_or_else(|| panic!("{k} missing: {line}")).to_string()
        };
        let num = |k: &str| -> u64 { field(k).parse().unwrap_or_else(|_| panic!("{k} not a number: {line}")) };
        assert_eq!(num("iterations="), 1000, "{line}");
        let (total, per_call) = (num("total_tsc="), num("per_call_tsc="));
        assert_eq!(per_call, total / 1000, "per call is total / iterations: {line}");
        assert!((100..20_000).contains(&per_call), "a hypercall round trip costs 100..20000 instructions: {line}");
        assert_eq!(field("version="), "4.17", "{line}");
        assert_eq!(out.bench_results(), vec![("null_hypercall".to_string(), per_call)], "the harness reads it");
    }
}
