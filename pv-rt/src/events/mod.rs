//! Event channels on the guest side, 2-level ABI, the way Linux's
//! `drivers/xen/events/events_2l.c` does it.
//!
//! - [`map_shared_info`] maps the shared_info page (start_info gives only its
//!   machine address) at [`SHARED_INFO_VA`] with [`crate::shared`].
//! - [`upcall`] is the event callback: the trap path's event entry, which
//!   saves every register, runs [`do_upcall`] (unless the kernel installed a
//!   trap handler of its own) and returns with the `iret` hypercall.
//! - [`do_upcall`] clears `evtchn_upcall_pending`, swaps the selector
//!   `evtchn_pending_sel` with 0, and for each selected word handles the
//!   ports that are pending, not masked and bound to this vCPU, clearing each
//!   pending bit before its handler runs (an event sent during the handler
//!   is not lost); it loops while Xen set `evtchn_upcall_pending` again.
//! - Typed wrappers of `event_channel_op` ([`alloc_unbound`], [`bind_virq`],
//!   ...) that return `Result<_, Errno>`; [`event_channel_op`] for hostile
//!   arguments.
//! - [`disable`]/[`enable`]: the vCPU's "interrupt flag",
//!   `vcpu_info.evtchn_upcall_mask`, as Linux's `xen_irq_disable/enable`.
//! - [`smp`]: secondary vCPUs (bring-up with `VCPUOP_initialise`, their
//!   stacks, taking them down).
//!
//! Xen builds the upcall's bounce frame at the interrupted stack pointer
//! rounded down to 16 bytes, without skipping a red zone. Our crates are
//! built with `-C no-redzone=yes`, the precompiled `core` is not: keep events
//! masked ([`disable`]) while running `core` code (formatting, printing) and
//! unmask them around hypercalls or loops of our own.
//!
//! Which vCPU runs is told by the stack: vCPU 0 runs on pv-rt's boot stack,
//! vCPU `n > 0` on the `n`th of [`smp`]'s stacks ([`current_vcpu`]). No
//! segment base is involved, so the bookkeeping does not depend on the
//! hypervisor's `set_segment_base`.

#[cfg(not(test))]
pub mod smp;
#[cfg(not(test))]
pub mod upcall;

use core::ptr;
use core::sync::atomic::{compiler_fence, fence, AtomicU64, AtomicU8, AtomicUsize, Ordering};

use hypercall_abi::evtchn::*;
use hypercall_abi::mm::DOMID_SELF;
use hypercall_abi::sched::{SchedPoll, SCHEDOP_block, SCHEDOP_poll};
use hypercall_abi::shared_info::{SharedInfo, VcpuInfo, EVTCHN_2L_NR_CHANNELS};
use hypercall_abi::version::XENVER_version;
use hypercall_abi::{guest, nr, DomId, Errno, EvtchnPort};

use crate::mm::{check, Mm};

/// Where [`map_shared_info`] maps the page: L4 slot 96, away from the
/// initial mapping (slot 0) and from the MMU self-test's slot 64.
pub const SHARED_INFO_VA: u64 = 0x0000_3000_0000_0000;

/// vCPUs this runtime can run (each but vCPU 0 needs a stack in [`smp`]).
pub const MAX_VCPUS: usize = 4;

/// Words of the 2-level ABI's pending and mask arrays.
const WORDS: usize = EVTCHN_2L_NR_CHANNELS / 64;

/// A port's handler: runs in the upcall, events masked, on the vCPU the port
/// is bound to, with the port's pending bit already cleared.
pub type Handler = fn(port: EvtchnPort);

/// Handler of each port, as an address (0: none).
static HANDLERS: [AtomicUsize; EVTCHN_2L_NR_CHANNELS] = [const { AtomicUsize::new(0) }; EVTCHN_2L_NR_CHANNELS];

