//! The virtual-CPU hypercalls against hostile values, and exception
//! delivery, through the hypercall and exception entries. Each bad value
//! gets an error code or crashes only the guest that sent it.

use super::invariants::check;
use super::{World, RW};
use crate::domain::{DomId, ShutdownReason};
use crate::mm::{MachineMemory, Mfn, PageType};
use crate::regs::GuestRegs;
use crate::vcpu::RunState;
use crate::xen::Next;
use hypercall_abi::errno::Errno;
use hypercall_abi::nr;

const EINVAL: i64 = Errno::EINVAL.to_ret();
const EPERM: i64 = Errno::EPERM.to_ret();
const HV: u64 = 0xffff_8300_0000_1000;
const NONCANON: u64 = 0x0000_8000_0000_0000;

fn ok(w: &World) {
    if let Err(e) = check(&w.xen) {
        panic!("invariant broken: {e}");
    }
}

impl World {
    fn trap_table(&mut self, entries: &[(u8, u8, u64)]) -> i64 {
        let mut b = alloc::vec::Vec::new();
        for &(vec, flags, addr) in entries.iter().chain([(0u8, 0u8, 0u64)].iter()) {
            b.extend_from_slice(&[vec, flags]);
            b.extend_from_slice(&0xe033u16.to_le_bytes());
            b.extend_from_slice(&[0; 4]);
            b.extend_from_slice(&addr.to_le_bytes());
        }
        let s = self.scratch + 0x2000;
        self.write(s, &b);
        self.hypercall(nr::SET_TRAP_TABLE, [s, 0, 0, 0, 0])
    }

    fn stack(&self) -> u64 {
        self.layout.vstack_end
    }

    /// Raise `vector` in the current vCPU at `rip` with kernel stack `rsp`.
    fn raise(&mut self, vector: u64, error_code: u64, rsp: u64) -> (Next, GuestRegs) {
        let mut regs = GuestRegs {
            entry_vector: vector,
            error_code,
            rip: 0x100010,
            cs: 0xe033,
            ss: 0xe02b,
            rsp,
            rflags: 0x202,
            rcx: 0x1111,
            r11: 0x2222,
            ..GuestRegs::default()
        };
        let next = self.xen.guest_exception(&mut regs, 0xdead_0000);
        (next, regs)
    }
}

#[test]
fn trap_tables_with_bad_addresses_are_refused() {
    let mut w = World::new();
    assert_eq!(w.hypercall(nr::SET_TRAP_TABLE, [HV, 0, 0, 0, 0]), Errno::EFAULT.to_ret());
    assert_eq!(w.hypercall(nr::SET_TRAP_TABLE, [0x7000_0000, 0, 0, 0, 0]), Errno::EFAULT.to_ret());
    assert_eq!(w.trap_table(&[(14, 0, NONCANON)]), EINVAL);
    assert_eq!(w.trap_table(&[(14, 0, HV)]), EINVAL);
    assert_eq!(w.trap_table(&[(14, 0, 0x100100), (13, 0, 0x100200)]), 0);
    assert_eq!(w.xen.domains[&DomId(0)].vcpus[0].traps[13].address, 0x100200);
    assert_eq!(w.hypercall(nr::SET_TRAP_TABLE, [0, 0, 0, 0, 0]), 0, "null clears");
    assert_eq!(w.xen.domains[&DomId(0)].vcpus[0].traps[13].address, 0);
}

