//! Hypercall decode and dispatch (Xen's `pv_hypercall`).
//!
//! The number comes from `rax`, the arguments from `rdi rsi rdx r10 r8`.
//! Handlers take typed arguments and return `Result<_, Errno>`; this module
//! alone turns that into `rax`. An unknown number is `-ENOSYS`, never success.

mod console_io;
mod memory_op;
mod mmu;
mod multicall;
mod sched_op;
mod xen_version;

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
}

pub type HcResult = Result<Done, Errno>;

pub fn ret(v: i64) -> HcResult {
    Ok(Done::Ret(v))
}

impl<P: Platform> Xen<P> {
    /// Handle `syscall` from the current guest vCPU. `regs` is its live frame.
    pub fn hypercall(&mut self, regs: &mut GuestRegs) -> Next {
        let nr = regs.rax;
        let args = [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8];
        let result = self.dispatch(nr, args);
        if self.frames.need_tlb_flush {
            self.frames.need_tlb_flush = false;
            self.platform.flush_tlb();
        }
        match result {
            Ok(Done::Ret(v)) => regs.rax = v as u64,
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

    /// The hypercall table. `multicall` comes back here for each entry.
    pub(crate) fn dispatch(&mut self, nr: u64, args: [u64; 5]) -> HcResult {
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
            _ => {
                crate::gdprintk!("{:?}: unknown hypercall {}", self.current, nr);
                Err(Errno::ENOSYS)
            }
        }
    }
}