/// Linux's `cpu_evtchn_mask`: the ports each vCPU handles. Xen sets the
/// pending bit of every port in the one shared array and tells only the
/// port's vCPU, but any vCPU's scan sees every pending bit; without this, a
/// vCPU would run another vCPU's handlers.
static VCPU_PORTS: [[AtomicU64; WORDS]; MAX_VCPUS] = [const { [const { AtomicU64::new(0) }; WORDS] }; MAX_VCPUS];

/// What the upcalls did, per vCPU.
pub struct Stats {
    /// Entries into the event callback.
    pub upcalls: AtomicU64,
    /// Handlers run.
    pub handled: AtomicU64,
    /// Pending ports of this vCPU without a handler (cleared, dropped).
    pub spurious: AtomicU64,
    /// Xen's bounce frame of the last upcall: CS (saved event mask in bits
    /// 32-39, RPL 0 when the guest was in kernel mode), RFLAGS, RIP.
    pub last_cs: AtomicU64,
    pub last_rflags: AtomicU64,
    pub last_rip: AtomicU64,
    /// `evtchn_upcall_mask` as the handler found it (Xen masks on entry).
    pub last_mask_in_handler: AtomicU8,
}

impl Stats {
    const fn new() -> Stats {
        Stats {
            upcalls: AtomicU64::new(0),
            handled: AtomicU64::new(0),
            spurious: AtomicU64::new(0),
            last_cs: AtomicU64::new(0),
            last_rflags: AtomicU64::new(0),
            last_rip: AtomicU64::new(0),
            last_mask_in_handler: AtomicU8::new(0),
        }
    }
}

static STATS: [Stats; MAX_VCPUS] = [const { Stats::new() }; MAX_VCPUS];

/// The upcall counters of `vcpu`.
pub fn stats(vcpu: usize) -> &'static Stats {
    &STATS[vcpu]
}

// ---------------------------------------------------------------------------
// shared_info

/// Maps the shared_info page writable at [`SHARED_INFO_VA`] with
/// [`crate::shared::map`] (`update_va_mapping` of start_info's machine
/// frame, as Linux maps it at a fixmap slot), unless it is mapped already.
pub fn map_shared_info(mm: &mut Mm) -> Result<(), Errno> {
    if crate::shared::get().is_none() {
        // SAFETY: SHARED_INFO_VA is reserved for this page: nothing else
        // maps there and no Rust reference points into it.
        unsafe { crate::shared::map(mm, SHARED_INFO_VA)? };
    }
    Ok(())
}

/// The mapped shared_info page.
pub fn shared_info() -> *mut SharedInfo {
    crate::shared::get().expect("shared_info used before events::map_shared_info")
}

/// `vcpu_info[vcpu]` in shared_info.
pub fn vcpu_info(vcpu: usize) -> *mut VcpuInfo {
    assert!(vcpu < MAX_VCPUS);
    // SAFETY: only an address inside the mapped page is computed.
    unsafe { &raw mut (*shared_info()).vcpu_info[vcpu] }
}

// Xen and every vCPU change these fields concurrently (Xen with locked
// instructions), so they are read and written only as atomics.

fn upcall_pending_of(vcpu: usize) -> &'static AtomicU8 {
    // SAFETY: an aligned byte of the mapped page, which stays mapped for the
    // life of the domain; all accesses to it are atomic.
    unsafe { AtomicU8::from_ptr(&raw mut (*vcpu_info(vcpu)).evtchn_upcall_pending) }
}

fn upcall_mask_of(vcpu: usize) -> &'static AtomicU8 {
    // SAFETY: as in upcall_pending_of.
    unsafe { AtomicU8::from_ptr(&raw mut (*vcpu_info(vcpu)).evtchn_upcall_mask) }
}

fn pending_sel_of(vcpu: usize) -> &'static AtomicU64 {
    // SAFETY: as in upcall_pending_of; the field is 8-byte aligned.
    unsafe { AtomicU64::from_ptr(&raw mut (*vcpu_info(vcpu)).evtchn_pending_sel) }
}