#[test]
fn an_exception_is_bounced_with_xens_frame() {
    let mut w = World::new();
    assert_eq!(w.trap_table(&[(14, 0, 0x100100), (3, 3, 0x100300)]), 0);
    let sp = w.stack() - 0x100;
    let (next, regs) = w.raise(14, 0x6, sp);
    assert!(matches!(next, Next::Resume { .. }));
    assert_eq!((regs.rip, regs.cs, regs.ss), (0x100100, 0xe033, 0xe02b));
    // RCX, R11, error code, RIP, CS (RPL 0: kernel; mask in bits 32-39), RFLAGS, RSP, SS.
    let f: alloc::vec::Vec<u64> = (0..8).map(|i| w.read_u64(regs.rsp + 8 * i)).collect();
    assert_eq!(regs.rsp, (sp & !15) - 64);
    assert_eq!(f, [0x1111, 0x2222, 0x6 & !4, 0x100010, 0xe030 | (1 << 32), 0x002, sp, 0xe02b]);
    // The faulting address went to vcpu_info.arch.cr2.
    let si = w.xen.domains[&DomId(0)].shared_info.mfn();
    assert_eq!(w.xen.platform.read_u64(si, 2), 0xdead_0000);
}

#[test]
fn an_exception_without_a_handler_or_a_usable_stack_crashes_only_that_domain() {
    let mut w = World::new();
    w.add_domain(DomId(1), false);
    // Domain 1 gets its turn once Dom0 is gone? Dom0's death stops the
    // machine, so crash domain 1 instead: make it current.
    w.xen.current = Some((DomId(1), 0));
    w.xen.domains.get_mut(&DomId(1)).unwrap().vcpus[0].traps[14].address = 0x100100;
    let (next, _) = w.raise(14, 0, HV);
    assert_eq!(w.xen.domains[&DomId(1)].shutdown, Some(ShutdownReason::Crash));
    assert!(matches!(next, Next::Resume { .. }), "Dom0 runs on: {next:?}");
    assert_eq!(w.xen.current, Some((DomId(0), 0)));
    assert!(w.xen.domains[&DomId(0)].is_running());
    // And with no handler at all.
    let (next, _) = w.raise(13, 0, w.stack());
    assert!(matches!(next, Next::Halt(crate::xen::Halt::Crash)), "{next:?}");
}

#[test]
fn int_n_reaches_only_gates_of_enough_privilege() {
    let mut w = World::new();
    assert_eq!(w.trap_table(&[(0x80, 3, 0x100800), (0x81, 0, 0x100810), (13, 0, 0x100d00)]), 0);
    let sp = w.stack() - 0x200;
    let (_, regs) = w.raise(13, 0x80 * 8 + 2, sp);
    assert_eq!(regs.rip, 0x100800, "DPL 3 gate taken");
    assert_eq!(w.read_u64(regs.rsp + 16), 0x100012, "returns after the 2-byte int");
    let (_, regs) = w.raise(13, 0x81 * 8 + 2, sp);
    assert_eq!(regs.rip, 0x100d00, "DPL 0 gate: a #GP instead");
}

#[test]
fn stack_switch_refuses_hypervisor_and_bad_stacks() {
    let mut w = World::new();
    assert_eq!(w.hypercall(nr::STACK_SWITCH, [0xe02b, HV, 0, 0, 0]), EINVAL);
    assert_eq!(w.hypercall(nr::STACK_SWITCH, [0xe02b, NONCANON + 0x10000, 0, 0, 0]), EINVAL);
    assert_eq!(w.hypercall(nr::STACK_SWITCH, [0xe010, 0x200000, 0, 0, 0]), EINVAL, "the hypervisor's own data selector");
    assert_eq!(w.hypercall(nr::STACK_SWITCH, [0xe02b, 0x200000, 0, 0, 0]), 0);
}

#[test]
fn callbacks_must_be_guest_addresses() {
    let mut w = World::new();
    assert_eq!(w.hypercall(nr::SET_CALLBACKS, [0x100000, HV, 0x100000, 0, 0]), EINVAL);
    assert_eq!(w.hypercall(nr::SET_CALLBACKS, [NONCANON, 0x100000, 0x100000, 0, 0]), EINVAL);
    assert_eq!(w.hypercall(nr::SET_CALLBACKS, [0x100000, 0x100010, 0x100020, 0, 0]), 0);
    let s = w.scratch;
    let mut reg = [0u8; 16];
    reg[0..2].copy_from_slice(&9u16.to_le_bytes());
    reg[8..16].copy_from_slice(&0x100000u64.to_le_bytes());
    w.write(s, &reg);
    assert_eq!(w.hypercall(nr::CALLBACK_OP, [0, s, 0, 0, 0]), Errno::ENOSYS.to_ret(), "unknown type, as Xen");
    w.write(s, &[0, 0]);
    assert_eq!(w.hypercall(nr::CALLBACK_OP, [1, s, 0, 0, 0]), EINVAL, "the event callback cannot be unregistered");
    assert_eq!(w.hypercall(nr::CALLBACK_OP, [7, s, 0, 0, 0]), Errno::ENOSYS.to_ret());
}

