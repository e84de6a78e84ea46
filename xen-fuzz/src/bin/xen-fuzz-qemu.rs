//! `xen-fuzz-qemu`: the in-guest fuzzer under QEMU (run through
//! `scripts/fuzz.sh guest|diff`; see docs/fuzzing.md).
//!
//! xen-fuzz-qemu guest --seed S --count N [--domains K] [--canaries C] [--secs T] [--xen] [--out DIR] [--minimize-boots B]
//! xen-fuzz-qemu diff --seed S --count N [--out DIR] [--minimize-boots B] [--known FILE]
//! xen-fuzz-qemu replay FILE     re-run a guest or diff record
//! xen-fuzz-qemu show FILE       print a record
//! xen-fuzz-qemu boot core|xen SEED "CALLS [trace=1|2]"  one fuzzer DomU and the canaries
//!
//! Serial logs of every boot go to stdout (the test harness prints them);
//! the summary, `THROUGHPUT` lines and findings go to stderr.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use tests::Hypervisor;
use xen_fuzz::guest::{compare, diff_boot, minimize, parse_ranges, ranges, trace, DivKey, GuestBoot, GuestRecord, GuestResult};

struct Opts {
    seed: u64,
    count: u64,
    domains: u32,
    canaries: u32,
    secs: u64,
    hv: Hypervisor,
    out: PathBuf,
    budget: u32,
    known: PathBuf,
    timeout: Duration,
}

fn usage() -> ExitCode {
    eprintln!("usage: xen-fuzz-qemu guest|diff --seed S --count N [--domains K] [--canaries C] [--secs T] [--xen] [--out DIR] [--minimize-boots B] [--known FILE]");
    eprintln!("       xen-fuzz-qemu replay FILE | show FILE | boot core|xen SEED \"CALLS [trace=1|2]\"");
    ExitCode::from(2)
}

fn parse(args: &[String]) -> Option<Opts> {
    let mut o = Opts {
        seed: 1,
        count: 10_000,
        domains: 1,
        canaries: 2,
        secs: 0,
        hv: Hypervisor::XenCore,
        out: PathBuf::from("target/fuzz/findings"),
        budget: 16,
        known: PathBuf::from("xen-fuzz/diff-known.txt"),
        timeout: Duration::from_secs(600),
    };
    let mut i = 0;
    while i < args.len() {
        let v = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--seed" => o.seed = v.parse().ok()?,
            "--count" => o.count = v.parse().ok()?,
            "--domains" => o.domains = v.parse().ok()?,
            "--canaries" => o.canaries = v.parse().ok()?,
            "--secs" => o.secs = v.parse().ok()?,
            "--out" => o.out = PathBuf::from(v),
            "--minimize-boots" => o.budget = v.parse().ok()?,
            "--known" => o.known = PathBuf::from(v),
            "--timeout" => o.timeout = Duration::from_secs(v.parse().ok()?),
            "--xen" => {
                o.hv = Hypervisor::Xen;
                i += 1;
                continue;
            }
            _ => return None,
        }
        i += 2;
    }
    Some(o)
}

fn hv_name(hv: Hypervisor) -> &'static str {
    match hv {
        Hypervisor::XenCore => "xen-core",
        Hypervisor::Xen => "xen-4.17",
    }
}

fn report(r: &GuestResult, hv: Hypervisor) {
    let calls: u64 = r.done.iter().map(|d| d.1).sum();
    let ns = r.done.iter().map(|d| d.2).max().unwrap_or(0);
    for (seed, c, ns, last) in &r.done {
        eprintln!("fuzz guest: fuzzer seed {seed}: {c} calls (last {last}) in {:.2} s guest time, {:.0} calls/s", *ns as f64 / 1e9, *c as f64 / (*ns as f64 / 1e9).max(1e-9));
    }
    for (seed, last) in &r.died {
        eprintln!("fuzz guest: fuzzer seed {seed} ended without its done line (last progress at call {last}): it crashed on its own calls or was killed");
    }
    eprintln!("fuzz guest: canary passes {}, machine {}, {:.1} s wall", r.canary_passes, r.status, r.elapsed.as_secs_f64());
    eprintln!(
        "THROUGHPUT guest hv={} domains={} calls={} secs={:.2} calls_per_sec={:.0} wall_secs={:.1}",
        hv_name(hv),
        r.done.len() + r.died.len(),
        calls,
        ns as f64 / 1e9,
        calls as f64 / (ns as f64 / 1e9).max(1e-9),
        r.elapsed.as_secs_f64()
    );
}