fn pending_words() -> &'static [AtomicU64; WORDS] {
    // SAFETY: `evtchn_pending` is 64 aligned u64s of the mapped page; an
    // `AtomicU64` has the layout of a `u64`; all accesses are atomic.
    unsafe { &*(&raw mut (*shared_info()).evtchn_pending).cast::<[AtomicU64; WORDS]>() }
}

fn mask_words() -> &'static [AtomicU64; WORDS] {
    // SAFETY: as in pending_words, for `evtchn_mask`.
    unsafe { &*(&raw mut (*shared_info()).evtchn_mask).cast::<[AtomicU64; WORDS]>() }
}

fn word_bit(port: EvtchnPort) -> (usize, u64) {
    ((port as usize / 64) % WORDS, 1u64 << (port % 64))
}

/// `vcpu_info[vcpu].evtchn_upcall_pending`.
pub fn upcall_pending(vcpu: usize) -> u8 {
    upcall_pending_of(vcpu).load(Ordering::SeqCst)
}

/// `vcpu_info[vcpu].evtchn_upcall_mask`.
pub fn upcall_mask(vcpu: usize) -> u8 {
    upcall_mask_of(vcpu).load(Ordering::SeqCst)
}

/// `vcpu_info[vcpu].evtchn_pending_sel`.
pub fn pending_sel(vcpu: usize) -> u64 {
    pending_sel_of(vcpu).load(Ordering::SeqCst)
}

/// The port's bit in `shared_info.evtchn_pending`.
pub fn is_pending(port: EvtchnPort) -> bool {
    let (w, b) = word_bit(port);
    pending_words()[w].load(Ordering::SeqCst) & b != 0
}

/// Clears the port's pending bit (Linux's `clear_evtchn`).
pub fn clear_pending(port: EvtchnPort) {
    let (w, b) = word_bit(port);
    pending_words()[w].fetch_and(!b, Ordering::SeqCst);
}

/// The port's bit in `shared_info.evtchn_mask`.
pub fn is_masked(port: EvtchnPort) -> bool {
    let (w, b) = word_bit(port);
    mask_words()[w].load(Ordering::SeqCst) & b != 0
}

/// Masks the port: Xen still sets its pending bit, but no longer tells any
/// vCPU (no selector bit, no `evtchn_upcall_pending`, no upcall). The mask
/// array is the guest's to write.
pub fn mask(port: EvtchnPort) {
    let (w, b) = word_bit(port);
    mask_words()[w].fetch_or(b, Ordering::SeqCst);
}

// ---------------------------------------------------------------------------
// The vCPU's event mask

/// The vCPU running this code: 0 on pv-rt's boot stack, `n` on the stack of
/// secondary vCPU `n`.
#[inline(always)]
pub fn current_vcpu() -> usize {
    let rsp: u64;
    // SAFETY: reads the stack pointer.
    unsafe { core::arch::asm!("mov {}, rsp", out(reg) rsp, options(nomem, nostack, preserves_flags)) };
    vcpu_of_stack(rsp)
}

#[cfg(not(test))]
fn vcpu_of_stack(rsp: u64) -> usize {
    smp::vcpu_of_stack(rsp)
}

#[cfg(test)]
fn vcpu_of_stack(_rsp: u64) -> usize {
    0
}

/// Masks events on this vCPU (Linux's `xen_irq_disable`); returns whether
/// they were enabled.
pub fn disable() -> bool {
    let was = upcall_mask_of(current_vcpu()).swap(1, Ordering::SeqCst);
    compiler_fence(Ordering::SeqCst);
    was == 0
}

