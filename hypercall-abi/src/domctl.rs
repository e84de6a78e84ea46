//! `domctl` and `sysctl` (`domctl.h`, `sysctl.h`): the control domain's
//! hypercalls for building, running and tearing down other domains, and for
//! asking about the host.
//!
//! Layouts are Xen 4.17's (`XEN_DOMCTL_INTERFACE_VERSION` 0x15,
//! `XEN_SYSCTL_INTERFACE_VERSION` 0x15), checked below against the sizes and
//! offsets gcc computes from the 4.17 headers on x86-64. Xen refuses a call
//! whose `interface_version` differs with `-EACCES`, before anything else,
//! and a caller that is not the control domain with `-EPERM`.
//!
//! Both hypercalls take one pointer to a fixed-size structure: a header, then
//! a union of the sub-commands' arguments (`u`) that Xen copies back whole
//! when the command has results. Every type here is plain integers with all
//! padding spelt out, so any byte image is a valid value: [`XenDomctl`] and
//! [`XenSysctl`] convert to and from bytes safely, and their union views are
//! read through safe accessors.

use core::fmt;

use crate::arch::VcpuGuestContext;
use crate::{assert_layout, plain_bytes};

pub const XEN_DOMCTL_INTERFACE_VERSION: u32 = 0x0000_0015;
pub const XEN_SYSCTL_INTERFACE_VERSION: u32 = 0x0000_0015;

// ---------------------------------------------------------------------------
// domctl command numbers (those a PV toolstack uses; the rest are listed by
// name in `domctl_name`'s comment in the header and answer -ENOSYS here).

pub const XEN_DOMCTL_createdomain: u32 = 1;
pub const XEN_DOMCTL_destroydomain: u32 = 2;
pub const XEN_DOMCTL_pausedomain: u32 = 3;
pub const XEN_DOMCTL_unpausedomain: u32 = 4;
pub const XEN_DOMCTL_getdomaininfo: u32 = 5;
pub const XEN_DOMCTL_setvcpuaffinity: u32 = 9;
pub const XEN_DOMCTL_shadow_op: u32 = 10;
pub const XEN_DOMCTL_max_mem: u32 = 11;
pub const XEN_DOMCTL_setvcpucontext: u32 = 12;
pub const XEN_DOMCTL_getvcpucontext: u32 = 13;
pub const XEN_DOMCTL_getvcpuinfo: u32 = 14;
/// Creates the domain's vCPU structures (0..max). In 4.17 `max` must equal
/// createdomain's `max_vcpus` (else -EINVAL), and a domain has no vCPU,
/// so setvcpucontext fails with -EINVAL, until this is done (libxl calls it
/// right after createdomain).
pub const XEN_DOMCTL_max_vcpus: u32 = 15;
pub const XEN_DOMCTL_scheduler_op: u32 = 16;
pub const XEN_DOMCTL_setdomainhandle: u32 = 17;
pub const XEN_DOMCTL_setdebugging: u32 = 18;
pub const XEN_DOMCTL_irq_permission: u32 = 19;
pub const XEN_DOMCTL_iomem_permission: u32 = 20;
pub const XEN_DOMCTL_ioport_permission: u32 = 21;
/// Fill a page of the domain with its hypercall stubs.
pub const XEN_DOMCTL_hypercall_init: u32 = 22;
pub const XEN_DOMCTL_settimeoffset: u32 = 24;
pub const XEN_DOMCTL_getvcpuaffinity: u32 = 25;
pub const XEN_DOMCTL_resumedomain: u32 = 27;
pub const XEN_DOMCTL_sendtrigger: u32 = 28;
pub const XEN_DOMCTL_subscribe: u32 = 29;
pub const XEN_DOMCTL_set_address_size: u32 = 35;
pub const XEN_DOMCTL_get_address_size: u32 = 36;
pub const XEN_DOMCTL_set_ext_vcpucontext: u32 = 42;
pub const XEN_DOMCTL_get_ext_vcpucontext: u32 = 43;
pub const XEN_DOMCTL_set_target: u32 = 46;
pub const XEN_DOMCTL_getpageframeinfo3: u32 = 61;
pub const XEN_DOMCTL_set_virq_handler: u32 = 66;
pub const XEN_DOMCTL_soft_reset: u32 = 79;
pub const XEN_DOMCTL_get_cpu_policy: u32 = 82;
pub const XEN_DOMCTL_set_cpu_policy: u32 = 83;

/// Xen's name of a domctl command, for logs.
pub fn domctl_name(cmd: u32) -> Option<&'static str> {
    Some(match cmd {
        XEN_DOMCTL_createdomain => "createdomain",
        XEN_DOMCTL_destroydomain => "destroydomain",
        XEN_DOMCTL_pausedomain => "pausedomain",
        XEN_DOMCTL_unpausedomain => "unpausedomain",
        XEN_DOMCTL_getdomaininfo => "getdomaininfo",
        XEN_DOMCTL_setvcpuaffinity => "setvcpuaffinity",
        XEN_DOMCTL_shadow_op => "shadow_op",
        XEN_DOMCTL_max_mem => "max_mem",
        XEN_DOMCTL_setvcpucontext => "setvcpucontext",
        XEN_DOMCTL_getvcpucontext => "getvcpucontext",
        XEN_DOMCTL_getvcpuinfo => "getvcpuinfo",
        XEN_DOMCTL_max_vcpus => "max_vcpus",
        XEN_DOMCTL_scheduler_op => "scheduler_op",
        XEN_DOMCTL_setdomainhandle => "setdomainhandle",
        XEN_DOMCTL_setdebugging => "setdebugging",
        XEN_DOMCTL_hypercall_init => "hypercall_init",
        XEN_DOMCTL_settimeoffset => "settimeoffset",
        XEN_DOMCTL_getvcpuaffinity => "getvcpuaffinity",
        XEN_DOMCTL_resumedomain => "resumedomain",
        XEN_DOMCTL_set_address_size => "set_address_size",
        XEN_DOMCTL_get_address_size => "get_address_size",
        XEN_DOMCTL_set_virq_handler => "set_virq_handler",
        XEN_DOMCTL_soft_reset => "soft_reset",
        _ => return None,
    })
}

