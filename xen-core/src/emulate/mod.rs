//! Emulation of the privileged instructions a PV kernel executes (Xen's
//! `xen/arch/x86/pv/emul-priv-op.c`).
//!
//! A PV kernel runs in ring 3 with IOPL 0, so port I/O, MSR and control
//! register accesses and the like raise #GP. Xen decodes the faulting
//! instruction, checks it against the vCPU's virtual privilege and the
//! domain's permissions, and either performs it on the guest's behalf (the
//! guest continues after it) or hands the #GP to the guest. xen-core does the
//! same; the instruction bytes are fetched through the guest's own page
//! tables and decoded by `iced-x86` (decoder only), so no prefix, operand size
//! or length is hand-decoded here.

pub mod io;
pub mod msr;
mod priv_op;
mod ptwr;

use iced_x86::{Code, Decoder, DecoderOptions, Instruction, OpKind, Register};

use crate::guest_access::Access;
use crate::platform::Platform;
use crate::regs::{GuestRegs, RFLAGS_DF};
use crate::xen::{Next, Xen};

/// Longest x86 instruction.
const MAX_INSN_LEN: usize = 15;

/// String I/O iterations done per entry; a longer `rep` is resumed by
/// re-executing it (rip stays, rcx counts down), so one guest cannot hold
/// the CPU, as Xen's emulator breaks long repeats.
const REP_CHUNK: u64 = 1024;

/// The index of `r` among `base`'s sixteen registers (RAX..R15, DR0..DR15,
/// CR0..CR15 are each contiguous in `iced-x86`'s numbering; its own
/// `Register::number` needs the larger `instr_info` feature).
pub(crate) fn reg_index(r: Register, base: Register) -> Option<usize> {
    let i = (r as u32).checked_sub(base as u32)?;
    (i < 16).then_some(i as usize)
}

/// What one emulation achieved.
pub(crate) enum Emul {
    /// Done: continue after the instruction.
    Done,
    /// Partly done (a long `rep`): run the instruction again.
    Again,
    /// Not an operation Xen emulates here, or not allowed: the guest gets #GP.
    Refused,
    /// Guest memory the instruction needed was not accessible (a string
    /// I/O element): the guest gets #PF at `addr`, as from the CPU.
    PageFault { addr: u64, write: bool },
    /// An encoding the processor itself rejects (a `mov` naming DR8-DR15):
    /// the guest gets #UD.
    Undefined,
}

impl<P: Platform> Xen<P> {
    /// A #GP(0) from the current vCPU: emulate the instruction if Xen would.
    /// `None` means the #GP goes to the guest as it is.
    pub(crate) fn emulate_privileged_op(&mut self, regs: &mut GuestRegs) -> Option<Next> {
        let insn = self.fetch_insn(regs.rip)?;
        match self.emulate(regs, &insn) {
            Emul::Done => {
                regs.rip = regs.rip.wrapping_add(insn.len() as u64);
                Some(self.schedule(regs))
            }
            Emul::Again => Some(self.schedule(regs)),
            Emul::Refused => None,
            Emul::PageFault { addr, write } => {
                let present = self.guest_mem().is_some_and(|g| g.translate(addr, Access::Read).is_ok());
                regs.entry_vector = crate::traps::TRAP_PAGE_FAULT;
                regs.error_code = present as u64 | if write { 2 } else { 0 };
                Some(self.guest_exception(regs, addr))
            }
            Emul::Undefined => {
                regs.entry_vector = crate::traps::TRAP_INVALID_OP;
                Some(self.deliver_trap(regs, crate::traps::TRAP_INVALID_OP))
            }
        }
    }

    /// Fetch and decode the instruction at `rip` as the guest sees it.
    pub(crate) fn fetch_insn(&self, rip: u64) -> Option<Instruction> {
        let g = self.guest_mem()?;
        let mut buf = [0u8; MAX_INSN_LEN];
        // To the end of the page first: the next page may be unmapped and a
        // short instruction must still decode.
        let first = MAX_INSN_LEN.min(4096 - (rip & 0xfff) as usize);
        g.copy_from_guest(rip, &mut buf[..first]).ok()?;
        let n = if first < MAX_INSN_LEN
            && g.copy_from_guest(rip.wrapping_add(first as u64), &mut buf[first..])
                .is_ok()
        {
            MAX_INSN_LEN
        } else {
            first
        };
        let insn = Decoder::with_ip(64, &buf[..n], rip, DecoderOptions::NONE).decode();
        if !insn.is_invalid() {
            return Some(insn);
        }
        // A `mov` naming DR8-DR15 is an invalid encoding to the decoder, but
        // emulation must see it to raise #UD as Xen's `read_dr`/`write_dr`
        // do; nothing else invalid is let through.
        let lax = Decoder::with_ip(64, &buf[..n], rip, DecoderOptions::NO_INVALID_CHECK).decode();
        matches!(lax.code(), Code::Mov_r64_dr | Code::Mov_dr_r64).then_some(lax)
    }

