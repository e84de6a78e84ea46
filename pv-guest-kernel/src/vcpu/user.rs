//! A tiny guest user-mode task and the kernel side of it.
//!
//! The task runs on a top-level page table of its own, made with the MMU
//! hypercalls and registered with `MMUEXT_NEW_USER_BASEPTR`. Our slots of it
//! map only two pages: the task's code (read-only, at [`USER_CODE_VA`]) and
//! its stack (writable, at [`USER_STACK_VA`]); Xen adds its own slots
//! (256-271) when it validates the table. None of the kernel's pages is
//! there, so a kernel address is simply not present in user mode.
//!
//! The task is entered with the `iret` hypercall to CS = `FLAT_USER_CS64`
//! (RPL 3: Xen switches to the user page table, `do_iret` in
//! `xen/arch/x86/pv/iret.c`). Its system calls are the `syscall`
//! instruction: from user mode Xen does not treat it as a hypercall but
//! switches to the kernel's page table and the stack registered with
//! `stack_switch`, and bounces to the syscall callback (`switch_to_kernel`
//! in `x86_64/entry.S`). The kernel answers with `iret` and
//! `VGCF_in_syscall`. Exceptions in user mode arrive the same way on the
//! kernel stack, with RPL 3 in the saved CS.
//!
//! The task's register conventions: `%rax` = system call number, `%rdi`,
//! `%rsi`, `%rdx` = arguments, result in `%rax`; before an instruction that
//! is meant to fault, `%r15` = where to resume (the kernel's fault handler
//! resumes there).

use core::arch::global_asm;
use core::ptr;

use heapless::Vec;
use hypercall_abi::guest;
use hypercall_abi::mm::{MmuextOp, DOMID_SELF, MMUEXT_NEW_USER_BASEPTR, PAGE_SIZE};
use hypercall_abi::Errno;
use pv_rt::mm::{check, Mm};
use pv_rt::traps::{Resume, TrapFrame, VECTOR_SYSCALL};
use pv_rt::shared;

/// Where the task's code page is mapped in the user address space (L4 slot
/// 32: nowhere near the kernel, which lives in slot 0).
pub const USER_CODE_VA: u64 = 0x0000_1000_0000_0000;
/// The task's one stack page.
pub const USER_STACK_VA: u64 = 0x0000_1000_0001_0000;
pub const USER_STACK_TOP: u64 = USER_STACK_VA + PAGE_SIZE;
/// A kernel address the task touches: the first page of our image, mapped
/// in the kernel's page table only.
pub const KERNEL_ADDR: u64 = 0x10_0000;

/// System call numbers of the task.
pub const SYS_NOP: u64 = 0;
pub const SYS_ADD: u64 = 1;
pub const SYS_REPORT: u64 = 2;
pub const SYS_EXIT: u64 = 3;

/// RFLAGS the task starts with: IF set, so events are unmasked in user mode
/// (the iret sets `evtchn_upcall_mask` to !IF).
pub const USER_RFLAGS: u64 = 0x202;

// The task's code, copied byte for byte into its code page: it may refer
// only to itself (RIP-relative within this section). Labels are global so
// the kernel can compute their offsets in the page.
//
// vcpu_user_main: the self-test's task; each step is commented.
// vcpu_user_bench: `syscall` SYS_NOP as many times as the word on top of
// the stack says, then SYS_EXIT.
global_asm!(
    r#"
    .section .text.vcpu_user, "ax", @progbits
    .balign 16
    .globl vcpu_user_code_start
vcpu_user_code_start:

    .globl vcpu_user_main
vcpu_user_main:
    # 1. A system call round trip: SYS_ADD(40, 2).
    mov ${sys_add}, %eax
    mov $40, %edi
    mov $2, %esi
    lea vcpu_user_after_syscall(%rip), %r12
    syscall
    .globl vcpu_user_after_syscall
vcpu_user_after_syscall:
    # Report the result, where the sysret-style return left RCX (the
    # return address: 0 after the subtraction) and RFLAGS.IF in R11.
    mov %rax, %rdi
    mov %rcx, %rsi
    sub %r12, %rsi
    mov %r11, %rdx
    and $0x200, %rdx
    mov ${sys_report}, %eax
    syscall
    # 2. int $0x80 through the DPL-3 entry: the kernel triples RAX. (R15:
    # should a hypervisor raise a fault instead, the task still goes on.)
    lea 2f(%rip), %r15
    mov $5, %eax
    int $0x80
2:
    mov %rax, %rdi
    xor %esi, %esi
    xor %edx, %edx
    mov ${sys_report}, %eax
    syscall
    # 3. int3: a trap, resumes after it.
    lea vcpu_user_after_int3(%rip), %r15
    int3
    .globl vcpu_user_after_int3
vcpu_user_after_int3:
    # 4. int $0x81 against a DPL-0 entry: #GP(0x81 << 3 | 2).
    lea 2f(%rip), %r15
    int $0x81
2:
    # 5. A privileged instruction: #GP(0).
    lea 2f(%rip), %r15
    cli
2:
    # 6. A write to our own read-only code page: #PF(P|W|U).
    lea 2f(%rip), %r15
    lea vcpu_user_code_start(%rip), %rax
    movb $0, (%rax)
2:
    # 7. A kernel address, not present in the user page table: #PF(U).
    lea 2f(%rip), %r15
    movabs ${kernel_addr}, %rax
    mov (%rax), %rax
2:
    # 8. ud2: #UD.
    lea 2f(%rip), %r15
    ud2
2:
    # 9. Leave: SYS_EXIT(0x55).
    mov ${sys_exit}, %eax
    mov $0x55, %edi
    syscall
    ud2

    .globl vcpu_user_bench
vcpu_user_bench:
    mov (%rsp), %r12
1:  mov ${sys_nop}, %eax
    syscall
    dec %r12
    jnz 1b
    mov ${sys_exit}, %eax
    xor %edi, %edi
    syscall
    ud2

    .globl vcpu_user_code_end
vcpu_user_code_end:
    "#,
    sys_nop = const SYS_NOP,
    sys_add = const SYS_ADD,
    sys_report = const SYS_REPORT,
    sys_exit = const SYS_EXIT,
    kernel_addr = const KERNEL_ADDR,
    options(att_syntax)
);

