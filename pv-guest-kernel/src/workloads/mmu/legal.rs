//! The legal half of the self-test: each operation must succeed, and its
//! effect must be visible through the mappings.

use pv_rt::println;
use core::ptr;

use hypercall_abi::guest;
use hypercall_abi::memory::{
    XenMemoryReservation, XENMEM_current_reservation, XENMEM_decrease_reservation,
    XENMEM_increase_reservation, XENMEM_maximum_reservation,
};
use hypercall_abi::mm::{
    pte_mfn, MmuUpdate, MmuextOp, MulticallEntry, DOMID_SELF, MMUEXT_CLEAR_PAGE, MMUEXT_COPY_PAGE,
    MMUEXT_INVLPG_ALL, MMUEXT_INVLPG_LOCAL, MMUEXT_PIN_L1_TABLE, MMUEXT_TLB_FLUSH_ALL,
    MMUEXT_TLB_FLUSH_LOCAL, MMUEXT_UNPIN_TABLE, MMU_MACHPHYS_UPDATE, MMU_NORMAL_PT_UPDATE, PAGE_SIZE,
    UVMF_ALL, UVMF_INVLPG, UVMF_TLB_FLUSH, _PAGE_PCD, _PAGE_PWT, _PAGE_RW, _PAGE_USER,
};
use hypercall_abi::version::XENVER_version;
use hypercall_abi::{nr, Errno};
use pv_rt::mm::pte::{pte, LEAF_RO, LEAF_RW, TABLE_FLAGS};
use pv_rt::mm::INVALID_MFN;

use super::{ret, test_va, Ctx, Hex, Word};

/// Whether we run as Dom0 (start_info's SIF_PRIVILEGED): some answers
/// differ for an unprivileged guest.
fn is_dom0() -> bool {
    pv_rt::start_info().flags & hypercall_abi::start_info::SIF_PRIVILEGED != 0
}

pub fn run(ctx: &mut Ctx) {
    map_write_read_unmap(ctx);
    update_va_mapping_flushes(ctx);
    mmu_update_batches(ctx);
    pin_unpin_l1(ctx);
    mmuext_ops(ctx);
    multicall(ctx);
    reservations(ctx);
    l4_linear_mapping(ctx);
    low_mib_as_dom0(ctx);
}

/// `map` builds the missing L3, L2 and L1 (zeroed, alias read-only, pinned,
/// hooked with `mmu_update`) and writes the L1 entry with `mmu_update`;
/// `unmap` clears it with `update_va_mapping`.
fn map_write_read_unmap(ctx: &mut Ctx) {
    let low_before = ctx.mm.frames().low_remaining();
    let pfn = ctx.frame();
    let r = ctx.map_rw(0, pfn);
    ctx.eq("map_fresh_page", ret(r.map(drop)), 0);
    ctx.eq("map_made_l3_l2_l1", low_before - ctx.mm.frames().low_remaining(), 3);
    let va = test_va(0);
    ctx.write(va, 0x5a5a);
    ctx.write(va + PAGE_SIZE - 8, 0xa5a5);
    ctx.eq_word("fresh_page_first_word", va, 0x5a5a);
    ctx.eq_word("fresh_page_last_word", va + PAGE_SIZE - 8, 0xa5a5);
    // Xen stores the entry as asked, with _PAGE_USER added: a 64-bit PV
    // kernel runs in ring 3 (adjust_guest_l1e).
    let l1e = ctx.mm.l1e(va).unwrap_or(0);
    ctx.eq("l1e_maps_the_frame", Hex(pte_mfn(l1e)), Hex(ctx.mfn(pfn)));
    ctx.eq("l1e_flags", l1e & 0xfff, LEAF_RW | _PAGE_USER);
    ctx.eq("unmap_page", ctx.unmap(0), 0);
    ctx.eq("unmap_clears_l1e", ctx.mm.l1e(va).unwrap_or(1), 0);
    let _ = ctx.m2p_probes.push((pfn, "m2p_of_fresh_frame"));
}

