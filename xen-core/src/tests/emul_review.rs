//! Hostile-guest regressions for the privileged-instruction emulation
//! (`emulate`), found by review: each test fails without its fix.

use alloc::vec::Vec;

use super::World;
use crate::domain::DomId;
use crate::regs::GuestRegs;
use crate::traps::TRAP_GP_FAULT;
use hypercall_abi::nr;
use hypercall_abi::physdev::*;

fn world(dom: DomId, privileged: bool, iopl: u32) -> World {
    let mut w = World::with_domain(dom, privileged);
    let s = w.scratch + 0x100;
    w.write(s, &iopl.to_le_bytes());
    assert_eq!(w.hypercall(nr::PHYSDEV_OP, [PHYSDEVOP_set_iopl as u64, s, 0, 0, 0]), 0);
    w.xen.platform.io_log.borrow_mut().clear();
    w
}

/// Run `code` as the guest kernel, faulting with `vector` (error code
/// `ec`, fault address `cr2`) at its first byte.
fn run(w: &mut World, code: &[u8], vector: u64, ec: u64, cr2: u64, init: GuestRegs) -> GuestRegs {
    let at = w.scratch + 0x3000;
    w.write(at, code);
    let mut regs = GuestRegs {
        entry_vector: vector,
        error_code: ec,
        rip: at,
        cs: 0xe033,
        ss: 0xe02b,
        rsp: w.layout.vstack_end - 0x100,
        rflags: 0x202,
        ..init
    };
    w.xen.guest_exception(&mut regs, cr2);
    regs
}

fn log(w: &World) -> Vec<(char, u16, u8, u32)> {
    w.xen.platform.io_log.borrow().clone()
}

#[test]
fn dom0_cannot_set_the_nmi_disable_bit_through_the_cmos_index() {
    let mut w = world(DomId(0), true, 1);
    // outb 0x8a, 0x70 (bit 7: NMI disable); inb 0x71; outb al, 0x71.
    let r = run(&mut w, &[0xe6, 0x70], TRAP_GP_FAULT, 0, 0, GuestRegs { rax: 0x8a, ..Default::default() });
    assert_eq!(r.rip, w.scratch + 0x3002);
    let r = run(&mut w, &[0xe4, 0x71], TRAP_GP_FAULT, 0, 0, GuestRegs::default());
    assert_eq!(r.rip, w.scratch + 0x3002);
    let r = run(&mut w, &[0xe6, 0x71], TRAP_GP_FAULT, 0, 0, GuestRegs { rax: 0x26, ..Default::default() });
    assert_eq!(r.rip, w.scratch + 0x3002);
    let idx: Vec<u32> = log(&w).iter().filter(|e| e.0 == 'w' && e.1 == 0x70).map(|e| e.3).collect();
    assert_eq!(idx, [0x0a, 0x0a], "the index reaches the RTC without bit 7, as Xen's rtc_guest_read/write");
}

#[test]
fn a_section_table_at_the_top_of_the_address_space_is_no_panic() {
    use pv_image::elf::test_image::build;
    use pv_image::elf::{parse, ElfError};
    // An ELF kernel without Xen notes, whose section header table claims to
    // start 16 bytes below 2^64: the builder looks for a legacy
    // `__xen_guest` section there and must refuse the image, not overflow.
    let mut img = build(0x100000, &[0x90; 16], 0x2000, 0x100000, &[]);
    img[40..48].copy_from_slice(&0xffff_ffff_ffff_fff0u64.to_le_bytes());
    img[58..60].copy_from_slice(&64u16.to_le_bytes());
    img[60..62].copy_from_slice(&1u16.to_le_bytes());
    img[62..64].copy_from_slice(&0u16.to_le_bytes());
    assert_eq!(parse(&img).unwrap_err(), ElfError::NoXenNotes);
}

