//! `workload=fuzz seed=S count=N [secs=T] [trace=1|2] [diff=1]`: the in-guest
//! hypercall fuzzer. Issues N seeded random hypercalls of every family (see
//! [`gen`]) from its own address space, and after each one checks what it
//! can see of the hypervisor's promises (see [`oracle`]).
//!
//! `workload=replay seed=S calls=0-99,150,200-210 [trace=1]`: the same
//! calls, only those listed, each exactly as the run issued it (call `i`'s
//! random numbers depend only on the seed and `i`). `scripts/fuzz.sh`
//! records a finding as (seed, calls) and minimizes it by replaying subsets.
//!
//! Output: `fuzz: progress calls=N` every 1024 calls; with `trace=1` one
//! line per call, `fz <i> <name> rc=<rc> fx=<digest>` (the digest names
//! frames by what they are to us, so it is the same on xen-core and Xen);
//! `fuzz: ORACLE ...` for a broken promise; at the end
//! `fuzz: done calls=N ns=T findings=F` and the verdict line.

mod gen;
mod oracle;
mod rng;
mod sandbox;

use hypercall_abi::grant::GrantEntryV1;
use hypercall_abi::guest;
use pv_rt::cmdline;
use pv_rt::mm::Mm;
use pv_rt::println;
use pv_rt::traps::{self, Resume, TrapFrame, VECTOR_EVENT};

use gen::{Gen, Step};
use rng::Rng;
use sandbox::{Sandbox, GT_VA};

static EVENTS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Exceptions and events while fuzzing: events are acknowledged; any
/// exception means a call broke the fuzzer itself, reported and fatal.
fn handler(f: &mut TrapFrame) -> Resume {
    if f.entry_vector == VECTOR_EVENT {
        // A call may have unmasked events where we cannot see them (a
        // vcpu_info moved by VCPUOP_register_vcpu_info, a cleared
        // shared_info). Return with events masked: Xen's `iret` writes
        // the mask into whichever vcpu_info is current, so one upcall
        // cannot become a storm.
        EVENTS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        f.rflags &= !0x200;
        f.cs |= 1 << 32;
        return Resume::Iret;
    }
    if f.entry_vector == 7 {
        // #NM: a call left CR0.TS set (fpu_taskswitch, a vCPU context);
        // clear it as a PV kernel does, and go on.
        // SAFETY: clearing TS only lets the interrupted code use the FPU.
        unsafe { guest::fpu_taskswitch(0) };
        return Resume::Iret;
    }
    println!("fuzz: the fuzzer took exception {} at {:#x} (error {:#x}, cr2 {:#x}); stopping", f.entry_vector, f.rip, f.error_code, pv_rt::shared::cr2(0));
    pv_rt::crash();
}

/// A list of call indices: `0-99,150,200-210`.
struct Ranges<'a>(&'a str);

impl Ranges<'_> {
    fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.0.split(',').filter(|s| !s.is_empty()).flat_map(|part| {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            let a = cmdline::parse_u64(a).unwrap_or(1);
            let b = cmdline::parse_u64(b).unwrap_or(0);
            a..=b
        })
    }
}

pub fn run(cmd: &str) {
    let seed = cmdline::get(cmd, "seed").and_then(cmdline::parse_u64).unwrap_or(1);
    let count = cmdline::get(cmd, "count").and_then(cmdline::parse_u64).unwrap_or(10_000);
    let mut all = heapless::String::<32>::new();
    let _ = core::fmt::write(&mut all, format_args!("0-{}", count.saturating_sub(1)));
    fuzz(cmd, seed, if count == 0 { "" } else { all.as_str() });
}

pub fn replay(cmd: &str) {
    let seed = cmdline::get(cmd, "seed").and_then(cmdline::parse_u64).unwrap_or(1);
    fuzz(cmd, seed, cmdline::get(cmd, "calls").unwrap_or(""));
}

