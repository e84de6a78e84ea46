//! `xen_version` sub-commands and their buffers (`version.h`, `features.h`).

use crate::assert_layout;

/// `arg == NULL`; returns `major << 16 | minor`.
pub const XENVER_version: u32 = 0;
/// `arg` = [`XenExtraversion`].
pub const XENVER_extraversion: u32 = 1;
/// `arg` = [`XenCompileInfo`].
pub const XENVER_compile_info: u32 = 2;
/// `arg` = [`XenCapabilitiesInfo`].
pub const XENVER_capabilities: u32 = 3;
/// `arg` = [`XenChangesetInfo`].
pub const XENVER_changeset: u32 = 4;
/// `arg` = [`XenPlatformParameters`].
pub const XENVER_platform_parameters: u32 = 5;
/// `arg` = [`XenFeatureInfo`].
pub const XENVER_get_features: u32 = 6;
/// `arg == NULL`; returns the page size.
pub const XENVER_pagesize: u32 = 7;
/// `arg` = `xen_domain_handle_t` (16 bytes).
pub const XENVER_guest_handle: u32 = 8;
/// `arg` = [`XenCommandline`].
pub const XENVER_commandline: u32 = 9;
/// `arg` = `struct xen_build_id` (u32 len, then the bytes); returns the length.
pub const XENVER_build_id: u32 = 10;

pub type XenExtraversion = [u8; 16];
pub type XenCapabilitiesInfo = [u8; 1024];
pub type XenChangesetInfo = [u8; 64];
pub type XenCommandline = [u8; 1024];
pub type XenDomainHandle = [u8; 16];

/// What Xen writes instead of a string the caller may not see.
pub const XENVER_DENIED_STRING: &[u8] = b"<denied>";

/// `struct xen_compile_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenCompileInfo {
    pub compiler: [u8; 64],
    pub compile_by: [u8; 16],
    pub compile_domain: [u8; 32],
    pub compile_date: [u8; 32],
}
assert_layout!(XenCompileInfo, size = 144, compiler = 0, compile_by = 64,
               compile_domain = 80, compile_date = 112);

/// `struct xen_platform_parameters`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenPlatformParameters {
    /// Start of the hypervisor hole.
    pub virt_start: u64,
}
assert_layout!(XenPlatformParameters, size = 8, virt_start = 0);

/// `struct xen_feature_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenFeatureInfo {
    /// IN: which 32-bit submap to return.
    pub submap_idx: u32,
    /// OUT: bit `n` is feature `32 * submap_idx + n`.
    pub submap: u32,
}
assert_layout!(XenFeatureInfo, size = 8, submap_idx = 0, submap = 4);

// XENFEAT_* (features.h): bit numbers in the submaps of XENVER_get_features,
// also the names accepted by the XEN_ELFNOTE_FEATURES string.
pub const XENFEAT_writable_page_tables: u32 = 0;
pub const XENFEAT_writable_descriptor_tables: u32 = 1;
pub const XENFEAT_auto_translated_physmap: u32 = 2;
pub const XENFEAT_supervisor_mode_kernel: u32 = 3;
pub const XENFEAT_pae_pgdir_above_4gb: u32 = 4;
pub const XENFEAT_mmu_pt_update_preserve_ad: u32 = 5;
pub const XENFEAT_highmem_assist: u32 = 6;
pub const XENFEAT_gnttab_map_avail_bits: u32 = 7;
pub const XENFEAT_hvm_callback_vector: u32 = 8;
pub const XENFEAT_hvm_safe_pvclock: u32 = 9;
pub const XENFEAT_hvm_pirqs: u32 = 10;
pub const XENFEAT_dom0: u32 = 11;
/// Deprecated in the header; the number stays reserved.
pub const XENFEAT_grant_map_identity: u32 = 12;
pub const XENFEAT_memory_op_vnode_supported: u32 = 13;
pub const XENFEAT_ARM_SMCCC_supported: u32 = 14;
pub const XENFEAT_linux_rsdp_unrestricted: u32 = 15;
pub const XENFEAT_not_direct_mapped: u32 = 16;
pub const XENFEAT_direct_mapped: u32 = 17;
pub const XENFEAT_NR_SUBMAPS: u32 = 1;

/// Xen's `XENVER_version` encoding.
pub const fn xen_version_encode(major: u16, minor: u16) -> u32 {
    (major as u32) << 16 | minor as u32
}

/// Splits a `XENVER_version` result into `(major, minor)`.
pub const fn xen_version_decode(v: u32) -> (u16, u16) {
    ((v >> 16) as u16, v as u16)
}