/// Unmasks events on this vCPU (Linux's `xen_irq_enable`). An event that
/// became pending while masked makes Xen set `evtchn_upcall_pending` but
/// deliver nothing; Xen only looks when it next returns to us, so force that
/// with a cheap hypercall.
pub fn enable() {
    let vcpu = current_vcpu();
    compiler_fence(Ordering::SeqCst);
    upcall_mask_of(vcpu).store(0, Ordering::SeqCst);
    // Unmask before checking, or an event set in between waits for the next
    // unrelated entry into Xen.
    fence(Ordering::SeqCst);
    if upcall_pending_of(vcpu).load(Ordering::SeqCst) != 0 {
        force_callback();
    }
}

/// Puts back what [`disable`] returned.
pub fn restore(enabled: bool) {
    if enabled {
        enable();
    }
}

/// Linux's `xen_force_evtchn_callback`: any hypercall returns through Xen's
/// pending-event check, which delivers the upcall if events are unmasked.
pub fn force_callback() {
    // SAFETY: XENVER_version takes no buffer and has no effect.
    unsafe { guest::xen_version(XENVER_version, ptr::null_mut()) };
}

// ---------------------------------------------------------------------------
// Handlers and the scan

/// Routes `port` to `handler` on `vcpu` (what Linux's irq binding and
/// `bind_evtchn_to_cpu` do). The hypervisor side (which vCPU Xen notifies)
/// is set by the bind call or [`bind_vcpu`].
pub fn set_handler(port: EvtchnPort, vcpu: usize, handler: Handler) {
    let (w, b) = word_bit(port);
    HANDLERS[port as usize % EVTCHN_2L_NR_CHANNELS].store(handler as usize, Ordering::Release);
    for (v, ports) in VCPU_PORTS.iter().enumerate() {
        if v == vcpu {
            ports[w].fetch_or(b, Ordering::SeqCst);
        } else {
            ports[w].fetch_and(!b, Ordering::SeqCst);
        }
    }
}

/// Forgets `port`'s handler (before or after closing it).
pub fn clear_handler(port: EvtchnPort) {
    let (w, b) = word_bit(port);
    for ports in &VCPU_PORTS {
        ports[w].fetch_and(!b, Ordering::SeqCst);
    }
    HANDLERS[port as usize % EVTCHN_2L_NR_CHANNELS].store(0, Ordering::Release);
}

/// The 2-level scan over one vCPU's view: `pending & ~mask & ours` of each
/// word whose selector bit was set, lowest port first, each bit cleared
/// before `handle` runs; repeated while `upcall_pending` was set again.
/// Returns how many ports were handled. Pure over its arguments, so the host
/// tests run it on a plain [`SharedInfo`].
pub(crate) fn scan_2l(
    upcall_pending: &AtomicU8,
    pending_sel: &AtomicU64,
    pending: &[AtomicU64; WORDS],
    mask: &[AtomicU64; WORDS],
    ours: &[AtomicU64; WORDS],
    mut handle: impl FnMut(EvtchnPort),
) -> u64 {
    let mut handled = 0;
    loop {
        // Clear first: Xen sets it again (after the selector bit) for any
        // event from here on, which the check at the bottom catches.
        upcall_pending.store(0, Ordering::SeqCst);
        let mut sel = pending_sel.swap(0, Ordering::SeqCst);
        while sel != 0 {
            let w = sel.trailing_zeros() as usize;
            sel &= sel - 1;
            loop {
                let bits = pending[w].load(Ordering::SeqCst)
                    & !mask[w].load(Ordering::SeqCst)
                    & ours[w].load(Ordering::SeqCst);
                if bits == 0 {
                    break;
                }
                let b = bits.trailing_zeros();
                pending[w].fetch_and(!(1u64 << b), Ordering::SeqCst);
                handle((w * 64) as EvtchnPort + b);
                handled += 1;
            }
        }
        if upcall_pending.load(Ordering::SeqCst) == 0 {
            return handled;
        }
    }
}

