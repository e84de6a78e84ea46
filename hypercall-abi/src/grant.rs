//! Grant tables: `grant_table_op` and the shared entries (`grant_table.h`).

use crate::assert_layout;

/// `struct grant_entry_v1`: one entry of the table a domain shares with Xen.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrantEntryV1 {
    /// `GTF_*`, written by guest and Xen.
    pub flags: u16,
    /// The domain granted access.
    pub domid: u16,
    /// The frame (GFN; an MFN for PV) granted.
    pub frame: u32,
}
assert_layout!(GrantEntryV1, size = 8, flags = 0, domid = 2, frame = 4);

/// `struct grant_entry_header`: the prefix v1 and v2 entries share.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrantEntryHeader {
    pub flags: u16,
    pub domid: u16,
}
assert_layout!(GrantEntryHeader, size = 4, flags = 0, domid = 2);

/// `union grant_entry_v2`, in its `full_page` view (the one used for whole
/// pages; sub-page and transitive grants reuse the same 16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrantEntryV2 {
    pub hdr: GrantEntryHeader,
    pub pad0: u32,
    pub frame: u64,
}
assert_layout!(GrantEntryV2, size = 16, hdr = 0, pad0 = 4, frame = 8);

/// `grant_status_t` (v2 status frames).
pub type GrantStatus = u16;

pub const GNTTAB_NR_RESERVED_ENTRIES: u32 = 8;
pub const GNTTAB_RESERVED_CONSOLE: u32 = 0;
pub const GNTTAB_RESERVED_XENSTORE: u32 = 1;

// Entry types and flags.
pub const GTF_invalid: u16 = 0;
pub const GTF_permit_access: u16 = 1;
pub const GTF_accept_transfer: u16 = 2;
pub const GTF_transitive: u16 = 3;
pub const GTF_type_mask: u16 = 3;
pub const GTF_readonly: u16 = 1 << 2;
pub const GTF_reading: u16 = 1 << 3;
pub const GTF_writing: u16 = 1 << 4;
pub const GTF_PWT: u16 = 1 << 5;
pub const GTF_PCD: u16 = 1 << 6;
pub const GTF_PAT: u16 = 1 << 7;
pub const GTF_sub_page: u16 = 1 << 8;
pub const GTF_transfer_committed: u16 = 1 << 2;
pub const GTF_transfer_completed: u16 = 1 << 3;

// grant_table_op commands.
pub const GNTTABOP_map_grant_ref: u32 = 0;
pub const GNTTABOP_unmap_grant_ref: u32 = 1;
pub const GNTTABOP_setup_table: u32 = 2;
pub const GNTTABOP_dump_table: u32 = 3;
pub const GNTTABOP_transfer: u32 = 4;
pub const GNTTABOP_copy: u32 = 5;
pub const GNTTABOP_query_size: u32 = 6;
pub const GNTTABOP_unmap_and_replace: u32 = 7;
pub const GNTTABOP_set_version: u32 = 8;
pub const GNTTABOP_get_status_frames: u32 = 9;
pub const GNTTABOP_get_version: u32 = 10;
pub const GNTTABOP_swap_grant_ref: u32 = 11;
pub const GNTTABOP_cache_flush: u32 = 12;

// gnttab_map_grant_ref.flags.
pub const GNTMAP_device_map: u32 = 1 << 0;
pub const GNTMAP_host_map: u32 = 1 << 1;
pub const GNTMAP_readonly: u32 = 1 << 2;
pub const GNTMAP_application_map: u32 = 1 << 3;
pub const GNTMAP_contains_pte: u32 = 1 << 4;
pub const GNTMAP_can_fail: u32 = 1 << 5;
pub const GNTMAP_guest_avail_mask: u32 = !0 << 16;

// gnttab_copy.flags.
pub const GNTCOPY_source_gref: u16 = 1 << 0;
pub const GNTCOPY_dest_gref: u16 = 1 << 1;

// Per-operation status codes (negative, in the op's `status` field).
pub const GNTST_okay: i16 = 0;
pub const GNTST_general_error: i16 = -1;
pub const GNTST_bad_domain: i16 = -2;
pub const GNTST_bad_gntref: i16 = -3;
pub const GNTST_bad_handle: i16 = -4;
pub const GNTST_bad_virt_addr: i16 = -5;
pub const GNTST_bad_dev_addr: i16 = -6;
pub const GNTST_no_device_space: i16 = -7;
pub const GNTST_permission_denied: i16 = -8;
pub const GNTST_bad_page: i16 = -9;
pub const GNTST_bad_copy_arg: i16 = -10;
pub const GNTST_address_too_big: i16 = -11;
pub const GNTST_eagain: i16 = -12;
pub const GNTST_no_space: i16 = -13;

/// `GNTTABOP_error_msgs`, indexed by `-status`.
pub const GNTTABOP_ERROR_MSGS: [&str; 14] = [
    "okay",
    "undefined error",
    "unrecognised domain id",
    "invalid grant reference",
    "invalid mapping handle",
    "invalid virtual address",
    "invalid device address",
    "no spare translation slot in the I/O MMU",
    "permission denied",
    "bad page",
    "copy arguments cross page boundary",
    "page address size too large",
    "operation not done; try again",
    "out of space",
];

