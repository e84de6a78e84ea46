//! The vCPU's state the guest sets through hypercalls: FPU/SSE registers
//! and `fpu_taskswitch`, segment bases, the GDT and its descriptors.

use core::arch::asm;
use core::ptr;

use hypercall_abi::arch::{SEGBASE_FS, SEGBASE_GS_KERNEL};
use hypercall_abi::guest;
use hypercall_abi::mm::PAGE_SIZE;
use hypercall_abi::Errno;

use super::exceptions::trap_probe;
use super::probe as record;
use super::{Ctx, Hex, HexS};

/// 16 XMM registers' worth of patterns.
fn patterns(seed: u64) -> [u64; 32] {
    core::array::from_fn(|i| (i as u64 + 1).wrapping_mul(0x0101_0101_0101_0101) ^ seed)
}

/// MXCSR with round-toward-zero (RC = 11b) instead of the default
/// round-to-nearest: a non-default value to see survive.
const MXCSR_RZ: u32 = 0x1f80 | 0x6000;
const MXCSR_DEFAULT: u32 = 0x1f80;

/// Loads XMM0-15 and MXCSR, runs `$between` (a hypercall or a trap), stores
/// them back. Every register a hypercall may clobber is declared.
macro_rules! xmm_roundtrip {
    ($between:literal, $pattern:expr, $out:expr, $mxcsr:expr) => {
        // SAFETY: loads and stores of our own arrays; the instruction in the
        // middle is a hypercall without side effects or an int3 whose
        // handler resumes after it.
        unsafe {
            asm!(
                "movdqu 0x00({p}), %xmm0", "movdqu 0x10({p}), %xmm1",
                "movdqu 0x20({p}), %xmm2", "movdqu 0x30({p}), %xmm3",
                "movdqu 0x40({p}), %xmm4", "movdqu 0x50({p}), %xmm5",
                "movdqu 0x60({p}), %xmm6", "movdqu 0x70({p}), %xmm7",
                "movdqu 0x80({p}), %xmm8", "movdqu 0x90({p}), %xmm9",
                "movdqu 0xa0({p}), %xmm10", "movdqu 0xb0({p}), %xmm11",
                "movdqu 0xc0({p}), %xmm12", "movdqu 0xd0({p}), %xmm13",
                "movdqu 0xe0({p}), %xmm14", "movdqu 0xf0({p}), %xmm15",
                "ldmxcsr ({mx})",
                "xor %edi, %edi",
                "xor %esi, %esi",
                $between,
                "stmxcsr 4({mx})",
                "ldmxcsr 8({mx})",
                "movdqu %xmm0, 0x00({o})", "movdqu %xmm1, 0x10({o})",
                "movdqu %xmm2, 0x20({o})", "movdqu %xmm3, 0x30({o})",
                "movdqu %xmm4, 0x40({o})", "movdqu %xmm5, 0x50({o})",
                "movdqu %xmm6, 0x60({o})", "movdqu %xmm7, 0x70({o})",
                "movdqu %xmm8, 0x80({o})", "movdqu %xmm9, 0x90({o})",
                "movdqu %xmm10, 0xa0({o})", "movdqu %xmm11, 0xb0({o})",
                "movdqu %xmm12, 0xc0({o})", "movdqu %xmm13, 0xd0({o})",
                "movdqu %xmm14, 0xe0({o})", "movdqu %xmm15, 0xf0({o})",
                p = in(reg) $pattern.as_ptr(),
                o = in(reg) $out.as_mut_ptr(),
                mx = in(reg) $mxcsr.as_mut_ptr(),
                out("rax") _, out("rcx") _, out("rdx") _, out("rsi") _, out("rdi") _,
                out("r8") _, out("r9") _, out("r10") _, out("r11") _,
                out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
                out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
                out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
                out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
                options(att_syntax)
            );
        }
    };
}

