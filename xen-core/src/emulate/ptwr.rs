//! Writes to a guest's own page tables (Xen's `ptwr`, in
//! `xen/arch/x86/pv/ro-page-fault.c`).
//!
//! A PV kernel's L1 tables are mapped read-only in its own address space.
//! Linux writes PTEs through those mappings anyway (`set_pte` during early
//! boot, `clear_bit` on a PTE at `fork`): the write faults, and Xen decodes
//! the instruction, computes the new 64-bit entry, and makes it through the
//! same checked path as `mmu_update` (`mod_entry`: flags, owner and type
//! checked before it is written). Only for a guest that enabled
//! `vm_assist(writable_pagetables)` (Linux does, at boot), only L1 tables of
//! the faulting domain, in
//! guest kernel mode, with naturally aligned writes of 1 to 8 bytes, as
//! Xen; anything else is the guest's page fault.

use iced_x86::{Instruction, MemorySize, Mnemonic, OpKind, Register};

use crate::mm::{Owner, PageType};
use crate::platform::Platform;
use crate::regs::GuestRegs;
use crate::xen::{Next, Xen};

/// Arithmetic flags a read-modify-write leaves behind.
const FLAGS_ARITH: u64 = 0x8d5; // CF PF AF ZF SF OF
const CF: u64 = 1 << 0;
const ZF: u64 = 1 << 6;

/// Where a general-purpose register operand lives: (register number in the
/// encoding, bit shift, width in bytes).
fn gpr_slot(r: Register) -> Option<(usize, u32, u32)> {
    let n = r as u32;
    let (al, ax, eax, rax) = (Register::AL as u32, Register::AX as u32, Register::EAX as u32, Register::RAX as u32);
    Some(match n {
        _ if (al..al + 4).contains(&n) => ((n - al) as usize, 0, 1),
        _ if (al + 4..al + 8).contains(&n) => ((n - al - 4) as usize, 8, 1), // AH CH DH BH
        _ if (al + 8..al + 20).contains(&n) => ((n - al - 4) as usize, 0, 1),
        _ if (ax..ax + 16).contains(&n) => ((n - ax) as usize, 0, 2),
        _ if (eax..eax + 16).contains(&n) => ((n - eax) as usize, 0, 4),
        _ if (rax..rax + 16).contains(&n) => ((n - rax) as usize, 0, 8),
        _ => return None,
    })
}

/// The width of an integer memory operand (anything else: 0, refused).
fn operand_bytes(m: MemorySize) -> u32 {
    match m {
        MemorySize::UInt8 | MemorySize::Int8 => 1,
        MemorySize::UInt16 | MemorySize::Int16 => 2,
        MemorySize::UInt32 | MemorySize::Int32 => 4,
        MemorySize::UInt64 | MemorySize::Int64 => 8,
        _ => 0,
    }
}

fn mask(bytes: u32) -> u64 {
    if bytes >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * bytes)) - 1
    }
}

fn read_gpr(regs: &mut GuestRegs, r: Register) -> Option<u64> {
    let (i, shift, bytes) = gpr_slot(r)?;
    Some((*regs.gpr_mut(i) >> shift) & mask(bytes))
}

/// Write a register operand with the CPU's rules: 32-bit writes zero the
/// upper half, 8- and 16-bit writes keep the rest.
fn write_gpr(regs: &mut GuestRegs, r: Register, v: u64) -> Option<()> {
    let (i, shift, bytes) = gpr_slot(r)?;
    let g = regs.gpr_mut(i);
    *g = match bytes {
        4 => v & 0xffff_ffff,
        8 => v,
        _ => (*g & !(mask(bytes) << shift)) | ((v & mask(bytes)) << shift),
    };
    Some(())
}

/// The value an instruction's source operand holds (register or immediate).
fn source(regs: &mut GuestRegs, insn: &Instruction, bytes: u32) -> Option<u64> {
    match insn.op1_kind() {
        OpKind::Register => read_gpr(regs, insn.op1_register()),
        OpKind::Immediate8 | OpKind::Immediate16 | OpKind::Immediate32 | OpKind::Immediate8to16
        | OpKind::Immediate8to32 | OpKind::Immediate8to64 | OpKind::Immediate32to64 => {
            insn.try_immediate(1).ok().map(|v| v & mask(bytes))
        }
        _ => None,
    }
}

/// The outcome of one emulated write: the new memory value (of `bytes`
/// bytes) and what it does to registers and flags.
struct Effect {
    new: u64,
    /// CF/ZF to set (mask, values) after the write.
    flags: Option<(u64, u64)>,
    /// A register that receives the old value (xchg, cmpxchg failure).
    load: Option<(Register, u64)>,
    /// cmpxchg that did not match: no write.
    no_write: bool,
}

