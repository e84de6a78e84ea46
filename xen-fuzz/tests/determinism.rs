//! A seed names one run: the same seed gives the same steps and the same
//! results, so a finding's sequence replays.

use xen_fuzz::run::{run, Options};

#[test]
fn the_same_seed_gives_the_same_run() {
    let o = Options { seed: 5, max_steps: Some(3000), known_open: true, audit_every: 500, ..Options::default() };
    let a = run(&o, |_| {});
    let b = run(&o, |_| {});
    let (sa, sb) = (a.progress.stats, b.progress.stats);
    assert_eq!((sa.steps, sa.calls, sa.ok, sa.rounds, sa.faults), (sb.steps, sb.calls, sb.ok, sb.rounds, sb.faults));
    assert_eq!(a.progress.outcomes, b.progress.outcomes);
    assert_eq!(a.progress.known, b.progress.known);
    // It did something: calls succeeded and failed in many ways.
    assert!(sa.ok > 100 && a.progress.outcomes > 100, "{sa:?} {}", a.progress.outcomes);
}

#[test]
fn the_decoder_reads_the_same_steps_from_the_same_bytes() {
    let bytes: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let a = xen_fuzz::gen::steps(&bytes, 64);
    assert_eq!(a, xen_fuzz::gen::steps(&bytes, 64));
    assert!(a.len() > 4);
}
