//! Virtual CPUs: what a PV vCPU has instead of the privileged machine state
//! it may not own (Xen's `struct pv_vcpu`): a virtual IDT (trap table),
//! callbacks, a kernel stack pointer, kernel/user mode with two page tables,
//! segment bases, debug registers, a GDT of its own frames, FPU state.

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::mm::Mfn;
use crate::regs::GuestRegs;
use hypercall_abi::arch::TrapInfo;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    Runnable,
    /// `SCHEDOP_block`: waits for an event.
    Blocked,
    /// Not brought up, or taken down.
    Down,
}

/// Where MXCSR sits in an FXSAVE image (MXCSR_MASK follows it).
pub const FXSAVE_MXCSR: usize = 24;

/// An FXSAVE image.
#[derive(Clone)]
pub struct FpuState(pub [u8; 512]);

impl Default for FpuState {
    /// The state after `fninit` with the default MXCSR: all exceptions masked.
    fn default() -> Self {
        let mut b = [0u8; 512];
        b[0..2].copy_from_slice(&0x037fu16.to_le_bytes()); // FCW
        b[FXSAVE_MXCSR..FXSAVE_MXCSR + 4].copy_from_slice(&0x1f80u32.to_le_bytes());
        b[FXSAVE_MXCSR + 4..FXSAVE_MXCSR + 8].copy_from_slice(&0xffffu32.to_le_bytes()); // MXCSR_MASK
        FpuState(b)
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SegBases {
    pub fs: u64,
    pub gs_kernel: u64,
    pub gs_user: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Callbacks {
    pub event: u64,
    pub failsafe: u64,
    pub syscall: u64,
    pub syscall32: u64,
    pub nmi: u64,
    /// `CALLBACKTYPE_sysenter`: kept as Xen keeps it; 64-bit guests have
    /// no `sysenter` path here (it faults and the guest gets #GP or #UD).
    pub sysenter: u64,
    /// `CALLBACKF_mask_events` on the syscall callback (Xen's
    /// `VGCF_syscall_disables_events`).
    pub syscall_masks_events: bool,
    pub failsafe_masks_events: bool,
}

/// Time spent in each run state, in nanoseconds (`vcpu_runstate_info`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Runstate {
    pub state: i32,
    pub entry_time: u64,
    pub time: [u64; 4],
}

#[derive(Clone)]
pub struct Vcpu {
    pub id: u32,
    /// Registers while not running; while running, the frame on the
    /// hypervisor stack is authoritative.
    pub regs: GuestRegs,
    /// The guest kernel's top-level page table (holds a general and an L4
    /// type reference).
    pub cr3: Mfn,
    /// The guest user's top-level table (`MMUEXT_NEW_USER_BASEPTR`), if any.
    pub user_cr3: Option<Mfn>,
    pub state: RunState,
    /// Given a context (built, or `VCPUOP_initialise`d): may be brought up.
    pub initialised: bool,
    /// Running the guest kernel (true) or guest user space.
    pub kernel_mode: bool,
    /// Where a switch from user to kernel mode puts the stack (`stack_switch`).
    pub kernel_ss: u16,
    pub kernel_sp: u64,
    pub traps: Box<[TrapInfo; 256]>,
    pub callbacks: Callbacks,
    pub fpu: Box<FpuState>,
    /// The guest's virtual CR0.TS (`fpu_taskswitch`).
    pub fpu_ts: bool,
    pub segs: SegBases,
    pub debugreg: [u64; 8],
    /// The frames of its GDT (`set_gdt`) and the number of entries.
    pub gdt_frames: Vec<Mfn>,
    pub gdt_ents: u32,
    pub runstate: Runstate,
    /// Ports bound to each VIRQ on this vCPU (0: none).
    pub virq_to_evtchn: [u32; hypercall_abi::evtchn::NR_VIRQS as usize],
    /// `SCHEDOP_poll`: the ports it waits on, while blocked in a poll.
    pub poll_ports: Vec<u32>,
    /// One-shot timer deadline (system time, ns), if armed.
    pub timer_deadline: Option<u64>,
    /// `VCPUOP_set_periodic_timer`: period in ns, and the next expiry.
    pub periodic: Option<(u64, u64)>,
    /// `SCHEDOP_poll` timeout, if any.
    pub poll_deadline: Option<u64>,
    /// Credit scheduler: what this vCPU may still run for (ns; negative: over).
    pub credit: i64,
    /// Virtual IOPL and I/O bitmap (`physdev_op`), for port I/O emulation.
    pub io: crate::emulate::io::VcpuIo,
    /// `VCPUOP_register_runstate_memory_area`: guest address, 0 for none.
    pub runstate_area: u64,
    /// `VCPUOP_register_vcpu_info`: where its vcpu_info lives when the guest
    /// moved it out of shared_info (the frame shared for writing, see
    /// `vcpu_info.rs`).
    pub vcpu_info: Option<crate::shared_info::VcpuInfoLoc>,
}

impl Vcpu {
    pub fn new(id: u32) -> Vcpu {
        Vcpu {
            id,
            regs: GuestRegs::default(),
            cr3: Mfn(0),
            user_cr3: None,
            state: RunState::Down,
            initialised: false,
            kernel_mode: true,
            kernel_ss: 0,
            kernel_sp: 0,
            traps: Box::new([TrapInfo::default(); 256]),
            callbacks: Callbacks::default(),
            fpu: Box::default(),
            fpu_ts: false,
            segs: SegBases::default(),
            debugreg: [0, 0, 0, 0, 0, 0, 0xffff_0ff0, 0x400],
            gdt_frames: Vec::new(),
            gdt_ents: 0,
            runstate: Runstate { state: hypercall_abi::vcpu::RUNSTATE_offline, ..Runstate::default() },
            virq_to_evtchn: [0; hypercall_abi::evtchn::NR_VIRQS as usize],
            poll_ports: Vec::new(),
            timer_deadline: None,
            periodic: None,
            poll_deadline: None,
            credit: 0,
            io: Default::default(),
            runstate_area: 0,
            vcpu_info: None,
        }
    }

    /// The page table the CPU should run this vCPU on now.
    pub fn active_cr3(&self) -> Mfn {
        if self.kernel_mode {
            self.cr3
        } else {
            self.user_cr3.unwrap_or(self.cr3)
        }
    }

    /// (FS base, GS base, shadow GS base) as the hardware must hold them in
    /// the current mode: the guest kernel's GS is live in kernel mode, the
    /// user's in user mode (Xen swaps them with `swapgs` on each toggle).
    pub fn hw_segment_bases(&self) -> (u64, u64, u64) {
        let s = &self.segs;
        if self.kernel_mode {
            (s.fs, s.gs_kernel, s.gs_user)
        } else {
            (s.fs, s.gs_user, s.gs_kernel)
        }
    }
}