/// `update_va_mapping` replaces a mapping the TLB has just used; the flush it
/// asks for (INVLPG of that page, or a full flush on all vCPUs) must make the
/// new frame visible at once.
fn update_va_mapping_flushes(ctx: &mut Ctx) {
    let (a, b) = (ctx.frame(), ctx.frame());
    let (ma, mb) = (ctx.mfn(a), ctx.mfn(b));
    let (Ok(va), Ok(vb)) = (ctx.map_rw(1, a), ctx.map_rw(2, b)) else {
        ctx.eq("uvm_setup", false, true);
        return;
    };
    ctx.write(va, 0x1111);
    ctx.write(vb, 0x2222);
    ctx.eq("uvm_invlpg", ctx.update_va_mapping(va, pte(mb, LEAF_RW), UVMF_INVLPG), 0);
    ctx.eq_word("uvm_invlpg_sees_new_frame", va, 0x2222);
    let rc = ctx.update_va_mapping(va, pte(ma, LEAF_RW), UVMF_TLB_FLUSH | UVMF_ALL);
    ctx.eq("uvm_tlb_flush_all", rc, 0);
    ctx.eq_word("uvm_tlb_flush_all_sees_new_frame", va, 0x1111);
    ctx.eq("uvm_readonly", ctx.update_va_mapping(va, pte(ma, LEAF_RO), UVMF_INVLPG), 0);
    ctx.eq_word("uvm_readonly_reads", va, 0x1111);
    ctx.eq("uvm_unmap", ctx.update_va_mapping(va, 0, UVMF_INVLPG), 0);
    ctx.eq("unmap_second_page", ctx.unmap(2), 0);
}

/// A batch applies in order and reports how many requests took effect; the
/// first refused request ends it, with its error, and the later ones are not
/// applied (`do_mmu_update`: `if ( unlikely(rc) ) break;`, then
/// `done += i`).
fn mmu_update_batches(ctx: &mut Ctx) {
    let Some(l1) = ctx.mm.table_mfn(test_va(0), 1) else {
        ctx.eq("batch_setup", false, true);
        return;
    };
    let l1e_ptr = |n: u64| ((l1 << 12) + 8 * n) | MMU_NORMAL_PT_UPDATE;
    let pfns = [ctx.frame(), ctx.frame(), ctx.frame(), ctx.frame()];
    let mut reqs = [MmuUpdate::default(); 4];
    for (i, pfn) in pfns.iter().enumerate() {
        reqs[i] = MmuUpdate { ptr: l1e_ptr(3 + i as u64), val: pte(ctx.mfn(*pfn), LEAF_RW) };
    }
    let mut done = 0xdead;
    // SAFETY: test pages 3..7 hold nothing.
    let rc = unsafe { guest::mmu_update(&reqs, Some(&mut done), DOMID_SELF as u32) };
    ctx.eq("mmu_update_batch4", rc, 0);
    ctx.eq("mmu_update_batch4_done", done, 4);
    let mut ok = 0;
    for i in 0..4 {
        ctx.write(test_va(3 + i), 0x4000 + i);
    }
    for i in 0..4 {
        ok += (ctx.read(test_va(3 + i)) == Word(Some(0x4000 + i))) as u32;
    }
    ctx.eq("mmu_update_batch4_pages_distinct", ok, 4);
    for i in 0..4 {
        ctx.unmap(3 + i);
    }

    // Entry 2 maps our own L1 table writable: get_page_from_l1e cannot take
    // the writable type of a page table, so it fails with -EBUSY.
    let (p, q) = (ctx.frame(), ctx.frame());
    let reqs = [
        MmuUpdate { ptr: l1e_ptr(7), val: pte(ctx.mfn(p), LEAF_RW) },
        MmuUpdate { ptr: l1e_ptr(8), val: pte(ctx.mfn(q), LEAF_RW) },
        MmuUpdate { ptr: l1e_ptr(9), val: pte(l1, LEAF_RW) },
        MmuUpdate { ptr: l1e_ptr(10), val: pte(ctx.mfn(q), LEAF_RW) },
    ];
    let mut done = 0xdead;
    // SAFETY: test pages 7..11 hold nothing.
    let rc = unsafe { guest::mmu_update(&reqs, Some(&mut done), DOMID_SELF as u32) };
    ctx.eq("mmu_update_batch_stops_at_bad_entry", rc, Errno::EBUSY.to_ret());
    ctx.eq("mmu_update_batch_partial_done", done, 2);
    ctx.eq("mmu_update_batch_earlier_applied", ctx.mm.lookup(test_va(8)).is_some(), true);
    ctx.eq("mmu_update_batch_later_untouched", ctx.mm.l1e(test_va(10)).unwrap_or(1), 0);
    ctx.unmap(7);
    ctx.unmap(8);
}