/// `xen_domain_handle_t`: the toolstack's UUID of a domain.
pub type XenDomainHandle = [u8; 16];

// ---------------------------------------------------------------------------
// XEN_DOMCTL_createdomain

// XEN_DOMCTL_CDF_*: `XenDomctlCreatedomain::flags`. A PV guest sets none of
// hvm/hap (0 is "PV"); iommu only with passthrough.
pub const XEN_DOMCTL_CDF_hvm: u32 = 1 << 0;
pub const XEN_DOMCTL_CDF_hap: u32 = 1 << 1;
pub const XEN_DOMCTL_CDF_s3_integrity: u32 = 1 << 2;
pub const XEN_DOMCTL_CDF_oos_off: u32 = 1 << 3;
pub const XEN_DOMCTL_CDF_xs_domain: u32 = 1 << 4;
pub const XEN_DOMCTL_CDF_iommu: u32 = 1 << 5;
pub const XEN_DOMCTL_CDF_nested_virt: u32 = 1 << 6;
pub const XEN_DOMCTL_CDF_vpmu: u32 = 1 << 7;
/// Highest defined flag; Xen 4.17 refuses any flag above it with -EINVAL.
pub const XEN_DOMCTL_CDF_MAX: u32 = XEN_DOMCTL_CDF_vpmu;

/// `iommu_opts`.
pub const XEN_DOMCTL_IOMMU_no_sharept: u32 = 1 << 0;

/// `grant_opts`: the highest grant-table version the guest may use, in the
/// low 4 bits. Xen 4.17 refuses 0 with -EINVAL; xl passes 2 (its default
/// `max_grant_version`), or 1 when the host lacks v2.
pub const XEN_DOMCTL_GRANT_version_mask: u32 = 0xf;
#[allow(non_snake_case)] // the header's macro name
pub const fn XEN_DOMCTL_GRANT_version(v: u32) -> u32 {
    v & XEN_DOMCTL_GRANT_version_mask
}

// `struct xen_arch_domainconfig` (x86) `emulation_flags`: a PV guest must
// pass 0 (or XEN_X86_EMU_PIT alone); anything else is -EOPNOTSUPP.
pub const XEN_X86_EMU_LAPIC: u32 = 1 << 0;
pub const XEN_X86_EMU_HPET: u32 = 1 << 1;
pub const XEN_X86_EMU_PM: u32 = 1 << 2;
pub const XEN_X86_EMU_RTC: u32 = 1 << 3;
pub const XEN_X86_EMU_IOAPIC: u32 = 1 << 4;
pub const XEN_X86_EMU_PIC: u32 = 1 << 5;
pub const XEN_X86_EMU_VGA: u32 = 1 << 6;
pub const XEN_X86_EMU_IOMMU: u32 = 1 << 7;
pub const XEN_X86_EMU_PIT: u32 = 1 << 8;
pub const XEN_X86_EMU_USE_PIRQ: u32 = 1 << 9;
pub const XEN_X86_EMU_VPCI: u32 = 1 << 10;
/// `misc_flags`.
pub const XEN_X86_MSR_RELAXED: u32 = 1 << 0;

/// `struct xen_arch_domainconfig` (x86).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenArchDomainconfig {
    /// `XEN_X86_EMU_*`.
    pub emulation_flags: u32,
    /// `XEN_X86_MSR_RELAXED`.
    pub misc_flags: u32,
}
assert_layout!(XenArchDomainconfig, size = 8, emulation_flags = 0, misc_flags = 4);

/// `struct xen_domctl_createdomain`. The new domain id comes back in
/// [`XenDomctl::domain`]: pass 0 or any id >= `DOMID_FIRST_RESERVED` to have
/// Xen choose one, or a free id below it to ask for that one. The domain
/// starts paused (by the "controller"), with no memory and its vCPUs down.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlCreatedomain {
    /// IN: XSM label; 0 without XSM.
    pub ssidref: u32,
    /// IN: the toolstack's UUID.
    pub handle: XenDomainHandle,
    /// IN: `XEN_DOMCTL_CDF_*`.
    pub flags: u32,
    /// IN: `XEN_DOMCTL_IOMMU_*`; must be 0 unless `XEN_DOMCTL_CDF_iommu`.
    pub iommu_opts: u32,
    /// IN: vCPUs the domain will ever have (ids 0..max_vcpus); at least 1.
    pub max_vcpus: u32,
    /// IN: highest event-channel port (xl's default: 1023).
    pub max_evtchn_port: u32,
    /// IN: grant-table frames; < 0 means the hypervisor's default (xl: 32 / -1).
    pub max_grant_frames: i32,
    /// IN: maptrack frames; < 0 means the hypervisor's default.
    pub max_maptrack_frames: i32,
    /// IN: `XEN_DOMCTL_GRANT_version(v)`.
    pub grant_opts: u32,
    /// IN: per-vCPU processor-trace buffer bytes; 0 (off) for PV.
    pub vmtrace_size: u32,
    /// IN: CPU pool; 0 is the default pool.
    pub cpupool_id: u32,
    pub arch: XenArchDomainconfig,
}
assert_layout!(XenDomctlCreatedomain, size = 64, ssidref = 0, handle = 4, flags = 20,
               iommu_opts = 24, max_vcpus = 28, max_evtchn_port = 32, max_grant_frames = 36,
               max_maptrack_frames = 40, grant_opts = 44, vmtrace_size = 48, cpupool_id = 52,
               arch = 56);

