//! `workload=events`: the event-channel, time and blocking self-test.
//!
//! Every expected value is what Xen 4.17.7 (Debian's 4.17.7+13) gives a
//! 64-bit PV Dom0 under QEMU; the comment at each group names the Xen code
//! that decides it (`xen/common/event_channel.c` unless said otherwise).
//! Timing is only ever checked as a boolean ("at least the time asked for"),
//! so the lines are the same on every run and on both hypervisors.
//!
//! With `dom0_max_vcpus=2` (on the hypervisor's command line) it also brings
//! vCPU 1 up, bounces events between the two vCPUs, and takes vCPU 1 down;
//! with one vCPU that part is skipped, without check lines.
//!
//! Events stay masked (`events::disable`) except in short windows around
//! the hypercalls and waits whose upcalls are tested: Xen's upcall frame
//! lands below the interrupted stack pointer without sparing a red zone,
//! which the precompiled `core` (formatting, printing) uses.

pub mod bench;
mod pingpong;
pub mod timer;

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use hypercall_abi::evtchn::*;
use hypercall_abi::mm::DOMID_SELF;
use hypercall_abi::vcpu::RUNSTATE_blocked;
use hypercall_abi::{Errno, EvtchnPort};
use pv_rt::events::{self, smp, upcall};
use pv_rt::mm::Mm;
use pv_rt::time::{self, NSEC_PER_MSEC, NSEC_PER_SEC};
use pv_rt::{println, start_info};

use crate::check::Checks;

/// A domain that does not exist on a machine that only runs Dom0.
const NO_SUCH_DOMAIN: u16 = 7;
/// A port past the 2-level ABI's 4096.
const BAD_PORT: EvtchnPort = 5000;
/// A vCPU that does not exist.
const NO_SUCH_VCPU: u32 = 7;
/// An address in the hypervisor's hole.
const HYPERVISOR_PTR: u64 = 0xFFFF_8300_0000_0000;

/// Ports the recording handler keeps track of.
const TRACKED: usize = 64;

/// Per port: upcalls that handled it, the vCPU and system time of the last.
static COUNT: [AtomicU32; TRACKED] = [const { AtomicU32::new(0) }; TRACKED];
static LAST_VCPU: [AtomicU32; TRACKED] = [const { AtomicU32::new(0) }; TRACKED];
static LAST_TIME: [AtomicU64; TRACKED] = [const { AtomicU64::new(0) }; TRACKED];

/// The handler of every port the self-test binds.
fn record(port: EvtchnPort) {
    let p = port as usize % TRACKED;
    LAST_TIME[p].store(time::system_time(), Ordering::SeqCst);
    LAST_VCPU[p].store(events::current_vcpu() as u32, Ordering::SeqCst);
    COUNT[p].fetch_add(1, Ordering::SeqCst);
}

fn count(port: EvtchnPort) -> u32 {
    COUNT[port as usize % TRACKED].load(Ordering::SeqCst)
}

fn last_time(port: EvtchnPort) -> u64 {
    LAST_TIME[port as usize % TRACKED].load(Ordering::SeqCst)
}

/// A result as the hypercall's return value: 0 or `-errno`.
fn rc<T>(r: Result<T, Errno>) -> i64 {
    r.map_or_else(|e| e.to_ret(), |_| 0)
}

/// Runs `f` with events unmasked on this vCPU, so that the upcalls it
/// causes are delivered; `f` must be code of ours (no `core` formatting).
fn unmasked<T>(f: impl FnOnce() -> T) -> T {
    events::enable();
    let r = f();
    events::disable();
    r
}

/// Spins with events unmasked until `done` or `timeout_ns` passed; returns
/// `done()`.
fn spin_until(timeout_ns: u64, done: impl Fn() -> bool) -> bool {
    let deadline = time::system_time() + timeout_ns;
    unmasked(|| {
        while !done() && time::system_time() < deadline {
            core::hint::spin_loop();
        }
    });
    done()
}

