//! Machine-level isolation (issue: traps, TLB, debug registers): returns to
//! a non-canonical RIP, global TLB entries across vCPU switches, #DB in
//! ring 0, NMI and machine checks while a guest runs.

use super::World;
use crate::domain::{DomId, ShutdownReason};
use crate::machine_traps::{hypervisor_debug, merge_dr6, HypervisorDebug, DR6_DEFAULT};
use crate::mm::MachineMemory;
use crate::regs::GuestRegs;
use crate::xen::Next;
use hypercall_abi::nr;

/// Where `syscall` in the last two bytes of the lower half leaves RIP.
const NONCANON: u64 = 0x0000_8000_0000_0000;
const GP_HANDLER: u64 = 0x100200;

fn set_gp_handler(w: &mut World) {
    let mut b = [0u8; 32];
    b[0] = 13;
    b[2..4].copy_from_slice(&0xe033u16.to_le_bytes());
    b[8..16].copy_from_slice(&GP_HANDLER.to_le_bytes());
    let s = w.scratch + 0x2000;
    w.write(s, &b);
    assert_eq!(w.hypercall(nr::SET_TRAP_TABLE, [s, 0, 0, 0, 0]), 0);
}

/// `xen_version(0)` issued by a `syscall` whose next instruction would be
/// at `NONCANON` (the CPU puts that in RCX, the entry stub in the frame).
fn hypercall_from_the_top_of_the_lower_half(w: &mut World) -> (Next, GuestRegs) {
    let sp = w.layout.vstack_end - 0x100;
    let mut regs = GuestRegs { rax: nr::XEN_VERSION, rcx: NONCANON, r11: 0x202, rip: NONCANON, cs: 0xe033, ss: 0xe02b, rsp: sp, rflags: 0x202, ..GuestRegs::default() };
    let next = w.xen.hypercall(&mut regs);
    (next, regs)
}

#[test]
fn a_return_to_a_non_canonical_rip_is_a_gp_for_the_guest_as_on_xen() {
    let mut w = World::new();
    set_gp_handler(&mut w);
    let (next, regs) = hypercall_from_the_top_of_the_lower_half(&mut w);
    assert!(matches!(next, Next::Resume { .. }), "{next:?}");
    assert_eq!(regs.rip, GP_HANDLER, "the guest's #GP handler runs, not iretq to {NONCANON:#x}");
    // Xen's frame: RCX, R11, error code 0, RIP = the non-canonical RIP, CS, ...
    let f: alloc::vec::Vec<u64> = (0..4).map(|i| w.read_u64(regs.rsp + 8 * i)).collect();
    assert_eq!(f[2..], [0, NONCANON]);
    assert_eq!(regs.rax >> 16, 4, "the hypercall itself ran: xen_version is 4.x");
}

#[test]
fn a_non_canonical_return_without_a_gp_handler_crashes_only_the_guest() {
    let mut w = World::new();
    w.add_domain(DomId(1), false);
    w.xen.current = Some((DomId(1), 0));
    let (next, regs) = hypercall_from_the_top_of_the_lower_half(&mut w);
    assert_eq!(w.xen.domains[&DomId(1)].shutdown, Some(ShutdownReason::Crash));
    assert!(matches!(next, Next::Resume { .. }), "Dom0 goes on: {next:?}");
    assert_eq!(w.xen.current, Some((DomId(0), 0)));
    assert!(crate::mm::pte::is_canonical(regs.rip));
}

#[test]
fn iret_to_a_non_canonical_rip_is_a_gp_at_that_rip() {
    let mut w = World::new();
    set_gp_handler(&mut w);
    // rax, r11, rcx, flags, rip, cs, rflags, rsp, ss
    let sp = w.layout.vstack_end - 0x200;
    let ctx = [7u64, 0, 0, 0, NONCANON, 0xe030, 0x202, sp, 0xe02b];
    let mut b = alloc::vec::Vec::new();
    for x in ctx {
        b.extend_from_slice(&x.to_le_bytes());
    }
    let at = w.scratch;
    w.write(at, &b);
    let mut regs = GuestRegs { rax: nr::IRET, rsp: at, rip: 0x101000 + 32 * 23 + 11, cs: 0xe033, ss: 0xe02b, ..GuestRegs::default() };
    let next = w.xen.hypercall(&mut regs);
    assert!(matches!(next, Next::Resume { .. }), "{next:?}");
    assert_eq!(regs.rip, GP_HANDLER);
    let f: alloc::vec::Vec<u64> = (0..5).map(|i| w.read_u64(regs.rsp + 8 * i)).collect();
    assert_eq!(f[2..4], [0, NONCANON], "{f:x?}");
}

