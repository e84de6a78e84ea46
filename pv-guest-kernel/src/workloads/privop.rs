//! A privileged instruction in ring 3 must crash the domain: the hypervisor
//! may not emulate it, and with no trap table registered the #GP it injects
//! has nowhere to go. So this workload never prints a verdict when it passes.
//!
//! `lidt` is used because Xen 4.17 emulates several other privileged
//! instructions for PV kernels (`cli`/`sti`, `in`/`out`, `rdmsr`/`wrmsr`,
//! `mov` to/from control registers, `hlt`...) but not descriptor-table loads:
//! a PV kernel sets its IDT with `set_trap_table`.

use core::arch::asm;

use pv_rt::println;

/// The operand of `lidt`.
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

pub fn run(_cmdline: &str) {
    let idtr = DescriptorTablePointer { limit: 0, base: 0 };
    println!("privop: executing lidt in ring {}", current_ring());
    // SAFETY: in ring 3 `lidt` faults before doing anything; were it to run,
    // the empty IDT would only matter to a kernel that takes interrupts
    // through it, which a PV kernel never does.
    unsafe { asm!("lidt [{}]", in(reg) &idtr, options(readonly, nostack, preserves_flags)) };
    println!("privop: lidt completed without crashing the domain");
    println!("Test result: FAILURE");
}
