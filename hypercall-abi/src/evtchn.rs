//! Event channels: `event_channel_op` (`event_channel.h`) and VIRQ numbers
//! (`xen.h`).

use crate::assert_layout;

pub use crate::shared_info::EVTCHN_2L_NR_CHANNELS;

pub const EVTCHNOP_bind_interdomain: u32 = 0;
pub const EVTCHNOP_bind_virq: u32 = 1;
pub const EVTCHNOP_bind_pirq: u32 = 2;
pub const EVTCHNOP_close: u32 = 3;
pub const EVTCHNOP_send: u32 = 4;
pub const EVTCHNOP_status: u32 = 5;
pub const EVTCHNOP_alloc_unbound: u32 = 6;
pub const EVTCHNOP_bind_ipi: u32 = 7;
pub const EVTCHNOP_bind_vcpu: u32 = 8;
pub const EVTCHNOP_unmask: u32 = 9;
pub const EVTCHNOP_reset: u32 = 10;
pub const EVTCHNOP_init_control: u32 = 11;
pub const EVTCHNOP_expand_array: u32 = 12;
pub const EVTCHNOP_set_priority: u32 = 13;
pub const EVTCHNOP_reset_cont: u32 = 14;

// VIRQ_*: V. = per-vCPU, G. = global (bound on vCPU0 first).
/// V. Timebase update or requested timeout.
pub const VIRQ_TIMER: u32 = 0;
/// V. Dump debug info.
pub const VIRQ_DEBUG: u32 = 1;
/// G. (Dom0) Bytes on the emergency console.
pub const VIRQ_CONSOLE: u32 = 2;
/// G. (Dom0) Exceptional event for some domain.
pub const VIRQ_DOM_EXC: u32 = 3;
/// G. (Dom0) Trace buffer has records.
pub const VIRQ_TBUF: u32 = 4;
/// G. (Dom0) A domain paused for debugging.
pub const VIRQ_DEBUGGER: u32 = 6;
/// V. XenOprofile sample.
pub const VIRQ_XENOPROF: u32 = 7;
/// G. (Dom0) Bytes on the console ring.
pub const VIRQ_CON_RING: u32 = 8;
/// G. (Dom0) Physical CPU state changed.
pub const VIRQ_PCPU_STATE: u32 = 9;
/// G. (Dom0) A memory event.
pub const VIRQ_MEM_EVENT: u32 = 10;
/// G. Argo interdomain message.
pub const VIRQ_ARGO: u32 = 11;
/// G. (Dom0) Xen is low on heap memory.
pub const VIRQ_ENOMEM: u32 = 12;
/// V. PMC interrupt.
pub const VIRQ_XENPMU: u32 = 13;
pub const VIRQ_ARCH_0: u32 = 16;
pub const VIRQ_ARCH_1: u32 = 17;
pub const VIRQ_ARCH_2: u32 = 18;
pub const VIRQ_ARCH_3: u32 = 19;
pub const VIRQ_ARCH_4: u32 = 20;
pub const VIRQ_ARCH_5: u32 = 21;
pub const VIRQ_ARCH_6: u32 = 22;
pub const VIRQ_ARCH_7: u32 = 23;
/// x86: machine check.
pub const VIRQ_MCA: u32 = VIRQ_ARCH_0;
pub const NR_VIRQS: u32 = 24;

// evtchn_status.status.
pub const EVTCHNSTAT_closed: u32 = 0;
pub const EVTCHNSTAT_unbound: u32 = 1;
pub const EVTCHNSTAT_interdomain: u32 = 2;
pub const EVTCHNSTAT_pirq: u32 = 3;
pub const EVTCHNSTAT_virq: u32 = 4;
pub const EVTCHNSTAT_ipi: u32 = 5;

/// `evtchn_bind_pirq.flags`.
pub const BIND_PIRQ__WILL_SHARE: u32 = 1;

macro_rules! op_struct {
    ($(#[$doc:meta])* $name:ident, size = $size:expr, { $($field:ident : $ty:ty = $off:expr),* $(,)? } $(, pad { $($pad:ident : $pty:ty),* })?) => {
        $(#[$doc])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $name {
            $(pub $field: $ty,)*
            $($(pub $pad: $pty,)*)?
        }
        assert_layout!($name, size = $size $(, $field = $off)*);
    };
}

/// `struct evtchn_alloc_unbound`: a fresh port in `dom` that `remote_dom` may bind.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnAllocUnbound {
    pub dom: u16,
    pub remote_dom: u16,
    /// OUT.
    pub port: u32,
}
assert_layout!(EvtchnAllocUnbound, size = 8, dom = 0, remote_dom = 2, port = 4);

/// `struct evtchn_bind_interdomain`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindInterdomain {
    pub remote_dom: u16,
    pub _pad: u16,
    pub remote_port: u32,
    /// OUT.
    pub local_port: u32,
}
assert_layout!(EvtchnBindInterdomain, size = 12, remote_dom = 0, remote_port = 4, local_port = 8);

