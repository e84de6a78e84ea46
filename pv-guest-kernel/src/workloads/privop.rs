//! A privileged instruction in ring 3 must crash the domain: the hypervisor
//! may not emulate it, and with no trap table registered the #GP it injects
//! has nowhere to go. So this workload never prints a verdict when it passes.
//!
//! The default, `lidt`, is one Xen 4.17 does not emulate for PV kernels (they
//! set their IDT with `set_trap_table`); `insn=<name>` picks another, to see
//! what a hypervisor emulates. Seen on Xen 4.17.7 as Dom0: `lidt`, `lgdt`,
//! `ltr`, `cli` (IOPL 0), `hlt` and `in` (no I/O privilege set up) crash the
//! domain; `rdmsr`, `wbinvd` and reading `%cr3` are emulated and return.

use core::arch::asm;

use pv_rt::{cmdline, println};

/// The operand of `lidt`/`lgdt`.
#[repr(C, packed)]
struct DescriptorTablePointer {
    limit: u16,
    base: u64,
}

fn current_ring() -> u16 {
    let cs: u16;
    // SAFETY: reading %cs has no side effects.
    unsafe { asm!("mov {0:x}, cs", out(reg) cs, options(nomem, nostack, preserves_flags)) };
    cs & 3
}

const INSNS: &[&str] = &["lidt", "lgdt", "ltr", "cli", "hlt", "rdmsr", "in", "wbinvd", "mov-from-cr3"];

pub fn run(cmd: &str) {
    let insn = cmdline::get(cmd, "insn").unwrap_or("lidt");
    if !INSNS.contains(&insn) {
        println!("privop: unknown insn '{}'", insn);
        println!("Test result: FAILURE");
        return;
    }
    println!("privop: executing {} in ring {}", insn, current_ring());
    execute(insn);
    println!("privop: {} completed without crashing the domain", insn);
    println!("Test result: FAILURE");
}

fn execute(insn: &str) {
    let dtr = DescriptorTablePointer { limit: 0, base: 0 };
    // SAFETY: in ring 3 each of these (all arms) faults before it has any
    // effect. Where a hypervisor emulates one instead, the operands are
    // harmless: an empty IDT/GDT a PV kernel never uses, a null selector, the
    // TSC MSR read, the PIT status port read, a cache flush, a register read.
    unsafe {
        match insn {
            "lidt" => asm!("lidt [{}]", in(reg) &dtr, options(readonly, nostack, preserves_flags)),
            "lgdt" => asm!("lgdt [{}]", in(reg) &dtr, options(readonly, nostack, preserves_flags)),
            "ltr" => asm!("ltr {0:x}", in(reg) 0u16, options(nomem, nostack, preserves_flags)),
            "cli" => asm!("cli", options(nomem, nostack)),
            "hlt" => asm!("hlt", options(nomem, nostack, preserves_flags)),
            "rdmsr" => asm!("rdmsr", in("ecx") 0x10u32, out("eax") _, out("edx") _,
                            options(nomem, nostack, preserves_flags)),
            "in" => asm!("in al, dx", in("dx") 0x61u16, out("al") _,
                         options(nomem, nostack, preserves_flags)),
            "wbinvd" => asm!("wbinvd", options(nostack, preserves_flags)),
            "mov-from-cr3" => asm!("mov {}, cr3", out(reg) _, options(nomem, nostack, preserves_flags)),
            _ => {}
        }
    }
}
