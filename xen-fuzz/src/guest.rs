//! The in-guest modes: the fuzzer PV kernel (`pv-guest-kernel`,
//! `workload=fuzz`) booted under QEMU through the test harness.
//!
//! - **guest**: K fuzzer DomUs and two canary DomUs created by Dom0's `xl`
//!   on xen-core (or Xen 4.17 with `--xen`). A finding is a hypervisor
//!   fault or hang, a canary's `DAMAGE` line, or a fuzzer's `ORACLE` line.
//! - **diff**: the same seeded sequence as Dom0 on xen-core and on Xen
//!   4.17, every call's return value and effect digest compared.
//!
//! Call `i` of a seed is the same whichever calls ran before it, so a
//! finding is (seed, list of call indices), recorded with postcard
//! ([`GuestRecord`]) and shrunk by replaying subsets (`workload=replay`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use ::tests::{guest_archive, image, Boot, Hypervisor, Outcome, Status};

/// A guest-mode or differential finding: replays with
/// `workload=replay seed=<seed> calls=<calls>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestRecord {
    /// `guest` (a DomU beside canaries) or `diff` (as Dom0 on both).
    pub mode: String,
    pub hypervisor: String,
    pub seed: u64,
    /// Call indices, `0-99,150`.
    pub calls: String,
    pub finding: String,
}

impl GuestRecord {
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, postcard::to_stdvec(self).unwrap_or_default())
    }
    pub fn load(path: &Path) -> Result<GuestRecord, String> {
        let b = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        postcard::from_bytes(&b).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// Call indices as the kernel's `calls=` takes them.
pub fn ranges(calls: &[u64]) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    while i < calls.len() {
        let start = calls[i];
        let mut end = start;
        while i + 1 < calls.len() && calls[i + 1] == end + 1 {
            i += 1;
            end = calls[i];
        }
        out.push(if start == end { start.to_string() } else { format!("{start}-{end}") });
        i += 1;
    }
    out.join(",")
}

pub fn parse_ranges(s: &str) -> Vec<u64> {
    let mut v = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.parse::<u64>(), b.parse::<u64>()) {
            v.extend(a..=b);
        }
    }
    v
}

/// One guest-mode boot: `fuzzers` (seed, calls) DomUs and `canaries`.
pub struct GuestBoot {
    pub hv: Hypervisor,
    pub fuzzers: Vec<(u64, String)>,
    pub canaries: u32,
    pub timeout: Duration,
}

/// What a guest-mode boot showed.
#[derive(Debug, Default)]
pub struct GuestResult {
    /// Per fuzzer: (seed, calls done, ns, last call index).
    pub done: Vec<(u64, u64, u64, u64)>,
    /// Fuzzers with no `done` line: (seed, last call index seen).
    pub died: Vec<(u64, u64)>,
    pub findings: Vec<String>,
    /// (seed, call index) of an oracle finding.
    pub oracle_at: Option<(u64, u64)>,
    pub canary_passes: u64,
    pub status: String,
    pub elapsed: Duration,
}

impl GuestBoot {
    fn cfg(name: &str, memory: u32, vcpus: u32, extra: &str) -> Vec<u8> {
        format!("name = \"{name}\"\nkernel = \"pv-guest-kernel\"\nmemory = {memory}\nvcpus = {vcpus}\nextra = \"{extra}\"\n").into_bytes()
    }

