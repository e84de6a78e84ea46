//! The guest escapes of issue 9, each as a hostile unprivileged guest
//! (or Dom0, where Dom0 is the one that must be held back) would try it,
//! through the hypercall and exception entries. Each test fails on a core
//! without the fix it names.

use super::invariants::check;
use super::{World, RW};
use crate::domain::DomId;
use crate::guest_access::GuestMem;
use crate::mm::pte::*;
use crate::mm::{MachineMemory, Mfn};
use crate::regs::GuestRegs;
use hypercall_abi::errno::Errno;
use hypercall_abi::mm::{
    MMUEXT_PIN_L1_TABLE, MMUEXT_PIN_L2_TABLE, MMUEXT_PIN_L3_TABLE, MMUEXT_PIN_L4_TABLE,
};
use hypercall_abi::nr;

const EINVAL: i64 = Errno::EINVAL.to_ret();

fn invariants_hold(w: &World) {
    if let Err(e) = check(&w.xen) {
        panic!("invariant broken: {e}");
    }
}

/// The table of `level` (4 = the root) on the way to `va` in `d`'s kernel
/// tables.
pub fn table_at(w: &World, d: DomId, va: u64, level: u8) -> Mfn {
    let p = &w.xen.platform;
    let mut t = w.xen.domains[&d].vcpus[0].cr3;
    for (l, idx) in [(4u8, l4_index(va)), (3, l3_index(va)), (2, l2_index(va))] {
        if l == level {
            return t;
        }
        t = Mfn(entry_mfn(p.read_u64(t, idx)));
    }
    t
}

/// A virtual address in the same 1 GiB as the kernel whose L2 slot the
/// builder left empty.
const UNUSED_2M: u64 = 500 << L2_SHIFT;

/// The escape the review found, step by step: a DomU pins its
/// `shared_info` as an L1, links it, and lets the #PF path write CR2 into
/// `vcpu_info.arch.cr2` (entry 2 of the "L1") as a writable mapping of one
/// of its real L1 tables. Xen refuses the first step: `shared_info` holds a
/// permanent writable type (`share_xen_page_with_guest`), so the pin is
/// `-EINVAL`, and nothing the later steps do creates a writable mapping.
#[test]
fn shared_info_can_never_become_a_page_table() {
    let me = DomId(1);
    let mut w = World::with_domain(me, false);
    let si = w.xen.domains[&me].shared_info.mfn();
    // 1. Pin it as an L1 (the other levels and a GDT are tried below).
    let pin = w.mmuext(MMUEXT_PIN_L1_TABLE, si.0, 0);
    // 2. Link it as an L1 under one of our L2s.
    let l2 = table_at(&w, me, UNUSED_2M, 2);
    let link = w.mmu_update(
        l2.maddr() + 8 * l2_index(UNUSED_2M) as u64,
        si.maddr() | RW,
        0x7ff0,
    );
    // The other levels, and a descriptor page.
    let mut others: alloc::vec::Vec<i64> = [
        MMUEXT_PIN_L2_TABLE,
        MMUEXT_PIN_L3_TABLE,
        MMUEXT_PIN_L4_TABLE,
    ]
    .iter()
    .map(|&c| w.mmuext(c, si.0, 0))
    .collect();
    let s = w.scratch + 0x200;
    w.write(s, &si.0.to_le_bytes());
    others.push(w.hypercall(nr::SET_GDT, [s, 512, 0, 0, 0]));
    // 3. Fault at an address whose bits are an RW, present PTE for one of
    //    our L1 tables: the hypervisor writes it into vcpu_info.arch.cr2.
    let victim = table_at(&w, me, w.scratch, 1);
    let mut regs = GuestRegs {
        entry_vector: 14,
        cs: 0xe033,
        ss: 0xe02b,
        rip: 0x100000,
        ..GuestRegs::default()
    };
    w.xen.guest_exception(&mut regs, victim.maddr() | 0x67);
    // With no #PF handler registered the domain died; what is left matters.
    // 4. Through the forged entry the guest would now write its own L1.
    let cr3 = w.xen.domains[&me].vcpus[0].cr3;
    let g = GuestMem::new(&w.xen.platform, cr3, w.xen.frames.len());
    assert!(
        g.write_u64(UNUSED_2M + 2 * 4096, 0).is_err(),
        "the guest can write its own page table"
    );
    invariants_hold(&w);
    assert_eq!(
        (pin, link),
        (EINVAL, EINVAL),
        "pinning and linking shared_info as an L1"
    );
    assert_eq!(
        others, [EINVAL; 4],
        "shared_info pinned as an L2, L3, L4 or used as a GDT frame"
    );
    invariants_hold(&w);
}

