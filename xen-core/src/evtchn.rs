//! Event channels: the virtual interrupts of a PV system (Xen's
//! `common/event_channel.c` and the 2-level ABI of `event_2l.c`).
//!
//! Each domain has a table of ports. A port is unbound (waiting for a named
//! domain to connect), interdomain (connected to a port of another domain, or
//! of itself), bound to a VIRQ or to an IPI of one of its vCPUs. Sending on
//! a port sets its bit in the receiver's `shared_info.evtchn_pending`; unless
//! the port is masked, the word's bit in the notified vCPU's
//! `evtchn_pending_sel` and its `evtchn_upcall_pending` follow, and the vCPU
//! is woken. The upcall itself happens on the way back to the guest.

use alloc::vec::Vec;

use crate::domain::DomId;

/// The 2-level ABI's limit: 64 words of 64 bits.
pub const EVTCHN_2L_NR_CHANNELS: u32 = 4096;
/// Ports an unprivileged domain may use (Xen's default `max_event_channels`).
pub const DEFAULT_MAX_PORTS_DOMU: u32 = 1024;


#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Free,
    /// Port 0: never handed out.
    Reserved,
    Unbound { remote: DomId },
    Interdomain { remote: DomId, remote_port: u32 },
    Virq(u32),
    Ipi,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Channel {
    pub state: State,
    /// The vCPU that is told about events on this port.
    pub notify_vcpu: u32,
    /// FIFO ABI: the queue it goes on (0 highest .. 15).
    pub priority: u8,
    /// FIFO ABI: an event arrived before the event array covered the port
    /// (set in its word when the page comes, as Xen's `evtchn->pending`).
    pub pending: bool,
}

impl Channel {
    pub const fn new(state: State, notify_vcpu: u32) -> Channel {
        Channel { state, notify_vcpu, priority: hypercall_abi::evtchn::EVTCHN_FIFO_PRIORITY_DEFAULT as u8, pending: false }
    }
}

/// A domain's ports.
#[derive(Clone, Debug)]
pub struct Ports {
    pub chans: Vec<Channel>,
    pub max: u32,
}

impl Ports {
    pub fn new(max: u32) -> Ports {
        let max = max.clamp(1, EVTCHN_2L_NR_CHANNELS);
        Ports { chans: alloc::vec![Channel::new(State::Reserved, 0)], max }
    }

    pub fn get(&self, port: u32) -> Option<&Channel> {
        self.chans.get(port as usize)
    }

    pub fn get_mut(&mut self, port: u32) -> Option<&mut Channel> {
        self.chans.get_mut(port as usize)
    }

    /// The lowest free port (Xen's `get_free_port`), or `None` when the
    /// domain has used its quota.
    pub fn alloc(&mut self, state: State, notify_vcpu: u32) -> Option<u32> {
        let port = match self.chans.iter().position(|c| c.state == State::Free) {
            Some(p) => p,
            None if (self.chans.len() as u32) < self.max => {
                self.chans.push(Channel::new(State::Free, 0));
                self.chans.len() - 1
            }
            None => return None,
        };
        self.chans[port] = Channel::new(state, notify_vcpu);
        Some(port as u32)
    }

    pub fn in_use(&self) -> impl Iterator<Item = (u32, &Channel)> + '_ {
        self.chans
            .iter()
            .enumerate()
            .filter(|(_, c)| !matches!(c.state, State::Free | State::Reserved))
            .map(|(p, c)| (p as u32, c))
    }
}

/// Global VIRQs are bound once per domain, on vCPU 0; the others exist per
/// vCPU (Xen's `virq_is_global`).
pub fn virq_is_global(virq: u32) -> bool {
    use hypercall_abi::evtchn::*;
    !matches!(virq, VIRQ_TIMER | VIRQ_DEBUG | VIRQ_XENOPROF | VIRQ_XENPMU)
}
