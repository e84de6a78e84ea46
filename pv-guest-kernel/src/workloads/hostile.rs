//! `workload=hostile`: a guest that tries, one by one, the isolation
//! escapes of issue 9 and checks that each is refused with Xen's error code.
//!
//! - The frames the hypervisor writes for us (`shared_info`, our grant-table
//!   frames) must never become page tables or descriptor pages: Xen shares
//!   them with a permanent writable type (`share_xen_page_with_guest`), so
//!   pinning them at any level, linking them into our tree or using them as
//!   a GDT frame is `-EINVAL` (`_get_page_type`'s type conflict). They stay
//!   ours to map and write.
//! - Upper-level entries are checked against the table owner's rights: a
//!   frame that is not ours cannot be linked as an L1, L2 or L3 (`-EINVAL`,
//!   `get_page_and_type_from_mfn`).
//! - Event channels: a global VIRQ moved to another vCPU and closed can be
//!   bound again; per-vCPU VIRQs cannot move; a closed port stays closed.
//!
//! Meant to run as an unprivileged DomU under Dom0's `xl` (two vCPUs,
//! `guests/hostile.cfg`); as a Dom0 it gives the same answers, which is how
//! it is compared with Xen 4.17. Ends with `Test result: SUCCESS`.

use hypercall_abi::evtchn::{VIRQ_CON_RING, VIRQ_DEBUG};
use hypercall_abi::grant::{GnttabSetupTable, GNTST_okay, GNTTABOP_setup_table};
use hypercall_abi::mm::{
    MmuUpdate, MmuextOp, DOMID_SELF, MMUEXT_PIN_L1_TABLE, MMUEXT_PIN_L2_TABLE, MMUEXT_PIN_L3_TABLE,
    MMUEXT_PIN_L4_TABLE, UVMF_INVLPG,
};
use hypercall_abi::{guest, nr, Errno};
use pv_rt::events;
use pv_rt::mm::pte::{pte, LEAF_RW, TABLE_FLAGS};
use pv_rt::mm::Mm;
use pv_rt::println;

use crate::check::Checks;

/// This workload's part of the address space: L4 slot 80, used by nothing
/// else; `BASE` gets an L3, L2 and L1, whose free entries the links try.
const BASE: u64 = 0x0000_2800_0000_0000;
const MB2: u64 = 2 << 20;
const GB1: u64 = 1 << 30;
const GB512: u64 = 512 << 30;

const EINVAL: i64 = Errno::EINVAL.to_ret();

fn rc(r: Result<(), Errno>) -> i64 {
    r.map_or_else(|e| e.to_ret(), |_| 0)
}

fn mmu_update(ptr: u64, val: u64) -> i64 {
    // SAFETY: every request names an entry of this workload's own tables
    // (slot 80), or one the hypervisor must refuse.
    unsafe { guest::mmu_update(&[MmuUpdate { ptr, val }], None, DOMID_SELF as u32) }
}

fn mmuext(cmd: u32, arg1: u64) -> i64 {
    // SAFETY: pins of frames the hypervisor must refuse to pin.
    unsafe { guest::mmuext_op(&[MmuextOp::new(cmd, arg1, 0)], None, DOMID_SELF as u32) }
}

/// Every way of making `mfn` a page table or descriptor page, each refused;
/// then a writable mapping of it, which is allowed.
fn never_a_table(c: &mut Checks, mm: &Mm, what: &str, mfn: u64) {
    for (level, cmd) in [(1, MMUEXT_PIN_L1_TABLE), (2, MMUEXT_PIN_L2_TABLE), (3, MMUEXT_PIN_L3_TABLE), (4, MMUEXT_PIN_L4_TABLE)] {
        c.eq(&alloc_name(what, "pin_l", level), mmuext(cmd, mfn), EINVAL);
    }
    let frames = [mfn];
    // SAFETY: one frame number, which Xen reads; the GDT stays as it was
    // when the call fails.
    c.eq(&alloc_name(what, "as_gdt", 0), unsafe { guest::set_gdt(frames.as_ptr() as u64, 512) }, EINVAL);
    // Linked as an L1 (in our L2), an L2 (in our L3), an L3 (in our L4).
    for (level, va) in [(2u32, BASE + MB2), (3, BASE + GB1), (4, BASE + GB512)] {
        let name = alloc_name(what, "link_in_l", level as u64);
        match mm.entry_maddr(va, level) {
            Some(ptr) => c.eq(&name, mmu_update(ptr, pte(mfn, TABLE_FLAGS)), EINVAL),
            None => c.eq(&name, "no table", "a table"),
        };
    }
    // It is ours: writable mappings are what it is for.
    let va = BASE + 8 * 4096;
    // SAFETY: BASE's L1 is this workload's; the page is mapped only here.
    let map = unsafe { guest::update_va_mapping(va, pte(mfn, LEAF_RW), UVMF_INVLPG) };
    c.eq(&alloc_name(what, "map_writable", 0), map, 0);
    c.eq(&alloc_name(what, "pin_l1_while_mapped", 0), mmuext(MMUEXT_PIN_L1_TABLE, mfn), EINVAL);
    // SAFETY: as above.
    c.eq(&alloc_name(what, "unmap", 0), unsafe { guest::update_va_mapping(va, 0, UVMF_INVLPG) }, 0);
}

