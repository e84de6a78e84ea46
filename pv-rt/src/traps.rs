//! Exceptions, software interrupts, callbacks and guest user mode for a
//! 64-bit PV kernel.
//!
//! A PV kernel owns no IDT. It hands Xen a virtual one (`set_trap_table`),
//! and Xen delivers each exception by writing a *bounce frame* on the guest
//! kernel's stack (`create_bounce_frame` in Xen's `x86_64/entry.S`), lowest
//! address first:
//!
//! ```text
//! RCX, R11, [error code,] RIP, CS, RFLAGS, RSP, SS
//! ```
//!
//! The frame ends 16-byte aligned: at the interrupted stack pointer rounded
//! down when the guest was in kernel mode, at the registered kernel stack
//! (`stack_switch`) when it was in user mode. CS carries the event mask the
//! vCPU had in bits 32-39 and has RPL 0 if the guest was in kernel mode;
//! RFLAGS.IF is the inverse of that mask. The handler runs with RCX and R11
//! on top of the stack because `syscall` clobbered them on the way into
//! Xen; like Linux's `xen_pv_trap` our stubs pop them back first. The way
//! back is the `iret` hypercall: push a flags word and jump to entry 23 of
//! the hypercall page, which pushes RCX, R11 and RAX, completing
//! `struct iret_context` (`arch-x86/xen-x86_64.h`).
//!
//! The callbacks (`callback_op`, `callback.h`) arrive with the same frame,
//! without an error code: the event upcall, the syscall callback (a
//! `syscall` instruction in guest user mode: Xen switches to the kernel's
//! page tables and stack, RIP/RFLAGS/RSP are the user's, and the return is
//! `iret` with `VGCF_in_syscall`, which restores like `sysret`), and the
//! failsafe callback (Xen could not load the segment registers the guest
//! asked for; the frame then has DS, ES, FS, GS between R11 and RIP).
//!
//! Every entry here saves all general registers and the FPU/SSE state
//! (compiled Rust uses SSE freely), calls one [`Handler`] that the kernel
//! installs, and returns the way the handler says ([`Resume`]).
//!
//! Guest user mode ([`enter_user`]) runs on its own top-level page table
//! (`MMUEXT_NEW_USER_BASEPTR`, made with [`crate::mm::Mm::new_l4`]); it is
//! entered with `iret` to a frame whose CS has RPL 3, and left for good when
//! the handler answers [`Resume::ExitUser`], which returns from
//! [`enter_user`].

use core::arch::global_asm;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use hypercall_abi::arch::{TrapInfo, FLAT_KERNEL_CS, FLAT_KERNEL_SS, VGCF_in_syscall};
use hypercall_abi::callback::{
    CallbackRegister, CALLBACKF_mask_events, CALLBACKOP_register, CALLBACKTYPE_event, CALLBACKTYPE_failsafe,
    CALLBACKTYPE_syscall,
};
use hypercall_abi::guest;
use hypercall_abi::Errno;

use crate::mm::check;

/// [`TrapFrame::entry_vector`] of the syscall callback (guest user mode ran
/// `syscall`).
pub const VECTOR_SYSCALL: u64 = 0x100;
/// [`TrapFrame::entry_vector`] of the failsafe callback.
pub const VECTOR_FAILSAFE: u64 = 0x101;
/// [`TrapFrame::entry_vector`] of the event upcall.
pub const VECTOR_EVENT: u64 = 0x102;

/// `trap_info.flags`: the lowest privilege level allowed to raise the vector
/// with `int` (bits 0-1; Xen's `TI_GET_DPL`).
pub const TI_DPL3: u8 = 3;
/// `trap_info.flags` bit 2 (`TI_SET_IF`): mask events on entry, like an
/// interrupt gate clears IF.
pub const TI_MASK_EVENTS: u8 = 4;

