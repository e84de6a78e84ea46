//! Raising events and delivering them: the pending bits in shared_info, the
//! wake-up of a blocked or polling vCPU, and the upcall to the guest's event
//! callback on the way back into it.

use crate::domain::DomId;
use crate::platform::Platform;
use crate::regs::GuestRegs;
use crate::vcpu::RunState;
use crate::xen::Xen;

fn bit(port: u32) -> (usize, u64) {
    ((port / 64) as usize, 1u64 << (port % 64))
}

impl<P: Platform> Xen<P> {
    fn shared_info_of(&self, d: DomId) -> Option<crate::shared_info::SharedInfoPage<'_, P>> {
        self.domains.get(&d).map(|dd| dd.shared_info.shared_info(&self.platform))
    }

    fn fifo_active(&self, d: DomId) -> bool {
        self.domains.get(&d).is_some_and(|dd| dd.fifo.is_some())
    }

    pub(crate) fn port_pending(&self, d: DomId, port: u32) -> bool {
        if self.fifo_active(d) {
            let word = self.fifo_word(d, port);
            return word.is_some_and(|w| w & (1 << hypercall_abi::evtchn::EVTCHN_FIFO_PENDING) != 0);
        }
        let (w, b) = bit(port);
        self.shared_info_of(d).is_some_and(|si| si.evtchn_pending(w) & b != 0)
    }

    pub(crate) fn port_masked(&self, d: DomId, port: u32) -> bool {
        if self.fifo_active(d) {
            // A port the array does not cover counts as masked, as Xen's.
            let word = self.fifo_word(d, port);
            return word.is_none_or(|w| w & (1 << hypercall_abi::evtchn::EVTCHN_FIFO_MASKED) != 0);
        }
        let (w, b) = bit(port);
        self.shared_info_of(d).is_some_and(|si| si.evtchn_mask(w) & b != 0)
    }

    pub(crate) fn clear_pending(&mut self, d: DomId, port: u32) {
        if self.fifo_active(d) {
            // Only the P bit: a linked event stays linked and the guest
            // skips it (Xen's evtchn_fifo_clear_pending).
            if let Some(w) = self.fifo_word(d, port) {
                self.fifo_write_word(d, port, w & !(1 << hypercall_abi::evtchn::EVTCHN_FIFO_PENDING));
            }
            if let Some(c) = self.domains.get_mut(&d).and_then(|dd| dd.evtchn.get_mut(port)) {
                c.pending = false;
            }
            return;
        }
        let (w, b) = bit(port);
        if let Some(si) = self.shared_info_of(d) {
            si.set_evtchn_pending(w, si.evtchn_pending(w) & !b);
        }
    }

    /// Xen's `evtchn_2l_set_pending`: mark `port` of `d` pending, and tell
    /// its vCPU unless the port is masked or was already pending.
    pub fn evtchn_set_pending(&mut self, d: DomId, port: u32) {
        if self.fifo_active(d) {
            return self.fifo_set_pending(d, port);
        }
        let Some(chan) = self.domains.get(&d).and_then(|dd| dd.evtchn.get(port)).copied() else { return };
        let (w, b) = bit(port);
        let word = self.shared_info_of(d).map_or(0, |si| si.evtchn_pending(w));
        // A vCPU polling this port wakes whether or not it is masked.
        self.wake_pollers(d, port);
        if word & b != 0 {
            return;
        }
        if let Some(si) = self.shared_info_of(d) {
            si.set_evtchn_pending(w, word | b);
        }
        if self.port_masked(d, port) {
            return;
        }
        self.mark_events_pending(d, chan.notify_vcpu, w);
    }

    /// Set the selector bit and `evtchn_upcall_pending` of a vCPU, and wake it.
    pub(crate) fn mark_events_pending(&mut self, d: DomId, v: u32, word: usize) {
        let v = v as usize;
        if let Some(vi) = self.vcpu_info_of(d, v) {
            let sel = vi.pending_sel();
            if sel & (1 << word) != 0 {
                return;
            }
            vi.set_pending_sel(sel | (1 << word));
            vi.set_upcall_pending();
        }
        self.vcpu_wake(d, v);
    }

    /// A blocked vCPU becomes runnable (Xen's `vcpu_unblock`).
    pub fn vcpu_wake(&mut self, d: DomId, v: usize) {
        let blocked = self.domains.get(&d).and_then(|dd| dd.vcpus.get(v)).is_some_and(|vc| vc.state == RunState::Blocked);
        if blocked {
            if let Some(vc) = self.domains.get_mut(&d).and_then(|dd| dd.vcpus.get_mut(v)) {
                vc.poll_ports.clear();
                vc.poll_deadline = None;
            }
            self.set_runstate(d, v, RunState::Runnable);
        }
    }

    pub(crate) fn wake_pollers(&mut self, d: DomId, port: u32) {
        let Some(dd) = self.domains.get(&d) else { return };
        let pollers: alloc::vec::Vec<usize> = dd
            .vcpus
            .iter()
            .enumerate()
            .filter(|(_, vc)| vc.state == RunState::Blocked && vc.poll_ports.contains(&port))
            .map(|(i, _)| i)
            .collect();
        for v in pollers {
            self.vcpu_wake(d, v);
        }
    }

    /// Raise a VIRQ on a vCPU of `d`, if the guest bound it.
    pub fn send_virq(&mut self, d: DomId, v: usize, virq: u32) {
        let port = self.domains.get(&d).and_then(|dd| dd.vcpus.get(v)).map_or(0, |vc| vc.virq_to_evtchn[virq as usize]);
        if port != 0 {
            self.evtchn_set_pending(d, port);
        }
    }

    /// A global VIRQ goes to its handler domain: Dom0 (vCPU 0).
    pub fn send_global_virq(&mut self, virq: u32) {
        if let Some(d) = self.domains.values().find(|d| d.privileged).map(|d| d.id) {
            self.send_virq(d, 0, virq);
        }
    }

    /// `evtchn_upcall_pending && !evtchn_upcall_mask` (Xen's
    /// `local_events_need_delivery`) for vCPU `v` of `d`.
    pub(crate) fn events_need_delivery_for(&self, d: DomId, v: usize) -> bool {
        self.vcpu_info_of(d, v).is_some_and(|vi| vi.events_need_delivery())
    }

    /// On the way back into the current vCPU: if an event waits and events
    /// are not masked, enter the guest's event callback instead (the frame
    /// masks events, as Xen's upcall does). Returns false if the domain died
    /// building the frame.
    pub(crate) fn deliver_pending_upcall(&mut self, frame: &mut GuestRegs) -> bool {
        let Some((d, v)) = self.current else { return true };
        if !self.events_need_delivery_for(d, v) {
            return true;
        }
        let cb = self.domains[&d].vcpus[v].callbacks.event;
        if cb == 0 {
            return true;
        }
        let b = crate::traps::Bounce { rip: cb, error_code: None, mask_events: true };
        self.create_bounce_frame(frame, b)
    }
}
