//! `workload=badstack`: the kernel takes an exception with a stack Xen
//! cannot write the bounce frame to. The hypervisor must crash the domain
//! (Dom0 crashed; QEMU status 5 under xen-core), never itself. So this
//! workload prints no verdict when it passes.
//!
//! `stack=` picks the stack:
//! - `kernel` (default): RSP is an unmapped address of the lower half, then
//!   `ud2`. Xen's `create_bounce_frame` faults writing the frame.
//! - `hypervisor`: RSP is in Xen's own range, then `ud2`. Xen refuses to
//!   write the frame there (`create_bounce_frame_bad_sp`).
//! - `user`: `stack_switch` to an unmapped address, then a system call from
//!   user mode: Xen switches to that stack for the syscall callback.
//! - `overflow`: unbounded recursion runs off the bottom of pv-rt's stack
//!   into the unmapped guard page below it; xen-core reports a stack
//!   overflow.

use core::arch::asm;

use hypercall_abi::arch::FLAT_KERNEL_SS;
use hypercall_abi::guest;
use pv_rt::traps;
use pv_rt::{cmdline, println};

use super::user;

/// Unmapped: no page table of ours covers L4 slot 160.
const UNMAPPED: u64 = 0x0000_5000_0000_0000;
const XEN_VA: u64 = 0xffff_8300_0001_0000;

fn with_rsp(rsp: u64) -> ! {
    // SAFETY: deliberately not safe for the domain: the #UD cannot be
    // delivered, and the hypervisor must crash the domain. Nothing returns.
    unsafe { asm!("mov {rsp}, %rsp", "ud2", rsp = in(reg) rsp, options(att_syntax, noreturn)) }
}

pub fn run(cmd: &str) {
    let stack = cmdline::get(cmd, "stack").unwrap_or("kernel");
    let Some(mut ctx) = super::setup("badstack") else { return };
    match stack {
        "kernel" => {
            println!("badstack: rsp={:#x} (unmapped), then ud2: the domain must crash", UNMAPPED);
            with_rsp(UNMAPPED)
        }
        "hypervisor" => {
            println!("badstack: rsp={:#x} (Xen's range), then ud2: the domain must crash", XEN_VA);
            with_rsp(XEN_VA)
        }
        "user" => {
            if let Err(e) = user::setup(&mut ctx.mm) {
                println!("badstack: cannot make the user address space: {}", e);
            } else {
                // SAFETY: deliberately unusable: the next entry from user
                // mode must crash the domain.
                let rc = unsafe { guest::stack_switch(FLAT_KERNEL_SS as u64, UNMAPPED) };
                println!("badstack: stack_switch({:#x}) = {}; a syscall from user mode: the domain must crash", UNMAPPED, rc);
                // SAFETY: the user page table maps the task.
                let code = unsafe { traps::enter_user(user::main_entry(), user::USER_STACK_TOP, user::USER_RFLAGS) };
                println!("badstack: user mode came back with {:#x}", code);
            }
        }
        "overflow" => {
            println!("badstack: recursing until the stack's guard page: the domain must crash");
            println!("badstack: depth {}", recurse(0));
        }
        other => println!("badstack: unknown stack '{}' (kernel, hypervisor, user, overflow)", other),
    }
    println!("badstack: the domain survived");
    println!("Test result: FAILURE");
}

/// Calls itself with a 256-byte frame, for ever; `black_box` keeps the
/// compiler from turning the recursion into a loop.
#[inline(never)]
#[allow(unconditional_recursion)] // the point: only the guard page ends it
fn recurse(depth: u64) -> u64 {
    let frame = core::hint::black_box([depth; 32]);
    recurse(frame[0] + 1) + core::hint::black_box(frame[31])
}