pub fn fpu(ctx: &mut Ctx) {
    // Per-vCPU FPU state: Xen saves and restores it around everything it
    // runs between our instructions (lazily or not, invisibly to us).
    let pattern = patterns(0x5a5a_0000_a5a5_0000);
    let mut out = [0u64; 32];
    // [0] the MXCSR we load, [1] what we read back, [2] the default we restore.
    let mut mxcsr = [MXCSR_RZ, 0, MXCSR_DEFAULT];
    xmm_roundtrip!("call hypercall_page + 17 * 32", pattern, out, mxcsr);
    let differ = pattern.iter().zip(&out).filter(|(a, b)| a != b).count();
    ctx.eq("xmm_words_changed_by_hypercall", differ, 0);
    ctx.eq("mxcsr_after_hypercall", HexS(mxcsr[1] as u64), HexS(MXCSR_RZ as u64));

    // The same across an exception bounce and iret: our stub saves and
    // restores the FPU around the handler, so what comes back is what Xen
    // preserved on the way in and out.
    let pattern = patterns(0x0f0f_1234_f0f0_4321);
    let mut mxcsr = [MXCSR_RZ, 0, MXCSR_DEFAULT];
    xmm_roundtrip!("int3", pattern, out, mxcsr);
    let (trap, _) = record::take();
    ctx.eq("xmm_roundtrip_int3_vector", trap.map_or(0, |t| t.vector), 3);
    let differ = pattern.iter().zip(&out).filter(|(a, b)| a != b).count();
    ctx.eq("xmm_words_changed_by_exception", differ, 0);
    ctx.eq("mxcsr_after_exception", HexS(mxcsr[1] as u64), HexS(MXCSR_RZ as u64));

    // fpu_taskswitch(1) sets the virtual CR0.TS: the next SSE instruction
    // raises #NM. do_device_not_available injects it and clears the virtual
    // TS, so the handler can simply return and the instruction runs.
    let at: u64;
    let rc: i64;
    let got: u64;
    // SAFETY: the #NM is handled (resumed at the movq); nothing between the
    // hypercall and the movq uses the FPU.
    unsafe {
        asm!(
            "mov $1, %edi",
            "call hypercall_page + 5 * 32",
            "mov %rax, {rc}",
            "lea 1f(%rip), {at}",
            "1: movq {v}, %xmm0",
            "movq %xmm0, {got}",
            v = in(reg) 0x7e57_0000_0000_00a7u64,
            rc = out(reg) rc,
            at = out(reg) at,
            got = out(reg) got,
            out("rax") _, out("rcx") _, out("rdx") _, out("rsi") _, out("rdi") _,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _, out("xmm0") _,
            options(att_syntax)
        );
    }
    let (trap, count) = record::take();
    let t = trap.unwrap_or_default();
    ctx.eq("fpu_taskswitch_set", rc, 0);
    ctx.eq("nm_vector", t.vector, 7);
    ctx.eq("nm_rip_offset", t.rip.wrapping_sub(at) as i64, 0);
    ctx.eq("nm_deliveries", count, 1);
    ctx.eq("nm_instruction_completed", Hex(got), Hex(0x7e57_0000_0000_00a7));

    // Set then cleared again: no #NM.
    let (rc1, rc0): (i64, i64);
    // SAFETY: TS is clear again before the movq.
    unsafe {
        asm!(
            "mov $1, %edi",
            "call hypercall_page + 5 * 32",
            "mov %rax, {rc1}",
            "xor %edi, %edi",
            "call hypercall_page + 5 * 32",
            "mov %rax, {rc0}",
            "movq {rc0}, %xmm0",
            rc1 = out(reg) rc1,
            rc0 = out(reg) rc0,
            out("rax") _, out("rcx") _, out("rdx") _, out("rsi") _, out("rdi") _,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _, out("xmm0") _,
            options(att_syntax)
        );
    }
    let (_, count) = record::take();
    ctx.eq("fpu_taskswitch_set_again", rc1, 0);
    ctx.eq("fpu_taskswitch_clear", rc0, 0);
    ctx.eq("nm_after_clear", count, 0);
}

static FS_WORD: u64 = 0xf5f5_0000_0000_0f5f;
static GS_WORD: u64 = 0x6565_0000_0000_0656;