/// What an entry stub saved, lowest address first: the general registers
/// (in Xen's `cpu_user_regs` order, the layout xen-core's own entry frame
/// has too), then the vector and error code (0 for vectors without one),
/// then Xen's bounce frame from RIP on, in place. `&frame.rip` is where Xen
/// wrote RIP, and the frame Xen wrote ends at [`TrapFrame::frame_end`]. `cs`
/// has RPL 0 if the guest kernel was interrupted and the event mask the
/// vCPU had in bits 32-39; RFLAGS.IF is the inverse of that mask.
pub use hypercall_abi::arch::SavedRegs as TrapFrame;

/// How the handler wants the entry to end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resume {
    /// `iret` to the (possibly edited) frame: RAX, R11, RCX from the frame.
    Iret,
    /// `iret` with `VGCF_in_syscall`, for the syscall callback: RAX from the
    /// frame, RCX and R11 set as `sysret` would (RIP and RFLAGS).
    Sysret,
    /// Abandon guest user mode: [`enter_user`] returns this value. Only
    /// while a user task runs.
    ExitUser(u64),
}

/// The kernel's handler for every exception, software interrupt and
/// callback; `frame.entry_vector` says which.
pub type Handler = fn(&mut TrapFrame) -> Resume;

/// The installed [`Handler`], as an address (0: none yet).
static HANDLER: AtomicUsize = AtomicUsize::new(0);

/// Kernel stack pointer saved by [`enter_user`] (0: no user task runs).
static USER_SAVED_RSP: AtomicU64 = AtomicU64::new(0);
/// What [`enter_user`] returns.
static USER_EXIT_CODE: AtomicU64 = AtomicU64::new(0);

/// The stack Xen switches to when user mode is interrupted
/// (`stack_switch`): our own, so that the frames it receives never land on
/// the stack [`enter_user`] was called on.
const KERNEL_STACK_SIZE: usize = 16 * 1024;

/// The entry stubs: `(vector, entry point, default trap_info flags)`.
/// Vectors 3 (`int3`), 4 (`into`) and 0x80 may be raised from user mode,
/// as on Linux; #PF masks events on entry as Linux's interrupt gate does.
/// 0x81 has a DPL-0 entry, for tests of `int N` that the entry refuses.
macro_rules! trap_stubs {
    ($( $vector:literal => $name:ident, $kind:ident, $flags:expr; )*) => {
        $( trap_stub!($vector, $name, $kind); )*
        extern "C" { $( fn $name(); )* }
        const STUBS: &[(u8, unsafe extern "C" fn(), u8)] = &[ $( ($vector, $name, $flags) ),* ];
    };
}

// One stub per vector: put back RCX and R11 (syscall clobbered them on the
// way into Xen, which saved them in the frame), make the frame uniform with
// an error code of 0 where the CPU pushes none, add the vector, and go to
// the common path.
macro_rules! trap_stub {
    ($vector:literal, $name:ident, noerr) => {
        global_asm!(
            concat!(
                ".section .text.pv_rt_traps, \"ax\", @progbits\n",
                ".globl ", stringify!($name), "\n",
                stringify!($name), ":\n",
                "    pop %rcx\n",
                "    pop %r11\n",
                "    push $0\n",
                "    push $", stringify!($vector), "\n",
                "    jmp pv_rt_trap_common\n"
            ),
            options(att_syntax)
        );
    };
    ($vector:literal, $name:ident, err) => {
        global_asm!(
            concat!(
                ".section .text.pv_rt_traps, \"ax\", @progbits\n",
                ".globl ", stringify!($name), "\n",
                stringify!($name), ":\n",
                "    pop %rcx\n",
                "    pop %r11\n",
                "    push $", stringify!($vector), "\n",
                "    jmp pv_rt_trap_common\n"
            ),
            options(att_syntax)
        );
    };
}