/// The same primitive through the grant table: the hypervisor sets
/// `GTF_reading`/`GTF_writing` in the granter's grant frames, so they are
/// shared frames too and can never be made a table or a GDT frame.
#[test]
fn grant_frames_can_never_become_page_tables() {
    let me = DomId(1);
    let mut w = World::with_domain(me, false);
    let (st, frames) = w.setup_grants(2);
    assert_eq!(st, hypercall_abi::grant::GNTST_okay);
    let l2 = table_at(&w, me, UNUSED_2M, 2);
    for g in frames {
        let pins: alloc::vec::Vec<i64> = [
            MMUEXT_PIN_L1_TABLE,
            MMUEXT_PIN_L2_TABLE,
            MMUEXT_PIN_L3_TABLE,
            MMUEXT_PIN_L4_TABLE,
        ]
        .iter()
        .map(|&cmd| w.mmuext(cmd, g.0, 0))
        .collect();
        let link = w.mmu_update(
            l2.maddr() + 8 * l2_index(UNUSED_2M) as u64,
            g.maddr() | RW,
            0x7ff0,
        );
        let s = w.scratch + 0x200;
        w.write(s, &g.0.to_le_bytes());
        let gdt = w.hypercall(nr::SET_GDT, [s, 512, 0, 0, 0]);
        invariants_hold(&w);
        assert_eq!(pins, [EINVAL; 4], "grant frame {g:?} pinned as a table");
        assert_eq!(
            (link, gdt),
            (EINVAL, EINVAL),
            "grant frame {g:?} linked as an L1 / used as a GDT"
        );
        // Still the guest's to map and write (that is what it is for).
        let (_, l1e) = w.l1e_maddr(w.scratch + 0x3000);
        assert_eq!(w.mmu_update(l1e, g.maddr() | RW, 0x7ff0), 0);
        assert_eq!(w.mmu_update(l1e, 0, 0x7ff0), 0);
    }
    invariants_hold(&w);
}

/// Finding 5: `foreigndom` names the owner of mapped *frames*; an L2-L4
/// entry links a table and is checked against the table's owner, as Xen's
/// `mod_l2..l4_entry`. Dom0 could link a guest's L1 (or L2, L3) into its
/// own tree, sharing the guest's live page tables.
#[test]
fn foreign_page_tables_cannot_be_linked_into_another_tree() {
    let mut w = World::new();
    let guest = DomId(1);
    w.add_domain(guest, false);
    let va = 0x100000;
    let mut rcs = alloc::vec::Vec::new();
    for level in [2u8, 3, 4] {
        let mine = table_at(&w, DomId(0), UNUSED_2M, level);
        let theirs = table_at(&w, guest, va, level - 1);
        let slot = match level {
            2 => l2_index(UNUSED_2M),
            3 => 300,
            _ => 200,
        };
        rcs.push(w.mmu_update(mine.maddr() + 8 * slot as u64, theirs.maddr() | RW, guest.0 as u64));
    }
    invariants_hold(&w);
    assert_eq!(rcs, [EINVAL; 3], "Dom0 linked a guest's L1, L2, L3 into its own tables");
    // A leaf naming the guest's frame is what foreigndom is for.
    let (_, l1e) = w.l1e_maddr(w.scratch + 0x2000);
    let frame = w.xen.domains[&guest].p2m[3];
    assert_eq!(w.mmu_update(l1e, frame.maddr() | RW, guest.0 as u64), 0);
    invariants_hold(&w);
}

