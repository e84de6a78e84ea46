//! Privileged-instruction emulation on #GP (Xen's `emul-priv-op.c`): what a
//! guest kernel's `in`/`out` reaches, through the exception entry as the CPU
//! delivers it, with hostile instruction bytes and hypercall values.

use alloc::vec::Vec;

use super::World;
use crate::domain::DomId;
use crate::regs::GuestRegs;
use crate::testing::HostPlatform;
use crate::traps::TRAP_GP_FAULT;
use crate::xen::Next;
use hypercall_abi::errno::Errno;
use hypercall_abi::nr;
use hypercall_abi::physdev::*;

/// The guest's #GP handler: reaching it means "not emulated".
const GP_HANDLER: u64 = 0x100200;

fn world(dom: DomId, privileged: bool, iopl: u32) -> World {
    let mut w = World::with_domain(dom, privileged);
    let mut b = Vec::new();
    b.extend_from_slice(&[13u8, 0]);
    b.extend_from_slice(&0xe033u16.to_le_bytes());
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&GP_HANDLER.to_le_bytes());
    b.extend_from_slice(&[0; 16]);
    let s = w.scratch + 0x2000;
    w.write(s, &b);
    assert_eq!(w.hypercall(nr::SET_TRAP_TABLE, [s, 0, 0, 0, 0]), 0);
    if iopl != 0 {
        assert_eq!(set_iopl(&mut w, iopl), 0);
    }
    w.xen.platform.io_log.borrow_mut().clear();
    w
}

fn set_iopl(w: &mut World, iopl: u32) -> i64 {
    let s = w.scratch + 0x100;
    w.write(s, &iopl.to_le_bytes());
    w.hypercall(nr::PHYSDEV_OP, [PHYSDEVOP_set_iopl as u64, s, 0, 0, 0])
}

fn set_iobitmap(w: &mut World, bitmap: u64, nr_ports: u32) -> i64 {
    let s = w.scratch + 0x100;
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&bitmap.to_le_bytes());
    b[8..12].copy_from_slice(&nr_ports.to_le_bytes());
    w.write(s, &b);
    w.hypercall(nr::PHYSDEV_OP, [PHYSDEVOP_set_iobitmap as u64, s, 0, 0, 0])
}

/// Run `code` as the guest kernel: it faults with #GP(0) at its first byte,
/// as a ring-3 `in`/`out` does.
fn exec(w: &mut World, code: &[u8], init: GuestRegs) -> (Next, GuestRegs) {
    w.kernel_fault(w.scratch + 0x3000, code, TRAP_GP_FAULT, 0, 0, init)
}

fn emulated(w: &World, regs: &GuestRegs, len: u64) -> bool {
    let _ = w;
    regs.rip != GP_HANDLER && regs.rip == w.scratch + 0x3000 + len
}

fn log(w: &World) -> Vec<(char, u16, u8, u32)> {
    w.xen.platform.io_log.borrow().clone()
}

const IN_AL_DX: &[u8] = &[0xec];
const IN_EAX_DX: &[u8] = &[0xed];
const IN_AX_DX: &[u8] = &[0x66, 0xed];
const OUT_DX_AL: &[u8] = &[0xee];
const OUT_DX_EAX: &[u8] = &[0xef];

#[test]
fn without_virtual_iopl_port_io_is_the_guests_gp() {
    let mut w = world(DomId(0), true, 0);
    let (next, regs) = exec(
        &mut w,
        IN_AL_DX,
        GuestRegs {
            rdx: 0x2f8,
            ..Default::default()
        },
    );
    assert!(matches!(next, Next::Resume { .. }));
    assert_eq!(regs.rip, GP_HANDLER, "delivered to the guest's #GP handler");
    assert!(log(&w).is_empty(), "no port touched");
}