/// Blocks (`SCHEDOP_block`, events masked between checks) until `done`;
/// returns the last block's return value.
fn block_until(done: impl Fn() -> bool) -> i64 {
    let mut ret = 0;
    events::disable();
    while !done() {
        ret = events::halt();
        events::disable();
    }
    ret
}

/// What [`setup`] did: the return codes of mapping shared_info,
/// registering the event callback and stopping the periodic timer, and the
/// event mask vCPU 0 had before we touched it.
pub struct Setup {
    pub map: i64,
    pub register: i64,
    pub stop_periodic: i64,
    pub initial_mask: u8,
}

/// Maps shared_info, registers the event callback and, if `stop_periodic`,
/// stops the 100 Hz periodic timer every PV vCPU starts with, as Linux does
/// first thing. Leaves events masked.
pub fn setup(stop_periodic: bool) -> (Mm, Setup) {
    // SAFETY: the only Mm of this kernel; pv-rt's entry left the boot stack.
    let mut mm = match unsafe { Mm::new(start_info()) } {
        Ok(mm) => mm,
        Err(e) => {
            println!("events: Mm::new failed: {}", e);
            println!("Test result: FAILURE");
            pv_rt::crash();
        }
    };
    let map = rc(events::map_shared_info(&mut mm));
    if map != 0 {
        println!("events: mapping shared_info failed: {}", map);
        println!("Test result: FAILURE");
        pv_rt::crash();
    }
    let initial_mask = events::upcall_mask(0);
    events::disable();
    let register = rc(upcall::register());
    let stop_periodic = if stop_periodic { time::stop_periodic_timer(0) } else { 0 };
    (mm, Setup { map, register, stop_periodic, initial_mask })
}

pub fn run(_cmdline: &str) {
    let mut c = Checks::default();
    let (mm, s) = setup(true);
    // Xen's dom0_construct_pv masks every vcpu_info before the kernel runs.
    c.eq("events_initial_upcall_mask", s.initial_mask, 1);
    c.eq("events_map_shared_info", s.map, 0);
    // arch/x86/pv/callback.c: register_guest_callback.
    c.eq("events_callback_register", s.register, 0);
    // common/domain.c: do_vcpu_op, VCPUOP_stop_periodic_timer.
    c.eq("events_stop_periodic_timer", s.stop_periodic, 0);
    time_info(&mut c);
    loopback(&mut c);
    let timer_port = virq_timer(&mut c);
    let ipi_port = ipi_and_mask(&mut c);
    block(&mut c, timer_port);
    poll(&mut c, timer_port, ipi_port);
    hostile(&mut c, timer_port, ipi_port);
    two_vcpus(&mut c, &mm);
    reset(&mut c, timer_port, ipi_port);
    let st = events::stats(0);
    c.eq("events_spurious_upcall_ports", st.spurious.load(Ordering::SeqCst), 0);
    c.verdict();
}

/// vcpu_time_info and the wallclock (`xen/arch/x86/time.c`:
/// `update_vcpu_system_time`, `update_domain_wallclock_time`).
fn time_info(c: &mut Checks) {
    let (t, _) = time::snapshot(0);
    c.eq("time_version_even", t.version & 1 == 0, true);
    c.eq("time_scale_set", t.tsc_to_system_mul != 0, true);
    let t1 = time::system_time();
    for _ in 0..100 {
        events::force_callback();
    }
    let t2 = time::system_time();
    c.eq("time_system_time_advances", t2 > t1, true);
    // Xen's boot time from the RTC: QEMU's clock is the host's, after 2020.
    let (sec, nsec) = time::wallclock();
    c.eq("time_wallclock_after_2020", sec > 1_577_836_800, true);
    c.eq("time_wallclock_nsec_below_1s", (nsec as u64) < NSEC_PER_SEC, true);
}

