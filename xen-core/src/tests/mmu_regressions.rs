//! Named regressions for the classes of PV MMU bugs Xen has shipped. Each
//! goes through the hypercall entry, as a hostile guest would, and ends by
//! checking every invariant.

use super::invariants::{check, teardown};
use super::{World, RO, RW};
use crate::domain::DomId;
use crate::mm::pte::*;
use crate::mm::{MachineMemory, Mfn, Owner, PageType};
use hypercall_abi::errno::Errno;
use hypercall_abi::mm::{
    MMUEXT_NEW_BASEPTR, MMUEXT_PIN_L1_TABLE, MMUEXT_PIN_L4_TABLE, MMUEXT_UNPIN_TABLE, MMU_MACHPHYS_UPDATE,
    MMU_PT_UPDATE_PRESERVE_AD, UVMF_INVLPG,
};
use hypercall_abi::nr;

// Xen 4.17's answers (the MMU self-test compares them on both hypervisors):
// a frame that cannot take the type asked (writable vs page table) is
// -EBUSY (`could_not_pin`), a malformed or forbidden entry -EINVAL, a frame
// no domain owns that a domain may not map as I/O -EPERM. Asserting the
// exact code keeps a test from passing on an unrelated refusal.
const EINVAL: i64 = Errno::EINVAL.to_ret();
const EBUSY: i64 = Errno::EBUSY.to_ret();
const EPERM: i64 = Errno::EPERM.to_ret();

/// The 8 bytes at machine address `maddr` (a page-table entry).
fn entry_at(w: &World, maddr: u64) -> u64 {
    w.xen.platform.read_u64(Mfn(maddr >> 12), ((maddr & 0xfff) / 8) as usize)
}

fn invariants_hold(w: &World) {
    if let Err(e) = check(&w.xen) {
        panic!("invariant broken: {e}");
    }
}

#[test]
fn the_built_domain_satisfies_every_invariant_and_tears_down_cleanly() {
    let mut w = World::new();
    invariants_hold(&w);
    let free = w.xen.frames.free_count();
    teardown(&mut w.xen, DomId(0));
    invariants_hold(&w);
    assert_eq!(w.xen.frames.free_count(), free + super::DOM_PAGES + 1, "every frame came back");
}

#[test]
fn own_page_table_cannot_be_mapped_writable_by_mmu_update() {
    let mut w = World::new();
    let pt = w.pfn(w.layout.pfn_of(w.layout.vpt_start) + 1);
    let (_, l1e) = w.l1e_maddr(w.scratch + 0x2000);
    let before = entry_at(&w, l1e);
    assert_eq!(w.mmu_update(l1e, pt.maddr() | RW, 0x7ff0), EBUSY);
    assert_eq!(entry_at(&w, l1e), before, "the entry is untouched");
    assert_eq!(w.mmu_update(l1e, pt.maddr() | RO, 0x7ff0), 0, "read-only is fine");
    assert_eq!(entry_at(&w, l1e), pt.maddr() | RO | _PAGE_USER, "and is written (with _PAGE_USER forced)");
    invariants_hold(&w);
}

#[test]
fn own_page_table_cannot_be_mapped_writable_by_update_va_mapping() {
    let mut w = World::new();
    let va = w.layout.vpt_start;
    let pt = w.pfn(w.layout.pfn_of(va));
    let (_, l1e) = w.l1e_maddr(va);
    let before = entry_at(&w, l1e);
    assert_eq!(w.hypercall(nr::UPDATE_VA_MAPPING, [va, pt.maddr() | RW, UVMF_INVLPG, 0, 0]), EBUSY);
    assert_eq!(entry_at(&w, l1e), before, "the entry is untouched");
    invariants_hold(&w);
}

/// XSA-182's shape: an entry that keeps its frame but gains RW must be
/// checked like any other, not waved through as "only the flags changed".
#[test]
fn a_flags_only_change_to_writable_is_checked_in_full() {
    let mut w = World::new();
    let va = w.layout.vpt_start;
    let (_, l1e) = w.l1e_maddr(va);
    let cur = w.xen.platform.read_u64(Mfn(l1e >> 12), ((l1e & 0xfff) / 8) as usize);
    assert_eq!(cur & _PAGE_RW, 0);
    assert_eq!(w.mmu_update(l1e, cur | _PAGE_RW, 0x7ff0), EBUSY);
    assert_eq!(w.mmu_update(l1e | MMU_PT_UPDATE_PRESERVE_AD, cur | _PAGE_RW, 0x7ff0), EBUSY);
    assert_eq!(entry_at(&w, l1e), cur, "the entry is untouched");
    invariants_hold(&w);
}

