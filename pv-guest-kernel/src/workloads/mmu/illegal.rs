//! The illegal half of the self-test: each request breaks one of the PV
//! MMU's safety rules, must fail with Xen's error code, and must leave the
//! domain running and its memory as it was.

use hypercall_abi::guest;
use hypercall_abi::memory::{
    XenMachphysMfnList, XenMemoryReservation, XENMEM_decrease_reservation, XENMEM_machphys_mfn_list,
};
use hypercall_abi::mm::{
    MmuUpdate, MmuextOp, DOMID_SELF, MMUEXT_CLEAR_PAGE, MMUEXT_PIN_L1_TABLE, MMUEXT_TLB_FLUSH_LOCAL,
    MMUEXT_UNPIN_TABLE, MMU_MACHPHYS_UPDATE, UVMF_INVLPG, _PAGE_PSE, _PAGE_RW,
};
use hypercall_abi::Errno;
use pv_rt::mm::pte::{pte, LEAF_RO, LEAF_RW, TABLE_FLAGS};

use super::{test_va, Ctx};

/// A domain id that names no domain (the first reserved ids stop at
/// DOMID_INVALID, 0x7FF4).
const NO_SUCH_DOMID: u16 = 0x7FF5;

/// Far past any machine address (PTE address bits 51..12 all but set).
const MFN_BEYOND_MACHINE: u64 = 0xFF_FFFF_FFFE;