extern "C" {
    static vcpu_user_code_start: u8;
    static vcpu_user_code_end: u8;
    static vcpu_user_main: u8;
    static vcpu_user_after_syscall: u8;
    static vcpu_user_after_int3: u8;
    static vcpu_user_bench: u8;
}

/// Offset of a label of the task's code in its code page.
fn offset(label: *const u8) -> u64 {
    label as u64 - &raw const vcpu_user_code_start as u64
}

pub fn main_entry() -> u64 {
    USER_CODE_VA + offset(&raw const vcpu_user_main)
}
pub fn bench_entry() -> u64 {
    USER_CODE_VA + offset(&raw const vcpu_user_bench)
}
pub fn after_syscall_offset() -> u64 {
    offset(&raw const vcpu_user_after_syscall)
}
pub fn after_int3_offset() -> u64 {
    offset(&raw const vcpu_user_after_int3)
}

/// The user address space.
pub struct UserSpace {
    /// The stack page's alias in the kernel's initial mapping.
    pub stack_alias: u64,
}

/// Builds the user page table with the task's two pages and registers it.
pub fn setup(mm: &mut Mm) -> Result<UserSpace, Errno> {
    let l4_mfn = mm.new_l4()?;
    let code_pfn = mm.alloc_frame_low().ok_or(Errno::ENOMEM)?;
    let stack_pfn = mm.alloc_frame_low().ok_or(Errno::ENOMEM)?;
    let code_alias = mm.alias(code_pfn).ok_or(Errno::EINVAL)?;
    let stack_alias = mm.alias(stack_pfn).ok_or(Errno::EINVAL)?;
    let start = &raw const vcpu_user_code_start;
    let len = offset(&raw const vcpu_user_code_end) as usize;
    assert!(len <= PAGE_SIZE as usize, "the user task's code must fit its page");
    // SAFETY: fresh frames of the initial mapping, writable through their
    // aliases and used by nothing else; the source is our own .text.
    unsafe {
        ptr::write_bytes(code_alias as *mut u8, 0xcc, PAGE_SIZE as usize);
        ptr::copy_nonoverlapping(start, code_alias as *mut u8, len);
        ptr::write_bytes(stack_alias as *mut u8, 0, PAGE_SIZE as usize);
    }
    // SAFETY: the user address space is new; nothing uses these addresses.
    unsafe {
        mm.map_in(l4_mfn, USER_CODE_VA, code_pfn, false)?;
        mm.map_in(l4_mfn, USER_STACK_VA, stack_pfn, true)?;
    }
    let op = MmuextOp::new(MMUEXT_NEW_USER_BASEPTR, l4_mfn, 0);
    // SAFETY: only user mode runs on this table; the kernel's stays as it is.
    check(unsafe { guest::mmuext_op(&[op], None, DOMID_SELF as u32) })?;
    Ok(UserSpace { stack_alias })
}

/// One event that reached the kernel from user mode.
#[derive(Clone, Copy, Debug, Default)]
pub struct UserEvent {
    /// The exception vector, or [`VECTOR_SYSCALL`].
    pub vector: u64,
    pub error_code: u64,
    /// RIP as an offset in the code page.
    pub rip_off: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
    pub cr2: u64,
    pub frame_end: u64,
    /// `evtchn_upcall_mask` in the handler.
    pub upcall_mask: u8,
    /// RAX, RDI, RSI, RDX as they arrived.
    pub args: [u64; 4],
}

