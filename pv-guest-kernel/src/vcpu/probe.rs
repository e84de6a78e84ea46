//! The self-test's exception handler: it records what Xen delivered and
//! resumes where the probe asked.
//!
//! A probe is a few instructions of inline assembly that raise one event.
//! Before the instruction that faults, the probe stores the address to
//! resume at in [`FIXUP`] (XTF's exception-table idea, reduced to one
//! entry); the handler records the frame ([`Trap`]) and resumes there. Traps
//! (`int3`, `int N`, single-step) resume after the instruction anyway. #NM
//! resumes at the faulting instruction, which must then succeed: Xen clears
//! the virtual CR0.TS when it delivers #NM. Events from guest user mode go
//! to [`super::user`].
//!
//! Everything here runs on vCPU 0 only; the second vCPU of the self-test
//! never takes an exception.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use hypercall_abi::guest;
use pv_rt::traps::{Resume, TrapFrame, VECTOR_EVENT, VECTOR_SYSCALL};
use pv_rt::{println, shared};

/// Where the handler resumes a faulting probe (0: no probe armed). The
/// probes' assembly writes it through `sym FIXUP`.
pub static FIXUP: AtomicU64 = AtomicU64::new(0);

/// Set while a hardware breakpoint is armed: the #DB handler disarms it
/// (DR7 = 0) so that the instruction can run when we return to it.
pub static HW_BREAKPOINT_ARMED: AtomicBool = AtomicBool::new(false);

/// Events that reached the event callback (none are bound: expected 0).
pub static EVENTS: AtomicU64 = AtomicU64::new(0);

const RFLAGS_TF: u64 = 1 << 8;

/// What one delivery looked like.
#[derive(Clone, Copy, Debug, Default)]
pub struct Trap {
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
    /// `vcpu_info.arch.cr2` when the handler ran (page faults).
    pub cr2: u64,
    /// Where the frame Xen wrote ended.
    pub frame_end: u64,
    /// `vcpu_info.evtchn_upcall_mask` in the handler.
    pub upcall_mask: u8,
    /// DR6 as `get_debugreg(6)` gave it in the handler (#DB only).
    pub dr6: u64,
    /// RAX as it arrived (the argument of `int $0x80`).
    pub rax: u64,
}

impl Trap {
    /// The selector part of the saved CS.
    pub fn cs_sel(&self) -> u64 {
        self.cs & 0xffff
    }
    /// The event mask saved in CS bits 32-39.
    pub fn saved_mask(&self) -> u64 {
        (self.cs >> 32) & 0xff
    }
}

/// The last delivery and how many there were since the last [`take`].
struct Log {
    last: Option<Trap>,
    count: u64,
}

/// The log lives in a static the handler writes and the probes read. Both
/// run on vCPU 0, the handler only while a probe's assembly is stopped at
/// the instruction that raised the event, so the two never overlap.
struct LogCell(UnsafeCell<Log>);
// SAFETY: see LogCell: one vCPU, and handler and reader never overlap.
unsafe impl Sync for LogCell {}

static LOG: LogCell = LogCell(UnsafeCell::new(Log { last: None, count: 0 }));

fn with_log<R>(f: impl FnOnce(&mut Log) -> R) -> R {
    // SAFETY: see LogCell; no reference outlives this call.
    f(unsafe { &mut *LOG.0.get() })
}

/// The last delivery since the previous call, and how many there were.
pub fn take() -> (Option<Trap>, u64) {
    with_log(|log| (log.last.take(), core::mem::take(&mut log.count)))
}

fn record(frame: &TrapFrame) -> Trap {
    let mut t = Trap {
        vector: frame.entry_vector,
        error_code: frame.error_code,
        rip: frame.rip,
        cs: frame.cs,
        rflags: frame.rflags,
        rsp: frame.rsp,
        ss: frame.ss,
        frame_end: frame.frame_end(),
        upcall_mask: shared::upcall_mask(0),
        rax: frame.rax,
        ..Trap::default()
    };
    if frame.entry_vector == 14 {
        t.cr2 = shared::cr2(0);
    }
    if frame.entry_vector == 1 {
        t.dr6 = guest::get_debugreg(6) as u64;
    }
    with_log(|log| {
        log.last = Some(t);
        log.count += 1;
    });
    t
}

/// The kernel's [`pv_rt::traps::Handler`].
pub fn handler(frame: &mut TrapFrame) -> Resume {
    match frame.entry_vector {
        VECTOR_SYSCALL => return super::user::syscall(frame),
        VECTOR_EVENT => {
            // Nothing is bound, so this should not happen; acknowledge it so
            // that the return with events unmasked does not loop.
            EVENTS.fetch_add(1, Ordering::Relaxed);
            shared::clear_upcall_pending(0);
            return Resume::Iret;
        }
        _ => {}
    }
    record(frame);
    if frame.from_ring3() {
        return super::user::fault(frame);
    }
    match frame.entry_vector {
        1 => {
            // Single-step: stop stepping. Breakpoint: disarm, so the
            // instruction runs when we return to it. DR6 is sticky: clear it
            // for the next #DB, as Linux's handler does.
            frame.rflags &= !RFLAGS_TF;
            if HW_BREAKPOINT_ARMED.swap(false, Ordering::Relaxed) {
                // SAFETY: turning breakpoints off.
                unsafe { guest::set_debugreg(7, 0) };
            }
            // SAFETY: DR6 reset to its architectural default.
            unsafe { guest::set_debugreg(6, 0xffff_0ff0) };
        }
        // Xen cleared the virtual TS when it delivered #NM: run the
        // instruction again.
        7 => return Resume::Iret,
        // Our `int $0x80` system call: triple the argument.
        0x80 => frame.rax = frame.rax.wrapping_mul(3),
        _ => {}
    }
    let fixup = FIXUP.swap(0, Ordering::Relaxed);
    if fixup != 0 {
        frame.rip = fixup;
        // The fixup is our own kernel code, on Xen's flat selectors even if
        // the probe tried others (an `iret` to a bad CS): keep the saved
        // event mask (bits 32-39), kernel-mode RPL 0.
        frame.cs = (frame.cs & !0xffff) | 0xe030;
        frame.ss = 0xe02b;
        return Resume::Iret;
    }
    match frame.entry_vector {
        // Traps: the frame's RIP is already past the instruction.
        1 | 3 | 4 | 0x80..=0xff => Resume::Iret,
        _ => {
            println!("vcpu: unexpected exception in kernel mode: {}", frame);
            pv_rt::crash()
        }
    }
}