pub fn segment_bases(ctx: &mut Ctx) {
    // set_segment_base (xen/arch/x86/pv/misc-hypercalls.c): FS and the
    // kernel's GS take any canonical base, loaded at once.
    // SAFETY: nothing else uses %fs or %gs in this kernel.
    let rc = unsafe { guest::set_segment_base(SEGBASE_FS, &raw const FS_WORD as u64) };
    ctx.eq("set_segment_base_fs", rc, 0);
    let v: u64;
    // SAFETY: %fs points at FS_WORD.
    unsafe { asm!("mov %fs:0, {v}", v = out(reg) v, options(att_syntax, nostack, readonly)) };
    ctx.eq("fs_relative_load", Hex(v), Hex(FS_WORD));

    // SAFETY: as above.
    let rc = unsafe { guest::set_segment_base(SEGBASE_GS_KERNEL, &raw const GS_WORD as u64) };
    ctx.eq("set_segment_base_gs_kernel", rc, 0);
    let v: u64;
    // SAFETY: %gs points at GS_WORD.
    unsafe { asm!("mov %gs:0, {v}", v = out(reg) v, options(att_syntax, nostack, readonly)) };
    ctx.eq("gs_relative_load", Hex(v), Hex(GS_WORD));

    // Back to 0 for the rest of the test.
    // SAFETY: as above.
    let rc = unsafe { guest::set_segment_base(SEGBASE_FS, 0) + guest::set_segment_base(SEGBASE_GS_KERNEL, 0) };
    ctx.eq("segment_bases_reset", rc, 0);
}

/// Descriptors of our GDT page (64-bit code is execute-only here so that
/// loading it into a data register faults).
const D_CODE64_XO_DPL3: u64 = 0x00af_f800_0000_ffff;
const D_DATA_DPL3: u64 = 0x00cf_f200_0000_ffff;
const D_CODE32_DPL3: u64 = 0x00cf_fa00_0000_ffff;
const D_DATA_DPL0: u64 = 0x00cf_9200_0000_ffff;
const D_CODE64_DPL0: u64 = 0x00af_9a00_0000_ffff;
/// The same with DPL 3, as Xen rewrites them.
const D_CODE64_DPL3: u64 = 0x00af_fa00_0000_ffff;
/// A data descriptor with P = 0.
const D_DATA_NOT_PRESENT: u64 = 0x00cf_7200_0000_ffff;
/// System descriptors no PV guest may have: a 64-bit TSS (low half) and an LDT.
const D_TSS: u64 = 0x0000_8900_0000_0067;
const D_LDT: u64 = 0x0000_8200_0000_0fff;
/// A call gate whose target is Xen's own ring-0 code selector (0xe008):
/// refused (guest_gate_selector_okay). A call gate to a selector of the
/// guest's own is accepted by Xen, which forces its DPL to 0 (so using it
/// faults, to be emulated) and keeps the original DPL in the target's RPL;
/// xen-core refuses every call gate (a deliberate difference), so that case
/// is not tested.
const D_CALL_GATE_BAD: u64 = 0x0000_ec00_e008_0000;

/// Loads `sel` into %es and reads %es back; %es is null again afterwards.
/// A faulting load is caught and resumed after it.
fn load_es(sel: u16) -> (u16, super::exceptions::Probe) {
    let back: u64;
    let p = trap_probe!("mov {sel:x}, %es", "mov %es, {back:x}"; sel = in(reg) sel, back = inout(reg) 0xffffu64 => back,);
    // SAFETY: the null selector is always loadable into %es.
    unsafe { asm!("mov {z:x}, %es", z = in(reg) 0u16, options(att_syntax, nostack, nomem)) };
    (back as u16, p)
}

