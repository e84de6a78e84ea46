//! Ways into the hypervisor and the one way back to a guest.
//!
//! Every entry leaves a [`GuestRegs`] frame (Xen's `cpu_user_regs` in spirit)
//! at a fixed place: right below `cpu0_stack_top`, which is TSS.RSP0 for
//! exceptions from ring 3 and where `syscall_entry` builds the same frame by
//! hand. The Rust handler gets `&mut GuestRegs`, may rewrite it (a result in
//! `rax`, another vCPU's registers after a switch), and `restore_all` returns
//! with `iretq`, so whatever the frame says, the CPU does.
//!
//! [`GuestRegs`]: xen_core::regs::GuestRegs

use core::arch::global_asm;

/// Bytes per IDT stub; `descriptors::init` computes gate addresses from it.
pub const STUB_SIZE: u64 = 16;

/// The vector recorded for a 64-bit `syscall` (Xen's TRAP_syscall).
pub const TRAP_SYSCALL: u64 = 0x100;
/// The vector recorded for a `syscall` from 32-bit compatibility mode.
pub const TRAP_SYSCALL32: u64 = 0x101;

global_asm!(
    r#"
    .macro SAVE_ALL
    push %rdi
    push %rsi
    push %rdx
    push %rcx
    push %rax
    push %r8
    push %r9
    push %r10
    push %r11
    push %rbx
    push %rbp
    push %r12
    push %r13
    push %r14
    push %r15
    .endm

    .section .text.entry, "ax"
    .code64

    /* One stub a vector, 16 bytes apart. The CPU pushes an error code for
       8, 10-14, 17, 21, 29, 30; the others push 0 so the frame is uniform. */
    .balign 16
    .global idt_stubs
idt_stubs:
    .set vec, 0
    .rept 256
    .balign 16
    .if (vec == 8) || ((vec >= 10) && (vec <= 14)) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    .else
    pushq $0
    .endif
    pushq $vec
    jmp exception_common
    .set vec, vec + 1
    .endr

exception_common:
    SAVE_ALL
    cld
    mov %rsp, %rdi
    testb $3, 18*8(%rsp)        /* the interrupted CS: ring 3 is a guest */
    jz 1f
    call {guest_exception}
    jmp restore_all
1:  call {hypervisor_exception}
    jmp restore_all

    /* syscall from ring 3: RCX = guest RIP, R11 = guest RFLAGS, RSP still the
       guest's; IF, TF, DF, AC, NT already cleared by SFMASK. */
    .balign 16
    .global syscall_entry
syscall_entry:
    mov %rsp, syscall_guest_rsp(%rip)
    lea cpu0_stack_top(%rip), %rsp
    pushq ${ss}
    pushq syscall_guest_rsp(%rip)
    push %r11
    pushq ${cs}
    push %rcx
    pushq $0
    pushq ${trap_syscall}
    SAVE_ALL
    cld
    mov %rsp, %rdi
    call {guest_syscall}
    jmp restore_all

    /* syscall from 32-bit compatibility code: 32-bit PV is not supported,
       the handler crashes the domain. */
    .balign 16
    .global syscall32_entry
syscall32_entry:
    mov %rsp, syscall_guest_rsp(%rip)
    lea cpu0_stack_top(%rip), %rsp
    pushq ${ss}
    pushq syscall_guest_rsp(%rip)
    push %r11
    pushq ${cs32}
    push %rcx
    pushq $0
    pushq ${trap_syscall32}
    SAVE_ALL
    cld
    mov %rsp, %rdi
    call {guest_syscall}
    jmp restore_all

    /* Enter (or return to) whatever the frame at %rsp describes. */
    .global restore_all
restore_all:
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbp
    pop %rbx
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rax
    pop %rcx
    pop %rdx
    pop %rsi
    pop %rdi
    add $16, %rsp               /* entry vector, error code */
    iretq

    /* First entry into a guest: %rdi = its registers, anywhere but on this
       stack. They are copied to the frame slot at the stack top (which the
       caller's own frames may occupy: we never return to them). */
    .global enter_guest
enter_guest:
    lea cpu0_stack_top(%rip), %rsp
    sub ${frame_size}, %rsp
    mov %rdi, %rsi
    mov %rsp, %rdi
    mov ${frame_words}, %ecx
    rep movsq
    jmp restore_all

    .section .bss
    .balign 8
syscall_guest_rsp:
    .quad 0
    "#,
    guest_exception = sym super::traps::guest_exception,
    hypervisor_exception = sym super::traps::hypervisor_exception,
    guest_syscall = sym super::traps::guest_syscall,
    ss = const super::descriptors::FLAT_RING3_DS as u64,
    cs = const super::descriptors::FLAT_RING3_CS64 as u64,
    cs32 = const super::descriptors::FLAT_RING3_CS32 as u64,
    trap_syscall = const TRAP_SYSCALL,
    trap_syscall32 = const TRAP_SYSCALL32,
    frame_size = const core::mem::size_of::<xen_core::regs::GuestRegs>(),
    frame_words = const core::mem::size_of::<xen_core::regs::GuestRegs>() / 8,
    options(att_syntax)
);

extern "C" {
    pub fn syscall_entry();
    pub fn syscall32_entry();
    pub fn enter_guest(regs: *const xen_core::regs::GuestRegs) -> !;
    static idt_stubs: u8;
}

pub fn idt_stubs_addr() -> u64 {
    core::ptr::addr_of!(idt_stubs) as u64
}
