//! `xl mem-set` / `xl mem-max` with pv-rt's balloon driver
//! (`guests/balloon.cfg`, `workload=balloon`): the guest follows
//! `memory/target` down and up, `xl list` shows it, xl refuses a target
//! above the maximum and a maximum under the target with libxl's
//! messages, and the hypervisor stops a guest that asks for more than
//! `mem-max` (plus xl's 1 MiB of slack). Xen 4.17 is the oracle.

use tests::run_sh::Run;
use tests::Hypervisor;

/// The Mem column of `balloon`'s row in each `xl list`, in order.
fn balloon_rows(text: &str) -> Vec<u64> {
    text.lines()
        .filter(|l| l.starts_with("balloon "))
        .filter_map(|l| l.split_whitespace().nth(2)?.parse().ok())
        .collect()
}

tests::on_both_hypervisors! {
    fn mem_set_and_mem_max_move_a_ballooning_guest_within_its_limit(hv) {
        let script = "create balloon; sleep 2; list; \
            mem-set balloon 8; sleep 2; list; \
            mem-set balloon 12m; sleep 2; list; \
            mem-max balloon 10; mem-max balloon 12; mem-set balloon 14; mem-set nobody 8; mem-set balloon 1x; \
            mem-set balloon 6; sleep 2; mem-max balloon 7; \
            xenstore-write /local/domain/1/memory/target 16384; sleep 2; list; \
            destroy balloon";
        let mut args = vec!["--keep-going", "--xl", script];
        if hv == Hypervisor::Xen {
            args.push("--xen");
        }
        let (st, text) = Run::start(&args, false).finish();
        let text = text.replace('\r', "");
        // Four commands fail on purpose: status 1.
        assert_eq!(st.code(), Some(1), "{text}");
        assert!(text.contains("dom0: xl script failed: 4 command(s) failed"), "{text}");
        assert_eq!(balloon_rows(&text), [16, 8, 12, 8], "xl list's Mem column\n{text}");
        for line in [
            "[balloon] balloon: target 8192 KiB: now 8192 KiB",
            "[balloon] balloon: target 12288 KiB: now 12288 KiB",
            "[balloon] balloon: target 6144 KiB: now 6144 KiB",
            // Past xl's back: the hypervisor grants up to mem-max + 1 MiB.
            "[balloon] balloon: target 16384 KiB: now 8192 KiB",
            "xl> mem-max balloon 10\nxl: memory_static_max must be greater than or or equal to memory_dynamic_max",
            "xl> mem-set balloon 14\nxl: memory_dynamic_max must be less than or equal to memory_static_max",
            "xl> mem-set nobody 8\nxl: 'nobody' is not a domain name or id",
            "xl> mem-set balloon 1x\nxl: invalid memory size: 1x",
        ] {
            assert!(text.contains(line), "no {line:?}\n{text}");
        }
    }
}
