//! `mov` to and from debug registers in the guest kernel (Xen's
//! `read_dr`/`write_dr` in `pv/emul-priv-op.c`, over `x86emul_read_dr` and
//! `set_debugreg`).
//!
//! A PV kernel runs in ring 3, where `mov %drN, %reg` and `mov %reg, %drN`
//! raise #GP(0). Xen emulates both for the guest kernel with the same
//! checks as the `set_debugreg`/`get_debugreg` hypercalls (no breakpoint
//! on the hypervisor, no general detect or I/O breakpoints), so kernels that
//! program breakpoints the native way work. Guest user mode keeps its #GP.
//!
//! The instruction is decoded by `iced-x86` with every other privileged
//! instruction (`emulate/`); a `mov` naming DR8-DR15, which do not exist,
//! is #UD as on hardware.

use iced_x86::{Code, Instruction, Register};

use crate::domain::DomId;
use crate::emulate::{reg_index, Emul};
use crate::platform::Platform;
use crate::regs::GuestRegs;
use crate::xen::Xen;

impl<P: Platform> Xen<P> {
    /// `mov %drN, %reg` or `mov %reg, %drN` from the guest kernel (the
    /// caller checked kernel mode).
    pub(crate) fn emulate_mov_dr(&mut self, regs: &mut GuestRegs, insn: &Instruction, d: DomId, v: usize) -> Emul {
        let (to_dr, dr, gpr) = match insn.code() {
            Code::Mov_dr_r64 => (true, insn.op0_register(), insn.op1_register()),
            _ => (false, insn.op1_register(), insn.op0_register()),
        };
        let (Some(n), Some(gpr)) = (reg_index(dr, Register::DR0), reg_index(gpr, Register::RAX)) else {
            return Emul::Refused;
        };
        if n > 7 {
            return Emul::Undefined;
        }
        // DR4 and DR5 alias DR6 and DR7 (the guest's CR4.DE is clear).
        let dr = match n {
            4 => 6,
            5 => 7,
            n => n,
        };
        if to_dr {
            let value = *regs.gpr_mut(gpr);
            if self.do_set_debugreg([dr as u64, value, 0, 0, 0]).is_err() {
                // Xen's write_dr failure: #GP(0) at the instruction.
                crate::gdprintk!("d{}v{}: mov to dr{} of {:#x} refused", d.0, v, dr, value);
                return Emul::Refused;
            }
        } else {
            let Some(value) = self.domains.get(&d).and_then(|dd| dd.vcpus.get(v)).map(|vc| vc.debugreg[dr]) else {
                return Emul::Refused;
            };
            *regs.gpr_mut(gpr) = value;
        }
        Emul::Done
    }
}