/// The body of the event callback, on the vCPU that took the upcall, with
/// events masked (Xen masked them when it built the frame).
pub fn do_upcall(cs: u64, rflags: u64, rip: u64) {
    let vcpu = current_vcpu();
    let st = &STATS[vcpu];
    st.upcalls.fetch_add(1, Ordering::Relaxed);
    st.last_cs.store(cs, Ordering::Relaxed);
    st.last_rflags.store(rflags, Ordering::Relaxed);
    st.last_rip.store(rip, Ordering::Relaxed);
    st.last_mask_in_handler.store(upcall_mask(vcpu), Ordering::Relaxed);
    scan_2l(
        upcall_pending_of(vcpu),
        pending_sel_of(vcpu),
        pending_words(),
        mask_words(),
        &VCPU_PORTS[vcpu],
        |port| {
            let h = HANDLERS[port as usize].load(Ordering::Acquire);
            if h == 0 {
                st.spurious.fetch_add(1, Ordering::Relaxed);
                return;
            }
            // SAFETY: HANDLERS holds 0 or a `Handler` stored by set_handler.
            let h: Handler = unsafe { core::mem::transmute::<usize, Handler>(h) };
            h(port);
            st.handled.fetch_add(1, Ordering::Relaxed);
        },
    );
}

// ---------------------------------------------------------------------------
// event_channel_op

/// `event_channel_op(cmd, arg)`: the raw call, for hostile arguments.
///
/// # Safety
/// `arg` must be null, unmapped, outside the guest's half (Xen refuses
/// those), or point at the structure `cmd` reads and writes.
pub unsafe fn event_channel_op(cmd: u32, arg: u64) -> i64 {
    // SAFETY: the caller vouches for `arg`.
    unsafe { guest::hypercall2(nr::EVENT_CHANNEL_OP, cmd as u64, arg) }
}

/// `event_channel_op(cmd, &mut op)` for the structure `T` of `cmd`.
fn op<T>(cmd: u32, arg: &mut T) -> Result<(), Errno> {
    // SAFETY: every caller passes the structure its `cmd` uses, so Xen reads
    // and writes inside `arg`.
    check(unsafe { event_channel_op(cmd, arg as *mut T as u64) }).map(drop)
}

/// `EVTCHNOP_alloc_unbound`: a new port of `dom` that `remote_dom` may bind.
pub fn alloc_unbound(dom: DomId, remote_dom: DomId) -> Result<EvtchnPort, Errno> {
    let mut a = EvtchnAllocUnbound { dom, remote_dom, port: 0 };
    op(EVTCHNOP_alloc_unbound, &mut a)?;
    Ok(a.port)
}

/// `EVTCHNOP_bind_interdomain`: connects a new local port to `remote_port`
/// of `remote_dom` (which must be unbound and waiting for us).
pub fn bind_interdomain(remote_dom: DomId, remote_port: EvtchnPort) -> Result<EvtchnPort, Errno> {
    let mut b = EvtchnBindInterdomain { remote_dom, _pad: 0, remote_port, local_port: 0 };
    op(EVTCHNOP_bind_interdomain, &mut b)?;
    Ok(b.local_port)
}

/// `EVTCHNOP_bind_virq`.
pub fn bind_virq(virq: u32, vcpu: u32) -> Result<EvtchnPort, Errno> {
    let mut b = EvtchnBindVirq { virq, vcpu, port: 0 };
    op(EVTCHNOP_bind_virq, &mut b)?;
    Ok(b.port)
}

/// `EVTCHNOP_bind_ipi`: a port that, sent on, notifies `vcpu`.
pub fn bind_ipi(vcpu: u32) -> Result<EvtchnPort, Errno> {
    let mut b = EvtchnBindIpi { vcpu, port: 0 };
    op(EVTCHNOP_bind_ipi, &mut b)?;
    Ok(b.port)
}

