//! xen-core: the portable hypervisor core.
//!
//! Everything here is plain Rust over the [`platform::Platform`] trait, so it
//! builds and is tested on the host; `src/arch/x86_64` (part of the `xen-core`
//! binary only) supplies the machine: boot, descriptors, entry assembly,
//! paging, the serial console.
#![cfg_attr(not(test), no_std)]
// Xen's constant names (SCHEDOP_block, XENVER_version) are kept as spelled.
#![allow(non_upper_case_globals)]

extern crate alloc;

pub mod log;

pub mod build;
pub mod cmdline;
pub mod cpuid;
pub mod debugreg;
pub mod descriptor;
pub mod domain;
pub mod domctl;
pub mod emulate;
pub mod events;
pub mod evtchn;
pub mod evtchn_fifo;
pub mod gnttab;
pub mod guest_access;
pub mod hypercall;
pub mod machine_traps;
pub mod mm;
pub mod platform;
pub mod regs;
pub mod return_path;
pub mod runstate;
pub mod sched;
pub mod shared_info;
pub mod time;
pub mod traps;
pub mod vcpu;
pub mod vcpu_info;
pub mod xen;

/// Host stand-ins and test support, also for the fuzzer (`xen-fuzz`).
#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tests;

pub use xen::{Halt, Next, Xen};
