//! The pieces of the PV ABI Debian's Linux 6.1 asks for at boot, in the
//! order it asks, each with hostile values.

use super::World;
use crate::domain::DomId;
use hypercall_abi::errno::Errno;
use hypercall_abi::nr;
use hypercall_abi::version::*;

fn features(w: &mut World, idx: u32) -> (i64, u32) {
    let s = w.scratch + 0x100;
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&idx.to_le_bytes());
    b[4..].copy_from_slice(&0xdead_beefu32.to_le_bytes());
    w.write(s, &b);
    let r = w.hypercall(nr::XEN_VERSION, [XENVER_get_features as u64, s, 0, 0, 0]);
    (r, (w.read_u64(s) >> 32) as u32)
}

#[test]
fn get_features_reports_what_xen_4_17_reports_to_pv_guests() {
    let mut w = World::new();
    let (r, map) = features(&mut w, 0);
    assert_eq!(r, 0);
    for f in [
        XENFEAT_pae_pgdir_above_4gb,
        XENFEAT_mmu_pt_update_preserve_ad,
        XENFEAT_highmem_assist,
        XENFEAT_gnttab_map_avail_bits,
        XENFEAT_memory_op_vnode_supported,
        XENFEAT_dom0,
    ] {
        assert_ne!(map & (1 << f), 0, "feature {f}");
    }
    // Never features of translated (HVM/PVH) guests.
    for f in [XENFEAT_writable_page_tables, XENFEAT_auto_translated_physmap, XENFEAT_supervisor_mode_kernel, XENFEAT_hvm_callback_vector] {
        assert_eq!(map & (1 << f), 0, "feature {f}");
    }
    assert_eq!(features(&mut w, 1).0, Errno::EINVAL.to_ret());
    assert_eq!(features(&mut w, u32::MAX).0, Errno::EINVAL.to_ret());
    assert_eq!(w.hypercall(nr::XEN_VERSION, [XENVER_get_features as u64, u64::MAX - 2, 0, 0, 0]), Errno::EFAULT.to_ret());
    let mut du = World::with_domain(DomId(2), false);
    assert_eq!(features(&mut du, 0).1 & (1 << XENFEAT_dom0), 0, "only Dom0 is dom0");
}

#[test]
fn a_registered_runstate_area_is_filled_at_once_and_hostile_ones_refused() {
    let mut w = World::new();
    let area = w.scratch + 0x600;
    w.write(area, &[0xaa; 48]);
    let s = w.scratch + 0x100;
    w.write(s, &area.to_le_bytes());
    let op = hypercall_abi::vcpu::VCPUOP_register_runstate_memory_area as u64;
    assert_eq!(w.hypercall(nr::VCPU_OP, [op, 0, s, 0, 0]), 0);
    // RUNSTATE_running (0), and no byte of the 0xaa pattern left in it.
    assert_eq!(w.read_u64(area) & 0xffff_ffff, 0);
    assert!((0..6).all(|i| w.read_u64(area + 8 * i) != 0xaaaa_aaaa_aaaa_aaaa));
    for bad in [0xffff_8300_0000_0000u64, 0x0000_7fff_ffff_fff0, u64::MAX - 8] {
        w.write(s, &bad.to_le_bytes());
        assert_eq!(w.hypercall(nr::VCPU_OP, [op, 0, s, 0, 0]), Errno::EFAULT.to_ret(), "{bad:#x}");
    }
    assert_eq!(w.hypercall(nr::VCPU_OP, [op, 0, 0xffff_8300_0000_0000, 0, 0]), Errno::EFAULT.to_ret());
    assert_eq!(w.hypercall(nr::VCPU_OP, [op, 7, s, 0, 0]), Errno::ENOENT.to_ret(), "no such vCPU");
}

fn machine_memory_map(w: &mut World, nr: u32, buffer: u64) -> (i64, u32) {
    let s = w.scratch + 0x100;
    let mut b = [0u8; 16];
    b[..4].copy_from_slice(&nr.to_le_bytes());
    b[8..].copy_from_slice(&buffer.to_le_bytes());
    w.write(s, &b);
    let op = hypercall_abi::memory::XENMEM_machine_memory_map as u64;
    let r = w.hypercall(nr::MEMORY_OP, [op, s, 0, 0, 0]);
    (r, w.read_u64(s) as u32)
}

