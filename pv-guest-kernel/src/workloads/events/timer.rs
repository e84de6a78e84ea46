//! `workload=timer`: `VIRQ_TIMER` from each of Xen's timers, with the vCPU
//! blocked between ticks (`common/sched/core.c`: `vcpu_periodic_timer_work`,
//! `do_set_timer_op`, `do_vcpu_op`'s timer commands; `arch/x86/pv/domain.c`:
//! `pv_vcpu_initialise` gives every PV vCPU a 100 Hz periodic timer).
//!
//! 1. The default periodic timer ticks every 10 ms while the vCPU runs, but
//!    does not wake it when blocked: Xen stops a vCPU's periodic timer when
//!    it is descheduled and sends one catch-up tick when it runs again.
//!    `VCPUOP_stop_periodic_timer` silences it.
//! 2. `VCPUOP_set_periodic_timer` with `period_ms=` (default 5) ticks
//!    `ticks=` times (default 20) while the vCPU runs.
//! 3. `set_timer_op`, re-armed from the handler (how Linux keeps time on
//!    Xen), the same number of times while the vCPU blocks between ticks.
//! 4. `VCPUOP_set_singleshot_timer` (past times fire at once; Xen 4.17.7
//!    ignores `VCPU_SSHOTTMR_future`).
//!
//! Times are checked as booleans only (at least what was asked for).

use core::sync::atomic::{AtomicU64, Ordering};

use hypercall_abi::evtchn::VIRQ_TIMER;
use hypercall_abi::vcpu::{VcpuRunstateInfo, RUNSTATE_blocked, VCPU_SSHOTTMR_future};
use hypercall_abi::{Errno, EvtchnPort};
use pv_rt::{cmdline, println};
use pv_rt::events;
use pv_rt::time::{self, NSEC_PER_MSEC, NSEC_PER_SEC};

use super::{block_until, rc, setup, spin_until, unmasked};
use crate::check::Checks;

static TICKS: AtomicU64 = AtomicU64::new(0);
/// System time of the first tick (0: none yet) and of the last.
static FIRST: AtomicU64 = AtomicU64::new(0);
static LAST: AtomicU64 = AtomicU64::new(0);
/// Ticks after which the re-arming handler stops, and its period.
static REARM_TARGET: AtomicU64 = AtomicU64::new(0);
static REARM_PERIOD: AtomicU64 = AtomicU64::new(0);

fn tick(_port: EvtchnPort) {
    let now = time::system_time();
    let _ = FIRST.compare_exchange(0, now, Ordering::SeqCst, Ordering::SeqCst);
    LAST.store(now, Ordering::SeqCst);
    TICKS.fetch_add(1, Ordering::SeqCst);
}

/// A one-shot timer made periodic by the guest, as Linux's clockevent does:
/// the handler arms the next expiry.
fn rearm(_port: EvtchnPort) {
    let now = time::system_time();
    LAST.store(now, Ordering::SeqCst);
    let n = TICKS.fetch_add(1, Ordering::SeqCst) + 1;
    if n < REARM_TARGET.load(Ordering::SeqCst) {
        time::set_timer_op(now + REARM_PERIOD.load(Ordering::SeqCst));
    }
}

fn ticks() -> u64 {
    TICKS.load(Ordering::SeqCst)
}

fn blocked_ns(r: &Result<VcpuRunstateInfo, Errno>) -> u64 {
    r.as_ref().map_or(0, |r| r.time[RUNSTATE_blocked as usize])
}