#[test]
fn superpage_entries_are_refused() {
    let mut w = World::new();
    // An L2 entry covering the first 2 MiB, where the page tables live.
    let l4 = w.xen.domains[&DomId(0)].vcpus[0].cr3;
    let l3 = Mfn(entry_mfn(w.xen.platform.read_u64(l4, 0)));
    let l2 = Mfn(entry_mfn(w.xen.platform.read_u64(l3, 0)));
    let base = w.pfn(0);
    assert_eq!(w.mmu_update(l2.maddr() + 8 * 5, base.maddr() | RW | _PAGE_PSE, 0x7ff0), EINVAL);
    assert_eq!(w.mmu_update(l3.maddr() + 8 * 5, base.maddr() | RW | _PAGE_PSE, 0x7ff0), EINVAL);
    invariants_hold(&w);
}

#[test]
fn linear_page_tables_are_refused() {
    let mut w = World::new();
    let l4 = w.xen.domains[&DomId(0)].vcpus[0].cr3;
    for flags in [RW, RO] {
        assert_eq!(w.mmu_update(l4.maddr() + 8 * 100, l4.maddr() | flags, 0x7ff0), EINVAL, "flags {flags:#x}");
        assert_eq!(w.xen.platform.read_u64(l4, 100), 0, "slot 100 stays empty");
    }
    // An L3 pointing back at the L4, one level down: also refused.
    let l3 = Mfn(entry_mfn(w.xen.platform.read_u64(l4, 0)));
    assert_eq!(w.mmu_update(l3.maddr() + 8 * 7, l4.maddr() | RO, 0x7ff0), EINVAL);
    invariants_hold(&w);
}

#[test]
fn unpinning_a_table_still_in_use_keeps_it_a_table() {
    let mut w = World::new();
    let l1 = w.l1e_maddr(w.scratch).0;
    assert_eq!(w.mmuext(MMUEXT_PIN_L1_TABLE, l1.0, 0), 0);
    assert_eq!(w.mmuext(MMUEXT_UNPIN_TABLE, l1.0, 0), 0);
    assert_eq!(w.xen.frames.get(l1).unwrap().ty, PageType::L1, "the L2 still uses it");
    assert_eq!(w.mmuext(MMUEXT_UNPIN_TABLE, l1.0, 0), EINVAL, "not pinned any more");
    let (_, l1e) = w.l1e_maddr(w.scratch + 0x1000);
    assert_eq!(w.mmu_update(l1e, l1.maddr() | RW, 0x7ff0), EBUSY, "still a table: never writable");
    invariants_hold(&w);
}

#[test]
fn another_domains_frame_cannot_be_mapped() {
    let mut w = World::with_domain(DomId(1), false);
    w.add_domain(DomId(2), false);
    let theirs = w.xen.domains[&DomId(2)].p2m[3];
    let (_, l1e) = w.l1e_maddr(w.scratch + 0x2000);
    let before = entry_at(&w, l1e);
    assert_eq!(w.mmu_update(l1e, theirs.maddr() | RO, 0x7ff0), EBUSY);
    // Nor through foreigndom: only a privileged domain may.
    assert_eq!(w.mmu_update(l1e, theirs.maddr() | RO, 2), Errno::EPERM.to_ret());
    assert_eq!(w.mmu_update(l1e, theirs.maddr() | RO, 9), Errno::ESRCH.to_ret());
    // Nor hypervisor frames (owner: none) or frames beyond memory.
    assert_eq!(w.mmu_update(l1e, Mfn(0).maddr() | RO, 0x7ff0), EBUSY);
    assert_eq!(w.mmu_update(l1e, Mfn(1 << 30).maddr() | RO, 0x7ff0), EPERM);
    assert_eq!(entry_at(&w, l1e), before, "the entry is untouched");
    invariants_hold(&w);
}

#[test]
fn dom0_maps_a_guest_frame_only_when_it_says_so() {
    let mut w = World::new();
    w.add_domain(DomId(1), false);
    let theirs = w.xen.domains[&DomId(1)].p2m[3];
    let (_, l1e) = w.l1e_maddr(w.scratch + 0x2000);
    assert_eq!(w.mmu_update(l1e, theirs.maddr() | RW, 0x7ff0), EBUSY);
    assert_eq!(w.mmu_update(l1e, theirs.maddr() | RW, 1), 0);
    assert_eq!(entry_at(&w, l1e), theirs.maddr() | RW | _PAGE_USER);
    invariants_hold(&w);
    assert_eq!(w.mmu_update(l1e, 0, 0x7ff0), 0);
    invariants_hold(&w);
}