/// `struct gnttab_map_grant_ref`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabMapGrantRef {
    pub host_addr: u64,
    /// `GNTMAP_*`.
    pub flags: u32,
    pub r#ref: u32,
    pub dom: u16,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// OUT.
    pub handle: u32,
    /// OUT.
    pub dev_bus_addr: u64,
}
assert_layout!(GnttabMapGrantRef, size = 32, host_addr = 0, flags = 8, r#ref = 12, dom = 16,
               status = 18, handle = 20, dev_bus_addr = 24);

/// `struct gnttab_unmap_grant_ref`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabUnmapGrantRef {
    pub host_addr: u64,
    pub dev_bus_addr: u64,
    pub handle: u32,
    /// OUT.
    pub status: i16,
    pub _pad: u16,
}
assert_layout!(GnttabUnmapGrantRef, size = 24, host_addr = 0, dev_bus_addr = 8, handle = 16,
               status = 20);

/// `struct gnttab_setup_table`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabSetupTable {
    pub dom: u16,
    pub _pad0: u16,
    pub nr_frames: u32,
    /// OUT.
    pub status: i16,
    pub _pad1: [u16; 3],
    /// Guest handle of a `xen_pfn_t` array (OUT).
    pub frame_list: u64,
}
assert_layout!(GnttabSetupTable, size = 24, dom = 0, nr_frames = 4, status = 8, frame_list = 16);

/// `struct gnttab_dump_table`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabDumpTable {
    pub dom: u16,
    /// OUT.
    pub status: i16,
}
assert_layout!(GnttabDumpTable, size = 4, dom = 0, status = 2);

/// `struct gnttab_transfer`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabTransfer {
    pub mfn: u64,
    pub domid: u16,
    pub _pad0: u16,
    pub r#ref: u32,
    /// OUT.
    pub status: i16,
    pub _pad1: [u16; 3],
}
assert_layout!(GnttabTransfer, size = 24, mfn = 0, domid = 8, r#ref = 12, status = 16);

/// `struct gnttab_copy_ptr`: `u` is `ref` (with `GNTCOPY_*_gref`) or `gmfn`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabCopyPtr {
    pub u: u64,
    pub domid: u16,
    pub offset: u16,
    pub _pad: u32,
}
assert_layout!(GnttabCopyPtr, size = 16, u = 0, domid = 8, offset = 10);

impl GnttabCopyPtr {
    /// `u.ref` is a 32-bit member of the union: only the low half counts.
    pub const fn gref(&self) -> u32 {
        self.u as u32
    }
    pub const fn gmfn(&self) -> u64 {
        self.u
    }
}

/// `struct gnttab_copy`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabCopy {
    pub source: GnttabCopyPtr,
    pub dest: GnttabCopyPtr,
    pub len: u16,
    /// `GNTCOPY_*`.
    pub flags: u16,
    /// OUT.
    pub status: i16,
    pub _pad: u16,
}
assert_layout!(GnttabCopy, size = 40, source = 0, dest = 16, len = 32, flags = 34, status = 36);

/// `struct gnttab_query_size`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabQuerySize {
    pub dom: u16,
    pub _pad0: u16,
    /// OUT.
    pub nr_frames: u32,
    /// OUT.
    pub max_nr_frames: u32,
    /// OUT.
    pub status: i16,
    pub _pad1: u16,
}
assert_layout!(GnttabQuerySize, size = 16, dom = 0, nr_frames = 4, max_nr_frames = 8, status = 12);

/// `struct gnttab_unmap_and_replace`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabUnmapAndReplace {
    pub host_addr: u64,
    pub new_addr: u64,
    pub handle: u32,
    /// OUT.
    pub status: i16,
    pub _pad: u16,
}
assert_layout!(GnttabUnmapAndReplace, size = 24, host_addr = 0, new_addr = 8, handle = 16,
               status = 20);

/// `struct gnttab_set_version`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabSetVersion {
    /// IN/OUT: 1 or 2.
    pub version: u32,
}
assert_layout!(GnttabSetVersion, size = 4, version = 0);

/// `struct gnttab_get_status_frames`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabGetStatusFrames {
    pub nr_frames: u32,
    pub dom: u16,
    /// OUT.
    pub status: i16,
    /// Guest handle of a `uint64_t` array (OUT).
    pub frame_list: u64,
}
assert_layout!(GnttabGetStatusFrames, size = 16, nr_frames = 0, dom = 4, status = 6,
               frame_list = 8);

/// `struct gnttab_get_version`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabGetVersion {
    pub dom: u16,
    pub pad: u16,
    /// OUT.
    pub version: u32,
}
assert_layout!(GnttabGetVersion, size = 8, dom = 0, pad = 2, version = 4);

/// `struct gnttab_swap_grant_ref`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabSwapGrantRef {
    pub ref_a: u32,
    pub ref_b: u32,
    /// OUT.
    pub status: i16,
    pub _pad: u16,
}
assert_layout!(GnttabSwapGrantRef, size = 12, ref_a = 0, ref_b = 4, status = 8);