    fn emulate(&mut self, regs: &mut GuestRegs, insn: &Instruction) -> Emul {
        match io_form(insn) {
            Some(f) => self.emulate_io(regs, insn, f),
            None => self.emulate_priv_op(regs, insn),
        }
    }

    /// Xen's `guest_io_okay`: may the current vCPU execute an I/O
    /// instruction on `bytes` bytes at `port`?
    fn guest_io_okay(&self, port: u16, bytes: u8) -> bool {
        let Some((d, v)) = self.current else {
            return false;
        };
        let Some(vc) = self.domains.get(&d).and_then(|d| d.vcpus.get(v)) else {
            return false;
        };
        if io::iopl_ok(&vc.io, vc.kernel_mode) {
            return true;
        }
        let end = port as u32 + bytes as u32;
        if vc.io.iobmp_limit <= end || !vc.kernel_mode {
            return false;
        }
        // Two bitmap bytes cover any access; bytes the guest cannot read
        // count as set (denied), as Xen's partial copy does.
        let mut x = [0xffu8; 2];
        if let Some(g) = self.guest_mem() {
            let at = vc.io.iobmp.wrapping_add((port >> 3) as u64);
            if g.copy_from_guest(at, &mut x[..1]).is_ok() {
                let _ = g.copy_from_guest(at.wrapping_add(1), &mut x[1..]);
            }
        }
        let want = ((1u32 << bytes) - 1) << (port & 7);
        u16::from_le_bytes(x) as u32 & want == 0
    }

    fn emulate_io(&mut self, regs: &mut GuestRegs, insn: &Instruction, f: IoForm) -> Emul {
        let port = match f.port {
            PortFrom::Imm => insn.immediate8() as u16,
            PortFrom::Dx => regs.rdx as u16,
        };
        if !self.guest_io_okay(port, f.bytes) {
            let (d, v) = self.current.map_or((0, 0), |(d, v)| (d.0, v));
            crate::gdprintk!("d{}v{} I/O port {:#06x} not permitted (IOPL)", d, v, port);
            return Emul::Refused;
        }
        let Some((d, _)) = self.current else {
            return Emul::Refused;
        };
        match f.kind {
            IoKind::In => {
                let v = self.io_read(d, port, f.bytes);
                regs.rax = match f.bytes {
                    1 => (regs.rax & !0xff) | v as u64,
                    2 => (regs.rax & !0xffff) | v as u64,
                    _ => v as u64,
                };
                Emul::Done
            }
            IoKind::Out => {
                self.io_write(d, port, f.bytes, regs.rax as u32);
                Emul::Done
            }
            IoKind::Ins | IoKind::Outs => self.emulate_string_io(regs, insn, f, port),
        }
    }