#[test]
fn no_return_path_hands_the_cpu_a_non_canonical_rip() {
    // Whatever a guest leaves in its frame, what the core returns is
    // something `iretq` accepts (or another vCPU, or a halt).
    for rip in [NONCANON, NONCANON + 1, 0xffff_7fff_ffff_ffff, u64::MAX >> 1, 0x0000_7fff_ffff_fffe] {
        for handler in [false, true] {
            let mut w = World::new();
            if handler {
                set_gp_handler(&mut w);
            }
            let mut regs = GuestRegs { rax: nr::XEN_VERSION, rip, cs: 0xe033, ss: 0xe02b, rsp: w.layout.vstack_end - 0x80, ..GuestRegs::default() };
            if let Next::Resume { .. } = w.xen.hypercall(&mut regs) {
                assert!(crate::mm::pte::is_canonical(regs.rip), "{rip:#x} -> {:#x}", regs.rip);
            }
        }
    }
}

fn yield_now(w: &mut World) -> Next {
    let mut regs = GuestRegs { rax: nr::SCHED_OP, rdi: 0, cs: 0xe033, ss: 0xe02b, rip: 0x101000 + 32 * 29 + 9, ..GuestRegs::default() };
    w.xen.hypercall(&mut regs)
}

#[test]
fn switching_to_another_domain_drops_global_tlb_entries() {
    let mut w = World::new();
    w.add_domain(DomId(1), false);
    w.xen.domains.get_mut(&DomId(1)).unwrap().vcpus[0].state = crate::vcpu::RunState::Runnable;
    // Dom0 ran last: the first return to it needs no flush.
    let mut regs = GuestRegs { rax: nr::XEN_VERSION, rip: 0x100000, cs: 0xe033, ss: 0xe02b, ..GuestRegs::default() };
    w.xen.tlb_vcpu = Some((DomId(0), 0));
    assert!(matches!(w.xen.hypercall(&mut regs), Next::Resume { flush_global: false, .. }));
    let next = yield_now(&mut w);
    assert_eq!(w.xen.current, Some((DomId(1), 0)));
    assert!(matches!(next, Next::Resume { flush_global: true, .. }), "into domain 1: {next:?}");
    let next = yield_now(&mut w);
    assert_eq!(w.xen.current, Some((DomId(0), 0)));
    assert!(matches!(next, Next::Resume { flush_global: true, .. }), "back into Dom0: {next:?}");
}

#[test]
fn debug_registers_do_not_follow_a_vcpu_switch() {
    let mut w = World::new();
    w.add_domain(DomId(1), false);
    w.xen.domains.get_mut(&DomId(1)).unwrap().vcpus[0].state = crate::vcpu::RunState::Runnable;
    assert_eq!(w.hypercall(nr::SET_DEBUGREG, [0, 0x100000, 0, 0, 0]), 0);
    assert_eq!(w.hypercall(nr::SET_DEBUGREG, [7, 0x3 | (1 << 16), 0, 0, 0]), 0);
    assert_eq!(w.xen.platform.debugregs.get()[7] & 0xff, 3, "Dom0's breakpoint is live while it runs");
    yield_now(&mut w);
    assert_eq!(w.xen.current, Some((DomId(1), 0)));
    let dr = w.xen.platform.debugregs.get();
    assert_eq!((dr[0], dr[7] & 0xff), (0, 0), "domain 1 runs with its own (empty) debug registers");
}

#[test]
fn nmi_and_machine_check_while_a_guest_runs_do_not_touch_it() {
    let mut w = World::new();
    w.add_domain(DomId(1), false);
    w.xen.current = Some((DomId(1), 0));
    for vector in [2, 18] {
        let mut regs = GuestRegs { entry_vector: vector, rip: 0x100010, cs: 0xe033, ss: 0xe02b, rsp: 0x3000, rflags: 0x202, ..GuestRegs::default() };
        let next = w.xen.guest_exception(&mut regs, 0);
        assert!(matches!(next, Next::Resume { .. }), "vector {vector}: {next:?}");
        assert_eq!(w.xen.domains[&DomId(1)].shutdown, None, "vector {vector} crashed the guest");
        assert_eq!(w.xen.current, Some((DomId(1), 0)));
        assert_eq!((regs.rip, regs.rsp), (0x100010, 0x3000), "the guest goes on where it was");
    }
    // The NMI was reported to Dom0 as Xen's nmi=dom0 does.
    let si = w.xen.domains[&DomId(0)].shared_info;
    let off = core::mem::offset_of!(hypercall_abi::shared_info::SharedInfo, arch)
        + core::mem::offset_of!(hypercall_abi::arch::ArchSharedInfo, nmi_reason);
    assert_eq!(w.xen.platform.read_u64(si.mfn(), off / 8) & (1 << 2), 1 << 2);
}

