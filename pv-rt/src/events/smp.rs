//! Secondary vCPUs: `vcpu_op` (`vcpu.h`) bring-up as Linux's
//! `cpu_initialize_context` does it, their stacks, and taking them down.
//!
//! A PV domain's vCPUs other than 0 exist from the start (Dom0 gets
//! `dom0_max_vcpus` of them) but are down and uninitialised. `VCPUOP_is_up`
//! tells whether one exists (0 or 1; `-ENOENT` past the last).
//! `VCPUOP_initialise` gives it a whole `vcpu_guest_context`: kernel mode,
//! our page tables (`ctrlreg[3]`), its stack, the event callback; then
//! `VCPUOP_up` makes it runnable. It starts with events masked (Xen's Dom0
//! builder masks every `vcpu_info`), runs the given function, and when that
//! returns takes itself down with `VCPUOP_down`, as Linux's `xen_play_dead`.

use core::arch::global_asm;
use core::sync::atomic::{AtomicUsize, Ordering};

use hypercall_abi::arch::{xen_pfn_to_cr3, VcpuGuestContext, FLAT_KERNEL_CS, FLAT_KERNEL_SS, VGCF_in_kernel};
use hypercall_abi::sched::SCHEDOP_yield;
use hypercall_abi::vcpu::{VCPUOP_down, VCPUOP_initialise, VCPUOP_is_up, VCPUOP_up};
use hypercall_abi::{guest, nr, Errno};

use super::MAX_VCPUS;
use crate::mm::{check, Mm};

/// Stack of each secondary vCPU: the upcalls it takes run on it too.
pub const AP_STACK_SIZE: usize = 32 * 1024;

/// RFLAGS of a new vCPU: IF (Xen forces it anyway; the guest's own
/// interrupt flag is `evtchn_upcall_mask`) and the always-one bit 1.
const AP_RFLAGS: u64 = 0x202;

/// What a secondary vCPU runs; its argument is the vCPU's number.
pub type ApMain = fn(vcpu: usize);

static AP_MAIN: [AtomicUsize; MAX_VCPUS] = [const { AtomicUsize::new(0) }; MAX_VCPUS];

// pv_rt_ap_stacks: one stack per secondary vCPU, vCPU n's being the (n-1)th.
// pv_rt_ap_entry: where a new vCPU starts, on the top of its stack (16-byte
// aligned, so after the call the callee sees the SysV alignment).
global_asm!(
    r#"
    .section .text.pv_rt_evtchn, "ax", @progbits
    .globl pv_rt_ap_entry
    .type pv_rt_ap_entry, @function
pv_rt_ap_entry:
    xor %ebp, %ebp                  # ends frame-pointer walks here
    call {ap_main}
    ud2
    .size pv_rt_ap_entry, . - pv_rt_ap_entry

    .section .bss.pv_rt_ap_stacks, "aw", @nobits
    .balign 4096
    .globl pv_rt_ap_stacks
pv_rt_ap_stacks:
    .skip {size}
    "#,
    ap_main = sym pv_rt_ap_main,
    size = const AP_STACK_SIZE * (MAX_VCPUS - 1),
    options(att_syntax)
);

extern "C" {
    fn pv_rt_ap_entry();
    static pv_rt_ap_stacks: u8;
}

fn stacks_base() -> u64 {
    &raw const pv_rt_ap_stacks as u64
}

/// The top of secondary vCPU `vcpu`'s stack.
pub fn stack_top(vcpu: usize) -> u64 {
    assert!((1..MAX_VCPUS).contains(&vcpu));
    stacks_base() + (vcpu as u64) * AP_STACK_SIZE as u64
}

/// Which vCPU runs on the stack `rsp` points into: `n` on secondary vCPU
/// `n`'s stack, otherwise 0 (pv-rt's boot stack). The top itself belongs to
/// the stack below it (it is the stack pointer before the first push).
pub fn vcpu_of_stack(rsp: u64) -> usize {
    let base = stacks_base();
    let end = base + ((MAX_VCPUS - 1) * AP_STACK_SIZE) as u64;
    if rsp > base && rsp <= end {
        1 + ((rsp - base - 1) / AP_STACK_SIZE as u64) as usize
    } else {
        0
    }
}

