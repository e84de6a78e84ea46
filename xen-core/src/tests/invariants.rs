//! The invariants of docs/architecture.md, checked by recomputing every
//! reference from scratch and comparing with the frame table (the audit
//! itself lives in `testing.rs`, shared with the hypercall fuzzer).

use alloc::string::String;

use crate::domain::DomId;
use crate::mm::{Mfn, Owner};
use crate::testing::HostPlatform;
use crate::xen::Xen;

/// `Err` describes the first broken invariant.
pub fn check(xen: &Xen<HostPlatform>) -> Result<(), String> {
    crate::testing::audit_frame_table(xen)
}

/// its tables) and give back its memory.
pub fn teardown(xen: &mut Xen<HostPlatform>, dom: DomId) {
    let slots = xen.platform.hypervisor_slots;
    xen.fifo_destroy(dom);
    let d = xen.domains.remove(&dom).expect("domain");
    let mut mm = crate::mm::validate::Mm::new(&xen.platform, &mut xen.frames, slots);
    for v in d.vcpus.iter().filter(|v| v.initialised) {
        mm.put_page_and_type(v.cr3);
        if let Some(u) = v.user_cr3 {
            mm.put_page_and_type(u);
        }
        for f in &v.gdt_frames {
            mm.put_page_and_type(*f);
        }
    }
    for loc in d.vcpus.iter().filter_map(|v| v.vcpu_info) {
        mm.unshare_guest_frame(loc.page());
    }
    if let Some(page) = d.pirq_eoi_map {
        mm.unshare_guest_frame(page);
    }
    let pinned: alloc::vec::Vec<Mfn> = mm.ft.iter().filter(|(_, pg)| pg.pinned && pg.owner == Owner::Dom(dom)).map(|(m, _)| m).collect();
    for m in pinned {
        mm.unpin(m, dom).expect("unpin");
    }
    // Validations left half done, and teardown left queued (as destroy_domain).
    let partial: alloc::vec::Vec<Mfn> = mm.ft.iter().filter(|(_, pg)| pg.partial && pg.owner == Owner::Dom(dom)).map(|(m, _)| m).collect();
    for m in partial {
        mm.abandon_partial(m);
    }
    let _ = mm.drain_deferred(dom);
    let owned: alloc::vec::Vec<Mfn> = mm.ft.owned_by(dom).collect();
    for m in owned {
        mm.ft.release(m);
    }
}