/// What `insn` (whose memory operand is the PTE bytes `old`) does.
fn compute(regs: &mut GuestRegs, insn: &Instruction, old: u64, bytes: u32) -> Option<Effect> {
    if insn.op0_kind() != OpKind::Memory {
        return None;
    }
    let plain = |new: u64| Some(Effect { new: new & mask(bytes), flags: None, load: None, no_write: false });
    let arith = |new: u64| {
        let new = new & mask(bytes);
        let sf = 1u64 << (8 * bytes - 1);
        let f = if new == 0 { ZF } else { 0 } | if new & sf != 0 { 0x80 } else { 0 };
        Some(Effect { new, flags: Some((FLAGS_ARITH, f)), load: None, no_write: false })
    };
    match insn.mnemonic() {
        Mnemonic::Mov => plain(source(regs, insn, bytes)?),
        Mnemonic::And => arith(old & source(regs, insn, bytes)?),
        Mnemonic::Or => arith(old | source(regs, insn, bytes)?),
        Mnemonic::Xor => arith(old ^ source(regs, insn, bytes)?),
        Mnemonic::Btr | Mnemonic::Bts => {
            let bit = source(regs, insn, bytes)? & (8 * bytes as u64 - 1);
            let was = (old >> bit) & 1;
            let new = if insn.mnemonic() == Mnemonic::Btr { old & !(1 << bit) } else { old | (1 << bit) };
            Some(Effect { new, flags: Some((CF, was)), load: None, no_write: false })
        }
        Mnemonic::Xchg => {
            let r = insn.op1_register();
            let v = read_gpr(regs, r)?;
            Some(Effect { new: v, flags: None, load: Some((r, old)), no_write: false })
        }
        Mnemonic::Cmpxchg => {
            let expected = regs.rax & mask(bytes);
            let acc = match bytes {
                1 => Register::AL,
                2 => Register::AX,
                4 => Register::EAX,
                _ => Register::RAX,
            };
            if old == expected {
                let v = read_gpr(regs, insn.op1_register())?;
                Some(Effect { new: v, flags: Some((ZF, ZF)), load: None, no_write: false })
            } else {
                Some(Effect { new: old, flags: Some((ZF, 0)), load: Some((acc, old)), no_write: true })
            }
        }
        _ => None,
    }
}

impl<P: Platform> Xen<P> {
    /// A write fault (present, write) at `va` from guest kernel mode: if
    /// `va` is in one of the domain's own L1 tables, make the write as Xen's
    /// ptwr does. `None`: not such a write; the guest gets its #PF.
    pub(crate) fn ptwr_emulate(&mut self, regs: &mut GuestRegs, va: u64) -> Option<Next> {
        let (d, v) = self.current?;
        let dom = self.domains.get(&d)?;
        // Only for guests that asked (Xen's fixup_page_fault checks
        // VM_ASSIST(d, writable_pagetables)); others get their #PF.
        if dom.vm_assist & (1 << hypercall_abi::arch::VMASST_TYPE_writable_pagetables) == 0 || !dom.vcpus.get(v)?.kernel_mode {
            return None;
        }
        let (table, off) = self.guest_mem()?.translate(va, crate::guest_access::Access::Read).ok()?;
        let pg = self.frames.get(table)?;
        if pg.ty != PageType::L1 || pg.type_count == 0 || pg.owner != Owner::Dom(d) {
            return None;
        }
        let insn = self.fetch_insn(regs.rip)?;
        let bytes = operand_bytes(insn.memory_size());
        // Naturally aligned, within one entry (Xen refuses anything else).
        if !matches!(bytes, 1 | 2 | 4 | 8) || va & (bytes as u64 - 1) != 0 {
            return None;
        }
        let index = off / 8;
        let shift = 8 * (off % 8) as u32;
        let entry = self.platform.read_u64(table, index);
        let old = (entry >> shift) & mask(bytes);
        let e = compute(regs, &insn, old, bytes)?;
        if !e.no_write {
            let new_entry = (entry & !(mask(bytes) << shift)) | (e.new << shift);
            if let Err(err) = self.mm().mod_entry(table, index, new_entry, d, false) {
                crate::gdprintk!(
                    "d{}v{} ptwr: could not write L1 entry {:#x} of mfn {:#x} ({})",
                    d.0,
                    v,
                    new_entry,
                    table.0,
                    err.name()
                );
                return None;
            }
        }
        if let Some((r, val)) = e.load {
            write_gpr(regs, r, val)?;
        }
        if let Some((m, f)) = e.flags {
            regs.rflags = (regs.rflags & !m) | f;
        }
        regs.rip = regs.rip.wrapping_add(insn.len() as u64);
        Some(self.schedule(regs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_registers_read_and_write_like_the_cpu() {
        let mut r = GuestRegs { rax: 0x1122_3344_5566_7788, rbx: u64::MAX, ..Default::default() };
        assert_eq!(read_gpr(&mut r, Register::AH), Some(0x77));
        assert_eq!(read_gpr(&mut r, Register::EAX), Some(0x5566_7788));
        write_gpr(&mut r, Register::BL, 0).unwrap();
        assert_eq!(r.rbx, u64::MAX & !0xff);
        write_gpr(&mut r, Register::EBX, 1).unwrap();
        assert_eq!(r.rbx, 1, "32-bit writes zero the top");
        assert_eq!(gpr_slot(Register::R15L), Some((15, 0, 1)));
        assert_eq!(gpr_slot(Register::SPL), Some((4, 0, 1)));
        assert_eq!(gpr_slot(Register::CR0), None);
    }
}