/// Finding 6: a global VIRQ moved to vCPU 1 with `bind_vcpu` and then
/// closed left vCPU 0's `virq_to_evtchn` entry behind; every later bind was
/// `-EEXIST`, and the VIRQ would be raised on whatever reused the port.
/// Xen's `evtchn_close` clears the binding on whichever vCPU holds it.
#[test]
fn a_virq_moved_to_another_vcpu_and_closed_can_be_bound_again() {
    use hypercall_abi::evtchn::*;
    let mut w = World::with_domain(DomId(1), false);
    let bind = |w: &mut World| {
        let mut a = [0u8; 12];
        a[0..4].copy_from_slice(&VIRQ_CON_RING.to_le_bytes());
        let (rc, out) = w.evtchn(EVTCHNOP_bind_virq, &a);
        (rc, u32::from_le_bytes(out[8..12].try_into().unwrap()))
    };
    let (rc, port) = bind(&mut w);
    assert_eq!(rc, 0);
    let mut a = [0u8; 8];
    a[0..4].copy_from_slice(&port.to_le_bytes());
    a[4..8].copy_from_slice(&1u32.to_le_bytes());
    assert_eq!(w.evtchn(EVTCHNOP_bind_vcpu, &a).0, 0);
    assert_eq!(w.port_op(EVTCHNOP_close, port), 0);
    if let Err(e) = super::events_props::channels_consistent(&w) {
        panic!("after close: {e}");
    }
    // The port is reused for an IPI: the VIRQ must not be raised on it.
    let (rc, ipi) = {
        let (rc, out) = w.evtchn(EVTCHNOP_bind_ipi, &[0u8; 8]);
        (rc, u32::from_le_bytes(out[4..8].try_into().unwrap()))
    };
    assert_eq!((rc, ipi), (0, port), "the closed port is the lowest free one");
    w.xen.send_virq(DomId(1), 0, VIRQ_CON_RING);
    assert!(!w.xen.port_pending(DomId(1), ipi), "the VIRQ reached a port no longer bound to it");
    let (rc, again) = bind(&mut w);
    assert_eq!(rc, 0, "rebinding the VIRQ after close");
    assert_ne!(again, ipi);
}

/// Finding 9: `release_mapping` trusted the (L1, index) it recorded at map
/// time. A mapper that drops that L1 and gives the frame back lets it
/// become another domain's L1; a grant mapping of the same frame there
/// looks like its own, and its unmap would tear down the other domain's
/// PTE. The recorded L1 must still be the mapper's own L1, holding that
/// very grant mapping.
#[test]
fn a_stale_grant_handle_cannot_touch_a_reused_page_table() {
    use hypercall_abi::grant::*;
    let (d1, d2, d3) = (DomId(1), DomId(2), DomId(3));
    let mut w = World::with_domain(d1, false);
    w.add_domain(d2, false);
    w.add_domain(d3, false);
    let page = w.pfn(w.spare_pfn(0));
    assert_eq!(w.setup_grants(1).0, GNTST_okay);
    w.grant(1, 5, 2, page, GTF_permit_access);
    w.grant(1, 6, 3, page, GTF_permit_access);
    // d2 makes a fresh L1, links it, and maps gref 5 through it.
    w.switch_to(2);
    let x = w.xen.domains[&d2].p2m[w.spare_pfn(1) as usize];
    let l2 = table_at(&w, d2, UNUSED_2M, 2);
    let l2e = l2.maddr() + 8 * l2_index(UNUSED_2M) as u64;
    assert_eq!(w.mmu_update(l2e, x.maddr() | RW, 0x7ff0), 0);
    let va_a = UNUSED_2M + 0x5000;
    let (st, h2) = w.map_grant(va_a, 1, 5, false);
    assert_eq!(st, GNTST_okay);
    // It unlinks that L1 (dropping everything it held) and gives it back.
    assert_eq!(w.mmu_update(l2e, 0, 0x7ff0), 0);
    let s = w.scratch;
    w.write(s + 0x800, &x.0.to_le_bytes());
    let mut res = [0u8; 32];
    res[..8].copy_from_slice(&(s + 0x800).to_le_bytes());
    res[8..16].copy_from_slice(&1u64.to_le_bytes());
    res[24..26].copy_from_slice(&0x7ff0u16.to_le_bytes());
    w.write(s + 0x900, &res);
    let op = hypercall_abi::memory::XENMEM_decrease_reservation as u64;
    assert_eq!(w.hypercall(nr::MEMORY_OP, [op, s + 0x900, 0, 0, 0]), 1);
    assert_eq!(w.xen.frames.get(x).unwrap().owner, crate::mm::Owner::Free);
    // The frame comes back as d3's, which makes it an L1 and maps gref 6
    // at the same index.
    let x3 = w.xen.frames.alloc(&w.xen.platform, crate::mm::Owner::Dom(d3)).unwrap();
    assert_eq!(x3, x, "the allocator hands the frame straight out again");
    w.switch_to(3);
    assert_eq!(w.mmuext(MMUEXT_PIN_L1_TABLE, x.0, 0), 0);
    let l2 = table_at(&w, d3, UNUSED_2M, 2);
    assert_eq!(w.mmu_update(l2.maddr() + 8 * l2_index(UNUSED_2M) as u64, x.maddr() | RW, 0x7ff0), 0);
    let va_b = UNUSED_2M + 4096 * l1_index(va_a) as u64;
    let (st, _h3) = w.map_grant(va_b, 1, 6, false);
    assert_eq!(st, GNTST_okay);
    let theirs = w.xen.platform.read_u64(x, l1_index(va_a));
    // d2's stale handle: nothing of d3's may change.
    w.switch_to(2);
    w.unmap_grant(0, h2);
    assert_eq!(w.xen.platform.read_u64(x, l1_index(va_a)), theirs, "d2 removed d3's grant mapping");
    invariants_hold(&w);
}

