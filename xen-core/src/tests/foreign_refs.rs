//! The second adversarial review: what a hostile guest can do with
//! references that outlive their owner (a granter destroyed under a live
//! mapping, its id given to a new domain), frames given back while still
//! mapped or pinned, and the other cross-domain edges of grants, event
//! channels and the MMU. Each test fails on the tree before its fix.

use super::invariants::check;
use super::{World, RW};
use crate::domain::DomId;
use crate::mm::pte::_PAGE_GLOBAL;
use crate::mm::{Mfn, Owner, PageType};
use crate::regs::GuestRegs;
use crate::xen::Next;
use hypercall_abi::grant::*;
use hypercall_abi::mm::{MMUEXT_PIN_L1_TABLE, MMUEXT_UNPIN_TABLE};
use hypercall_abi::nr;

fn invariants_hold(w: &World) {
    if let Err(e) = check(&w.xen) {
        panic!("invariant broken: {e}");
    }
}

/// A backend (d2) maps a frontend's (d1) grant writable; the frontend is
/// destroyed, and a new domain gets id 1 and grants the same backend a
/// page, which it maps. The backend then unmaps its stale handle from the
/// old domain. That unmap must not touch the new domain's grant entry:
/// before the fix it decremented the new entry's writer count and cleared
/// `GTF_reading|GTF_writing` while the page was still mapped writable, so
/// the new domain would think its grant revoked (`gnttab_end_foreign_access`
/// succeeds) and reuse a page another domain can still write. Xen keeps
/// the old domain as a zombie (its id unused) until every reference to it
/// is gone; here the destruction cuts the stale mappings loose from the id.
#[test]
fn a_stale_mapping_of_a_destroyed_granter_cannot_touch_a_new_domain_with_its_id() {
    let mut w = World::new();
    let (d1, d2) = (DomId(1), DomId(2));
    w.add_domain(d1, false);
    w.add_domain(d2, false);
    w.switch_to(1);
    let old_page = w.pfn(w.spare_pfn(0));
    assert_eq!(w.setup_grants(1).0, GNTST_okay);
    w.grant(1, 5, 2, old_page, GTF_permit_access);
    w.switch_to(2);
    let va_old = w.scratch + 0x2000;
    let (st, h_old) = w.map_grant(va_old, 1, 5, false);
    assert_eq!(st, GNTST_okay);
    // Dom0 destroys the frontend; its page lives on, mapped.
    w.switch_to(0);
    w.xen.destroy_domain(d1).unwrap();
    assert_eq!(w.xen.frames.get(old_page).unwrap().owner, Owner::Dead);
    // A new domain with the same id grants the backend a page.
    w.add_domain(d1, false);
    w.switch_to(1);
    let new_page = w.pfn(w.spare_pfn(0));
    assert_eq!(w.setup_grants(1).0, GNTST_okay);
    w.grant(1, 5, 2, new_page, GTF_permit_access);
    w.switch_to(2);
    let va_new = w.scratch + 0x3000;
    let (st, h_new) = w.map_grant(va_new, 1, 5, false);
    assert_eq!(st, GNTST_okay);
    assert_ne!(h_new, h_old);
    let in_use = GTF_permit_access | GTF_reading | GTF_writing;
    assert_eq!(w.entry_flags(1, 5), in_use);
    // The stale handle goes; the old page with it.
    assert_eq!(w.unmap_grant(va_old, h_old), GNTST_okay);
    assert_eq!(w.xen.frames.get(old_page).unwrap().owner, Owner::Free);
    assert_eq!(w.entry_flags(1, 5), in_use, "the stale unmap marked the new domain's grant as no longer in use");
    assert_eq!(w.xen.domains[&d1].gnttab.active.get(&5).map(|a| (a.readers, a.writers)), Some((0, 1)));
    invariants_hold(&w);
    // The real mapping's unmap still releases the new entry.
    assert_eq!(w.unmap_grant(va_new, h_new), GNTST_okay);
    assert_eq!(w.entry_flags(1, 5), GTF_permit_access);
    assert!(w.xen.domains[&d1].gnttab.active.is_empty());
    invariants_hold(&w);
}