/// Pinning keeps a frame's page-table type while nothing references it.
/// A frame can become an L1 only once no writable mapping of it is left: its
/// alias in the initial mapping goes read-only first.
fn pin_unpin_l1(ctx: &mut Ctx) {
    let Some(pfn) = ctx.mm.alloc_frame_low() else {
        ctx.eq("pin_setup", false, true);
        return;
    };
    let mfn = ctx.mfn(pfn);
    let alias = ctx.mm.alias(pfn).expect("low frames have an alias");
    // SAFETY: a free frame of the initial mapping: its alias is writable and
    // nothing else uses it.
    unsafe { ptr::write_bytes(alias as *mut u8, 0, PAGE_SIZE as usize) };
    // _get_page_type: the frame is PGT_writable_page with a count (its
    // alias), so it cannot change type: "Bad type", -EINVAL.
    ctx.eq("pin_l1_while_mapped_writable", ctx.mmuext(MMUEXT_PIN_L1_TABLE, mfn, 0), Errno::EINVAL.to_ret());
    // SAFETY: nothing writes through the alias any more.
    let rc = ret(unsafe { ctx.mm.set_alias_writable(pfn, false) });
    ctx.eq("remap_alias_readonly", rc, 0);
    ctx.eq("pin_l1", ctx.mmuext(MMUEXT_PIN_L1_TABLE, mfn, 0), 0);
    // do_mmuext_op: test_and_set_bit(_PGT_pinned) finds it set: -EINVAL.
    ctx.eq("pin_l1_already_pinned", ctx.mmuext(MMUEXT_PIN_L1_TABLE, mfn, 0), Errno::EINVAL.to_ret());
    // A page table may be mapped read-only (that is how a PV kernel reads
    // its tables), never writable (get_page_from_l1e: -EBUSY).
    let va = test_va(11);
    ctx.eq("map_pinned_l1_writable", ctx.update_va_mapping(va, pte(mfn, LEAF_RW), UVMF_INVLPG), Errno::EBUSY.to_ret());
    ctx.eq("map_pinned_l1_readonly", ctx.update_va_mapping(va, pte(mfn, LEAF_RO), UVMF_INVLPG), 0);
    ctx.eq_word("pinned_l1_reads_empty", va, 0);
    ctx.eq("unmap_pinned_l1", ctx.unmap(11), 0);
    ctx.eq("unpin_l1", ctx.mmuext(MMUEXT_UNPIN_TABLE, mfn, 0), 0);
    // SAFETY: no longer a page table: the alias may be writable again.
    let rc = ret(unsafe { ctx.mm.set_alias_writable(pfn, true) });
    ctx.eq("remap_alias_writable_after_unpin", rc, 0);
    ctx.write(alias, 0x77);
    ctx.eq_word("alias_writable_again", alias, 0x77);
    ctx.mm.free_frame(pfn);
}

