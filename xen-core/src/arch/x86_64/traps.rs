//! Rust side of the entry paths: hand the frame to the core, then do what it
//! decided (resume, idle, stop the machine). Also the fatal paths: a fault in
//! the hypervisor itself, and panics.

use core::fmt::Write;

use spin::Mutex;
use x86_64::registers::control::{Cr2, Cr3};
use xen_core::regs::GuestRegs;
use xen_core::{Halt, Next, Xen};

use super::entry::TRAP_SYSCALL32;
use super::machine::{self, ExitCode};
use super::platform::Machine;
use super::stack;

/// The hypervisor. Ring 0 runs with interrupts off on one CPU, so the lock is
/// never contended; it is there so the compiler holds us to one user at a time.
pub static XEN: Mutex<Option<Xen<Machine>>> = Mutex::new(None);

/// The software-interrupt vector PV guests may raise directly (`int $0x80`).
pub const INT80_VECTOR: u64 = 0x80;

fn with_xen<R>(f: impl FnOnce(&mut Xen<Machine>) -> R) -> R {
    let mut guard = XEN.lock();
    match guard.as_mut() {
        Some(x) => f(x),
        None => fatal("entry before the hypervisor was set up"),
    }
}

pub extern "C" fn guest_syscall(regs: &mut GuestRegs) {
    let next = with_xen(|x| if regs.entry_vector == TRAP_SYSCALL32 { x.guest_syscall32(regs) } else { x.hypercall(regs) });
    finish(regs, next);
}

pub extern "C" fn guest_exception(regs: &mut GuestRegs) {
    let next = if regs.entry_vector == INT80_VECTOR {
        with_xen(|x| x.guest_int80(regs))
    } else if regs.entry_vector == super::time::TICK_VECTOR {
        super::time::eoi(regs.entry_vector);
        with_xen(|x| x.timer_interrupt(regs))
    } else if regs.entry_vector >= 32 {
        // The only device interrupt routed is the tick: a stray one is
        // acknowledged and the guest goes on.
        super::time::eoi(regs.entry_vector);
        xen_core::debug!("spurious interrupt {} while in a guest", regs.entry_vector);
        with_xen(|x| x.schedule(regs))
    } else {
        if regs.entry_vector == 18 && !super::machine_check::report() {
            fatal("machine check: the interrupted context cannot continue (MCG_STATUS.RIPV clear)");
        }
        let cr2 = Cr2::read_raw();
        with_xen(|x| x.guest_exception(regs, cr2))
    };
    finish(regs, next);
}

/// Act on the core's decision; on return, `restore_all` enters the frame.
fn finish(regs: &mut GuestRegs, mut next: Next) {
    loop {
        match next {
            Next::Resume { cr3, flush_global } => {
                let (cur, flags) = Cr3::read_raw();
                if flush_global {
                    // Another vCPU's tables ran last: Xen's switch_cr3_cr4
                    // (PGE off, CR3, PGE on) drops its global entries too.
                    super::paging::switch_cr3_flush_global(cr3.maddr(), flags);
                } else if cur.start_address().as_u64() != cr3.maddr() {
                    let frame = x86_64::structures::paging::PhysFrame::containing_address(x86_64::PhysAddr::new(cr3.maddr()));
                    // SAFETY: the core hands us only validated guest L4s,
                    // which carry the hypervisor's slots, so this code and
                    // stack stay mapped.
                    unsafe { Cr3::write_raw(frame, flags) };
                }
                return;
            }
            Next::Halt(h) => halt(h),
            Next::Idle => {
                // Nothing runnable: sleep until the next interrupt (the tick
                // at the latest), then let the timers and the scheduler run.
                // The interrupt is taken on this stack inside the hlt window
                // only, and its handler just acknowledges it.
                x86_64::instructions::interrupts::enable_and_hlt();
                x86_64::instructions::interrupts::disable();
                next = with_xen(|x| x.timer_interrupt(regs));
            }
        }
    }
}

