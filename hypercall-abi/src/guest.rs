//! Guest-side hypercalls, for our PV kernels.
//!
//! A hypercall is `call hypercall_page + 32 * nr` with the arguments in
//! `%rdi %rsi %rdx %r10 %r8` and the result in `%rax`. The page is the
//! 4 KiB, page-aligned `hypercall_page` symbol that `pv-rt` defines in the
//! kernel's `.text` and names in its `XEN_ELFNOTE_HYPERCALL_PAGE` note, so the
//! hypervisor fills it before the kernel starts.
//!
//! Register contract: `%rcx` and `%r11` are clobbered by `syscall` (the page
//! saves and restores them, but we do not rely on it); Xen may clobber the
//! argument registers (debug builds of Xen deliberately do), so all of them
//! are outputs here too. The stack is used by the page's pushes and by the
//! `call`, so no `nostack`.

use core::arch::asm;
use core::ptr;

use crate::console::CONSOLEIO_write;
use crate::errno::Errno;
use crate::mm::{MmuUpdate, MmuextOp, MulticallEntry};
use crate::nr;
use crate::sched::{SchedShutdown, SCHEDOP_shutdown, SCHEDOP_yield};

extern "C" {
    /// Defined by `pv-rt`; filled by the hypervisor at domain build.
    static hypercall_page: [u8; 4096];
}

#[inline(always)]
fn entry(nr: u64) -> usize {
    // Taking the address of an extern static reads nothing, so needs no unsafe.
    let base = &raw const hypercall_page as usize;
    base + 32 * nr as usize
}

/// A number past the page's 128 entries has no entry to call: report it as
/// the hypervisor would an unknown hypercall instead of jumping past the page.
macro_rules! check_nr {
    ($nr:expr) => {
        if $nr >= crate::nr::HYPERCALL_PAGE_ENTRIES as u64 {
            return crate::errno::Errno::ENOSYS.to_ret();
        }
    };
}

/// # Safety
/// The hypercall page must be mapped and filled (true once a PV kernel runs),
/// and `nr` must be a hypercall whose side effects the caller accepts.
#[inline(always)]
pub unsafe fn hypercall0(nr: u64) -> i64 {
    check_nr!(nr);
    let ret: i64;
    // SAFETY: the caller guarantees the page; every register the hypercall or
    // `syscall` may change is declared as clobbered.
    unsafe {
        asm!("call {entry}",
             entry = in(reg) entry(nr),
             lateout("rax") ret,
             lateout("rdi") _, lateout("rsi") _, lateout("rdx") _, lateout("r10") _,
             lateout("r8") _, lateout("rcx") _, lateout("r11") _);
    }
    ret
}

/// # Safety
/// As [`hypercall0`]; pointer arguments must be valid for what `nr` does.
#[inline(always)]
pub unsafe fn hypercall1(nr: u64, a1: u64) -> i64 {
    check_nr!(nr);
    let ret: i64;
    // SAFETY: as in hypercall0.
    unsafe {
        asm!("call {entry}",
             entry = in(reg) entry(nr),
             lateout("rax") ret,
             inout("rdi") a1 => _, lateout("rsi") _, lateout("rdx") _, lateout("r10") _,
             lateout("r8") _, lateout("rcx") _, lateout("r11") _);
    }
    ret
}

/// # Safety
/// As [`hypercall1`].
#[inline(always)]
pub unsafe fn hypercall2(nr: u64, a1: u64, a2: u64) -> i64 {
    check_nr!(nr);
    let ret: i64;
    // SAFETY: as in hypercall0.
    unsafe {
        asm!("call {entry}",
             entry = in(reg) entry(nr),
             lateout("rax") ret,
             inout("rdi") a1 => _, inout("rsi") a2 => _, lateout("rdx") _, lateout("r10") _,
             lateout("r8") _, lateout("rcx") _, lateout("r11") _);
    }
    ret
}

/// # Safety
/// As [`hypercall1`].
#[inline(always)]
pub unsafe fn hypercall3(nr: u64, a1: u64, a2: u64, a3: u64) -> i64 {
    check_nr!(nr);
    let ret: i64;
    // SAFETY: as in hypercall0.
    unsafe {
        asm!("call {entry}",
             entry = in(reg) entry(nr),
             lateout("rax") ret,
             inout("rdi") a1 => _, inout("rsi") a2 => _, inout("rdx") a3 => _,
             lateout("r10") _, lateout("r8") _, lateout("rcx") _, lateout("r11") _);
    }
    ret
}

