//! Guest time: system time (ns since boot), each vCPU's `vcpu_time_info`
//! (so guests compute time from their own TSC without a hypercall), the
//! wallclock in shared_info, and per-vCPU one-shot and periodic timers that
//! raise `VIRQ_TIMER`.

use crate::domain::DomId;
use crate::platform::Platform;
use crate::vcpu::RunState;
use crate::xen::Xen;
use hypercall_abi::evtchn::VIRQ_TIMER;


/// TSC ticks to nanoseconds as Xen's `set_time_scale` expresses it:
/// `ns = ((ticks << shift) * mul) >> 32` (a right shift when negative).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeScale {
    pub mul: u32,
    pub shift: i8,
}

impl TimeScale {
    pub fn for_khz(khz: u64) -> TimeScale {
        let mut tps = khz.max(1) * 1000;
        let mut shift: i8 = 0;
        while tps > 2_000_000_000 {
            tps >>= 1;
            shift -= 1;
        }
        while tps <= 1_000_000_000 {
            tps <<= 1;
            shift += 1;
        }
        TimeScale { mul: ((1_000_000_000u128 << 32) / tps as u128) as u32, shift }
    }

    pub fn apply(&self, ticks: u64) -> u64 {
        let t = if self.shift < 0 { ticks >> (-self.shift) } else { ticks << self.shift };
        ((t as u128 * self.mul as u128) >> 32) as u64
    }
}

impl<P: Platform> Xen<P> {
    /// Publish the time to a vCPU's `vcpu_info.time` with the version
    /// protocol: odd while the fields change, even when consistent.
    pub fn update_vcpu_time(&self, d: DomId, v: usize) {
        let Some(vi) = self.vcpu_info_of(d, v) else { return };
        let scale = self.time_scale;
        let (tsc, now) = self.platform.tsc_and_now();
        vi.publish_time(tsc, now, scale.mul, scale.shift as i8);
    }

    /// Publish the wallclock at system time zero (`wc_sec`, `wc_nsec`).
    pub fn update_wallclock(&self, d: DomId) {
        let Some(dd) = self.domains.get(&d) else { return };
        let (sec, nsec) = self.wallclock.unwrap_or_else(|| self.platform.wallclock_at_boot());
        dd.shared_info.shared_info(&self.platform).publish_wallclock(sec, nsec);
    }

    /// Arm (or with 0, cancel) vCPU `v`'s one-shot timer. A deadline already
    /// past fires at once, as on Xen.
    pub fn set_vcpu_timer(&mut self, d: DomId, v: usize, deadline: u64) {
        let now = self.platform.now_ns();
        let Some(vc) = self.domains.get_mut(&d).and_then(|dd| dd.vcpus.get_mut(v)) else { return };
        if deadline == 0 {
            vc.timer_deadline = None;
        } else if deadline <= now {
            vc.timer_deadline = None;
            self.send_virq(d, v, VIRQ_TIMER);
        } else {
            vc.timer_deadline = Some(deadline);
        }
    }

    /// Fire what is due: timers, periodic timers, poll timeouts. Called on
    /// every timer interrupt.
    pub fn run_timers(&mut self) {
        let now = self.platform.now_ns();
        let current = self.current;
        let mut fire = alloc::vec::Vec::new();
        let mut poll_expired = alloc::vec::Vec::new();
        for d in self.domains.values_mut() {
            if d.shutdown.is_some() {
                continue;
            }
            for (i, vc) in d.vcpus.iter_mut().enumerate() {
                if vc.timer_deadline.is_some_and(|t| t <= now) {
                    vc.timer_deadline = None;
                    fire.push((d.id, i));
                }
                // The periodic timer runs only while its vCPU does (Xen stops
                // it when the vCPU is descheduled); a tick that fell due
                // meanwhile is delivered once when it runs again.
                let running = current == Some((d.id, i));
                if let Some((period, next)) = vc.periodic {
                    if next <= now && running {
                        // As Xen's vcpu_periodic_timer_work: the next tick is
                        // a period after this one is delivered (never a
                        // burst of missed ones, never two closer than that).
                        vc.periodic = Some((period, now.saturating_add(period)));
                        fire.push((d.id, i));
                    }
                }
                if vc.state == RunState::Blocked && vc.poll_deadline.is_some_and(|t| t <= now) {
                    poll_expired.push((d.id, i));
                }
            }
        }
        for (d, v) in fire {
            self.send_virq(d, v, VIRQ_TIMER);
        }
        for (d, v) in poll_expired {
            self.vcpu_wake(d, v);
        }
    }

    /// The catch-up tick of a periodic timer that fell due while its vCPU
    /// was not running, delivered as it is scheduled in.
    pub fn periodic_catch_up(&mut self, d: DomId, v: usize) {
        let now = self.platform.now_ns();
        let Some(vc) = self.domains.get_mut(&d).and_then(|dd| dd.vcpus.get_mut(v)) else { return };
        if let Some((period, next)) = vc.periodic {
            if next <= now {
                vc.periodic = Some((period, now.saturating_add(period)));
                self.send_virq(d, v, VIRQ_TIMER);
            }
        }
    }

    /// The earliest pending deadline, for a tickless timer (not used by the
    /// periodic one, but reported by `xl`-style diagnostics).
    pub fn next_deadline(&self) -> Option<u64> {
        self.domains
            .values()
            .flat_map(|d| d.vcpus.iter())
            .flat_map(|vc| [vc.timer_deadline, vc.periodic.map(|p| p.1), vc.poll_deadline])
            .flatten()
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_scale_converts_ticks_to_nanoseconds() {
        for khz in [1_000_000u64, 2_598_195, 3_000_000, 100_000, 10_000_000] {
            let s = TimeScale::for_khz(khz);
            let ticks = khz * 1000; // one second
            let ns = s.apply(ticks);
            assert!((999_000_000..=1_001_000_000).contains(&ns), "{khz} kHz: {ns} ns ({s:?})");
        }
    }
}