pub fn run(cmd: &str) {
    let n = cmdline::get(cmd, "ticks").and_then(cmdline::parse_u64).unwrap_or(20).max(2);
    let period = cmdline::get(cmd, "period_ms").and_then(cmdline::parse_u64).unwrap_or(5).max(1) * NSEC_PER_MSEC;
    let mut c = Checks::default();
    let (_mm, s) = setup(false);
    c.eq("timer_map_shared_info", s.map, 0);
    c.eq("timer_callback_register", s.register, 0);
    let port = events::bind_virq(VIRQ_TIMER, 0);
    c.eq("timer_bind_virq", rc(port), 0);
    let port = port.unwrap_or(0);
    events::set_handler(port, 0, tick);

    // 1. The default 100 Hz timer ticks while the vCPU runs: four ticks
    //    (spinning, events unmasked) at least three periods apart.
    TICKS.store(0, Ordering::SeqCst);
    FIRST.store(0, Ordering::SeqCst);
    let four = spin_until(500 * NSEC_PER_MSEC, || ticks() >= 4);
    let spread = LAST.load(Ordering::SeqCst) - FIRST.load(Ordering::SeqCst);
    println!("timer: default periodic timer: 4 ticks over {} us", spread / 1000);
    c.eq("timer_default_periodic_ticks_while_running", four, true);
    c.eq("timer_default_periodic_spacing", (25 * NSEC_PER_MSEC..=60 * NSEC_PER_MSEC).contains(&spread), true);

    // Xen stops a vCPU's periodic timer while it is descheduled
    // (`sched_context_switch`) and, when it runs again, sends one tick if a
    // period passed (`vcpu_periodic_timer_work`): a blocked vCPU is not
    // woken by it. Polling (blocked, events masked) for 50 ms ends by the
    // poll's timeout, with that one catch-up tick pending.
    events::disable();
    events::clear_pending(port);
    let t0 = time::system_time();
    let r = events::poll(&[port], t0 + 50 * NSEC_PER_MSEC);
    let t1 = time::system_time();
    c.eq("timer_periodic_poll", r, 0);
    c.eq("timer_periodic_does_not_wake_blocked", t1 >= t0 + 50 * NSEC_PER_MSEC, true);
    c.eq("timer_periodic_catch_up_tick_pending", events::is_pending(port), true);
    let n0 = ticks();
    unmasked(|| {});
    c.eq("timer_periodic_catch_up_tick_delivered", ticks() - n0, 1);

    c.eq("timer_stop_periodic", time::stop_periodic_timer(0), 0);
    let n0 = ticks();
    spin_until(30 * NSEC_PER_MSEC, || false);
    c.eq("timer_stopped_periodic_quiet", ticks() - n0, 0);

    // 2. VCPUOP_set_periodic_timer (Xen refuses periods under 1 ms): `n`
    //    ticks while running.
    c.eq("timer_periodic_below_1ms", time::set_periodic_timer(0, NSEC_PER_MSEC / 2), Errno::EINVAL.to_ret());
    TICKS.store(0, Ordering::SeqCst);
    let t0 = time::system_time();
    c.eq("timer_set_periodic", time::set_periodic_timer(0, period), 0);
    let reached = spin_until(n * period * 4 + NSEC_PER_SEC, || ticks() >= n);
    let last = LAST.load(Ordering::SeqCst);
    c.eq("timer_stop_periodic_again", time::stop_periodic_timer(0), 0);
    println!("timer: {} periodic ticks of {} us over {} us", ticks(), period / 1000, (last - t0) / 1000);
    c.eq("timer_periodic_ticks", reached, true);
    c.eq("timer_periodic_time_advanced", last >= t0 + (n - 1) * period, true);
    let n0 = ticks();
    spin_until(3 * period, || false);
    c.eq("timer_periodic_stopped_quiet", ticks() - n0, 0);

    // 3. set_timer_op re-armed by the handler.
    events::set_handler(port, 0, rearm);
    TICKS.store(0, Ordering::SeqCst);
    REARM_TARGET.store(n, Ordering::SeqCst);
    REARM_PERIOD.store(period, Ordering::SeqCst);
    let before = time::runstate(0);
    let t0 = time::system_time();
    c.eq("timer_oneshot_set", time::set_timer_op(t0 + period), 0);
    block_until(|| ticks() >= n);
    let after = time::runstate(0);
    let last = LAST.load(Ordering::SeqCst);
    println!("timer: {} re-armed one-shot ticks of {} us over {} us", ticks(), period / 1000, (last - t0) / 1000);
    c.eq("timer_oneshot_ticks", ticks(), n);
    c.eq("timer_oneshot_time_advanced", last >= t0 + n * period, true);
    c.eq("timer_oneshot_blocked_between_ticks", blocked_ns(&after) >= blocked_ns(&before) + n * period / 2, true);
    events::poll(&[port], time::system_time() + 3 * period);
    c.eq("timer_oneshot_not_rearmed_quiet", events::is_pending(port), false);

    // 4. VCPUOP_set_singleshot_timer. A time already past fires at once.
    //    Xen 4.17.7 ignores VCPU_SSHOTTMR_future (its public vcpu.h now
    //    says "Ignored."; `do_vcpu_op` no longer fails a past time with
    //    -ETIME), so a past time with that flag is accepted and fires too.
    events::set_handler(port, 0, tick);
    // Waits for the tick a timer set with return code `r` raises: none to
    // wait for if it was refused. Returns the ticks that came.
    let fired = |r: i64| {
        let n0 = ticks();
        if r == 0 {
            block_until(|| ticks() > n0);
        }
        ticks() - n0
    };
    let now = time::system_time();
    let r = time::set_singleshot_timer(0, now - NSEC_PER_MSEC, VCPU_SSHOTTMR_future);
    c.eq("timer_singleshot_past_future_flag", r, 0);
    c.eq("timer_singleshot_past_future_flag_fires", fired(r), 1);
    let r = time::set_singleshot_timer(0, time::system_time() - NSEC_PER_MSEC, 0);
    c.eq("timer_singleshot_past", r, 0);
    c.eq("timer_singleshot_past_fires", fired(r), 1);
    let t0 = time::system_time();
    let r = time::set_singleshot_timer(0, t0 + period, VCPU_SSHOTTMR_future);
    c.eq("timer_singleshot_future", r, 0);
    c.eq("timer_singleshot_future_fires", fired(r), 1);
    c.eq("timer_singleshot_not_early", LAST.load(Ordering::SeqCst) >= t0 + period, true);
    time::set_singleshot_timer(0, time::system_time() + period, 0);
    c.eq("timer_stop_singleshot", time::stop_singleshot_timer(0), 0);
    events::poll(&[port], time::system_time() + 3 * period);
    c.eq("timer_stopped_singleshot_quiet", events::is_pending(port), false);
    c.eq("timer_spurious_upcall_ports", events::stats(0).spurious.load(Ordering::SeqCst), 0);
    c.verdict();
}