#[test]
fn dom0_reaches_device_ports_with_every_instruction_form() {
    let mut w = world(DomId(0), true, 1);
    let (_, regs) = exec(
        &mut w,
        IN_AL_DX,
        GuestRegs {
            rdx: 0x2f8,
            rax: 0xffff_ffff_ffff_ff00,
            ..Default::default()
        },
    );
    assert!(emulated(&w, &regs, 1));
    assert_eq!(
        regs.rax,
        0xffff_ffff_ffff_ff00 | HostPlatform::port_value(0x2f8, 1) as u64,
        "only AL changes"
    );
    let (_, regs) = exec(
        &mut w,
        IN_AX_DX,
        GuestRegs {
            rdx: 0x1f0,
            rax: 0xaaaa_aaaa_aaaa_aaaa,
            ..Default::default()
        },
    );
    assert!(emulated(&w, &regs, 2));
    assert_eq!(
        regs.rax,
        0xaaaa_aaaa_aaaa_0000 | HostPlatform::port_value(0x1f0, 2) as u64
    );
    let (_, regs) = exec(
        &mut w,
        IN_EAX_DX,
        GuestRegs {
            rdx: 0xc000,
            rax: u64::MAX,
            ..Default::default()
        },
    );
    assert!(emulated(&w, &regs, 1));
    assert_eq!(
        regs.rax,
        HostPlatform::port_value(0xc000, 4) as u64,
        "a dword read zero-extends"
    );
    // in al, 0x80 / out 0x80, al (immediate port).
    let (_, regs) = exec(&mut w, &[0xe4, 0x80], GuestRegs::default());
    assert!(emulated(&w, &regs, 2));
    let (_, regs) = exec(
        &mut w,
        &[0xe6, 0x80],
        GuestRegs {
            rax: 0x1234_5678,
            ..Default::default()
        },
    );
    assert!(emulated(&w, &regs, 2));
    let (_, regs) = exec(
        &mut w,
        OUT_DX_EAX,
        GuestRegs {
            rdx: 0xc004,
            rax: 0xdead_beef_0bad_f00d,
            ..Default::default()
        },
    );
    assert!(emulated(&w, &regs, 1));
    assert_eq!(
        log(&w),
        [
            ('r', 0x2f8, 1, 0xf8),
            ('r', 0x1f0, 2, 0x01f0),
            ('r', 0xc000, 4, 0x1234_c000),
            ('r', 0x80, 1, 0x80),
            ('w', 0x80, 1, 0x78),
            ('w', 0xc004, 4, 0x0bad_f00d)
        ]
    );
}

#[test]
fn the_hypervisors_own_ports_read_all_ones_and_ignore_writes() {
    let mut w = world(DomId(0), true, 1);
    for port in [0x3f8u16, 0x3fd, 0x20, 0x21, 0xa0, 0x40, 0x43, 0x61, 0xf4] {
        let (_, regs) = exec(
            &mut w,
            IN_AL_DX,
            GuestRegs {
                rdx: port as u64,
                ..Default::default()
            },
        );
        assert!(emulated(&w, &regs, 1), "port {port:#x}");
        assert_eq!(regs.rax & 0xff, 0xff, "port {port:#x}");
        let (_, regs) = exec(
            &mut w,
            OUT_DX_AL,
            GuestRegs {
                rdx: port as u64,
                rax: 0,
                ..Default::default()
            },
        );
        assert!(emulated(&w, &regs, 1));
    }
    // A dword straddling into COM1 is refused whole.
    let (_, regs) = exec(
        &mut w,
        IN_EAX_DX,
        GuestRegs {
            rdx: 0x3f6,
            ..Default::default()
        },
    );
    assert_eq!(regs.rax, 0xffff_ffff);
    assert!(
        log(&w).is_empty(),
        "not one access reached the machine: {:?}",
        log(&w)
    );
}

#[test]
fn a_domu_with_iopl_reads_all_ones_and_reaches_no_port() {
    let mut w = world(DomId(3), false, 1);
    for port in [0x2f8u64, 0x80, 0xcfc, 0x71, 0xc000] {
        let (_, regs) = exec(
            &mut w,
            IN_EAX_DX,
            GuestRegs {
                rdx: port,
                ..Default::default()
            },
        );
        assert!(emulated(&w, &regs, 1));
        assert_eq!(regs.rax, 0xffff_ffff, "port {port:#x}");
        let (_, regs) = exec(
            &mut w,
            OUT_DX_AL,
            GuestRegs {
                rdx: port,
                rax: 7,
                ..Default::default()
            },
        );
        assert!(emulated(&w, &regs, 1));
    }
    assert!(log(&w).is_empty(), "{:?}", log(&w));
}