#[test]
fn the_m2p_table_cannot_be_written() {
    let mut w = World::with_domain(DomId(1), false);
    w.add_domain(DomId(2), false);
    let theirs = w.xen.domains[&DomId(2)].p2m[3];
    assert_eq!(w.mmu_update(theirs.maddr() | MMU_MACHPHYS_UPDATE, 7, 0x7ff0), EINVAL);
    assert_eq!(w.xen.frames.m2p(theirs), 3, "their M2P entry is untouched");
    // Its own frames it may renumber.
    let mine = w.pfn(5);
    assert_eq!(w.mmu_update(mine.maddr() | MMU_MACHPHYS_UPDATE, 77, 0x7ff0), 0);
    assert_eq!(w.xen.frames.m2p(mine), 77);
    // The table itself lies in the hypervisor's slots: no guest pointer reaches it.
    assert_eq!(w.xen.guest_mem().unwrap().write_u64(0xffff_8000_0000_0000, 1), Err(Errno::EFAULT));
    assert_eq!(
        w.hypercall(nr::UPDATE_VA_MAPPING, [0xffff_8000_0000_0000, mine.maddr() | RW, 0, 0, 0]),
        EINVAL
    );
}

#[test]
fn the_hypervisor_slots_cannot_be_written() {
    let mut w = World::new();
    let l4 = w.xen.domains[&DomId(0)].vcpus[0].cr3;
    let before = w.xen.platform.read_u64(l4, 262);
    let page = w.pfn(w.spare_pfn(0));
    assert_eq!(w.mmu_update(l4.maddr() + 8 * 262, page.maddr() | RW, 0x7ff0), EINVAL);
    assert_eq!(w.xen.platform.read_u64(l4, 262), before);
}

#[test]
fn a_pinned_l4_gets_the_hypervisor_slots_whatever_the_guest_wrote() {
    let mut w = World::new();
    let new_l4 = w.pfn(w.spare_pfn(0));
    // The guest fills its would-be L4 with junk in the hypervisor slots.
    w.xen.platform.write_u64(new_l4, 262, 0xdead_b000 | RW);
    assert_eq!(w.mmuext(MMUEXT_PIN_L4_TABLE, new_l4.0, 0), 0);
    assert_eq!(w.xen.platform.read_u64(new_l4, 262), w.xen.platform.hypervisor_slots[6]);
    invariants_hold(&w);
}

#[test]
fn a_table_mapped_writable_cannot_be_pinned() {
    let mut w = World::new();
    let pfn = w.spare_pfn(1);
    let page = w.pfn(pfn);
    let (_, l1e) = w.l1e_maddr(w.scratch + 0x3000);
    assert_eq!(w.mmu_update(l1e, page.maddr() | RW, 0x7ff0), 0);
    assert_eq!(w.mmuext(MMUEXT_PIN_L1_TABLE, page.0, 0), EINVAL);
    assert_eq!(w.xen.frames.get(page).unwrap().ty, PageType::Writable, "still a writable page");
    assert_eq!(w.mmu_update(l1e, page.maddr() | RO, 0x7ff0), 0);
    assert_eq!(w.mmuext(MMUEXT_PIN_L1_TABLE, page.0, 0), 0);
    invariants_hold(&w);
}