#[test]
fn dom0_reads_the_machines_e820_map_and_nobody_else_does() {
    let mut w = World::new();
    let buf = w.scratch + 0x800;
    assert_eq!(machine_memory_map(&mut w, 6, buf), (0, 5));
    // Entry 3: RAM from 1 MiB, 20 bytes an entry.
    let mut e = [0u8; 20];
    w.xen.guest_mem().unwrap().copy_from_guest(buf + 3 * 20, &mut e).unwrap();
    assert_eq!(u64::from_le_bytes(e[0..8].try_into().unwrap()), 0x10_0000);
    assert_eq!(u32::from_le_bytes(e[16..20].try_into().unwrap()), 1);
    assert_eq!(machine_memory_map(&mut w, 5, buf).0, Errno::EINVAL.to_ret(), "Xen wants one spare entry");
    assert_eq!(machine_memory_map(&mut w, 6, 0xffff_8300_0000_0000).0, Errno::EFAULT.to_ret());
    assert_eq!(machine_memory_map(&mut w, u32::MAX, 0x0000_7fff_ffff_0000).0, Errno::EFAULT.to_ret());
    assert_eq!(machine_memory_map(&mut w, 0, 0), (0, 5), "a null buffer asks for the count");
    // The pseudo-physical map: none set, as Xen says.
    let s = w.scratch + 0x100;
    assert_eq!(w.hypercall(nr::MEMORY_OP, [hypercall_abi::memory::XENMEM_memory_map as u64, s, 0, 0, 0]), Errno::ENOSYS.to_ret());
    let mut du = World::with_domain(DomId(5), false);
    let b = du.scratch + 0x800;
    assert_eq!(machine_memory_map(&mut du, 6, b).0, Errno::EPERM.to_ret());
}

fn register_vcpu_info(w: &mut World, vcpu: u64, mfn: u64, offset: u32) -> i64 {
    let s = w.scratch + 0x100;
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&mfn.to_le_bytes());
    b[8..12].copy_from_slice(&offset.to_le_bytes());
    w.write(s, &b);
    w.hypercall(nr::VCPU_OP, [hypercall_abi::vcpu::VCPUOP_register_vcpu_info as u64, vcpu, s, 0, 0])
}

#[test]
fn vcpu_info_moves_once_to_a_writable_frame_of_the_domain_and_events_follow_it() {
    use crate::mm::MachineMemory;
    let mut w = World::new();
    let page = w.pfn(w.spare_pfn(2));
    let table = w.l1e_maddr(w.scratch).0;
    let einval = Errno::EINVAL.to_ret();
    assert_eq!(register_vcpu_info(&mut w, 0, page.0, 4096 - 63), einval, "no room for 64 bytes");
    assert_eq!(register_vcpu_info(&mut w, 0, page.0, 0x44), einval, "misaligned");
    assert_eq!(register_vcpu_info(&mut w, 0, table.0, 0), einval, "a page table");
    assert_eq!(register_vcpu_info(&mut w, 0, 5, 0), einval, "a frame it does not own");
    assert_eq!(register_vcpu_info(&mut w, 0, u64::MAX, 0), einval);
    assert_eq!(register_vcpu_info(&mut w, 9, page.0, 0), Errno::ENOENT.to_ret());
    assert_eq!(register_vcpu_info(&mut w, 0, page.0, 0x40), 0);
    assert_eq!(register_vcpu_info(&mut w, 0, page.0, 0x80), einval, "only once");
    // Everything marked pending, so nothing is lost in the move.
    assert_eq!(w.xen.platform.read_u64(page, 8) & 0xff, 1);
    assert_eq!(w.xen.platform.read_u64(page, 9), u64::MAX);
    // The frame cannot become a page table while it holds a vcpu_info.
    assert_eq!(w.mmuext(hypercall_abi::mm::MMUEXT_PIN_L1_TABLE, page.0, 0), einval);
    // A new event is marked pending there, not in the old shared_info slot.
    let si = w.xen.domains[&DomId(0)].shared_info.mfn();
    w.xen.platform.write(page, 0x40, &[0; 16]);
    w.xen.platform.write(si, 0, &[0; 16]);
    w.xen.mark_events_pending(DomId(0), 0, 5);
    assert_eq!(w.xen.platform.read_u64(page, 8) & 0xff, 1, "evtchn_upcall_pending in the registered vcpu_info");
    assert_eq!(w.xen.platform.read_u64(page, 9), 1 << 5, "its selector bit");
    assert_eq!(w.xen.platform.read_u64(si, 0), 0, "nothing in shared_info's slot");
    // The event mask now lives there: masking it there blocks delivery.
    w.xen.platform.write(page, 0x41, &[1]);
    assert!(!w.xen.events_need_delivery_for(DomId(0), 0));
    w.xen.platform.write(page, 0x41, &[0]);
    assert!(w.xen.events_need_delivery_for(DomId(0), 0));
    if let Err(e) = super::invariants::check(&w.xen) {
        panic!("invariant broken: {e}");
    }
}