#[test]
fn pci_config_space_goes_through_the_cf8_latch() {
    let mut w = world(DomId(0), true, 1);
    let (_, regs) = exec(
        &mut w,
        OUT_DX_EAX,
        GuestRegs {
            rdx: 0xcf8,
            rax: 0x8000_0808,
            ..Default::default()
        },
    );
    assert!(emulated(&w, &regs, 1));
    assert!(log(&w).is_empty(), "the address is latched, not written");
    let (_, regs) = exec(
        &mut w,
        IN_EAX_DX,
        GuestRegs {
            rdx: 0xcf8,
            ..Default::default()
        },
    );
    assert_eq!(regs.rax, 0x8000_0808, "the latch reads back");
    let (_, regs) = exec(
        &mut w,
        IN_AX_DX,
        GuestRegs {
            rdx: 0xcfe,
            ..Default::default()
        },
    );
    assert_eq!(regs.rax & 0xffff, HostPlatform::port_value(0xcfe, 2) as u64);
    assert_eq!(
        log(&w),
        [
            ('w', 0xcf8, 4, 0x8000_0808),
            ('r', 0xcfe, 2, HostPlatform::port_value(0xcfe, 2))
        ]
    );
    // A byte at 0xcf8 is not the latch: an ordinary port.
    let (_, regs) = exec(
        &mut w,
        IN_AL_DX,
        GuestRegs {
            rdx: 0xcf9,
            ..Default::default()
        },
    );
    assert!(emulated(&w, &regs, 1));
}

#[test]
fn an_io_bitmap_allows_exactly_its_clear_bits_in_kernel_mode() {
    let mut w = world(DomId(0), true, 0);
    let bm = w.scratch + 0x4000;
    let mut bits = alloc::vec![0xffu8; 8192];
    bits[0x60 / 8] = !(1 << (0x60 % 8)); // only port 0x60
    w.write(bm, &bits[..0x100]);
    assert_eq!(set_iobitmap(&mut w, bm, 0x400), 0);
    let (_, regs) = exec(
        &mut w,
        IN_AL_DX,
        GuestRegs {
            rdx: 0x60,
            ..Default::default()
        },
    );
    assert!(emulated(&w, &regs, 1));
    let (_, regs) = exec(
        &mut w,
        IN_AX_DX,
        GuestRegs {
            rdx: 0x60,
            ..Default::default()
        },
    );
    assert_eq!(regs.rip, GP_HANDLER, "0x61 is not in the bitmap");
    let (_, regs) = exec(
        &mut w,
        IN_AL_DX,
        GuestRegs {
            rdx: 0x64,
            ..Default::default()
        },
    );
    assert_eq!(regs.rip, GP_HANDLER);
    // Past the limit: refused whatever the bits say.
    assert_eq!(set_iobitmap(&mut w, bm, 0x60), 0);
    let (_, regs) = exec(
        &mut w,
        IN_AL_DX,
        GuestRegs {
            rdx: 0x60,
            ..Default::default()
        },
    );
    assert_eq!(regs.rip, GP_HANDLER);
}