// ---------------------------------------------------------------------------
// XEN_DOMCTL_getdomaininfo (and XEN_SYSCTL_getdomaininfolist's elements)

// XEN_DOMINF_*: `XenDomctlGetdomaininfo::flags`.
/// Destroyed, waiting for its last references to go.
pub const XEN_DOMINF_dying: u32 = 1 << 0;
pub const XEN_DOMINF_hvm_guest: u32 = 1 << 1;
/// The guest shut down; the reason is in bits 16-23 (`XEN_DOMINF_shutdownshift`).
pub const XEN_DOMINF_shutdown: u32 = 1 << 2;
/// Paused by the control domain (pausedomain, or still paused since createdomain).
pub const XEN_DOMINF_paused: u32 = 1 << 3;
/// Every online vCPU is blocked waiting for an event.
pub const XEN_DOMINF_blocked: u32 = 1 << 4;
/// Some vCPU is running on a physical CPU right now.
pub const XEN_DOMINF_running: u32 = 1 << 5;
pub const XEN_DOMINF_debugged: u32 = 1 << 6;
pub const XEN_DOMINF_xs_domain: u32 = 1 << 7;
pub const XEN_DOMINF_hap: u32 = 1 << 8;
/// The `SHUTDOWN_*` code of a shut-down domain: `(flags >> shift) & mask`.
pub const XEN_DOMINF_shutdownmask: u32 = 255;
pub const XEN_DOMINF_shutdownshift: u32 = 16;

/// `max_vcpu_id` of a domain without vCPUs.
pub const XEN_INVALID_MAX_VCPU_ID: u32 = !0;

/// `struct xen_domctl_getdomaininfo` (all OUT).
///
/// Xen 4.17 quirk: `XEN_DOMCTL_getdomaininfo` for an id that does not exist
/// answers for the next existing domain with a higher id (and echoes that id
/// in `XenDomctl::domain`); -ESRCH only when there is none. Callers asking
/// about one domain must compare `domain` with the id they asked for. (Xen
/// 4.18 changed this to -ESRCH.)
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlGetdomaininfo {
    /// Also echoed in `XenDomctl::domain`.
    pub domain: u16,
    pub pad1: u16,
    /// `XEN_DOMINF_*`.
    pub flags: u32,
    /// Pages the domain owns now.
    pub tot_pages: u64,
    /// Its limit (max_mem in pages).
    pub max_pages: u64,
    pub outstanding_pages: u64,
    pub shr_pages: u64,
    pub paged_pages: u64,
    /// MFN (GMFN) of the domain's shared_info page.
    pub shared_info_frame: u64,
    /// CPU time used by all vCPUs, in ns.
    pub cpu_time: u64,
    /// vCPUs currently up.
    pub nr_online_vcpus: u32,
    /// Highest vCPU id (`max_vcpus - 1`), or `XEN_INVALID_MAX_VCPU_ID`.
    pub max_vcpu_id: u32,
    pub ssidref: u32,
    pub handle: XenDomainHandle,
    pub cpupool: u32,
    /// Guest physical address bits.
    pub gpaddr_bits: u8,
    pub pad2: [u8; 7],
    pub arch_config: XenArchDomainconfig,
}
assert_layout!(XenDomctlGetdomaininfo, size = 112, domain = 0, pad1 = 2, flags = 4,
               tot_pages = 8, max_pages = 16, outstanding_pages = 24, shr_pages = 32,
               paged_pages = 40, shared_info_frame = 48, cpu_time = 56, nr_online_vcpus = 64,
               max_vcpu_id = 68, ssidref = 72, handle = 76, cpupool = 92, gpaddr_bits = 96,
               pad2 = 97, arch_config = 104);
plain_bytes!(XenDomctlGetdomaininfo);

impl XenDomctlGetdomaininfo {
    /// The `SHUTDOWN_*` reason, when `XEN_DOMINF_shutdown` is set.
    pub const fn shutdown_reason(&self) -> Option<u32> {
        if self.flags & XEN_DOMINF_shutdown != 0 {
            Some((self.flags >> XEN_DOMINF_shutdownshift) & XEN_DOMINF_shutdownmask)
        } else {
            None
        }
    }
}

// ---------------------------------------------------------------------------
// XEN_DOMCTL_max_mem

/// `struct xen_domctl_max_mem`: the most memory the domain may own, in KiB
/// (Xen keeps `max_memkb >> (PAGE_SHIFT - 10)` pages); lowering it below
/// what the domain owns is allowed and only stops further growth.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlMaxMem {
    pub max_memkb: u64,
}
assert_layout!(XenDomctlMaxMem, size = 8, max_memkb = 0);

