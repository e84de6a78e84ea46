//! The physical CPU's stacks.
//!
//! One pCPU for now. `cpu0_stack_top` is both the boot stack and TSS.RSP0: a
//! guest entering the hypervisor (syscall, exception, interrupt) leaves its
//! register frame right below it, so the current vCPU's frame is always at
//! `cpu0_stack_top - size_of::<GuestFrame>()`. Faults that must not trust the
//! current stack (double fault, NMI, machine check, and #DB, which `mov ss`
//! can delay into the first instruction of `syscall_entry`, still on the
//! guest's stack: XSA-260) get IST stacks.

use core::arch::global_asm;

pub const STACK_SIZE: usize = 64 * 1024;
pub const IST_SIZE: usize = 16 * 1024;

global_asm!(
    r#"
    .section .bss.stacks, "aw", @nobits
    .balign 4096
    .global cpu0_stack_bottom, cpu0_stack_top
cpu0_stack_bottom:
    .skip {stack}
cpu0_stack_top:
    .global ist_df_top, ist_nmi_top, ist_mce_top, ist_db_top
    .skip {ist}
ist_df_top:
    .skip {ist}
ist_nmi_top:
    .skip {ist}
ist_mce_top:
    .skip {ist}
ist_db_top:
    "#,
    stack = const STACK_SIZE,
    ist = const IST_SIZE,
    options(att_syntax)
);

extern "C" {
    static cpu0_stack_bottom: u8;
    static cpu0_stack_top: u8;
    static ist_df_top: u8;
    static ist_nmi_top: u8;
    static ist_mce_top: u8;
    static ist_db_top: u8;
}

pub fn stack_top() -> u64 {
    core::ptr::addr_of!(cpu0_stack_top) as u64
}

pub fn stack_bottom() -> u64 {
    core::ptr::addr_of!(cpu0_stack_bottom) as u64
}

/// IST stack tops: double fault, NMI, machine check, debug (IST1..IST4).
pub fn ist_tops() -> [u64; 4] {
    [
        core::ptr::addr_of!(ist_df_top) as u64,
        core::ptr::addr_of!(ist_nmi_top) as u64,
        core::ptr::addr_of!(ist_mce_top) as u64,
        core::ptr::addr_of!(ist_db_top) as u64,
    ]
}