#[test]
fn a_new_page_table_tree_can_be_built_used_and_dropped() {
    let mut w = World::new();
    let (l1, l2, l3, l4, data) = (w.spare_pfn(0), w.spare_pfn(1), w.spare_pfn(2), w.spare_pfn(3), w.spare_pfn(4));
    let m = |k| w.pfn(k);
    let (ml1, ml2, ml3, ml4, mdata) = (m(l1), m(l2), m(l3), m(l4), m(data));
    let p = &w.xen.platform;
    p.write_u64(ml1, 0, mdata.maddr() | RW);
    p.write_u64(ml2, 0, ml1.maddr() | RW);
    p.write_u64(ml3, 0, ml2.maddr() | RW);
    p.write_u64(ml4, 0, ml3.maddr() | RW);
    // Dom0's own boot mapping still maps these frames? They are outside it.
    assert_eq!(w.mmuext(MMUEXT_PIN_L4_TABLE, ml4.0, 0), 0);
    assert_eq!(w.xen.frames.get(ml1).unwrap().ty, PageType::L1);
    assert_eq!(w.xen.frames.get(mdata).unwrap().ty, PageType::Writable);
    invariants_hold(&w);
    // Switch to it and back: references follow the CR3.
    let old = w.xen.domains[&DomId(0)].vcpus[0].cr3;
    assert_eq!(w.mmuext(MMUEXT_NEW_BASEPTR, ml4.0, 0), 0);
    invariants_hold(&w);
    // From here the scratch buffer is unmapped; restore through the raw core.
    let mut mm = w.xen_mm();
    mm.get_page_and_type(old, DomId(0), PageType::L4).unwrap();
    drop(mm);
    let vc = &mut w.xen.domains.get_mut(&DomId(0)).unwrap().vcpus[0];
    let cur = core::mem::replace(&mut vc.cr3, old);
    w.xen_mm().put_page_and_type(cur);
    assert_eq!(w.mmuext(MMUEXT_UNPIN_TABLE, ml4.0, 0), 0);
    for f in [ml1, ml2, ml3, ml4, mdata] {
        let pg = w.xen.frames.get(f).unwrap();
        assert_eq!((pg.count, pg.type_count), (1, 0), "{f:?} holds only its allocation");
    }
    invariants_hold(&w);
}

#[test]
fn a_ballooned_out_page_lives_until_unmapped() {
    let mut w = World::new();
    let pfn = w.spare_pfn(0);
    let page = w.pfn(pfn);
    let (_, l1e) = w.l1e_maddr(w.scratch + 0x3000);
    assert_eq!(w.mmu_update(l1e, page.maddr() | RW, 0x7ff0), 0);
    let s = w.scratch;
    w.write(s + 0x800, &page.0.to_le_bytes());
    let mut res = [0u8; 32];
    res[..8].copy_from_slice(&(s + 0x800).to_le_bytes());
    res[8..16].copy_from_slice(&1u64.to_le_bytes());
    res[24..26].copy_from_slice(&0x7ff0u16.to_le_bytes());
    w.write(s + 0x900, &res);
    let free = w.xen.frames.free_count();
    let op = hypercall_abi::memory::XENMEM_decrease_reservation as u64;
    assert_eq!(w.hypercall(nr::MEMORY_OP, [op, s + 0x900, 0, 0, 0]), 1);
    assert_eq!(w.xen.frames.free_count(), free, "still mapped: not free yet");
    assert_eq!(w.hypercall(nr::MEMORY_OP, [op, s + 0x900, 0, 0, 0]), 0, "cannot give it back twice");
    invariants_hold(&w);
    assert_eq!(w.mmu_update(l1e, 0, 0x7ff0), 0);
    assert_eq!(w.xen.frames.free_count(), free + 1);
    assert_eq!(w.xen.frames.get(page).unwrap().owner, Owner::Free);
    invariants_hold(&w);
}

#[test]
fn a_batch_stops_at_the_first_bad_entry_and_reports_progress() {
    let mut w = World::new();
    let s = w.scratch;
    let good = w.pfn(w.spare_pfn(0));
    let pt = w.pfn(w.layout.pfn_of(w.layout.vpt_start));
    let (_, a) = w.l1e_maddr(s + 0x2000);
    let (_, b) = w.l1e_maddr(s + 0x3000);
    let mut reqs = alloc::vec::Vec::new();
    for (p, v) in [(a, good.maddr() | RW), (b, pt.maddr() | RW), (a, 0)] {
        reqs.extend_from_slice(&p.to_le_bytes());
        reqs.extend_from_slice(&v.to_le_bytes());
    }
    w.write(s, &reqs);
    w.write(s + 0x400, &[0xff; 4]);
    let rc = w.hypercall(nr::MMU_UPDATE, [s, 3, s + 0x400, 0x7ff0, 0]);
    assert_eq!(rc, EBUSY, "the second entry maps a page table writable");
    assert_eq!(w.xen.guest_mem().unwrap().read_u32(s + 0x400).unwrap(), 1, "one entry done");
    assert_eq!(entry_at(&w, a), good.maddr() | RW | _PAGE_USER, "the first entry was written");
    // (The third entry would have cleared it: the batch stopped before it.)
    invariants_hold(&w);
}