#[test]
fn segment_bases_must_be_canonical() {
    let mut w = World::new();
    assert_eq!(w.hypercall(nr::SET_SEGMENT_BASE, [0, NONCANON, 0, 0, 0]), EINVAL);
    assert_eq!(w.hypercall(nr::SET_SEGMENT_BASE, [9, 0, 0, 0, 0]), EINVAL);
    assert_eq!(w.hypercall(nr::SET_SEGMENT_BASE, [3, 0xe008, 0, 0, 0]), EINVAL, "hypervisor selector into %gs");
    assert_eq!(w.hypercall(nr::SET_SEGMENT_BASE, [0, 0x7000_1000, 0, 0, 0]), 0);
    assert_eq!(w.xen.platform.segs.get().0, 0x7000_1000);
}

#[test]
fn descriptors_granting_ring_0_never_reach_the_gdt() {
    let mut w = World::new();
    let page = w.pfn(w.spare_pfn(0));
    let p = &w.xen.platform;
    p.write_u64(page, 1, 0x00af9a000000ffff); // 64-bit code, DPL 0
    p.write_u64(page, 2, 0x00cff2000000ffff); // data, DPL 3
    let s = w.scratch;
    w.write(s, &page.0.to_le_bytes());
    assert_eq!(w.hypercall(nr::SET_GDT, [s, 8192, 0, 0, 0]), EINVAL, "more than 14 pages");
    assert_eq!(w.hypercall(nr::SET_GDT, [HV, 16, 0, 0, 0]), Errno::EFAULT.to_ret());
    assert_eq!(w.hypercall(nr::SET_GDT, [s, 16, 0, 0, 0]), 0);
    assert_eq!(w.xen.platform.gdt.borrow()[1] >> 45 & 3, 3, "DPL raised to 3");
    assert_eq!(w.xen.frames.get(page).unwrap().ty, PageType::SegDesc);
    ok(&w);
    // A call gate, a misaligned address, a page table: all refused.
    let gate = 0x0000_ec00_e008_0000u64;
    assert_eq!(w.hypercall(nr::UPDATE_DESCRIPTOR, [page.maddr() + 24, gate, 0, 0, 0]), EINVAL);
    assert_eq!(w.hypercall(nr::UPDATE_DESCRIPTOR, [page.maddr() + 3, 0, 0, 0, 0]), EINVAL);
    let pt = w.pfn(w.layout.pfn_of(w.layout.vpt_start));
    assert_eq!(w.hypercall(nr::UPDATE_DESCRIPTOR, [pt.maddr(), 0x00cff2000000ffff, 0, 0, 0]), EINVAL);
    assert_eq!(w.hypercall(nr::UPDATE_DESCRIPTOR, [page.maddr() + 24, 0x00cffa000000ffff, 0, 0, 0]), 0);
    assert_eq!(w.xen.platform.gdt.borrow()[3], 0x00cffa000000ffff, "the live GDT follows");
    // The GDT frame can no longer be mapped writable.
    let (_, l1e) = w.l1e_maddr(w.scratch + 0x3000);
    assert_eq!(w.mmu_update(l1e, page.maddr() | RW, 0x7ff0), Errno::EBUSY.to_ret(), "a descriptor page is never writable");
    ok(&w);
}

