//! x86-64 specifics: `arch-x86/xen.h` and `arch-x86/xen-x86_64.h`.

use crate::{assert_layout, plain_bytes};

// Flat segments in the Xen-reserved part of every GDT. A 64-bit PV kernel runs
// in ring 3, so "kernel" and "user" selectors are the same ring-3 ones.
pub const FLAT_RING3_CS32: u16 = 0xe023;
pub const FLAT_RING3_CS64: u16 = 0xe033;
pub const FLAT_RING3_DS32: u16 = 0xe02b;
pub const FLAT_RING3_DS64: u16 = 0x0000;
pub const FLAT_RING3_SS32: u16 = 0xe02b;
pub const FLAT_RING3_SS64: u16 = 0xe02b;

pub const FLAT_KERNEL_DS64: u16 = FLAT_RING3_DS64;
pub const FLAT_KERNEL_DS32: u16 = FLAT_RING3_DS32;
pub const FLAT_KERNEL_DS: u16 = FLAT_KERNEL_DS64;
pub const FLAT_KERNEL_CS64: u16 = FLAT_RING3_CS64;
pub const FLAT_KERNEL_CS32: u16 = FLAT_RING3_CS32;
pub const FLAT_KERNEL_CS: u16 = FLAT_KERNEL_CS64;
pub const FLAT_KERNEL_SS64: u16 = FLAT_RING3_SS64;
pub const FLAT_KERNEL_SS32: u16 = FLAT_RING3_SS32;
pub const FLAT_KERNEL_SS: u16 = FLAT_KERNEL_SS64;

pub const FLAT_USER_DS64: u16 = FLAT_RING3_DS64;
pub const FLAT_USER_DS32: u16 = FLAT_RING3_DS32;
pub const FLAT_USER_DS: u16 = FLAT_USER_DS64;
pub const FLAT_USER_CS64: u16 = FLAT_RING3_CS64;
pub const FLAT_USER_CS32: u16 = FLAT_RING3_CS32;
pub const FLAT_USER_CS: u16 = FLAT_USER_CS64;
pub const FLAT_USER_SS64: u16 = FLAT_RING3_SS64;
pub const FLAT_USER_SS32: u16 = FLAT_RING3_SS32;
pub const FLAT_USER_SS: u16 = FLAT_USER_SS64;

/// The hypervisor's hole in every address space: L4 slots 256..272.
pub const HYPERVISOR_VIRT_START: u64 = 0xFFFF_8000_0000_0000;
pub const HYPERVISOR_VIRT_END: u64 = 0xFFFF_8800_0000_0000;
/// The read-only machine-to-phys table guests may read.
pub const MACH2PHYS_VIRT_START: u64 = 0xFFFF_8000_0000_0000;
pub const MACH2PHYS_VIRT_END: u64 = 0xFFFF_8040_0000_0000;
pub const MACH2PHYS_NR_ENTRIES: u64 = (MACH2PHYS_VIRT_END - MACH2PHYS_VIRT_START) >> 3;

/// Maximum vCPUs whose `vcpu_info` lives in `shared_info`.
pub const XEN_LEGACY_MAX_VCPUS: usize = 32;

/// GDT pages from this one on belong to Xen; a guest GDT has at most 14 pages.
pub const FIRST_RESERVED_GDT_PAGE: usize = 14;
pub const FIRST_RESERVED_GDT_BYTE: usize = FIRST_RESERVED_GDT_PAGE * 4096;
pub const FIRST_RESERVED_GDT_ENTRY: usize = FIRST_RESERVED_GDT_BYTE / 8;

/// `set_segment_base` selectors.
pub const SEGBASE_FS: u32 = 0;
pub const SEGBASE_GS_USER: u32 = 1;
pub const SEGBASE_GS_KERNEL: u32 = 2;
pub const SEGBASE_GS_USER_SEL: u32 = 3;

