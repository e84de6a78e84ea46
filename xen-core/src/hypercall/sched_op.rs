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
                // Xen's do_block: enable event delivery first (a guest blocks
                // with events masked to close the race with its own check),
                // then sleep unless an event is already waiting.
                if let Some(vi) = self.vcpu_info_of(dom, v) {
                    vi.set_upcall_mask(false);
                }
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
            SCHEDOP_poll => {
                let g = self.guest_mem().ok_or(Errno::ESRCH)?;
                let mut b = [0u8; 24];
                g.copy_from_guest(arg, &mut b)?;
                let ports_ptr = u64::from_le_bytes(b[0..8].try_into().unwrap_or([0; 8]));
                let nr = u32::from_le_bytes(b[8..12].try_into().unwrap_or([0; 4]));
                let timeout = u64::from_le_bytes(b[16..24].try_into().unwrap_or([0; 8]));
                if nr > 128 {
                    return Err(Errno::EINVAL);
                }
                let max = self.domains[&dom].evtchn.max;
                let mut ports = alloc::vec::Vec::with_capacity(nr as usize);
                for i in 0..nr as u64 {
                    let p = g.read_u32(ports_ptr.wrapping_add(4 * i))?;
                    if p >= max {
                        return Err(Errno::EINVAL);
                    }
                    ports.push(p);
                }
                // Already pending: no need to sleep.
                if ports.iter().any(|p| self.port_pending(dom, *p)) {
                    return ret(0);
                }
                let now = self.platform.now_ns();
                if timeout != 0 && timeout <= now {
                    return ret(0);
                }
                if let Some(vc) = self.current_domain_mut().and_then(|d| d.vcpus.get_mut(v)) {
                    vc.poll_ports = ports;
                    vc.poll_deadline = (timeout != 0).then_some(timeout);
                }
                self.set_runstate(dom, v, RunState::Blocked);
                ret(0)
            }
            SCHEDOP_remote_shutdown => {
                // The control domain shuts another down (`xl shutdown`).
                if !self.current_domain().is_some_and(|d| d.privileged) {
                    return Err(Errno::EPERM);
                }
                let g = self.guest_mem().ok_or(Errno::ESRCH)?;
                let target = g.copy_u16(arg)?;
                let reason = ShutdownReason::from_abi(g.read_u32(arg.wrapping_add(4))?).ok_or(Errno::EINVAL)?;
                let t = crate::domain::DomId(target);
                if !self.domains.contains_key(&t) {
                    return Err(Errno::ESRCH);
                }
                self.domain_shutdown(t, reason);
                ret(0)
            }
            SCHEDOP_shutdown_code => {
                let g = self.guest_mem().ok_or(Errno::ESRCH)?;
                // Xen keeps any value, as a byte, and only the first one
                // (`d->shutdown_code` while still SHUTDOWN_CODE_INVALID):
                // it is only reported, never acted on.
                let code = g.read_u32(arg)? & 0xff;
                if let Some(d) = self.current_domain_mut() {
                    d.shutdown_code.get_or_insert(code);
                }
                ret(0)
            }
            _ => Err(Errno::ENOSYS),
        }
    }

    fn events_need_delivery(&self, vcpu: usize) -> bool {
        self.current.is_some_and(|(d, _)| self.events_need_delivery_for(d, vcpu))
    }
}
