//! Two vCPUs bouncing an event: vCPU 0 sends on `ping` (a port Xen
//! notifies vCPU 1 of), vCPU 1's handler counts it and its main loop answers
//! on `pong` (notifying vCPU 0). Each side blocks between events, so every
//! round trip goes through the scheduler: wake, upcall, iret, block.
//!
//! Used by the self-test (`workload=events`, with `dom0_max_vcpus=2`) and by
//! the `vcpu_pingpong` benchmark.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};

use hypercall_abi::EvtchnPort;
use pv_rt::events::{self, smp};
use pv_rt::mm::Mm;
use pv_rt::println;

/// The ports: `ping` notifies vCPU 1, `pong` vCPU 0.
static PING: AtomicU32 = AtomicU32::new(0);
static PONG: AtomicU32 = AtomicU32::new(0);
/// Pings vCPU 1's handler saw, pongs its loop sent, pongs vCPU 0's handler saw.
static PINGS_SEEN: AtomicU64 = AtomicU64::new(0);
static PONGS_SENT: AtomicU64 = AtomicU64::new(0);
static PONGS_SEEN: AtomicU64 = AtomicU64::new(0);
/// Handlers that ran on the wrong vCPU.
static WRONG_VCPU: AtomicU64 = AtomicU64::new(0);
/// vCPU 1 is in its loop; the mask it found at its start.
static STARTED: AtomicBool = AtomicBool::new(false);
static START_MASK: AtomicU8 = AtomicU8::new(0xff);
/// Set by vCPU 0 to end vCPU 1's loop (then a ping wakes it).
static EXIT: AtomicBool = AtomicBool::new(false);
/// Pong sends that failed on vCPU 1.
static SEND_ERRORS: AtomicU64 = AtomicU64::new(0);

fn ping_handler(_port: EvtchnPort) {
    if events::current_vcpu() != 1 {
        WRONG_VCPU.fetch_add(1, Ordering::Relaxed);
    }
    PINGS_SEEN.fetch_add(1, Ordering::SeqCst);
}

fn pong_handler(_port: EvtchnPort) {
    if events::current_vcpu() != 0 {
        WRONG_VCPU.fetch_add(1, Ordering::Relaxed);
    }
    PONGS_SEEN.fetch_add(1, Ordering::SeqCst);
}

/// vCPU 1's life: answer each ping with a pong, blocking in between, until
/// told to exit; then return (pv-rt takes the vCPU down).
fn vcpu1_main(vcpu: usize) {
    START_MASK.store(events::upcall_mask(vcpu), Ordering::SeqCst);
    events::disable();
    STARTED.store(true, Ordering::SeqCst);
    loop {
        // Events are masked here: check, then block (which unmasks them
        // atomically), so a ping between the check and the block still
        // wakes us; `halt` delivers it.
        events::disable();
        if PINGS_SEEN.load(Ordering::SeqCst) > PONGS_SENT.load(Ordering::SeqCst) {
            PONGS_SENT.fetch_add(1, Ordering::SeqCst);
            if events::send(PONG.load(Ordering::Relaxed)).is_err() {
                SEND_ERRORS.fetch_add(1, Ordering::Relaxed);
            }
            continue;
        }
        if EXIT.load(Ordering::SeqCst) {
            return;
        }
        events::halt();
    }
}

/// What the caller wants to know about a started vCPU 1.
pub struct Started {
    pub initialise: i64,
    pub initialise_again: i64,
    pub is_up_after_initialise: i64,
    pub up: i64,
    /// vCPU 1 reached its loop.
    pub running: bool,
    /// Its `evtchn_upcall_mask` when it started.
    pub start_mask: u8,
}

fn rc(r: Result<(), hypercall_abi::Errno>) -> i64 {
    r.map_or_else(|e| e.to_ret(), |_| 0)
}

/// Binds the two IPI ports and starts vCPU 1 in its loop. Call with events
/// masked on vCPU 0.
pub fn start(mm: &Mm) -> Result<Started, hypercall_abi::Errno> {
    let ping = events::bind_ipi(1)?;
    let pong = events::bind_ipi(0)?;
    PING.store(ping, Ordering::SeqCst);
    PONG.store(pong, Ordering::SeqCst);
    events::set_handler(ping, 1, ping_handler);
    events::set_handler(pong, 0, pong_handler);
    let initialise = rc(smp::initialise(mm, 1, vcpu1_main));
    // Xen's `default_initialise_vcpu`: an initialised vCPU is -EEXIST.
    let initialise_again = rc(smp::initialise(mm, 1, vcpu1_main));
    let is_up_after_initialise = smp::is_up(1);
    let up = rc(smp::up(1));
    let mut running = false;
    for _ in 0..100_000 {
        if STARTED.load(Ordering::SeqCst) {
            running = true;
            break;
        }
        hypercall_abi::guest::sched_yield();
    }
    Ok(Started { initialise, initialise_again, is_up_after_initialise, up, running, start_mask: START_MASK.load(Ordering::SeqCst) })
}

pub fn ping_port() -> EvtchnPort {
    PING.load(Ordering::Relaxed)
}

/// Blocks vCPU 0 (events masked on entry and exit) until vCPU 1 has
/// answered `n` pings in all.
fn wait_pongs(n: u64) {
    loop {
        events::disable();
        if PONGS_SEEN.load(Ordering::SeqCst) >= n {
            return;
        }
        events::halt();
    }
}

/// `rounds` round trips; returns the pongs seen in all. Events masked on
/// entry and exit.
pub fn rounds(rounds: u64) -> u64 {
    let ping = PING.load(Ordering::Relaxed);
    let base = PONGS_SEEN.load(Ordering::SeqCst);
    for i in 1..=rounds {
        if let Err(e) = events::send(ping) {
            println!("pingpong: send on the ping port failed: {}", e);
            return PONGS_SEEN.load(Ordering::SeqCst);
        }
        wait_pongs(base + i);
    }
    PONGS_SEEN.load(Ordering::SeqCst)
}

/// One more round trip through `port`, which the caller bound to notify
/// vCPU 1 with a handler counting as a ping: returns whether the pong came.
pub fn round_via(port: EvtchnPort) -> bool {
    let want = PONGS_SEEN.load(Ordering::SeqCst) + 1;
    if events::send(port).is_err() {
        return false;
    }
    wait_pongs(want);
    true
}

/// The handler a caller gives a port it routes to vCPU 1 as a ping.
pub fn ping_handler_fn() -> events::Handler {
    ping_handler
}

/// Handlers that ran on the wrong vCPU, pong sends that failed.
pub fn errors() -> (u64, u64) {
    (WRONG_VCPU.load(Ordering::SeqCst), SEND_ERRORS.load(Ordering::SeqCst))
}

/// Ends vCPU 1's loop and waits until it is down; returns whether it went.
pub fn stop() -> bool {
    EXIT.store(true, Ordering::SeqCst);
    let _ = events::send(PING.load(Ordering::Relaxed));
    smp::wait_down(1, 100_000)
}