/// Finding 8: arithmetic on guest values wraps or is checked as Xen's C
/// does, never panics (tests run with overflow checks, as a debug build of
/// the hypervisor does). A period beyond `STIME_DELTA_MAX` is `-EINVAL`, as
/// on Xen; pointers at the top of the address space fault.
#[test]
fn extreme_guest_values_get_errors_not_overflows() {
    use hypercall_abi::vcpu::VCPUOP_set_periodic_timer;
    let mut w = World::with_domain(DomId(1), false);
    w.xen.platform.advance(5_000_000);
    let s = w.scratch + 0x600;
    for period in [u64::MAX, i64::MAX as u64 + 1] {
        w.write(s, &period.to_le_bytes());
        assert_eq!(w.hypercall(nr::VCPU_OP, [VCPUOP_set_periodic_timer as u64, 0, s, 0, 0]), EINVAL, "period {period:#x}");
    }
    w.write(s, &(i64::MAX as u64).to_le_bytes());
    assert_eq!(w.hypercall(nr::VCPU_OP, [VCPUOP_set_periodic_timer as u64, 0, s, 0, 0]), 0, "the largest period Xen takes");
    w.xen.platform.advance(1_000_000);
    w.xen.run_timers();
    // Batches and argument blocks whose pointers sit at the very top.
    let efault = Errno::EFAULT.to_ret();
    for ptr in [u64::MAX, u64::MAX - 7, 0x0000_7fff_ffff_fff0] {
        for (nr, args) in [
            (nr::MMU_UPDATE, [ptr, 4, 0, 0x7ff0, 0]),
            (nr::MMUEXT_OP, [ptr, 4, 0, 0x7ff0, 0]),
            (nr::MULTICALL, [ptr, 2, 0, 0, 0]),
            (nr::GRANT_TABLE_OP, [0, ptr, 3, 0, 0]),
            (nr::GRANT_TABLE_OP, [2, ptr, 1, 0, 0]),
            (nr::EVENT_CHANNEL_OP, [6, ptr, 0, 0, 0]),
            (nr::MEMORY_OP, [0, ptr, 0, 0, 0]),
            (nr::SET_TRAP_TABLE, [ptr, 0, 0, 0, 0]),
            (nr::VCPU_OP, [VCPUOP_set_periodic_timer as u64, 0, ptr, 0, 0]),
            (nr::SCHED_OP, [2, ptr, 0, 0, 0]),
        ] {
            assert_eq!(w.hypercall(nr, args), efault, "hypercall {nr} with pointer {ptr:#x}");
        }
    }
    invariants_hold(&w);
}

