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
    w.kernel_fault(w.scratch + 0x3000, code, vector, ec, cr2, init).1
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

/// The guest-virtual address at which the world's domain sees (read-only)
/// its first initial page table, and that table.
fn first_table_alias(w: &World) -> u64 {
    w.layout.vpt_start
}

proptest::proptest! {
    #![proptest_config(super::prop_config())]
    /// Any write-shaped instruction on `[rbx]`, any registers, against any
    /// byte of the domain's read-only page tables (all levels), from a DomU
    /// that enabled writable page tables: the hypervisor neither panics nor
    /// lets the write break an invariant (a writable mapping of a table, a
    /// frame not the domain's, a hypervisor slot).
    #[test]
    fn ptwr_of_any_write_to_any_table_byte_keeps_the_invariants(
        prefix in proptest::sample::select(alloc::vec![alloc::vec![], alloc::vec![0x48u8], alloc::vec![0x66], alloc::vec![0xf0, 0x48], alloc::vec![0x4c], alloc::vec![0xf0], alloc::vec![0x67, 0x48]]),
        op in proptest::sample::select(alloc::vec![
            alloc::vec![0x89u8], alloc::vec![0x88], alloc::vec![0x87], alloc::vec![0x86], alloc::vec![0x09], alloc::vec![0x21],
            alloc::vec![0x31], alloc::vec![0x81], alloc::vec![0x83], alloc::vec![0x80], alloc::vec![0xc7], alloc::vec![0xc6],
            alloc::vec![0x0f, 0xb1], alloc::vec![0x0f, 0xb0], alloc::vec![0x0f, 0xab], alloc::vec![0x0f, 0xb3], alloc::vec![0x0f, 0xba],
            alloc::vec![0x0f, 0xc7], alloc::vec![0x01], alloc::vec![0xff], alloc::vec![0xd1],
        ]),
        reg in 0u8..8,
        imm: [u8; 4],
        table in 0u64..6,
        off in 0u64..4096,
        frames in proptest::collection::vec((0u64..super::FRAMES, 0u64..0x1000, proptest::prelude::any::<bool>()), 5),
        dom0: bool,
    ) {
        // Entry-shaped values: a frame (often one of the domain's own page
        // tables) and any flags.

        let (id, privileged) = if dom0 { (DomId(0), true) } else { (DomId(5), false) };
        let mut w = world(id, privileged, 0);
        assert_eq!(w.hypercall(nr::VM_ASSIST, [0, hypercall_abi::arch::VMASST_TYPE_writable_pagetables as u64, 0, 0, 0]), 0);
        let target = first_table_alias(&w) + 4096 * (table % w.layout.nr_pt_pages) + off;
        let mut code = prefix.clone();
        code.extend_from_slice(&op);
        code.push((reg << 3) | 3); // [rbx]
        code.extend_from_slice(&imm);
        let first = w.layout.pfn_of(w.layout.vpt_start);
        let v: Vec<u64> = frames
            .iter()
            .map(|&(f, flags, own_table)| {
                let mfn = if own_table { w.pfn(first + f % w.layout.nr_pt_pages).0 } else { f };
                (mfn << 12) | flags
            })
            .collect();
        let init = GuestRegs { rax: v[0], rbx: target, rcx: v[1], rdx: v[2], rbp: v[3], rsi: v[4], ..Default::default() };
        let _ = run(&mut w, &code, 14, 7, target, init);
        if let Err(e) = super::invariants::check(&w.xen) {
            proptest::prop_assert!(false, "invariant broken: {}", e);
        }
    }
}

#[test]
fn a_hypercall_page_note_at_the_top_of_the_address_space_is_refused_not_a_panic() {
    use crate::build::{build_pv_domain, BuildRequest};
    use crate::mm::{FrameTable, Mfn};
    use hypercall_abi::elfnote::*;
    use pv_image::elf::test_image::{build, Note};
    // A kernel that says its hypercall page is the last page of the address
    // space: `page + 4096` wraps, and a release build accepted the page and
    // indexed the physmap far out of bounds.
    let k = build(
        0x100000,
        &[0x90; 64],
        0x3000,
        0x100000,
        &[
            Note { ty: XEN_ELFNOTE_HYPERCALL_PAGE, desc: &0xffff_ffff_ffff_f000u64.to_le_bytes() },
            Note { ty: XEN_ELFNOTE_XEN_VERSION, desc: b"xen-3.0\0" },
            Note { ty: XEN_ELFNOTE_LOADER, desc: b"generic\0" },
        ],
    );
    let p = crate::testing::HostPlatform::new(4096);
    let mut ft = FrameTable::new(4096);
    ft.add_free(Mfn(16), 4096 - 16);
    let req = BuildRequest { domid: DomId(0), name: "Dom0", privileged: true, kernel: &k, module: None, cmdline: "", nr_pages: 2048, max_vcpus: 1, max_pages: 0 };
    let err = build_pv_domain(&p, &mut ft, &req).err().expect("refused");
    assert!(matches!(err, crate::build::pv::BuildError::BadImage(_)), "{err:?}");
}

proptest::proptest! {
    #![proptest_config(super::prop_config())]
    /// Any 15 bytes at rip raising #GP(0) or a write #PF on the domain's own
    /// page tables, any registers, a DomU with IOPL 3 and writable page
    /// tables: no panic, no port reached, every mm invariant kept.
    #[test]
    fn random_instructions_at_gp_or_table_write_faults_keep_a_domu_contained(
        code in proptest::collection::vec(proptest::prelude::any::<u8>(), 15),
        pf: bool,
        off in 0u64..(4 * 4096),
        regs in proptest::collection::vec(proptest::prelude::any::<u64>(), 6),
        df: bool,
    ) {
        let mut w = world(DomId(7), false, 3);
        assert_eq!(w.hypercall(nr::VM_ASSIST, [0, hypercall_abi::arch::VMASST_TYPE_writable_pagetables as u64, 0, 0, 0]), 0);
        let target = w.layout.vpt_start + off % (4096 * w.layout.nr_pt_pages);
        let init = GuestRegs {
            rax: regs[0], rbx: target, rcx: regs[1] % 3000, rdx: regs[2], rsi: regs[3], rdi: regs[4], rbp: regs[5],
            rflags: if df { 0x602 } else { 0x202 },
            ..Default::default()
        };
        let (vector, ec) = if pf { (14, 7) } else { (TRAP_GP_FAULT, 0) };
        let _ = run(&mut w, &code, vector, ec, target, init);
        proptest::prop_assert!(log(&w).is_empty(), "{:?}", log(&w));
        if let Err(e) = super::invariants::check(&w.xen) {
            proptest::prop_assert!(false, "invariant broken: {}", e);
        }
    }
}
