//! Hypercall round-trip cost, measured in TSC ticks. Under QEMU with
//! `-icount shift=0` the TSC counts instructions, so the result is the same on
//! every run and comparable between hypervisors.

use core::ptr;

use hypercall_abi::guest;
use hypercall_abi::version::XENVER_version;
use pv_rt::tsc::rdtsc_fenced;
use pv_rt::{cmdline, println};

const DEFAULT_ITERS: u64 = 100_000;

/// `xen_version(XENVER_version, NULL)`: the cheapest hypercall with no side
/// effect on both hypervisors.
pub fn null_hypercall(cmd: &str) {
    let iters = cmdline::get(cmd, "iters").and_then(cmdline::parse_u64).unwrap_or(DEFAULT_ITERS);
    // Warm caches and TLBs so the first iterations do not skew the total.
    for _ in 0..16 {
        // SAFETY: XENVER_version takes no buffer.
        unsafe { guest::xen_version(XENVER_version, ptr::null_mut()) };
    }
    let start = rdtsc_fenced();
    let mut last = 0;
    for _ in 0..iters {
        // SAFETY: as above.
        last = unsafe { guest::xen_version(XENVER_version, ptr::null_mut()) };
    }
    let total = rdtsc_fenced() - start;
    let per_call = total.checked_div(iters).unwrap_or(0);
    // The answer of the last call shows the loop really reached the
    // hypervisor (`xen_version` answers major << 16 | minor).
    println!(
        "bench null_hypercall iterations={} total_tsc={} per_call_tsc={} version={}.{}",
        iters,
        total,
        per_call,
        last >> 16,
        last & 0xffff
    );
}