fn guest(o: &Opts) -> ExitCode {
    let all = if o.count == 0 { String::new() } else { format!("0-{}", o.count - 1) };
    let secs = if o.secs > 0 { format!(" secs={}", o.secs) } else { String::new() };
    let fuzzers: Vec<(u64, String)> = (0..o.domains as u64).map(|k| (o.seed + k, format!("{all}{secs}"))).collect();
    let timeout = if o.secs > 0 { Duration::from_secs(o.secs * 3 + 300) } else { o.timeout };
    let r = GuestBoot { hv: o.hv, fuzzers: fuzzers.clone(), canaries: o.canaries, timeout }.run();
    report(&r, o.hv);
    if r.findings.is_empty() {
        eprintln!("fuzz guest: no finding");
        return ExitCode::SUCCESS;
    }
    for f in &r.findings {
        eprintln!("fuzz guest: FINDING {f}");
    }
    // Which fuzzer, which calls: the oracle's call, or each fuzzer's calls
    // up to where it got (a little past its last progress line).
    let mut candidates: Vec<(u64, u64)> = Vec::new();
    if let Some(at) = r.oracle_at {
        candidates.push(at);
    } else {
        for (seed, _, _, last) in &r.done {
            candidates.push((*seed, *last));
        }
        for (seed, last) in &r.died {
            candidates.push((*seed, last + 1024));
        }
    }
    let _ = std::fs::create_dir_all(&o.out);
    for (seed, last) in candidates {
        let calls: Vec<u64> = (0..=last).collect();
        let boot = |calls: &[u64]| {
            let g = GuestBoot { hv: o.hv, fuzzers: vec![(seed, ranges(calls))], canaries: o.canaries, timeout: o.timeout };
            let r = g.run();
            eprintln!("fuzz guest: minimize: {} calls -> {}", calls.len(), if r.findings.is_empty() { "no finding" } else { "finding" });
            !r.findings.is_empty()
        };
        if !boot(&calls) {
            eprintln!("fuzz guest: seed {seed} calls 0-{last} alone does not reproduce it");
            continue;
        }
        let small = minimize(calls, o.budget, boot);
        let rec = GuestRecord { mode: "guest".into(), hypervisor: hv_name(o.hv).into(), seed, calls: ranges(&small), finding: r.findings.join("; ") };
        let path = o.out.join(format!("guest-{}-seed{seed}.postcard", hv_name(o.hv)));
        let _ = rec.save(&path);
        eprintln!("fuzz guest: minimized to seed {seed} calls={} ({} calls), recorded {}", rec.calls, small.len(), path.display());
        eprintln!("fuzz guest: replay: scripts/fuzz.sh replay {}", path.display());
        break;
    }
    ExitCode::from(1)
}

fn known(path: &Path) -> Vec<DivKey> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let w: Vec<&str> = l.split('\t').collect();
            (w.len() >= 3).then(|| (w[0].to_string(), w[1].to_string(), w[2].to_string()))
        })
        .collect()
}

fn both(seed: u64, calls: &str, timeout: Duration) -> (tests::Outcome, tests::Outcome) {
    std::thread::scope(|s| {
        let a = s.spawn(|| diff_boot(Hypervisor::XenCore, seed, calls, timeout));
        let b = diff_boot(Hypervisor::Xen, seed, calls, timeout);
        (a.join().expect("the xen-core boot thread"), b)
    })
}

fn rate(out: &tests::Outcome) -> (u64, f64) {
    for l in out.guest_lines() {
        if let Some(rest) = l.strip_prefix("fuzz: done ") {
            let f = |k: &str| rest.split_whitespace().find_map(|w| w.strip_prefix(k)).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            return (f("calls="), f("ns=") as f64 / 1e9);
        }
    }
    (0, 0.0)
}

