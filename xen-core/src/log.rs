//! Leveled hypervisor log, as Xen's `loglvl=`: lines below the threshold are
//! dropped, the rest go to the console prefixed `(XEN) ` and into a ring that
//! keeps the most recent output (for `xl dmesg`).

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU8, Ordering};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    Error = 1,
    Warning = 2,
    Info = 3,
    Debug = 4,
}

impl Level {
    /// Xen's names for `loglvl=` (`none`, `error`, `warning`, `info`, `debug`, `all`).
    pub fn threshold_from_name(name: &str) -> Option<u8> {
        Some(match name {
            "none" => 0,
            "error" => 1,
            "warning" => 2,
            "info" => 3,
            "debug" | "all" => 4,
            _ => return None,
        })
    }
}

/// Where log text goes: the serial console on the machine, a buffer in tests.
pub trait LogSink: Sync {
    fn write_str(&self, s: &str);
}

static THRESHOLD: AtomicU8 = AtomicU8::new(Level::Info as u8);
static GUEST_THRESHOLD: AtomicU8 = AtomicU8::new(Level::Info as u8);
static SINK: spin::Once<&'static dyn LogSink> = spin::Once::new();

pub fn set_sink(sink: &'static dyn LogSink) {
    SINK.call_once(|| sink);
}

pub fn set_threshold(t: u8) {
    THRESHOLD.store(t, Ordering::Relaxed);
}

pub fn set_guest_threshold(t: u8) {
    GUEST_THRESHOLD.store(t, Ordering::Relaxed);
}

pub fn enabled(level: Level) -> bool {
    level as u8 <= THRESHOLD.load(Ordering::Relaxed)
}

/// Messages about what a guest did wrong go through `guest_loglvl`, so a
/// hostile guest cannot flood the console unless asked for.
pub fn guest_enabled(level: Level) -> bool {
    level as u8 <= GUEST_THRESHOLD.load(Ordering::Relaxed)
}

/// Raw console output (Dom0's `console_io` writes go here unprefixed).
pub fn console_write(bytes: &[u8]) {
    if let Some(sink) = SINK.get() {
        // Dom0 may write arbitrary bytes; the sink takes text, so pass valid
        // runs through and replace the rest.
        for chunk in bytes.utf8_chunks() {
            sink.write_str(chunk.valid());
            if !chunk.invalid().is_empty() {
                sink.write_str("?");
            }
        }
    }
}

struct Prefixed;

impl Write for Prefixed {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if let Some(sink) = SINK.get() {
            sink.write_str(s);
        }
        Ok(())
    }
}

/// The most recent hypervisor log text (`xl dmesg`, Xen's console ring).
const RING_SIZE: usize = 16 * 1024;

struct Ring {
    buf: [u8; RING_SIZE],
    /// Bytes ever written; the ring holds the last `RING_SIZE` of them.
    written: usize,
}

static RING: spin::Mutex<Ring> = spin::Mutex::new(Ring { buf: [0; RING_SIZE], written: 0 });

struct ToRing;

impl Write for ToRing {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Never wait: a log line from inside a hypervisor fault must not
        // deadlock on a ring someone was filling.
        if let Some(mut r) = RING.try_lock() {
            for &b in s.as_bytes() {
                let at = r.written % RING_SIZE;
                r.buf[at] = b;
                r.written += 1;
            }
        }
        Ok(())
    }
}

/// Up to `max` bytes of the log from byte position `from` (or from the
/// oldest byte kept), and the position after the last byte returned.
pub fn read_from(from: Option<usize>, max: usize) -> (alloc::vec::Vec<u8>, usize) {
    let r = RING.lock();
    let oldest = r.written.saturating_sub(RING_SIZE);
    let start = from.map_or(oldest, |f| f.clamp(oldest, r.written));
    let end = r.written.min(start.saturating_add(max));
    ((start..end).map(|i| r.buf[i % RING_SIZE]).collect(), end)
}

pub fn clear_recent() {
    RING.lock().written = 0;
}

#[doc(hidden)]
pub fn print(args: fmt::Arguments) {
    let mut w = Prefixed;
    let _ = w.write_str("(XEN) ");
    let _ = w.write_fmt(args);
    let _ = w.write_str("\n");
    let mut r = ToRing;
    let _ = r.write_str("(XEN) ");
    let _ = r.write_fmt(args);
    let _ = r.write_str("\n");
}

/// `printk!(Level::Info, "...")`: one log line at a level.
#[macro_export]
macro_rules! printk {
    ($lvl:expr, $($arg:tt)*) => {
        if $crate::log::enabled($lvl) {
            $crate::log::print(format_args!($($arg)*));
        }
    };
}

/// A line about a guest's misbehaviour, at debug level of `guest_loglvl`.
#[macro_export]
macro_rules! gdprintk {
    ($($arg:tt)*) => {
        if $crate::log::guest_enabled($crate::log::Level::Debug) {
            $crate::log::print(format_args!($($arg)*));
        }
    };
}

#[macro_export]
macro_rules! info { ($($arg:tt)*) => { $crate::printk!($crate::log::Level::Info, $($arg)*) }; }
#[macro_export]
macro_rules! warn { ($($arg:tt)*) => { $crate::printk!($crate::log::Level::Warning, $($arg)*) }; }
#[macro_export]
macro_rules! error { ($($arg:tt)*) => { $crate::printk!($crate::log::Level::Error, $($arg)*) }; }
#[macro_export]
macro_rules! debug { ($($arg:tt)*) => { $crate::printk!($crate::log::Level::Debug, $($arg)*) }; }

/// A vCPU as Xen's log lines name it: `d4v0` (`idle` when none runs), for
/// lines about whatever runs now (`Xen::current`).
pub struct VcpuName(pub Option<(crate::domain::DomId, usize)>);

impl fmt::Display for VcpuName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some((d, v)) => write!(f, "d{}v{}", d.0, v),
            None => write!(f, "idle"),
        }
    }
}
