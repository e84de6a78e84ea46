//! Ways into the hypervisor and the one way back to a guest.
//!
//! Every entry leaves a [`GuestRegs`] frame (Xen's `cpu_user_regs` in spirit):
//! right below `cpu0_stack_top`, which is TSS.RSP0 for exceptions from ring 3
//! and where `syscall_entry` builds the same frame by hand; NMI, #DF and #MC
//! use IST stacks, so theirs lies at the top of their own stack. The Rust
//! handler gets the frame's address as `&mut GuestRegs`, may rewrite it (a
//! result in `rax`, another vCPU's registers after a switch), and
//! `restore_all` returns from it with `iretq`, so whatever the frame says,
//! the CPU does.
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

    /* The hypervisor's Rust code may use SSE registers (the prebuilt core
       does): the guest's FPU/SSE state is saved on every entry and put back
       on every exit, so it survives any hypercall or exception. CR0.TS may
       be set for the guest (fpu_taskswitch): clear it first. */
    .macro SAVE_GUEST_FPU
    clts
    fxsave64 guest_fpu_area(%rip)
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
    /* A guest may enter with RFLAGS.AC set, and exception delivery keeps
       it, which would switch SMAP off for the hypervisor. Clear it (by
       hand: clac faults on CPUs without SMAP). syscall's SFMASK does the
       same for hypercalls. */
    pushfq
    andq $~0x40000, (%rsp)
    popfq
    testb $3, 18*8(%rsp)        /* the interrupted CS: ring 3 is a guest */
    jz 1f
    /* From a guest on an IST stack (NMI, #DB, #MC): move the frame to where
       every guest frame lives, right below cpu0_stack_top (empty while a
       guest runs), as Xen's handle_ist_exception does, so the core may
       switch vCPUs or sleep on it and a nested IST entry cannot clobber
       it. The registers used were saved above. */
    lea cpu0_stack_top(%rip), %rdi
    sub ${frame_size}, %rdi
    cmp %rdi, %rsp
    je 2f
    mov %rsp, %rsi
    mov ${frame_words}, %ecx
    rep movsq
    lea cpu0_stack_top(%rip), %rsp
    sub ${frame_size}, %rsp
2:  mov %rsp, %rdi
    SAVE_GUEST_FPU
    call {guest_exception}
    jmp restore_all
    /* Ring 0 (a hypervisor fault, an NMI, an interrupt while idle): keep
       the interrupted code's vector registers too. */
1:  mov %rsp, %rdi
    fxsave64 hv_fpu_area(%rip)
    call {hypervisor_exception}
    fxrstor64 hv_fpu_area(%rip)
    jmp restore_regs

    /* syscall from ring 3: RCX = guest RIP, R11 = guest RFLAGS, RSP still the
       guest's; IF, TF, DF, AC, NT already cleared by SFMASK. The frame gets
       the CS the guest ran with and a vector that tells 64-bit from 32-bit
       (compatibility-mode) syscalls apart. */
    .macro SYSCALL_ENTRY name, cs, vector
    .balign 16
    .global \name
\name:
    mov %rsp, syscall_guest_rsp(%rip)
    lea cpu0_stack_top(%rip), %rsp
    pushq ${ss}
    pushq syscall_guest_rsp(%rip)
    push %r11
    pushq $\cs
    push %rcx
    pushq $0
    pushq $\vector
    SAVE_ALL
    cld
    SAVE_GUEST_FPU
    mov %rsp, %rdi
    call {guest_syscall}
    jmp restore_all
    .endm

    SYSCALL_ENTRY syscall_entry, {cs}, {trap_syscall}
    SYSCALL_ENTRY syscall32_entry, {cs32}, {trap_syscall32}

    /* Enter (or return to) the guest whose frame is at %rsp: its FPU
       state, its virtual CR0.TS, then its registers. */
    .global restore_all
restore_all:
    fxrstor64 guest_fpu_area(%rip)
    cmpb $0, guest_cr0_ts(%rip)
    je restore_regs
    mov %cr0, %rax
    or $8, %rax
    mov %rax, %cr0
restore_regs:
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
    .global guest_cr0_ts
guest_cr0_ts:
    .byte 0
    .balign 16
    .global guest_fpu_area
guest_fpu_area:
    .skip 512
    .balign 16
hv_fpu_area:
    .skip 512
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

/// The running guest's FXSAVE image, between entry and exit.
pub const FPU_AREA_SIZE: usize = 512;

extern "C" {
    static mut guest_fpu_area: [u8; FPU_AREA_SIZE];
    static mut guest_cr0_ts: u8;
    pub fn syscall_entry();
    pub fn syscall32_entry();
    pub fn enter_guest(regs: *const xen_core::regs::GuestRegs) -> !;
    static idt_stubs: u8;
}

pub fn idt_stubs_addr() -> u64 {
    core::ptr::addr_of!(idt_stubs) as u64
}

/// Copy the running guest's FPU image out (to keep it with its vCPU).
pub fn save_guest_fpu(out: &mut [u8; FPU_AREA_SIZE]) {
    // SAFETY: ring 0 runs with interrupts off on one CPU: nothing else
    // touches the area between the entry's fxsave and the exit's fxrstor.
    unsafe { out.copy_from_slice(&*core::ptr::addr_of!(guest_fpu_area)) }
}

/// Put a vCPU's FPU image where the exit path restores it from.
pub fn load_guest_fpu(image: &[u8; FPU_AREA_SIZE]) {
    // SAFETY: as in save_guest_fpu.
    unsafe { (*core::ptr::addr_of_mut!(guest_fpu_area)).copy_from_slice(image) }
}

/// Whether the exit path sets CR0.TS for the guest (its `fpu_taskswitch`).
pub fn set_guest_ts(ts: bool) {
    // SAFETY: as in save_guest_fpu; a byte flag read by the exit path.
    unsafe { core::ptr::addr_of_mut!(guest_cr0_ts).write(ts as u8) }
}
