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
//! Only the two opcodes are recognised here, `0f 21 /r` and `0f 23 /r`,
//! with an optional REX prefix (REX.B picks r8-r15; REX.R would name DR8+,
//! which do not exist: #UD). The ModRM byte's `mod` field is ignored as the
//! processor ignores it for these instructions. Everything else is left to
//! the general privileged-instruction emulation.

use crate::platform::Platform;
use crate::regs::GuestRegs;
use crate::xen::{Next, Xen};

/// What a `mov` to or from a debug register decodes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MovDr {
    /// `true`: `mov %reg, %drN`.
    pub to_dr: bool,
    pub dr: u8,
    /// General register number (0 = rax ... 15 = r15).
    pub gpr: u8,
    pub len: u8,
}

/// Decode `bytes` (read at the guest's RIP). `Err(())`: a `mov` naming
/// DR8-DR15 (#UD); `Ok(None)`: not a `mov` to or from a debug register.
pub fn decode(bytes: &[u8; 4]) -> Result<Option<MovDr>, ()> {
    let (rex, at) = if bytes[0] & 0xf0 == 0x40 { (bytes[0], 1) } else { (0, 0) };
    let Some(op) = bytes.get(at..at + 3) else { return Ok(None) };
    if op[0] != 0x0f || !(op[1] == 0x21 || op[1] == 0x23) {
        return Ok(None);
    }
    let modrm = op[2];
    let dr = ((modrm >> 3) & 7) | if rex & 4 != 0 { 8 } else { 0 };
    if dr > 7 {
        return Err(());
    }
    let gpr = (modrm & 7) | if rex & 1 != 0 { 8 } else { 0 };
    Ok(Some(MovDr { to_dr: op[1] == 0x23, dr, gpr, len: at as u8 + 3 }))
}

fn gpr(regs: &mut GuestRegs, n: u8) -> &mut u64 {
    match n {
        0 => &mut regs.rax,
        1 => &mut regs.rcx,
        2 => &mut regs.rdx,
        3 => &mut regs.rbx,
        4 => &mut regs.rsp,
        5 => &mut regs.rbp,
        6 => &mut regs.rsi,
        7 => &mut regs.rdi,
        8 => &mut regs.r8,
        9 => &mut regs.r9,
        10 => &mut regs.r10,
        11 => &mut regs.r11,
        12 => &mut regs.r12,
        13 => &mut regs.r13,
        14 => &mut regs.r14,
        _ => &mut regs.r15,
    }
}

impl<P: Platform> Xen<P> {
    /// #GP(0) from the guest kernel at a `mov` to or from a debug register:
    /// emulate it and step over it. `None`: not one, the #GP stands.
    pub(crate) fn emulate_mov_dr(&mut self, regs: &mut GuestRegs) -> Option<Next> {
        let (d, v) = self.current?;
        if !self.domains.get(&d)?.vcpus.get(v)?.kernel_mode {
            return None;
        }
        let mut bytes = [0u8; 4];
        // A RIP at the very end of a mapping still reads its 3 bytes.
        let g = self.guest_mem()?;
        if g.copy_from_guest(regs.rip, &mut bytes).is_err() {
            g.copy_from_guest(regs.rip, &mut bytes[..3]).ok()?;
            bytes[3] = 0;
        }
        let insn = match decode(&bytes) {
            Ok(Some(i)) => i,
            Ok(None) => return None,
            Err(()) => {
                regs.entry_vector = crate::traps::TRAP_INVALID_OP;
                return Some(self.deliver_trap(regs, crate::traps::TRAP_INVALID_OP));
            }
        };
        // DR4 and DR5 alias DR6 and DR7 (the guest's CR4.DE is clear).
        let dr = match insn.dr {
            4 => 6,
            5 => 7,
            n => n,
        } as u64;
        if insn.to_dr {
            let value = *gpr(regs, insn.gpr);
            let rc = self.do_set_debugreg([dr, value, 0, 0, 0]);
            if rc.is_err() {
                // Xen's write_dr failure: #GP(0) at the instruction.
                crate::gdprintk!("d{}v{}: mov to dr{} of {:#x} refused", d.0, v, dr, value);
                return None;
            }
        } else {
            let value = self.domains.get(&d)?.vcpus.get(v)?.debugreg[dr as usize];
            *gpr(regs, insn.gpr) = value;
        }
        regs.rip = regs.rip.wrapping_add(insn.len as u64);
        Some(self.schedule(regs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_two_opcodes_and_nothing_else() {
        assert_eq!(decode(&[0x0f, 0x21, 0xc1, 0]), Ok(Some(MovDr { to_dr: false, dr: 0, gpr: 1, len: 3 })));
        assert_eq!(decode(&[0x0f, 0x23, 0xf8, 0]), Ok(Some(MovDr { to_dr: true, dr: 7, gpr: 0, len: 3 })));
        assert_eq!(decode(&[0x41, 0x0f, 0x23, 0xc4]), Ok(Some(MovDr { to_dr: true, dr: 0, gpr: 12, len: 4 })));
        assert_eq!(decode(&[0x44, 0x0f, 0x21, 0xc0]), Err(()), "REX.R: dr8");
        assert_eq!(decode(&[0x0f, 0x20, 0xd8, 0]), Ok(None), "mov from cr3 is not ours");
        assert_eq!(decode(&[0x0f, 0x0b, 0, 0]), Ok(None));
    }
}