trap_stubs! {
    0 => pv_rt_trap_de, noerr, 0;
    1 => pv_rt_trap_db, noerr, 0;
    3 => pv_rt_trap_bp, noerr, TI_DPL3;
    4 => pv_rt_trap_of, noerr, TI_DPL3;
    5 => pv_rt_trap_br, noerr, 0;
    6 => pv_rt_trap_ud, noerr, 0;
    7 => pv_rt_trap_nm, noerr, 0;
    10 => pv_rt_trap_ts, err, 0;
    11 => pv_rt_trap_np, err, 0;
    12 => pv_rt_trap_ss, err, 0;
    13 => pv_rt_trap_gp, err, 0;
    14 => pv_rt_trap_pf, err, TI_MASK_EVENTS;
    16 => pv_rt_trap_mf, noerr, 0;
    17 => pv_rt_trap_ac, err, 0;
    19 => pv_rt_trap_xm, noerr, 0;
    0x80 => pv_rt_trap_int80, noerr, TI_DPL3;
    0x81 => pv_rt_trap_int81, noerr, 0;
}

// The common path, the callbacks, and user-mode entry and exit.
//
// pv_rt_trap_common: the stack holds vector, error code, RIP, CS, RFLAGS,
// RSP, SS. Save the general registers (completing a TrapFrame), save the
// FPU/SSE state on a 64-byte aligned area below, call the dispatcher with
// the frame, restore. The dispatcher's answer is the iret flags word, or -1
// to leave user mode. The flags go where the error code was, so that after
// dropping the vector the stack holds {flags, RIP, CS, RFLAGS, RSP, SS}, and
// the iret entry of the hypercall page pushes RCX, R11, RAX below: a whole
// struct iret_context.
//
// pv_rt_enter_user(rip, rsp, rflags): save the callee-saved registers and
// the stack pointer, then iret to CS = FLAT_USER_CS64 (RPL 3: Xen switches
// to the user page table) with every general register cleared, so that no
// kernel value leaks into user mode.
//
// pv_rt_user_exit: reached from the common path, on whatever stack the
// entry from user mode left us; go back to the stack pv_rt_enter_user saved
// and return from it.
global_asm!(
    r#"
    .section .text.pv_rt_traps, "ax", @progbits
    .globl pv_rt_trap_common
pv_rt_trap_common:
    push %rdi                       # cpu_user_regs order: see TrapFrame
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
    mov %rsp, %rbx                  # the TrapFrame; rbx survives the call
    sub $512, %rsp
    and $-64, %rsp
    fxsave64 (%rsp)
    mov %rbx, %rdi
    cld
    call {dispatch}
    fxrstor64 (%rsp)
    mov %rbx, %rsp
    cmp $-1, %rax
    je pv_rt_user_exit
    mov %rax, {error_slot}(%rsp)    # the iret flags word
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
    add $8, %rsp                    # drop the vector
    jmp hypercall_page + {iret_entry}

    .globl pv_rt_syscall_callback
pv_rt_syscall_callback:
    pop %rcx
    pop %r11
    push $0
    push ${vector_syscall}
    jmp pv_rt_trap_common

    .globl pv_rt_event_callback
pv_rt_event_callback:
    pop %rcx
    pop %r11
    push $0
    push ${vector_event}
    jmp pv_rt_trap_common

    .globl pv_rt_failsafe_callback
pv_rt_failsafe_callback:
    pop %rcx
    pop %r11
    push $0
    push ${vector_failsafe}
    jmp pv_rt_trap_common

    .globl pv_rt_enter_user
pv_rt_enter_user:
    push %rbp
    push %rbx
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, {saved_rsp}(%rip)
    push ${user_ss}                 # SS
    push %rsi                       # RSP
    push %rdx                       # RFLAGS
    push ${user_cs}                 # CS
    push %rdi                       # RIP
    push $0                         # flags
    xor %eax, %eax
    xor %ebx, %ebx
    xor %ecx, %ecx
    xor %edx, %edx
    xor %esi, %esi
    xor %edi, %edi
    xor %ebp, %ebp
    xor %r8d, %r8d
    xor %r9d, %r9d
    xor %r10d, %r10d
    xor %r11d, %r11d
    xor %r12d, %r12d
    xor %r13d, %r13d
    xor %r14d, %r14d
    xor %r15d, %r15d
    jmp hypercall_page + {iret_entry}

    .globl pv_rt_user_exit
pv_rt_user_exit:
    mov {saved_rsp}(%rip), %rsp
    movq $0, {saved_rsp}(%rip)
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbx
    pop %rbp
    mov {exit_code}(%rip), %rax
    ret

    .section .bss.pv_rt_kernel_stack, "aw", @nobits
    .balign 4096
    .globl pv_rt_kernel_stack_guard
pv_rt_kernel_stack_guard:           # unmapped at start (start.rs)
    .skip 4096
    .globl pv_rt_kernel_stack
pv_rt_kernel_stack:
    .skip {kernel_stack_size}
    .globl pv_rt_kernel_stack_top
pv_rt_kernel_stack_top:
    "#,
    dispatch = sym pv_rt_trap_dispatch,
    error_slot = const core::mem::offset_of!(TrapFrame, error_code),
    iret_entry = const hypercall_abi::nr::IRET * 32,
    vector_syscall = const VECTOR_SYSCALL,
    vector_event = const VECTOR_EVENT,
    vector_failsafe = const VECTOR_FAILSAFE,
    saved_rsp = sym USER_SAVED_RSP,
    exit_code = sym USER_EXIT_CODE,
    user_ss = const hypercall_abi::arch::FLAT_USER_SS as u64,
    user_cs = const hypercall_abi::arch::FLAT_USER_CS as u64,
    kernel_stack_size = const KERNEL_STACK_SIZE,
    options(att_syntax)
);

