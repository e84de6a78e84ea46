//! DESIGN.md's invariants, checked by recomputing every reference from
//! scratch and comparing with the frame table.

use alloc::collections::BTreeMap;
use alloc::string::String;

use crate::domain::DomId;
use crate::mm::pte::*;
use crate::mm::validate::level_of;
use crate::mm::{MachineMemory, Mfn, Owner, PageType};
use crate::testing::HostPlatform;
use crate::xen::Xen;

#[derive(Default, Clone, Copy)]
struct Expect {
    count: u32,
    type_count: u32,
}

/// `Err` describes the first broken invariant.
pub fn check(xen: &Xen<HostPlatform>) -> Result<(), String> {
    let mut want: BTreeMap<u64, Expect> = BTreeMap::new();
    let mut add = |m: Mfn, general: u32, typed: u32| {
        let e = want.entry(m.0).or_default();
        e.count += general;
        e.type_count += typed;
    };
    for d in xen.domains.values() {
        for v in d.vcpus.iter().filter(|v| v.initialised) {
            add(v.cr3, 1, 1);
            if let Some(u) = v.user_cr3 {
                add(u, 1, 1);
            }
            for f in &v.gdt_frames {
                add(*f, 1, 1);
            }
        }
        // A registered vcpu_info holds its frame typed writable.
        for (m, _) in d.vcpus.iter().filter_map(|v| v.vcpu_info) {
            add(m, 1, 1);
        }
    }
    for (mfn, pg) in xen.frames.iter() {
        if pg.allocated {
            add(mfn, 1, 0);
        }
        if pg.pinned {
            add(mfn, 1, 1);
        }
        let Some(level) = level_of(pg.ty).filter(|_| pg.type_count > 0) else { continue };
        let Owner::Dom(owner) = pg.owner else { return Err(alloc::format!("table {mfn:?} not owned by a domain")) };
        for i in 0..512usize {
            if level == 4 && (256..272).contains(&i) {
                continue;
            }
            let e = xen.platform.read_u64(mfn, i);
            if e & _PAGE_PRESENT == 0 {
                continue;
            }
            let t = Mfn(entry_mfn(e));
            let privileged = xen.domains.get(&owner).is_some_and(|d| d.privileged);
            let Some(tp) = xen.frames.get(t) else {
                // Non-RAM: only Dom0's leaves, never the hypervisor's APICs.
                if level == 1 && privileged && t.0 < 1 << 28 && !crate::mm::types::hypervisor_iomem(t) {
                    continue;
                }
                return Err(alloc::format!("L{level} {mfn:?}[{i}] names no frame"));
            };
            if tp.owner == Owner::Io {
                if level != 1 || !privileged || e & (_PAGE_PCD | _PAGE_PWT) != _PAGE_PCD | _PAGE_PWT {
                    return Err(alloc::format!("L{level} {mfn:?}[{i}] maps I/O memory {t:?} wrongly"));
                }
                continue;
            }
            // Invariant 3: only own frames (Dom0 may hold foreign mappings).
            let granted = level == 1 && e & crate::gnttab::PTE_GRANT_MAPPING != 0;
            if tp.owner != Owner::Dom(owner) && !((privileged || granted) && level == 1 && matches!(tp.owner, Owner::Dom(_))) {
                return Err(alloc::format!("L{level} {mfn:?}[{i}] maps {t:?} owned by {:?}", tp.owner));
            }
            let needed = match level {
                1 if e & _PAGE_RW != 0 => Some(PageType::Writable),
                1 => None,
                l => Some(PageType::table_level(l - 1)),
            };
            if level > 1 && e & _PAGE_PSE != 0 {
                return Err(alloc::format!("superpage in L{level} {mfn:?}[{i}]"));
            }
            if let Some(ty) = needed {
                // Invariant 2 (and its upper-level form): the target has the
                // one type this entry requires.
                if tp.ty != ty {
                    return Err(alloc::format!("L{level} {mfn:?}[{i}] needs {ty:?}, target {t:?} is {:?}", tp.ty));
                }
                add(t, 1, 1);
            } else {
                add(t, 1, 0);
            }
        }
    }
    for (mfn, pg) in xen.frames.iter() {
        let e = want.get(&mfn.0).copied().unwrap_or_default();
        if pg.count != e.count || pg.type_count != e.type_count {
            return Err(alloc::format!(
                "{mfn:?} ({:?}, {:?}): count {} type_count {}, expected {} and {}",
                pg.owner,
                pg.ty,
                pg.count,
                pg.type_count,
                e.count,
                e.type_count
            ));
        }
        if pg.owner == Owner::Free && (pg.count != 0 || pg.allocated) {
            return Err(alloc::format!("free frame {mfn:?} still referenced"));
        }
    }
    Ok(())
}

/// Drop every pin and CR3 reference of `dom` (what destroying it does to
/// its tables) and give back its memory.
pub fn teardown(xen: &mut Xen<HostPlatform>, dom: DomId) {
    let slots = xen.platform.hypervisor_slots;
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
    for (m, _) in d.vcpus.iter().filter_map(|v| v.vcpu_info) {
        mm.put_page_and_type(m);
    }
    let pinned: alloc::vec::Vec<Mfn> = mm.ft.iter().filter(|(_, pg)| pg.pinned && pg.owner == Owner::Dom(dom)).map(|(m, _)| m).collect();
    for m in pinned {
        mm.unpin(m, dom).expect("unpin");
    }
    let owned: alloc::vec::Vec<Mfn> = mm.ft.owned_by(dom).collect();
    for m in owned {
        mm.ft.release(m);
    }
}
