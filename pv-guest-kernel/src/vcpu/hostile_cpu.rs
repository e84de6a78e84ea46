//! `workload=hostile-cpu`: what a guest can do to the processor the
//! hypervisor shares with it, each with Xen 4.17's answer, and proof that
//! the domain (and the machine) lives on.
//!
//! - Debug registers pointed at the hypervisor are refused (`-EPERM`,
//!   Xen's `set_debugreg` with `access_ok`).
//! - A data breakpoint armed on a buffer the hypervisor writes during a
//!   hypercall: on Xen the write (through the guest's linear address) hits
//!   it in ring 0, which Xen notes and continues from (XSA-260's handling);
//!   xen-core writes guest memory through its direct map, so it never
//!   fires. Either way the hypercall succeeds and the guest gets no #DB.
//! - `_PAGE_GLOBAL` on a guest mapping is accepted (Xen allows G for PV),
//!   and the page works. That another domain cannot see the entry is the
//!   hypervisor's TLB flush on a vCPU switch; QEMU's TCG flushes its whole
//!   TLB on every CR3 load, so that part is shown by xen-core's host tests.
//! - A hypercall issued by a `syscall` in the last two bytes of the lower
//!   half returns to the non-canonical 0x0000800000000000: Xen (and
//!   xen-core) give #GP(0) with that RIP in the frame, after the hypercall
//!   has run (its result is in RAX).
//! - An `iret` to a code selector the GDT does not hold: Xen's `iretq`
//!   faults and the guest gets #GP naming the selector (0x1230).

use hypercall_abi::guest;
use hypercall_abi::mm::{PAGE_SIZE, _PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_GLOBAL, _PAGE_PRESENT, _PAGE_RW};
use hypercall_abi::Errno;

use super::exceptions::trap_probe;
use super::{probe, Ctx, Hex, HexS, TEST_VA};

/// Xen's direct map and its M2P table: canonical, never the guest's.
const XEN_DIRECTMAP: u64 = 0xffff_8300_0000_0000;
const XEN_M2P: u64 = 0xffff_8000_0000_0000;
/// The page holding the last two bytes of the lower half, and the RIP a
/// `syscall` there leaves.
const TOP_PAGE: u64 = 0x0000_7fff_ffff_f000;
const NON_CANONICAL: u64 = 0x0000_8000_0000_0000;
/// `XENVER_version` and `XENVER_extraversion`.
const XENVER_VERSION: u64 = 0;
const XENVER_EXTRAVERSION: u32 = 1;

/// A buffer the hypervisor writes (`xen_extraversion_t` is 16 bytes).
#[repr(C, align(16))]
struct Buf([u8; 16]);
static mut BUF: Buf = Buf([0; 16]);

pub fn run(_cmd: &str) {
    let Some(mut ctx) = super::setup("hostile-cpu") else { return };
    breakpoints_on_the_hypervisor(&mut ctx);
    data_breakpoint_in_a_hypercall(&mut ctx);
    global_mapping(&mut ctx);
    syscall_at_the_top_of_the_lower_half(&mut ctx);
    iret_to_a_bad_selector(&mut ctx);
    let p = trap_probe!("ud2");
    ctx.expect_trap("alive_ud2", &p, 6, None, false);
    ctx.checks.verdict();
}

fn breakpoints_on_the_hypervisor(ctx: &mut Ctx) {
    let eperm = Errno::EPERM.to_ret();
    // SAFETY: refused, or a breakpoint that DR7 does not enable.
    unsafe {
        ctx.eq("dr0_on_xen_directmap", guest::set_debugreg(0, XEN_DIRECTMAP), eperm);
        ctx.eq("dr1_on_xen_m2p", guest::set_debugreg(1, XEN_M2P), eperm);
        ctx.eq("dr2_non_canonical", guest::set_debugreg(2, NON_CANONICAL), eperm);
        ctx.eq("dr3_top_of_lower_half", guest::set_debugreg(3, NON_CANONICAL - 8), 0);
        ctx.eq("dr3_cleared", guest::set_debugreg(3, 0), 0);
    }
    ctx.eq("dr0_unchanged", guest::get_debugreg(0), 0);
}

fn data_breakpoint_in_a_hypercall(ctx: &mut Ctx) {
    let buf = core::ptr::addr_of_mut!(BUF) as u64;
    // DR7: L0, R/W0 = 01 (data writes), LEN0 = 11 (8 bytes).
    let dr7 = 1 | (0b01 << 16) | (0b11 << 18);
    // SAFETY: a write breakpoint on our own buffer; our #DB handler disarms
    // it if it ever reaches us.
    unsafe {
        ctx.eq("dr0_on_our_buffer", guest::set_debugreg(0, buf), 0);
        ctx.eq("dr7_write_breakpoint", guest::set_debugreg(7, dr7), 0);
    }
    probe::HW_BREAKPOINT_ARMED.store(true, core::sync::atomic::Ordering::Relaxed);
    let _ = probe::take();
    // SAFETY: BUF is 16 bytes, what XENVER_extraversion writes.
    let rc = unsafe { guest::xen_version(XENVER_EXTRAVERSION, buf as *mut u8) };
    let (_, deliveries) = probe::take();
    probe::HW_BREAKPOINT_ARMED.store(false, core::sync::atomic::Ordering::Relaxed);
    // SAFETY: turning breakpoints off.
    unsafe {
        guest::set_debugreg(7, 0);
        guest::set_debugreg(0, 0);
    }
    ctx.eq("hypercall_writing_under_a_breakpoint", rc, 0);
    ctx.eq("debug_traps_from_the_hypervisors_write", deliveries, 0);
    // SAFETY: the hypercall is over; nothing else writes BUF.
    let first = unsafe { core::ptr::read_volatile(core::ptr::addr_of!(BUF.0[0])) };
    ctx.eq("extraversion_written", first != 0, true);
}