const NR_L1: u64 = 40;

/// Spare frame `k` of `me`.
fn spare(w: &World, me: DomId, k: u64) -> Mfn {
    w.xen.domains[&me].p2m[w.spare_pfn(k) as usize]
}

/// An unvalidated tree in `me`'s spare frames: L4 (spare 0) -> L3 -> L2 ->
/// `NR_L1` full L1s mapping spare 100 read-only. Returns the L4, the data
/// frame, and the mmuext_op arguments that pin the L4.
fn deep_tree(w: &mut World, me: DomId) -> (Mfn, Mfn, [u64; 5]) {
    let (l4, l3, l2, data) = (spare(w, me, 0), spare(w, me, 1), spare(w, me, 2), spare(w, me, 100));
    let mem = &w.xen.platform;
    mem.write_u64(l4, 0, l3.maddr() | RW);
    mem.write_u64(l3, 0, l2.maddr() | RW);
    for k in 0..NR_L1 {
        let l1 = spare(w, me, 3 + k);
        mem.write_u64(l2, k as usize, l1.maddr() | RW);
        for i in 0..512 {
            mem.write_u64(l1, i, data.maddr() | super::RO);
        }
    }
    let s = w.scratch + 0x100;
    let mut op = [0u8; 24];
    op[..4].copy_from_slice(&MMUEXT_PIN_L4_TABLE.to_le_bytes());
    op[8..16].copy_from_slice(&l4.0.to_le_bytes());
    w.write(s, &op);
    (l4, data, [s, 1, 0, 0x7ff0, 0])
}

/// Run one hypercall through the entry point and count how many times the
/// guest had to enter the hypervisor (continuations included).
fn entries_for(w: &mut World, nr: u64, args: [u64; 5], mut between: impl FnMut(&World)) -> (i64, u32) {
    let page = 0x101000 + 32 * nr;
    let mut regs = super::hypercall_frame(nr, args);
    let mut entries = 0;
    loop {
        entries += 1;
        w.xen.hypercall(&mut regs);
        if regs.rax == nr && regs.rip == page + 7 {
            between(w);
            regs.rip += 2;
            continue;
        }
        return (regs.rax as i64, entries);
    }
}

/// Finding 7 (XSA-45): validating (and dropping) a deep tree is bounded
/// work per entry into the hypervisor. A guest pins an L4 over an L3, an L2
/// and 40 full L1s (some 22 000 entries): the pin is continued several
/// times, each step keeping its progress in the frames (`partial`), every
/// invariant holding in between; the unpin's teardown is likewise spread
/// over the domain's next entries.
#[test]
fn a_deep_tree_is_validated_and_dropped_in_bounded_steps() {
    use crate::hypercall::PT_WORK_BUDGET;
    let me = DomId(1);
    let mut w = World::with_domain(me, false);
    let (l4, data, args) = deep_tree(&mut w, me);
    let f = |w: &World, k: u64| spare(w, me, k);
    let mut partial_seen = false;
    let (rc, entries) = entries_for(&mut w, nr::MMUEXT_OP, args, |w| {
        partial_seen |= w.xen.frames.iter().any(|(_, pg)| pg.partial);
        invariants_hold(w);
    });
    assert_eq!(rc, 0);
    let work = (NR_L1 + 3) * 512;
    assert!(entries as u64 >= work / PT_WORK_BUDGET as u64, "{work} entries validated in {entries} steps");
    assert!(partial_seen, "progress is kept in the frames between steps");
    assert_eq!(w.xen.frames.get(f(&w, 3)).unwrap().ty, crate::mm::PageType::L1);
    assert_eq!(w.xen.frames.get(data).unwrap().count, 1 + NR_L1 as u32 * 512);
    invariants_hold(&w);
    // Dropping it: the unpin returns at once, the rest is dropped at the
    // domain's next entries before anything else runs.
    assert_eq!(w.mmuext(hypercall_abi::mm::MMUEXT_UNPIN_TABLE, l4.0, 0), 0);
    assert!(w.xen.frames.has_deferred(me), "the teardown was bounded too");
    invariants_hold(&w);
    let (rc, entries) = entries_for(&mut w, nr::XEN_VERSION, [0, 0, 0, 0, 0], |w| invariants_hold(w));
    assert!(rc >= 0 && entries >= 2, "xen_version after the unpin: rc {rc}, {entries} entries");
    assert!(!w.xen.frames.has_deferred(me));
    assert_eq!(w.xen.frames.get(data).unwrap().count, 1);
    assert_eq!(w.xen.frames.get(f(&w, 3)).unwrap().type_count, 0);
    invariants_hold(&w);
}

