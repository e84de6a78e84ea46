//! A credit scheduler for all vCPUs on one physical CPU, after Xen's
//! `credit` scheduler in miniature.
//!
//! Every accounting period (30 ms) each domain with work gets a share of the
//! period in proportion to its weight, split among its active vCPUs; a
//! running vCPU burns credit as it runs. vCPUs with credit left (UNDER) run
//! before those without (OVER); within a class they take turns, a time
//! slice (10 ms) at a time. A capped domain (cap = percent of the CPU) that
//! has used its credit is parked until the next period. Nothing runnable:
//! the CPU idles until an interrupt.

use crate::domain::DomId;
use crate::platform::Platform;
use crate::regs::GuestRegs;
use crate::vcpu::RunState;
use crate::xen::{Next, Xen};

pub const TIMESLICE_NS: u64 = 10_000_000;
pub const ACCOUNT_PERIOD_NS: u64 = 30_000_000;

/// Scheduler bookkeeping kept in the hypervisor state.
#[derive(Clone, Copy, Debug, Default)]
pub struct SchedState {
    pub last_account: u64,
    pub slice_start: u64,
    pub last_charge: u64,
}

impl<P: Platform> Xen<P> {
    /// Charge the running vCPU for the time since it was last charged.
    pub(crate) fn charge_current(&mut self) {
        let now = self.platform.now_ns();
        let used = now.saturating_sub(self.sched.last_charge) as i64;
        self.sched.last_charge = now;
        if let Some((d, v)) = self.current {
            if let Some(vc) = self.domains.get_mut(&d).and_then(|dd| dd.vcpus.get_mut(v)) {
                vc.credit -= used;
            }
        }
    }

    /// Hand out one period's worth of credit by weight.
    fn account(&mut self) {
        let period = ACCOUNT_PERIOD_NS as i64;
        let active = |d: &crate::domain::Domain| d.vcpus.iter().filter(|v| v.state == RunState::Runnable).count();
        let total_weight: u64 = self.domains.values().filter(|d| active(d) > 0).map(|d| d.weight.max(1) as u64).sum();
        if total_weight == 0 {
            return;
        }
        for d in self.domains.values_mut() {
            let n = active(d) as i64;
            if n == 0 {
                continue;
            }
            let mut share = period * d.weight.max(1) as i64 / total_weight as i64;
            if d.cap > 0 {
                share = share.min(period * d.cap as i64 / 100);
            }
            for vc in d.vcpus.iter_mut().filter(|v| v.state == RunState::Runnable) {
                // Credit does not pile up beyond a period either way, so a
                // vCPU that slept cannot come back and hog the CPU.
                vc.credit = (vc.credit + share / n).clamp(-period, period);
            }
        }
    }

    /// May this vCPU run now? (A capped domain out of credit is parked.)
    pub(crate) fn eligible(&self, d: DomId, v: usize) -> bool {
        let Some(dd) = self.domains.get(&d) else { return false };
        let Some(vc) = dd.vcpus.get(v) else { return false };
        vc.state == RunState::Runnable && dd.pause_count == 0 && !(dd.cap > 0 && vc.credit < 0)
    }

    /// The next vCPU to run after `after`: UNDER before OVER, round-robin
    /// within the class.
    pub(crate) fn next_runnable(&self, after: Option<(DomId, usize)>) -> Option<(DomId, usize)> {
        let mut all = alloc::vec::Vec::new();
        for d in self.domains.values() {
            for v in 0..d.vcpus.len() {
                if self.eligible(d.id, v) {
                    all.push(((d.id, v), d.vcpus[v].credit > 0));
                }
            }
        }
        let under = all.iter().any(|(_, u)| *u);
        let class: alloc::vec::Vec<(DomId, usize)> = all.into_iter().filter(|(_, u)| *u == under).map(|(x, _)| x).collect();
        let start = after.and_then(|a| class.iter().position(|x| *x > a)).unwrap_or(0);
        class.get(start).or(class.first()).copied()
    }

    /// The periodic timer interrupt: fire timers, do the accounting, and
    /// preempt the running vCPU when its slice is over or an UNDER vCPU waits
    /// behind an OVER one.
    pub fn timer_interrupt(&mut self, frame: &mut GuestRegs) -> Next {
        self.run_timers();
        if self.platform.console_input_ready() {
            self.send_global_virq(hypercall_abi::evtchn::VIRQ_CONSOLE);
        }
        self.charge_current();
        let now = self.platform.now_ns();
        if now.saturating_sub(self.sched.last_account) >= ACCOUNT_PERIOD_NS {
            self.sched.last_account = now;
            self.account();
        }
        if let Some((d, v)) = self.current {
            self.update_vcpu_time(d, v);
            let mine = self.domains[&d].vcpus[v].credit;
            let slice_over = now.saturating_sub(self.sched.slice_start) >= TIMESLICE_NS;
            let parked = !self.eligible(d, v);
            if let Some(next) = self.next_runnable(Some((d, v))) {
                let theirs = self.domains[&next.0].vcpus[next.1].credit;
                if next != (d, v) && (slice_over || parked || (mine <= 0 && theirs > 0)) {
                    self.yield_pending = true;
                }
            }
        }
        self.schedule(frame)
    }
}
