//! Time-stamp counter reads for benchmarks.

use core::arch::asm;

/// `rdtsc` with `lfence` on both sides, so the read neither starts before
/// earlier instructions finish nor lets later ones start before it.
#[inline(always)]
pub fn rdtsc_fenced() -> u64 {
    let lo: u32;
    let hi: u32;
    // SAFETY: lfence and rdtsc only read state (a PV guest may have rdtsc
    // emulated by the hypervisor, which still returns a value).
    unsafe {
        asm!("lfence", "rdtsc", "lfence", out("eax") lo, out("edx") hi,
             options(nostack, preserves_flags));
    }
    (hi as u64) << 32 | lo as u64
}