// vcpu_guest_context.flags and iret_context.flags.
pub const VGCF_i387_valid: u64 = 1 << 0;
pub const VGCF_I387_VALID: u64 = VGCF_i387_valid;
pub const VGCF_in_kernel: u64 = 1 << 2;
pub const VGCF_IN_KERNEL: u64 = VGCF_in_kernel;
pub const VGCF_failsafe_disables_events: u64 = 1 << 3;
pub const VGCF_syscall_disables_events: u64 = 1 << 4;
pub const VGCF_online: u64 = 1 << 5;
/// In an [`IretContext`]: return SYSRET-style (restore RAX, RIP, RFLAGS, RSP;
/// discard R11, RCX, CS, SS).
pub const VGCF_in_syscall: u64 = 1 << 8;
pub const VGCF_IN_SYSCALL: u64 = VGCF_in_syscall;

/// `xen_pfn_to_cr3`.
pub const fn xen_pfn_to_cr3(pfn: u64) -> u64 {
    pfn << 12
}
/// `xen_cr3_to_pfn`.
pub const fn xen_cr3_to_pfn(cr3: u64) -> u64 {
    cr3 >> 12
}

/// `struct iret_context`: what the guest pushes before `jmp`ing to the
/// `iret` entry of its hypercall page, lowest address (top of stack) first.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IretContext {
    pub rax: u64,
    pub r11: u64,
    pub rcx: u64,
    pub flags: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}
assert_layout!(IretContext, size = 72, rax = 0, r11 = 8, rcx = 16, flags = 24,
               rip = 32, cs = 40, rflags = 48, rsp = 56, ss = 64);
plain_bytes!(IretContext);

/// The registers an entry stub saves, lowest address first, in the order of
/// Xen's `struct cpu_user_regs` (`r15` lowest), but with the vector and the
/// error code as whole words, then the `iretq`-style frame from `rip` on, in
/// place. One layout for both sides of the ABI:
///
/// - xen-core's entry assembly (`arch/x86_64/entry.rs`) leaves it for every
///   entry into the hypervisor (`xen_core::regs::GuestRegs`): the hardware
///   frame of an exception from ring 3, or one `syscall_entry` builds by hand;
/// - pv-rt's trap and callback stubs (`pv_rt::traps::TrapFrame`) leave it on
///   the guest kernel's stack around Xen's bounce frame, where `cs` carries
///   the saved event mask in bits 32-39.
///
/// [`CpuUserRegs`] is the other layout, the one `vcpu_guest_context` carries
/// across the hypercall ABI (32-bit vector and error code, 16-bit selectors).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SavedRegs {
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
    /// The vector the entry stub recorded (exceptions 0-31, interrupts,
    /// or a stub's own number for `syscall` and the PV callbacks).
    pub entry_vector: u64,
    /// The CPU's (or Xen's) error code; 0 where the vector has none.
    pub error_code: u64,
    pub rip: u64,
    /// The selector in bits 0-15; in a PV bounce frame also the event mask
    /// the vCPU had, in bits 32-39.
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}
// The assembly of both sides relies on these offsets.
assert_layout!(SavedRegs, size = 176, r15 = 0, rbp = 32, rbx = 40, r11 = 48, rax = 80, rcx = 88,
               rdi = 112, entry_vector = 120, error_code = 128, rip = 136, cs = 144, rflags = 152,
               rsp = 160, ss = 168);

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

impl SavedRegs {
    /// General-purpose register `n` in the instruction encoding's order
    /// (0 = rax, 1 = rcx, 2 = rdx, 3 = rbx, 4 = rsp, 5 = rbp, 6 = rsi,
    /// 7 = rdi, 8-15 = r8-r15); only the low four bits of `n` count.
    pub fn gpr_mut(&mut self, n: usize) -> &mut u64 {
        match n & 15 {
            0 => &mut self.rax,
            1 => &mut self.rcx,
            2 => &mut self.rdx,
            3 => &mut self.rbx,
            4 => &mut self.rsp,
            5 => &mut self.rbp,
            6 => &mut self.rsi,
            7 => &mut self.rdi,
            8 => &mut self.r8,
            9 => &mut self.r9,
            10 => &mut self.r10,
            11 => &mut self.r11,
            12 => &mut self.r12,
            13 => &mut self.r13,
            14 => &mut self.r14,
            _ => &mut self.r15,
        }
    }

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

    /// RPL 3 in the saved CS: the interrupted code ran in ring 3. In a PV
    /// bounce frame that means guest user mode (Xen clears the RPL when the
    /// guest kernel was interrupted).
    pub fn from_ring3(&self) -> bool {
        self.cs & 3 == 3
    }