#[test]
fn a_long_batch_is_preempted_and_resumed_to_completion() {
    let mut w = World::new();
    let s = w.scratch;
    let (_, a) = w.l1e_maddr(s + 0x2000);
    let page = w.pfn(w.spare_pfn(0));
    let n = 3000u64;
    let mut reqs = alloc::vec::Vec::new();
    for i in 0..n {
        reqs.extend_from_slice(&a.to_le_bytes());
        let v = if i % 2 == 0 { page.maddr() | RW } else { page.maddr() | RO };
        reqs.extend_from_slice(&v.to_le_bytes());
    }
    let buf = w.layout.vkern_end.next_multiple_of(4096);
    // The request array is larger than the scratch area: put it in the P2M
    // list's region? No: use the free padding below scratch.
    let base = w.layout.vstack_end + 0x1000;
    assert!(base + reqs.len() as u64 <= s, "{buf:#x}");
    w.write(base, &reqs);
    assert_eq!(w.hypercall(nr::MMU_UPDATE, [base, n, s + 0x400, 0x7ff0, 0]), 0);
    assert_eq!(w.xen.guest_mem().unwrap().read_u32(s + 0x400).unwrap(), n as u32);
    invariants_hold(&w);
}

#[test]
fn multicall_results_are_written_back_and_nesting_is_refused() {
    let mut w = World::new();
    let s = w.scratch;
    let mut calls = alloc::vec::Vec::new();
    for (op, a0) in [(nr::XEN_VERSION, 0u64), (99, 0), (nr::MULTICALL, 0)] {
        let mut e = [0u64; 8];
        e[0] = op;
        e[1] = 0x5555;
        e[2] = a0;
        for x in e {
            calls.extend_from_slice(&x.to_le_bytes());
        }
    }
    w.write(s, &calls);
    assert_eq!(w.hypercall(nr::MULTICALL, [s, 3, 0, 0, 0]), 0);
    assert_eq!(w.read_u64(s + 8), 0x4_0011, "xen_version result");
    assert_eq!(w.read_u64(s + 64 + 8) as i64, Errno::ENOSYS.to_ret());
    assert_eq!(w.read_u64(s + 128 + 8) as i64, EINVAL);
}

impl World {
    fn xen_mm(&mut self) -> crate::mm::validate::Mm<'_, crate::testing::HostPlatform> {
        let slots = self.xen.platform.hypervisor_slots;
        crate::mm::validate::Mm::new(&self.xen.platform, &mut self.xen.frames, slots)
    }
}

#[test]
fn a_long_mmuext_batch_is_preempted_and_resumed_with_its_done_count() {
    let mut w = World::new();
    let s = w.scratch;
    let n = 2500u64;
    let mut ops = alloc::vec::Vec::new();
    for _ in 0..n {
        ops.extend_from_slice(&(hypercall_abi::mm::MMUEXT_TLB_FLUSH_LOCAL as u64).to_le_bytes());
        ops.extend_from_slice(&[0u8; 16]);
    }
    let base = w.layout.vstack_end + 0x1000;
    assert!(base + ops.len() as u64 <= s);
    w.write(base, &ops);
    // A bad command at the end: everything before it counts as done.
    w.write(base + 24 * (n - 1), &99u64.to_le_bytes());
    w.write(s + 0x400, &[0xff; 4]);
    let rc = w.hypercall(nr::MMUEXT_OP, [base, n, s + 0x400, 0x7ff0, 0]);
    assert_eq!(rc, Errno::ENOSYS.to_ret(), "the last command is unknown");
    assert_eq!(w.xen.guest_mem().unwrap().read_u32(s + 0x400).unwrap(), (n - 1) as u32, "done across continuations");
}

/// Xen's adjust_guest_l1e on validation: a kernel (ring 3) that builds a
/// table without _PAGE_USER and pins it must still be able to use it, so
/// validation adds the bit, as mod_entry does for single updates.
#[test]
fn pinning_a_table_makes_its_present_entries_user_entries() {
    let mut w = World::new();
    let table = w.pfn(w.spare_pfn(0));
    let data = w.pfn(w.spare_pfn(1));
    w.xen.platform.write_u64(table, 0, data.maddr() | _PAGE_PRESENT | _PAGE_RW);
    w.xen.platform.write_u64(table, 1, data.maddr()); // not present: untouched
    assert_eq!(w.mmuext(MMUEXT_PIN_L1_TABLE, table.0, 0), 0);
    assert_eq!(w.xen.platform.read_u64(table, 0), data.maddr() | _PAGE_PRESENT | _PAGE_RW | _PAGE_USER);
    assert_eq!(w.xen.platform.read_u64(table, 1), data.maddr());
    invariants_hold(&w);
}