    pub fn run(&self) -> GuestResult {
        let kernel = std::fs::read(image("pv-guest-kernel")).expect("target/images/pv-guest-kernel (scripts/build.sh)");
        let mut files: Vec<(String, Vec<u8>)> = vec![("pv-guest-kernel".into(), kernel)];
        let mut xl = Vec::new();
        for c in 1..=self.canaries {
            files.push((format!("canary{c}.cfg"), Self::cfg(&format!("canary{c}"), 16, 1, "workload=canary")));
            xl.push(format!("create canary{c}.cfg"));
        }
        let mut names = Vec::new();
        for (k, (seed, calls)) in self.fuzzers.iter().enumerate() {
            let name = format!("fuzz{}", k + 1);
            files.push((format!("{name}.cfg"), Self::cfg(&name, 32, 2, &format!("workload=replay seed={seed} calls={calls}"))));
            xl.push(format!("create {name}.cfg"));
            names.push(name);
        }
        // Canaries check once more after the fuzzers end, then all stop.
        xl.push(format!("wait {}", names.join(" ")));
        xl.push("sleep 4".into());
        xl.push("list".into());
        xl.push("poweroff".into());
        let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, d)| (n.as_str(), d.clone())).collect();
        let archive = guest_archive("fuzz-guest", &refs);
        let out = Boot::new(self.hv)
            .dom0_image("dom0")
            .module(&archive, "")
            .dom0_cmdline(&format!("xl=\"{}\"", xl.join("; ")))
            .timeout(self.timeout)
            .run();
        let _ = std::fs::remove_file(&archive);
        self.judge(&out)
    }

    fn judge(&self, out: &Outcome) -> GuestResult {
        let mut r = GuestResult { status: format!("{:?}", out.status), elapsed: out.elapsed, ..Default::default() };
        match out.status {
            Status::PoweredOff => {}
            Status::Timeout => r.findings.push("the machine hung (no poweroff before the timeout)".into()),
            s => r.findings.push(format!("the machine ended with {s:?}, not a poweroff")),
        }
        for l in out.hypervisor_lines() {
            if l.contains("Panic on CPU") || l.contains("FATAL") || l.contains("hypervisor fault") {
                r.findings.push(format!("hypervisor: {l}"));
            }
        }
        let mut last = vec![0u64; self.fuzzers.len()];
        let mut done = vec![None; self.fuzzers.len()];
        // Canary passes seen after the last fuzzer line: the memory was
        // checked once more after every call was made.
        let mut passes_after = 0u64;
        for l in out.guest_lines() {
            // A hypervisor log line may share the serial line with a guest's.
            let Some(at) = l.find("[fuzz").or_else(|| l.find("[canary")) else { continue };
            let Some((name, msg)) = l[at + 1..].split_once("] ") else { continue };
            if let Some(k) = name.strip_prefix("fuzz").and_then(|k| k.parse::<usize>().ok()).and_then(|k| k.checked_sub(1)) {
                let Some(&(seed, _)) = self.fuzzers.get(k) else { continue };
                let field = |key: &str| msg.split_whitespace().find_map(|w| w.strip_prefix(key)).and_then(|v| v.parse::<u64>().ok());
                passes_after = 0;
                if msg.starts_with("fuzz: progress") {
                    last[k] = field("last=").unwrap_or(last[k]);
                } else if msg.starts_with("fuzz: done") {
                    done[k] = Some((seed, field("calls=").unwrap_or(0), field("ns=").unwrap_or(0), field("last=").unwrap_or(0)));
                } else if msg.starts_with("fuzz: ORACLE") {
                    let at = field("call=").unwrap_or(0);
                    r.oracle_at.get_or_insert((seed, at));
                    r.findings.push(format!("{name}: {msg}"));
                }
            } else if name.starts_with("canary") {
                if msg.contains("DAMAGE") {
                    r.findings.push(format!("{name}: {msg}"));
                } else if msg.starts_with("canary: pass") {
                    r.canary_passes += 1;
                    passes_after += 1;
                }
            }
        }
        for (k, d) in done.into_iter().enumerate() {
            match d {
                Some(d) => r.done.push(d),
                None => r.died.push((self.fuzzers[k].0, last[k])),
            }
        }
        if self.canaries > 0 && passes_after == 0 && out.status == Status::PoweredOff {
            r.findings.push("no canary checked its memory after the fuzzers ended".into());
        }
        r
    }
}

/// Shrinks `calls` to a smaller list that still satisfies `fails`
/// (delta debugging over chunks), within `budget` boots.
pub fn minimize(calls: Vec<u64>, budget: u32, mut fails: impl FnMut(&[u64]) -> bool) -> Vec<u64> {
    let mut cur = calls;
    let mut left = budget;
    let mut chunks = 2usize;
    while cur.len() > 1 && left > 0 {
        let size = cur.len().div_ceil(chunks);
        let mut shrunk = false;
        for c in 0..chunks {
            if left == 0 {
                break;
            }
            let lo = c * size;
            if lo >= cur.len() {
                break;
            }
            let hi = (lo + size).min(cur.len());
            // Try without chunk c (always keeping the last call: the one
            // that shows the finding).
            let cand: Vec<u64> = cur[..lo].iter().chain(cur[hi..].iter()).copied().collect();
            let cand = if cand.last() != cur.last() { continue } else { cand };
            left -= 1;
            if !cand.is_empty() && fails(&cand) {
                cur = cand;
                chunks = (chunks - 1).max(2);
                shrunk = true;
                break;
            }
        }
        if !shrunk {
            if chunks >= cur.len() {
                break;
            }
            chunks = (chunks * 2).min(cur.len());
        }
    }
    cur
}