impl UserEvent {
    pub fn cs_sel(&self) -> u64 {
        self.cs & 0xffff
    }
    pub fn saved_mask(&self) -> u64 {
        (self.cs >> 32) & 0xff
    }
}

const LOG_LEN: usize = 16;

struct EventLog(core::cell::UnsafeCell<Vec<UserEvent, LOG_LEN>>);
// SAFETY: vCPU 0 only; the handler appends while user mode is stopped, the
// kernel reads after the task has exited: never at the same time.
unsafe impl Sync for EventLog {}
static LOG: EventLog = EventLog(core::cell::UnsafeCell::new(Vec::new()));

fn log_push(e: UserEvent) {
    // SAFETY: see EventLog. A full log drops the event (the checks then
    // see fewer events than expected).
    let _ = unsafe { &mut *LOG.0.get() }.push(e);
}

/// The events since the last call.
pub fn take_log() -> Vec<UserEvent, LOG_LEN> {
    // SAFETY: see EventLog.
    core::mem::take(unsafe { &mut *LOG.0.get() })
}

fn event(frame: &TrapFrame) -> UserEvent {
    UserEvent {
        vector: frame.entry_vector,
        error_code: frame.error_code,
        rip_off: frame.rip.wrapping_sub(USER_CODE_VA),
        cs: frame.cs,
        rflags: frame.rflags,
        rsp: frame.rsp,
        ss: frame.ss,
        cr2: if frame.entry_vector == 14 { shared::cr2(0) } else { 0 },
        frame_end: frame.frame_end(),
        upcall_mask: shared::upcall_mask(0),
        args: [frame.rax, frame.rdi, frame.rsi, frame.rdx],
    }
}

/// The syscall callback: a `syscall` instruction in user mode.
pub fn syscall(frame: &mut TrapFrame) -> Resume {
    log_push(event(frame));
    frame.rax = match frame.rax {
        SYS_NOP | SYS_REPORT => 0,
        SYS_ADD => frame.rdi.wrapping_add(frame.rsi),
        SYS_EXIT => return Resume::ExitUser(frame.rdi),
        _ => Errno::ENOSYS.to_ret() as u64,
    };
    Resume::Sysret
}

/// An exception or software interrupt from user mode.
pub fn fault(frame: &mut TrapFrame) -> Resume {
    log_push(event(frame));
    match frame.entry_vector {
        // Traps: the task goes on after the instruction.
        3 => Resume::Iret,
        0x80 => {
            frame.rax = frame.rax.wrapping_mul(3);
            Resume::Iret
        }
        // Faults the task meant: resume where it said, if that is in its
        // code; anything else ends it.
        _ if frame.r15.wrapping_sub(USER_CODE_VA) < PAGE_SIZE => {
            frame.rip = frame.r15;
            frame.r15 = 0;
            Resume::Iret
        }
        _ => Resume::ExitUser(0xdead_0000 | frame.entry_vector),
    }
}

/// The task's vector of the syscall callback, for the checks.
pub const SYSCALL: u64 = VECTOR_SYSCALL;

