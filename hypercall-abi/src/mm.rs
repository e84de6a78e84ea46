//! The PV MMU interface: `mmu_update`, `mmuext_op`, `update_va_mapping`,
//! domain ids and page-table entry bits (`xen.h`).

use crate::{assert_layout, plain_bytes};

pub const PAGE_SHIFT: u32 = 12;
pub const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;

// mmu_update: the command is in ptr[1:0], the machine address in ptr[:2].
/// Checked `*ptr = val`; `ptr` is the machine address of a PTE.
pub const MMU_NORMAL_PT_UPDATE: u64 = 0;
/// `ptr` = machine address in the frame whose M2P entry becomes `val`.
pub const MMU_MACHPHYS_UPDATE: u64 = 1;
/// As NORMAL, keeping the A/D bits already in the PTE.
pub const MMU_PT_UPDATE_PRESERVE_AD: u64 = 2;
/// As NORMAL, with `ptr` never translated through the P2M (for HVM tools).
pub const MMU_PT_UPDATE_NO_TRANSLATE: u64 = 3;

/// `struct mmu_update`: one request of an `mmu_update` batch.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MmuUpdate {
    /// Machine address of the PTE (or frame), command in bits 1:0.
    pub ptr: u64,
    /// New contents.
    pub val: u64,
}
assert_layout!(MmuUpdate, size = 16, ptr = 0, val = 8);

impl MmuUpdate {
    /// The `MMU_*` command in `ptr[1:0]`.
    pub const fn cmd(&self) -> u64 {
        self.ptr & 3
    }
    /// The machine address in `ptr[:2]`.
    pub const fn addr(&self) -> u64 {
        self.ptr & !3
    }
}

// mmuext_op commands.
pub const MMUEXT_PIN_L1_TABLE: u32 = 0;
pub const MMUEXT_PIN_L2_TABLE: u32 = 1;
pub const MMUEXT_PIN_L3_TABLE: u32 = 2;
pub const MMUEXT_PIN_L4_TABLE: u32 = 3;
pub const MMUEXT_UNPIN_TABLE: u32 = 4;
pub const MMUEXT_NEW_BASEPTR: u32 = 5;
pub const MMUEXT_TLB_FLUSH_LOCAL: u32 = 6;
pub const MMUEXT_INVLPG_LOCAL: u32 = 7;
pub const MMUEXT_TLB_FLUSH_MULTI: u32 = 8;
pub const MMUEXT_INVLPG_MULTI: u32 = 9;
pub const MMUEXT_TLB_FLUSH_ALL: u32 = 10;
pub const MMUEXT_INVLPG_ALL: u32 = 11;
pub const MMUEXT_FLUSH_CACHE: u32 = 12;
pub const MMUEXT_SET_LDT: u32 = 13;
// 14 is unassigned (the removed MMUEXT_SET_FOREIGNDOM).
pub const MMUEXT_NEW_USER_BASEPTR: u32 = 15;
pub const MMUEXT_CLEAR_PAGE: u32 = 16;
pub const MMUEXT_COPY_PAGE: u32 = 17;
pub const MMUEXT_FLUSH_CACHE_GLOBAL: u32 = 18;
pub const MMUEXT_MARK_SUPER: u32 = 19;
pub const MMUEXT_UNMARK_SUPER: u32 = 20;

/// `struct mmuext_op`. The C unions are plain 64-bit words here:
/// `arg1` is `mfn` or `linear_addr`; `arg2` is `nr_ents`, `vcpumask` (a guest
/// handle) or `src_mfn`, depending on `cmd`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MmuextOp {
    pub cmd: u32,
    pub _pad: u32,
    pub arg1: u64,
    pub arg2: u64,
}
assert_layout!(MmuextOp, size = 24, cmd = 0, arg1 = 8, arg2 = 16);

impl MmuextOp {
    pub const fn new(cmd: u32, arg1: u64, arg2: u64) -> Self {
        MmuextOp { cmd, _pad: 0, arg1, arg2 }
    }
    pub const fn mfn(&self) -> u64 {
        self.arg1
    }
    pub const fn linear_addr(&self) -> u64 {
        self.arg1
    }
    /// `nr_ents` is an `unsigned int` in the union: only the low half counts.
    pub const fn nr_ents(&self) -> u32 {
        self.arg2 as u32
    }
    pub const fn vcpumask(&self) -> u64 {
        self.arg2
    }
    pub const fn src_mfn(&self) -> u64 {
        self.arg2
    }
}

// update_va_mapping flags; UVMF_MULTI is ORed with a pointer to a vCPU bitmap.
pub const UVMF_NONE: u64 = 0;
pub const UVMF_TLB_FLUSH: u64 = 1;
pub const UVMF_INVLPG: u64 = 2;
pub const UVMF_FLUSHTYPE_MASK: u64 = 3;
pub const UVMF_MULTI: u64 = 0;
pub const UVMF_LOCAL: u64 = 0;
pub const UVMF_ALL: u64 = 1 << 2;

/// `struct multicall_entry`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MulticallEntry {
    pub op: u64,
    pub result: u64,
    pub args: [u64; 6],
}
assert_layout!(MulticallEntry, size = 64, op = 0, result = 8, args = 16);
plain_bytes!(MulticallEntry);

// Domain ids. Ids from DOMID_FIRST_RESERVED on never name an ordinary domain.
pub const DOMID_FIRST_RESERVED: u16 = 0x7FF0;
pub const DOMID_SELF: u16 = 0x7FF0;
/// Restricts page-table updates to I/O memory.
pub const DOMID_IO: u16 = 0x7FF1;
/// Lets a privileged domain map Xen's heap (e.g. the M2P).
pub const DOMID_XEN: u16 = 0x7FF2;
/// Owner of sharable pages.
pub const DOMID_COW: u16 = 0x7FF3;
/// Owner unknown.
pub const DOMID_INVALID: u16 = 0x7FF4;
pub const DOMID_IDLE: u16 = 0x7FFF;
/// Mask of the id bits (`DOMID_MASK`).
pub const DOMID_MASK: u16 = 0x7FFF;

// x86 page-table entry bits, as Xen's `_PAGE_*`.
pub const _PAGE_PRESENT: u64 = 1 << 0;
pub const _PAGE_RW: u64 = 1 << 1;
pub const _PAGE_USER: u64 = 1 << 2;
pub const _PAGE_PWT: u64 = 1 << 3;
pub const _PAGE_PCD: u64 = 1 << 4;
pub const _PAGE_ACCESSED: u64 = 1 << 5;
pub const _PAGE_DIRTY: u64 = 1 << 6;
/// In an L2/L3 entry: superpage. Xen refuses it from PV guests.
pub const _PAGE_PSE: u64 = 1 << 7;
/// In an L1 entry: the PAT bit (Xen's PAT layout, see `xen.h`).
pub const _PAGE_PAT: u64 = 1 << 7;
pub const _PAGE_GLOBAL: u64 = 1 << 8;
/// Bits 9-11 are free for the guest.
pub const _PAGE_AVAIL: u64 = 7 << 9;
pub const _PAGE_NX: u64 = 1 << 63;
/// The frame address field of a 4-level entry (bits 12..52).
pub const PTE_PADDR_MASK: u64 = ((1 << 52) - 1) & !((1 << 12) - 1);

/// The frame number a PTE points at.
pub const fn pte_mfn(pte: u64) -> u64 {
    (pte & PTE_PADDR_MASK) >> PAGE_SHIFT
}