/// Flushes, and clearing and copying frames by machine number.
fn mmuext_ops(ctx: &mut Ctx) {
    ctx.eq("mmuext_tlb_flush_local", ctx.mmuext(MMUEXT_TLB_FLUSH_LOCAL, 0, 0), 0);
    ctx.eq("mmuext_invlpg_local", ctx.mmuext(MMUEXT_INVLPG_LOCAL, test_va(0), 0), 0);
    ctx.eq("mmuext_tlb_flush_all", ctx.mmuext(MMUEXT_TLB_FLUSH_ALL, 0, 0), 0);
    ctx.eq("mmuext_invlpg_all", ctx.mmuext(MMUEXT_INVLPG_ALL, test_va(0), 0), 0);

    let (src, dst) = (ctx.frame(), ctx.frame());
    let (Ok(vs), Ok(vd)) = (ctx.map_rw(12, src), ctx.map_rw(13, dst)) else {
        ctx.eq("clear_copy_setup", false, true);
        return;
    };
    for i in 0..512 {
        ctx.write(vs + 8 * i, 0x5000 + i);
        ctx.write(vd + 8 * i, 0x3333);
    }
    ctx.eq("mmuext_clear_page", ctx.mmuext(MMUEXT_CLEAR_PAGE, ctx.mfn(dst), 0), 0);
    let nonzero = (0..512).filter(|i| ctx.read(vd + 8 * i) != Word(Some(0))).count();
    ctx.eq("clear_page_zeroes_every_word", nonzero, 0);
    ctx.eq("mmuext_copy_page", ctx.mmuext(MMUEXT_COPY_PAGE, ctx.mfn(dst), ctx.mfn(src)), 0);
    let same = (0..512).filter(|i| ctx.read(vd + 8 * i) == Word(Some(0x5000 + i))).count();
    ctx.eq("copy_page_copies_every_word", same, 512);
    ctx.unmap(12);
    ctx.unmap(13);

    // A batch of ops stops at the first failure, here an unknown command
    // (do_mmuext_op's default case: -ENOSYS), and reports the ones done.
    let ops = [
        MmuextOp::new(MMUEXT_TLB_FLUSH_LOCAL, 0, 0),
        MmuextOp::new(MMUEXT_INVLPG_LOCAL, test_va(0), 0),
        MmuextOp::new(99, 0, 0),
        MmuextOp::new(MMUEXT_TLB_FLUSH_LOCAL, 0, 0),
    ];
    let mut done = 0xdead;
    // SAFETY: flushes only.
    let rc = unsafe { guest::mmuext_op(&ops, Some(&mut done), DOMID_SELF as u32) };
    ctx.eq("mmuext_batch_stops_at_unknown_cmd", rc, Errno::ENOSYS.to_ret());
    ctx.eq("mmuext_batch_partial_done", done, 2);
}

/// One `multicall` of MMU and other hypercalls: each entry's own return
/// value lands in its `result` (failures included: Xen carries on with the
/// next entry), and the multicall itself returns 0.
fn multicall(ctx: &mut Ctx) {
    let pfn = ctx.frame();
    let mfn = ctx.mfn(pfn);
    let va = test_va(14);
    if ctx.mm.ensure_l1(va).is_err() {
        ctx.eq("multicall_setup", false, true);
        return;
    }
    let flush = [MmuextOp::new(MMUEXT_TLB_FLUSH_LOCAL, 0, 0)];
    let domid = DOMID_SELF;
    // SAFETY: XENVER_version takes no buffer.
    let version = unsafe { guest::xen_version(XENVER_version, ptr::null_mut()) };
    let entry = |op: u64, args: [u64; 6]| MulticallEntry { op, result: 0xdead_beef, args };
    let mut calls = [
        entry(nr::UPDATE_VA_MAPPING, [va, pte(mfn, LEAF_RW), UVMF_INVLPG, 0, 0, 0]),
        entry(nr::MMUEXT_OP, [flush.as_ptr() as u64, 1, 0, DOMID_SELF as u64, 0, 0]),
        entry(nr::XEN_VERSION, [XENVER_version as u64, 0, 0, 0, 0, 0]),
        // 11 is no hypercall (xen.h's hole): -ENOSYS, and the batch goes on.
        entry(11, [0; 6]),
        // __do_update_va_mapping: map_guest_l1e refuses Xen's own addresses.
        entry(nr::UPDATE_VA_MAPPING, [0xFFFF_8300_0000_0000, pte(mfn, LEAF_RW), 0, 0, 0, 0]),
        entry(nr::MEMORY_OP, [XENMEM_current_reservation as u64, &domid as *const u16 as u64, 0, 0, 0, 0]),
    ];
    // SAFETY: the entries map a fresh frame at a test page, flush, and ask
    // harmless questions; `flush` and `domid` outlive the call.
    let rc = unsafe { guest::multicall(&mut calls) };
    ctx.eq("multicall", rc, 0);
    let results = calls.map(|c| c.result as i64);
    ctx.eq("multicall_update_va_mapping", results[0], 0);
    ctx.eq("multicall_mmuext_op", results[1], 0);
    ctx.eq("multicall_xen_version", results[2], version);
    ctx.eq("multicall_unknown_hypercall", results[3], Errno::ENOSYS.to_ret());
    ctx.eq("multicall_failing_entry", results[4], Errno::EINVAL.to_ret());
    ctx.eq("multicall_memory_op", results[5], ctx.mm.nr_pages() as i64);
    ctx.write(va, 0x6666);
    ctx.eq_word("multicall_mapping_usable", va, 0x6666);
    ctx.unmap(14);
}

