//! The machine's own exceptions, read from the CPU: a machine check's
//! banks, and the debug registers of a #DB taken in ring 0. The decisions
//! are the core's (`xen_core::machine_traps`).

use x86_64::registers::model_specific::Msr;
use xen_core::regs::GuestRegs;

const MSR_IA32_MCG_CAP: u32 = 0x179;
const MSR_IA32_MCG_STATUS: u32 = 0x17a;
/// IA32_MCi_STATUS is 0x401 + 4 * i; ADDR follows it.
const MSR_IA32_MC0_STATUS: u32 = 0x401;
const MCG_STATUS_RIPV: u64 = 1 << 0;
const MCI_STATUS_VAL: u64 = 1 << 63;
const MCI_STATUS_ADDRV: u64 = 1 << 58;

/// Log every valid bank of a machine check (Xen's `mce_barrier` and
/// `x86_mcinfo_dump`, in short), clear them for the next one, and say
/// whether the interrupted context can go on (MCG_STATUS.RIPV).
pub fn report() -> bool {
    // SAFETY: #MC is raised only by CPUs with machine-check architecture,
    // so these architectural MSRs exist; clearing the status registers is
    // what the handler must do before re-enabling MCE reporting.
    unsafe {
        let banks = Msr::new(MSR_IA32_MCG_CAP).read() & 0xff;
        let mcg = Msr::new(MSR_IA32_MCG_STATUS).read();
        xen_core::error!("MCE: machine check exception, MCG_STATUS {:#x}", mcg);
        for i in 0..banks as u32 {
            let mut status = Msr::new(MSR_IA32_MC0_STATUS + 4 * i);
            let s = status.read();
            if s & MCI_STATUS_VAL == 0 {
                continue;
            }
            let addr = if s & MCI_STATUS_ADDRV != 0 { Msr::new(MSR_IA32_MC0_STATUS + 4 * i + 1).read() } else { 0 };
            xen_core::error!("MCE: bank {} status {:#018x} addr {:#x}", i, s, addr);
            status.write(0);
        }
        Msr::new(MSR_IA32_MCG_STATUS).write(0);
        mcg & MCG_STATUS_RIPV != 0
    }
}

/// A #DB in ring 0 (on its IST stack): note it, make sure it cannot repeat,
/// continue. Never fatal: a guest can cause one (`mov ss; syscall` with a
/// pending single step or data breakpoint), as on Xen.
pub fn hypervisor_debug(regs: &mut GuestRegs) {
    let (dr6, dr7): (u64, u64);
    // SAFETY: reading DR6/DR7 and resetting DR6 only touch debug state.
    unsafe {
        core::arch::asm!("mov {0}, dr6", "mov {1}, dr7", out(reg) dr6, out(reg) dr7, options(nostack, preserves_flags));
        core::arch::asm!("mov dr6, {0}", in(reg) xen_core::machine_traps::DR6_DEFAULT, options(nostack, preserves_flags));
    }
    let what = xen_core::machine_traps::hypervisor_debug(dr6, dr7, regs.rflags);
    if what.clear_dr7 {
        xen_core::error!("Hit instruction breakpoint in Xen context");
        // SAFETY: disabling every breakpoint cannot fault; the vCPU's own
        // DR7 comes back from its saved state at the next switch.
        unsafe { core::arch::asm!("mov dr7, {0}", in(reg) 0x400u64, options(nostack, preserves_flags)) };
    }
    if what.clear_tf {
        regs.rflags &= !xen_core::regs::RFLAGS_TF;
    }
    xen_core::warn!(
        "Hit #DB in Xen context: {:04x}:{:016x}, stk {:04x}:{:016x}, dr6 {:x}",
        regs.cs,
        regs.rip,
        regs.ss,
        regs.rsp,
        dr6
    );
}