/// A loop-back interdomain channel: `evtchn_alloc_unbound`,
/// `evtchn_bind_interdomain`, `evtchn_send`, `evtchn_status`; the upcall
/// frame (`x86_64/entry.S`: `create_bounce_frame`; `pv/iret.c`: `do_iret`).
fn loopback(c: &mut Checks) {
    let a = events::alloc_unbound(DOMID_SELF, DOMID_SELF);
    c.eq("evtchn_alloc_unbound", rc(a), 0);
    let a = a.unwrap_or(0);
    // get_free_port: the lowest free port; port 0 is reserved.
    c.eq("evtchn_alloc_unbound_port", a, 1);
    events::set_handler(a, 0, record);
    status(c, "evtchn_status_unbound", a, EVTCHNSTAT_unbound, 0, [0, 0]);

    let upcalls = events::stats(0).upcalls.load(Ordering::SeqCst);
    let b = events::bind_interdomain(DOMID_SELF, a);
    c.eq("evtchn_bind_interdomain", rc(b), 0);
    let b = b.unwrap_or(0);
    c.eq("evtchn_bind_interdomain_port", b, 2);
    events::set_handler(b, 0, record);
    // "We may have lost notifications on the remote unbound port": the new
    // local end starts pending; events are masked, so nothing is delivered.
    c.eq("evtchn_bind_interdomain_local_pending", events::is_pending(b), true);
    c.eq("evtchn_masked_vcpu_gets_no_upcall", events::stats(0).upcalls.load(Ordering::SeqCst) - upcalls, 0);
    c.eq("evtchn_masked_vcpu_upcall_pending", events::upcall_pending(0), 1);
    unmasked(|| {});
    c.eq("evtchn_unmasking_vcpu_delivers", count(b), 1);
    status(c, "evtchn_status_interdomain_a", a, EVTCHNSTAT_interdomain, 0, [0, b]);
    status(c, "evtchn_status_interdomain_b", b, EVTCHNSTAT_interdomain, 0, [0, a]);

    // One send from one end: the other end's handler runs once, on the way
    // back from the send, before the send returns.
    let (na, nb) = (count(a), count(b));
    let (sent, mask_after) = unmasked(|| (rc(events::send(a)), events::upcall_mask(0)));
    c.eq("evtchn_send_loopback", sent, 0);
    c.eq("evtchn_send_loopback_remote_handler_runs", count(b) - nb, 1);
    c.eq("evtchn_send_loopback_local_handler_quiet", count(a) - na, 0);
    c.eq("evtchn_send_loopback_cleared_pending", events::is_pending(b), false);
    // The frame of that upcall: mask 0 saved in CS bits 32-39 and as IF,
    // CS with RPL 0 (kernel mode), events masked inside the handler, and
    // unmasked again by the iret (from RFLAGS.IF).
    let st = events::stats(0);
    let cs = st.last_cs.load(Ordering::SeqCst);
    c.eq("upcall_frame_saved_mask", (cs >> 32) & 0xff, 0);
    c.eq("upcall_frame_cs_selector", Hex16(cs as u16), Hex16(0xe030));
    c.eq("upcall_frame_rflags_if", st.last_rflags.load(Ordering::SeqCst) & 0x200 != 0, true);
    c.eq("upcall_mask_in_handler", st.last_mask_in_handler.load(Ordering::SeqCst), 1);
    c.eq("upcall_mask_after_iret", mask_after, 0);

    let (na, nb) = (count(a), count(b));
    let sent = unmasked(|| rc(events::send(b)));
    c.eq("evtchn_send_reverse", sent, 0);
    c.eq("evtchn_send_reverse_remote_handler_runs", count(a) - na, 1);
    c.eq("evtchn_send_reverse_local_handler_quiet", count(b) - nb, 0);

    // evtchn_close: the other end of an interdomain channel goes back to
    // unbound, waiting for this domain; sends on it are dropped (ECS_UNBOUND
    // in evtchn_send); the closed port is free: -EINVAL for everything.
    c.eq("evtchn_close", rc(events::close(a)), 0);
    events::clear_handler(a);
    status(c, "evtchn_status_after_close_other_end", b, EVTCHNSTAT_unbound, 0, [0, 0]);
    status(c, "evtchn_status_closed", a, EVTCHNSTAT_closed, 0, [0, 0]);
    let nb = count(b);
    c.eq("evtchn_send_on_unbound_is_dropped", unmasked(|| rc(events::send(b))), 0);
    c.eq("evtchn_send_on_unbound_no_upcall", count(b) - nb, 0);
    c.eq("evtchn_send_on_closed", rc(events::send(a)), Errno::EINVAL.to_ret());
    c.eq("evtchn_close_twice", rc(events::close(a)), Errno::EINVAL.to_ret());
    // get_free_port hands out the lowest free port again.
    let again = events::alloc_unbound(DOMID_SELF, DOMID_SELF);
    c.eq("evtchn_alloc_reuses_lowest_port", again.unwrap_or(0), a);
    let _ = events::close(a);
    c.eq("evtchn_close_other_end", rc(events::close(b)), 0);
    events::clear_handler(b);
}