/// A preempted validation that fails later gives everything back, and one
/// the guest never resumes is undone when its domain is destroyed.
#[test]
fn a_preempted_validation_fails_or_dies_cleanly() {
    let me = DomId(1);
    let mut w = World::with_domain(me, false);
    let (l4, data, args) = deep_tree(&mut w, me);
    // The very last entry names a frame that is not the guest's.
    let last = spare(&w, me, 3 + NR_L1 - 1);
    w.xen.platform.write_u64(last, 511, Mfn(3).maddr() | super::RO);
    let (rc, entries) = entries_for(&mut w, nr::MMUEXT_OP, args, |w| invariants_hold(w));
    assert_eq!(rc, EINVAL, "refused after {entries} entries, as Xen refuses a bad entry below an L4");
    assert!(entries > 1);
    // Whatever was left to drop goes at the next entry.
    w.hypercall(nr::XEN_VERSION, [0; 5]);
    assert_eq!(w.xen.frames.get(data).unwrap().count, 1, "every reference the tree took was dropped");
    assert!(w.xen.frames.iter().all(|(_, pg)| !pg.partial));
    invariants_hold(&w);
    // Again, valid this time, but the guest stops after the first step.
    w.xen.platform.write_u64(last, 511, data.maddr() | super::RO);
    let mut regs = GuestRegs { rax: nr::MMUEXT_OP, rdi: args[0], rsi: 1, r10: 0x7ff0, rip: 0x101000 + 32 * nr::MMUEXT_OP + 9, cs: 0xe033, ss: 0xe02b, ..GuestRegs::default() };
    w.xen.hypercall(&mut regs);
    assert!(w.xen.frames.iter().any(|(_, pg)| pg.partial), "preempted");
    assert_eq!(w.mmuext(hypercall_abi::mm::MMUEXT_UNPIN_TABLE, l4.0, 0), EINVAL, "not pinned");
    invariants_hold(&w);
    let free = w.xen.frames.free_count();
    w.xen.current = None;
    assert_eq!(w.xen.destroy_domain(me), Ok(()));
    assert!(w.xen.frames.iter().all(|(_, pg)| !pg.partial && pg.owner != crate::mm::Owner::Dom(me)));
    assert_eq!(w.xen.frames.free_count(), free + super::DOM_PAGES + 1, "every frame came back");
    invariants_hold(&w);
}