pub fn descriptor_tables(ctx: &mut Ctx) {
    let Some(pfn) = ctx.mm.alloc_frame_low() else {
        ctx.eq("gdt_frame", false, true);
        return;
    };
    let (mfn, alias) = (ctx.mfn(pfn), ctx.mm.alias(pfn).unwrap_or(0));
    let descs = [0, D_CODE64_XO_DPL3, D_DATA_DPL3, D_CODE32_DPL3, D_DATA_DPL0, D_CODE64_DPL0];
    // SAFETY: a fresh frame of the initial mapping, writable through its alias.
    unsafe {
        ptr::write_bytes(alias as *mut u8, 0, PAGE_SIZE as usize);
        for (i, d) in descs.iter().enumerate() {
            ptr::write_volatile((alias as *mut u64).add(i), *d);
        }
    }
    let gdt_entry = |i: usize| -> u64 {
        // SAFETY: the alias stays mapped (read-only while the frame is a GDT).
        unsafe { ptr::read_volatile((alias as *const u64).add(i)) }
    };
    let maddr = |i: u64| (mfn << 12) + 8 * i;
    let frames = [mfn];

    // A frame mapped writable cannot become a descriptor page
    // (pv_set_gdt: get_page_type(PGT_seg_desc_page) fails).
    // SAFETY: refused, or else a GDT we tear down below.
    let rc = unsafe { guest::set_gdt(frames.as_ptr() as u64, 512) };
    ctx.eq("set_gdt_writable_frame", rc, Errno::EINVAL.to_ret());

    // SAFETY: nothing writes the frame any more.
    let rc = unsafe { ctx.mm.set_alias_writable(pfn, false) };
    ctx.eq("gdt_frame_read_only", super::ret(rc), 0);
    // SAFETY: our GDT: its selectors are loaded only by the checks below.
    let rc = unsafe { guest::set_gdt(frames.as_ptr() as u64, 512) };
    ctx.eq("set_gdt", rc, 0);
    // Validation (alloc_segdesc_page -> check_descriptor) rewrites a DPL
    // below the guest kernel's ring (3 for 64-bit PV) in place: DPL 0
    // descriptors are fixed up to DPL 3, not refused.
    ctx.eq("set_gdt_fixes_dpl0_data", Hex(gdt_entry(4)), Hex(D_DATA_DPL0 | 3 << 45));
    ctx.eq("set_gdt_fixes_dpl0_code", Hex(gdt_entry(5)), Hex(D_CODE64_DPL3));

    let (back, p) = load_es(0x13);
    ctx.eq("load_es_gdt_data", HexS(back as u64), HexS(0x13));
    ctx.eq("load_es_gdt_data_faults", p.count, 0);
    let (back, p) = load_es(0x23);
    ctx.eq("load_es_fixed_up_data", HexS(back as u64), HexS(0x23));
    ctx.eq("load_es_fixed_up_data_faults", p.count, 0);
    // Bad selectors: the CPU refuses them with #GP(selector), and Xen
    // passes the #GP on (do_general_protection, a non-zero error code is
    // not emulated).
    let (_, p) = load_es(0x0b);
    ctx.expect_trap("load_es_execute_only_code", &p, 13, Some(0x08), false);
    let (_, p) = load_es(0x1000);
    ctx.expect_trap("load_es_beyond_gdt_limit", &p, 13, Some(0x1000), false);
    // Xen's own ring-0 code selector, in its reserved part of every GDT.
    let (_, p) = load_es(0xe008);
    ctx.expect_trap("load_es_hypervisor_cs", &p, 13, Some(0xe008), false);

    // update_descriptor (do_update_descriptor): check_descriptor again,
    // with the same DPL fix-up, then an atomic write.
    // SAFETY: entry 3 of our GDT, not loaded anywhere.
    let rc = unsafe { guest::update_descriptor(maddr(3), D_CODE64_DPL0) };
    ctx.eq("update_descriptor_dpl0_code", rc, 0);
    ctx.eq("update_descriptor_dpl0_code_stored", Hex(gdt_entry(3)), Hex(D_CODE64_DPL3));
    // A not-present descriptor is always accepted (it can only fault);
    // loading it raises #NP(selector).
    // SAFETY: entry 6, not loaded anywhere.
    let rc = unsafe { guest::update_descriptor(maddr(6), D_DATA_NOT_PRESENT) };
    ctx.eq("update_descriptor_not_present", rc, 0);
    let (_, p) = load_es(0x33);
    ctx.expect_trap("load_es_not_present", &p, 11, Some(0x30), false);

    // Refusals, all -EINVAL.
    for (name, addr, desc) in [
        ("update_descriptor_misaligned", maddr(3) + 4, D_DATA_DPL3),
        ("update_descriptor_tss", maddr(3), D_TSS),
        ("update_descriptor_ldt", maddr(3), D_LDT),
        ("update_descriptor_call_gate_bad_target", maddr(3), D_CALL_GATE_BAD),
        // A page table: no other type may be taken on it.
        ("update_descriptor_page_table", ctx.mm.l4_mfn() << 12, D_DATA_DPL3),
        // Frame 0 is not ours.
        ("update_descriptor_foreign_frame", 0, D_DATA_DPL3),
    ] {
        // SAFETY: refused, so nothing is written.
        let rc = unsafe { guest::update_descriptor(addr, desc) };
        ctx.eq(name, rc, Errno::EINVAL.to_ret());
    }
    ctx.eq("update_descriptor_refusals_left_entry", Hex(gdt_entry(3)), Hex(D_CODE64_DPL3));

    // An ordinary writable page of ours takes a descriptor too (the
    // frame's type is writable, which update_descriptor allows).
    if let Some(pfn2) = ctx.mm.alloc_frame_low() {
        let a2 = ctx.mm.alias(pfn2).unwrap_or(0);
        // SAFETY: a fresh frame, ours alone.
        unsafe { ptr::write_bytes(a2 as *mut u8, 0, PAGE_SIZE as usize) };
        // SAFETY: writes 8 bytes into that frame.
        let rc = unsafe { guest::update_descriptor(ctx.mfn(pfn2) << 12 | 0x18, D_DATA_DPL3) };
        ctx.eq("update_descriptor_ordinary_page", rc, 0);
        // SAFETY: as above.
        let got = unsafe { ptr::read_volatile((a2 + 0x18) as *const u64) };
        ctx.eq("update_descriptor_ordinary_page_stored", Hex(got), Hex(D_DATA_DPL3));

        // A GDT page with a system descriptor in it fails validation.
        // SAFETY: as above.
        unsafe { ptr::write_volatile((a2 + 8) as *mut u64, D_TSS) };
        // SAFETY: we are done writing the frame: read-only from here on.
        let rc = unsafe { ctx.mm.set_alias_writable(pfn2, false) };
        let frames2 = [ctx.mfn(pfn2)];
        // SAFETY: refused: our GDT stays.
        let rc2 = unsafe { guest::set_gdt(frames2.as_ptr() as u64, 512) };
        ctx.eq("set_gdt_page_with_tss", rc2, Errno::EINVAL.to_ret());
        // SAFETY: the frame is no descriptor page: writable again.
        let rc3 = unsafe { ctx.mm.set_alias_writable(pfn2, true) };
        ctx.eq("set_gdt_refused_frame_writable_again", super::ret(rc.and(rc3)), 0);
    }
    let (back, _) = load_es(0x13);
    ctx.eq("gdt_unchanged_by_refusals", HexS(back as u64), HexS(0x13));

    // More refusals of set_gdt itself (do_set_gdt, pv_set_gdt).
    // SAFETY: refused.
    let rc = unsafe { guest::set_gdt(frames.as_ptr() as u64, 14 * 512 + 1) };
    ctx.eq("set_gdt_too_many_entries", rc, Errno::EINVAL.to_ret());
    // SAFETY: refused.
    let rc = unsafe { guest::set_gdt(0xffff_8300_0000_0000, 512) };
    ctx.eq("set_gdt_frame_list_in_hypervisor", rc, Errno::EFAULT.to_ret());
    let zero = [0u64];
    // SAFETY: refused.
    let rc = unsafe { guest::set_gdt(zero.as_ptr() as u64, 512) };
    ctx.eq("set_gdt_foreign_frame", rc, Errno::EINVAL.to_ret());
    let l4 = [ctx.mm.l4_mfn()];
    // SAFETY: refused.
    let rc = unsafe { guest::set_gdt(l4.as_ptr() as u64, 512) };
    ctx.eq("set_gdt_page_table_frame", rc, Errno::EINVAL.to_ret());

    // Tear down: no GDT of ours (0 entries), and the frame is an ordinary
    // page again, writable.
    // SAFETY: %es is null; nothing else uses our selectors.
    let rc = unsafe { guest::set_gdt(frames.as_ptr() as u64, 0) };
    ctx.eq("set_gdt_empty", rc, 0);
    // SAFETY: the frame is no descriptor page now.
    let rc = unsafe { ctx.mm.set_alias_writable(pfn, true) };
    ctx.eq("gdt_frame_writable_again", super::ret(rc), 0);
}