/// `EVTCHNOP_bind_vcpu`: Xen notifies `vcpu` of events on `port` from now on.
pub fn bind_vcpu(port: EvtchnPort, vcpu: u32) -> Result<(), Errno> {
    op(EVTCHNOP_bind_vcpu, &mut EvtchnBindVcpu { port, vcpu })
}

/// `EVTCHNOP_send`.
pub fn send(port: EvtchnPort) -> Result<(), Errno> {
    op(EVTCHNOP_send, &mut EvtchnSend { port })
}

/// `EVTCHNOP_close`.
pub fn close(port: EvtchnPort) -> Result<(), Errno> {
    op(EVTCHNOP_close, &mut EvtchnClose { port })
}

/// `EVTCHNOP_unmask`: Xen clears the mask bit and, if the port is pending,
/// tells its vCPU (selector bit, `evtchn_upcall_pending`, upcall).
pub fn unmask(port: EvtchnPort) -> Result<(), Errno> {
    op(EVTCHNOP_unmask, &mut EvtchnUnmask { port })
}

/// `EVTCHNOP_status` of `port` of `dom`.
pub fn status(dom: DomId, port: EvtchnPort) -> Result<EvtchnStatus, Errno> {
    let mut s = EvtchnStatus { dom, port, ..Default::default() };
    op(EVTCHNOP_status, &mut s)?;
    Ok(s)
}

/// `EVTCHNOP_reset` of `dom`: closes every port.
pub fn reset(dom: DomId) -> Result<(), Errno> {
    op(EVTCHNOP_reset, &mut EvtchnReset { dom })
}

/// A loop-back interdomain channel of our own domain: `(unbound end, bound
/// end)`. Xen marks the bound end pending at once (`evtchn_bind_interdomain`
/// assumes a notification may have been lost on the unbound port).
pub fn loopback() -> Result<(EvtchnPort, EvtchnPort), Errno> {
    let a = alloc_unbound(DOMID_SELF, DOMID_SELF)?;
    match bind_interdomain(DOMID_SELF, a) {
        Ok(b) => Ok((a, b)),
        Err(e) => {
            let _ = close(a);
            Err(e)
        }
    }
}

// ---------------------------------------------------------------------------
// Blocking

/// `SCHEDOP_block`: Xen unmasks events (`evtchn_upcall_mask = 0`) and
/// deschedules the vCPU until an event is pending for it; the upcall runs
/// before the call returns. Call with events masked after checking the
/// condition waited for, as Linux's `xen_safe_halt` does, so no event is
/// lost in between; events stay unmasked afterwards.
pub fn block() -> i64 {
    // SAFETY: block takes no argument.
    unsafe { guest::hypercall2(nr::SCHED_OP, SCHEDOP_block as u64, 0) }
}

/// Blocks until an event comes, then returns with events unmasked and
/// every pending upcall delivered: Linux's `xen_safe_halt` followed by the
/// idle loop's `local_irq_enable`. Call with events masked, after checking
/// the condition waited for.
///
/// Xen's block unmasks events itself and returns at once if one is
/// pending. The checks around it keep a hypervisor that does neither from
/// putting us to sleep for good with the event that should wake us already
/// there: one that is pending is delivered instead of blocking, and events
/// are unmasked after the block whatever the hypervisor did.
pub fn halt() -> i64 {
    if upcall_pending(current_vcpu()) != 0 {
        enable();
        return 0;
    }
    let r = block();
    enable();
    r
}

/// `SCHEDOP_poll`: sleep until one of `ports` is pending or the absolute
/// system time `timeout` (ns; 0 = none) passes. Events stay as they were
/// (masked ports and a masked vCPU still wake the poller).
pub fn poll(ports: &[EvtchnPort], timeout: u64) -> i64 {
    // SAFETY: Xen reads `ports.len()` ports from the slice.
    unsafe { poll_raw(ports.as_ptr() as u64, ports.len() as u32, timeout) }
}