/// `<what>_<check><n>`, or without the number when `n` is 0.
fn alloc_name(what: &str, check: &str, n: u64) -> heapless::String<64> {
    let mut s = heapless::String::new();
    let _ = if n == 0 {
        core::fmt::write(&mut s, format_args!("{what}_{check}"))
    } else {
        core::fmt::write(&mut s, format_args!("{what}_{check}{n}"))
    };
    s
}

/// A RAM frame that is neither ours nor the low MiB: the lowest one from
/// 1 MiB up that our P2M does not list and that is not shared with us.
fn not_ours(mm: &Mm, shared: &[u64]) -> Option<u64> {
    // SAFETY: XENMEM_maximum_ram_page takes no argument.
    let max = unsafe { guest::memory_op(hypercall_abi::memory::XENMEM_maximum_ram_page, core::ptr::null_mut()) };
    let max = if max > 0 { max as u64 } else { 0 };
    (0x100..max.min(0x100 + 0x10000)).find(|&m| !shared.contains(&m) && mm.mfn_to_pfn(m).is_none())
}

pub fn run(_cmdline: &str) {
    let si = pv_rt::start_info();
    let mut c = Checks::default();
    // SAFETY: the only memory manager of this kernel.
    let mut mm = match unsafe { Mm::new(si) } {
        Ok(mm) => mm,
        Err(e) => {
            println!("hostile: cannot walk the initial page tables: {}", e);
            println!("Test result: FAILURE");
            return;
        }
    };
    // Our tables under BASE: an L3, an L2 and an L1 whose other entries
    // are free for the links below.
    c.eq("setup_tables", mm.ensure_l1(BASE).map(|_| 0).unwrap_or_else(|e| e.to_ret()), 0);

    // 1. shared_info: the page the hypervisor writes CR2, event bits and
    //    time into. The escape: pin it as an L1, link it, fault.
    let shared_info = si.shared_info >> 12;
    never_a_table(&mut c, &mm, "shared_info", shared_info);

    // 2. Frames of other owners linked as tables (the owner of the table
    //    written decides, whatever foreigndom says).
    let grant_frames = setup_grant_frames(&mut c);
    let mut shared = heapless::Vec::<u64, 4>::new();
    let _ = shared.push(shared_info);
    for f in grant_frames.iter().flatten() {
        let _ = shared.push(*f);
    }
    match not_ours(&mm, &shared) {
        Some(theirs) => {
            for (level, va) in [(2u32, BASE + 2 * MB2), (3, BASE + 2 * GB1), (4, BASE + 2 * GB512)] {
                let name = alloc_name("foreign_frame", "link_in_l", level as u64);
                let ptr = mm.entry_maddr(va, level).unwrap_or(0);
                c.eq(&name, mmu_update(ptr, pte(theirs, TABLE_FLAGS)), EINVAL);
            }
        }
        None => {
            c.eq("foreign_frame_found", false, true);
        }
    }

    // 3. Grant-table frames: the hypervisor sets GTF_reading/GTF_writing
    //    in them, so they are shared frames too.
    for (i, f) in grant_frames.iter().enumerate() {
        if let Some(f) = f {
            never_a_table(&mut c, &mm, if i == 0 { "grant_frame0" } else { "grant_frame1" }, *f);
        }
    }

    // 4. Event channels: a global VIRQ moved to vCPU 1 and closed must be
    //    free to bind again (no stale binding left on vCPU 0).
    match events::bind_virq(VIRQ_CON_RING, 0) {
        Ok(port) => {
            c.eq("virq_global_bind", 0, 0);
            c.eq("virq_global_bind_again", rc(events::bind_virq(VIRQ_CON_RING, 0).map(drop)), Errno::EEXIST.to_ret());
            c.eq("virq_global_bind_vcpu1", rc(events::bind_vcpu(port, 1)), 0);
            c.eq("virq_global_close", rc(events::close(port)), 0);
            c.eq("virq_global_close_twice", rc(events::close(port)), EINVAL);
            let again = events::bind_virq(VIRQ_CON_RING, 0);
            c.eq("virq_global_rebind_after_close", rc(again.map(drop)), 0);
            if let Ok(p) = again {
                c.eq("virq_global_close_rebound", rc(events::close(p)), 0);
            }
        }
        Err(e) => {
            c.eq("virq_global_bind", e.to_ret(), 0);
        }
    }
    c.eq("virq_global_on_vcpu1", rc(events::bind_virq(VIRQ_CON_RING, 1).map(drop)), EINVAL);
    match events::bind_virq(VIRQ_DEBUG, 0) {
        Ok(port) => {
            c.eq("virq_per_vcpu_bind", 0, 0);
            c.eq("virq_per_vcpu_bind_vcpu1", rc(events::bind_vcpu(port, 1)), EINVAL);
            c.eq("virq_per_vcpu_bind_vcpu_none", rc(events::bind_vcpu(port, 4000)), Errno::ENOENT.to_ret());
            c.eq("virq_per_vcpu_close", rc(events::close(port)), 0);
        }
        Err(e) => {
            c.eq("virq_per_vcpu_bind", e.to_ret(), 0);
        }
    }

    // 5. As a DomU (Dom0 has no memory limit on Xen): a frame given back
    //    while still mapped keeps counting against our limit.
    if si.flags & hypercall_abi::start_info::SIF_PRIVILEGED == 0 {
        given_back_frames_still_count(&mut c);
    }

    // The domain lives on: a fresh mapping still works.
    let alive = mm.alloc_frame().map(|pfn| {
        // SAFETY: BASE + 9 pages is this workload's and unused.
        rc(unsafe { mm.map(BASE + 9 * 4096, pfn, true) })
    });
    c.eq("alive_after_refusals", alive.unwrap_or(-1), 0);
    c.verdict();
}

