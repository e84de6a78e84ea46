//! Exceptions that belong to the machine, not to the guest that happens to
//! run, and the #DB the hypervisor itself may take (Xen's `do_nmi`,
//! `do_machine_check` and the `!guest_mode()` half of `do_debug` in
//! `xen/arch/x86/traps.c`).
//!
//! - NMI and #MC arrive asynchronously: the guest running at that moment
//!   did nothing, so it is never crashed for them and never sees them
//!   through its trap table. An NMI is reported to Dom0 as Xen's default
//!   `nmi=dom0` of release builds does (`_XEN_NMIREASON_unknown` in Dom0's
//!   `arch_shared_info.nmi_reason`); a machine check is reported on the
//!   console. Both then continue.
//! - A #DB in ring 0 (XSA-260's class: `mov ss` then `syscall` delays the
//!   #DB into the hypervisor's first instruction, on the guest's stack) is
//!   taken on its own IST stack, noted and continued, never fatal. Guests
//!   cannot point DR0-DR3 at hypervisor addresses (`set_debugreg`), so an
//!   instruction breakpoint cannot fire in ring 0; if one ever does, DR7 is
//!   cleared so it cannot fire again (Xen's "big hammer").

use crate::platform::Platform;
use crate::regs::{GuestRegs, RFLAGS_TF};
use crate::xen::{Next, Xen};

pub const TRAP_NMI: u64 = 2;
pub const TRAP_MACHINE_CHECK: u64 = 18;

/// DR6 bits that are 1 when nothing happened (Xen's `X86_DR6_DEFAULT`).
pub const DR6_DEFAULT: u64 = 0xffff_0ff0;
/// `_XEN_NMIREASON_unknown` (`arch-x86/xen.h`): bit 2 of `nmi_reason`.
pub const XEN_NMIREASON_UNKNOWN: u64 = 1 << 2;

/// A new #DB's DR6 folded into the vCPU's (Xen's merge in `do_debug`):
/// status bits accumulate until the guest clears them, as on hardware.
pub fn merge_dr6(old: u64, new: u64) -> u64 {
    (old | (new & !DR6_DEFAULT)) & (new | !DR6_DEFAULT)
}

/// What to do about a #DB taken in ring 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HypervisorDebug {
    /// An enabled instruction breakpoint fired: clear DR7, or it fires again
    /// on the same instruction forever.
    pub clear_dr7: bool,
    /// RFLAGS.TF was set in ring 0: clear it in the frame.
    pub clear_tf: bool,
}

/// Decide about a ring-0 #DB from DR6, DR7 and the interrupted RFLAGS.
/// DR6 is largely guest-controlled here, so a breakpoint counts only if DR7
/// also enables it as an instruction breakpoint (R/W bits 00).
pub fn hypervisor_debug(dr6: u64, dr7: u64, rflags: u64) -> HypervisorDebug {
    let insn_bp = (0..4).any(|bp| {
        dr6 & (1 << bp) != 0 && (dr7 >> (2 * bp)) & 3 != 0 && (dr7 >> (16 + 4 * bp)) & 3 == 0
    });
    HypervisorDebug { clear_dr7: insn_bp, clear_tf: rflags & RFLAGS_TF != 0 }
}

impl<P: Platform> Xen<P> {
    /// An NMI or a machine check while a guest ran: report it and let the
    /// guest go on (`regs` is untouched).
    pub fn machine_trap(&mut self, regs: &mut GuestRegs) -> Next {
        if regs.entry_vector == TRAP_MACHINE_CHECK {
            // The architecture layer logged the banks; the guest is innocent.
            crate::warn!("MCE: machine check while a guest ran; continuing");
        } else {
            self.nmi_to_dom0();
        }
        self.schedule(regs)
    }

    /// An NMI for no reason the hypervisor knows: tell Dom0 through
    /// `nmi_reason`, as Xen's `nmi=dom0`.
    pub fn nmi_to_dom0(&mut self) {
        crate::warn!("NMI received for unknown reason; reported to Dom0");
        let Some(si) = self.domains.get(&crate::domain::DomId::DOM0).map(|d| d.shared_info) else { return };
        si.shared_info(&self.platform).raise_nmi_reason(XEN_NMIREASON_UNKNOWN);
    }
}