/// `vcpu_op(cmd, vcpuid, arg)`.
///
/// # Safety
/// `arg` must be null or point at the structure `cmd` reads or writes; a
/// vCPU brought up runs what its context says.
pub unsafe fn vcpu_op(cmd: u32, vcpuid: u32, arg: u64) -> i64 {
    // SAFETY: the caller vouches for `arg` and the context.
    unsafe { guest::hypercall3(nr::VCPU_OP, cmd as u64, vcpuid as u64, arg) }
}

/// `VCPUOP_is_up`: 1 up, 0 down, `-ENOENT` when the domain has no such vCPU.
pub fn is_up(vcpu: u32) -> i64 {
    // SAFETY: is_up takes no argument and changes nothing.
    unsafe { vcpu_op(VCPUOP_is_up, vcpu, 0) }
}

/// How many vCPUs the domain has (up or not), counting up to [`MAX_VCPUS`],
/// as Linux's `xen_fill_possible_map` probes them.
pub fn count() -> usize {
    (0..MAX_VCPUS as u32).take_while(|&v| is_up(v) >= 0).count()
}

/// The context Linux's `cpu_initialize_context` would give: kernel mode at
/// [`pv_rt_ap_entry`] on the vCPU's stack (also its kernel stack for entries
/// from user mode), flat kernel selectors, Xen's default GDT (no frames),
/// no trap table, our top-level page table, the event callback, no FPU image
/// (Xen gives the default one), CR0.TS clear.
pub fn context(mm: &Mm, vcpu: usize) -> VcpuGuestContext {
    let mut ctx = VcpuGuestContext::zeroed();
    ctx.flags = VGCF_in_kernel;
    ctx.user_regs.rip = pv_rt_ap_entry as *const () as u64;
    ctx.user_regs.rsp = stack_top(vcpu);
    ctx.user_regs.cs = FLAT_KERNEL_CS;
    ctx.user_regs.ss = FLAT_KERNEL_SS;
    ctx.user_regs.rflags = AP_RFLAGS;
    ctx.kernel_ss = FLAT_KERNEL_SS as u64;
    ctx.kernel_sp = stack_top(vcpu);
    ctx.ctrlreg[3] = xen_pfn_to_cr3(mm.l4_mfn());
    ctx.event_callback_eip = super::upcall::entry();
    ctx
}

/// `VCPUOP_initialise` of secondary vCPU `vcpu` with [`context`], to run
/// `main` once brought [`up`].
pub fn initialise(mm: &Mm, vcpu: usize, main: ApMain) -> Result<(), Errno> {
    if !(1..MAX_VCPUS).contains(&vcpu) {
        return Err(Errno::EINVAL);
    }
    AP_MAIN[vcpu].store(main as usize, Ordering::Release);
    let ctx = context(mm, vcpu);
    // SAFETY: Xen reads the context; it starts the vCPU at our entry on a
    // stack nothing else uses, with our own page tables.
    check(unsafe { vcpu_op(VCPUOP_initialise, vcpu as u32, &ctx as *const VcpuGuestContext as u64) }).map(drop)
}

/// `VCPUOP_up`.
pub fn up(vcpu: usize) -> Result<(), Errno> {
    // SAFETY: up takes no argument; the vCPU runs the context it was given.
    check(unsafe { vcpu_op(VCPUOP_up, vcpu as u32, 0) }).map(drop)
}

/// Waits (yielding) until `vcpu` is down, at most `tries` yields; returns
/// whether it went down.
pub fn wait_down(vcpu: usize, tries: u32) -> bool {
    for _ in 0..tries {
        if is_up(vcpu as u32) == 0 {
            return true;
        }
        guest::sched_yield();
    }
    is_up(vcpu as u32) == 0
}

/// Where a secondary vCPU's life runs: the function it was initialised
/// with, then down for good.
extern "C" fn pv_rt_ap_main() -> ! {
    let vcpu = super::current_vcpu();
    let main = AP_MAIN[vcpu].load(Ordering::Acquire);
    if main != 0 {
        // SAFETY: AP_MAIN holds 0 or an `ApMain` stored by `initialise`.
        let main: ApMain = unsafe { core::mem::transmute::<usize, ApMain>(main) };
        main(vcpu);
    }
    loop {
        // SAFETY: down of ourselves: Xen deschedules us until an `up`, after
        // which we go down again.
        unsafe { vcpu_op(VCPUOP_down, vcpu as u32, 0) };
        // SAFETY: yield takes no argument.
        unsafe { guest::hypercall2(nr::SCHED_OP, SCHEDOP_yield as u64, 0) };
    }
}