/// `VIRQ_TIMER` and `set_timer_op` (`common/sched/core.c`:
/// `do_set_timer_op`, `vcpu_singleshot_timer_fn` -> `send_timer_event`).
fn virq_timer(c: &mut Checks) -> EvtchnPort {
    let p = events::bind_virq(VIRQ_TIMER, 0);
    c.eq("virq_timer_bind", rc(p), 0);
    let p = p.unwrap_or(0);
    c.eq("virq_timer_bind_port", p, 1);
    events::set_handler(p, 0, record);
    status(c, "virq_timer_status", p, EVTCHNSTAT_virq, 0, [VIRQ_TIMER, 0]);
    // evtchn_bind_virq: virq_to_evtchn[] already set.
    c.eq("virq_timer_bind_twice", rc(events::bind_virq(VIRQ_TIMER, 0)), Errno::EEXIST.to_ret());

    // Five ms ahead: the handler runs once, not before the time asked for.
    let n = count(p);
    let t0 = time::system_time();
    c.eq("virq_timer_set_timer_op", time::set_timer_op(t0 + 5 * NSEC_PER_MSEC), 0);
    let fired = spin_until(2 * NSEC_PER_SEC, || count(p) != n);
    c.eq("virq_timer_fired", fired, true);
    c.eq("virq_timer_not_early", last_time(p) >= t0 + 5 * NSEC_PER_MSEC, true);
    spin_until(20 * NSEC_PER_MSEC, || false);
    c.eq("virq_timer_fired_once", count(p) - n, 1);

    // 0 cancels; nothing fires.
    let n = count(p);
    time::set_timer_op(time::system_time() + 5 * NSEC_PER_MSEC);
    c.eq("virq_timer_cancel", time::set_timer_op(0), 0);
    spin_until(20 * NSEC_PER_MSEC, || false);
    c.eq("virq_timer_cancelled_quiet", count(p) - n, 0);

    // A time already past fires at once (set_timer of an expired time).
    let n = count(p);
    time::set_timer_op(time::system_time() - NSEC_PER_MSEC);
    c.eq("virq_timer_past_fires", spin_until(NSEC_PER_SEC, || count(p) != n), true);
    p
}