#[test]
fn string_io_moves_guest_memory_and_counts_down() {
    let mut w = world(DomId(0), true, 1);
    let buf = w.scratch + 0x5000;
    w.write(buf, b"hello");
    // rep outsb: 5 bytes from rsi to port 0x2f8.
    let (_, regs) = exec(
        &mut w,
        &[0xf3, 0x6e],
        GuestRegs {
            rdx: 0x2f8,
            rsi: buf,
            rcx: 5,
            ..Default::default()
        },
    );
    assert!(emulated(&w, &regs, 2));
    assert_eq!((regs.rcx, regs.rsi), (0, buf + 5));
    let written: Vec<u8> = log(&w)
        .iter()
        .map(|&(k, p, _, v)| {
            assert_eq!((k, p), ('w', 0x2f8));
            v as u8
        })
        .collect();
    assert_eq!(written, b"hello");
    // repne outsb repeats too, as on the CPU.
    w.xen.platform.io_log.borrow_mut().clear();
    let (_, regs) = exec(
        &mut w,
        &[0xf2, 0x6e],
        GuestRegs {
            rdx: 0x2f8,
            rsi: buf,
            rcx: 3,
            ..Default::default()
        },
    );
    assert!(emulated(&w, &regs, 2));
    assert_eq!((regs.rcx, log(&w).len()), (0, 3));
    // rep insw: 3 words into memory.
    let (_, regs) = exec(
        &mut w,
        &[0x66, 0xf3, 0x6d],
        GuestRegs {
            rdx: 0x1f0,
            rdi: buf,
            rcx: 3,
            ..Default::default()
        },
    );
    assert!(emulated(&w, &regs, 3));
    assert_eq!((regs.rcx, regs.rdi), (0, buf + 6));
    assert_eq!(w.read_u64(buf) & 0xffff_ffff_ffff, 0x01f0_01f0_01f0);
    // Into memory the guest cannot write: #PF at that address, as the CPU
    // (and Xen's emulator) would raise it, with nothing done.
    const PF_HANDLER: u64 = GP_HANDLER + 0x40;
    let mut table = Vec::new();
    for (vector, handler) in [(13u8, GP_HANDLER), (14, PF_HANDLER)] {
        table.extend_from_slice(&[vector, 0]);
        table.extend_from_slice(&0xe033u16.to_le_bytes());
        table.extend_from_slice(&[0; 4]);
        table.extend_from_slice(&handler.to_le_bytes());
    }
    table.extend_from_slice(&[0; 16]);
    let t = w.scratch + 0x2000;
    w.write(t, &table);
    assert_eq!(w.hypercall(nr::SET_TRAP_TABLE, [t, 0, 0, 0, 0]), 0);
    let (_, regs) = exec(
        &mut w,
        &[0xf3, 0x6c],
        GuestRegs {
            rdx: 0x1f0,
            rdi: 0xffff_8300_0000_0000,
            rcx: 2,
            ..Default::default()
        },
    );
    assert_eq!(regs.rip, PF_HANDLER, "#PF, not #GP");
    assert_eq!(w.xen.vcpu_info_of(DomId(0), 0).map(|vi| vi.cr2()), Some(0xffff_8300_0000_0000));
    let frame = regs.rsp;
    assert_eq!(w.read_u64(frame + 16) & 0x7, 0x2, "error code: a kernel write to a page not present");
    // rep outsb reading past the end of a mapped page: the bytes before it
    // went out and rcx says how many are left.
    let edge = w.scratch + 0x10000 - 2;
    let (_, regs) = exec(
        &mut w,
        &[0xf3, 0x6e],
        GuestRegs {
            rdx: 0x2f8,
            rsi: edge,
            rcx: 5,
            ..Default::default()
        },
    );
    assert_eq!(regs.rip, PF_HANDLER);
    assert_eq!(w.xen.vcpu_info_of(DomId(0), 0).map(|vi| vi.cr2()), Some(edge + 2));
}

#[test]
fn a_long_rep_is_resumed_not_done_in_one_go() {
    let mut w = world(DomId(3), false, 1);
    let buf = w.scratch + 0x5000;
    let (_, regs) = exec(
        &mut w,
        &[0xf3, 0x6e],
        GuestRegs {
            rdx: 0x80,
            rsi: buf,
            rcx: 3000,
            ..Default::default()
        },
    );
    assert_eq!(regs.rip, w.scratch + 0x3000, "re-executed");
    assert!(regs.rcx < 3000 && regs.rcx > 0);
}