/// A differential run's per-call lines: index -> (name, rc, effect).
pub fn trace(out: &Outcome) -> BTreeMap<u64, (String, i64, String)> {
    let mut m = BTreeMap::new();
    for l in out.guest_lines() {
        let mut w = l.split_whitespace();
        if w.next() != Some("fz") {
            continue;
        }
        let (Some(i), Some(name), Some(rc), Some(fx)) = (w.next(), w.next(), w.next(), w.next()) else { continue };
        let (Ok(i), Some(Ok(rc))) = (i.parse::<u64>(), rc.strip_prefix("rc=").map(str::parse::<i64>)) else { continue };
        m.insert(i, (name.to_string(), rc, fx.trim_start_matches("fx=").to_string()));
    }
    m
}

/// Boots the fuzzer as Dom0 with `calls` of `seed`, tracing every call.
pub fn diff_boot(hv: Hypervisor, seed: u64, calls: &str, timeout: Duration) -> Outcome {
    Boot::new(hv)
        .dom0_image("pv-guest-kernel")
        .dom0_cmdline(&format!("workload=replay seed={seed} calls={calls} diff=1 trace=1"))
        .timeout(timeout)
        .run()
}

/// One kind of divergence: the call's name and both answers (`effect` when
/// the return values agree and the page-table effects differ).
pub type DivKey = (String, String, String);

/// Compares two traces: the divergences in call order, by kind. An effect
/// divergence is reported only where the effects agreed before the call
/// (after one, every later digest differs).
pub fn compare(ours: &BTreeMap<u64, (String, i64, String)>, xen: &BTreeMap<u64, (String, i64, String)>) -> Vec<(u64, DivKey)> {
    let mut v = Vec::new();
    let mut in_sync = true;
    for (i, (name, rc, fx)) in ours {
        let Some((_, xrc, xfx)) = xen.get(i) else {
            v.push((*i, (name.clone(), rc.to_string(), "<no call: Xen 4.17 stopped before>".into())));
            break;
        };
        if rc != xrc {
            v.push((*i, (name.clone(), rc.to_string(), xrc.to_string())));
        } else if fx != xfx && in_sync {
            v.push((*i, (name.clone(), "effect".into(), "effect".into())));
        }
        in_sync = fx == xfx;
    }
    if let Some((i, (name, ..))) = xen.iter().find(|(i, _)| !ours.contains_key(i)) {
        v.push((*i, (name.clone(), "<no call: xen-core stopped before>".into(), "".into())));
    }
    v
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn call_lists_round_trip_through_ranges() {
        let calls = [0, 1, 2, 3, 7, 9, 10, 11, 500];
        assert_eq!(ranges(&calls), "0-3,7,9-11,500");
        assert_eq!(parse_ranges(&ranges(&calls)), calls);
        assert_eq!(parse_ranges("5"), [5]);
    }

    #[test]
    fn the_minimizer_keeps_the_calls_a_finding_needs() {
        // The finding needs calls 13 and 77 before the last one (99).
        let needs = |c: &[u64]| c.contains(&13) && c.contains(&77) && c.last() == Some(&99);
        let small = minimize((0..100).collect(), 200, needs);
        assert_eq!(small, [13, 77, 99]);
        // Out of budget: still a list that shows the finding.
        let partial = minimize((0..100).collect(), 3, needs);
        assert!(needs(&partial) && partial.len() < 100);
    }

    #[test]
    fn an_effect_diverges_once_until_the_traces_agree_again() {
        let t = |v: &[(u64, i64, &str)]| v.iter().map(|&(i, rc, fx)| (i, ("c".to_string(), rc, fx.to_string()))).collect::<BTreeMap<_, _>>();
        let ours = t(&[(0, 0, "a"), (1, 0, "b"), (2, 0, "c"), (3, -22, "c"), (4, 0, "d")]);
        let xen = t(&[(0, 0, "a"), (1, 0, "x"), (2, 0, "y"), (3, -14, "c"), (4, 0, "e")]);
        let d = compare(&ours, &xen);
        let at: Vec<u64> = d.iter().map(|(i, _)| *i).collect();
        assert_eq!(at, [1, 3, 4], "1: first effect; 2: a consequence; 3: a return value; 4: effects agreed at 3");
        assert_eq!(d[1].1, ("c".to_string(), "-22".to_string(), "-14".to_string()));
    }
}
