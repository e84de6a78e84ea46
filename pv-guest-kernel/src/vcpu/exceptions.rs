//! Exceptions and software interrupts raised in guest kernel mode, and what
//! the bounce frame Xen writes looks like.
//!
//! Xen 4.17's paths: a CPU exception in a PV guest enters Xen's IDT, whose
//! handler (`do_trap`, `do_invalid_op`, `do_int3`, `do_debug`,
//! `do_device_not_available`, `do_general_protection`, `do_page_fault` in
//! `xen/arch/x86/traps.c`) calls `pv_inject_event`
//! (`xen/arch/x86/pv/traps.c`), which fills the vCPU's trap bounce from the
//! virtual IDT; `create_bounce_frame` (`x86_64/entry.S`) writes the frame on
//! the way out. `int N` meets a DPL-0 gate in Xen's IDT and arrives as
//! #GP(N << 3 | 2): `do_general_protection` delivers it as a software
//! interrupt if the guest's entry allows (`permit_softint`: DPL >= 1 from
//! kernel mode, 3 from user mode), else passes the #GP on. `int $0x80` has a
//! DPL-3 gate of its own (`entry_int80`), `int3` goes to `do_int3`, which
//! delivers without looking at the guest's DPL.

use core::sync::atomic::Ordering;

use hypercall_abi::guest;
use hypercall_abi::mm::PAGE_SIZE;
use pv_rt::traps::TI_MASK_EVENTS;

use super::probe::{self, Trap, HW_BREAKPOINT_ARMED};
use super::{Ctx, HexS, TEST_VA};

/// What a probe saw.
pub struct Probe {
    /// The address of the probe's first instruction (the one expected to fault).
    pub at: u64,
    /// The address after the probe's instructions.
    pub after: u64,
    /// RSP when the probe ran.
    pub sp: u64,
    pub trap: Option<Trap>,
    /// Deliveries during the probe.
    pub count: u64,
}

/// Runs the instructions with [`FIXUP`] armed to the end of them and
/// returns what the handler recorded. Extra operands follow a `;`.
macro_rules! trap_probe {
    ($($insn:literal),+ $(; $($ops:tt)*)?) => {{
        let at: u64;
        let after: u64;
        let sp: u64;
        // Forget deliveries from before the probe (user mode records there too).
        let _ = $crate::vcpu::probe::take();
        // SAFETY: each probe's instructions raise at most an exception that
        // the installed handler records and resumes from at label 2 (or, for
        // a trap, after the instruction, which is label 2 too); registers not
        // named as operands are restored by the entry stub.
        unsafe {
            core::arch::asm!(
                "lea 1f(%rip), {at}",
                "lea 2f(%rip), {after}",
                "mov {after}, {fixup}(%rip)",
                "mov %rsp, {sp}",
                "1:",
                $($insn,)+
                "2:",
                at = out(reg) at,
                after = out(reg) after,
                sp = out(reg) sp,
                fixup = sym $crate::vcpu::probe::FIXUP,
                $($($ops)*)?
                options(att_syntax)
            );
        }
        $crate::vcpu::probe::FIXUP.store(0, core::sync::atomic::Ordering::Relaxed);
        let (trap, count) = $crate::vcpu::probe::take();
        $crate::vcpu::exceptions::Probe { at, after, sp, trap, count }
    }};
}
pub(crate) use trap_probe;

impl Ctx {
    /// Checks the vector, error code (when the vector has one), where RIP
    /// points (`at` for a fault, after the instruction for a trap) and that
    /// exactly one event arrived.
    pub fn expect_trap(&mut self, name: &str, p: &Probe, vector: u64, error_code: Option<u64>, rip_after: bool) {
        let t = p.trap.unwrap_or_default();
        self.eq_fmt(format_args!("{name}_vector"), HexS(t.vector), HexS(vector));
        if let Some(ec) = error_code {
            self.eq_fmt(format_args!("{name}_error_code"), HexS(t.error_code), HexS(ec));
        }
        let expected = if rip_after { p.after - p.at } else { 0 };
        self.eq_fmt(format_args!("{name}_rip_offset"), t.rip.wrapping_sub(p.at) as i64, expected as i64);
        self.eq_fmt(format_args!("{name}_deliveries"), p.count, 1);
    }

    /// Checks a refused `int N`: #GP at the instruction, with an error code
    /// that names an IDT entry (bit 1) and no external event (bit 0).
    ///
    /// Which entry it names is left alone: QEMU's TCG (7.2) computes it as
    /// `N * 16 + 2` in long mode where hardware gives `N * 8 + 2`, and Xen,
    /// which reads the vector as `error_code >> 3`, then looks at entry
    /// `2N mod 256` of our virtual IDT. So only vectors whose entry `N` and
    /// entry `2N mod 256` both refuse are used here, and `int N` that a
    /// guest entry allows (delivered through this #GP path) is not tested.
    pub fn expect_softint_gp(&mut self, name: &str, p: &Probe) {
        let t = p.trap.unwrap_or_default();
        self.eq_fmt(format_args!("{name}_vector"), HexS(t.vector), HexS(13));
        self.eq_fmt(format_args!("{name}_error_code_idt"), HexS(t.error_code & 3), HexS(2));
        self.eq_fmt(format_args!("{name}_rip_offset"), t.rip.wrapping_sub(p.at) as i64, 0);
        self.eq_fmt(format_args!("{name}_deliveries"), p.count, 1);
    }
}

