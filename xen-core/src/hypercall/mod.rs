//! Hypercall decode and dispatch (Xen's `pv_hypercall`).
//!
//! The number comes from `rax`, the arguments from `rdi rsi rdx r10 r8`.
//! Handlers take typed arguments and return `Result<_, Errno>`; this module
//! alone turns that into `rax`. An unknown number is `-ENOSYS`, never success.

mod batch;
mod callback;
mod console_io;
mod descriptor_tables;
mod domctl;
mod event_channel_op;
mod grant_table_op;
mod memory_exchange;
mod memory_map;
mod memory_op;
mod misc;
mod mmu;
mod multicall;
mod physdev_op;
mod platform_op;
mod sched_op;
mod sched_op_compat;
mod traps;
mod vcpu_op;
pub(crate) mod xen_version;

use crate::platform::Platform;
use crate::regs::GuestRegs;
use crate::xen::{Next, Xen};
use hypercall_abi::errno::Errno;
use hypercall_abi::nr;

/// What a handler achieved.
pub enum Done {
    /// Finished with this result.
    Ret(i64),
    /// Made progress, more to do: the arguments were rewritten to describe
    /// what remains, and the guest re-executes the `syscall` (Xen's
    /// hypercall continuation), so a long operation can be preempted.
    Continue([u64; 5]),
    /// A multicall reached an `iret` entry: the batch ends there and the
    /// `iret` runs on the live frame (its context is on the guest's stack,
    /// as for a direct `iret`), as Xen 4.17's `arch_do_multicall_call`
    /// does: after the switch to user mode nothing may run as if the guest
    /// were still in kernel mode (XSA-213).
    Iret,
}

pub type HcResult = Result<Done, Errno>;

/// Page-table entries one entry into the hypervisor may validate or drop
/// (sixteen tables' worth) before it is continued (XSA-45).
pub const PT_WORK_BUDGET: u32 = 16 * 512;

pub fn ret(v: i64) -> HcResult {
    Ok(Done::Ret(v))
}

impl<P: Platform> Xen<P> {
    /// Handle `syscall` from the current guest vCPU. `regs` is its live frame.
    pub fn hypercall(&mut self, regs: &mut GuestRegs) -> Next {
        // From guest user mode, `syscall` is the guest's own system call:
        // it goes to the guest kernel's syscall callback, never to us.
        if !self.current_vcpu_in_kernel() {
            return self.user_syscall(regs);
        }
        let nr = regs.rax;
        if nr == nr::IRET {
            return self.do_iret(regs);
        }
        let args = [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8];
        // XSA-45: bounded page-table work per entry into the hypervisor.
        // Table entries the domain's earlier calls left to drop go first;
        // if they do not all fit, the call is continued before it starts.
        self.frames.budget = Some(PT_WORK_BUDGET);
        let result = match self.current_id() {
            Ok(me) if self.frames.has_deferred(me) => match self.mm().drain_deferred(me) {
                Ok(()) => self.dispatch(nr, args),
                Err(_) => Ok(Done::Continue(args)),
            },
            _ => self.dispatch(nr, args),
        };
        self.frames.budget = None;
        if self.frames.need_tlb_flush {
            self.frames.need_tlb_flush = false;
            self.platform.flush_tlb();
        }
        match result {
            Ok(Done::Ret(v)) => regs.rax = v as u64,
            Ok(Done::Iret) => return self.do_iret(regs),
            Err(e) => regs.rax = e.to_ret() as u64,
            Ok(Done::Continue(a)) => {
                [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8] = a;
                regs.rax = nr;
                // Back over the 2-byte `syscall` in the hypercall page entry.
                regs.rip = regs.rip.wrapping_sub(2);
            }
        }
        self.schedule(regs)
    }

    fn current_vcpu_in_kernel(&self) -> bool {
        self.current.and_then(|(d, v)| self.domains.get(&d)?.vcpus.get(v)).is_none_or(|vc| vc.kernel_mode)
    }

