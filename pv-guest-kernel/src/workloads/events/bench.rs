//! `workload=bench-events`: the cost of an event, in TSC ticks (under QEMU
//! with `-icount shift=0`, instructions: the same on every run).
//!
//! - `evtchn_send_upcall`: `EVTCHNOP_send` on an IPI port of our own vCPU
//!   with events unmasked, so each iteration is the send, the upcall Xen
//!   builds on its way back, the scan and handler, and the `iret` hypercall.
//! - `vcpu_pingpong` (only with a second vCPU: `dom0_max_vcpus=2` on the
//!   hypervisor's command line): one round trip of an event from vCPU 0 to
//!   vCPU 1 and back, each side blocked until its event comes (two sends,
//!   two wake-ups, two upcalls, two blocks, the scheduler twice). Rounds:
//!   `pingpong_iters=`, default a tenth of `iters=`.

use core::sync::atomic::{AtomicU64, Ordering};

use hypercall_abi::EvtchnPort;
use pv_rt::events::{self, smp};
use pv_rt::tsc::rdtsc_fenced;
use pv_rt::{cmdline, println};

use super::{pingpong, setup};

const DEFAULT_ITERS: u64 = 100_000;
const WARMUP: u64 = 16;

static HANDLED: AtomicU64 = AtomicU64::new(0);

fn handler(_port: EvtchnPort) {
    HANDLED.fetch_add(1, Ordering::Relaxed);
}

fn bench_line(name: &str, iters: u64, total: u64) {
    let per_call = total.checked_div(iters).unwrap_or(0);
    println!("bench {} iterations={} total_tsc={} per_call_tsc={}", name, iters, total, per_call);
}

pub fn run(cmd: &str) {
    let iters = cmdline::get(cmd, "iters").and_then(cmdline::parse_u64).unwrap_or(DEFAULT_ITERS);
    let pp_iters = cmdline::get(cmd, "pingpong_iters").and_then(cmdline::parse_u64).unwrap_or(iters / 10).max(1);
    let (mm, s) = setup(true);
    if s.register != 0 {
        println!("bench-events: registering the event callback failed: {}", s.register);
        return;
    }
    let port = match events::bind_ipi(0) {
        Ok(p) => p,
        Err(e) => {
            println!("bench-events: bind_ipi failed: {}", e);
            return;
        }
    };
    events::set_handler(port, 0, handler);

    // The loop runs with events unmasked: it is our code only (the send
    // wrapper and the TSC reads), which keeps no data below the stack
    // pointer for the upcall frame to overwrite.
    events::enable();
    for _ in 0..WARMUP {
        let _ = events::send(port);
    }
    let start = rdtsc_fenced();
    for _ in 0..iters {
        let _ = events::send(port);
    }
    let total = rdtsc_fenced() - start;
    events::disable();
    let handled = HANDLED.load(Ordering::Relaxed);
    if handled != iters + WARMUP {
        println!("bench-events: {} upcalls handled for {} sends", handled, iters + WARMUP);
    }
    bench_line("evtchn_send_upcall", iters, total);

    // No line at all for vcpu_pingpong without a second vCPU, so that a
    // one-vCPU run's report has no empty row.
    if smp::count() < 2 {
        return;
    }
    match pingpong::start(&mm) {
        Ok(s) if s.running => {}
        Ok(s) => {
            println!("bench-events: vCPU 1 did not start (initialise {} up {})", s.initialise, s.up);
            return;
        }
        Err(e) => {
            println!("bench-events: binding the ping-pong ports failed: {}", e);
            return;
        }
    }
    let base = pingpong::rounds(WARMUP);
    let start = rdtsc_fenced();
    let seen = pingpong::rounds(pp_iters);
    let total = rdtsc_fenced() - start;
    if seen != base + pp_iters {
        println!("bench-events: {} pongs for {} pings", seen - base, pp_iters);
    }
    bench_line("vcpu_pingpong", pp_iters, total);
    if !pingpong::stop() {
        println!("bench-events: vCPU 1 did not go down");
    }
}