/// Runs the task and checks every event it caused, in order.
pub fn run(ctx: &mut super::Ctx) {
    use super::{Hex, HexS};
    let space = match setup(&mut ctx.mm) {
        Ok(s) => s,
        Err(e) => {
            ctx.eq("user_setup", e.to_ret(), 0);
            return;
        }
    };
    ctx.eq("user_setup", 0, 0);
    ctx.user_stack_alias = space.stack_alias;
    let mask_before = shared::upcall_mask(0);
    take_log();
    // SAFETY: the user page table maps the entry and the stack; the trap
    // table and callbacks are installed.
    let code = unsafe { pv_rt::traps::enter_user(main_entry(), USER_STACK_TOP, USER_RFLAGS) };
    // Back in kernel mode through the syscall callback, which masked events.
    let mask_after = shared::upcall_mask(0);
    shared::set_upcall_mask(0, mask_before);
    ctx.eq("user_exit_code", HexS(code), HexS(0x55));
    ctx.eq("user_exit_left_events_masked", mask_after, 1);

    let log = take_log();
    let kstack = pv_rt::traps::kernel_stack_top();
    let ev = |i: usize| log.get(i).copied().unwrap_or_default();
    ctx.eq("user_events", log.len(), 11);

    // 1. The first syscall, as the callback saw it: the user's RIP (after
    // the syscall), RSP and flags in the frame, CS with RPL 3 (from user
    // mode) and the user's event mask (0: IF was set) in bits 32-39, the
    // frame at the top of the stack_switch stack, and events masked in the
    // callback (registered with CALLBACKF_mask_events).
    let e = ev(0);
    ctx.eq("user_syscall_vector", HexS(e.vector), HexS(SYSCALL));
    ctx.eq("user_syscall_number", e.args[0], SYS_ADD);
    ctx.eq("user_syscall_arg0", e.args[1], 40);
    ctx.eq("user_syscall_rip_offset", HexS(e.rip_off), HexS(after_syscall_offset()));
    ctx.eq("user_syscall_cs", HexS(e.cs_sel()), HexS(0xe033));
    ctx.eq("user_syscall_ss", HexS(e.ss), HexS(0xe02b));
    ctx.eq("user_syscall_rsp", Hex(e.rsp), Hex(USER_STACK_TOP));
    ctx.eq("user_syscall_rflags_if", HexS(e.rflags & 0x200), HexS(0x200));
    ctx.eq("user_syscall_saved_upcall_mask", e.saved_mask(), 0);
    ctx.eq("user_syscall_frame_on_kernel_stack", kstack.wrapping_sub(e.frame_end) as i64, 0);
    ctx.eq("user_syscall_callback_masks_events", e.upcall_mask, 1);
    // 2. What the task reported after the sysret-style return: the sum,
    // RCX = the return address (0 after the subtraction), RFLAGS.IF in R11.
    let e = ev(1);
    ctx.eq("user_syscall_result", e.args[1], 42);
    ctx.eq("user_sysret_rcx_is_return_address", e.args[2] as i64, 0);
    ctx.eq("user_sysret_r11_if", HexS(e.args[3]), HexS(0x200));
    // 3. int $0x80 from user mode through the DPL-3 entry.
    let e = ev(2);
    ctx.eq("user_int80_vector", HexS(e.vector), HexS(0x80));
    ctx.eq("user_int80_cs", HexS(e.cs_sel()), HexS(0xe033));
    ctx.eq("user_int80_frame_on_kernel_stack", kstack.wrapping_sub(e.frame_end) as i64, 0);
    ctx.eq("user_int80_events_unmasked_in_handler", e.upcall_mask, 0);
    ctx.eq("user_int80_result", ev(3).args[1], 15);
    // 4. int3.
    let e = ev(4);
    ctx.eq("user_int3_vector", e.vector, 3);
    ctx.eq("user_int3_rip_offset", HexS(e.rip_off), HexS(after_int3_offset()));
    ctx.eq("user_int3_cs", HexS(e.cs_sel()), HexS(0xe033));
    // 5. int $0x81 against a DPL-0 entry from user mode: permit_softint
    // wants DPL 3 there, so the #GP itself (error code: an IDT entry; see
    // Ctx::expect_softint_gp for why not which one).
    let e = ev(5);
    ctx.eq("user_int81_dpl0_vector", e.vector, 13);
    ctx.eq("user_int81_dpl0_error_code_idt", HexS(e.error_code & 3), HexS(2));
    ctx.eq("user_int81_dpl0_cs", HexS(e.cs_sel()), HexS(0xe033));
    // 6. cli: #GP(0), not emulated for user mode.
    let e = ev(6);
    ctx.eq("user_cli_vector", e.vector, 13);
    ctx.eq("user_cli_error_code", HexS(e.error_code), HexS(0));
    // 7. A write to the read-only code page: #PF with P, W and U.
    let e = ev(7);
    ctx.eq("user_pf_write_ro_vector", e.vector, 14);
    ctx.eq("user_pf_write_ro_error_code", HexS(e.error_code), HexS(7));
    ctx.eq("user_pf_write_ro_cr2", Hex(e.cr2), Hex(USER_CODE_VA));
    ctx.eq("user_pf_handler_masks_events", e.upcall_mask, 1);
    // 8. The kernel address: not present in user mode, #PF with U.
    let e = ev(8);
    ctx.eq("user_pf_kernel_address_vector", e.vector, 14);
    ctx.eq("user_pf_kernel_address_error_code", HexS(e.error_code), HexS(4));
    ctx.eq("user_pf_kernel_address_cr2", Hex(e.cr2), Hex(KERNEL_ADDR));
    ctx.eq("user_pf_kernel_address_cs", HexS(e.cs_sel()), HexS(0xe033));
    ctx.eq("user_pf_frame_on_kernel_stack", kstack.wrapping_sub(e.frame_end) as i64, 0);
    // 9. ud2.
    ctx.eq("user_ud2_vector", ev(9).vector, 6);
    // 10. SYS_EXIT.
    let e = ev(10);
    ctx.eq("user_exit_syscall_vector", HexS(e.vector), HexS(SYSCALL));
    ctx.eq("user_exit_syscall_number", e.args[0], SYS_EXIT);
}