/// IPIs to ourselves (`evtchn_bind_ipi`, `evtchn_send` ECS_IPI) and masking
/// (`event_2l.c`: `evtchn_2l_set_pending` marks a masked port pending but
/// tells no vCPU; `evtchn_2l_unmask` tells it when the mask goes).
fn ipi_and_mask(c: &mut Checks) -> EvtchnPort {
    let p = events::bind_ipi(0);
    c.eq("ipi_bind", rc(p), 0);
    let p = p.unwrap_or(0);
    c.eq("ipi_bind_port", p, 2);
    events::set_handler(p, 0, record);
    status(c, "ipi_status", p, EVTCHNSTAT_ipi, 0, [0, 0]);
    let n = count(p);
    c.eq("ipi_send", unmasked(|| rc(events::send(p))), 0);
    c.eq("ipi_handler_runs_once", count(p) - n, 1);

    events::mask(p);
    let n = count(p);
    let upcalls = events::stats(0).upcalls.load(Ordering::SeqCst);
    c.eq("mask_send", unmasked(|| rc(events::send(p))), 0);
    c.eq("mask_send_no_handler", count(p) - n, 0);
    c.eq("mask_send_no_upcall", events::stats(0).upcalls.load(Ordering::SeqCst) - upcalls, 0);
    c.eq("mask_send_leaves_pending", events::is_pending(p), true);
    c.eq("mask_send_no_upcall_pending", events::upcall_pending(0), 0);
    c.eq("mask_send_no_selector_bit", events::pending_sel(0), 0);
    // The unmask hypercall delivers the pending event on its way back.
    c.eq("unmask", unmasked(|| rc(events::unmask(p))), 0);
    c.eq("unmask_delivers", count(p) - n, 1);
    c.eq("unmask_clears_mask_bit", events::is_masked(p), false);
    c.eq("unmask_clears_pending", events::is_pending(p), false);
    p
}

/// `SCHEDOP_block` (`common/sched/core.c`: `vcpu_block_enable_events`
/// unmasks events, then the vCPU sleeps until one is pending).
fn block(c: &mut Checks, timer: EvtchnPort) {
    let n = count(timer);
    let before = time::runstate(0);
    let t0 = time::system_time();
    time::set_timer_op(t0 + 10 * NSEC_PER_MSEC);
    events::disable();
    let ret = events::block();
    let mask_after = events::upcall_mask(0);
    let woken = count(timer) != n;
    // A wake-up by something else would return early: block on until the
    // timer came (never busy).
    let _ = block_until(|| count(timer) != n);
    let after = time::runstate(0);
    c.eq("block_rc", ret, 0);
    c.eq("block_woken_by_timer", woken, true);
    c.eq("block_not_early", last_time(timer) >= t0 + 10 * NSEC_PER_MSEC, true);
    c.eq("block_leaves_events_unmasked", mask_after, 0);
    c.eq("block_runstate_info", rc(before).max(rc(after)), 0);
    // Blocked, not spinning: the runstate says the vCPU spent most of the
    // wait blocked.
    let blocked = |r: &Result<hypercall_abi::vcpu::VcpuRunstateInfo, Errno>| {
        r.as_ref().map_or(0, |r| r.time[RUNSTATE_blocked as usize])
    };
    c.eq("block_time_counted_blocked", blocked(&after) >= blocked(&before) + 5 * NSEC_PER_MSEC, true);
}