#[test]
fn debug_registers_stay_in_the_guests_range() {
    let mut w = World::new();
    assert_eq!(w.hypercall(nr::SET_DEBUGREG, [0, HV, 0, 0, 0]), EPERM);
    assert_eq!(w.hypercall(nr::SET_DEBUGREG, [1, NONCANON, 0, 0, 0]), EPERM);
    assert_eq!(w.hypercall(nr::SET_DEBUGREG, [7, 1 << 13, 0, 0, 0]), EPERM, "general detect");
    assert_eq!(w.hypercall(nr::SET_DEBUGREG, [7, 1 << 40, 0, 0, 0]), EINVAL);
    assert_eq!(w.hypercall(nr::SET_DEBUGREG, [4, 0, 0, 0, 0]), 0, "DR4 is DR6 (CR4.DE clear), as on Xen 4.17");
    assert_eq!(w.hypercall(nr::GET_DEBUGREG, [8, 0, 0, 0, 0]), Errno::ENODEV.to_ret());
    assert_eq!(w.hypercall(nr::SET_DEBUGREG, [2, 0x100000, 0, 0, 0]), 0);
    assert_eq!(w.hypercall(nr::GET_DEBUGREG, [2, 0, 0, 0, 0]), 0x100000);
    assert_eq!(w.xen.platform.debugregs.get()[2], 0x100000);
}

#[test]
fn only_known_vm_assists_are_accepted() {
    let mut w = World::new();
    assert_eq!(w.hypercall(nr::VM_ASSIST, [0, 63, 0, 0, 0]), EINVAL);
    assert_eq!(w.hypercall(nr::VM_ASSIST, [0, 2, 0, 0, 0]), 0, "writable page tables, as Linux asks");
    assert_eq!(w.hypercall(nr::VM_ASSIST, [0, 32, 0, 0, 0]), EINVAL, "m2p_strict is not offered");
    assert_eq!(w.hypercall(nr::VM_ASSIST, [0, 5, 0, 0, 0]), 0);
    assert_eq!(w.hypercall(nr::VM_ASSIST, [7, 5, 0, 0, 0]), Errno::ENOSYS.to_ret());
}

fn iret_frame(w: &World, at: u64, rip: u64, cs: u64, ss: u64) -> GuestRegs {
    // rax, r11, rcx, flags, rip, cs, rflags, rsp, ss
    let ctx = [7u64, 0, 0, 0, rip, cs, 0x202, 0x300000, ss];
    let mut b = alloc::vec::Vec::new();
    for x in ctx {
        b.extend_from_slice(&x.to_le_bytes());
    }
    w.write(at, &b);
    GuestRegs { rax: nr::IRET, rsp: at, rip: 0x101000 + 32 * 23 + 11, cs: 0xe033, ss: 0xe02b, ..GuestRegs::default() }
}

#[test]
fn iret_to_an_unloadable_frame_crashes_the_guest_not_the_hypervisor() {
    for (rip, cs, ss) in [(NONCANON, 0xe030, 0xe02b), (0x100000, 0xe008, 0xe02b), (0x100000, 0xe030, 0xe010), (0x100000, 0xe030, 0)] {
        let mut w = World::new();
        let mut regs = iret_frame(&w, w.scratch, rip, cs, ss);
        let next = w.xen.hypercall(&mut regs);
        assert!(matches!(next, Next::Halt(crate::xen::Halt::Crash)), "{rip:#x} {cs:#x} {ss:#x}: {next:?}");
    }
    let mut w = World::new();
    let mut regs = iret_frame(&w, w.scratch, 0x100040, 0xe030, 0xe02b);
    assert!(matches!(w.xen.hypercall(&mut regs), Next::Resume { .. }));
    assert_eq!((regs.rip, regs.cs, regs.rax, regs.rsp), (0x100040, 0xe033, 7, 0x300000));
}