#[test]
fn a_ring0_debug_trap_is_survivable() {
    // A guest data breakpoint (R/W 01) or a single step delayed by `mov ss`:
    // keep DR7, clear TF, go on.
    assert_eq!(hypervisor_debug(DR6_DEFAULT | 1, 0x1 | (1 << 16), 0x2), HypervisorDebug { clear_dr7: false, clear_tf: false });
    assert_eq!(hypervisor_debug(DR6_DEFAULT | (1 << 14), 0, 0x102), HypervisorDebug { clear_dr7: false, clear_tf: true });
    // An enabled instruction breakpoint firing in ring 0 would repeat
    // forever: DR7 goes.
    assert!(hypervisor_debug(DR6_DEFAULT | 4, 0x3 << 4, 0x2).clear_dr7);
    // DR6 claims a breakpoint DR7 does not enable: not believed.
    assert!(!hypervisor_debug(DR6_DEFAULT | 0xf, 0, 0x2).clear_dr7);
}

#[test]
fn dr6_status_accumulates_as_on_hardware() {
    let a = merge_dr6(DR6_DEFAULT, DR6_DEFAULT | 1);
    assert_eq!(a, DR6_DEFAULT | 1);
    assert_eq!(merge_dr6(a, DR6_DEFAULT | (1 << 14)), DR6_DEFAULT | 1 | (1 << 14));
}

#[test]
fn a_sysenter_callback_is_accepted_as_on_xen() {
    // XTF's start of day registers event, syscall, syscall32 and sysenter
    // callbacks and panics if one is refused.
    let mut w = World::new();
    let mut b = [0u8; 16];
    b[0..2].copy_from_slice(&hypercall_abi::callback::CALLBACKTYPE_sysenter.to_le_bytes());
    b[8..16].copy_from_slice(&0x100100u64.to_le_bytes());
    let s = w.scratch + 0x1000;
    w.write(s, &b);
    assert_eq!(w.hypercall(nr::CALLBACK_OP, [hypercall_abi::callback::CALLBACKOP_register as u64, s, 0, 0, 0]), 0);
    assert_eq!(w.xen.domains[&DomId(0)].vcpus[0].callbacks.sysenter, 0x100100);
}

/// #GP(0) in the guest kernel at `bytes` (written at a scratch address).
fn gp_at(w: &mut World, bytes: &[u8], rax: u64) -> (Next, GuestRegs) {
    let init = GuestRegs { rax, ..GuestRegs::default() };
    w.kernel_fault(w.scratch + 0x900, bytes, 13, 0, 0, init)
}

#[test]
fn mov_to_and_from_debug_registers_is_emulated_with_set_debugregs_checks() {
    let mut w = World::new();
    set_gp_handler(&mut w);
    // mov %rax, %db0: DR0 = a guest address, as XTF's xsa-213 stashes %rsp.
    let (next, regs) = gp_at(&mut w, &[0x0f, 0x23, 0xc0], 0x100000);
    assert!(matches!(next, Next::Resume { .. }));
    assert_eq!(regs.rip, w.scratch + 0x900 + 3, "stepped over");
    assert_eq!(w.xen.domains[&DomId(0)].vcpus[0].debugreg[0], 0x100000);
    assert_eq!(w.xen.platform.debugregs.get()[0], 0x100000, "live in the CPU");
    // mov %db0, %rcx reads it back; mov %db4, %rdx is DR6.
    let (_, regs) = gp_at(&mut w, &[0x0f, 0x21, 0xc1], 0);
    assert_eq!(regs.rcx, 0x100000);
    let (_, regs) = gp_at(&mut w, &[0x0f, 0x21, 0xe2], 0);
    assert_eq!(regs.rdx, 0xffff_0ff0);
    // A breakpoint on the hypervisor is refused: the #GP stands.
    let (_, regs) = gp_at(&mut w, &[0x0f, 0x23, 0xc8], 0xffff_8300_0000_0000);
    assert_eq!(regs.rip, GP_HANDLER, "#GP delivered");
    assert_eq!(w.xen.domains[&DomId(0)].vcpus[0].debugreg[1], 0);
    // mov %r12, %db0 (REX.B) reaches the high register.
    let (_, regs) = gp_at(&mut w, &[0x41, 0x0f, 0x21, 0xc4], 0);
    assert_eq!(regs.r12, 0x100000);
    // A #GP(0) instruction nobody emulates (lgdt (%rax)) stays the guest's.
    let (_, regs) = gp_at(&mut w, &[0x0f, 0x01, 0x10], 0);
    assert_eq!(regs.rip, GP_HANDLER);
    // User mode keeps its #GP even for a debug register.
    let at = w.scratch + 0x900;
    w.write(at, &[0x0f, 0x21, 0xc1]);
    w.xen.domains.get_mut(&DomId(0)).unwrap().vcpus[0].kernel_mode = false;
    let mut regs = GuestRegs { entry_vector: 13, rip: at, cs: 0xe033, ss: 0xe02b, rsp: w.layout.vstack_end - 0x80, rflags: 0x202, ..GuestRegs::default() };
    let _ = w.xen.guest_exception(&mut regs, 0);
    assert_eq!(regs.rcx, 0, "not emulated for user mode");
}