/// `SCHEDOP_poll` (`common/sched/core.c`: `do_poll`): sleeps until one of
/// the ports is pending (masked or not, events masked or not) or the
/// timeout passes.
fn poll(c: &mut Checks, timer: EvtchnPort, ipi: EvtchnPort) {
    events::disable();
    // Nothing pending: back after the timeout, 0.
    let t0 = time::system_time();
    let r = events::poll(&[ipi], t0 + 5 * NSEC_PER_MSEC);
    let t1 = time::system_time();
    c.eq("poll_timeout_rc", r, 0);
    c.eq("poll_timeout_not_early", t1 >= t0 + 5 * NSEC_PER_MSEC, true);
    c.eq("poll_timeout_port_not_pending", events::is_pending(ipi), false);

    // A pending (masked) port: back at once.
    events::mask(ipi);
    let _ = events::send(ipi);
    let t0 = time::system_time();
    let r = events::poll(&[ipi], t0 + NSEC_PER_SEC);
    let t1 = time::system_time();
    c.eq("poll_pending_rc", r, 0);
    c.eq("poll_pending_returns_before_timeout", t1 < t0 + NSEC_PER_SEC, true);
    events::clear_pending(ipi);
    let _ = events::unmask(ipi);

    // Woken by the timer's VIRQ with events masked: the port is pending, no
    // upcall ran; unmasking delivers it.
    let n = count(timer);
    let t0 = time::system_time();
    time::set_timer_op(t0 + 5 * NSEC_PER_MSEC);
    let r = events::poll(&[timer], t0 + NSEC_PER_SEC);
    let t1 = time::system_time();
    c.eq("poll_virq_rc", r, 0);
    c.eq("poll_virq_port_pending", events::is_pending(timer), true);
    c.eq("poll_virq_not_early", t1 >= t0 + 5 * NSEC_PER_MSEC, true);
    c.eq("poll_virq_before_timeout", t1 < t0 + NSEC_PER_SEC, true);
    c.eq("poll_leaves_events_masked", events::upcall_mask(0), 1);
    c.eq("poll_virq_no_upcall_while_masked", count(timer) - n, 0);
    unmasked(|| {});
    c.eq("poll_virq_delivered_on_unmask", count(timer) - n, 1);

    // Hostile: a port past max_evtchns, too many ports, a pointer into the
    // hypervisor.
    let t = time::system_time() + NSEC_PER_MSEC;
    c.eq("poll_bad_port", events::poll(&[BAD_PORT], t), Errno::EINVAL.to_ret());
    let ports = [ipi; 129];
    c.eq("poll_too_many_ports", events::poll(&ports, t), Errno::EINVAL.to_ret());
    // SAFETY: Xen must refuse to read the hypervisor's own memory.
    c.eq("poll_hypervisor_pointer", unsafe { events::poll_raw(HYPERVISOR_PTR, 1, t) }, Errno::EFAULT.to_ret());
}