fn reservation(cmd: u32) -> i64 {
    let mut domid = DOMID_SELF;
    // SAFETY: these commands read one domid_t.
    unsafe { guest::memory_op(cmd, &mut domid as *mut u16 as *mut u8) }
}

/// Give one frame back to Xen and take one more: the domain's size follows,
/// and the new frame becomes usable once the guest records it in its P2M and
/// tells Xen with `MMU_MACHPHYS_UPDATE`.
fn reservations(ctx: &mut Ctx) {
    let nr_pages = ctx.mm.nr_pages() as i64;
    let mut bad = 0;
    for pfn in 0..ctx.mm.nr_pages() {
        bad += ctx.mm.p2m(pfn).is_some_and(|m| m >= ctx.max_ram_page) as u32;
    }
    ctx.eq("maximum_ram_page_covers_p2m", ctx.max_ram_page > 0 && bad == 0, true);
    ctx.eq("current_reservation", reservation(XENMEM_current_reservation), nr_pages);
    // Dom0 has no limit: pv/dom0_build.c's dom0_construct sets
    // d->max_pages = ~0U (with no `dom0_mem=max:` option). A guest's is what
    // its toolstack set (XEN_DOMCTL_max_mem: maxmem plus xl's slack).
    if is_dom0() {
        ctx.eq("maximum_reservation", reservation(XENMEM_maximum_reservation), u32::MAX as i64);
    } else {
        ctx.eq("maximum_reservation_covers_our_pages", reservation(XENMEM_maximum_reservation) >= nr_pages, true);
    }

    let pfn = ctx.frame();
    let mut extent = ctx.mfn(pfn);
    let mut res = XenMemoryReservation {
        extent_start: &mut extent as *mut u64 as u64,
        nr_extents: 1,
        extent_order: 0,
        mem_flags: 0,
        domid: DOMID_SELF,
        _pad: [0; 3],
    };
    // SAFETY: the frame is mapped nowhere and unused; `res` and `extent`
    // outlive the call. Returns the extents done.
    let rc = unsafe { guest::memory_op(XENMEM_decrease_reservation, &mut res as *mut _ as *mut u8) };
    ctx.eq("decrease_reservation", rc, 1);
    ctx.mm.set_p2m(pfn, INVALID_MFN);
    ctx.eq("current_reservation_after_decrease", reservation(XENMEM_current_reservation), nr_pages - 1);

    extent = 0;
    res.extent_start = &mut extent as *mut u64 as u64;
    // SAFETY: Xen writes the new frame's number to `extent`.
    let rc = unsafe { guest::memory_op(XENMEM_increase_reservation, &mut res as *mut _ as *mut u8) };
    ctx.eq("increase_reservation", rc, 1);
    let new_mfn = extent;
    ctx.eq("increase_reservation_gives_ram", new_mfn > 0 && new_mfn < ctx.max_ram_page, true);
    ctx.eq("current_reservation_after_increase", reservation(XENMEM_current_reservation), nr_pages);
    ctx.mm.set_p2m(pfn, new_mfn);
    let req = MmuUpdate { ptr: (new_mfn << 12) | MMU_MACHPHYS_UPDATE, val: pfn };
    // SAFETY: M2P bookkeeping of our own frame; no mapping changes.
    let rc = unsafe { guest::mmu_update(&[req], None, DOMID_SELF as u32) };
    ctx.eq("machphys_update", rc, 0);
    let r = ctx.map_rw(15, pfn);
    ctx.eq("map_new_frame", ret(r.map(drop)), 0);
    if r.is_ok() {
        ctx.write(test_va(15), 0x7777);
        ctx.eq_word("new_frame_write_read", test_va(15), 0x7777);
        ctx.unmap(15);
    }
    let _ = ctx.m2p_probes.push((pfn, "m2p_after_machphys_update"));
}