pub fn run(ctx: &mut Ctx) {
    // #UD from ud2 (do_invalid_op: not the forced-emulation prefix, so
    // injected as is). The whole frame, once.
    let p = trap_probe!("ud2");
    ctx.expect_trap("ud2", &p, 6, None, false);
    let t = p.trap.unwrap_or_default();
    // create_bounce_frame: in kernel mode the frame goes below the
    // interrupted RSP, rounded down to 16 bytes, and CS loses its RPL.
    ctx.eq("ud2_frame_rsp_is_interrupted_rsp", t.rsp.wrapping_sub(p.sp) as i64, 0);
    ctx.eq("ud2_frame_end_aligned_16", t.frame_end % 16, 0);
    ctx.eq("ud2_frame_end_is_rsp_rounded_down", (p.sp & !15).wrapping_sub(t.frame_end) as i64, 0);
    ctx.eq("ud2_frame_cs", HexS(t.cs_sel()), HexS(0xe030));
    ctx.eq("ud2_frame_ss", HexS(t.ss), HexS(0xe02b));
    // Events are masked in our kernel: CS bits 32-39 carry the mask, and
    // RFLAGS.IF is its inverse.
    ctx.eq("ud2_frame_saved_upcall_mask", t.saved_mask(), 1);
    ctx.eq("ud2_frame_rflags_if", HexS(t.rflags & 0x200), HexS(0));

    // #GP(0) from lidt in ring 3: do_general_protection tries
    // pv_emulate_privileged_op, which does not do lidt, and injects #GP.
    let dtr = [0u8; 10];
    let p = trap_probe!("lidt ({dtr})"; dtr = in(reg) dtr.as_ptr(),);
    ctx.expect_trap("lidt", &p, 13, Some(0), false);

    // #BP from int3 (do_int3): a trap, RIP past the one-byte instruction.
    let p = trap_probe!("int3");
    ctx.expect_trap("int3", &p, 3, None, true);

    // #DE from a division by zero (do_trap).
    let p = trap_probe!("div %rcx"; in("rcx") 0u64, inout("rax") 1u64 => _, inout("rdx") 0u64 => _,);
    ctx.expect_trap("divide_error", &p, 0, None, false);

    // #DB from single-stepping one nop (do_debug): a trap after the nop;
    // DR6.BS (bit 14) says why.
    let p = trap_probe!("pushfq", "orq $0x100, (%rsp)", "popfq", "nop");
    let t = p.trap.unwrap_or_default();
    ctx.eq("single_step_vector", t.vector, 1);
    ctx.eq("single_step_rip_offset", t.rip.wrapping_sub(p.after) as i64, 0);
    ctx.eq("single_step_deliveries", p.count, 1);
    ctx.eq("single_step_dr6_bs", HexS(t.dr6 & 0x4000), HexS(0x4000));

    // #DB from a hardware breakpoint set with set_debugreg: DR0 = the
    // instruction, DR7 = L0 (execute, length 1). A fault: RIP at the
    // instruction; DR6.B0. The handler disarms DR7 and the nop then runs.
    hardware_breakpoint(ctx);

    // int $0x80 through our DPL-3 entry (entry_int80: Xen's direct path);
    // the handler triples RAX.
    let mut rax = 14u64;
    let p = trap_probe!("int $0x80"; inout("rax") rax,);
    ctx.expect_trap("int80", &p, 0x80, None, true);
    ctx.eq("int80_rax_in_handler", p.trap.unwrap_or_default().rax, 14);
    ctx.eq("int80_result_in_rax", rax, 42);

    // int $0x80 goes to Xen's own DPL-3 gate and straight to the guest's
    // entry (init_int80_direct_trap copies it into int80_bounce): the
    // entry's DPL is not looked at. With a DPL-0 entry it still arrives.
    let mut table = pv_rt::traps::default_trap_table();
    if let Some(ti) = table.iter_mut().find(|ti| ti.vector == 0x80) {
        ti.flags = 0;
    }
    // SAFETY: our stubs, with vector 0x80's DPL lowered to 0.
    let rc = unsafe { guest::set_trap_table(table.as_ptr()) };
    ctx.eq("set_trap_table_int80_dpl0", rc, 0);
    let mut rax = 1u64;
    let p = trap_probe!("int $0x80"; inout("rax") rax,);
    ctx.expect_trap("int80_dpl0", &p, 0x80, None, true);
    ctx.eq("int80_dpl0_result_in_rax", rax, 3);
    let table = pv_rt::traps::default_trap_table();
    // SAFETY: our stubs as install() registered them.
    let rc = unsafe { guest::set_trap_table(table.as_ptr()) };
    ctx.eq("set_trap_table_default_again", rc, 0);

    // Any other int N meets a DPL-0 gate in Xen's IDT and arrives as
    // #GP(N << 3 | 2); do_general_protection delivers it only if
    // permit_softint allows (DPL >= 1 from kernel mode). int $0x81 against
    // our DPL-0 entry: the #GP itself is delivered.
    let p = trap_probe!("int $0x81");
    ctx.expect_softint_gp("int81_dpl0", &p);
    // int $0x83 with no entry at all: #GP.
    let p = trap_probe!("int $0x83");
    ctx.expect_softint_gp("int83_no_entry", &p);

    page_faults(ctx);
}