    /// Bounce a user-mode `syscall` to the kernel's syscall callback (Xen's
    /// `switch_to_kernel`); with none registered the kernel gets #UD.
    fn user_syscall(&mut self, regs: &mut GuestRegs) -> Next {
        let Some((d, v)) = self.current else { return Next::Idle };
        let cb = self.domains[&d].vcpus[v].callbacks;
        if cb.syscall == 0 {
            regs.rip = regs.rip.wrapping_sub(2);
            return self.deliver_trap(regs, crate::traps::TRAP_INVALID_OP);
        }
        let b = crate::traps::Bounce { rip: cb.syscall, error_code: None, mask_events: cb.syscall_masks_events };
        if !self.create_bounce_frame(regs, b) {
            crate::error!("Domain {} (vcpu#{}) crashed on cpu#0:", d.0, v);
            self.domain_crash(d);
            return self.schedule(regs);
        }
        regs.rflags &= !crate::regs::RFLAGS_DF;
        self.schedule(regs)
    }

    /// The hypercall table. `multicall` comes back here for each entry.
    /// A handler that ran out of page-table budget (`-ERESTART`, its
    /// progress kept in the frame table) is continued with the same
    /// arguments, as Xen's `hypercall_create_continuation`; batched calls
    /// continue from the entry that was preempted themselves.
    pub(crate) fn dispatch(&mut self, nr: u64, args: [u64; 5]) -> HcResult {
        match self.dispatch_one(nr, args) {
            Err(Errno::ERESTART) => Ok(Done::Continue(args)),
            r => r,
        }
    }

    fn dispatch_one(&mut self, nr: u64, args: [u64; 5]) -> HcResult {
        match nr {
            nr::MMU_UPDATE => self.do_mmu_update(args),
            nr::MEMORY_OP => self.do_memory_op(args),
            nr::MULTICALL => self.do_multicall(args),
            nr::UPDATE_VA_MAPPING => self.do_update_va_mapping(args),
            nr::XEN_VERSION => self.do_xen_version(args),
            nr::CONSOLE_IO => self.do_console_io(args),
            nr::UPDATE_VA_MAPPING_OTHERDOMAIN => self.do_update_va_mapping_otherdomain(args),
            nr::MMUEXT_OP => self.do_mmuext_op(args),
            nr::SCHED_OP => self.do_sched_op(args),
            nr::SCHED_OP_COMPAT => self.do_sched_op_compat(args),
            nr::SET_TRAP_TABLE => self.do_set_trap_table(args),
            nr::SET_GDT => self.do_set_gdt(args),
            nr::STACK_SWITCH => self.do_stack_switch(args),
            nr::SET_CALLBACKS => self.do_set_callbacks(args),
            nr::FPU_TASKSWITCH => self.do_fpu_taskswitch(args),
            nr::SET_DEBUGREG => self.do_set_debugreg(args),
            nr::GET_DEBUGREG => self.do_get_debugreg(args),
            nr::UPDATE_DESCRIPTOR => self.do_update_descriptor(args),
            nr::VM_ASSIST => self.do_vm_assist(args),
            nr::VCPU_OP => self.do_vcpu_op(args),
            nr::SET_SEGMENT_BASE => self.do_set_segment_base(args),
            nr::CALLBACK_OP => self.do_callback_op(args),
            nr::EVENT_CHANNEL_OP => self.do_event_channel_op(args),
            nr::GRANT_TABLE_OP => self.do_grant_table_op(args),
            nr::DOMCTL => self.do_domctl(args),
            nr::SYSCTL => self.do_sysctl(args),
            nr::PHYSDEV_OP => self.do_physdev_op(args),
            nr::PLATFORM_OP => self.do_platform_op(args),
            nr::SET_TIMER_OP => {
                let (d, v) = self.current.ok_or(Errno::ESRCH)?;
                self.set_vcpu_timer(d, v, args[0]);
                ret(0)
            }
            // Only as a hypercall of its own (it rewrites the whole frame).
            nr::IRET => Err(Errno::EINVAL),
            _ => {
                crate::gdprintk!("{}: unknown hypercall {}", crate::log::VcpuName(self.current), nr);
                Err(Errno::ENOSYS)
            }
        }
    }
}