/// Hostile values (`evtchn_send`, `evtchn_bind_virq`, `evtchn_bind_ipi`,
/// `evtchn_bind_vcpu`, `evtchn_alloc_unbound`, `evtchn_bind_interdomain`,
/// `evtchn_unmask`, `evtchn_status`, `evtchn_close`, `do_event_channel_op`).
fn hostile(c: &mut Checks, timer: EvtchnPort, ipi: EvtchnPort) {
    let einval = Errno::EINVAL.to_ret();
    // Port 0 is ECS_RESERVED, port 60 ECS_FREE (valid: its bucket exists),
    // 5000 past the ABI: -EINVAL each.
    c.eq("send_port_0", rc(events::send(0)), einval);
    c.eq("send_free_port", rc(events::send(60)), einval);
    c.eq("send_port_5000", rc(events::send(BAD_PORT)), einval);
    c.eq("send_port_u32_max", rc(events::send(u32::MAX)), einval);
    c.eq("bind_virq_nr_virqs", rc(events::bind_virq(NR_VIRQS, 0)), einval);
    c.eq("bind_virq_u32_max", rc(events::bind_virq(u32::MAX, 0)), einval);
    // A global VIRQ only on vCPU 0 (virq_is_global), checked before the vCPU.
    c.eq("bind_virq_global_on_vcpu1", rc(events::bind_virq(VIRQ_DOM_EXC, 1)), einval);
    c.eq("bind_virq_no_such_vcpu", rc(events::bind_virq(VIRQ_TIMER, NO_SUCH_VCPU)), Errno::ENOENT.to_ret());
    c.eq("bind_ipi_no_such_vcpu", rc(events::bind_ipi(NO_SUCH_VCPU)), Errno::ENOENT.to_ret());
    c.eq("bind_vcpu_no_such_vcpu", rc(events::bind_vcpu(timer, NO_SUCH_VCPU)), Errno::ENOENT.to_ret());
    // Only unbound, interdomain, PIRQ and global-VIRQ ports move.
    c.eq("bind_vcpu_ipi_port", rc(events::bind_vcpu(ipi, 0)), einval);
    c.eq("bind_vcpu_per_vcpu_virq", rc(events::bind_vcpu(timer, 0)), einval);
    c.eq("bind_vcpu_free_port", rc(events::bind_vcpu(60, 0)), einval);
    c.eq("alloc_unbound_no_such_dom", rc(events::alloc_unbound(NO_SUCH_DOMAIN, DOMID_SELF)), Errno::ESRCH.to_ret());
    // The remote domain of an unbound port is only a name: Xen accepts one
    // that does not exist (yet).
    let r = events::alloc_unbound(DOMID_SELF, NO_SUCH_DOMAIN);
    c.eq("alloc_unbound_no_such_remote", rc(r), 0);
    // (Port 0 when refused: the lines below then fail too, but stay in step
    // with Xen's.)
    let p = r.unwrap_or(0);
    status(c, "alloc_unbound_no_such_remote_status", p, EVTCHNSTAT_unbound, 0, [NO_SUCH_DOMAIN as u32, 0]);
    // Not waiting for us: we cannot bind it.
    c.eq("bind_interdomain_not_for_us", rc(events::bind_interdomain(DOMID_SELF, p)), einval);
    if p != 0 {
        let _ = events::close(p);
    }
    c.eq("bind_interdomain_no_such_dom", rc(events::bind_interdomain(NO_SUCH_DOMAIN, 1)), Errno::ESRCH.to_ret());
    c.eq("bind_interdomain_ipi_port", rc(events::bind_interdomain(DOMID_SELF, ipi)), einval);
    c.eq("bind_interdomain_port_5000", rc(events::bind_interdomain(DOMID_SELF, BAD_PORT)), einval);
    c.eq("unmask_port_5000", rc(events::unmask(BAD_PORT)), einval);
    c.eq("status_port_5000", rc(events::status(DOMID_SELF, BAD_PORT)), einval);
    c.eq("status_no_such_dom", rc(events::status(NO_SUCH_DOMAIN, 1)), Errno::ESRCH.to_ret());
    c.eq("close_port_0", rc(events::close(0)), einval);
    c.eq("close_port_5000", rc(events::close(BAD_PORT)), einval);
    let mut junk = [0u8; 32];
    // SAFETY: Xen reads or writes at most the 32 bytes of `junk` for an
    // unknown command (it reads nothing).
    c.eq("evtchnop_unknown", unsafe { events::event_channel_op(99, junk.as_mut_ptr() as u64) }, Errno::ENOSYS.to_ret());
    // SAFETY: Xen must refuse to read the hypervisor's own memory.
    c.eq("evtchnop_send_hypervisor_pointer", unsafe { events::event_channel_op(EVTCHNOP_send, HYPERVISOR_PTR) }, Errno::EFAULT.to_ret());
    // Nothing above bound a port or raised an event.
    c.eq("hostile_no_upcall_pending", events::upcall_pending(0), 0);
}

