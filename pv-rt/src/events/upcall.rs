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
//! The entry is the trap path's event stub ([`crate::traps::event_callback`]):
//! it puts RCX and R11 back, saves every register and the FPU/SSE state in a
//! [`crate::traps::TrapFrame`] (the interrupted code may be any code,
//! compiled Rust uses SSE), and, when the kernel installed no trap handler,
//! runs [`super::do_upcall`]; it returns with the `iret` hypercall and a
//! flags word of 0 (not `VGCF_in_syscall`: restore RCX and R11 too), which
//! completes `struct iret_context`. Xen's `do_iret` restores
//! `evtchn_upcall_mask` from the frame's RFLAGS.IF, then on its way out
//! delivers any event that arrived meanwhile (a new frame at the interrupted
//! stack): nothing is lost and upcalls never nest.

use hypercall_abi::callback::{CallbackRegister, CALLBACKOP_register, CALLBACKTYPE_event};
use hypercall_abi::{guest, nr, Errno};

use crate::mm::check;

/// The event callback's address, for `callback_op` or a vCPU's context.
pub fn entry() -> u64 {
    crate::traps::event_callback()
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