// ---------------------------------------------------------------------------
// XEN_DOMCTL_setvcpucontext / XEN_DOMCTL_getvcpucontext

/// `struct xen_domctl_vcpucontext`. `ctxt` is a guest handle (virtual
/// address in the caller) of a [`VcpuGuestContext`]: read for set, written
/// for get. setvcpucontext with `ctxt` 0 resets the vCPU. For a PV guest the
/// context's `flags` must include `VGCF_online` to bring the vCPU up once
/// the domain is unpaused; `ctrlreg[3]` is `xen_pfn_to_cr3(l4 mfn)` of a
/// page-table that the builder pinned as an L4 (Xen takes a type reference).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlVcpucontext {
    pub vcpu: u32,
    pub _pad: u32,
    /// `XEN_GUEST_HANDLE_64(vcpu_guest_context_t)`.
    pub ctxt: u64,
}
assert_layout!(XenDomctlVcpucontext, size = 16, vcpu = 0, ctxt = 8);

// ---------------------------------------------------------------------------
// XEN_DOMCTL_getvcpuinfo

/// `struct xen_domctl_getvcpuinfo`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlGetvcpuinfo {
    /// IN.
    pub vcpu: u32,
    /// OUT: 1 when up.
    pub online: u8,
    pub blocked: u8,
    pub running: u8,
    pub _pad: u8,
    /// OUT: ns of CPU time.
    pub cpu_time: u64,
    /// OUT: physical CPU.
    pub cpu: u32,
    pub _pad2: u32,
}
assert_layout!(XenDomctlGetvcpuinfo, size = 24, vcpu = 0, online = 4, blocked = 5,
               running = 6, cpu_time = 8, cpu = 16);

/// `struct xen_domctl_max_vcpus`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlMaxVcpus {
    pub max: u32,
}
assert_layout!(XenDomctlMaxVcpus, size = 4, max = 0);

// ---------------------------------------------------------------------------
// XEN_DOMCTL_scheduler_op

// XEN_SCHEDULER_*.
pub const XEN_SCHEDULER_CREDIT: u32 = 5;
pub const XEN_SCHEDULER_CREDIT2: u32 = 6;
pub const XEN_SCHEDULER_ARINC653: u32 = 7;
pub const XEN_SCHEDULER_RTDS: u32 = 8;
pub const XEN_SCHEDULER_NULL: u32 = 9;

// XEN_DOMCTL_SCHEDOP_*.
pub const XEN_DOMCTL_SCHEDOP_putinfo: u32 = 0;
pub const XEN_DOMCTL_SCHEDOP_getinfo: u32 = 1;
pub const XEN_DOMCTL_SCHEDOP_putvcpuinfo: u32 = 2;
pub const XEN_DOMCTL_SCHEDOP_getvcpuinfo: u32 = 3;

/// The credit scheduler's default weight (`sched_credit.c`, not in the
/// public header). Weights are 1..=65535; `cap` is a percentage of one CPU,
/// 0 meaning none. Xen's credit putinfo changes `weight` only when it is
/// non-zero and `cap` only when it is not `0xFFFF`, so one field can be set
/// alone.
pub const CSCHED_DEFAULT_WEIGHT: u16 = 256;

/// `struct xen_domctl_sched_credit` (credit2 has the same shape).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlSchedCredit {
    pub weight: u16,
    pub cap: u16,
}
assert_layout!(XenDomctlSchedCredit, size = 4, weight = 0, cap = 2);

/// `struct xen_domctl_scheduler_op`. The C union `u` (credit, credit2,
/// rtds{period,budget,flags}, v{vcpus handle, nr_vcpus, padding}) is two
/// words here, read and written through the accessors.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlSchedulerOp {
    /// `XEN_SCHEDULER_*`: must name the domain's scheduler, else -EINVAL.
    pub sched_id: u32,
    /// `XEN_DOMCTL_SCHEDOP_*`.
    pub cmd: u32,
    pub u: [u64; 2],
}
assert_layout!(XenDomctlSchedulerOp, size = 24, sched_id = 0, cmd = 4, u = 8);

impl XenDomctlSchedulerOp {
    /// `u.credit` (or `u.credit2`).
    pub const fn credit(&self) -> XenDomctlSchedCredit {
        XenDomctlSchedCredit { weight: self.u[0] as u16, cap: (self.u[0] >> 16) as u16 }
    }
    /// Sets `u.credit`, zeroing the rest of the union.
    pub fn set_credit(&mut self, c: XenDomctlSchedCredit) {
        self.u = [c.weight as u64 | (c.cap as u64) << 16, 0];
    }
}

// ---------------------------------------------------------------------------
// Smaller sub-commands.

/// `struct xen_domctl_hypercall_init`: `gmfn` (an MFN for PV) of a page the
/// domain owns, which Xen fills with the 64-bit PV hypercall stubs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlHypercallInit {
    pub gmfn: u64,
}
assert_layout!(XenDomctlHypercallInit, size = 8, gmfn = 0);

/// `struct xen_domctl_setdomainhandle`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlSetdomainhandle {
    pub handle: XenDomainHandle,
}
assert_layout!(XenDomctlSetdomainhandle, size = 16, handle = 0);

