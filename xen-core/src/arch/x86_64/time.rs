//! Time since boot from the TSC, calibrated once against the PIT.

use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::instructions::port::Port;

static TSC_KHZ: AtomicU64 = AtomicU64::new(1_000_000);
static TSC_AT_BOOT: AtomicU64 = AtomicU64::new(0);

fn rdtsc() -> u64 {
    // SAFETY: rdtsc has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Count TSC ticks across 10 ms of PIT channel 2 (Xen's calibrate_tsc does
/// the same with a longer window); returns kHz.
pub fn calibrate() -> u64 {
    const PIT_HZ: u64 = 1_193_182;
    const MS: u64 = 10;
    let count = (PIT_HZ * MS / 1000) as u16;
    let mut port61 = Port::<u8>::new(0x61);
    let mut cmd = Port::<u8>::new(0x43);
    let mut ch2 = Port::<u8>::new(0x42);
    // SAFETY: the PIT and port 0x61 are the standard PC timer and speaker
    // gate; programming channel 2 touches no memory.
    let khz = unsafe {
        let v = port61.read();
        port61.write((v & !0x02) | 0x01); // gate on, speaker off
        cmd.write(0xb0); // channel 2, lobyte/hibyte, mode 0
        ch2.write(count as u8);
        ch2.write((count >> 8) as u8);
        let t0 = rdtsc();
        let mut spins = 0u64;
        while port61.read() & 0x20 == 0 && spins < 100_000_000 {
            spins += 1;
        }
        (rdtsc() - t0) / MS
    };
    if khz > 0 {
        TSC_KHZ.store(khz, Ordering::Relaxed);
    }
    TSC_AT_BOOT.store(rdtsc(), Ordering::Relaxed);
    khz
}

pub fn now_ns() -> u64 {
    let ticks = rdtsc().wrapping_sub(TSC_AT_BOOT.load(Ordering::Relaxed));
    (ticks as u128 * 1_000_000 / TSC_KHZ.load(Ordering::Relaxed) as u128) as u64
}