#[test]
fn user_mode_has_its_own_tables_and_syscalls_go_to_the_kernel() {
    let mut w = World::new();
    let mut regs = iret_frame(&w, w.scratch, 0x100040, 0xe033, 0xe02b);
    assert!(matches!(w.xen.hypercall(&mut regs), Next::Halt(_)), "no user page tables: crash");
    let mut w = World::new();
    let user_l4 = w.pfn(w.spare_pfn(0));
    assert_eq!(w.mmuext(hypercall_abi::mm::MMUEXT_NEW_USER_BASEPTR, user_l4.0, 0), 0);
    assert_eq!(w.hypercall(nr::SET_CALLBACKS, [0x100000, 0x100010, 0x100020, 0, 0]), 0);
    assert_eq!(w.hypercall(nr::STACK_SWITCH, [0xe02b, w.stack() - 0x400, 0, 0, 0]), 0);
    let mut regs = iret_frame(&w, w.scratch, 0x100040, 0xe033, 0xe02b);
    let next = w.xen.hypercall(&mut regs);
    assert!(matches!(next, Next::Resume { cr3, .. } if cr3 == user_l4), "user mode runs on the user L4");
    assert!(!w.xen.domains[&DomId(0)].vcpus[0].kernel_mode);
    // A syscall from user mode: bounced to the kernel's callback, on the
    // kernel stack, with the user's rcx/r11.
    regs.rcx = 0x100042;
    regs.r11 = 0x246;
    regs.rax = nr::XEN_VERSION;
    let next = w.xen.hypercall(&mut regs);
    let kernel_l4 = w.xen.domains[&DomId(0)].vcpus[0].cr3;
    assert!(matches!(next, Next::Resume { cr3, .. } if cr3 == kernel_l4));
    assert_eq!(regs.rip, 0x100020);
    assert_eq!(regs.rax, nr::XEN_VERSION, "not run as a hypercall");
    assert_eq!(w.read_u64(regs.rsp), 0x100042, "rcx");
    assert_eq!(w.read_u64(regs.rsp + 24) & 3, 3, "CS says: from user mode");
    ok(&w);
}

pub(super) fn context(w: &World, rip: u64) -> alloc::vec::Vec<u8> {
    use core::mem::offset_of;
    use hypercall_abi::arch::{CpuUserRegs, VcpuGuestContext, VGCF_in_kernel};
    let mut c = alloc::vec![0u8; core::mem::size_of::<VcpuGuestContext>()];
    let ur = offset_of!(VcpuGuestContext, user_regs);
    let put = |c: &mut [u8], off: usize, v: &[u8]| c[off..off + v.len()].copy_from_slice(v);
    put(&mut c, offset_of!(VcpuGuestContext, flags), &VGCF_in_kernel.to_le_bytes());
    put(&mut c, ur + offset_of!(CpuUserRegs, rip), &rip.to_le_bytes());
    put(&mut c, ur + offset_of!(CpuUserRegs, cs), &0xe033u16.to_le_bytes());
    put(&mut c, ur + offset_of!(CpuUserRegs, ss), &0xe02bu16.to_le_bytes());
    put(&mut c, ur + offset_of!(CpuUserRegs, rsp), &(w.layout.vstack_end - 0x800).to_le_bytes());
    let cr3 = w.xen.domains[&DomId(0)].vcpus[0].cr3.maddr();
    put(&mut c, offset_of!(VcpuGuestContext, ctrlreg) + 24, &cr3.to_le_bytes());
    c
}