    /// The event mask the vCPU had when a bounce frame was written (CS bits
    /// 32-39).
    pub fn saved_upcall_mask(&self) -> u8 {
        (self.cs >> 32) as u8
    }

    /// The address just past the frame (for a bounce frame: where Xen began
    /// writing it, 16-byte aligned).
    pub fn frame_end(&self) -> u64 {
        &self.ss as *const u64 as u64 + 8
    }
}

impl core::fmt::Display for SavedRegs {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "vector {:#x} error {:#x} rip {:#018x} cs {:#x} rflags {:#x} rsp {:#018x} ss {:#x}",
            self.entry_vector, self.error_code, self.rip, self.cs, self.rflags, self.rsp, self.ss
        )
    }
}

/// `struct cpu_user_regs` (x86-64). The C header's `rax/eax` unions are plain
/// 64-bit registers here.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuUserRegs {
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
    /// Private to Xen.
    pub error_code: u32,
    /// Private to Xen.
    pub entry_vector: u32,
    pub rip: u64,
    pub cs: u16,
    pub _pad0: [u16; 1],
    /// `rflags.IF == !saved_upcall_mask`.
    pub saved_upcall_mask: u8,
    pub _pad1: [u8; 3],
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u16,
    pub _pad2: [u16; 3],
    pub es: u16,
    pub _pad3: [u16; 3],
    pub ds: u16,
    pub _pad4: [u16; 3],
    /// Non-zero takes precedence over `fs_base`.
    pub fs: u16,
    pub _pad5: [u16; 3],
    /// Non-zero takes precedence over `gs_base_user`.
    pub gs: u16,
    pub _pad6: [u16; 3],
}
assert_layout!(CpuUserRegs, size = 200, r15 = 0, r12 = 24, rbp = 32, rbx = 40,
               r11 = 48, r8 = 72, rax = 80, rcx = 88, rdx = 96, rsi = 104, rdi = 112,
               error_code = 120, entry_vector = 124, rip = 128, cs = 136,
               saved_upcall_mask = 140, rflags = 144, rsp = 152, ss = 160, es = 168,
               ds = 176, fs = 184, gs = 192);

/// `struct trap_info`: one virtual IDT entry for `set_trap_table`; a table
/// ends at the first entry with `address == 0`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrapInfo {
    pub vector: u8,
    /// Bits 0-1: the lowest privilege level that may raise the vector with
    /// `int`; bit 2: mask events on entry.
    pub flags: u8,
    pub cs: u16,
    pub _pad: u32,
    pub address: u64,
}
assert_layout!(TrapInfo, size = 16, vector = 0, flags = 1, cs = 2, address = 8);

impl TrapInfo {
    /// `TI_GET_DPL`.
    pub const fn dpl(&self) -> u8 {
        self.flags & 3
    }
    /// `TI_GET_IF`: events are masked on entry.
    pub const fn disables_events(&self) -> bool {
        self.flags & 4 != 0
    }
}

/// `struct vcpu_guest_context` (x86-64): a vCPU's whole state, as given to
/// `VCPUOP_initialise` and `XEN_DOMCTL_setvcpucontext`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct VcpuGuestContext {
    /// FXSAVE image.
    pub fpu_ctxt: [u8; 512],
    /// `VGCF_*`.
    pub flags: u64,
    pub user_regs: CpuUserRegs,
    /// Virtual IDT.
    pub trap_ctxt: [TrapInfo; 256],
    pub ldt_base: u64,
    pub ldt_ents: u64,
    /// GDT machine frames.
    pub gdt_frames: [u64; 16],
    pub gdt_ents: u64,
    /// Virtual TSS: only SS1/SP1.
    pub kernel_ss: u64,
    pub kernel_sp: u64,
    /// CR0-CR7; the user page table of a 64-bit PV guest is in `ctrlreg[1]`.
    pub ctrlreg: [u64; 8],
    pub debugreg: [u64; 8],
    pub event_callback_eip: u64,
    pub failsafe_callback_eip: u64,
    pub syscall_callback_eip: u64,
    /// `VMASST_TYPE_*` bitmap.
    pub vm_assist: u64,
    pub fs_base: u64,
    pub gs_base_kernel: u64,
    pub gs_base_user: u64,
}
assert_layout!(VcpuGuestContext, size = 5168, fpu_ctxt = 0, flags = 512, user_regs = 520,
               trap_ctxt = 720, ldt_base = 4816, ldt_ents = 4824, gdt_frames = 4832,
               gdt_ents = 4960, kernel_ss = 4968, kernel_sp = 4976, ctrlreg = 4984,
               debugreg = 5048, event_callback_eip = 5112, failsafe_callback_eip = 5120,
               syscall_callback_eip = 5128, vm_assist = 5136, fs_base = 5144,
               gs_base_kernel = 5152, gs_base_user = 5160);