/// `SCHEDOP_poll` with a raw port array, for hostile arguments.
///
/// # Safety
/// `ports` must be readable for `nr_ports` ports, or be an address Xen must
/// refuse.
pub unsafe fn poll_raw(ports: u64, nr_ports: u32, timeout: u64) -> i64 {
    let p = SchedPoll { ports, nr_ports, _pad: 0, timeout };
    // SAFETY: Xen reads the structure on our stack and the ports the caller
    // vouches for.
    unsafe { guest::hypercall2(nr::SCHED_OP, SCHEDOP_poll as u64, &p as *const SchedPoll as u64) }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct View {
        upcall_pending: AtomicU8,
        sel: AtomicU64,
        pending: [AtomicU64; WORDS],
        mask: [AtomicU64; WORDS],
        ours: [AtomicU64; WORDS],
    }

    impl View {
        fn new() -> View {
            View {
                upcall_pending: AtomicU8::new(0),
                sel: AtomicU64::new(0),
                pending: [const { AtomicU64::new(0) }; WORDS],
                mask: [const { AtomicU64::new(0) }; WORDS],
                ours: [const { AtomicU64::new(!0) }; WORDS],
            }
        }
        /// Xen's `evtchn_2l_set_pending` for a port of this vCPU.
        fn raise(&self, port: u32) {
            let (w, b) = word_bit(port);
            if self.pending[w].fetch_or(b, Ordering::SeqCst) & b != 0 {
                return;
            }
            if self.mask[w].load(Ordering::SeqCst) & b == 0 && self.sel.fetch_or(1 << w, Ordering::SeqCst) & (1 << w) == 0 {
                self.upcall_pending.store(1, Ordering::SeqCst);
            }
        }
        fn scan(&self, mut f: impl FnMut(u32, &View)) -> u64 {
            scan_2l(&self.upcall_pending, &self.sel, &self.pending, &self.mask, &self.ours, |p| f(p, self))
        }
    }

    #[test]
    fn handles_pending_ports_lowest_first_and_clears_them() {
        let v = View::new();
        for p in [130, 3, 64, 5] {
            v.raise(p);
        }
        let mut seen = std::vec::Vec::new();
        assert_eq!(v.scan(|p, _| seen.push(p)), 4);
        assert_eq!(seen, [3, 5, 64, 130]);
        assert!(v.pending.iter().all(|w| w.load(Ordering::SeqCst) == 0));
        assert_eq!(v.sel.load(Ordering::SeqCst), 0);
        assert_eq!(v.upcall_pending.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn masked_ports_stay_pending_and_unhandled() {
        let v = View::new();
        v.mask[0].store(1 << 7, Ordering::SeqCst);
        v.raise(7);
        v.raise(8);
        let mut seen = std::vec::Vec::new();
        v.scan(|p, _| seen.push(p));
        assert_eq!(seen, [8]);
        assert_eq!(v.pending[0].load(Ordering::SeqCst), 1 << 7);
    }

    #[test]
    fn other_vcpus_ports_are_left_alone() {
        let v = View::new();
        v.ours[0].store(!(1 << 9), Ordering::SeqCst);
        v.raise(9);
        v.raise(10);
        let mut seen = std::vec::Vec::new();
        v.scan(|p, _| seen.push(p));
        assert_eq!(seen, [10]);
        assert_eq!(v.pending[0].load(Ordering::SeqCst), 1 << 9);
    }

    #[test]
    fn an_event_raised_by_a_handler_is_handled_in_the_same_upcall() {
        let v = View::new();
        v.raise(1);
        let mut seen = std::vec::Vec::new();
        // The handler of port 1 sends on port 1 once more (as an IPI to
        // itself would), and on port 200 in another word.
        v.scan(|p, v| {
            seen.push(p);
            if seen.len() == 1 {
                v.raise(1);
                v.raise(200);
            }
        });
        assert_eq!(seen, [1, 1, 200]);
    }
}