#[test]
fn set_iopl_and_set_iobitmap_refuse_hostile_values() {
    let mut w = world(DomId(0), true, 0);
    for bad in [4u32, 0xffff_ffff, 0x8000_0001] {
        assert_eq!(set_iopl(&mut w, bad), Errno::EINVAL.to_ret());
    }
    assert_eq!(w.xen.domains[&DomId(0)].vcpus[0].io.iopl, 0);
    assert_eq!(
        w.hypercall(
            nr::PHYSDEV_OP,
            [PHYSDEVOP_set_iopl as u64, 0xffff_8300_0000_0000, 0, 0, 0]
        ),
        Errno::EFAULT.to_ret()
    );
    assert_eq!(
        set_iobitmap(&mut w, 0xffff_8300_0000_0000, 16),
        Errno::EINVAL.to_ret()
    );
    assert_eq!(
        set_iobitmap(&mut w, 0x0000_7fff_ffff_f000, 16),
        Errno::EINVAL.to_ret(),
        "8 KiB must fit below the hole"
    );
    let s = w.scratch;
    assert_eq!(set_iobitmap(&mut w, s, 65537), Errno::EINVAL.to_ret());
    assert_eq!(set_iobitmap(&mut w, s, 65536), 0);
    assert_eq!(
        w.hypercall(nr::PHYSDEV_OP, [0xdead, w.scratch, 0, 0, 0]),
        Errno::ENOSYS.to_ret()
    );
}

#[test]
fn garbage_and_truncated_instructions_are_the_guests_gp() {
    let mut w = world(DomId(0), true, 3);
    // Not privileged instructions, invalid encodings, and a prefix run.
    for code in [
        &[0x90u8][..],
        &[0x0f, 0xff],
        &[0x66; 15],
        &[0xf0, 0xec],
        &[0x0f, 0x0b],
    ] {
        let (next, regs) = exec(&mut w, code, GuestRegs::default());
        assert!(matches!(next, Next::Resume { .. }));
        assert_eq!(regs.rip, GP_HANDLER, "{code:02x?}");
    }
    // An instruction cut by an unmapped page: its first byte is the last
    // mapped one.
    let edge = w.layout.v_end - 1;
    w.write(edge, &[0x66]);
    let mut regs = GuestRegs {
        entry_vector: TRAP_GP_FAULT,
        rip: edge,
        cs: 0xe033,
        ss: 0xe02b,
        rsp: w.layout.vstack_end - 0x100,
        ..Default::default()
    };
    w.xen.guest_exception(&mut regs, 0);
    assert_eq!(regs.rip, GP_HANDLER);
    // From a rip in the hypervisor's range.
    let mut regs = GuestRegs {
        entry_vector: TRAP_GP_FAULT,
        rip: 0xffff_8300_0000_0000,
        cs: 0xe033,
        ss: 0xe02b,
        rsp: w.layout.vstack_end - 0x100,
        ..Default::default()
    };
    w.xen.guest_exception(&mut regs, 0);
    assert_eq!(regs.rip, GP_HANDLER);
    assert!(log(&w).is_empty());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
    /// Any 15 bytes at rip, any registers: the hypervisor neither panics nor
    /// lets a DomU reach a port.
    #[test]
    fn random_instructions_never_reach_a_port_from_a_domu(code in proptest::collection::vec(proptest::prelude::any::<u8>(), 15), rdx: u64, rcx in 0u64..5000, rsi: u64, rdi: u64, df: bool) {
        let mut w = world(DomId(4), false, 3);
        let init = GuestRegs { rdx, rcx, rsi, rdi, rflags: if df { 0x602 } else { 0x202 }, ..Default::default() };
        let _ = exec(&mut w, &code, init);
        proptest::prop_assert!(log(&w).is_empty());
    }
}

const RDMSR: &[u8] = &[0x0f, 0x32];
const WRMSR: &[u8] = &[0x0f, 0x30];

#[test]
fn wrmsr_of_the_segment_bases_reaches_the_cpu_and_refuses_non_canonical_bases() {
    let mut w = world(DomId(0), true, 0);
    let base = 0xffff_8880_1234_5000u64;
    let (_, regs) = exec(&mut w, WRMSR, GuestRegs { rcx: 0xc000_0101, rax: base & 0xffff_ffff, rdx: base >> 32, ..Default::default() });
    assert!(emulated(&w, &regs, 2));
    assert_eq!(w.xen.platform.segs.get().1, base);
    assert_eq!(w.xen.domains[&DomId(0)].vcpus[0].segs.gs_kernel, base);
    let (_, regs) = exec(&mut w, RDMSR, GuestRegs { rcx: 0xc000_0101, ..Default::default() });
    assert_eq!((regs.rdx << 32) | regs.rax, base);
    let (_, regs) = exec(&mut w, WRMSR, GuestRegs { rcx: 0xc000_0100, rax: 0, rdx: 0x8000, ..Default::default() });
    assert_eq!(regs.rip, GP_HANDLER, "non-canonical FS base");
    assert_eq!(w.xen.platform.segs.get().0, 0);
}