/// `struct xen_domctl_address_size` (`set_address_size`/`get_address_size`):
/// 64 for a 64-bit PV guest, the default.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlAddressSize {
    pub size: u32,
}
assert_layout!(XenDomctlAddressSize, size = 4, size = 0);

// ---------------------------------------------------------------------------
// struct xen_domctl

/// Size of `struct xen_domctl`'s union (its `pad[128]` member).
pub const XEN_DOMCTL_U_SIZE: usize = 128;

/// The union `u` of `struct xen_domctl`. Every view is integers with its
/// padding spelt out, and [`XenDomctl`] is only ever built from the
/// zeroed `pad` or from bytes, so all 128 bytes are always initialised and
/// any view reads valid values: the accessors on [`XenDomctl`] are safe.
#[repr(C)]
#[derive(Clone, Copy)]
pub union XenDomctlU {
    pub createdomain: XenDomctlCreatedomain,
    pub getdomaininfo: XenDomctlGetdomaininfo,
    pub max_mem: XenDomctlMaxMem,
    pub vcpucontext: XenDomctlVcpucontext,
    pub getvcpuinfo: XenDomctlGetvcpuinfo,
    pub max_vcpus: XenDomctlMaxVcpus,
    pub scheduler_op: XenDomctlSchedulerOp,
    pub setdomainhandle: XenDomctlSetdomainhandle,
    pub hypercall_init: XenDomctlHypercallInit,
    pub address_size: XenDomctlAddressSize,
    pub pad: [u8; XEN_DOMCTL_U_SIZE],
}
assert_layout!(XenDomctlU, size = 128);
const _: () = assert!(core::mem::align_of::<XenDomctlU>() == 8);

/// `struct xen_domctl`: the argument of `HYPERVISOR_domctl(&domctl)`.
/// Xen copies all of it in, and copies all of it back when the command has
/// results (createdomain, getdomaininfo, getvcpucontext, getvcpuinfo,
/// scheduler_op getinfo, ...).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct XenDomctl {
    /// `XEN_DOMCTL_*`.
    pub cmd: u32,
    /// Must be [`XEN_DOMCTL_INTERFACE_VERSION`], else -EACCES.
    pub interface_version: u32,
    /// The target domain (IN/OUT for createdomain and getdomaininfo).
    pub domain: u16,
    pub _pad: [u16; 3],
    pub u: XenDomctlU,
}
assert_layout!(XenDomctl, size = 144, cmd = 0, interface_version = 4, domain = 8, _pad = 10,
               u = 16);
plain_bytes!(XenDomctl);

impl XenDomctl {
    /// A command for `domain`, with the 4.17 interface version and all else zero.
    pub const fn new(cmd: u32, domain: u16) -> Self {
        XenDomctl {
            cmd,
            interface_version: XEN_DOMCTL_INTERFACE_VERSION,
            domain,
            _pad: [0; 3],
            u: XenDomctlU { pad: [0; XEN_DOMCTL_U_SIZE] },
        }
    }

    /// The union's raw bytes.
    pub const fn u_bytes(&self) -> &[u8; XEN_DOMCTL_U_SIZE] {
        // SAFETY: see `XenDomctlU`: all 128 bytes are always initialised.
        unsafe { &self.u.pad }
    }
    pub fn createdomain(&self) -> &XenDomctlCreatedomain {
        // SAFETY: see `XenDomctlU`: initialised bytes, every bit pattern valid.
        unsafe { &self.u.createdomain }
    }
    pub fn createdomain_mut(&mut self) -> &mut XenDomctlCreatedomain {
        // SAFETY: as in `createdomain`; writes through it keep every byte initialised.
        unsafe { &mut self.u.createdomain }
    }
    pub fn getdomaininfo(&self) -> &XenDomctlGetdomaininfo {
        // SAFETY: as in `createdomain`.
        unsafe { &self.u.getdomaininfo }
    }
    pub fn getdomaininfo_mut(&mut self) -> &mut XenDomctlGetdomaininfo {
        // SAFETY: as in `createdomain_mut`.
        unsafe { &mut self.u.getdomaininfo }
    }
    pub fn max_mem(&self) -> &XenDomctlMaxMem {
        // SAFETY: as in `createdomain`.
        unsafe { &self.u.max_mem }
    }
    pub fn max_mem_mut(&mut self) -> &mut XenDomctlMaxMem {
        // SAFETY: as in `createdomain_mut`.
        unsafe { &mut self.u.max_mem }
    }
    pub fn vcpucontext(&self) -> &XenDomctlVcpucontext {
        // SAFETY: as in `createdomain`.
        unsafe { &self.u.vcpucontext }
    }
    pub fn vcpucontext_mut(&mut self) -> &mut XenDomctlVcpucontext {
        // SAFETY: as in `createdomain_mut`.
        unsafe { &mut self.u.vcpucontext }
    }
    pub fn getvcpuinfo(&self) -> &XenDomctlGetvcpuinfo {
        // SAFETY: as in `createdomain`.
        unsafe { &self.u.getvcpuinfo }
    }
    pub fn getvcpuinfo_mut(&mut self) -> &mut XenDomctlGetvcpuinfo {
        // SAFETY: as in `createdomain_mut`.
        unsafe { &mut self.u.getvcpuinfo }
    }
    pub fn max_vcpus(&self) -> &XenDomctlMaxVcpus {
        // SAFETY: as in `createdomain`.
        unsafe { &self.u.max_vcpus }
    }
    pub fn max_vcpus_mut(&mut self) -> &mut XenDomctlMaxVcpus {
        // SAFETY: as in `createdomain_mut`.
        unsafe { &mut self.u.max_vcpus }
    }
    pub fn scheduler_op(&self) -> &XenDomctlSchedulerOp {
        // SAFETY: as in `createdomain`.
        unsafe { &self.u.scheduler_op }
    }
    pub fn scheduler_op_mut(&mut self) -> &mut XenDomctlSchedulerOp {
        // SAFETY: as in `createdomain_mut`.
        unsafe { &mut self.u.scheduler_op }
    }
    pub fn hypercall_init(&self) -> &XenDomctlHypercallInit {
        // SAFETY: as in `createdomain`.
        unsafe { &self.u.hypercall_init }
    }
    pub fn hypercall_init_mut(&mut self) -> &mut XenDomctlHypercallInit {
        // SAFETY: as in `createdomain_mut`.
        unsafe { &mut self.u.hypercall_init }
    }
    pub fn setdomainhandle(&self) -> &XenDomctlSetdomainhandle {
        // SAFETY: as in `createdomain`.
        unsafe { &self.u.setdomainhandle }
    }
    pub fn address_size(&self) -> &XenDomctlAddressSize {
        // SAFETY: as in `createdomain`.
        unsafe { &self.u.address_size }
    }
    pub fn address_size_mut(&mut self) -> &mut XenDomctlAddressSize {
        // SAFETY: as in `createdomain_mut`.
        unsafe { &mut self.u.address_size }
    }
}

