//! Hypercall decode and dispatch (Xen's `pv_hypercall`).
//!
//! The number comes from `rax`, the arguments from `rdi rsi rdx r10 r8`.
//! Handlers take typed arguments and return `Result<_, Errno>`; this module
//! alone turns that into `rax`. An unknown number is `-ENOSYS`, never success.

mod console_io;
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
        let result = match nr {
            nr::CONSOLE_IO => self.do_console_io(args),
            nr::XEN_VERSION => self.do_xen_version(args),
            nr::SCHED_OP => self.do_sched_op(args),
            _ => {
                crate::gdprintk!("{:?}: unknown hypercall {} (rip {:#x})", self.current, nr, regs.rip);
                Err(Errno::ENOSYS)
            }
        };
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
}