#[test]
fn msrs_outside_xens_pv_policy_are_the_guests_gp() {
    let mut w = world(DomId(0), true, 3);
    for msr in [0x3au64, 0x48, 0x10a, 0xc000_0081, 0xc000_0082, 0x4000_0000, 0xffff_ffff] {
        let (_, regs) = exec(&mut w, RDMSR, GuestRegs { rcx: msr, ..Default::default() });
        assert_eq!(regs.rip, GP_HANDLER, "rdmsr {msr:#x}");
        let (_, regs) = exec(&mut w, WRMSR, GuestRegs { rcx: msr, ..Default::default() });
        assert_eq!(regs.rip, GP_HANDLER, "wrmsr {msr:#x}");
    }
    let (_, regs) = exec(&mut w, RDMSR, GuestRegs { rcx: 0xc000_0080, ..Default::default() });
    assert_eq!((regs.rdx, regs.rax), (0, 0xd01), "EFER: SCE LME LMA NXE");
    let (_, regs) = exec(&mut w, RDMSR, GuestRegs { rcx: 0x179, ..Default::default() });
    assert!(emulated(&w, &regs, 2), "MCG_CAP is readable");
    // From guest user mode, nothing but I/O under IOPL 3.
    w.xen.domains.get_mut(&DomId(0)).unwrap().vcpus[0].kernel_mode = false;
    let (_, regs) = exec(&mut w, RDMSR, GuestRegs { rcx: 0xc000_0080, ..Default::default() });
    assert_ne!(regs.rip, w.scratch + 0x3002, "user-mode rdmsr is not emulated");
}

#[test]
fn control_registers_read_as_xen_shows_them_and_cr3_writes_are_validated() {
    let mut w = world(DomId(0), true, 0);
    let cr3 = w.xen.domains[&DomId(0)].vcpus[0].cr3;
    // mov rbx, cr3 / mov rcx, cr0 / mov rdx, cr4
    let (_, regs) = exec(&mut w, &[0x0f, 0x20, 0xdb], GuestRegs::default());
    assert!(emulated(&w, &regs, 3));
    assert_eq!(regs.rbx, cr3.0 << 12);
    let (_, regs) = exec(&mut w, &[0x0f, 0x20, 0xc1], GuestRegs::default());
    assert_eq!(regs.rcx, 0x8005_0033);
    let (_, regs) = exec(&mut w, &[0x0f, 0x20, 0xe2], GuestRegs::default());
    assert_eq!(regs.rdx & (1 << 5), 1 << 5, "PAE shows");
    // mov cr3, rax with a frame mapped writable: refused, the table stays.
    let (l1, at) = w.l1e_maddr(w.scratch);
    let data = crate::mm::Mfn(crate::mm::pte::entry_mfn(crate::mm::MachineMemory::read_u64(&w.xen.platform, l1, ((at & 0xfff) / 8) as usize)));
    let (_, regs) = exec(&mut w, &[0x0f, 0x22, 0xd8], GuestRegs { rax: data.0 << 12, ..Default::default() });
    assert_eq!(regs.rip, GP_HANDLER);
    assert_eq!(w.xen.domains[&DomId(0)].vcpus[0].cr3, cr3);
    // The same table again is fine.
    let (_, regs) = exec(&mut w, &[0x0f, 0x22, 0xd8], GuestRegs { rax: cr3.0 << 12, ..Default::default() });
    assert!(emulated(&w, &regs, 3));
    // mov cr0, rax turning paging off: refused; setting TS: the virtual TS.
    let (_, regs) = exec(&mut w, &[0x0f, 0x22, 0xc0], GuestRegs { rax: 0x33, ..Default::default() });
    assert_eq!(regs.rip, GP_HANDLER);
    let (_, regs) = exec(&mut w, &[0x0f, 0x22, 0xc0], GuestRegs { rax: 0x8005_003b, ..Default::default() });
    assert!(emulated(&w, &regs, 3));
    assert!(w.xen.domains[&DomId(0)].vcpus[0].fpu_ts && w.xen.platform.ts.get());
    let (_, regs) = exec(&mut w, &[0x0f, 0x06], GuestRegs::default());
    assert!(emulated(&w, &regs, 2), "clts");
    assert!(!w.xen.domains[&DomId(0)].vcpus[0].fpu_ts);
}