#[test]
fn a_second_vcpu_is_initialised_brought_up_and_down() {
    let mut w = World::new();
    let s = w.scratch - 0x3000;
    let c = context(&w, 0x100080);
    w.write(s, &c);
    assert_eq!(w.hypercall(nr::VCPU_OP, [3, 1, 0, 0, 0]), 0, "down");
    assert_eq!(w.hypercall(nr::VCPU_OP, [1, 1, 0, 0, 0]), EINVAL, "up before initialise");
    assert_eq!(w.hypercall(nr::VCPU_OP, [0, 999, s, 0, 0]), Errno::ENOENT.to_ret());
    assert_eq!(w.hypercall(nr::VCPU_OP, [0, 1, s, 0, 0]), 0);
    assert_eq!(w.hypercall(nr::VCPU_OP, [0, 1, s, 0, 0]), Errno::EEXIST.to_ret());
    assert_eq!(w.hypercall(nr::VCPU_OP, [0, 0, s, 0, 0]), Errno::EEXIST.to_ret(), "vCPU 0 is running");
    assert_eq!(w.hypercall(nr::VCPU_OP, [1, 1, 0, 0, 0]), 0);
    assert_eq!(w.hypercall(nr::VCPU_OP, [3, 1, 0, 0, 0]), 1, "is up");
    ok(&w);
    // Yield: vCPU 1 runs next, at its entry point.
    let mut regs = GuestRegs { rax: nr::SCHED_OP, rdi: 0, cs: 0xe033, ss: 0xe02b, rip: 0x101000 + 32 * 29 + 9, ..GuestRegs::default() };
    w.xen.hypercall(&mut regs);
    assert_eq!(w.xen.current, Some((DomId(0), 1)));
    assert_eq!(regs.rip, 0x100080);
    // It takes itself down; vCPU 0 resumes where it yielded.
    regs.rax = nr::VCPU_OP;
    (regs.rdi, regs.rsi) = (2, 1);
    w.xen.hypercall(&mut regs);
    assert_eq!(w.xen.current, Some((DomId(0), 0)));
    assert_eq!(w.xen.domains[&DomId(0)].vcpus[1].state, RunState::Down);
    assert_eq!(regs.rip, 0x101000 + 32 * 29 + 9);
}

#[test]
fn a_bad_vcpu_context_is_refused_whole() {
    use core::mem::offset_of;
    use hypercall_abi::arch::{CpuUserRegs, VcpuGuestContext};
    let mut w = World::new();
    let s = w.scratch - 0x3000;
    let free = w.xen.frames.iter().filter(|(_, p)| p.type_count > 0).count();
    let ur = offset_of!(VcpuGuestContext, user_regs);
    for (off, bad) in [
        (ur + offset_of!(CpuUserRegs, rip), NONCANON),
        (ur + offset_of!(CpuUserRegs, rsp), NONCANON),
        (offset_of!(VcpuGuestContext, event_callback_eip), HV),
        (offset_of!(VcpuGuestContext, ctrlreg) + 24, Mfn(1).maddr()),
        (offset_of!(VcpuGuestContext, gdt_ents), 9000),
    ] {
        let mut c = context(&w, 0x100080);
        c[off..off + 8].copy_from_slice(&bad.to_le_bytes());
        w.write(s, &c);
        assert_eq!(w.hypercall(nr::VCPU_OP, [0, 1, s, 0, 0]), EINVAL, "offset {off}");
        assert!(!w.xen.domains[&DomId(0)].vcpus[1].initialised);
    }
    assert_eq!(w.xen.frames.iter().filter(|(_, p)| p.type_count > 0).count(), free, "no reference left behind");
    ok(&w);
}

/// Xen checks no selector when a vCPU is initialised (it only forces the
/// RPL); the hypervisor's own ring-0 code selector is accepted, and the
/// vCPU's first return to the guest gives it #GP instead of ring 0.
#[test]
fn a_hypervisor_code_selector_in_a_vcpu_context_never_reaches_ring_0() {
    use core::mem::offset_of;
    use hypercall_abi::arch::{CpuUserRegs, VcpuGuestContext};
    let mut w = World::new();
    let s = w.scratch - 0x3000;
    let mut c = context(&w, 0x100080);
    let off = offset_of!(VcpuGuestContext, user_regs) + offset_of!(CpuUserRegs, cs);
    c[off..off + 8].copy_from_slice(&0xe008u64.to_le_bytes());
    w.write(s, &c);
    assert_eq!(w.hypercall(nr::VCPU_OP, [0, 1, s, 0, 0]), 0, "accepted, as Xen");
    assert_eq!(w.hypercall(nr::VCPU_OP, [1, 1, 0, 0, 0]), 0);
    let mut regs = GuestRegs { rax: nr::SCHED_OP, cs: 0xe033, ss: 0xe02b, ..GuestRegs::default() };
    let next = w.xen.hypercall(&mut regs);
    // The #GP(0xe008) has no handler in vCPU 1's empty trap table: the
    // domain crashes (Dom0 here, so the machine halts), as on Xen where the
    // faulting `iretq` finds no failsafe callback.
    assert!(matches!(next, Next::Halt(_)), "{next:?} {regs:x?}");
    assert_eq!(w.xen.domains[&DomId(0)].shutdown, Some(ShutdownReason::Crash));
    assert_eq!((regs.entry_vector, regs.error_code), (13, 0xe008), "{regs:x?}");
    ok(&w);
}

