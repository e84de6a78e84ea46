//! The seeded generator: a fast, uninstrumented fuzzing loop. Random bytes
//! from the seed become steps through the structure-aware decoder; one
//! machine lives on across steps (so state builds up: pinned tables, grant
//! mappings, bound ports), and is rebuilt when Dom0 shuts down or after
//! `reset_every` steps. The steps since the last rebuild are kept, so a
//! finding is a sequence that replays on a fresh machine.

use std::time::{Duration, Instant};

use crate::gen::{step, Draw};
use crate::machine::{Finding, Machine, Stats};

use crate::step::Step;

#[derive(Clone, Debug)]
pub struct Options {
    pub seed: u64,
    /// Stop after this many steps.
    pub max_steps: Option<u64>,
    /// Stop after this long.
    pub time: Option<Duration>,
    /// Full audits every this many steps (incremental checks run always).
    pub audit_every: u64,
    /// Rebuild the machine after this many steps.
    pub reset_every: u64,
    /// Count mapping and frame-table findings on a machine where some
    /// shared_info frame has been in use as a page table (the open escape of
    /// issue 9: the hypervisor's writes into it are unchecked PTEs) as known, rebuild the machine and go
    /// on, so that a run can look past it until its fix is merged.
    pub known_open: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { seed: 1, max_steps: Some(100_000), time: None, audit_every: 10_000, reset_every: 200_000, known_open: false }
    }
}

/// CPU time this thread has run (from `/proc/thread-self/schedstat`): on a
/// shared machine the wall clock says little about speed per core.
pub fn cpu_time() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok().map(Duration::from_nanos)
}

/// Progress as a run reports it.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    pub elapsed: Duration,
    /// CPU time used (zero when the system does not tell).
    pub cpu: Duration,
    pub stats: Stats,
    pub outcomes: usize,
    pub machines: u64,
    /// Findings of the open escape passed over (`known_open`), and the time
    /// to the first.
    pub known: u64,
    pub first_known: Option<Duration>,
}

pub struct Outcome {
    pub progress: Progress,
    /// The finding and the steps (since the machine was built) that led to it.
    pub finding: Option<(Finding, Vec<Step>)>,
}

/// xorshift64*: the bytes behind the steps.
struct Rng(u64);

impl Rng {
    fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
            c.copy_from_slice(&x[..c.len()]);
        }
    }
}

/// Run until the budget is spent or an oracle fires; `report` is called
/// about once a second.
pub fn run(opts: &Options, mut report: impl FnMut(&Progress)) -> Outcome {
    let start = Instant::now();
    let mut rng = Rng(opts.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut machines = 0u64;
    let mut buf = [0u8; 384];
    let mut next_report = Duration::from_secs(1);
    let mut steps_done = 0u64;
    let cpu0 = cpu_time().unwrap_or_default();
    let snapshot = |m: &Machine, machines: u64| Progress {
        elapsed: start.elapsed(),
        cpu: cpu_time().unwrap_or_default().saturating_sub(cpu0),
        stats: m.stats,
        outcomes: m.outcomes.len(),
        machines,
        known: 0,
        first_known: None,
    };
    let is_known = |f: &Finding, m: &Machine| opts.known_open && matches!(f, Finding::Mapping(_) | Finding::FrameTable(_)) && m.shared_info_misused();
    let mut known = 0u64;
    let mut first_known = None;
    let mut m = Machine::new();
    m.audit_every = opts.audit_every.max(1);
    'machines: loop {
        machines += 1;
        let mut history: Vec<Step> = Vec::new();
        let mut since_reset = 0u64;
        loop {
            if opts.max_steps.is_some_and(|n| steps_done >= n) || opts.time.is_some_and(|t| start.elapsed() >= t) {
                let end = m.final_audit().err().filter(|f| !is_known(f, &m));
                let mut p = snapshot(&m, machines);
                (p.known, p.first_known) = (known, first_known);
                return Outcome { progress: p, finding: end.map(|f| (f, history)) };
            }
            rng.fill(&mut buf);
            history.push(step(&mut Draw::new(&buf)));
            steps_done += 1;
            since_reset += 1;
            let s = history.last().expect("just pushed");
            if let Err(f) = m.step(s) {
                if is_known(&f, &m) {
                    known += 1;
                    first_known.get_or_insert(start.elapsed());
                    m.reset();
                    continue 'machines;
                }
                let mut p = snapshot(&m, machines);
                (p.known, p.first_known) = (known, first_known);
                return Outcome { progress: p, finding: Some((f, history)) };
            }
            if steps_done.is_multiple_of(4096) && start.elapsed() >= next_report {
                next_report += Duration::from_secs(1);
                let mut p = snapshot(&m, machines);
                (p.known, p.first_known) = (known, first_known);
                report(&p);
            }
            if m.halted() || since_reset >= opts.reset_every {
                // A machine that ran an eighth of the audit period since its
                // last audit is audited before it goes (shorter lives are
                // covered by the incremental checks only: a full audit costs
                // as much as a few hundred steps).
                let due = m.since_audit.saturating_mul(8) >= m.audit_every;
                let end = if due { m.audit().err() } else { None };
                if let Some(f) = end.filter(|f| !is_known(f, &m)) {
                    let mut p = snapshot(&m, machines);
                    (p.known, p.first_known) = (known, first_known);
                    return Outcome { progress: p, finding: Some((f, history)) };
                }
                m.reset();
                continue 'machines;
            }
        }
    }
}
