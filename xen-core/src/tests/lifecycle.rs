//! Domain lifecycle in the core: create, populate, build a little, destroy;
//! every frame comes back.

use super::invariants::check;
use super::{World, RW};
use crate::domain::DomId;
use crate::mm::{MachineMemory, Mfn, Owner, PageType};
use crate::mm::pte::{_PAGE_PRESENT, _PAGE_USER};

const TABLE: u64 = _PAGE_PRESENT | crate::mm::pte::_PAGE_RW | _PAGE_USER;

/// A guest with 32 pages, a pinned 4-level tree mapping one page, an event
/// channel to Dom0 and grant frames.
fn make_guest(w: &mut World) -> (DomId, alloc::vec::Vec<Mfn>) {
    let d = w.xen.create_domain(0, 2, "guest").unwrap();
    w.xen.domains.get_mut(&d).unwrap().max_pages = 32;
    let mfns = w.xen.populate_physmap(d, &(0..32).collect::<alloc::vec::Vec<u64>>());
    assert_eq!(mfns.len(), 32);
    let p = &w.xen.platform;
    p.write_u64(mfns[3], 0, mfns[2].maddr() | TABLE);
    p.write_u64(mfns[2], 0, mfns[1].maddr() | TABLE);
    p.write_u64(mfns[1], 0, mfns[0].maddr() | TABLE);
    p.write_u64(mfns[0], 5, mfns[10].maddr() | TABLE);
    w.xen.mm().pin(mfns[3], d, PageType::L4).unwrap();
    w.xen.domains.get_mut(&d).unwrap().evtchn.alloc(crate::evtchn::State::Unbound { remote: DomId(0) }, 0);
    (d, mfns)
}

#[test]
fn a_thousand_guests_created_and_destroyed_leave_memory_as_it_was() {
    let mut w = World::new();
    let free = w.xen.frames.free_count();
    for _ in 0..1000 {
        let (d, _) = make_guest(&mut w);
        assert!(w.xen.domain_info(d).unwrap().paused, "created paused");
        w.xen.destroy_domain(d).unwrap();
    }
    assert_eq!(w.xen.frames.free_count(), free);
    check(&w.xen).unwrap();
}

#[test]
fn a_page_dom0_still_maps_outlives_its_domain_then_is_freed() {
    let mut w = World::new();
    let free = w.xen.frames.free_count();
    let (d, mfns) = make_guest(&mut w);
    let (_, l1e) = w.l1e_maddr(w.scratch + 0x2000);
    assert_eq!(w.mmu_update(l1e, mfns[20].maddr() | RW, d.0 as u64), 0);
    w.xen.destroy_domain(d).unwrap();
    assert_eq!(w.xen.frames.get(mfns[20]).unwrap().owner, Owner::Dead);
    assert!(w.xen.domains.get(&d).is_none());
    // A new domain does not get the dead one's id, nor can it reach the page.
    let d2 = w.xen.create_domain(0, 1, "next").unwrap();
    assert_ne!(d2, d);
    assert!(w.xen.frames.get_page(mfns[20], d2).is_err());
    assert_eq!(w.mmu_update(l1e, 0, 0x7ff0), 0);
    assert_eq!(w.xen.frames.get(mfns[20]).unwrap().owner, Owner::Free);
    w.xen.destroy_domain(d2).unwrap();
    assert_eq!(w.xen.frames.free_count(), free);
    check(&w.xen).unwrap();
}

#[test]
fn lifecycle_rules_for_hostile_callers() {
    let mut w = World::new();
    assert!(w.xen.destroy_domain(DomId(0)).is_err(), "Dom0 cannot be destroyed");
    assert!(w.xen.destroy_domain(DomId(77)).is_err());
    assert!(w.xen.create_domain(0, 0, "x").is_err());
    assert!(w.xen.create_domain(0, 999, "x").is_err());
    assert!(w.xen.create_domain(0x7ff0, 1, "x").is_err());
    let d = w.xen.create_domain(0, 1, "g").unwrap();
    assert_eq!(w.xen.populate_physmap(d, &[0, 1]).len(), 0, "max_pages 0: no memory yet");
    assert!(w.xen.unpause_domain(d).is_ok());
    assert!(w.xen.unpause_domain(d).is_err(), "not paused");
    w.xen.pause_domain(d).unwrap();
    assert!(w.xen.domain_info(d).unwrap().paused);
}