impl Default for XenDomctl {
    fn default() -> Self {
        Self::new(0, 0)
    }
}

impl fmt::Debug for XenDomctl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XenDomctl")
            .field("cmd", &self.cmd)
            .field("interface_version", &self.interface_version)
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

impl PartialEq for XenDomctl {
    fn eq(&self, other: &Self) -> bool {
        self.to_bytes() == other.to_bytes()
    }
}
impl Eq for XenDomctl {}

// Keep the vCPU context the handle points at in view: setvcpucontext reads
// exactly this many bytes from the caller.
const _: () = assert!(core::mem::size_of::<VcpuGuestContext>() == 5168);

/// `domctl(&domctl)` from the control domain: 0 or `-errno`; results are
/// in `d` (Xen copies the whole structure back).
///
/// # Safety
/// Guest handles inside `d` (`vcpucontext.ctxt`) must point to memory valid
/// for what the command does with them: Xen reads a [`VcpuGuestContext`]
/// there for setvcpucontext and overwrites one for getvcpucontext.
pub unsafe fn domctl(d: &mut XenDomctl) -> i64 {
    // SAFETY: Xen reads and writes the 144-byte structure, which `d` borrows
    // mutably for the call; the caller vouches for the handles inside it.
    unsafe { crate::guest::hypercall1(crate::nr::DOMCTL, d as *mut XenDomctl as u64) }
}

/// `sysctl(&sysctl)` from the control domain: 0 or `-errno`.
///
/// # Safety
/// As [`domctl`]: `readconsole.buffer` and `getdomaininfolist.buffer` must be
/// writable for `count` bytes / `max_domains` entries.
pub unsafe fn sysctl(s: &mut XenSysctl) -> i64 {
    // SAFETY: as in `domctl`, for the 136-byte structure.
    unsafe { crate::guest::hypercall1(crate::nr::SYSCTL, s as *mut XenSysctl as u64) }
}

// ===========================================================================
// sysctl

pub const XEN_SYSCTL_readconsole: u32 = 1;
pub const XEN_SYSCTL_tbuf_op: u32 = 2;
pub const XEN_SYSCTL_physinfo: u32 = 3;
pub const XEN_SYSCTL_sched_id: u32 = 4;
pub const XEN_SYSCTL_perfc_op: u32 = 5;
pub const XEN_SYSCTL_getdomaininfolist: u32 = 6;
pub const XEN_SYSCTL_debug_keys: u32 = 7;
pub const XEN_SYSCTL_getcpuinfo: u32 = 8;
pub const XEN_SYSCTL_availheap: u32 = 9;
pub const XEN_SYSCTL_cputopoinfo: u32 = 16;
pub const XEN_SYSCTL_numainfo: u32 = 17;
pub const XEN_SYSCTL_cpupool_op: u32 = 18;
pub const XEN_SYSCTL_scheduler_op: u32 = 19;

/// `struct xen_sysctl_readconsole`: copy out the hypervisor's console ring
/// (what `xl dmesg` prints).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenSysctlReadconsole {
    /// IN: non-zero clears the ring after reading.
    pub clear: u8,
    /// IN: non-zero starts at `index` instead of the oldest byte.
    pub incremental: u8,
    pub pad0: u8,
    pub pad1: u8,
    /// IN: start index (if `incremental`); OUT: index after the last byte read.
    pub index: u32,
    /// IN: guest handle of the buffer.
    pub buffer: u64,
    /// IN: buffer size; OUT: bytes written.
    pub count: u32,
    pub _pad: u32,
}
assert_layout!(XenSysctlReadconsole, size = 24, clear = 0, incremental = 1, index = 4,
               buffer = 8, count = 16);