/// vCPU 1: `VCPUOP_initialise`/`up`/`is_up` (`common/domain.c`:
/// `do_vcpu_op`, `arch/x86/domain.c`: `arch_set_info_guest`), IPIs and an
/// interdomain port bound to it (`evtchn_bind_vcpu`), ping-pong, down.
fn two_vcpus(c: &mut Checks, mm: &Mm) {
    let n = smp::count();
    println!("events: {} vCPU(s)", n);
    if n < 2 {
        println!("events: one vCPU: the two-vCPU checks need dom0_max_vcpus=2");
        return;
    }
    c.eq("smp_vcpu1_is_up_before", smp::is_up(1), 0);
    c.eq("smp_is_up_no_such_vcpu", smp::is_up(NO_SUCH_VCPU), Errno::ENOENT.to_ret());
    events::disable();
    let started = match pingpong::start(mm) {
        Ok(s) => s,
        Err(e) => {
            c.eq("smp_bind_ipis", e.to_ret(), 0);
            return;
        }
    };
    c.eq("smp_initialise", started.initialise, 0);
    c.eq("smp_initialise_again", started.initialise_again, Errno::EEXIST.to_ret());
    c.eq("smp_is_up_after_initialise", started.is_up_after_initialise, 0);
    c.eq("smp_up", started.up, 0);
    c.eq("smp_vcpu1_running", started.running, true);
    c.eq("smp_vcpu1_starts_masked", started.start_mask, 1);
    c.eq("smp_vcpu1_is_up", smp::is_up(1), 1);
    if !started.running {
        return;
    }
    let ping = pingpong::ping_port();
    status(c, "smp_ipi_status", ping, EVTCHNSTAT_ipi, 1, [0, 0]);
    c.eq("smp_pingpong_rounds", pingpong::rounds(10), 10);

    // A loop-back channel whose bound end Xen notifies vCPU 1 of. Its
    // initial pending bit (set at bind, for vCPU 0) is cleared first.
    match events::loopback() {
        Ok((a, b)) => {
            events::clear_pending(b);
            c.eq("smp_bind_vcpu", rc(events::bind_vcpu(b, 1)), 0);
            status(c, "smp_bind_vcpu_status", b, EVTCHNSTAT_interdomain, 1, [0, a]);
            events::set_handler(b, 1, pingpong::ping_handler_fn());
            c.eq("smp_interdomain_to_vcpu1", pingpong::round_via(a), true);
            let _ = events::close(a);
            let _ = events::close(b);
            events::clear_handler(b);
        }
        Err(e) => {
            c.eq("smp_loopback", e.to_ret(), 0);
        }
    }
    // A per-vCPU VIRQ binds on vCPU 1 too.
    match events::bind_virq(VIRQ_TIMER, 1) {
        Ok(p) => {
            status(c, "smp_virq_timer_vcpu1_status", p, EVTCHNSTAT_virq, 1, [VIRQ_TIMER, 0]);
            let _ = events::close(p);
        }
        Err(e) => {
            c.eq("smp_virq_timer_vcpu1", e.to_ret(), 0);
        }
    }
    let (wrong_vcpu, send_errors) = pingpong::errors();
    c.eq("smp_handlers_on_right_vcpu", wrong_vcpu, 0);
    c.eq("smp_vcpu1_send_errors", send_errors, 0);
    c.eq("smp_vcpu1_down", pingpong::stop(), true);
    c.eq("smp_vcpu1_is_up_after_down", smp::is_up(1), 0);
}

/// `EVTCHNOP_reset` of ourselves (`evtchn_reset`): every port closed.
fn reset(c: &mut Checks, timer: EvtchnPort, ipi: EvtchnPort) {
    c.eq("evtchn_reset", rc(events::reset(DOMID_SELF)), 0);
    status(c, "evtchn_reset_closes_virq", timer, EVTCHNSTAT_closed, 0, [0, 0]);
    status(c, "evtchn_reset_closes_ipi", ipi, EVTCHNSTAT_closed, 0, [0, 0]);
    // The VIRQ can be bound again, on the lowest port.
    let p = events::bind_virq(VIRQ_TIMER, 0);
    c.eq("evtchn_reset_rebind_virq_port", p.unwrap_or(0), 1);
    let _ = events::reset(DOMID_SELF);
}

/// `EVTCHNOP_status` of our `port`: the return code, then `status`, `vcpu`
/// and the two words of the union, each a check line.
fn status(c: &mut Checks, name: &str, port: EvtchnPort, want: u32, vcpu: u32, u: [u32; 2]) {
    let s = events::status(DOMID_SELF, port);
    let mut n = heapless::String::<64>::new();
    let mut line = |suffix: &str| {
        n.clear();
        let _ = n.push_str(name);
        let _ = n.push_str(suffix);
        n.clone()
    };
    c.eq(&line(""), rc(s), 0);
    let s = s.unwrap_or_default();
    c.eq(&line("_state"), s.status, want);
    c.eq(&line("_vcpu"), s.vcpu, vcpu);
    c.eq(&line("_u0"), s.u[0], u[0]);
    c.eq(&line("_u1"), s.u[1], u[1]);
}

/// A selector, printed in hex.
#[derive(PartialEq)]
struct Hex16(u16);

impl core::fmt::Display for Hex16 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:#06x}", self.0)
    }
}