extern "C" {
    fn pv_rt_syscall_callback();
    fn pv_rt_event_callback();
    fn pv_rt_failsafe_callback();
    fn pv_rt_enter_user(rip: u64, rsp: u64, rflags: u64) -> u64;
    static pv_rt_kernel_stack_top: u8;
    static pv_rt_kernel_stack_guard: u8;
}

/// Called by the common path with the saved frame; returns the iret flags
/// word, or -1 to leave user mode.
extern "C" fn pv_rt_trap_dispatch(frame: &mut TrapFrame) -> u64 {
    if frame.entry_vector == VECTOR_FAILSAFE {
        // The frame holds DS, ES, FS, GS where RIP, CS, RFLAGS and RSP would
        // be: Xen failed to load one of them. We never load selectors that
        // could go stale, so this is a bug worth stopping for.
        crate::println!(
            "pv-rt: failsafe callback: ds={:#x} es={:#x} fs={:#x} gs={:#x}",
            frame.rip, frame.cs, frame.rflags, frame.rsp
        );
        crate::crash();
    }
    let handler = HANDLER.load(Ordering::Acquire);
    if handler == 0 && frame.entry_vector == VECTOR_EVENT {
        // A kernel without a trap handler (only `events::upcall::register`)
        // gets the event upcall itself.
        crate::events::do_upcall(frame.cs, frame.rflags, frame.rip);
        return 0;
    }
    if handler == 0 {
        crate::println!("pv-rt: no trap handler installed: {}", frame);
        crate::crash();
    }
    // SAFETY: HANDLER only ever holds 0 or a `Handler` stored by `install`.
    let handler: Handler = unsafe { core::mem::transmute::<usize, Handler>(handler) };
    match handler(frame) {
        Resume::Iret => 0,
        Resume::Sysret => VGCF_in_syscall,
        Resume::ExitUser(code) => {
            if USER_SAVED_RSP.load(Ordering::Relaxed) == 0 {
                crate::println!("pv-rt: ExitUser with no user task: {}", frame);
                crate::crash();
            }
            USER_EXIT_CODE.store(code, Ordering::Relaxed);
            u64::MAX
        }
    }
}

