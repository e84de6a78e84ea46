//! One fuzzing step, as recorded: which domain and vCPU acts, and what it
//! does. Values are symbolic ("the machine address of entry 3 of my L2",
//! "shared_info's frame with RW|PRESENT") and resolved against the machine
//! when the step runs, so a recorded sequence means the same thing when it
//! is replayed on a fresh machine.

use serde::{Deserialize, Serialize};

/// A frame, named by what it is to a domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FrameSel {
    /// A pseudo-physical frame of the domain (modulo its size).
    Pfn(u16),
    /// One of the frames outside the initial mapping: free for new tables.
    Spare(u8),
    /// The domain's shared_info page (the hypervisor writes it).
    SharedInfo,
    /// A grant-table frame of the domain.
    Grant(u8),
    /// The table of this level (4 = root) on the path to the scratch area.
    Table(u8),
    /// Any machine frame number.
    Raw(u32),
}

/// A virtual address of interest to a domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VaSel {
    /// The scratch area (writable, arguments live there).
    Scratch,
    /// The kernel image and the hypercall page.
    Kernel,
    /// Pages just past the initial mapping: present L1, empty entries.
    Spare,
    /// Never mapped, lower half.
    Unmapped,
    /// The hypervisor's slots (256-271).
    Hypervisor,
    /// The read-only M2P table.
    M2p,
    /// The non-canonical hole.
    NonCanonical,
    /// The last page of the address space.
    Top,
}

/// An argument or a word of argument memory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Val {
    Lit(u64),
    /// A boundary value: see [`SPECIALS`].
    Special(u8),
    /// The acting domain's scratch area plus a byte offset.
    Buf(u16),
    /// A virtual address in the acting domain plus a byte offset.
    Va(VaSel, u16),
    /// A PTE: frame `frame` of domain number `dom` (an index into the
    /// machine's domains), flags in the low 12 bits and the high 12 bits
    /// (NX, available bits: stray flags).
    Pte { dom: u8, frame: FrameSel, flags: u16, high: u16 },
    /// A frame number (`mfn`), same naming.
    Mfn { dom: u8, frame: FrameSel },
    /// The machine address of entry `idx` of domain `dom`'s table of
    /// `level` on the scratch path, with `cmd` in bits 1:0 (for
    /// `mmu_update`). `idx` from 512 on is the scratch path's own entry
    /// plus `(idx - 512) % 4`.
    Entry { dom: u8, level: u8, idx: u16, cmd: u8 },
    /// The domain id of domain number `n`.
    Dom(u8),
    /// Four 16-bit fields packed into a word (`domid`, port, ref, flags
    /// fields of the ABI's small structures); with `dom`, field 0 is that
    /// domain's id.
    Pack { dom: Option<u8>, w: [u16; 4] },
}

/// Boundary values: sizes, signs, system domain ids, hostile addresses.
pub const SPECIALS: &[u64] = &[
    0,
    1,
    2,
    u64::MAX,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    1 << 63,
    (1 << 63) - 1,
    0x7ff0, // DOMID_SELF
    0x7ff1, // DOMID_IO
    0x7ff2, // DOMID_XEN
    0x7ff3, // DOMID_COW
    0x7ff4, // DOMID_INVALID
    0x7ff5, // DOMID_IDLE
    0xffff,
    0x7fef,
    511,
    512,
    4095,
    4096,
    4097,
    0x10_0000,
    0xffff_8000_0000_0000,
    0xffff_8300_0000_0000,
    0xffff_87ff_ffff_ffff,
    0x0000_8000_0000_0000,
    0x0000_7fff_ffff_f000,
    0xffff_ffff_ffff_f000,
    1 << 20,
    1 << 31,
    0x1000_0000,
    4096 + 1,
    32,
    33,
    1024,
    1025,
    65536,
];

/// What the acting vCPU does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Act {
    /// Write `mem` (word index in the scratch area, value) and enter
    /// hypercall `nr` with `args`; continuations are resumed.
    Call { nr: u16, args: [Val; 5], mem: Vec<(u16, Val)> },
    /// A CPU exception taken in the guest kernel (#PF with `cr2`).
    Fault { vector: u8, error_code: u16, cr2: Val },
    /// The guest writes grant entry `gref` of its own table: v1 layout
    /// `flags`, `domid` = domain number `dom`, `frame`.
    Grant { gref: u16, flags: u16, dom: u8, frame: Val },
    /// Simulated time passes (timers fall due).
    Tick(u32),
}

/// One step: domain number `dom` among the fuzzing domains, its vCPU
/// `vcpu` (vCPU 0 if that one is down), does `act`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub dom: u8,
    pub vcpu: u8,
    pub act: Act,
}