fn fuzz(cmd: &str, seed: u64, calls: &str) {
    // trace=1: a line per call after it; trace=2: also its arguments before.
    let trace = matches!(cmdline::get(cmd, "trace"), Some("1") | Some("2"));
    let verbose = cmdline::get(cmd, "trace") == Some("2");
    // secs=T: stop after T seconds (the soak), whatever the count.
    let secs = cmdline::get(cmd, "secs").and_then(cmdline::parse_u64).unwrap_or(0);
    let diff = cmdline::get(cmd, "diff") == Some("1");
    let si = pv_rt::start_info();
    // SAFETY: the only memory manager of this kernel.
    let mut mm = match unsafe { Mm::new(si) } {
        Ok(mm) => mm,
        Err(e) => return setup_failed("walk the initial page tables", e.to_ret()),
    };
    // SAFETY: the handler neither returns into a fault nor touches the
    // interrupted code's stack.
    if let Err(e) = unsafe { traps::install(handler) } {
        return setup_failed("install the trap table", e.to_ret());
    }
    if let Err(e) = pv_rt::events::map_shared_info(&mut mm) {
        return setup_failed("map shared_info", e.to_ret());
    }
    // Events stay masked: a call may bind ports and set timers.
    pv_rt::shared::set_upcall_mask(0, 1);
    let sb = match Sandbox::new(&mut mm) {
        Ok(sb) => sb,
        Err(e) => return setup_failed("build the sandbox", e.to_ret()),
    };
    let gen = Gen { sb: &sb, diff };
    let mut audit = oracle::Audit::new(&mm, &sb);
    println!("fuzz: seed={} calls={} grant_table={}", seed, calls, sb.gt_mapped);
    // The clock is read once, before any call: a call may scribble on
    // shared_info (its time records included). After that, only the TSC.
    let (clock, start) = pv_rt::time::snapshot(0);
    let mut n = 0u64;
    let mut last = 0u64;
    for i in (Ranges(calls)).iter() {
        let mut r = Rng::for_call(seed, i);
        let (name, rc) = match gen.step(&mut r) {
            Step::Hypercall(c) => {
                if verbose {
                    println!("fz> {} {} nr={} args={:#x} {:#x} {:#x} {:#x} {:#x}", i, c.name, c.nr, c.args[0], c.args[1], c.args[2], c.args[3], c.args[4]);
                    if c.nr == hypercall_abi::nr::MULTICALL && c.args[0] >= sandbox::ARGS_VA && c.args[0] < sandbox::ARGS_VA + sandbox::ARGS_LEN {
                        for k in 0..c.args[1].min(4) {
                            // SAFETY: the entries the generator wrote, in the argument pages.
                            let e: [u64; 8] = unsafe { core::ptr::read_volatile((c.args[0] as *const [u64; 8]).add(k as usize)) };
                            println!("fz>   entry {} nr={} args={:#x} {:#x} {:#x} {:#x} {:#x}", k, e[0], e[2], e[3], e[4], e[5], e[6]);
                        }
                    }
                }
                // SAFETY: the generator keeps every call away from the
                // kernel's own mappings and frames (see `gen`); what a call
                // does to the fuzzer's slot is the point.
                let rc = unsafe { guest::hypercall5(c.nr, c.args[0], c.args[1], c.args[2], c.args[3], c.args[4]) };
                (c.name, rc)
            }
            Step::GrantEntry { gref, flags, domid, frame } => {
                let e = (GT_VA as *mut GrantEntryV1).wrapping_add(gref as usize);
                // SAFETY: our grant table, mapped writable at GT_VA (a
                // v2 table has the same first frame); gref < 16 entries.
                unsafe {
                    core::ptr::write_volatile(&raw mut (*e).domid, domid);
                    core::ptr::write_volatile(&raw mut (*e).frame, frame);
                    core::ptr::write_volatile(&raw mut (*e).flags, flags);
                }
                ("grant_entry_write", 0)
            }
        };
        n += 1;
        last = i;
        let broken = audit.after_call(&mm, &sb);
        if trace {
            println!("fz {} {} rc={} fx={:016x}", i, name, rc, audit.digest(&mm, &sb));
        }
        if let Some(what) = broken {
            println!("fuzz: ORACLE call={} seed={} {} ({} rc={})", i, seed, what, name, rc);
        }
        if n % 1024 == 0 {
            println!("fuzz: progress calls={} last={}", n, i);
            let now = pv_rt::tsc::rdtsc_fenced().saturating_sub(start);
            if secs > 0 && pv_rt::time::scale_delta(now, clock.tsc_to_system_mul, clock.tsc_shift) > secs * 1_000_000_000 {
                break;
            }
        }
    }
    let tsc = pv_rt::tsc::rdtsc_fenced().saturating_sub(start);
    let ns = pv_rt::time::scale_delta(tsc, clock.tsc_to_system_mul, clock.tsc_shift);
    let events = EVENTS.load(core::sync::atomic::Ordering::Relaxed);
    println!("fuzz: done calls={} last={} ns={} findings={} upcalls={}", n, last, ns, audit.findings, events);
    println!("Test result: {}", if audit.findings == 0 { "SUCCESS" } else { "FAILURE" });
}

fn setup_failed(what: &str, rc: i64) {
    println!("fuzz: cannot {}: {}", what, rc);
    println!("Test result: FAILURE");
}