/// A table whose validation was preempted holds a general reference of its
/// own, as Xen's `PGT_partial` does: a guest that gives the frame back
/// (decrease_reservation) between two steps of the pin must not free a
/// frame that still holds a type reference and references on everything
/// its validated entries name (the hypervisor's frame-table bookkeeping
/// broke, the frame went to the next domain with the old references
/// leaked for good).
#[test]
fn a_partially_validated_table_given_back_is_not_freed() {
    let me = DomId(1);
    let mut w = World::with_domain(me, false);
    let (l4, data, args) = deep_tree(&mut w, me);
    let mut regs = GuestRegs { rax: nr::MMUEXT_OP, rdi: args[0], rsi: 1, r10: 0x7ff0, rip: 0x101000 + 32 * nr::MMUEXT_OP + 9, cs: 0xe033, ss: 0xe02b, ..GuestRegs::default() };
    w.xen.hypercall(&mut regs);
    let partial: alloc::vec::Vec<Mfn> = w.xen.frames.iter().filter(|(_, pg)| pg.partial).map(|(m, _)| m).collect();
    assert!(partial.contains(&l4), "preempted");
    invariants_hold(&w);
    // Every partial frame is given back between the steps.
    let s = w.scratch;
    for (k, m) in partial.iter().enumerate() {
        w.write(s + 0x800 + 8 * k as u64, &m.0.to_le_bytes());
    }
    let mut res = [0u8; 32];
    res[..8].copy_from_slice(&(s + 0x800).to_le_bytes());
    res[8..16].copy_from_slice(&(partial.len() as u64).to_le_bytes());
    res[24..26].copy_from_slice(&0x7ff0u16.to_le_bytes());
    w.write(s + 0x900, &res);
    let op = hypercall_abi::memory::XENMEM_decrease_reservation as u64;
    assert_eq!(w.hypercall(nr::MEMORY_OP, [op, s + 0x900, 0, 0, 0]), partial.len() as i64);
    for m in &partial {
        assert_ne!(w.xen.frames.get(*m).unwrap().owner, crate::mm::Owner::Free, "{m:?} freed while partial");
    }
    invariants_hold(&w);
    // Dying undoes the validation and then frees everything.
    let free = w.xen.frames.free_count();
    w.xen.current = None;
    assert_eq!(w.xen.destroy_domain(me), Ok(()));
    assert!(w.xen.frames.iter().all(|(_, pg)| pg.owner != crate::mm::Owner::Dead && pg.owner != crate::mm::Owner::Dom(me)));
    assert_eq!(w.xen.frames.get(data).unwrap().owner, crate::mm::Owner::Free);
    assert!(w.xen.frames.free_count() > free);
    invariants_hold(&w);
}

/// A guest that maps one of its own grants into every free L1 slot it
/// has grew the maptrack without bound, until the hypervisor's heap ran
/// out and an allocation failed (a panic, the whole machine down). The
/// number of mappings a domain holds is bounded as Xen's
/// `max_maptrack_frames` bounds it: the next map fails with
/// `GNTST_no_device_space`, maps nothing, and a freed handle is reused.
#[test]
fn grant_mappings_per_domain_are_bounded() {
    use crate::gnttab::{MapTrack, MAX_MAPTRACK};
    use hypercall_abi::grant::{GNTST_no_device_space, GNTST_okay, GTF_permit_access};
    let me = DomId(1);
    let mut w = World::with_domain(me, false);
    let page = w.pfn(w.spare_pfn(0));
    assert_eq!(w.setup_grants(1).0, GNTST_okay);
    w.grant(1, 3, 1, page, GTF_permit_access);
    let va = w.scratch + 0x2000;
    let (st, h) = w.map_grant(va, 0x7ff0, 3, false);
    assert_eq!(st, GNTST_okay);
    assert_eq!(w.unmap_grant(va, h), GNTST_okay);
    // Stand-ins for the mappings of every other slot the guest could fill.
    let t = MapTrack { granter: DomId(9), gref: 0, frame: Mfn(0), host_addr: 0, readonly: true, l1: Mfn(0), index: 0 };
    w.xen.domains.get_mut(&me).unwrap().gnttab.maptrack = alloc::vec![Some(t); MAX_MAPTRACK];
    let before = w.xen.platform.read_u64(w.l1e_maddr(va).0, l1_index(va));
    let (st, _) = w.map_grant(va, 0x7ff0, 3, false);
    assert_eq!(st, GNTST_no_device_space);
    assert_eq!(w.xen.platform.read_u64(w.l1e_maddr(va).0, l1_index(va)), before, "nothing mapped");
    assert_eq!(w.xen.domains[&me].gnttab.maptrack.len(), MAX_MAPTRACK);
    w.xen.domains.get_mut(&me).unwrap().gnttab.free_handle(7);
    let (st, h) = w.map_grant(va, 0x7ff0, 3, false);
    assert_eq!((st, h), (GNTST_okay, 7), "a freed handle is reused");
    assert_eq!(w.unmap_grant(va, h), GNTST_okay);
}