/// An L4 mapping itself read-only (a linear page table). Xen 4.17 accepts it
/// (get_linear_pagetable) and the guest reads its tables through it;
/// xen-core deliberately refuses linear page tables (-EINVAL, see
/// xen-core/src/mm/validate.rs). The outcome is reported as `note` lines,
/// outside the verdict and outside the differential comparison of checks.
fn l4_linear_mapping(ctx: &mut Ctx) {
    const SLOT: u64 = 384;
    let l4 = ctx.mm.l4_mfn();
    let slot_ptr = (l4 << 12) + 8 * SLOT;
    let ro = pte(l4, TABLE_FLAGS & !_PAGE_RW);
    let rc = ctx.mmu_update(slot_ptr, ro);
    println!("note l4_self_map_readonly: {} (Xen 4.17 accepts read-only linear page tables; xen-core refuses them)", rc);
    if rc != 0 {
        ctx.eq("tlb_flush_after_l4_change", ctx.mmuext(MMUEXT_TLB_FLUSH_LOCAL, 0, 0), 0);
        return;
    }
    // Through the self-map, the L4 is at the address whose four indices are
    // all SLOT (sign-extended: slot 384 is in the upper half).
    let s = SLOT;
    let l4_view = 0xffff_0000_0000_0000 | s << 39 | s << 30 | s << 21 | s << 12;
    let expected = ctx.mm.read_entry(l4, 0).unwrap_or(0);
    let seen = ctx.read(l4_view);
    println!("note l4_self_map_reads_the_l4: {}", if seen == Word(Some(expected)) { "yes" } else { "no" });
    println!("note l4_self_map_removed: {}", ctx.mmu_update(slot_ptr, 0));
    ctx.eq("tlb_flush_after_l4_change", ctx.mmuext(MMUEXT_TLB_FLUSH_LOCAL, 0, 0), 0);
}

/// Machine frame 0, like all of the first MiB, belongs to dom_io
/// (arch_init_memory), and Dom0 holds I/O-memory rights over it, so Xen lets
/// Dom0 map it, read-only or writable (get_page_from_l1e's MMIO path:
/// iomem_access_permitted), but never cached: asked for write-back, the
/// entry gets _PAGE_PCD | _PAGE_PWT flipped on. (Not a hypervisor frame from
/// Dom0's point of view; we never write to it.)
/// A guest without I/O-memory rights (guests/mmu.cfg runs this workload as
/// one) is refused frame 0 instead.
fn low_mib_as_dom0(ctx: &mut Ctx) {
    let va = test_va(16);
    if ctx.mm.ensure_l1(va).is_err() {
        ctx.eq("low_mib_setup", false, true);
        return;
    }
    if !is_dom0() {
        ctx.eq("map_mfn0_refused_as_domu", ctx.update_va_mapping(va, pte(0, LEAF_RO), UVMF_INVLPG) < 0, true);
        ctx.eq("mfn0_left_unmapped", ctx.mm.l1e(va).unwrap_or(0) & 1, 0);
        return;
    }
    let uc = _PAGE_PCD | _PAGE_PWT;
    ctx.eq("map_mfn0_readonly_as_dom0", ctx.update_va_mapping(va, pte(0, LEAF_RO), UVMF_INVLPG), 0);
    ctx.eq("mfn0_mapping_uncached", ctx.mm.l1e(va).unwrap_or(0) & uc, uc);
    ctx.eq("map_mfn0_writable_as_dom0", ctx.update_va_mapping(va, pte(0, LEAF_RW), UVMF_INVLPG), 0);
    ctx.eq("unmap_mfn0", ctx.unmap(16), 0);
}