// XEN_SYSCTL_PHYSCAP_*: `XenSysctlPhysinfo::capabilities`.
pub const XEN_SYSCTL_PHYSCAP_hvm: u32 = 1 << 0;
pub const XEN_SYSCTL_PHYSCAP_pv: u32 = 1 << 1;
pub const XEN_SYSCTL_PHYSCAP_directio: u32 = 1 << 2;
pub const XEN_SYSCTL_PHYSCAP_hap: u32 = 1 << 3;
pub const XEN_SYSCTL_PHYSCAP_shadow: u32 = 1 << 4;
pub const XEN_SYSCTL_PHYSCAP_iommu_hap_pt_share: u32 = 1 << 5;
pub const XEN_SYSCTL_PHYSCAP_vmtrace: u32 = 1 << 6;
pub const XEN_SYSCTL_PHYSCAP_vpmu: u32 = 1 << 7;
pub const XEN_SYSCTL_PHYSCAP_gnttab_v1: u32 = 1 << 8;
pub const XEN_SYSCTL_PHYSCAP_gnttab_v2: u32 = 1 << 9;

/// `struct xen_sysctl_physinfo` (all OUT): what `xl info` prints.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenSysctlPhysinfo {
    pub threads_per_core: u32,
    pub cores_per_socket: u32,
    /// CPUs online.
    pub nr_cpus: u32,
    pub max_cpu_id: u32,
    pub nr_nodes: u32,
    pub max_node_id: u32,
    pub cpu_khz: u32,
    /// `XEN_SYSCTL_PHYSCAP_*`.
    pub capabilities: u32,
    pub arch_capabilities: u32,
    pub pad: u32,
    /// Pages of RAM the hypervisor manages.
    pub total_pages: u64,
    /// Pages not owned by anyone.
    pub free_pages: u64,
    pub scrub_pages: u64,
    pub outstanding_pages: u64,
    /// Largest possible MFN.
    pub max_mfn: u64,
    pub hw_cap: [u32; 8],
}
assert_layout!(XenSysctlPhysinfo, size = 112, threads_per_core = 0, cores_per_socket = 4,
               nr_cpus = 8, max_cpu_id = 12, nr_nodes = 16, max_node_id = 20, cpu_khz = 24,
               capabilities = 28, arch_capabilities = 32, pad = 36, total_pages = 40,
               free_pages = 48, scrub_pages = 56, outstanding_pages = 64, max_mfn = 72,
               hw_cap = 80);

/// `struct xen_sysctl_sched_id`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenSysctlSchedId {
    /// OUT: `XEN_SCHEDULER_*`.
    pub sched_id: u32,
}
assert_layout!(XenSysctlSchedId, size = 4, sched_id = 0);

/// `XEN_SYSCTL_SCHEDOP_*`: the `cmd` of [`XenSysctlSchedulerOp`].
pub const XEN_SYSCTL_SCHEDOP_putinfo: u32 = 0;
pub const XEN_SYSCTL_SCHEDOP_getinfo: u32 = 1;

/// `struct xen_sysctl_scheduler_op`: a cpupool's scheduler parameters
/// (`xl sched-credit -s`). The union starts at 16: one of its members
/// (`sched_arinc653`) is a 64-bit guest handle. For credit the union holds
/// `tslice_ms`, `ratelimit_us`, `vcpu_migr_delay_us`; for credit2
/// `ratelimit_us` alone (as `params[0]`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenSysctlSchedulerOp {
    pub cpupool_id: u32,
    /// `XEN_SCHEDULER_*`: must be the pool's scheduler.
    pub sched_id: u32,
    /// `XEN_SYSCTL_SCHEDOP_putinfo` or `_getinfo`.
    pub cmd: u32,
    pub pad: u32,
    pub params: [u32; 3],
}
assert_layout!(XenSysctlSchedulerOp, size = 28, cpupool_id = 0, sched_id = 4, cmd = 8, params = 16);

/// `struct xen_sysctl_getdomaininfolist`: fills `buffer` with up to
/// `max_domains` [`XenDomctlGetdomaininfo`] (112 bytes each) of the domains
/// with id >= `first_domain`, in id order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenSysctlGetdomaininfolist {
    /// IN.
    pub first_domain: u16,
    pub _pad0: u16,
    /// IN.
    pub max_domains: u32,
    /// IN: guest handle of a `xen_domctl_getdomaininfo_t` array.
    pub buffer: u64,
    /// OUT: entries written.
    pub num_domains: u32,
    pub _pad1: u32,
}
assert_layout!(XenSysctlGetdomaininfolist, size = 24, first_domain = 0, max_domains = 4,
               buffer = 8, num_domains = 16);

/// Size of `struct xen_sysctl`'s union (its `pad[128]` member).
pub const XEN_SYSCTL_U_SIZE: usize = 128;

/// The union `u` of `struct xen_sysctl`; initialised as [`XenDomctlU`] is.
#[repr(C)]
#[derive(Clone, Copy)]
pub union XenSysctlU {
    pub readconsole: XenSysctlReadconsole,
    pub physinfo: XenSysctlPhysinfo,
    pub sched_id: XenSysctlSchedId,
    pub getdomaininfolist: XenSysctlGetdomaininfolist,
    pub scheduler_op: XenSysctlSchedulerOp,
    pub pad: [u8; XEN_SYSCTL_U_SIZE],
}
assert_layout!(XenSysctlU, size = 128);

