//! Domains and their virtual CPUs.

use alloc::string::String;
use alloc::vec::Vec;

use crate::mm::Mfn;

/// A domain id. 0 is Dom0; ids from 0x7FF0 up are Xen's reserved ones
/// (`DOMID_SELF`, `DOMID_IO`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomId(pub u16);

impl DomId {
    pub const DOM0: DomId = DomId(0);
}

impl core::fmt::Display for DomId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "d{}", self.0)
    }
}

pub use crate::vcpu::{RunState, Vcpu};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownReason {
    Poweroff,
    Reboot,
    Suspend,
    Crash,
    Watchdog,
    SoftReset,
}

impl ShutdownReason {
    /// `SHUTDOWN_*` from `sched.h`.
    pub fn from_abi(r: u32) -> Option<ShutdownReason> {
        Some(match r {
            0 => ShutdownReason::Poweroff,
            1 => ShutdownReason::Reboot,
            2 => ShutdownReason::Suspend,
            3 => ShutdownReason::Crash,
            4 => ShutdownReason::Watchdog,
            5 => ShutdownReason::SoftReset,
            _ => return None,
        })
    }

    /// The name `sched.h` gives it, as Xen's log lines use (`poweroff`).
    pub fn name(self) -> &'static str {
        match self {
            ShutdownReason::Poweroff => "poweroff",
            ShutdownReason::Reboot => "reboot",
            ShutdownReason::Suspend => "suspend",
            ShutdownReason::Crash => "crash",
            ShutdownReason::Watchdog => "watchdog",
            ShutdownReason::SoftReset => "soft_reset",
        }
    }
}

#[derive(Clone)]
pub struct Domain {
    pub id: DomId,
    pub name: String,
    /// Dom0: may use `domctl`, foreign mappings and the physical console.
    pub privileged: bool,
    pub max_pages: u64,
    /// Frames currently allocated to the domain's memory (ballooning moves it).
    pub tot_pages: u64,
    /// The page shared with the guest: vcpu_info, event bitmaps, time.
    /// The hypervisor writes it, so it is typed writable for good.
    pub shared_info: crate::mm::SharedPage,
    /// Every frame given to the domain at build time, by pseudo-physical number.
    pub p2m: Vec<Mfn>,
    pub vcpus: Vec<Vcpu>,
    pub shutdown: Option<ShutdownReason>,
    /// `SCHEDOP_shutdown_code`: the reason to report if the guest dies later.
    pub shutdown_code: Option<u32>,
    /// `vm_assist` types enabled (bit n = VMASST_TYPE n).
    pub vm_assist: u64,
    pub evtchn: crate::evtchn::Ports,
    pub gnttab: crate::gnttab::GrantTable,
    /// Scheduling weight and cap (credit scheduler; cap 0 = none, else a
    /// percentage of one CPU).
    pub weight: u32,
    pub cap: u32,
    /// Pause count (`XEN_DOMCTL_pausedomain`): its vCPUs run only at zero.
    pub pause_count: u32,
    /// System time it was created at, and the CPU time its vCPUs used.
    pub created_ns: u64,
    /// The PCI config address and CMOS index it last wrote (port I/O emulation).
    pub io: crate::emulate::io::DomainIo,
    /// The PIRQ EOI bitmap it registered (`PHYSDEVOP_pirq_eoi_gmfn_v*`):
    /// a frame of its own, held writable until it dies.
    pub pirq_eoi_map: Option<crate::mm::SharedPage>,
    /// The FIFO event-channel ABI, once the guest asked for it
    /// (`EVTCHNOP_init_control`); `None`: the 2-level ABI.
    pub fifo: Option<crate::evtchn_fifo::Fifo>,
}

impl Domain {
    pub fn is_running(&self) -> bool {
        self.shutdown.is_none()
    }
}