#[test]
fn cli_and_sti_do_nothing_under_virtual_iopl_and_fault_without_it() {
    let mut w = world(DomId(0), true, 0);
    let si = w.xen.domains[&DomId(0)].shared_info.mfn();
    let mask = |w: &World| {
        let mut b = [0u8];
        crate::mm::MachineMemory::read(&w.xen.platform, si, 1, &mut b);
        b[0]
    };
    let (_, regs) = exec(&mut w, &[0xfa], GuestRegs::default());
    assert_eq!(regs.rip, GP_HANDLER, "IOPL 0: cli faults");
    assert_eq!(set_iopl(&mut w, 1), 0);
    for m in [0u8, 1] {
        crate::mm::MachineMemory::write(&w.xen.platform, si, 1, &[m]);
        for insn in [0xfau8, 0xfb] {
            let (_, regs) = exec(&mut w, &[insn], GuestRegs::default());
            assert!(emulated(&w, &regs, 1));
            assert_eq!(mask(&w), m, "the event mask is left alone (a later popf could not undo it)");
        }
    }
}

/// The guest-virtual address at which World's Dom0 sees (read-only) the L1
/// table that maps `va`, and that table.
fn l1_alias(w: &World, va: u64) -> (u64, crate::mm::Mfn) {
    let (l1, _) = w.l1e_maddr(va);
    let first = w.layout.pfn_of(w.layout.vpt_start);
    let i = (0..w.layout.nr_pt_pages).find(|i| w.pfn(first + i) == l1).expect("L1 in the initial tables");
    (w.layout.vpt_start + 4096 * i, l1)
}

/// Run `code` as a kernel write to `target` that faulted (#PF, present+write).
fn write_fault(w: &mut World, code: &[u8], target: u64, init: GuestRegs) -> GuestRegs {
    w.kernel_fault(w.scratch + 0x3000, code, 14, 7, target, init).1
}