fn global_mapping(ctx: &mut Ctx) {
    let va = TEST_VA + 0x40_0000;
    let Some(pfn) = ctx.mm.alloc_frame() else {
        ctx.eq("global_mapping_frame", false, true);
        return;
    };
    let mfn = ctx.mfn(pfn);
    let rc = match ctx.mm.ensure_l1(va) {
        Ok(l1) => {
            let pte = (mfn << 12) | _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY | _PAGE_GLOBAL;
            // SAFETY: a test page of our own, nothing else at `va`.
            super::ret(unsafe { ctx.mm.write_entry(l1, ((va >> 12) & 511) as usize, pte) })
        }
        Err(e) => e.to_ret(),
    };
    ctx.eq("global_mapping_accepted", rc, 0);
    if rc == 0 {
        // SAFETY: the page just mapped, ours alone.
        let back = unsafe {
            core::ptr::write_volatile(va as *mut u64, 0x6c61_626f_6c67);
            core::ptr::read_volatile(va as *const u64)
        };
        ctx.eq("global_mapping_works", HexS(back), HexS(0x6c61_626f_6c67));
        // SAFETY: nothing uses the page any more.
        let _ = unsafe { ctx.mm.unmap(va) };
    }
}

fn syscall_at_the_top_of_the_lower_half(ctx: &mut Ctx) {
    let Some(pfn) = ctx.mm.alloc_frame() else {
        ctx.eq("top_page_frame", false, true);
        return;
    };
    // SAFETY: nothing of ours is mapped in L4 slot 255.
    let mapped = unsafe { ctx.mm.map(TOP_PAGE, pfn, true) };
    ctx.eq("top_page_mapped", super::ret(mapped), 0);
    if mapped.is_err() {
        return;
    }
    // `syscall` in the page's last two bytes.
    // SAFETY: the page just mapped writable, ours alone.
    unsafe { core::ptr::write_volatile((TOP_PAGE + PAGE_SIZE - 2) as *mut [u8; 2], [0x0f, 0x05]) };
    let p = trap_probe!(
        "movabs $0x7ffffffffffe, %r11",
        "jmp *%r11";
        inout("rax") hypercall_abi::nr::XEN_VERSION => _,
        inout("rdi") XENVER_VERSION => _,
        out("rcx") _, out("r11") _, out("rsi") _, out("rdx") _, out("r10") _, out("r8") _,
    );
    let t = p.trap.unwrap_or_default();
    ctx.eq("syscall_at_top_vector", HexS(t.vector), HexS(13));
    ctx.eq("syscall_at_top_error_code", HexS(t.error_code), HexS(0));
    ctx.eq("syscall_at_top_rip", Hex(t.rip), Hex(NON_CANONICAL));
    ctx.eq("syscall_at_top_hypercall_ran", HexS(t.rax), HexS(0x0004_0011));
    ctx.eq("syscall_at_top_deliveries", p.count, 1);
    // SAFETY: the page is no longer used.
    let _ = unsafe { ctx.mm.unmap(TOP_PAGE) };
}

fn iret_to_a_bad_selector(ctx: &mut Ctx) {
    // The iret context above the hypercall page's pushes (rcx, r11, rax):
    // flags, rip, cs, rflags (IF clear: events stay masked), rsp, ss. It
    // returns to label 2 on the current stack, but with CS 0x1230.
    let p = trap_probe!(
        "mov %rsp, %r11",
        "pushq $0xe02b",
        "push %r11",
        "pushfq",
        "andl $~0x200, (%rsp)",
        "pushq $0x1230",
        "lea 2f(%rip), %rax",
        "push %rax",
        "pushq $0",
        "jmp hypercall_page + 23 * 32";
        out("rax") _, out("r11") _, out("rcx") _,
    );
    let t = p.trap.unwrap_or_default();
    ctx.eq("iret_bad_cs_vector", HexS(t.vector), HexS(13));
    ctx.eq("iret_bad_cs_error_code", HexS(t.error_code), HexS(0x1230));
    ctx.eq("iret_bad_cs_frame_cs", HexS(t.cs_sel() & 0xfffc), HexS(0x1230));
    ctx.eq("iret_bad_cs_deliveries", p.count, 1);
}