/// # Safety
/// As [`hypercall1`].
#[inline(always)]
pub unsafe fn hypercall4(nr: u64, a1: u64, a2: u64, a3: u64, a4: u64) -> i64 {
    check_nr!(nr);
    let ret: i64;
    // SAFETY: as in hypercall0.
    unsafe {
        asm!("call {entry}",
             entry = in(reg) entry(nr),
             lateout("rax") ret,
             inout("rdi") a1 => _, inout("rsi") a2 => _, inout("rdx") a3 => _,
             inout("r10") a4 => _, lateout("r8") _, lateout("rcx") _, lateout("r11") _);
    }
    ret
}

/// # Safety
/// As [`hypercall1`].
#[inline(always)]
pub unsafe fn hypercall5(nr: u64, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> i64 {
    check_nr!(nr);
    let ret: i64;
    // SAFETY: as in hypercall0.
    unsafe {
        asm!("call {entry}",
             entry = in(reg) entry(nr),
             lateout("rax") ret,
             inout("rdi") a1 => _, inout("rsi") a2 => _, inout("rdx") a3 => _,
             inout("r10") a4 => _, inout("r8") a5 => _, lateout("rcx") _, lateout("r11") _);
    }
    ret
}

/// `console_io(CONSOLEIO_write, len, buf)`: returns 0 or `-errno`.
pub fn console_write(buf: &[u8]) -> i64 {
    // SAFETY: Xen only reads `buf.len()` bytes from `buf`, which the slice
    // guarantees are readable.
    unsafe {
        hypercall3(nr::CONSOLE_IO, CONSOLEIO_write as u64, buf.len() as u64, buf.as_ptr() as u64)
    }
}

/// `xen_version(cmd, arg)`.
///
/// # Safety
/// `arg` must be null or point to a buffer of the type `cmd` writes.
pub unsafe fn xen_version(cmd: u32, arg: *mut u8) -> i64 {
    // SAFETY: the caller guarantees `arg` matches `cmd`.
    unsafe { hypercall2(nr::XEN_VERSION, cmd as u64, arg as u64) }
}

/// `sched_op(SCHEDOP_shutdown, {reason})`: returns only on failure.
pub fn sched_shutdown(reason: u32) -> i64 {
    let arg = SchedShutdown { reason };
    // SAFETY: Xen reads the 4-byte struct, which lives on our stack for the call.
    unsafe { hypercall2(nr::SCHED_OP, SCHEDOP_shutdown as u64, &arg as *const _ as u64) }
}

/// `sched_op(SCHEDOP_yield, NULL)`.
pub fn sched_yield() -> i64 {
    // SAFETY: yield takes no memory argument.
    unsafe { hypercall2(nr::SCHED_OP, SCHEDOP_yield as u64, 0) }
}

/// The largest batch `mmu_update`/`mmuext_op` accept: the top bit of their
/// `count` is Xen's `MMU_UPDATE_PREEMPTED` continuation marker.
pub const MMU_BATCH_MAX: usize = (1 << 31) - 1;

/// `mmu_update(reqs, count, pdone, foreigndom)`: applies `reqs` in order and
/// stops at the first failure, whose error it returns; `*done` receives how
/// many requests took effect. `foreigndom` is `DOMID_SELF` for our own pages
/// (the top 16 bits name a foreign page-table owner, plus one).
///
/// # Safety
/// The requests rewrite our page tables: none may unmap or remap memory that
/// Rust code still uses (code, stack, statics, live references).
pub unsafe fn mmu_update(reqs: &[MmuUpdate], done: Option<&mut u32>, foreigndom: u32) -> i64 {
    if reqs.len() > MMU_BATCH_MAX {
        return Errno::EINVAL.to_ret();
    }
    let done = done.map_or(ptr::null_mut(), |d| d as *mut u32);
    // SAFETY: Xen reads `reqs.len()` requests from the slice and writes one
    // u32 to `done` (or nothing when null); the caller vouches for the effect.
    unsafe {
        hypercall4(nr::MMU_UPDATE, reqs.as_ptr() as u64, reqs.len() as u64, done as u64, foreigndom as u64)
    }
}

/// `mmuext_op(ops, count, pdone, foreigndom)`, with `mmu_update`'s batch
/// semantics.
///
/// # Safety
/// As [`mmu_update`]: pins, unpins, new base pointers and page clears change
/// what memory means; the caller must keep Rust's view of memory valid.
pub unsafe fn mmuext_op(ops: &[MmuextOp], done: Option<&mut u32>, foreigndom: u32) -> i64 {
    if ops.len() > MMU_BATCH_MAX {
        return Errno::EINVAL.to_ret();
    }
    let done = done.map_or(ptr::null_mut(), |d| d as *mut u32);
    // SAFETY: Xen reads the ops and writes `done`; see the function's contract.
    unsafe { hypercall4(nr::MMUEXT_OP, ops.as_ptr() as u64, ops.len() as u64, done as u64, foreigndom as u64) }
}

/// `update_va_mapping(va, val, flags)`: sets the L1 entry that maps `va` (the
/// L1 table must already be hooked in), then flushes as `flags` (`UVMF_*`)
/// asks.
///
/// # Safety
/// As [`mmu_update`], for the page at `va`.
pub unsafe fn update_va_mapping(va: u64, val: u64, flags: u64) -> i64 {
    // SAFETY: no pointer arguments; the caller vouches for the mapping change.
    unsafe { hypercall3(nr::UPDATE_VA_MAPPING, va, val, flags) }
}

/// `multicall(entries, nr)`: runs each entry's hypercall and stores its
/// return value in the entry's `result`.
///
/// # Safety
/// Every entry must be safe to issue on its own (see each hypercall's
/// contract), with its pointer arguments valid for the whole call.
pub unsafe fn multicall(entries: &mut [MulticallEntry]) -> i64 {
    // SAFETY: Xen reads and writes back the entries within the slice; the
    // caller vouches for each entry.
    unsafe { hypercall2(nr::MULTICALL, entries.as_mut_ptr() as u64, entries.len() as u64) }
}

/// `memory_op(cmd, arg)`.
///
/// # Safety
/// `arg` must be null or point to the structure `cmd` reads and writes, and
/// any pages the command gives away must no longer be mapped or used.
pub unsafe fn memory_op(cmd: u32, arg: *mut u8) -> i64 {
    // SAFETY: the caller guarantees `arg` matches `cmd`.
    unsafe { hypercall2(nr::MEMORY_OP, cmd as u64, arg as u64) }
}

// ---------------------------------------------------------------------------
// The virtual CPU: trap table, stacks, callbacks, FPU, segments, descriptor
// tables, debug registers, vCPUs. Addresses are plain `u64`s here: what they
// must point at is in each function's contract, and a kernel testing the
// hypervisor needs to pass bad ones on purpose.

/// `set_trap_table(traps)`: installs the virtual IDT entries of the array at
/// `traps`, up to the first entry whose `address` is 0 (a null `traps`
/// clears the whole table).
///
/// # Safety
/// From now on exceptions go to the addresses in the table: each must be an
/// entry point that follows Xen's bounce-frame convention.
pub unsafe fn set_trap_table(traps: *const crate::arch::TrapInfo) -> i64 {
    // SAFETY: Xen reads the array up to its terminator; the caller vouches
    // for the entry points.
    unsafe { hypercall1(nr::SET_TRAP_TABLE, traps as u64) }
}

/// `stack_switch(ss, sp)`: the stack Xen switches to when it enters the guest
/// kernel from guest user mode (an exception, `syscall`, an event).
///
/// # Safety
/// `sp` must be the top of a stack nothing else uses while user mode runs.
pub unsafe fn stack_switch(ss: u64, sp: u64) -> i64 {
    // SAFETY: no memory argument; the caller vouches for the stack.
    unsafe { hypercall2(nr::STACK_SWITCH, ss, sp) }
}

/// `set_callbacks(event, failsafe, syscall)`: the 64-bit form, three
/// addresses, no selectors.
///
/// # Safety
/// Each address must be an entry point that follows Xen's bounce-frame
/// convention.
pub unsafe fn set_callbacks(event: u64, failsafe: u64, syscall: u64) -> i64 {
    // SAFETY: no memory argument; the caller vouches for the entry points.
    unsafe { hypercall3(nr::SET_CALLBACKS, event, failsafe, syscall) }
}

/// `callback_op(cmd, arg)` with `arg` a `callback_register` or
/// `callback_unregister` as `cmd` says.
///
/// # Safety
/// `arg` must point at the structure `cmd` reads; a registered address must
/// be an entry point that follows Xen's bounce-frame convention.
pub unsafe fn callback_op(cmd: u32, arg: u64) -> i64 {
    // SAFETY: Xen reads the structure; the caller vouches for it.
    unsafe { hypercall2(nr::CALLBACK_OP, cmd as u64, arg) }
}

/// `fpu_taskswitch(set)`: sets (1) or clears (0) the virtual `CR0.TS`; with
/// it set, the next FPU/SSE instruction raises #NM in the guest.
///
/// # Safety
/// With TS set, any FPU or SSE instruction (which compiled Rust code uses
/// freely) faults: the caller needs an #NM handler.
pub unsafe fn fpu_taskswitch(set: u64) -> i64 {
    // SAFETY: no memory argument; the caller vouches for the #NM handling.
    unsafe { hypercall1(nr::FPU_TASKSWITCH, set) }
}

/// `set_segment_base(which, base)` (`SEGBASE_*`).
///
/// # Safety
/// Code that addresses memory through %fs or %gs now reaches `base`.
pub unsafe fn set_segment_base(which: u32, base: u64) -> i64 {
    // SAFETY: no memory argument; the caller vouches for the segment use.
    unsafe { hypercall2(nr::SET_SEGMENT_BASE, which as u64, base) }
}

/// `set_gdt(frame_list, entries)`: the guest's GDT is the `entries`
/// descriptors in the machine frames listed at `frame_list`.
///
/// # Safety
/// The frames become descriptor pages (no writable mapping may remain), and
/// selectors in use must stay valid.
pub unsafe fn set_gdt(frame_list: u64, entries: u64) -> i64 {
    // SAFETY: Xen reads the frame list; the caller vouches for the rest.
    unsafe { hypercall2(nr::SET_GDT, frame_list, entries) }
}

/// `update_descriptor(maddr, desc)`: writes one 8-byte descriptor at machine
/// address `maddr`, after Xen checked it.
///
/// # Safety
/// The write changes guest memory behind Rust's back: `maddr` must name a
/// descriptor slot or memory nothing else reads as something else.
pub unsafe fn update_descriptor(maddr: u64, desc: u64) -> i64 {
    // SAFETY: no pointer into our address space; the caller vouches for the
    // frame written.
    unsafe { hypercall2(nr::UPDATE_DESCRIPTOR, maddr, desc) }
}

/// `set_debugreg(reg, value)`.
///
/// # Safety
/// Breakpoints raise #DB: the caller needs a handler for them.
pub unsafe fn set_debugreg(reg: u64, value: u64) -> i64 {
    // SAFETY: no memory argument; the caller vouches for #DB handling.
    unsafe { hypercall2(nr::SET_DEBUGREG, reg, value) }
}

/// `get_debugreg(reg)`: the value, or `-EINVAL` for a register past 7
/// (which a value can also be: the caller knows which registers it asks).
pub fn get_debugreg(reg: u64) -> i64 {
    // SAFETY: reads the vCPU's register; no memory argument, no effect.
    unsafe { hypercall1(nr::GET_DEBUGREG, reg) }
}

/// `vm_assist(cmd, type)` (`VMASST_CMD_*`, `VMASST_TYPE_*`).
///
/// # Safety
/// An assist changes how the hypervisor treats the guest's page tables,
/// segments or flags: the caller must be ready for it.
pub unsafe fn vm_assist(cmd: u32, r#type: u32) -> i64 {
    // SAFETY: no memory argument; the caller vouches for the assist.
    unsafe { hypercall2(nr::VM_ASSIST, cmd as u64, r#type as u64) }
}

/// `vcpu_op(cmd, vcpuid, arg)` (`VCPUOP_*`).
///
/// # Safety
/// `arg` must be null or point at the structure `cmd` reads or writes; a
/// vCPU brought up runs the code and stack its context names.
pub unsafe fn vcpu_op(cmd: u32, vcpuid: u32, arg: u64) -> i64 {
    // SAFETY: the caller vouches for `arg` and for the vCPU's context.
    unsafe { hypercall3(nr::VCPU_OP, cmd as u64, vcpuid as u64, arg) }
}