#[test]
fn writes_to_the_guests_own_l1_tables_are_made_through_mm_as_xens_ptwr() {
    let mut w = world(DomId(0), true, 0);
    assert_eq!(w.hypercall(nr::SET_TRAP_TABLE, [0, 0, 0, 0, 0]), 0);
    let s = w.scratch + 0x2000;
    let mut b = alloc::vec![14u8, 0];
    b.extend_from_slice(&0xe033u16.to_le_bytes());
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&0x100300u64.to_le_bytes());
    b.extend_from_slice(&[0; 16]);
    w.write(s, &b);
    assert_eq!(w.hypercall(nr::SET_TRAP_TABLE, [s, 0, 0, 0, 0]), 0);
    let victim = w.scratch + 0x7000; // a page of the initial mapping
    // Without vm_assist(writable_pagetables) the write is the guest's #PF.
    let (alias0, _) = l1_alias(&w, victim);
    let pte0 = alias0 + 8 * crate::mm::pte::l1_index(victim) as u64;
    let regs = write_fault(&mut w, &[0x48, 0x89, 0x2b], pte0, GuestRegs { rbx: pte0, rbp: 0, ..Default::default() });
    assert_eq!(regs.rip, 0x100300, "not asked for: the guest's page-fault handler");
    assert_eq!(w.hypercall(nr::VM_ASSIST, [0, hypercall_abi::arch::VMASST_TYPE_writable_pagetables as u64, 0, 0, 0]), 0);
    let (alias, table) = l1_alias(&w, victim);
    let idx = crate::mm::pte::l1_index(victim) as u64;
    let pte_va = alias + 8 * idx;
    let old = crate::mm::MachineMemory::read_u64(&w.xen.platform, table, idx as usize);
    let data = w.pfn(w.spare_pfn(3));
    // mov [rbx], rbp: a whole new entry, read-only, to another frame.
    let new = data.maddr() | crate::mm::pte::_PAGE_PRESENT;
    let regs = write_fault(&mut w, &[0x48, 0x89, 0x2b], pte_va, GuestRegs { rbx: pte_va, rbp: new, ..Default::default() });
    assert_eq!(regs.rip, w.scratch + 0x3003, "emulated, next instruction");
    let now = crate::mm::MachineMemory::read_u64(&w.xen.platform, table, idx as usize);
    assert_eq!(now, new | crate::mm::pte::_PAGE_USER, "written with the user bit, as mod_entry");
    // andb $0xfe on the low byte (the shape of Linux's clear_bit on a PTE).
    let regs = write_fault(&mut w, &[0x80, 0x23, 0xfe], pte_va, GuestRegs { rbx: pte_va, ..Default::default() });
    assert_eq!(regs.rip, w.scratch + 0x3003);
    assert_eq!(crate::mm::MachineMemory::read_u64(&w.xen.platform, table, idx as usize) & 1, 0, "present bit cleared");
    // Mapping the table itself writable is refused: the guest gets its #PF.
    let bad = table.maddr() | crate::mm::pte::_PAGE_PRESENT | crate::mm::pte::_PAGE_RW;
    let regs = write_fault(&mut w, &[0x48, 0x89, 0x2b], pte_va, GuestRegs { rbx: pte_va, rbp: bad, ..Default::default() });
    assert_eq!(regs.rip, 0x100300, "the guest's page-fault handler");
    assert_eq!(crate::mm::MachineMemory::read_u64(&w.xen.platform, table, idx as usize) & !0xfff, data.maddr());
    // A misaligned write is not emulated.
    let regs = write_fault(&mut w, &[0x48, 0x89, 0x2b], pte_va + 4, GuestRegs { rbx: pte_va + 4, rbp: 0, ..Default::default() });
    assert_eq!(regs.rip, 0x100300);
    let _ = old;
    if let Err(e) = super::invariants::check(&w.xen) {
        panic!("invariant broken: {e}");
    }
}

#[test]
fn dom0_maps_non_ram_but_not_the_interrupt_controllers_and_domus_map_none() {
    let mut w = world(DomId(0), true, 0);
    let (_, l1e) = w.l1e_maddr(w.scratch + 0x2000);
    let pte = |mfn: u64| (mfn << 12) | crate::mm::pte::_PAGE_PRESENT | crate::mm::pte::_PAGE_USER;
    // Past the end of RAM (ACPI tables, PCI holes): Dom0 may.
    assert_eq!(w.mmu_update(l1e, pte(super::FRAMES + 10), 0x7ff0), 0);
    assert_eq!(w.mmu_update(l1e, pte(0xfee00), 0x7ff0), Errno::EPERM.to_ret(), "local APIC");
    assert_eq!(w.mmu_update(l1e, pte(0xfec00), 0x7ff0), Errno::EPERM.to_ret(), "I/O APIC");
    // The host platform's CPU has 40 address bits: nothing from 2^28 frames up.
    assert_eq!(w.mmu_update(l1e, pte(1 << 28), 0x7ff0), Errno::EPERM.to_ret(), "beyond the machine");
    assert_eq!(w.mmu_update(l1e, pte(0xFF_FFFF_FFFE), 0x7ff0), Errno::EPERM.to_ret());
    assert_eq!(w.mmu_update(l1e, 0, 0x7ff0), 0, "and unmapped again");
    let mut du = world(DomId(6), false, 0);
    let (_, l1e) = du.l1e_maddr(du.scratch + 0x2000);
    assert_eq!(du.mmu_update(l1e, pte(super::FRAMES + 10), 0x7ff0), Errno::EPERM.to_ret());
}
