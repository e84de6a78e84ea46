//! Guest time from `vcpu_time_info` and the timer hypercalls.
//!
//! Xen publishes, per vCPU, a TSC stamp and the system time (ns since boot)
//! at that stamp, with the scale from TSC ticks to ns (`xen.h`):
//!
//! ```text
//! system_time + ((((tsc - tsc_timestamp) << tsc_shift) * tsc_to_system_mul) >> 32)
//! ```
//!
//! (a negative shift shifts right). While Xen updates the record its
//! `version` is odd; a reader retries until it saw the same even version
//! before and after reading (Linux's `pvclock_clocksource_read`). The
//! wallclock in shared_info (`wc_sec`, `wc_nsec`: the time of day at system
//! time 0) follows the same protocol with `wc_version`.
//!
//! Timers: `set_timer_op` arms this vCPU's one-shot timer at an absolute
//! system time (0 cancels it); the `VCPUOP_*_timer` calls manage the
//! single-shot and periodic timers of a vCPU. All raise `VIRQ_TIMER` on that
//! vCPU. A PV vCPU starts with a 100 Hz periodic timer (Xen's
//! `pv_vcpu_initialise`), which Linux stops first thing.

use core::ptr;
use core::sync::atomic::{fence, AtomicU32, Ordering};

use hypercall_abi::shared_info::VcpuTimeInfo;
use hypercall_abi::vcpu::{
    VcpuRunstateInfo, VcpuSetPeriodicTimer, VcpuSetSingleshotTimer, VCPUOP_get_runstate_info,
    VCPUOP_set_periodic_timer, VCPUOP_set_singleshot_timer, VCPUOP_stop_periodic_timer,
    VCPUOP_stop_singleshot_timer,
};
use hypercall_abi::{guest, nr, Errno};

use crate::events;
use crate::mm::check;
use crate::tsc::rdtsc_fenced;

pub const NSEC_PER_MSEC: u64 = 1_000_000;
pub const NSEC_PER_SEC: u64 = 1_000_000_000;

/// Turns a TSC delta into ns with Xen's scale (`pvclock_scale_delta`):
/// shift first, then multiply by a 32.32 fixed-point factor.
pub fn scale_delta(delta: u64, mul_frac: u32, shift: i8) -> u64 {
    let d = if shift < 0 { delta >> (-(shift as i32)) as u32 } else { delta << shift as u32 };
    ((d as u128 * mul_frac as u128) >> 32) as u64
}

/// System time (ns) that `t` gives for a TSC value `tsc`.
pub fn time_at(t: &VcpuTimeInfo, tsc: u64) -> u64 {
    t.system_time.wrapping_add(scale_delta(tsc.wrapping_sub(t.tsc_timestamp), t.tsc_to_system_mul, t.tsc_shift))
}

fn version_of(p: *mut VcpuTimeInfo) -> &'static AtomicU32 {
    // SAFETY: `version` is an aligned u32 of the mapped shared_info page,
    // which stays mapped; Xen writes it, we only read it, atomically.
    unsafe { AtomicU32::from_ptr(&raw mut (*p).version) }
}

/// A consistent copy of `vcpu`'s `vcpu_time_info`, and the TSC read inside
/// the same version window.
pub fn snapshot(vcpu: usize) -> (VcpuTimeInfo, u64) {
    // SAFETY: only the address of a field of the mapped page is computed.
    let p = unsafe { &raw mut (*events::vcpu_info(vcpu)).time };
    loop {
        let v1 = version_of(p).load(Ordering::Acquire);
        if v1 & 1 != 0 {
            core::hint::spin_loop();
            continue;
        }
        // SAFETY: a plain read of the mapped record; a torn read is thrown
        // away by the version check below.
        let t = unsafe { ptr::read_volatile(p) };
        let tsc = rdtsc_fenced();
        fence(Ordering::Acquire);
        if version_of(p).load(Ordering::Acquire) == v1 {
            return (t, tsc);
        }
    }
}

/// The current system time (ns since the hypervisor booted) as this vCPU's
/// `vcpu_time_info` gives it.
pub fn system_time() -> u64 {
    let (t, tsc) = snapshot(events::current_vcpu());
    time_at(&t, tsc)
}

