//! The second adversarial review: what a hostile guest can do with
//! references that outlive their owner (a granter destroyed under a live
//! mapping, its id given to a new domain), frames given back while still
//! mapped or pinned, and the other cross-domain edges of grants, event
//! channels and the MMU. Each test fails on the tree before its fix.

use super::invariants::check;
use super::World;
use crate::domain::DomId;
use crate::mm::Owner;
use hypercall_abi::grant::*;

fn invariants_hold(w: &World) {
    if let Err(e) = check(&w.xen) {
        panic!("invariant broken: {e}");
    }
}

/// A backend (d2) maps a frontend's (d1) grant writable; the frontend is
/// destroyed, and a new domain gets id 1 and grants the same backend a
/// page, which it maps. The backend then unmaps its stale handle from the
/// old domain. That unmap must not touch the new domain's grant entry:
/// before the fix it decremented the new entry's writer count and cleared
/// `GTF_reading|GTF_writing` while the page was still mapped writable, so
/// the new domain would think its grant revoked (`gnttab_end_foreign_access`
/// succeeds) and reuse a page another domain can still write. Xen keeps
/// the old domain as a zombie (its id unused) until every reference to it
/// is gone; here the destruction cuts the stale mappings loose from the id.
#[test]
fn a_stale_mapping_of_a_destroyed_granter_cannot_touch_a_new_domain_with_its_id() {
    let mut w = World::new();
    let (d1, d2) = (DomId(1), DomId(2));
    w.add_domain(d1, false);
    w.add_domain(d2, false);
    w.switch_to(1);
    let old_page = w.pfn(w.spare_pfn(0));
    assert_eq!(w.setup_grants(1).0, GNTST_okay);
    w.grant(1, 5, 2, old_page, GTF_permit_access);
    w.switch_to(2);
    let va_old = w.scratch + 0x2000;
    let (st, h_old) = w.map_grant(va_old, 1, 5, false);
    assert_eq!(st, GNTST_okay);
    // Dom0 destroys the frontend; its page lives on, mapped.
    w.switch_to(0);
    w.xen.destroy_domain(d1).unwrap();
    assert_eq!(w.xen.frames.get(old_page).unwrap().owner, Owner::Dead);
    // A new domain with the same id grants the backend a page.
    w.add_domain(d1, false);
    w.switch_to(1);
    let new_page = w.pfn(w.spare_pfn(0));
    assert_eq!(w.setup_grants(1).0, GNTST_okay);
    w.grant(1, 5, 2, new_page, GTF_permit_access);
    w.switch_to(2);
    let va_new = w.scratch + 0x3000;
    let (st, h_new) = w.map_grant(va_new, 1, 5, false);
    assert_eq!(st, GNTST_okay);
    assert_ne!(h_new, h_old);
    let in_use = GTF_permit_access | GTF_reading | GTF_writing;
    assert_eq!(w.entry_flags(1, 5), in_use);
    // The stale handle goes; the old page with it.
    assert_eq!(w.unmap_grant(va_old, h_old), GNTST_okay);
    assert_eq!(w.xen.frames.get(old_page).unwrap().owner, Owner::Free);
    assert_eq!(w.entry_flags(1, 5), in_use, "the stale unmap marked the new domain's grant as no longer in use");
    assert_eq!(w.xen.domains[&d1].gnttab.active.get(&5).map(|a| (a.readers, a.writers)), Some((0, 1)));
    invariants_hold(&w);
    // The real mapping's unmap still releases the new entry.
    assert_eq!(w.unmap_grant(va_new, h_new), GNTST_okay);
    assert_eq!(w.entry_flags(1, 5), GTF_permit_access);
    assert!(w.xen.domains[&d1].gnttab.active.is_empty());
    invariants_hold(&w);
}