#[test]
fn sched_op_compat_yields_and_shuts_down_with_the_reason_in_the_argument() {
    use crate::domain::ShutdownReason;
    let mut w = World::with_domain(DomId(3), false);
    let compat = nr::SCHED_OP_COMPAT;
    assert_eq!(w.hypercall(compat, [hypercall_abi::sched::SCHEDOP_yield as u64, 0, 0, 0, 0]), 0);
    assert_eq!(w.hypercall(compat, [hypercall_abi::sched::SCHEDOP_poll as u64, 0, 0, 0, 0]), Errno::ENOSYS.to_ret());
    assert_eq!(w.hypercall(compat, [99, 0, 0, 0, 0]), Errno::ENOSYS.to_ret());
    assert_eq!(w.hypercall(compat, [hypercall_abi::sched::SCHEDOP_shutdown as u64, 0x1_00_77, 0, 0, 0]), Errno::EINVAL.to_ret());
    assert!(w.xen.domains[&DomId(3)].shutdown.is_none());
    // Reboot (1) in the low byte; the rest of the word is ignored, as Xen's (u8)arg.
    w.hypercall(compat, [hypercall_abi::sched::SCHEDOP_shutdown as u64, 0xff00_0001, 0, 0, 0]);
    assert_eq!(w.xen.domains.get(&DomId(3)).and_then(|d| d.shutdown), Some(ShutdownReason::Reboot));
}

fn pirq_eoi_gmfn(w: &mut World, cmd: u32, gmfn: u64) -> i64 {
    let s = w.scratch + 0x100;
    w.write(s, &gmfn.to_le_bytes());
    w.hypercall(nr::PHYSDEV_OP, [cmd as u64, s, 0, 0, 0])
}

#[test]
fn the_pirq_eoi_map_is_one_writable_frame_of_the_domain_held_until_it_dies() {
    use crate::mm::{Mfn, PageType};
    use hypercall_abi::physdev::{PHYSDEVOP_pirq_eoi_gmfn_v1, PHYSDEVOP_pirq_eoi_gmfn_v2};
    // Any PV domain registers one (Linux DomUs do at boot).
    let mut w = World::with_domain(DomId(7), false);
    let frame = w.pfn(w.spare_pfn(3));
    // Not a frame of ours, a page table of ours: EINVAL, nothing held.
    w.add_domain(DomId(6), false);
    let theirs = w.xen.domains[&DomId(6)].p2m[900];
    assert_eq!(pirq_eoi_gmfn(&mut w, PHYSDEVOP_pirq_eoi_gmfn_v2, theirs.0), Errno::EINVAL.to_ret());
    let l4 = w.xen.domains[&DomId(7)].vcpus[0].cr3;
    assert_eq!(pirq_eoi_gmfn(&mut w, PHYSDEVOP_pirq_eoi_gmfn_v2, l4.0), Errno::EINVAL.to_ret());
    assert_eq!(pirq_eoi_gmfn(&mut w, PHYSDEVOP_pirq_eoi_gmfn_v2, u64::MAX), Errno::EINVAL.to_ret());
    assert!(w.xen.domains[&DomId(7)].pirq_eoi_map.is_none());
    // Ours: taken, typed writable, so it can no longer become a page table.
    let count = w.xen.frames.get(frame).unwrap().count;
    assert_eq!(pirq_eoi_gmfn(&mut w, PHYSDEVOP_pirq_eoi_gmfn_v2, frame.0), 0);
    let pg = w.xen.frames.get(frame).unwrap();
    assert_eq!((pg.ty, pg.type_count, pg.count), (PageType::Writable, 1, count + 1));
    assert_eq!(w.mmuext(hypercall_abi::mm::MMUEXT_PIN_L1_TABLE, frame.0, 0), Errno::EINVAL.to_ret());
    // Once only (v1 or v2), whatever frame comes second; a bad one is EINVAL.
    let other = w.pfn(w.spare_pfn(4));
    assert_eq!(pirq_eoi_gmfn(&mut w, PHYSDEVOP_pirq_eoi_gmfn_v1, other.0), Errno::EBUSY.to_ret());
    assert_eq!(w.xen.frames.get(other).unwrap().type_count, 0, "the second frame is not kept");
    assert_eq!(pirq_eoi_gmfn(&mut w, PHYSDEVOP_pirq_eoi_gmfn_v1, theirs.0), Errno::EINVAL.to_ret());
    assert_eq!(w.hypercall(nr::PHYSDEV_OP, [PHYSDEVOP_pirq_eoi_gmfn_v2 as u64, 0xffff_8300_0000_0000, 0, 0, 0]), Errno::EFAULT.to_ret());
    // The domain's death gives it back with the rest: the frame is free.
    w.xen.current = None;
    assert_eq!(w.xen.destroy_domain(DomId(7)), Ok(()));
    let pg = w.xen.frames.get(frame).unwrap();
    assert_eq!((pg.count, pg.type_count), (0, 0));
    assert_eq!(pg.owner, crate::mm::Owner::Free);
    let _ = Mfn(0);
}
