//! The event callback: where Xen enters the guest when an event is pending
//! and the vCPU's `evtchn_upcall_mask` is clear.
//!
//! Xen (`create_bounce_frame` in `x86_64/entry.S`) writes, lowest address
//! first, `RCX, R11, RIP, CS, RFLAGS, RSP, SS` on the guest kernel stack
//! (the interrupted stack pointer rounded down to 16 bytes), saves the event
//! mask the vCPU had in CS bits 32-39 and as RFLAGS.IF (inverted), sets the
//! mask, and jumps to the registered address. RCX and R11 are in the frame
//! because Xen's own `syscall`/`sysret` path clobbers them.
//!
//! The entry puts RCX and R11 back, saves every register and the FPU/SSE
//! state (the interrupted code may be any code, compiled Rust uses SSE), runs
//! [`super::do_upcall`], and returns with the `iret` hypercall: it pushes a
//! flags word of 0 (not `VGCF_in_syscall`: restore RCX and R11 too) below
//! `RIP, CS, RFLAGS, RSP, SS` and jumps to entry 23 of the hypercall page,
//! which pushes RCX, R11 and RAX, completing `struct iret_context`. Xen's
//! `do_iret` restores `evtchn_upcall_mask` from the frame's RFLAGS.IF, then
//! on its way out delivers any event that arrived meanwhile (a new frame at
//! the interrupted stack): nothing is lost and upcalls never nest.

use core::arch::global_asm;

use hypercall_abi::callback::{CallbackRegister, CALLBACKOP_register, CALLBACKTYPE_event};
use hypercall_abi::{guest, nr, Errno};

use crate::mm::check;

/// The registers the entry saved, lowest address first, then Xen's bounce
/// frame from RIP on, in place.
#[repr(C)]
pub struct UpcallFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub rip: u64,
    /// Bits 0-15 the selector (RPL 0: the guest was in kernel mode), bits
    /// 32-39 the event mask the vCPU had.
    pub cs: u64,
    /// IF is the inverse of the saved event mask.
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}
const _: () = assert!(core::mem::size_of::<UpcallFrame>() == 20 * 8);

// pv_rt_evtchn_callback: see the module comment. %rbx keeps the frame's
// address across the call (callee-saved); the FXSAVE area is 512 bytes,
// 16-byte aligned (64 here), below it, which also gives the call the
// 16-byte alignment the SysV ABI wants.
global_asm!(
    r#"
    .section .text.pv_rt_evtchn, "ax", @progbits
    .globl pv_rt_evtchn_callback
    .type pv_rt_evtchn_callback, @function
pv_rt_evtchn_callback:
    pop %rcx
    pop %r11
    push %rax
    push %rbx
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %rbp
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, %rbx
    sub $512, %rsp
    and $-64, %rsp
    fxsave64 (%rsp)
    mov %rbx, %rdi
    cld
    call {upcall}
    fxrstor64 (%rsp)
    mov %rbx, %rsp
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rbp
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rbx
    pop %rax
    push $0                         # iret_context.flags
    jmp hypercall_page + {iret_entry}
    .size pv_rt_evtchn_callback, . - pv_rt_evtchn_callback
    "#,
    upcall = sym pv_rt_evtchn_upcall,
    iret_entry = const nr::IRET * 32,
    options(att_syntax)
);

extern "C" {
    fn pv_rt_evtchn_callback();
}

extern "C" fn pv_rt_evtchn_upcall(frame: &mut UpcallFrame) {
    super::do_upcall(frame.cs, frame.rflags, frame.rip);
}

/// The event callback's address, for `callback_op` or a vCPU's context.
pub fn entry() -> u64 {
    pv_rt_evtchn_callback as *const () as u64
}

/// Registers [`entry`] as this vCPU's event callback with
/// `callback_op(CALLBACKOP_register, CALLBACKTYPE_event)` (Xen masks events
/// on entry to it whatever the flags say).
pub fn register() -> Result<(), Errno> {
    let reg = CallbackRegister { r#type: CALLBACKTYPE_event, flags: 0, _pad: 0, address: entry() };
    // SAFETY: Xen reads the structure on our stack; the address is the
    // entry above, which follows Xen's bounce-frame convention.
    check(unsafe { guest::hypercall2(nr::CALLBACK_OP, CALLBACKOP_register as u64, &reg as *const _ as u64) })
        .map(drop)
}
