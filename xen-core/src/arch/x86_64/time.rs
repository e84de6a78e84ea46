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

/// The tick: PIT channel 0 as a rate generator at `TICK_HZ`, on IRQ 0
/// (vector 0x20 after the PIC remap).
pub const TICK_HZ: u64 = 1000;
pub const TICK_VECTOR: u64 = 0x20;

pub fn start_tick() {
    let divisor = (1_193_182 / TICK_HZ) as u16;
    // SAFETY: standard PIT and 8259 programming; no memory is involved.
    unsafe {
        Port::<u8>::new(0x43).write(0x34); // channel 0, lobyte/hibyte, mode 2
        Port::<u8>::new(0x40).write(divisor as u8);
        Port::<u8>::new(0x40).write((divisor >> 8) as u8);
        Port::<u8>::new(0x21).write(0xfe); // unmask IRQ 0 only
    }
}

/// End of interrupt for the legacy PIC.
pub fn eoi(vector: u64) {
    if (0x20..0x30).contains(&vector) {
        // SAFETY: a non-specific EOI to the PIC(s).
        unsafe {
            if vector >= 0x28 {
                Port::<u8>::new(0xa0).write(0x20);
            }
            Port::<u8>::new(0x20).write(0x20);
        }
    }
}

static WALLCLOCK_AT_BOOT: AtomicU64 = AtomicU64::new(0);

/// Read the CMOS real-time clock once: seconds since the epoch, at boot.
pub fn read_rtc() -> u64 {
    let reg = |r: u8| -> u8 {
        // SAFETY: CMOS index/data ports; reading the clock registers only.
        unsafe {
            Port::<u8>::new(0x70).write(r);
            Port::<u8>::new(0x71).read()
        }
    };
    // Wait out an update in progress so the fields are consistent.
    let mut spins = 0;
    while reg(0x0a) & 0x80 != 0 && spins < 1_000_000 {
        spins += 1;
    }
    let bcd = reg(0x0b) & 0x04 == 0;
    let v = |r: u8| {
        let x = reg(r);
        if bcd {
            (x & 0x0f) as u64 + ((x >> 4) as u64) * 10
        } else {
            x as u64
        }
    };
    let (sec, min, hour, day, mon, year) = (v(0x00), v(0x02), v(0x04) % 24, v(0x07), v(0x08), 2000 + v(0x09));
    // Days since the epoch (civil-from-days, Howard Hinnant's algorithm).
    let (y, m) = if mon <= 2 { (year - 1, mon + 9) } else { (year, mon - 3) };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let t = days * 86_400 + hour * 3600 + min * 60 + sec;
    WALLCLOCK_AT_BOOT.store(t, Ordering::Relaxed);
    t
}

pub fn wallclock_at_boot() -> u64 {
    WALLCLOCK_AT_BOOT.load(Ordering::Relaxed)
}

pub fn tsc_khz() -> u64 {
    TSC_KHZ.load(Ordering::Relaxed)
}

pub fn tsc_and_now() -> (u64, u64) {
    let t = rdtsc();
    let ticks = t.wrapping_sub(TSC_AT_BOOT.load(Ordering::Relaxed));
    (t, (ticks as u128 * 1_000_000 / TSC_KHZ.load(Ordering::Relaxed) as u128) as u64)
}