/// #PF: do_page_fault finds nothing to fix up and calls
/// pv_inject_page_fault: the address goes to `vcpu_info.arch.cr2`, the
/// error code's U bit is rewritten to say which guest mode faulted (both run
/// in ring 3), and our #PF entry, registered with TI_SET_IF, masks events.
fn page_faults(ctx: &mut Ctx) {
    let unmapped = TEST_VA + 0x10_0000;
    let p = trap_probe!("mov ({va}), {va}"; va = inout(reg) unmapped => _,);
    ctx.expect_trap("pf_read_unmapped", &p, 14, Some(0), false);
    let t = p.trap.unwrap_or_default();
    ctx.eq("pf_read_unmapped_cr2", super::Hex(t.cr2), super::Hex(unmapped));
    ctx.eq("pf_read_unmapped_upcall_mask_in_handler", t.upcall_mask, 1);

    // A read-only mapping of a frame of ours, written.
    let va = TEST_VA + PAGE_SIZE;
    let mapped = match ctx.mm.alloc_frame() {
        // SAFETY: a test page, nothing else there.
        Some(pfn) => unsafe { ctx.mm.map(va, pfn, false) }.is_ok(),
        None => false,
    };
    ctx.eq("pf_map_read_only_page", mapped, true);
    let p = trap_probe!("movq $1, ({va})"; va = in(reg) va + 8,);
    ctx.expect_trap("pf_write_read_only", &p, 14, Some(3), false);
    let t = p.trap.unwrap_or_default();
    ctx.eq("pf_write_read_only_cr2", super::Hex(t.cr2), super::Hex(va + 8));
    let _ = TI_MASK_EVENTS;
}

// A one-instruction function to put a breakpoint on.
core::arch::global_asm!(
    ".section .text.vcpu_bp_target, \"ax\", @progbits",
    ".globl vcpu_bp_target",
    "vcpu_bp_target:",
    "    nop",
    "    ret",
);

extern "C" {
    fn vcpu_bp_target();
}

fn hardware_breakpoint(ctx: &mut Ctx) {
    let target = vcpu_bp_target as *const () as u64;
    // SAFETY: a breakpoint on an instruction of ours, with a handler that
    // disarms it.
    let rc0 = unsafe { guest::set_debugreg(0, target) };
    ctx.eq("set_debugreg_dr0", rc0, 0);
    ctx.eq("get_debugreg_dr0", super::Hex(guest::get_debugreg(0) as u64), super::Hex(target));
    HW_BREAKPOINT_ARMED.store(true, Ordering::Relaxed);
    // SAFETY: as above. DR7 = L0: breakpoint 0 enabled, on execution.
    let rc7 = unsafe { guest::set_debugreg(7, 1) };
    ctx.eq("set_debugreg_dr7", rc7, 0);
    // set_debugreg forces the reserved bit 10 to 1.
    ctx.eq("get_debugreg_dr7", HexS(guest::get_debugreg(7) as u64), HexS(0x401));
    // SAFETY: `nop; ret`; the breakpoint's #DB is handled (RIP stays at the
    // nop, which runs once the handler has disarmed DR7).
    unsafe { vcpu_bp_target() };
    let still_armed = HW_BREAKPOINT_ARMED.swap(false, Ordering::Relaxed);
    let (trap, count) = probe::take();
    let t = trap.unwrap_or_default();
    ctx.eq("breakpoint_vector", t.vector, 1);
    ctx.eq("breakpoint_rip_offset", t.rip.wrapping_sub(target) as i64, 0);
    ctx.eq("breakpoint_deliveries", count, 1);
    ctx.eq("breakpoint_dr6_b0", HexS(t.dr6 & 0xf), HexS(1));
    ctx.eq("breakpoint_disarmed_by_handler", still_armed, false);
    ctx.eq("get_debugreg_dr7_after", HexS(guest::get_debugreg(7) as u64), HexS(0x400));
}