pub fn run(ctx: &mut Ctx) {
    let ebusy = Errno::EBUSY.to_ret();
    let einval = Errno::EINVAL.to_ret();
    let va = test_va(20);
    let Some(l1) = ctx.mm.table_mfn(va, 1) else {
        ctx.eq("illegal_setup", false, true);
        return;
    };
    let Some(l1e_ptr) = ctx.mm.entry_maddr(va, 1) else { return };
    let l4 = ctx.mm.l4_mfn();
    let data = ctx.frame();
    let data_mfn = ctx.mfn(data);

    // Our live L1 table, writable: get_page_from_l1e wants the
    // PGT_writable_page type, which a page table cannot take ("Could not get
    // page type PGT_writable_page", could_not_pin: -EBUSY).
    ctx.eq("map_own_l1_writable_mmu_update", ctx.mmu_update(l1e_ptr, pte(l1, LEAF_RW)), ebusy);
    // The same rule through update_va_mapping, for the L4 in use as %cr3.
    ctx.eq("map_own_l4_writable_update_va_mapping", ctx.update_va_mapping(va, pte(l4, LEAF_RW), UVMF_INVLPG), ebusy);

    // A RAM frame that belongs to neither us nor dom_io (a free or Xen heap
    // frame): get_page_from_l1e finds real_pg_owner != pg_owner and refuses
    // even a read-only mapping (could_not_pin: -EBUSY).
    if let Some(mfn) = ctx.foreign_mfn {
        ctx.eq("map_foreign_ram_frame_writable", ctx.update_va_mapping(va, pte(mfn, LEAF_RW), UVMF_INVLPG), ebusy);
        ctx.eq("map_foreign_ram_frame_readonly", ctx.update_va_mapping(va, pte(mfn, LEAF_RO), UVMF_INVLPG), ebusy);
    } else {
        ctx.eq("foreign_ram_frame_found", false, true);
    }
    // No frame at all: not mfn_valid, so treated as MMIO, and not in Dom0's
    // iomem_caps (which end at the machine's physical address width):
    // iomem_access_permitted fails, -EPERM.
    let rc = ctx.update_va_mapping(va, pte(MFN_BEYOND_MACHINE, LEAF_RW), UVMF_INVLPG);
    ctx.eq("map_mfn_beyond_machine", rc, Errno::EPERM.to_ret());

    // A frame of Xen's own: the first 2 MiB extent of the M2P table, which
    // Xen shares read-only with dom_xen. Not ours, and Dom0 did not name
    // DOMID_XEN as the page owner: real_pg_owner != pg_owner == l1e_owner,
    // could_not_pin, -EBUSY, writable or not.
    let mut m2p_mfn = 0u64;
    let mut list = XenMachphysMfnList {
        max_extents: 1,
        extent_start: &mut m2p_mfn as *mut u64 as u64,
        ..Default::default()
    };
    // SAFETY: Xen writes one xen_pfn_t to `m2p_mfn` and `nr_extents` to `list`.
    let rc = unsafe { guest::memory_op(XENMEM_machphys_mfn_list, &mut list as *mut _ as *mut u8) };
    ctx.eq("machphys_mfn_list", rc, 0);
    ctx.eq("machphys_mfn_list_extents", list.nr_extents, 1);
    if rc == 0 && list.nr_extents == 1 {
        let rc = ctx.update_va_mapping(va, pte(m2p_mfn, LEAF_RW), UVMF_INVLPG);
        ctx.eq("map_xen_m2p_frame_writable", rc, ebusy);
        let rc = ctx.update_va_mapping(va, pte(m2p_mfn, LEAF_RO), UVMF_INVLPG);
        ctx.eq("map_xen_m2p_frame_readonly", rc, ebusy);
    }

    // A PTE of the hypervisor's range: map_guest_l1e refuses addresses past
    // the guest's half (!__addr_ok), -EINVAL.
    let rc = ctx.update_va_mapping(0xFFFF_8300_0000_0000, pte(data_mfn, LEAF_RW), UVMF_INVLPG);
    ctx.eq("update_va_mapping_hypervisor_va", rc, einval);
    // An address with no L1 table (nothing in L4 slot 96): map_guest_l1e
    // finds no L2 entry, -EINVAL.
    let rc = ctx.update_va_mapping(0x0000_3000_0000_0000, pte(data_mfn, LEAF_RW), UVMF_INVLPG);
    ctx.eq("update_va_mapping_no_l1_table", rc, einval);

    if let Some(mfn) = ctx.foreign_mfn {
        // The "page table" to write is a frame not ours: do_mmu_update's
        // get_page_from_gfn fails ("Could not get page for normal update"),
        // -EINVAL.
        ctx.eq("mmu_update_ptr_in_foreign_frame", ctx.mmu_update(mfn << 12, 0), einval);
        // The M2P entry of a frame not ours: get_page_from_mfn fails ("Could
        // not get page for mach->phys update"), -EINVAL.
        ctx.eq("machphys_update_foreign_frame", ctx.mmu_update((mfn << 12) | MMU_MACHPHYS_UPDATE, 5), einval);
        // Pinning a frame not ours: get_page_from_gfn fails, -EINVAL.
        ctx.eq("pin_foreign_frame", ctx.mmuext(MMUEXT_PIN_L1_TABLE, mfn, 0), einval);
        // Giving back a frame not ours: guest_remove_page fails, and
        // decrease_reservation returns the extents done: none.
        let mut extent = mfn;
        let mut res = XenMemoryReservation {
            extent_start: &mut extent as *mut u64 as u64,
            nr_extents: 1,
            domid: DOMID_SELF,
            ..Default::default()
        };
        // SAFETY: the frame is not ours; Xen must refuse to take it.
        let rc = unsafe { guest::memory_op(XENMEM_decrease_reservation, &mut res as *mut _ as *mut u8) };
        ctx.eq("decrease_reservation_foreign_frame", rc, 0);
    }

    // Unpinning a frame that is no pinned table: test_and_clear_bit
    // (_PGT_pinned) finds it clear ("not pinned"), -EINVAL.
    ctx.eq("unpin_not_pinned", ctx.mmuext(MMUEXT_UNPIN_TABLE, data_mfn, 0), einval);
    // Clearing a page table: MMUEXT_CLEAR_PAGE needs the writable type
    // ("Error clearing mfn"), -EINVAL.
    ctx.eq("clear_page_of_page_table", ctx.mmuext(MMUEXT_CLEAR_PAGE, l1, 0), einval);

    // A 2 MiB superpage in an L2 entry: _PAGE_PSE is outside
    // L2_DISALLOW_MASK's complement ("Bad L2 flags"), -EINVAL.
    if let Some(l2_ptr) = ctx.mm.entry_maddr(test_va(5 * 512), 2) {
        let rc = ctx.mmu_update(l2_ptr, pte(data_mfn & !511, LEAF_RW | _PAGE_PSE));
        ctx.eq("l2_superpage", rc, einval);
    }

    // The L4 mapping itself writable: as an L3 it has the wrong type, and
    // get_l4_linear_pagetable refuses a linear entry with _PAGE_RW
    // ("Attempt to create linear p.t. with write perms"), -EINVAL (XSA-240's
    // territory: a writable self-map would let the guest write its tables).
    let rc = ctx.mmu_update((l4 << 12) + 8 * 385, pte(l4, TABLE_FLAGS | _PAGE_RW));
    ctx.eq("l4_self_map_writable", rc, einval);
    // An L4 slot of the hypervisor's (256, the M2P): mod_l4_entry, "L4 update
    // in Xen-private area", -EINVAL. The value is what the slot already
    // holds, so a hypervisor that wrongly accepted it would change nothing.
    let slot256 = ctx.mm.read_entry(l4, 256).unwrap_or(0);
    ctx.eq("l4_hypervisor_slot", ctx.mmu_update((l4 << 12) + 8 * 256, slot256), einval);

    // A foreign domain that does not exist: get_pg_owner ("Unknown domain"),
    // -ESRCH, before any request is looked at.
    let req = [MmuUpdate { ptr: l1e_ptr, val: pte(data_mfn, LEAF_RW) }];
    // SAFETY: must be refused; were it accepted it would map a fresh frame at
    // a test page.
    let rc = unsafe { guest::mmu_update(&req, None, NO_SUCH_DOMID as u32) };
    ctx.eq("mmu_update_unknown_domid", rc, Errno::ESRCH.to_ret());
    let op = [MmuextOp::new(MMUEXT_TLB_FLUSH_LOCAL, 0, 0)];
    // SAFETY: a flush.
    let rc = unsafe { guest::mmuext_op(&op, None, NO_SUCH_DOMID as u32) };
    ctx.eq("mmuext_op_unknown_domid", rc, Errno::ESRCH.to_ret());
    // An unassigned command (14 was MMUEXT_SET_FOREIGNDOM): -ENOSYS.
    ctx.eq("mmuext_unknown_cmd", ctx.mmuext(14, 0, 0), Errno::ENOSYS.to_ret());

    // Nothing above may have left a mapping behind.
    ctx.eq("illegal_ops_left_no_mapping", ctx.mm.l1e(va).unwrap_or(1), 0);
}
