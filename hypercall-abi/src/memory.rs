//! `memory_op` sub-commands and structures (`memory.h`).

use crate::{assert_layout, plain_bytes};

/// `arg` = [`XenMemoryReservation`]; returns the extents done.
pub const XENMEM_increase_reservation: u32 = 0;
pub const XENMEM_decrease_reservation: u32 = 1;
/// `arg == NULL`; the highest machine frame of RAM.
pub const XENMEM_maximum_ram_page: u32 = 2;
/// `arg` = `domid_t`; pages.
pub const XENMEM_current_reservation: u32 = 3;
pub const XENMEM_maximum_reservation: u32 = 4;
/// `arg` = [`XenMachphysMfnList`].
pub const XENMEM_machphys_mfn_list: u32 = 5;
pub const XENMEM_populate_physmap: u32 = 6;
/// `arg` = [`XenAddToPhysmap`].
pub const XENMEM_add_to_physmap: u32 = 7;
/// `arg` = [`XenMemoryMap`].
pub const XENMEM_memory_map: u32 = 9;
pub const XENMEM_machine_memory_map: u32 = 10;
/// `arg` = [`XenMemoryExchange`].
pub const XENMEM_exchange: u32 = 11;
/// `arg` = [`XenMachphysMapping`].
pub const XENMEM_machphys_mapping: u32 = 12;
/// `arg` = [`XenForeignMemoryMap`].
pub const XENMEM_set_memory_map: u32 = 13;
pub const XENMEM_maximum_gpfn: u32 = 14;
/// `arg` = [`XenRemoveFromPhysmap`].
pub const XENMEM_remove_from_physmap: u32 = 15;
pub const XENMEM_set_pod_target: u32 = 16;
pub const XENMEM_get_pod_target: u32 = 17;
pub const XENMEM_get_sharing_freed_pages: u32 = 18;
pub const XENMEM_get_sharing_shared_pages: u32 = 19;
pub const XENMEM_paging_op: u32 = 20;
pub const XENMEM_access_op: u32 = 21;
pub const XENMEM_sharing_op: u32 = 22;
pub const XENMEM_add_to_physmap_batch: u32 = 23;
pub const XENMEM_claim_pages: u32 = 24;
pub const XENMEM_machphys_compat_mfn_list: u32 = 25;
pub const XENMEM_get_vnumainfo: u32 = 26;
pub const XENMEM_reserved_device_memory_map: u32 = 27;
pub const XENMEM_acquire_resource: u32 = 28;

/// The sub-command is in the low bits of `memory_op`'s first argument; the
/// rest carries the continuation point of a preempted call (Xen's private
/// `xen/hypercall.h`, but visible to guests as part of the ABI).
pub const MEMOP_CMD_MASK: u64 = (1 << 6) - 1;
pub const MEMOP_EXTENT_SHIFT: u32 = 6;

// XENMEMF_* flags of xen_memory_reservation.mem_flags.
pub const fn xenmemf_address_bits(bits: u32) -> u32 {
    bits
}
pub const fn xenmemf_get_address_bits(flags: u32) -> u32 {
    flags & 0xff
}
pub const fn xenmemf_node(node: u32) -> u32 {
    (node + 1) << 8
}
pub const XENMEMF_populate_on_demand: u32 = 1 << 16;
pub const XENMEMF_exact_node_request: u32 = 1 << 17;
pub const XENMEMF_vnode: u32 = 1 << 18;

// XENMAPSPACE_* of xen_add_to_physmap.space.
pub const XENMAPSPACE_shared_info: u32 = 0;
pub const XENMAPSPACE_grant_table: u32 = 1;
pub const XENMAPSPACE_gmfn: u32 = 2;
pub const XENMAPSPACE_gmfn_range: u32 = 3;
pub const XENMAPSPACE_gmfn_foreign: u32 = 4;
pub const XENMAPSPACE_dev_mmio: u32 = 5;

/// `struct xen_memory_reservation`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenMemoryReservation {
    /// Guest handle of a `xen_pfn_t` array (IN and/or OUT by sub-command).
    pub extent_start: u64,
    pub nr_extents: u64,
    /// Each extent is `2^extent_order` pages.
    pub extent_order: u32,
    /// `XENMEMF_*` (the old `address_bits`).
    pub mem_flags: u32,
    pub domid: u16,
    pub _pad: [u16; 3],
}
assert_layout!(XenMemoryReservation, size = 32, extent_start = 0, nr_extents = 8,
               extent_order = 16, mem_flags = 20, domid = 24);
plain_bytes!(XenMemoryReservation);

/// `struct xen_memory_exchange`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenMemoryExchange {
    pub r#in: XenMemoryReservation,
    pub out: XenMemoryReservation,
    /// Must be zero on entry.
    pub nr_exchanged: u64,
}
assert_layout!(XenMemoryExchange, size = 72, r#in = 0, out = 32, nr_exchanged = 64);

/// `struct xen_machphys_mfn_list`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenMachphysMfnList {
    pub max_extents: u32,
    pub _pad0: u32,
    /// Guest handle of a `xen_pfn_t` array: MFNs of the 2 MiB M2P extents.
    pub extent_start: u64,
    pub nr_extents: u32,
    pub _pad1: u32,
}
assert_layout!(XenMachphysMfnList, size = 24, max_extents = 0, extent_start = 8,
               nr_extents = 16);

/// `struct xen_machphys_mapping`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenMachphysMapping {
    pub v_start: u64,
    pub v_end: u64,
    pub max_mfn: u64,
}
assert_layout!(XenMachphysMapping, size = 24, v_start = 0, v_end = 8, max_mfn = 16);

/// `struct xen_add_to_physmap`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenAddToPhysmap {
    pub domid: u16,
    /// Pages for `XENMAPSPACE_gmfn_range`.
    pub size: u16,
    /// `XENMAPSPACE_*`.
    pub space: u32,
    pub idx: u64,
    pub gpfn: u64,
}
assert_layout!(XenAddToPhysmap, size = 24, domid = 0, size = 2, space = 4, idx = 8, gpfn = 16);

/// `struct xen_remove_from_physmap`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenRemoveFromPhysmap {
    pub domid: u16,
    pub _pad: [u16; 3],
    pub gpfn: u64,
}
assert_layout!(XenRemoveFromPhysmap, size = 16, domid = 0, gpfn = 8);

/// `struct xen_memory_map`: E820-format entries.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenMemoryMap {
    /// IN: capacity of `buffer`; OUT: entries stored.
    pub nr_entries: u32,
    pub _pad: u32,
    /// Guest handle.
    pub buffer: u64,
}
assert_layout!(XenMemoryMap, size = 16, nr_entries = 0, buffer = 8);

/// `struct xen_foreign_memory_map`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenForeignMemoryMap {
    pub domid: u16,
    pub _pad: [u16; 3],
    pub map: XenMemoryMap,
}
assert_layout!(XenForeignMemoryMap, size = 24, domid = 0, map = 8);
