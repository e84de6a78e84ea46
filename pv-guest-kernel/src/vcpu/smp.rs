//! A second vCPU: `VCPUOP_initialise` with a context of our making,
//! `VCPUOP_up`, and a few instructions that report back and take the vCPU
//! down again.
//!
//! The context (`struct vcpu_guest_context`, `arch-x86/xen.h`) is the
//! least Xen accepts for a 64-bit PV vCPU in kernel mode: RIP, RSP, the flat
//! kernel selectors, `VGCF_in_kernel`, the kernel's own top-level table in
//! `ctrlreg[3]`, a kernel stack for `stack_switch`, and three argument
//! registers, which Xen loads as given (`arch_set_info_guest` in
//! `xen/arch/x86/domain.c`). No trap table and no callbacks: the code below
//! takes no exception and leaves events masked.

use core::arch::global_asm;
use core::sync::atomic::{AtomicU64, Ordering};

use hypercall_abi::arch::{
    xen_pfn_to_cr3, VcpuGuestContext, FLAT_KERNEL_CS, FLAT_KERNEL_SS, VGCF_in_kernel,
};
use hypercall_abi::guest;
use hypercall_abi::vcpu::VCPUOP_down;

/// What the second vCPU writes: the value it was given in RSI, its RSP and
/// its CS. vCPU 0 polls the first word.
pub static AP_REPORT: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

/// The value vCPU 0 hands over in RSI.
pub const AP_MAGIC: u64 = 0x5ec0_0d0c_0ffe_e001;

const AP_STACK_SIZE: usize = 8192;

// vcpu_ap_entry: RDI = &AP_REPORT, RSI = the value to report, RDX = our
// vCPU id. Report, then VCPUOP_down on ourselves; should the vCPU be brought
// up again, it resumes after the hypercall and goes down once more. R12
// keeps the id across the hypercall, which may clobber argument registers.
global_asm!(
    r#"
    .section .text.vcpu_ap, "ax", @progbits
    .globl vcpu_ap_entry
vcpu_ap_entry:
    mov %rdx, %r12
    mov %rsp, 8(%rdi)
    mov %cs, %eax
    mov %rax, 16(%rdi)
    mov %rsi, (%rdi)
1:  mov ${down}, %edi
    mov %r12, %rsi
    xor %edx, %edx
    call hypercall_page + {vcpu_op_entry}
    jmp 1b

    .section .bss.vcpu_ap_stack, "aw", @nobits
    .balign 16
vcpu_ap_stack:
    .skip {stack_size}
    .globl vcpu_ap_stack_top
vcpu_ap_stack_top:
    "#,
    down = const VCPUOP_down,
    vcpu_op_entry = const hypercall_abi::nr::VCPU_OP * 32,
    stack_size = const AP_STACK_SIZE,
    options(att_syntax)
);

extern "C" {
    fn vcpu_ap_entry();
    static vcpu_ap_stack_top: u8;
}

pub fn ap_stack_top() -> u64 {
    &raw const vcpu_ap_stack_top as u64
}

/// The context that starts vCPU `id` at `vcpu_ap_entry` in kernel mode on
/// our page table.
pub fn context(id: u32, l4_mfn: u64) -> VcpuGuestContext {
    let mut c = VcpuGuestContext::zeroed();
    c.flags = VGCF_in_kernel;
    c.user_regs.rip = vcpu_ap_entry as *const () as u64;
    c.user_regs.rsp = ap_stack_top();
    c.user_regs.cs = FLAT_KERNEL_CS;
    c.user_regs.ss = FLAT_KERNEL_SS;
    // IF on: the hypervisor forces it anyway; events stay masked through
    // vcpu_info.evtchn_upcall_mask, which vCPU 0 sets before VCPUOP_up.
    c.user_regs.rflags = 0x202;
    c.user_regs.rdi = AP_REPORT.as_ptr() as u64;
    c.user_regs.rsi = AP_MAGIC;
    c.user_regs.rdx = id as u64;
    c.kernel_ss = FLAT_KERNEL_SS as u64;
    c.kernel_sp = ap_stack_top();
    c.ctrlreg[3] = xen_pfn_to_cr3(l4_mfn);
    c
}

/// Yields until `done()` or `rounds` yields have passed; whether it became
/// true.
pub fn wait_for(rounds: u32, mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..rounds {
        if done() {
            return true;
        }
        guest::sched_yield();
    }
    done()
}

pub fn report(i: usize) -> u64 {
    AP_REPORT[i].load(Ordering::Acquire)
}

/// `VCPUOP_get_runstate_info`'s state, or the error.
fn runstate(id: u32) -> i64 {
    let mut info = hypercall_abi::vcpu::VcpuRunstateInfo::default();
    // SAFETY: Xen writes the 48-byte structure on our stack.
    let rc = unsafe {
        guest::vcpu_op(hypercall_abi::vcpu::VCPUOP_get_runstate_info, id, &mut info as *mut _ as u64)
    };
    if rc < 0 {
        rc
    } else {
        info.state as i64
    }
}

fn op(cmd: u32, id: u32, arg: u64) -> i64 {
    // SAFETY: the commands used here take no argument, or a context or
    // pointer the caller made on purpose (bad ones are refused).
    unsafe { guest::vcpu_op(cmd, id, arg) }
}

