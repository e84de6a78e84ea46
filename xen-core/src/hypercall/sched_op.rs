//! `sched_op`: yield, block, shut down.

use super::{ret, HcResult};
use crate::domain::{RunState, ShutdownReason};
use crate::platform::Platform;
use crate::xen::Xen;
use hypercall_abi::errno::Errno;
use hypercall_abi::sched::*;

impl<P: Platform> Xen<P> {
    pub(super) fn do_sched_op(&mut self, [cmd, arg, ..]: [u64; 5]) -> HcResult {
        let (dom, v) = self.current.ok_or(Errno::ESRCH)?;
        match cmd as u32 {
            SCHEDOP_yield => {
                self.yield_pending = true;
                ret(0)
            }
            SCHEDOP_block => {
                // Xen's vcpu_block: go to sleep unless an event is already
                // waiting, in which case return at once.
                if !self.events_need_delivery(v) {
                    self.set_runstate(dom, v, RunState::Blocked);
                }
                ret(0)
            }
            SCHEDOP_shutdown => {
                let g = self.guest_mem().ok_or(Errno::ESRCH)?;
                let reason = g.read_u32(arg)?;
                let reason = ShutdownReason::from_abi(reason).ok_or(Errno::EINVAL)?;
                self.domain_shutdown(dom, reason);
                ret(0)
            }
            SCHEDOP_shutdown_code => {
                let g = self.guest_mem().ok_or(Errno::ESRCH)?;
                let code = g.read_u32(arg)?;
                ShutdownReason::from_abi(code).ok_or(Errno::EINVAL)?;
                if let Some(d) = self.current_domain_mut() {
                    d.shutdown_code = Some(code);
                }
                ret(0)
            }
            _ => Err(Errno::ENOSYS),
        }
    }

    /// `evtchn_upcall_pending && !evtchn_upcall_mask` in the vCPU's
    /// `vcpu_info` (Xen's `local_events_need_delivery`).
    fn events_need_delivery(&self, vcpu: usize) -> bool {
        let Some(d) = self.current_domain() else { return false };
        if vcpu >= 32 {
            return false;
        }
        let mut b = [0u8; 2];
        self.platform.read(d.shared_info, vcpu * 64, &mut b);
        b[0] != 0 && b[1] == 0
    }
}
