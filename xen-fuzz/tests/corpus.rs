//! The regression corpus: every committed finding replays on a fresh
//! machine, every oracle after every step, with no finding.

use xen_fuzz::corpus::{dir, files, Record};

fn replay_dir(d: &std::path::Path) -> Vec<String> {
    let mut failures = Vec::new();
    let fs = files(d);
    for f in &fs {
        let r = match Record::load(f) {
            Ok(r) => r,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        if let Err((i, finding)) = xen_fuzz::replay(&r.steps) {
            failures.push(format!("{}: step {i}: {finding} (first found as: {})", r.name, r.finding));
        }
    }
    failures
}

#[test]
fn corpus_replays_without_a_finding() {
    let d = dir();
    assert!(!files(&d).is_empty(), "no corpus files in {}", d.display());
    let failures = replay_dir(&d);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Findings whose fix has not landed yet live in `corpus/open/`: move a
/// file up into `corpus/` once it replays clean.
#[test]
fn open_findings_replay_without_a_finding() {
    let failures = replay_dir(&dir().join("open"));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The oracles can fail: a page table that maps itself writable (written
/// behind `mm`'s back, as the shared_info escape once did through the
/// hypervisor's cr2 write) is reported by the mapping audit and the
/// frame-table audit.
#[test]
fn the_mapping_oracle_reports_a_writable_page_table() {
    use xen_core::testing as t;
    let mut xen = t::empty_machine(8192);
    t::discard_console(&xen);
    let b = t::build_domain(&mut xen, t::DomSpec { id: 1, privileged: false, pages: 2048, vcpus: 1 }).expect("build");
    assert_eq!(t::audit_guest_mappings(&xen), Ok(()));
    assert_eq!(t::audit_frame_table(&xen), Ok(()));
    let l1 = t::table_on_path(&xen, 1, b.scratch, 1).expect("an L1 maps the scratch area");
    // Entry 2 of the L1 = the L1 itself, present, writable, user.
    let pte = (l1 << 12) | 0x67;
    assert!(t::write_frame(&xen, l1, 2 * 8, &pte.to_le_bytes()));
    let mapping = t::audit_guest_mappings(&xen).expect_err("the mapping audit sees it");
    assert!(mapping.contains("guest-writable mapping of a page table"), "{mapping}");
    assert!(t::audit_frame_table(&xen).is_err(), "the frame-table audit sees it too");
}

#[test]
fn records_survive_postcard() {
    let r = Record::load(&files(&dir())[0]).expect("load");
    assert_eq!(Record::decode(&r.encode()).expect("decode"), r);
}
