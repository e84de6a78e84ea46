//! Console output: `console_io(CONSOLEIO_write)` for Dom0, the PV console
//! ring for a domU ([`crate::xencons`]).
//!
//! Output is gathered into lines so that one `println!` is one hypercall:
//! cheaper, and a line never interleaves with the hypervisor's own messages.

use core::fmt;
use core::sync::atomic::{AtomicPtr, Ordering};

/// Where output goes instead of the console while set (Dom0 sends a host
/// request's output back to the host); null: the console.
static SINK: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Sends everything printed (`println!`, [`write_bytes`]) to `sink` until
/// called with `None`; [`write_console`] still reaches the console.
pub fn set_sink(sink: Option<fn(&[u8])>) {
    SINK.store(sink.map_or(core::ptr::null_mut(), |f| f as *mut ()), Ordering::Relaxed);
}

/// Writes `bytes` as they are, to the sink if one is set; returns the
/// hypercall result (0 or -errno).
pub fn write_bytes(bytes: &[u8]) -> i64 {
    if bytes.is_empty() {
        return 0;
    }
    let sink = SINK.load(Ordering::Relaxed);
    if !sink.is_null() {
        // SAFETY: SINK only ever holds null or a `fn(&[u8])` stored by
        // `set_sink`; function pointers and data pointers have one size here.
        let f: fn(&[u8]) = unsafe { core::mem::transmute::<*mut (), fn(&[u8])>(sink) };
        f(bytes);
        return 0;
    }
    crate::xencons::console_write(bytes)
}

/// Writes `bytes` to the console even while a sink is set (what belongs
/// on the console whoever asked: guests' lines, the prompt's editing).
pub fn write_console(bytes: &[u8]) -> i64 {
    if bytes.is_empty() {
        return 0;
    }
    crate::xencons::console_write(bytes)
}

/// Unbuffered `fmt::Write` over the console.
pub struct Console;

impl fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_bytes(s.as_bytes());
        Ok(())
    }
}

const LINE: usize = 256;

/// Buffers output and hands it to the hypervisor at each newline, when the
/// buffer fills, and when dropped.
pub struct LineWriter {
    buf: [u8; LINE],
    len: usize,
}

impl LineWriter {
    pub const fn new() -> Self {
        LineWriter { buf: [0; LINE], len: 0 }
    }

    pub fn flush(&mut self) {
        write_bytes(&self.buf[..self.len]);
        self.len = 0;
    }
}

impl Default for LineWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Write for LineWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len == LINE {
                self.flush();
            }
            self.buf[self.len] = b;
            self.len += 1;
            if b == b'\n' {
                self.flush();
            }
        }
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        self.flush();
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments) {
    let mut w = LineWriter::new();
    // Console writes cannot fail in a way worth reporting: there is nowhere else to report to.
    let _ = fmt::Write::write_fmt(&mut w, args);
}

/// Prints to the hypervisor console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::_print(format_args!($($arg)*)) };
}

/// Prints a line to the hypervisor console.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::console::_print(format_args!("{}\n", format_args!($($arg)*))) };
}
