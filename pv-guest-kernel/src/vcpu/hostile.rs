//! Hostile values for the vCPU hypercalls, each with the error Xen 4.17
//! gives, and proof that the domain lives on.
//!
//! Left out on purpose, because xen-core refuses them at once where Xen
//! accepts them (and the guest hurts itself later, if ever): deliberate
//! differences. On Xen 4.17:
//! - `stack_switch` to a stack in the hypervisor's range, or with a bad
//!   selector (0x1234): 0 (`do_stack_switch` only fixes the selector up);
//! - a trap-table entry or callback in the hypervisor's range (canonical):
//!   0; `set_callbacks` with one non-canonical address: 0 (each
//!   registration's error is ignored, the others take effect);
//! - `set_segment_base(SEGBASE_GS_USER_SEL, 0x1234)`: 0 (the faulting
//!   selector load is fixed up to a null selector);
//! - `vm_assist` of `writable_pagetables` and `m2p_strict`: 0;
//! - call gates in a GDT (see `cpu_state`).

use hypercall_abi::arch::{
    TrapInfo, FLAT_KERNEL_CS, SEGBASE_FS, SEGBASE_GS_KERNEL, SEGBASE_GS_USER, VMASST_CMD_disable,
    VMASST_CMD_enable, VMASST_TYPE_4gb_segments, VMASST_TYPE_runstate_update_flag,
};
use hypercall_abi::callback::{
    CallbackRegister, CallbackUnregister, CALLBACKOP_register, CALLBACKOP_unregister, CALLBACKTYPE_event,
    CALLBACKTYPE_syscall,
};
use hypercall_abi::guest;
use hypercall_abi::Errno;
use pv_rt::traps;

use super::exceptions::trap_probe;
use super::{Ctx, HexS, TEST_VA};

/// An address in Xen's own range (its direct map): canonical, never ours.
const XEN_VA: u64 = 0xffff_8300_0000_0000;
/// The first non-canonical address above the lower half.
const NON_CANONICAL: u64 = 0x0000_8000_0000_0000;

fn einval() -> i64 {
    Errno::EINVAL.to_ret()
}

pub fn run(ctx: &mut Ctx) {
    trap_table(ctx);
    callbacks(ctx);
    segment_bases(ctx);
    debug_registers(ctx);
    vm_assist(ctx);
}

/// `do_set_trap_table` (`xen/arch/x86/pv/callback.c`): entries are copied
/// one at a time (-EFAULT if one cannot be read), a non-canonical handler
/// is -EINVAL, the CS is fixed up rather than checked.
fn trap_table(ctx: &mut Ctx) {
    // SAFETY: Xen cannot read either table: nothing changes.
    let rc = unsafe { guest::set_trap_table(XEN_VA as *const TrapInfo) };
    ctx.eq("set_trap_table_in_hypervisor", rc, Errno::EFAULT.to_ret());
    // SAFETY: as above.
    let rc = unsafe { guest::set_trap_table((TEST_VA + 0x20_0000) as *const TrapInfo) };
    ctx.eq("set_trap_table_unmapped", rc, Errno::EFAULT.to_ret());

    let entry = |vector: u8, flags: u8, cs: u16, address: u64| TrapInfo { vector, flags, cs, _pad: 0, address };
    let bad = [entry(0x83, 1, FLAT_KERNEL_CS, NON_CANONICAL), TrapInfo::default()];
    // SAFETY: refused before anything is installed.
    let rc = unsafe { guest::set_trap_table(bad.as_ptr()) };
    ctx.eq("set_trap_table_noncanonical_handler", rc, einval());
    let p = trap_probe!("int $0x83");
    ctx.expect_softint_gp("int83_after_refused_entry", &p);

    // A bad code selector is fixed up, not refused (fixup_guest_code_selector),
    // and a 64-bit bounce always uses FLAT_KERNEL_CS anyway: the entry works.
    let bp = traps::stub(3).unwrap_or(0);
    let table = [entry(3, 3, 0x1234, bp), TrapInfo::default()];
    // SAFETY: vector 3 goes to our #BP stub, as before.
    let rc = unsafe { guest::set_trap_table(table.as_ptr()) };
    ctx.eq("set_trap_table_bad_selector", rc, 0);
    let p = trap_probe!("int3");
    ctx.expect_trap("int3_with_bad_selector_entry", &p, 3, None, true);

    // A null table clears every entry; then ours again.
    // SAFETY: no exception is raised until the table is back.
    let rc = unsafe { guest::set_trap_table(core::ptr::null()) };
    ctx.eq("set_trap_table_null_clears", rc, 0);
    let table = traps::default_trap_table();
    // SAFETY: our stubs.
    let rc = unsafe { guest::set_trap_table(table.as_ptr()) };
    ctx.eq("set_trap_table_restored", rc, 0);
    let p = trap_probe!("int3");
    ctx.expect_trap("int3_after_restore", &p, 3, None, true);
}

