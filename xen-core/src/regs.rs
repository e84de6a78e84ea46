//! The register frame every entry into the hypervisor leaves behind.

/// Saved guest state, in the order `arch/x86_64/entry.rs` pushes it: the
/// general registers (r15 lowest), the entry vector and error code, then the
/// hardware `iretq` frame. Handlers read arguments from it and write results
/// into it; returning to the guest restores exactly what it holds.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuestRegs {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub entry_vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

const _: () = assert!(core::mem::size_of::<GuestRegs>() == 22 * 8);
const _: () = assert!(core::mem::offset_of!(GuestRegs, cs) == 18 * 8);

pub const RFLAGS_TF: u64 = 1 << 8;
pub const RFLAGS_IF: u64 = 1 << 9;
pub const RFLAGS_DF: u64 = 1 << 10;
pub const RFLAGS_IOPL: u64 = 3 << 12;
pub const RFLAGS_NT: u64 = 1 << 14;
pub const RFLAGS_RF: u64 = 1 << 16;
pub const RFLAGS_VM: u64 = 1 << 17;
pub const RFLAGS_AC: u64 = 1 << 18;
pub const RFLAGS_VIF: u64 = 1 << 19;
pub const RFLAGS_VIP: u64 = 1 << 20;

impl GuestRegs {
    /// Make the frame safe to `iretq` to, whatever a guest put in it: ring 3
    /// with interrupts on (a PV guest masks events through `vcpu_info`, never
    /// through IF), no I/O privilege, no virtual-8086 or nested-task mode (an
    /// `iretq` with NT set would fault in ring 0).
    pub fn sanitize_for_guest(&mut self) {
        self.rflags &= !(RFLAGS_IOPL | RFLAGS_NT | RFLAGS_VM | RFLAGS_VIF | RFLAGS_VIP);
        self.rflags |= RFLAGS_IF | 0x2;
        self.cs |= 3;
        self.ss |= 3;
    }

    pub fn from_ring3(&self) -> bool {
        self.cs & 3 == 3
    }
}