    /// `ins`/`outs`, with or without `rep`: element by element through the
    /// guest's page tables. A fault on guest memory stops at that element
    /// with #PF for the guest, as from the CPU.
    fn emulate_string_io(
        &mut self,
        regs: &mut GuestRegs,
        insn: &Instruction,
        f: IoForm,
        port: u16,
    ) -> Emul {
        let Some((d, _)) = self.current else {
            return Emul::Refused;
        };
        let addr32 = matches!(insn.op0_kind(), OpKind::MemoryESEDI)
            || matches!(insn.op1_kind(), OpKind::MemorySegESI);
        let amask = if addr32 { u32::MAX as u64 } else { u64::MAX };
        // A segment override to FS/GS would need the base: not emulated.
        if matches!(insn.memory_segment(), Register::FS | Register::GS) && f.kind == IoKind::Outs {
            return Emul::Refused;
        }
        // F2 repeats string I/O as F3 does (there is no flag to test).
        let rep = insn.has_rep_prefix() || insn.has_repne_prefix();
        let mut count = if rep { regs.rcx & amask } else { 1 };
        let step = if regs.rflags & RFLAGS_DF != 0 {
            (f.bytes as u64).wrapping_neg()
        } else {
            f.bytes as u64
        };
        let mut done = 0;
        while count != 0 && done < REP_CHUNK {
            let ok = match f.kind {
                IoKind::Ins => {
                    let v = self.io_read(d, port, f.bytes);
                    let at = regs.rdi & amask;
                    let r = self.guest_mem().map(|g| {
                        g.copy_to_guest(at, &v.to_le_bytes()[..f.bytes as usize])
                            .is_ok()
                    });
                    if r == Some(true) {
                        regs.rdi = (regs.rdi & !amask) | (regs.rdi.wrapping_add(step) & amask);
                    }
                    r == Some(true)
                }
                _ => {
                    let mut b = [0u8; 4];
                    let at = regs.rsi & amask;
                    let r = self
                        .guest_mem()
                        .map(|g| g.copy_from_guest(at, &mut b[..f.bytes as usize]).is_ok());
                    if r == Some(true) {
                        self.io_write(d, port, f.bytes, u32::from_le_bytes(b));
                        regs.rsi = (regs.rsi & !amask) | (regs.rsi.wrapping_add(step) & amask);
                    }
                    r == Some(true)
                }
            };
            if !ok {
                let (addr, write) = match f.kind {
                    IoKind::Ins => (regs.rdi & amask, true),
                    _ => (regs.rsi & amask, false),
                };
                // The element's first byte, or the page after it when only
                // its tail crosses into a page the guest cannot reach.
                let head_ok = self.guest_mem().is_some_and(|g| g.translate(addr, Access::Read).is_ok());
                let addr = if head_ok { (addr | 0xfff).wrapping_add(1) } else { addr };
                return Emul::PageFault { addr, write };
            }
            count -= 1;
            done += 1;
            if rep {
                regs.rcx = (regs.rcx & !amask) | count;
            }
        }
        if count == 0 {
            Emul::Done
        } else {
            Emul::Again
        }
    }

    fn io_read(&mut self, d: crate::domain::DomId, port: u16, bytes: u8) -> u32 {
        let Some(dom) = self.domains.get_mut(&d) else {
            return u32::MAX;
        };
        let privileged = dom.privileged;
        io::guest_io_read(&self.platform, &mut dom.io, privileged, port, bytes)
    }

    fn io_write(&mut self, d: crate::domain::DomId, port: u16, bytes: u8, data: u32) {
        let Some(dom) = self.domains.get_mut(&d) else {
            return;
        };
        let privileged = dom.privileged;
        io::guest_io_write(&self.platform, &mut dom.io, privileged, port, bytes, data)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum IoKind {
    In,
    Out,
    Ins,
    Outs,
}

#[derive(Clone, Copy)]
enum PortFrom {
    Imm,
    Dx,
}

#[derive(Clone, Copy)]
struct IoForm {
    kind: IoKind,
    bytes: u8,
    port: PortFrom,
}

/// The port I/O instructions, by their decoded form.
fn io_form(insn: &Instruction) -> Option<IoForm> {
    use IoKind::*;
    use PortFrom::*;
    let (kind, bytes, port) = match insn.code() {
        Code::In_AL_imm8 => (In, 1, Imm),
        Code::In_AX_imm8 => (In, 2, Imm),
        Code::In_EAX_imm8 => (In, 4, Imm),
        Code::In_AL_DX => (In, 1, Dx),
        Code::In_AX_DX => (In, 2, Dx),
        Code::In_EAX_DX => (In, 4, Dx),
        Code::Out_imm8_AL => (Out, 1, Imm),
        Code::Out_imm8_AX => (Out, 2, Imm),
        Code::Out_imm8_EAX => (Out, 4, Imm),
        Code::Out_DX_AL => (Out, 1, Dx),
        Code::Out_DX_AX => (Out, 2, Dx),
        Code::Out_DX_EAX => (Out, 4, Dx),
        Code::Insb_m8_DX => (Ins, 1, Dx),
        Code::Insw_m16_DX => (Ins, 2, Dx),
        Code::Insd_m32_DX => (Ins, 4, Dx),
        Code::Outsb_DX_m8 => (Outs, 1, Dx),
        Code::Outsw_DX_m16 => (Outs, 2, Dx),
        Code::Outsd_DX_m32 => (Outs, 4, Dx),
        _ => return None,
    };
    Some(IoForm { kind, bytes, port })
}