impl VcpuGuestContext {
    pub const fn zeroed() -> Self {
        const R: CpuUserRegs = CpuUserRegs {
            r15: 0, r14: 0, r13: 0, r12: 0, rbp: 0, rbx: 0, r11: 0, r10: 0, r9: 0,
            r8: 0, rax: 0, rcx: 0, rdx: 0, rsi: 0, rdi: 0, error_code: 0,
            entry_vector: 0, rip: 0, cs: 0, _pad0: [0], saved_upcall_mask: 0,
            _pad1: [0; 3], rflags: 0, rsp: 0, ss: 0, _pad2: [0; 3], es: 0,
            _pad3: [0; 3], ds: 0, _pad4: [0; 3], fs: 0, _pad5: [0; 3], gs: 0,
            _pad6: [0; 3],
        };
        const T: TrapInfo = TrapInfo { vector: 0, flags: 0, cs: 0, _pad: 0, address: 0 };
        VcpuGuestContext {
            fpu_ctxt: [0; 512], flags: 0, user_regs: R, trap_ctxt: [T; 256],
            ldt_base: 0, ldt_ents: 0, gdt_frames: [0; 16], gdt_ents: 0, kernel_ss: 0,
            kernel_sp: 0, ctrlreg: [0; 8], debugreg: [0; 8], event_callback_eip: 0,
            failsafe_callback_eip: 0, syscall_callback_eip: 0, vm_assist: 0,
            fs_base: 0, gs_base_kernel: 0, gs_base_user: 0,
        }
    }
}

/// `struct arch_shared_info` (x86-64).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArchSharedInfo {
    /// Valid entries in the P2M anchored below.
    pub max_pfn: u64,
    /// Frame of the list of frames of lists of P2M frames (0: not set up,
    /// !0: too large, use `p2m_vaddr`).
    pub pfn_to_mfn_frame_list_list: u64,
    pub nmi_reason: u64,
    /// Root of the address space where `p2m_vaddr` is valid, `xen_pfn_to_cr3` format.
    pub p2m_cr3: u64,
    pub p2m_vaddr: u64,
    /// Odd while the guest updates the P2M mapping.
    pub p2m_generation: u64,
}
assert_layout!(ArchSharedInfo, size = 48, max_pfn = 0, pfn_to_mfn_frame_list_list = 8,
               nmi_reason = 16, p2m_cr3 = 24, p2m_vaddr = 32, p2m_generation = 40);

/// `struct arch_vcpu_info` (x86-64).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArchVcpuInfo {
    /// The faulting address of the last page fault bounced to the guest.
    pub cr2: u64,
    pub pad: u64,
}
assert_layout!(ArchVcpuInfo, size = 16, cr2 = 0, pad = 8);

/// `vm_assist` commands and types (`xen.h`).
pub const VMASST_CMD_enable: u32 = 0;
pub const VMASST_CMD_disable: u32 = 1;
pub const VMASST_TYPE_4gb_segments: u32 = 0;
pub const VMASST_TYPE_4gb_segments_notify: u32 = 1;
pub const VMASST_TYPE_writable_pagetables: u32 = 2;
pub const VMASST_TYPE_pae_extended_cr3: u32 = 3;
pub const VMASST_TYPE_architectural_iopl: u32 = 4;
pub const VMASST_TYPE_runstate_update_flag: u32 = 5;
pub const VMASST_TYPE_m2p_strict: u32 = 32;