#[test]
fn a_mov_naming_dr8_is_an_invalid_opcode() {
    let mut w = World::new();
    set_gp_handler(&mut w);
    // mov %db8, %rax (REX.R): DR8 does not exist, so #UD, not #GP.
    let (_, regs) = gp_at(&mut w, &[0x44, 0x0f, 0x21, 0xc0], 0x55);
    assert_eq!(regs.entry_vector, crate::traps::TRAP_INVALID_OP as u64);
    assert_ne!(regs.rip, GP_HANDLER, "not the #GP handler");
    assert_eq!(regs.rax, 0x55, "nothing read");
}

#[test]
fn an_iret_in_a_multicall_ends_the_batch_there() {
    // XSA-213: [iret, xen_version]: the iret runs on the live frame and the
    // xen_version entry is never executed (its result stays 0).
    let mut w = World::new();
    let list = w.scratch + 0x400;
    let mut b = [0u8; 128];
    b[0..8].copy_from_slice(&nr::IRET.to_le_bytes());
    b[64..72].copy_from_slice(&nr::XEN_VERSION.to_le_bytes());
    w.write(list, &b);
    // The iret context on the stack: rax, r11, rcx, flags, rip, cs, rflags, rsp, ss.
    let sp = w.layout.vstack_end - 0x200;
    let ctx = [0x213u64, 0, 0, 0, 0x100040, 0xe030, 0x202, sp + 0x100, 0xe02b];
    let raw: alloc::vec::Vec<u8> = ctx.iter().flat_map(|x| x.to_le_bytes()).collect();
    w.write(sp, &raw);
    let mut regs = GuestRegs { rax: nr::MULTICALL, rdi: list, rsi: 2, rsp: sp, rip: 0x101000 + 32 * 13 + 9, cs: 0xe033, ss: 0xe02b, ..GuestRegs::default() };
    let next = w.xen.hypercall(&mut regs);
    assert!(matches!(next, Next::Resume { .. }), "{next:?}");
    assert_eq!((regs.rip, regs.rax, regs.rsp), (0x100040, 0x213, sp + 0x100), "the iret was done");
    assert_eq!(w.read_u64(list + 64 + 8), 0, "xen_version after the iret never ran");
}

#[test]
fn iret_to_an_unloadable_selector_is_a_gp_naming_it_as_on_xen() {
    // Seen on Xen 4.17: iret to CS 0x1230 gives #GP(0x1230), the frame
    // showing where the iret was going.
    for (cs, ss, code) in [(0x1230u64, 0xe02b, 0x1230), (0xe030, 0x1238, 0x1238), (0xe008, 0xe02b, 0xe008)] {
        let mut w = World::new();
        set_gp_handler(&mut w);
        let sp = w.layout.vstack_end - 0x200;
        // rax, r11, rcx, flags, rip, cs, rflags, rsp, ss: a kernel-mode return.
        let ctx = [7u64, 0, 0, 0, 0x100040, cs & !3, 0x202, sp, ss];
        let raw: alloc::vec::Vec<u8> = ctx.iter().flat_map(|x| x.to_le_bytes()).collect();
        let at = w.scratch;
        w.write(at, &raw);
        let mut regs = GuestRegs { rax: nr::IRET, rsp: at, rip: 0x101000 + 32 * 23 + 11, cs: 0xe033, ss: 0xe02b, ..GuestRegs::default() };
        let next = w.xen.hypercall(&mut regs);
        assert!(matches!(next, Next::Resume { .. }), "{cs:#x}/{ss:#x}: {next:?}");
        assert_eq!(regs.rip, GP_HANDLER, "{cs:#x}/{ss:#x}");
        let f: alloc::vec::Vec<u64> = (0..5).map(|i| w.read_u64(regs.rsp + 8 * i)).collect();
        assert_eq!((f[2], f[3], f[4] & 0xfffc), (code, 0x100040, cs & 0xfffc), "{f:x?}");
        assert_eq!(w.xen.domains[&DomId(0)].shutdown, None);
    }
}