/// `do_callback_op` and `do_set_callbacks` (`xen/arch/x86/pv/callback.c`).
fn callbacks(ctx: &mut Ctx) {
    let reg = |r#type: u16, address: u64| CallbackRegister { r#type, flags: 0, _pad: 0, address };
    let op = |cmd: u32, arg: u64| {
        // SAFETY: registrations of our own stubs, or refused ones.
        unsafe { guest::callback_op(cmd, arg) }
    };
    let r = reg(CALLBACKTYPE_syscall, NON_CANONICAL);
    ctx.eq("callback_noncanonical", op(CALLBACKOP_register, &r as *const _ as u64), einval());
    let r = reg(99, traps::syscall_callback());
    ctx.eq("callback_unknown_type", op(CALLBACKOP_register, &r as *const _ as u64), Errno::ENOSYS.to_ret());
    ctx.eq("callback_register_bad_pointer", op(CALLBACKOP_register, XEN_VA), Errno::EFAULT.to_ret());
    // Only the NMI callback can be unregistered.
    let u = CallbackUnregister { r#type: CALLBACKTYPE_event, _unused: 0 };
    ctx.eq("callback_unregister_event", op(CALLBACKOP_unregister, &u as *const _ as u64), einval());
    ctx.eq("callback_op_unknown_command", op(99, 0), Errno::ENOSYS.to_ret());
    let r = reg(CALLBACKTYPE_event, traps::event_callback());
    ctx.eq("callback_register_event", op(CALLBACKOP_register, &r as *const _ as u64), 0);
    // Put everything back as install() made it.
    // SAFETY: our own handler and stubs.
    let rc = unsafe { traps::install(super::probe::handler) };
    ctx.eq("callbacks_reinstalled", super::ret(rc), 0);
}

/// `do_set_segment_base` (`xen/arch/x86/pv/misc-hypercalls.c`).
fn segment_bases(ctx: &mut Ctx) {
    let set = |which: u32, base: u64| {
        // SAFETY: refused, or a base we reset before anything uses it.
        unsafe { guest::set_segment_base(which, base) }
    };
    ctx.eq("set_segment_base_fs_noncanonical", set(SEGBASE_FS, NON_CANONICAL), einval());
    ctx.eq("set_segment_base_gs_kernel_noncanonical", set(SEGBASE_GS_KERNEL, NON_CANONICAL), einval());
    ctx.eq("set_segment_base_gs_user_noncanonical", set(SEGBASE_GS_USER, NON_CANONICAL), einval());
    ctx.eq("set_segment_base_unknown_register", set(4, 0), einval());
    ctx.eq("set_segment_base_unknown_register_99", set(99, 0), einval());
    // A base in Xen's range is canonical, so Xen takes it; the guest only
    // hurts itself: a load through it is a protection fault on a
    // supervisor page (#PF, error code P; U cleared for kernel mode).
    ctx.eq("set_segment_base_fs_hypervisor", set(SEGBASE_FS, XEN_VA), 0);
    let p = trap_probe!("mov %fs:0, {v}"; v = out(reg) _,);
    ctx.expect_trap("fs_hypervisor_load", &p, 14, Some(1), false);
    ctx.eq("fs_hypervisor_load_cr2", super::Hex(p.trap.unwrap_or_default().cr2), super::Hex(XEN_VA));
    ctx.eq("set_segment_base_fs_reset", set(SEGBASE_FS, 0), 0);
}

/// `set_debugreg` (`xen/arch/x86/pv/misc-hypercalls.c`): a breakpoint
/// address must be one the guest may access (`access_ok`: not Xen's range,
/// not non-canonical): -EPERM; DR6/DR7's upper half is reserved: -EINVAL;
/// DR7.GD and I/O breakpoints without CR4.DE: -EPERM; no register 8: -ENODEV.
fn debug_registers(ctx: &mut Ctx) {
    let set = |reg: u64, value: u64| {
        // SAFETY: refused, so no breakpoint is armed.
        unsafe { guest::set_debugreg(reg, value) }
    };
    let eperm = Errno::EPERM.to_ret();
    ctx.eq("set_debugreg_dr0_hypervisor_address", set(0, XEN_VA), eperm);
    ctx.eq("set_debugreg_dr1_noncanonical", set(1, NON_CANONICAL), eperm);
    ctx.eq("set_debugreg_dr7_general_detect", set(7, 1 << 13), eperm);
    ctx.eq("set_debugreg_dr7_io_breakpoint", set(7, 0x2_0001), eperm);
    ctx.eq("set_debugreg_dr7_upper_half", set(7, 1 << 32), einval());
    ctx.eq("set_debugreg_dr6_upper_half", set(6, 1 << 32), einval());
    // No such register: -ENODEV (the default case of set_debugreg, and of
    // do_get_debugreg).
    ctx.eq("set_debugreg_dr8", set(8, 0), Errno::ENODEV.to_ret());
    ctx.eq("get_debugreg_dr8", guest::get_debugreg(8), Errno::ENODEV.to_ret());
    ctx.eq("dr1_unchanged_by_refusals", HexS(guest::get_debugreg(1) as u64), HexS(0));
}

/// `do_vm_assist` (`xen/common/kernel.c`): a type outside the
/// architecture's valid mask is -EINVAL, an unknown command -ENOSYS.
fn vm_assist(ctx: &mut Ctx) {
    let va = |cmd: u32, t: u32| {
        // SAFETY: refused, or an assist that changes nothing for a 64-bit
        // guest, turned off again.
        unsafe { guest::vm_assist(cmd, t) }
    };
    ctx.eq("vm_assist_unknown_type_6", va(VMASST_CMD_enable, 6), einval());
    ctx.eq("vm_assist_unknown_type_31", va(VMASST_CMD_enable, 31), einval());
    ctx.eq("vm_assist_type_past_long", va(VMASST_CMD_enable, 64), einval());
    ctx.eq("vm_assist_unknown_command", va(2, VMASST_TYPE_runstate_update_flag), Errno::ENOSYS.to_ret());
    ctx.eq("vm_assist_enable_runstate_update_flag", va(VMASST_CMD_enable, VMASST_TYPE_runstate_update_flag), 0);
    ctx.eq("vm_assist_disable_runstate_update_flag", va(VMASST_CMD_disable, VMASST_TYPE_runstate_update_flag), 0);
    ctx.eq("vm_assist_enable_4gb_segments", va(VMASST_CMD_enable, VMASST_TYPE_4gb_segments), 0);
    ctx.eq("vm_assist_disable_4gb_segments", va(VMASST_CMD_disable, VMASST_TYPE_4gb_segments), 0);
}
