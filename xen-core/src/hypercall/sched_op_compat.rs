//! `sched_op_compat` (hypercall 6, Xen's `do_sched_op_compat`): the
//! pre-3.0.2 form of `sched_op`, still in Xen 4.17's PV table. Yield and
//! block as `sched_op`; shutdown takes the reason in the argument itself
//! (its low byte) instead of a pointer to it. Anything else is -ENOSYS.

use super::HcResult;
use crate::domain::ShutdownReason;
use crate::platform::Platform;
use crate::xen::Xen;
use hypercall_abi::errno::Errno;
use hypercall_abi::sched::*;

impl<P: Platform> Xen<P> {
    pub(super) fn do_sched_op_compat(&mut self, [cmd, arg, ..]: [u64; 5]) -> HcResult {
        match cmd as u32 {
            SCHEDOP_yield | SCHEDOP_block => self.do_sched_op([cmd, 0, 0, 0, 0]),
            SCHEDOP_shutdown => {
                let (dom, _) = self.current.ok_or(Errno::ESRCH)?;
                let reason = ShutdownReason::from_abi(arg as u8 as u32).ok_or(Errno::EINVAL)?;
                self.domain_shutdown(dom, reason);
                super::ret(0)
            }
            _ => Err(Errno::ENOSYS),
        }
    }
}