#[test]
fn fpu_state_follows_its_vcpu() {
    let mut w = World::new();
    w.xen.platform.fpu.borrow_mut()[160] = 0xaa; // vCPU 0's xmm0
    let s = w.scratch - 0x3000;
    let c = context(&w, 0x100080);
    w.write(s, &c);
    assert_eq!(w.hypercall(nr::VCPU_OP, [0, 1, s, 0, 0]), 0);
    assert_eq!(w.hypercall(nr::VCPU_OP, [1, 1, 0, 0, 0]), 0);
    let mut regs = GuestRegs { rax: nr::SCHED_OP, cs: 0xe033, ss: 0xe02b, ..GuestRegs::default() };
    w.xen.hypercall(&mut regs);
    assert_eq!(w.xen.current, Some((DomId(0), 1)));
    assert_eq!(w.xen.platform.fpu.borrow()[160], 0, "vCPU 1 has its own (fresh) state");
    assert_eq!(w.xen.platform.fpu.borrow()[24], 0x80, "default MXCSR");
    regs.rax = nr::SCHED_OP;
    regs.rdi = 0;
    w.xen.hypercall(&mut regs);
    assert_eq!(w.xen.current, Some((DomId(0), 0)));
    assert_eq!(w.xen.platform.fpu.borrow()[160], 0xaa);
    // fpu_taskswitch sets the virtual TS; #NM delivery clears it.
    assert_eq!(w.hypercall(nr::FPU_TASKSWITCH, [1, 0, 0, 0, 0]), 0);
    assert!(w.xen.platform.ts.get());
    assert_eq!(w.trap_table(&[(7, 0, 0x100700)]), 0);
    let (_, regs) = w.raise(7, 0, w.stack() - 0x100);
    assert_eq!(regs.rip, 0x100700);
    assert!(!w.xen.platform.ts.get());
}


/// Not a behaviour test: the exception round trip (bounce frame, then the
/// handler's iret) in a loop, for profiling under callgrind:
/// `cargo test --release -p xen-core profile_ -- --ignored`.
#[test]
#[ignore]
fn profile_exception_round_trip() {
    let mut w = World::new();
    assert_eq!(w.trap_table(&[(6, 0, 0x100100)]), 0);
    let sp = w.stack() - 0x100;
    for _ in 0..20_000 {
        let (next, regs) = w.raise(6, 0, sp);
        assert!(matches!(next, Next::Resume { .. }));
        // The handler pops rcx and r11, pushes the iret flags word, and the
        // hypercall page pushes rcx, r11 and rax above it.
        let ctx_at = regs.rsp - 16;
        let mut words = [0u8; 32];
        words[0..8].copy_from_slice(&nr::IRET.to_le_bytes());
        w.write(ctx_at, &words);
        let mut regs2 = GuestRegs { rax: nr::IRET, rsp: ctx_at, cs: 0xe033, ss: 0xe02b, ..GuestRegs::default() };
        let next = w.xen.hypercall(&mut regs2);
        assert!(matches!(next, Next::Resume { .. }), "{next:?}");
        assert_eq!(regs2.rip, 0x100010);
    }
}
