//! `workload=bench-vcpu`: what a user-mode system call and an exception
//! cost, in TSC ticks (instructions, under QEMU's `-icount shift=0`).
//!
//! - `syscall_roundtrip`: guest user mode runs `syscall`; Xen switches to
//!   the guest kernel and bounces to its syscall callback, which returns at
//!   once with `iret` + `VGCF_in_syscall` (Xen switches back to user mode).
//!   Per round trip.
//! - `exception_bounce`: `int3` in guest kernel mode; Xen bounces it to the
//!   #BP entry, which returns at once with `iret`. Per exception.
//!
//! Both handlers are a few instructions of assembly, so the figures are
//! the hypervisor's part of the work.

use core::arch::{asm, global_asm};

use hypercall_abi::arch::{TrapInfo, FLAT_KERNEL_CS, VGCF_in_syscall};
use hypercall_abi::callback::{CallbackRegister, CALLBACKF_mask_events, CALLBACKOP_register, CALLBACKTYPE_syscall};
use hypercall_abi::guest;
use pv_rt::tsc::rdtsc_fenced;
use pv_rt::traps::{self, TI_DPL3};
use pv_rt::{cmdline, println};

use super::user::{self, SYS_NOP, USER_RFLAGS, USER_STACK_TOP};

const DEFAULT_ITERS: u64 = 100_000;

// vcpu_bench_syscall: SYS_NOP returns at once (RAX is already 0, the
// result); any other number takes the full path, where SYS_EXIT ends the
// run. vcpu_bench_int3: return at once.
global_asm!(
    r#"
    .section .text.vcpu_bench, "ax", @progbits
    .globl vcpu_bench_syscall
vcpu_bench_syscall:
    cmp ${sys_nop}, %rax
    jne pv_rt_syscall_callback
    pop %rcx
    pop %r11
    push ${in_syscall}
    jmp hypercall_page + {iret_entry}

    .globl vcpu_bench_int3
vcpu_bench_int3:
    pop %rcx
    pop %r11
    push $0
    jmp hypercall_page + {iret_entry}
    "#,
    sys_nop = const SYS_NOP,
    in_syscall = const VGCF_in_syscall,
    iret_entry = const hypercall_abi::nr::IRET * 32,
    options(att_syntax)
);

extern "C" {
    fn vcpu_bench_syscall();
    fn vcpu_bench_int3();
}

fn print(name: &str, iters: u64, total: u64) {
    let per_call = total.checked_div(iters).unwrap_or(0);
    println!("bench {} iterations={} total_tsc={} per_call_tsc={}", name, iters, total, per_call);
}

pub fn run(cmd: &str) {
    let iters = cmdline::get(cmd, "iters").and_then(cmdline::parse_u64).unwrap_or(DEFAULT_ITERS).max(1);
    let Some(mut ctx) = super::setup("bench-vcpu") else { return };
    syscall_roundtrip(&mut ctx, iters);
    exception_bounce(iters);
}

fn syscall_roundtrip(ctx: &mut super::Ctx, iters: u64) {
    let space = match user::setup(&mut ctx.mm) {
        Ok(s) => s,
        Err(e) => {
            println!("bench-vcpu: cannot make the user address space: {}", e);
            return;
        }
    };
    let reg = CallbackRegister {
        r#type: CALLBACKTYPE_syscall,
        flags: CALLBACKF_mask_events,
        _pad: 0,
        address: vcpu_bench_syscall as *const () as u64,
    };
    // SAFETY: our stub, which follows the bounce-frame convention.
    let rc = unsafe { guest::callback_op(CALLBACKOP_register, &reg as *const _ as u64) };
    if rc != 0 {
        println!("bench-vcpu: callback_op: {}", rc);
        return;
    }
    let mask = pv_rt::shared::upcall_mask(0);
    let run = |n: u64| {
        // The user task takes its count from the top of its stack.
        // SAFETY: the stack page's alias, ours; user mode is not running.
        unsafe { core::ptr::write_volatile((space.stack_alias + 4096 - 16) as *mut u64, n) };
        let start = rdtsc_fenced();
        // SAFETY: the user page table maps the task; handlers are installed.
        unsafe { traps::enter_user(user::bench_entry(), USER_STACK_TOP - 16, USER_RFLAGS) };
        let total = rdtsc_fenced() - start;
        pv_rt::shared::set_upcall_mask(0, mask);
        total
    };
    run(16);
    let total = run(iters);
    user::take_log();
    print("syscall_roundtrip", iters, total);
    // SAFETY: back to the full handler.
    unsafe { traps::install(super::probe::handler) }.ok();
}

fn exception_bounce(iters: u64) {
    let table = [
        TrapInfo { vector: 3, flags: TI_DPL3, cs: FLAT_KERNEL_CS, _pad: 0, address: vcpu_bench_int3 as *const () as u64 },
        TrapInfo::default(),
    ];
    // SAFETY: our stub for #BP.
    let rc = unsafe { guest::set_trap_table(table.as_ptr()) };
    if rc != 0 {
        println!("bench-vcpu: set_trap_table: {}", rc);
        return;
    }
    let run = |n: u64| {
        let start = rdtsc_fenced();
        // SAFETY: each int3 returns right after itself.
        unsafe { asm!("1: int3", "dec {n}", "jnz 1b", n = inout(reg) n => _, options(att_syntax)) };
        rdtsc_fenced() - start
    };
    run(16);
    let total = run(iters);
    print("exception_bounce", iters, total);
    let table = traps::default_trap_table();
    // SAFETY: our stubs.
    unsafe { guest::set_trap_table(table.as_ptr()) };
}