fn diff(o: &Opts) -> ExitCode {
    let all = format!("0-{}", o.count.saturating_sub(1));
    let (ours, xen) = both(o.seed, &all, o.timeout);
    let (a, b) = (trace(&ours), trace(&xen));
    for (hv, out) in [(Hypervisor::XenCore, &ours), (Hypervisor::Xen, &xen)] {
        let (calls, secs) = rate(out);
        eprintln!("THROUGHPUT diff hv={} calls={} secs={:.2} calls_per_sec={:.0} traced=1", hv_name(hv), calls, secs, calls as f64 / secs.max(1e-9));
    }
    if b.is_empty() {
        eprintln!("fuzz diff: Xen 4.17 printed no calls (status {:?}); is .cache/xen/xen.bin there?", xen.status);
        return ExitCode::from(2);
    }
    let divs = compare(&a, &b);
    let known = known(&o.known);
    let mut kinds: BTreeMap<DivKey, (u64, usize)> = BTreeMap::new();
    for (i, k) in &divs {
        kinds.entry(k.clone()).or_insert((*i, 0)).1 += 1;
    }
    eprintln!("fuzz diff: seed {} calls {}: {} calls compared, {} divergences of {} kinds", o.seed, all, a.len().min(b.len()), divs.len(), kinds.len());
    let _ = std::fs::create_dir_all(&o.out);
    let mut new = 0;
    let mut budget = o.budget;
    eprintln!("| call | xen-core | Xen 4.17 | times | first at | minimized | known |");
    eprintln!("|---|---|---|---:|---:|---|---|");
    let mut by_first: Vec<(&DivKey, &(u64, usize))> = kinds.iter().collect();
    by_first.sort_by_key(|(_, (i, _))| *i);
    for (k, (first, times)) in by_first {
        let is_known = known.contains(k) || known.iter().any(|(n, x, y)| n == &k.0 && x == "*" && (y == "*" || y == &k.2));
        let mut min = format!("0-{first}");
        if !is_known && budget > 0 {
            // The call alone first: most divergences are the return value
            // of one call on a fresh domain.
            budget -= 1;
            let (x, y) = both(o.seed, &first.to_string(), o.timeout);
            if compare(&trace(&x), &trace(&y)).iter().any(|(i, kk)| i == first && kk == k) {
                min = first.to_string();
            } else if budget > 0 {
                let calls: Vec<u64> = (0..=*first).collect();
                let take = budget.min(6);
                budget -= take;
                let small = minimize(calls, take, |c| {
                    let (x, y) = both(o.seed, &ranges(c), o.timeout);
                    compare(&trace(&x), &trace(&y)).iter().any(|(i, kk)| i == first && kk == k)
                });
                min = ranges(&small);
            }
        }
        if !is_known {
            new += 1;
            let rec = GuestRecord { mode: "diff".into(), hypervisor: "both".into(), seed: o.seed, calls: min.clone(), finding: format!("{} xen-core {} Xen 4.17 {}", k.0, k.1, k.2) };
            let _ = rec.save(&o.out.join(format!("diff-seed{}-call{first}.postcard", o.seed)));
        }
        eprintln!("| {} | {} | {} | {} | {} | {} | {} |", k.0, k.1, k.2, times, first, min, if is_known { "yes" } else { "NEW" });
    }
    if new > 0 {
        eprintln!("fuzz diff: {new} kinds of divergence not in {} (records in {})", o.known.display(), o.out.display());
        ExitCode::from(1)
    } else {
        eprintln!("fuzz diff: every divergence is a known one ({})", o.known.display());
        ExitCode::SUCCESS
    }
}

fn replay(path: &Path) -> ExitCode {
    let rec = match GuestRecord::load(path) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("fuzz replay: {e}");
            return ExitCode::from(2);
        }
    };
    eprintln!("fuzz replay: {} seed {} calls {} ({} calls): {}", rec.mode, rec.seed, rec.calls, parse_ranges(&rec.calls).len(), rec.finding);
    if rec.mode == "diff" {
        let (x, y) = both(rec.seed, &rec.calls, Duration::from_secs(600));
        let d = compare(&trace(&x), &trace(&y));
        for (i, k) in &d {
            eprintln!("fuzz replay: call {i} {}: xen-core {} Xen 4.17 {}", k.0, k.1, k.2);
        }
        return if d.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) };
    }
    let hv = if rec.hypervisor == "xen-4.17" { Hypervisor::Xen } else { Hypervisor::XenCore };
    let r = GuestBoot { hv, fuzzers: vec![(rec.seed, rec.calls.clone())], canaries: 2, timeout: Duration::from_secs(600) }.run();
    report(&r, hv);
    for f in &r.findings {
        eprintln!("fuzz replay: FINDING {f}");
    }
    if r.findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("guest") => parse(&args[1..]).map_or_else(usage, |o| guest(&o)),
        Some("diff") => parse(&args[1..]).map_or_else(usage, |o| diff(&o)),
        Some("replay") if args.len() > 1 => replay(Path::new(&args[1])),
        // One fuzzer domain and the canaries, the kernel's own words given
        // as they are (e.g. "0-4095 trace=2"): for looking at a death.
        Some("boot") if args.len() > 3 => {
            let hv = if args[1] == "xen" { Hypervisor::Xen } else { Hypervisor::XenCore };
            let r = GuestBoot { hv, fuzzers: vec![(args[2].parse().unwrap_or(1), args[3].clone())], canaries: 2, timeout: Duration::from_secs(600) }.run();
            report(&r, hv);
            ExitCode::SUCCESS
        }
        Some("show") if args.len() > 1 => match GuestRecord::load(Path::new(&args[1])) {
            Ok(r) => {
                println!("mode: {}\nhypervisor: {}\nseed: {}\ncalls: {}\nfinding: {}", r.mode, r.hypervisor, r.seed, r.calls, r.finding);
                println!("boot the calls: workload=replay seed={} calls={} trace=2", r.seed, r.calls);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
        _ => usage(),
    }
}