/// `XENMEM_increase_reservation` / `decrease_reservation` for the current
/// domain with one extent listed at `scratch + 0x800`; returns the extents
/// done and the frame named.
fn reservation(w: &mut World, op: u32, mfn: Mfn) -> (i64, Mfn) {
    let s = w.scratch;
    w.write(s + 0x800, &mfn.0.to_le_bytes());
    let mut res = [0u8; 32];
    res[..8].copy_from_slice(&(s + 0x800).to_le_bytes());
    res[8..16].copy_from_slice(&1u64.to_le_bytes());
    res[24..26].copy_from_slice(&0x7ff0u16.to_le_bytes());
    w.write(s + 0x900, &res);
    let rc = w.hypercall(nr::MEMORY_OP, [op as u64, s + 0x900, 0, 0, 0]);
    (rc, Mfn(w.read_u64(s + 0x800)))
}

/// A guest at its memory limit gives back a frame it still maps (or has
/// pinned) and asks for a new one. On Xen the given-back frame still counts
/// against the domain until it is really freed (`tot_pages` drops in
/// `free_domheap_pages`), so the request fails. Before the fix it counted
/// no more: one L1 of 512 such mappings per page of quota (or one pin per
/// frame) let a small guest hold every free frame of the machine, and no
/// other domain could be given memory.
#[test]
fn frames_given_back_but_still_mapped_or_pinned_count_against_the_domain() {
    use hypercall_abi::memory::{XENMEM_decrease_reservation as DEC, XENMEM_increase_reservation as INC};
    let me = DomId(1);
    let mut w = World::with_domain(me, false);
    let tot = w.xen.domains[&me].tot_pages;
    w.xen.domains.get_mut(&me).unwrap().max_pages = tot;
    let free = w.xen.frames.free_count();
    // One frame mapped, one pinned as an (empty) L1.
    let mapped = w.pfn(w.spare_pfn(0));
    let pinned = w.pfn(w.spare_pfn(1));
    let va = w.scratch + 0x2000;
    let (_, l1e) = w.l1e_maddr(va);
    assert_eq!(w.mmu_update(l1e, mapped.maddr() | RW, 0x7ff0), 0);
    assert_eq!(w.mmuext(MMUEXT_PIN_L1_TABLE, pinned.0, 0), 0);
    for f in [mapped, pinned] {
        assert_eq!(reservation(&mut w, DEC, f).0, 1, "given back");
        assert_eq!(w.xen.frames.get(f).unwrap().owner, Owner::Dom(me), "still in use");
        assert_eq!(reservation(&mut w, INC, Mfn(0)).0, 0, "over the limit with a frame given back but alive");
    }
    assert_eq!(w.xen.frames.free_count(), free, "no frame taken beyond the limit");
    // Once the frames are really freed, the room is back.
    assert_eq!(w.mmu_update(l1e, 0, 0x7ff0), 0);
    assert_eq!(w.mmuext(MMUEXT_UNPIN_TABLE, pinned.0, 0), 0);
    assert_eq!(w.xen.frames.get(mapped).unwrap().owner, Owner::Free);
    assert_eq!(w.xen.frames.get(pinned).unwrap().owner, Owner::Free);
    assert_eq!(reservation(&mut w, INC, Mfn(0)).0, 1);
    assert_eq!(reservation(&mut w, INC, Mfn(0)).0, 1);
    assert_eq!(reservation(&mut w, INC, Mfn(0)).0, 0, "exactly the two frames freed");
    invariants_hold(&w);
}

/// Did the return to the guest drop every TLB entry, global ones included
/// (a flush while in the hypervisor, or the flushing CR3 load)?
fn tlb_dropped(w: &World, flushes_before: u64, next: &Next) -> bool {
    w.xen.platform.tlb_flushes.get() > flushes_before || matches!(next, Next::Resume { flush_global: true, .. })
}

/// A frame the guest mapped writable, with `_PAGE_GLOBAL`, and unmapped
/// again without a flush: its TLB entry may live on (the guest's own
/// business while the frame stays a writable page).
fn once_writable_frame(w: &mut World, k: u64) -> Mfn {
    let x = w.pfn(w.spare_pfn(k));
    let (_, l1e) = w.l1e_maddr(w.scratch + 0x2000);
    assert_eq!(w.mmu_update(l1e, x.maddr() | RW | _PAGE_GLOBAL, 0x7ff0), 0);
    assert_eq!(w.mmu_update(l1e, 0, 0x7ff0), 0);
    assert_eq!(w.xen.frames.get(x).unwrap().ty, PageType::Writable);
    // The same vCPU runs on: no switch flushes for us.
    w.xen.tlb_vcpu = w.xen.current;
    x
}