fn halt(h: Halt) -> ! {
    match h {
        Halt::PowerOff => machine::power_off(),
        Halt::Reboot => machine::exit(ExitCode::Reboot),
        Halt::Crash => machine::exit(ExitCode::Crash),
    }
}

/// An exception in ring 0 is a hypervisor bug, except the machine's own:
/// an NMI, a recoverable machine check, and a #DB (which a guest can delay
/// into ring 0: see `machine_check::hypervisor_debug`).
pub extern "C" fn hypervisor_exception(regs: &mut GuestRegs) {
    let v = regs.entry_vector;
    if v == 1 {
        super::machine_check::hypervisor_debug(regs);
        return;
    }
    if v == 2 {
        // The core may be mid-update (ring 0 was interrupted): report to
        // Dom0 only if nobody holds it.
        match XEN.try_lock() {
            Some(mut g) => {
                if let Some(x) = g.as_mut() {
                    x.nmi_to_dom0();
                }
            }
            None => xen_core::warn!("NMI received for unknown reason"),
        }
        return;
    }
    if v == 18 && super::machine_check::report() {
        return;
    }
    if v >= 32 {
        // Only while idle (ring 0 otherwise runs with interrupts off): the
        // idle loop does the work once hlt returns.
        super::time::eoi(v);
        return;
    }
    let mut w = Raw;
    let _ = writeln!(w, "\n(XEN) ----[ xen-core {} ]----", env!("CARGO_PKG_VERSION"));
    let _ = writeln!(
        w,
        "(XEN) FATAL TRAP: vector {} ({}), error code {:#x}, in the hypervisor",
        v,
        xen_core::traps::exception_name(v),
        regs.error_code
    );
    if v == 14 {
        let _ = writeln!(w, "(XEN) Faulting linear address: {:#018x}", Cr2::read_raw());
    }
    xen_core::traps::dump_guest_regs(regs);
    backtrace(regs.rbp);
    let _ = writeln!(w, "(XEN) Panic on CPU 0: fatal trap in the hypervisor");
    machine::exit(ExitCode::Fatal)
}

struct Raw;

impl Write for Raw {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        super::serial::write_bytes(s.as_bytes());
        Ok(())
    }
}

/// Follow the frame-pointer chain (images are built with frame pointers).
/// Resolve addresses with `addr2line -e target/images/xen-core`.
fn backtrace(mut rbp: u64) {
    let mut w = Raw;
    let _ = writeln!(w, "(XEN) Xen call trace (addr2line -e target/images/xen-core):");
    let (lo, hi) = (stack::stack_bottom(), stack::stack_top());
    for _ in 0..32 {
        if rbp < lo || rbp + 16 > hi || rbp % 8 != 0 {
            break;
        }
        // SAFETY: rbp lies inside the hypervisor stack (checked just above).
        let (next, ret) = unsafe { (*(rbp as *const u64), *((rbp + 8) as *const u64)) };
        let _ = writeln!(w, "(XEN)    [<{:016x}>]", ret);
        rbp = next;
    }
}

fn current_rbp() -> u64 {
    let rbp: u64;
    // SAFETY: reads a register.
    unsafe { core::arch::asm!("mov {}, rbp", out(reg) rbp, options(nomem, nostack, preserves_flags)) };
    rbp
}

pub fn fatal(msg: &str) -> ! {
    let mut w = Raw;
    let _ = writeln!(w, "(XEN) Panic on CPU 0: {}", msg);
    backtrace(current_rbp());
    machine::exit(ExitCode::Fatal)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let mut w = Raw;
    let _ = writeln!(w, "\n(XEN) ****************************************");
    let _ = writeln!(w, "(XEN) Panic on CPU 0: {}", info);
    let _ = writeln!(w, "(XEN) ****************************************");
    backtrace(current_rbp());
    machine::exit(ExitCode::Fatal)
}