/// The entry point of `vector`'s stub, if there is one.
pub fn stub(vector: u8) -> Option<u64> {
    STUBS.iter().find(|(v, _, _)| *v == vector).map(|&(_, f, _)| f as usize as u64)
}

/// The syscall, event and failsafe callback entry points.
pub fn syscall_callback() -> u64 {
    pv_rt_syscall_callback as *const () as u64
}
pub fn event_callback() -> u64 {
    pv_rt_event_callback as *const () as u64
}
pub fn failsafe_callback() -> u64 {
    pv_rt_failsafe_callback as *const () as u64
}

/// The guard page below the stack Xen switches to from user mode.
pub(crate) fn kernel_stack_guard() -> u64 {
    &raw const pv_rt_kernel_stack_guard as u64
}

/// The top of the stack Xen switches to when user mode is interrupted.
pub fn kernel_stack_top() -> u64 {
    &raw const pv_rt_kernel_stack_top as u64
}

/// Entries of the default trap table, plus the terminator.
pub const TRAP_TABLE_LEN: usize = STUB_COUNT + 1;
const STUB_COUNT: usize = 17;
const _: () = assert!(STUBS.len() == STUB_COUNT);

/// The virtual IDT of our stubs, each with its default flags, ending with the
/// all-zero entry `set_trap_table` stops at.
pub fn default_trap_table() -> [TrapInfo; TRAP_TABLE_LEN] {
    let mut table = [TrapInfo::default(); TRAP_TABLE_LEN];
    for (ti, &(vector, f, flags)) in table.iter_mut().zip(STUBS) {
        *ti = TrapInfo { vector, flags, cs: FLAT_KERNEL_CS, _pad: 0, address: f as usize as u64 };
    }
    table
}

/// Makes `handler` the kernel's handler and tells Xen about our entry
/// points: the default trap table, the kernel stack for entries from user
/// mode, and the event, failsafe and syscall callbacks (the syscall one
/// masking events, as Linux registers it).
///
/// # Safety
/// From now on exceptions run `handler` on the stack of whatever code they
/// interrupt (below its red zone only if that code was built without one).
pub unsafe fn install(handler: Handler) -> Result<(), Errno> {
    HANDLER.store(handler as *const () as usize, Ordering::Release);
    let table = default_trap_table();
    // SAFETY: every entry is one of our stubs, which follow the bounce-frame
    // convention; the table ends with a zero entry.
    check(unsafe { guest::set_trap_table(table.as_ptr()) })?;
    // SAFETY: the stack is ours, in .bss, used for nothing else.
    check(unsafe { guest::stack_switch(FLAT_KERNEL_SS as u64, kernel_stack_top()) })?;
    for (r#type, flags, address) in [
        (CALLBACKTYPE_event, 0, event_callback()),
        (CALLBACKTYPE_failsafe, 0, failsafe_callback()),
        (CALLBACKTYPE_syscall, CALLBACKF_mask_events, syscall_callback()),
    ] {
        let reg = CallbackRegister { r#type, flags, _pad: 0, address };
        // SAFETY: Xen reads the structure on our stack; the address is our stub.
        check(unsafe { guest::callback_op(CALLBACKOP_register, &reg as *const _ as u64) })?;
    }
    Ok(())
}

/// Runs guest user mode from `rip` with stack pointer `rsp` and `rflags`
/// (IF set: events unmasked in user mode), on the user page table
/// registered with `MMUEXT_NEW_USER_BASEPTR`, until the handler answers
/// [`Resume::ExitUser`]; returns that value.
///
/// # Safety
/// A user page table must be registered, mapping `rip` and `rsp` (Xen
/// crashes the domain otherwise), and [`install`] must have run.
pub unsafe fn enter_user(rip: u64, rsp: u64, rflags: u64) -> u64 {
    // SAFETY: the stub saves what the SysV ABI says a callee keeps, and
    // returns here through pv_rt_user_exit with the stack it saved.
    unsafe { pv_rt_enter_user(rip, rsp, rflags) }
}
