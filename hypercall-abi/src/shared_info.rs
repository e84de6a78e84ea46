//! `struct shared_info` and `struct vcpu_info` (`xen.h`): the page Xen and
//! the guest share for event delivery and time.

use crate::arch::{ArchSharedInfo, ArchVcpuInfo};
use crate::assert_layout;

pub use crate::arch::XEN_LEGACY_MAX_VCPUS;

/// Event channels of the 2-level ABI on x86-64: 64 words of 64 bits.
pub const EVTCHN_2L_NR_CHANNELS: usize = 64 * 64;

/// `struct vcpu_time_info`. Xen makes `version` odd while it updates the
/// other fields, so a reader retries until it sees the same even version
/// before and after.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuTimeInfo {
    pub version: u32,
    pub pad0: u32,
    /// TSC at the last update.
    pub tsc_timestamp: u64,
    /// Nanoseconds since boot at `tsc_timestamp`.
    pub system_time: u64,
    /// `system_time + (((tsc - tsc_timestamp) << tsc_shift) * tsc_to_system_mul) >> 32`.
    pub tsc_to_system_mul: u32,
    pub tsc_shift: i8,
    /// `XEN_PVCLOCK_*` (interface versions after 0x040600; before, `pad1[0]`).
    pub flags: u8,
    pub pad1: [u8; 2],
}
assert_layout!(VcpuTimeInfo, size = 32, version = 0, tsc_timestamp = 8, system_time = 16,
               tsc_to_system_mul = 24, tsc_shift = 28, flags = 29);

/// `vcpu_time_info.flags`: the TSC is stable across vCPUs.
pub const XEN_PVCLOCK_TSC_STABLE_BIT: u8 = 1 << 0;
pub const XEN_PVCLOCK_GUEST_STOPPED: u8 = 1 << 1;

/// `struct vcpu_info`: per-vCPU event state.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuInfo {
    /// Set by Xen when an event is pending; the guest clears it before scanning.
    pub evtchn_upcall_pending: u8,
    /// The guest's "interrupts disabled" flag: no upcall while non-zero.
    pub evtchn_upcall_mask: u8,
    pub _pad: [u8; 6],
    /// One bit per word of `evtchn_pending` with a newly pending port.
    pub evtchn_pending_sel: u64,
    pub arch: ArchVcpuInfo,
    pub time: VcpuTimeInfo,
}
assert_layout!(VcpuInfo, size = 64, evtchn_upcall_pending = 0, evtchn_upcall_mask = 1,
               evtchn_pending_sel = 8, arch = 16, time = 32);

/// `struct shared_info`: one page per domain, mapped by the guest through
/// `start_info.shared_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedInfo {
    pub vcpu_info: [VcpuInfo; XEN_LEGACY_MAX_VCPUS],
    pub evtchn_pending: [u64; 64],
    /// Set by the guest to suppress upcalls for a port; Xen only reads it.
    pub evtchn_mask: [u64; 64],
    /// Odd while the wallclock fields below are being updated.
    pub wc_version: u32,
    /// Wallclock seconds since 1970 at system time 0.
    pub wc_sec: u32,
    pub wc_nsec: u32,
    pub wc_sec_hi: u32,
    pub arch: ArchSharedInfo,
}
assert_layout!(SharedInfo, size = 3136, vcpu_info = 0, evtchn_pending = 2048,
               evtchn_mask = 2560, wc_version = 3072, wc_sec = 3076, wc_nsec = 3080,
               wc_sec_hi = 3084, arch = 3088);
const _: () = assert!(core::mem::size_of::<SharedInfo>() <= 4096);

impl SharedInfo {
    pub const fn zeroed() -> Self {
        const T: VcpuTimeInfo = VcpuTimeInfo {
            version: 0, pad0: 0, tsc_timestamp: 0, system_time: 0,
            tsc_to_system_mul: 0, tsc_shift: 0, flags: 0, pad1: [0; 2],
        };
        const V: VcpuInfo = VcpuInfo {
            evtchn_upcall_pending: 0, evtchn_upcall_mask: 0, _pad: [0; 6],
            evtchn_pending_sel: 0, arch: ArchVcpuInfo { cr2: 0, pad: 0 }, time: T,
        };
        SharedInfo {
            vcpu_info: [V; XEN_LEGACY_MAX_VCPUS],
            evtchn_pending: [0; 64],
            evtchn_mask: [0; 64],
            wc_version: 0,
            wc_sec: 0,
            wc_nsec: 0,
            wc_sec_hi: 0,
            arch: ArchSharedInfo {
                max_pfn: 0, pfn_to_mfn_frame_list_list: 0, nmi_reason: 0,
                p2m_cr3: 0, p2m_vaddr: 0, p2m_generation: 0,
            },
        }
    }
}

impl Default for SharedInfo {
    fn default() -> Self {
        Self::zeroed()
    }
}