/// `GNTTABOP_setup_table` for two frames (not mapped: the checks must see
/// them with no mapping holding a type).
fn setup_grant_frames(c: &mut Checks) -> [Option<u64>; 2] {
    let mut frames = [0u64; 2];
    let mut op = GnttabSetupTable { dom: DOMID_SELF, nr_frames: 2, frame_list: frames.as_mut_ptr() as u64, ..Default::default() };
    // SAFETY: Xen reads `op` and writes two frame numbers into `frames`.
    let r = unsafe { guest::hypercall3(nr::GRANT_TABLE_OP, GNTTABOP_setup_table as u64, &mut op as *mut _ as u64, 1) };
    c.eq("grant_setup_table", r, 0);
    c.eq("grant_setup_table_status", op.status, GNTST_okay);
    if r != 0 || op.status != GNTST_okay {
        return [None, None];
    }
    [Some(frames[0]), Some(frames[1])]
}

/// `XENMEM_increase_reservation` or `decrease_reservation` of one frame
/// (`mfn` in and out); returns the extents done.
fn reservation(cmd: u32, mfn: &mut u64) -> i64 {
    let mut res = hypercall_abi::memory::XenMemoryReservation {
        extent_start: mfn as *mut u64 as u64,
        nr_extents: 1,
        extent_order: 0,
        mem_flags: 0,
        domid: DOMID_SELF,
        _pad: [0; 3],
    };
    // SAFETY: `res` names one extent, `*mfn`, which Xen reads or writes.
    unsafe { guest::memory_op(cmd, &mut res as *mut _ as *mut u8) }
}

/// The second review's R2: at our memory limit, a frame we still map and
/// give back leaves no room for a new one (Xen's `tot_pages` drops only
/// when the frame is freed); once unmapped it is freed and the room is
/// back. Without this a guest could hold every free frame of the machine.
fn given_back_frames_still_count(c: &mut Checks) {
    use hypercall_abi::memory::{XENMEM_decrease_reservation as DEC, XENMEM_increase_reservation as INC};
    // Up to the limit (xl gives a 1 MiB slack above `memory`).
    let mut extra = heapless::Vec::<u64, 1024>::new();
    loop {
        let mut m = 0;
        if reservation(INC, &mut m) != 1 || extra.push(m).is_err() {
            break;
        }
    }
    c.eq("given_back_at_limit", extra.len() < extra.capacity(), true);
    let Some(f) = extra.pop() else {
        c.eq("given_back_frame", "none", "one");
        return;
    };
    let va = BASE + 10 * 4096;
    // SAFETY: BASE's L1 is this workload's; slot 10 is used only here.
    c.eq("given_back_map", unsafe { guest::update_va_mapping(va, pte(f, LEAF_RW), UVMF_INVLPG) }, 0);
    c.eq("given_back_while_mapped", reservation(DEC, &mut { f }), 1);
    let mut m = 0;
    let got = reservation(INC, &mut m);
    c.eq("given_back_still_counts", got, 0);
    if got == 1 {
        let _ = extra.push(m);
    }
    // SAFETY: as above.
    c.eq("given_back_unmap", unsafe { guest::update_va_mapping(va, 0, UVMF_INVLPG) }, 0);
    let mut m = 0;
    let got = reservation(INC, &mut m);
    c.eq("given_back_freed_makes_room", got, 1);
    if got == 1 {
        let _ = extra.push(m);
    }
    let mut back = 0;
    for m in extra {
        back += reservation(DEC, &mut { m });
    }
    c.eq("given_back_all_returned", back >= 0, true);
}