/// `struct xen_sysctl`: the argument of `HYPERVISOR_sysctl(&sysctl)`. Note
/// the union is at offset 8 here (16 in `xen_domctl`): the header is 8 bytes.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct XenSysctl {
    /// `XEN_SYSCTL_*`.
    pub cmd: u32,
    /// Must be [`XEN_SYSCTL_INTERFACE_VERSION`], else -EACCES.
    pub interface_version: u32,
    pub u: XenSysctlU,
}
assert_layout!(XenSysctl, size = 136, cmd = 0, interface_version = 4, u = 8);
plain_bytes!(XenSysctl);

impl XenSysctl {
    pub const fn new(cmd: u32) -> Self {
        XenSysctl {
            cmd,
            interface_version: XEN_SYSCTL_INTERFACE_VERSION,
            u: XenSysctlU { pad: [0; XEN_SYSCTL_U_SIZE] },
        }
    }
    pub const fn u_bytes(&self) -> &[u8; XEN_SYSCTL_U_SIZE] {
        // SAFETY: see `XenSysctlU`: all 128 bytes are always initialised.
        unsafe { &self.u.pad }
    }
    pub fn readconsole(&self) -> &XenSysctlReadconsole {
        // SAFETY: initialised bytes, every bit pattern valid (see `XenSysctlU`).
        unsafe { &self.u.readconsole }
    }
    pub fn readconsole_mut(&mut self) -> &mut XenSysctlReadconsole {
        // SAFETY: as in `readconsole`; writes keep every byte initialised.
        unsafe { &mut self.u.readconsole }
    }
    pub fn physinfo(&self) -> &XenSysctlPhysinfo {
        // SAFETY: as in `readconsole`.
        unsafe { &self.u.physinfo }
    }
    pub fn physinfo_mut(&mut self) -> &mut XenSysctlPhysinfo {
        // SAFETY: as in `readconsole_mut`.
        unsafe { &mut self.u.physinfo }
    }
    pub fn sched_id(&self) -> &XenSysctlSchedId {
        // SAFETY: as in `readconsole`.
        unsafe { &self.u.sched_id }
    }
    pub fn sched_id_mut(&mut self) -> &mut XenSysctlSchedId {
        // SAFETY: as in `readconsole_mut`.
        unsafe { &mut self.u.sched_id }
    }
    pub fn scheduler_op(&self) -> &XenSysctlSchedulerOp {
        // SAFETY: as in `readconsole`.
        unsafe { &self.u.scheduler_op }
    }
    pub fn scheduler_op_mut(&mut self) -> &mut XenSysctlSchedulerOp {
        // SAFETY: as in `readconsole_mut`.
        unsafe { &mut self.u.scheduler_op }
    }
    pub fn getdomaininfolist(&self) -> &XenSysctlGetdomaininfolist {
        // SAFETY: as in `readconsole`.
        unsafe { &self.u.getdomaininfolist }
    }
    pub fn getdomaininfolist_mut(&mut self) -> &mut XenSysctlGetdomaininfolist {
        // SAFETY: as in `readconsole_mut`.
        unsafe { &mut self.u.getdomaininfolist }
    }
}

impl Default for XenSysctl {
    fn default() -> Self {
        Self::new(0)
    }
}

impl fmt::Debug for XenSysctl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XenSysctl")
            .field("cmd", &self.cmd)
            .field("interface_version", &self.interface_version)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domctl_round_trips_through_bytes() {
        let mut d = XenDomctl::new(XEN_DOMCTL_createdomain, 0);
        d.createdomain_mut().max_vcpus = 2;
        d.createdomain_mut().max_grant_frames = -1;
        let b = d.to_bytes();
        assert_eq!(&b[0..4], &1u32.to_le_bytes());
        assert_eq!(&b[4..8], &XEN_DOMCTL_INTERFACE_VERSION.to_le_bytes());
        // max_vcpus at union offset 28.
        assert_eq!(&b[16 + 28..16 + 32], &2u32.to_le_bytes());
        assert_eq!(&b[16 + 36..16 + 40], &(-1i32).to_le_bytes());
        assert_eq!(XenDomctl::from_bytes(&b), d);
    }

    #[test]
    fn getdomaininfo_shutdown_reason() {
        let mut i = XenDomctlGetdomaininfo::default();
        assert_eq!(i.shutdown_reason(), None);
        i.flags = XEN_DOMINF_shutdown | (3 << XEN_DOMINF_shutdownshift);
        assert_eq!(i.shutdown_reason(), Some(3));
    }

    #[test]
    fn credit_view_is_weight_then_cap() {
        let mut s = XenDomctlSchedulerOp::default();
        s.set_credit(XenDomctlSchedCredit { weight: 512, cap: 50 });
        let mut d = XenDomctl::new(XEN_DOMCTL_scheduler_op, 1);
        *d.scheduler_op_mut() = s;
        let b = d.to_bytes();
        assert_eq!(&b[24..28], &[0x00, 0x02, 50, 0]);
        assert_eq!(d.scheduler_op().credit(), XenDomctlSchedCredit { weight: 512, cap: 50 });
    }

    #[test]
    fn sysctl_union_is_at_offset_8() {
        let mut s = XenSysctl::new(XEN_SYSCTL_getdomaininfolist);
        s.getdomaininfolist_mut().max_domains = 7;
        let b = s.to_bytes();
        assert_eq!(&b[12..16], &7u32.to_le_bytes());
    }
}
