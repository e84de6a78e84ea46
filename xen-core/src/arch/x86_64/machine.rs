//! Ending the machine: ACPI power-off, or a status through QEMU's
//! `isa-debug-exit` device (the QEMU process then exits with `(v << 1) | 1`).
//!
//! Statuses seen by whoever started QEMU (scripts/run.sh, tests/):
//! 0 Dom0 powered off, 3 Dom0 rebooted, 5 Dom0 crashed, 7 hypervisor fatal error.

use x86_64::instructions::port::Port;

const DEBUG_EXIT_PORT: u16 = 0xf4;
/// PIIX4 PM1a control block as SeaBIOS programs it on QEMU's `pc` machine.
const PM1A_CNT: u16 = 0x604;
const SLP_EN: u16 = 1 << 13;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCode {
    Reboot = 1,
    Crash = 2,
    Fatal = 3,
}

pub fn power_off() -> ! {
    // SAFETY: S5 sleep (SLP_TYP 0 on QEMU's DSDT) turns the machine off; nothing
    // after this runs.
    unsafe { Port::<u16>::new(PM1A_CNT).write(SLP_EN) };
    // No ACPI there (another machine type): fall back to a halt loop.
    halt_forever()
}

pub fn exit(code: ExitCode) -> ! {
    // SAFETY: isa-debug-exit ends QEMU; on real hardware the port is unused.
    unsafe { Port::<u32>::new(DEBUG_EXIT_PORT).write(code as u32) };
    if code == ExitCode::Reboot {
        reboot();
    }
    halt_forever()
}

fn reboot() -> ! {
    // SAFETY: the keyboard controller's reset line restarts the machine.
    unsafe { Port::<u8>::new(0x64).write(0xfe) };
    halt_forever()
}

pub fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}