/// Once a frame that was writable becomes a page table, the TLB must be
/// flushed before the guest runs again (the frame table's
/// `need_tlb_flush`), or a stale writable entry writes the new table and
/// maps any machine frame. Only the hypercall exit honoured the flag: a
/// `mov %cr3` emulated on #GP validates a new tree and returned to the
/// guest without a flush (the CR3 load keeps global entries, which PV
/// guests may set). Xen flushes in `_get_page_type` on every such change.
#[test]
fn a_frame_retyped_outside_a_hypercall_leaves_no_stale_writable_tlb_entry() {
    let me = DomId(1);
    let mut w = World::with_domain(me, false);
    let x = once_writable_frame(&mut w, 0);
    let before = w.xen.platform.tlb_flushes.get();
    // mov %rax, %cr3 at scratch + 0x3000, faulting with #GP(0) as in ring 3.
    let at = w.scratch + 0x3000;
    w.write(at, &[0x0f, 0x22, 0xd8]);
    let mut regs = GuestRegs { entry_vector: 13, rip: at, cs: 0xe033, ss: 0xe02b, rsp: w.layout.vstack_end - 0x100, rflags: 0x202, rax: x.0 << 12, ..GuestRegs::default() };
    let next = w.xen.guest_exception(&mut regs, 0);
    assert_eq!(regs.rip, at + 3, "emulated");
    assert_eq!((w.xen.domains[&me].vcpus[0].cr3, w.xen.frames.get(x).unwrap().ty), (x, PageType::L4));
    assert!(tlb_dropped(&w, before, &next), "back in the guest with its stale writable entry for the new L4: {next:?}");
}

