//! The register frame every entry into the hypervisor leaves behind.
//!
//! Its layout is shared with the guest side (pv-rt's trap frame) and lives
//! in `hypercall-abi`: the general registers in the order
//! `arch/x86_64/entry.rs` pushes them (r15 lowest), the entry vector and
//! error code, then the hardware `iretq` frame. Handlers read arguments from
//! it and write results into it; returning to the guest restores exactly
//! what it holds.

pub use hypercall_abi::arch::SavedRegs as GuestRegs;
pub use hypercall_abi::arch::{
    RFLAGS_AC, RFLAGS_DF, RFLAGS_IF, RFLAGS_IOPL, RFLAGS_NT, RFLAGS_RF, RFLAGS_TF, RFLAGS_VIF, RFLAGS_VIP, RFLAGS_VM,
};

const _: () = assert!(core::mem::size_of::<GuestRegs>() == 22 * 8);
const _: () = assert!(core::mem::offset_of!(GuestRegs, cs) == 18 * 8);