op_struct!(
    /// `struct evtchn_bind_virq`.
    EvtchnBindVirq, size = 12, { virq: u32 = 0, vcpu: u32 = 4, port: u32 = 8 });
op_struct!(
    /// `struct evtchn_bind_pirq`.
    EvtchnBindPirq, size = 12, { pirq: u32 = 0, flags: u32 = 4, port: u32 = 8 });
op_struct!(
    /// `struct evtchn_bind_ipi`.
    EvtchnBindIpi, size = 8, { vcpu: u32 = 0, port: u32 = 4 });
op_struct!(
    /// `struct evtchn_close`.
    EvtchnClose, size = 4, { port: u32 = 0 });
op_struct!(
    /// `struct evtchn_send`.
    EvtchnSend, size = 4, { port: u32 = 0 });
op_struct!(
    /// `struct evtchn_bind_vcpu`.
    EvtchnBindVcpu, size = 8, { port: u32 = 0, vcpu: u32 = 4 });
op_struct!(
    /// `struct evtchn_unmask`.
    EvtchnUnmask, size = 4, { port: u32 = 0 });
op_struct!(
    /// `struct evtchn_reset`.
    EvtchnReset, size = 2, { dom: u16 = 0 });
op_struct!(
    /// `struct evtchn_expand_array` (FIFO ABI).
    EvtchnExpandArray, size = 8, { array_gfn: u64 = 0 });
op_struct!(
    /// `struct evtchn_set_priority` (FIFO ABI).
    EvtchnSetPriority, size = 8, { port: u32 = 0, priority: u32 = 4 });
op_struct!(
    /// `struct evtchn_init_control` (FIFO ABI).
    EvtchnInitControl, size = 24,
    { control_gfn: u64 = 0, offset: u32 = 8, vcpu: u32 = 12, link_bits: u8 = 16 },
    pad { _pad: [u8; 7] });

/// `struct evtchn_status`. The C union `u` is two words here, read through
/// the accessors by `status`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnStatus {
    pub dom: u16,
    pub _pad: u16,
    pub port: u32,
    /// OUT: `EVTCHNSTAT_*`.
    pub status: u32,
    /// OUT: vCPU the channel notifies.
    pub vcpu: u32,
    /// OUT: `unbound.dom` / `interdomain.{dom,port}` / `pirq` / `virq`.
    pub u: [u32; 2],
}
assert_layout!(EvtchnStatus, size = 24, dom = 0, port = 4, status = 8, vcpu = 12, u = 16);

impl EvtchnStatus {
    /// `u.unbound.dom` / `u.interdomain.dom`.
    pub const fn remote_dom(&self) -> u16 {
        self.u[0] as u16
    }
    /// `u.interdomain.port`.
    pub const fn remote_port(&self) -> u32 {
        self.u[1]
    }
    /// `u.pirq` / `u.virq`.
    pub const fn irq(&self) -> u32 {
        self.u[0]
    }
    pub fn set_unbound(&mut self, dom: u16) {
        self.u = [dom as u32, 0];
    }
    pub fn set_interdomain(&mut self, dom: u16, port: u32) {
        self.u = [dom as u32, port];
    }
    pub fn set_irq(&mut self, irq: u32) {
        self.u = [irq, 0];
    }
}

// ---------------------------------------------------------------------------
// The FIFO ABI (`event_channel.h`): event words in guest pages, one control
// block per vCPU with a queue head per priority.

/// An event word's bits.
pub const EVTCHN_FIFO_PENDING: u32 = 31;
pub const EVTCHN_FIFO_MASKED: u32 = 30;
pub const EVTCHN_FIFO_LINKED: u32 = 29;
pub const EVTCHN_FIFO_BUSY: u32 = 28;
pub const EVTCHN_FIFO_LINK_BITS: u32 = 17;
pub const EVTCHN_FIFO_LINK_MASK: u32 = (1 << EVTCHN_FIFO_LINK_BITS) - 1;
pub const EVTCHN_FIFO_NR_CHANNELS: u32 = 1 << EVTCHN_FIFO_LINK_BITS;
pub const EVTCHN_FIFO_PRIORITY_MAX: u32 = 0;
pub const EVTCHN_FIFO_PRIORITY_DEFAULT: u32 = 7;
pub const EVTCHN_FIFO_PRIORITY_MIN: u32 = 15;
pub const EVTCHN_FIFO_MAX_QUEUES: usize = 16;
/// Event words in one page of the event array.
pub const EVTCHN_FIFO_EVENT_WORDS_PER_PAGE: u32 = 1024;
pub const EVTCHN_FIFO_MAX_EVENT_ARRAY_PAGES: u32 = EVTCHN_FIFO_NR_CHANNELS / EVTCHN_FIFO_EVENT_WORDS_PER_PAGE;

/// `struct evtchn_fifo_control_block`: a bit per queue with events, then
/// each queue's head.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnFifoControlBlock {
    pub ready: u32,
    pub _rsvd: u32,
    pub head: [u32; EVTCHN_FIFO_MAX_QUEUES],
}
crate::assert_layout!(EvtchnFifoControlBlock, size = 72, ready = 0, head = 8);