/// The time of day at system time 0, `(seconds since 1970, ns)`, from
/// shared_info's wallclock.
pub fn wallclock() -> (u64, u32) {
    let s = events::shared_info();
    // SAFETY: an aligned u32 of the mapped page, read atomically.
    let ver = unsafe { AtomicU32::from_ptr(&raw mut (*s).wc_version) };
    loop {
        let v1 = ver.load(Ordering::Acquire);
        if v1 & 1 != 0 {
            core::hint::spin_loop();
            continue;
        }
        // SAFETY: plain reads of the mapped page, checked by the version.
        let (sec, nsec, hi) = unsafe {
            (
                ptr::read_volatile(&raw const (*s).wc_sec),
                ptr::read_volatile(&raw const (*s).wc_nsec),
                ptr::read_volatile(&raw const (*s).wc_sec_hi),
            )
        };
        fence(Ordering::Acquire);
        if ver.load(Ordering::Acquire) == v1 {
            return ((hi as u64) << 32 | sec as u64, nsec);
        }
    }
}

/// `set_timer_op(timeout)`: this vCPU's one-shot timer fires `VIRQ_TIMER` at
/// absolute system time `timeout` ns; 0 cancels it. A time in the past fires
/// at once.
pub fn set_timer_op(timeout: u64) -> i64 {
    // SAFETY: no memory argument; a timer only raises an event.
    unsafe { guest::hypercall1(nr::SET_TIMER_OP, timeout) }
}

fn vcpu_op<T>(cmd: u32, vcpu: usize, arg: Option<&mut T>) -> i64 {
    let arg = arg.map_or(0, |a| a as *mut T as u64);
    // SAFETY: each caller passes the structure its command uses (or none).
    unsafe { guest::hypercall3(nr::VCPU_OP, cmd as u64, vcpu as u64, arg) }
}

/// `VCPUOP_set_periodic_timer`: `VIRQ_TIMER` every `period_ns` (Xen wants at
/// least 1 ms).
pub fn set_periodic_timer(vcpu: usize, period_ns: u64) -> i64 {
    vcpu_op(VCPUOP_set_periodic_timer, vcpu, Some(&mut VcpuSetPeriodicTimer { period_ns }))
}

/// `VCPUOP_stop_periodic_timer`.
pub fn stop_periodic_timer(vcpu: usize) -> i64 {
    vcpu_op::<()>(VCPUOP_stop_periodic_timer, vcpu, None)
}

/// `VCPUOP_set_singleshot_timer` (only for the calling vCPU).
pub fn set_singleshot_timer(vcpu: usize, timeout_abs_ns: u64, flags: u32) -> i64 {
    let mut t = VcpuSetSingleshotTimer { timeout_abs_ns, flags, _pad: 0 };
    vcpu_op(VCPUOP_set_singleshot_timer, vcpu, Some(&mut t))
}

/// `VCPUOP_stop_singleshot_timer`.
pub fn stop_singleshot_timer(vcpu: usize) -> i64 {
    vcpu_op::<()>(VCPUOP_stop_singleshot_timer, vcpu, None)
}

/// `VCPUOP_get_runstate_info`: time spent running, runnable, blocked and
/// offline.
pub fn runstate(vcpu: usize) -> Result<VcpuRunstateInfo, Errno> {
    let mut r = VcpuRunstateInfo::default();
    check(vcpu_op(VCPUOP_get_runstate_info, vcpu, Some(&mut r)))?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_matches_xen_formula() {
        // 2 GHz TSC: 0.5 ns a tick = mul 0x8000_0000, shift 0.
        assert_eq!(scale_delta(2_000_000, 0x8000_0000, 0), 1_000_000);
        // The same with the delta halved first and a factor just under 1.
        assert_eq!(scale_delta(2_000_000, 0xffff_ffff, -1), 999_999);
        // 500 MHz: 2 ns a tick = shift 1, mul 1.0 (just under).
        assert_eq!(scale_delta(1000, 0xffff_ffff, 1), 1999);
        // No overflow on large deltas.
        assert_eq!(scale_delta(u64::MAX >> 2, 0x8000_0000, 1), u64::MAX >> 2);
    }

    #[test]
    fn time_at_adds_scaled_delta_to_stamp() {
        let t = VcpuTimeInfo {
            version: 2,
            tsc_timestamp: 1000,
            system_time: 5_000,
            tsc_to_system_mul: 0x8000_0000,
            tsc_shift: 0,
            ..Default::default()
        };
        assert_eq!(time_at(&t, 3000), 6_000);
        assert_eq!(time_at(&t, 1000), 5_000);
    }
}