/// The second vCPU and vcpu_op's refusals (`do_vcpu_op` in
/// `xen/common/domain.c`, `arch_initialise_vcpu`/`arch_set_info_guest` in
/// `xen/arch/x86/domain.c`).
pub fn run(ctx: &mut super::Ctx) {
    use hypercall_abi::vcpu::*;
    use hypercall_abi::Errno;
    use super::{Hex, HexS};

    ctx.eq("vcpu0_is_up", op(VCPUOP_is_up, 0, 0), 1);
    ctx.eq("vcpu0_runstate_running", runstate(0), RUNSTATE_running as i64);
    // A vCPU id past the domain's: -ENOENT, before anything else.
    ctx.eq("vcpu999_is_up", op(VCPUOP_is_up, 999, 0), Errno::ENOENT.to_ret());
    ctx.eq("vcpu999_down", op(VCPUOP_down, 999, 0), Errno::ENOENT.to_ret());
    let l4 = ctx.mm.l4_mfn();
    let good = context(1, l4);
    ctx.eq("vcpu999_initialise", op(VCPUOP_initialise, 999, &good as *const _ as u64), Errno::ENOENT.to_ret());
    // vCPU 0 is initialised: -EEXIST (arch_initialise_vcpu).
    let c0 = context(0, l4);
    ctx.eq("vcpu0_initialise_again", op(VCPUOP_initialise, 0, &c0 as *const _ as u64), Errno::EEXIST.to_ret());
    ctx.eq("vcpu_op_unknown_command", op(99, 0, 0), Errno::ENOSYS.to_ret());
    ctx.eq("runstate_info_bad_pointer", op(VCPUOP_get_runstate_info, 0, 0xffff_8300_0000_0000), Errno::EFAULT.to_ret());

    // The second vCPU exists only with dom0_max_vcpus=2 (or more).
    let up = op(VCPUOP_is_up, 1, 0);
    if !ctx.eq("vcpu1_exists", up != Errno::ENOENT.to_ret(), true) {
        pv_rt::println!("vcpu: no vCPU 1: boot the hypervisor with dom0_max_vcpus=2");
        return;
    }
    ctx.eq("vcpu1_is_up_before_initialise", up, 0);
    ctx.eq("vcpu1_runstate_offline", runstate(1), RUNSTATE_offline as i64);
    // VCPUOP_up on a vCPU that was never initialised: -EINVAL.
    ctx.eq("vcpu1_up_before_initialise", op(VCPUOP_up, 1, 0), Errno::EINVAL.to_ret());
    // A context Xen cannot read: -EFAULT (copy_from_guest).
    ctx.eq("vcpu1_initialise_bad_pointer", op(VCPUOP_initialise, 1, 0xffff_8300_0000_0000), Errno::EFAULT.to_ret());
    // A non-canonical RIP: -EINVAL (arch_set_info_guest checks every
    // address before it changes anything).
    let mut bad = context(1, l4);
    bad.user_regs.rip = 0x0000_8000_0000_0000;
    ctx.eq("vcpu1_initialise_noncanonical_rip", op(VCPUOP_initialise, 1, &bad as *const _ as u64), Errno::EINVAL.to_ret());
    let mut bad = context(1, l4);
    bad.event_callback_eip = 0xdead_0000_0000_0000;
    ctx.eq("vcpu1_initialise_noncanonical_callback", op(VCPUOP_initialise, 1, &bad as *const _ as u64), Errno::EINVAL.to_ret());
    let mut bad = context(1, l4);
    bad.trap_ctxt[3].address = 0x0000_8000_0000_0000;
    bad.trap_ctxt[3].vector = 3;
    ctx.eq("vcpu1_initialise_noncanonical_trap", op(VCPUOP_initialise, 1, &bad as *const _ as u64), Errno::EINVAL.to_ret());
    ctx.eq("vcpu1_still_not_initialised", op(VCPUOP_up, 1, 0), Errno::EINVAL.to_ret());

    // The real thing.
    ctx.eq("vcpu1_initialise", op(VCPUOP_initialise, 1, &good as *const _ as u64), 0);
    // Initialised is not up: the vCPU stays down until VCPUOP_up.
    ctx.eq("vcpu1_is_up_after_initialise", op(VCPUOP_is_up, 1, 0), 0);
    ctx.eq("vcpu1_initialise_twice", op(VCPUOP_initialise, 1, &good as *const _ as u64), Errno::EEXIST.to_ret());
    // No event callback on vCPU 1: keep its events masked.
    pv_rt::shared::set_upcall_mask(1, 1);
    ctx.eq("vcpu1_up", op(VCPUOP_up, 1, 0), 0);
    let ran = wait_for(10_000, || report(0) == AP_MAGIC);
    ctx.eq("vcpu1_ran", ran, true);
    ctx.eq("vcpu1_got_rsi", Hex(report(0)), Hex(AP_MAGIC));
    ctx.eq("vcpu1_rsp", Hex(report(1)), Hex(ap_stack_top()));
    ctx.eq("vcpu1_cs", HexS(report(2)), HexS(0xe033));
    // It took itself down: is_up goes back to 0 and it is offline.
    let down = wait_for(10_000, || op(VCPUOP_is_up, 1, 0) == 0);
    ctx.eq("vcpu1_is_up_after_down", down, true);
    ctx.eq("vcpu1_runstate_offline_after_down", runstate(1), RUNSTATE_offline as i64);
    ctx.eq("vcpu1_initialise_after_down", op(VCPUOP_initialise, 1, &good as *const _ as u64), Errno::EEXIST.to_ret());
    // Up again: it resumes after its VCPUOP_down and goes down again.
    AP_REPORT[0].store(0, Ordering::Release);
    ctx.eq("vcpu1_up_again", op(VCPUOP_up, 1, 0), 0);
    let down = wait_for(10_000, || op(VCPUOP_is_up, 1, 0) == 0);
    ctx.eq("vcpu1_down_again", down, true);
    ctx.eq("vcpu1_resumed_not_restarted", report(0), 0);
}