/// The same through a multicall that ends in `iret` (the batch's pin makes
/// a once-writable frame an L1, then the `iret` runs on the live frame):
/// this path already flushed before the `iret`; kept as a guard, since
/// moving the flush after the `iret` would reopen the hole.
#[test]
fn a_frame_retyped_in_a_multicall_ending_in_iret_leaves_no_stale_writable_tlb_entry() {
    let me = DomId(1);
    let mut w = World::with_domain(me, false);
    let x = once_writable_frame(&mut w, 0);
    // [mmuext_op(pin x as L1), iret]; the iret returns to kernel mode.
    let s = w.scratch;
    let mut op = [0u8; 24];
    op[..4].copy_from_slice(&MMUEXT_PIN_L1_TABLE.to_le_bytes());
    op[8..16].copy_from_slice(&x.0.to_le_bytes());
    w.write(s + 0x100, &op);
    let list = s + 0x400;
    let mut b = [0u8; 128];
    b[0..8].copy_from_slice(&nr::MMUEXT_OP.to_le_bytes());
    for (i, a) in [s + 0x100, 1, 0, 0x7ff0].iter().enumerate() {
        b[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
    }
    b[64..72].copy_from_slice(&nr::IRET.to_le_bytes());
    w.write(list, &b);
    let sp = w.layout.vstack_end - 0x200;
    let ctx = [0u64, 0, 0, 0, 0x100040, 0xe030, 0x202, sp + 0x100, 0xe02b];
    let raw: alloc::vec::Vec<u8> = ctx.iter().flat_map(|x| x.to_le_bytes()).collect();
    w.write(sp, &raw);
    let before = w.xen.platform.tlb_flushes.get();
    let mut regs = GuestRegs { rax: nr::MULTICALL, rdi: list, rsi: 2, rsp: sp, rip: 0x101000 + 32 * 13 + 9, cs: 0xe033, ss: 0xe02b, ..GuestRegs::default() };
    let next = w.xen.hypercall(&mut regs);
    assert_eq!(regs.rip, 0x100040, "the iret was done");
    assert!(w.xen.frames.get(x).unwrap().pinned && w.xen.frames.get(x).unwrap().ty == PageType::L1);
    assert!(tlb_dropped(&w, before, &next), "back in the guest with its stale writable entry for the new L1: {next:?}");
}

/// XSA-45 through the other door: `mov %rax, %cr3` (emulated on #GP) to
/// the root of an unvalidated tree of an L3, an L2 and 40 full L1s (some
/// 22 000 entries) validated the whole tree in one go, outside any
/// hypercall and so outside the work budget: a guest with more memory
/// holds the only CPU for as long as it likes. Xen's `write_cr` answers
/// `-ERESTART` from `new_guest_cr3` with `X86EMUL_RETRY`: the instruction
/// runs again and the validation goes on from where it stopped.
#[test]
fn a_deep_tree_loaded_with_mov_to_cr3_is_validated_in_bounded_steps() {
    use crate::hypercall::PT_WORK_BUDGET;
    const NR_L1: u64 = 40;
    let me = DomId(1);
    let mut w = World::with_domain(me, false);
    let spare = |w: &World, k: u64| w.pfn(w.spare_pfn(k));
    let (l4, l3, l2, data) = (spare(&w, 0), spare(&w, 1), spare(&w, 2), spare(&w, 100));
    let mem = &w.xen.platform;
    crate::mm::MachineMemory::write_u64(mem, l4, 0, l3.maddr() | RW);
    crate::mm::MachineMemory::write_u64(mem, l3, 0, l2.maddr() | RW);
    for k in 0..NR_L1 {
        let l1 = spare(&w, 3 + k);
        crate::mm::MachineMemory::write_u64(mem, l2, k as usize, l1.maddr() | RW);
        for i in 0..512 {
            crate::mm::MachineMemory::write_u64(mem, l1, i, data.maddr() | super::RO);
        }
    }
    let at = w.scratch + 0x3000;
    w.write(at, &[0x0f, 0x22, 0xd8]);
    let mut steps = 0u64;
    let mut partial_seen = false;
    loop {
        steps += 1;
        assert!(steps < 1000, "no progress");
        let mut regs = GuestRegs { entry_vector: 13, rip: at, cs: 0xe033, ss: 0xe02b, rsp: w.layout.vstack_end - 0x100, rflags: 0x202, rax: l4.0 << 12, ..GuestRegs::default() };
        w.xen.guest_exception(&mut regs, 0);
        partial_seen |= w.xen.frames.iter().any(|(_, pg)| pg.partial);
        invariants_hold(&w);
        if regs.rip == at + 3 {
            break;
        }
        assert_eq!(regs.rip, at, "run again, not the guest's #GP");
    }
    let work = (NR_L1 + 3) * 512;
    assert!(steps >= work / PT_WORK_BUDGET as u64, "{work} entries validated in {steps} steps");
    assert!(partial_seen, "progress is kept in the frames between steps");
    assert_eq!(w.xen.domains[&me].vcpus[0].cr3, l4);
    assert_eq!(w.xen.frames.get(data).unwrap().count, 1 + NR_L1 as u32 * 512);
}

/// Finding a free maptrack handle was a scan for the lowest free slot:
/// a guest holding Xen's maximum of grant mappings (262 144, which takes
/// 512 L1 tables) made every further map scan them all, about a second
/// of the only CPU per hypercall entry of 256 maps (measured in a release
/// build), again and again. Handles now come from a free list, oldest
/// freed first as on Xen's maptrack lists; a lowest-slot scan fails the
/// order asserted here.
#[test]
fn maptrack_handles_come_from_a_free_list_not_a_scan() {
    let me = DomId(1);
    let mut w = World::with_domain(me, false);
    let page = w.pfn(w.spare_pfn(0));
    assert_eq!(w.setup_grants(1).0, GNTST_okay);
    w.grant(1, 3, 1, page, GTF_permit_access);
    let base = w.scratch + 0x8000;
    let va = |k: u64| base + 0x1000 * k;
    let vas: alloc::vec::Vec<u64> = (0..4).map(va).collect();
    let h: alloc::vec::Vec<u32> = vas.iter().map(|&a| w.map_grant(a, 0x7ff0, 3, true)).map(|(st, h)| {
        assert_eq!(st, GNTST_okay);
        h
    }).collect();
    assert_eq!(h, [0, 1, 2, 3]);
    assert_eq!(w.unmap_grant(vas[2], 2), GNTST_okay);
    assert_eq!(w.unmap_grant(vas[0], 0), GNTST_okay);
    assert_eq!(w.map_grant(vas[2], 0x7ff0, 3, true), (GNTST_okay, 2), "the handle freed first");
    assert_eq!(w.map_grant(vas[0], 0x7ff0, 3, true), (GNTST_okay, 0));
    assert_eq!(w.map_grant(va(4), 0x7ff0, 3, true), (GNTST_okay, 4), "none free: a new one");
    invariants_hold(&w);
}
