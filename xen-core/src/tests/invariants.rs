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
        // Invariant 6: every frame the hypervisor writes for the domain is
        // one it shares for good.
        let written = core::iter::once(d.shared_info).chain(d.gnttab.frames.iter().copied());
        for f in written {
            if !xen.frames.get(f.mfn()).is_some_and(|pg| pg.shared && pg.owner == Owner::Dom(d.id)) {
                return Err(alloc::format!("d{}: hypervisor-written frame {:?} is not a shared writable frame", d.id.0, f.mfn()));
            }
        }
        for v in d.vcpus.iter().filter(|v| v.initialised) {
            add(v.cr3, 1, 1);
            if let Some(u) = v.user_cr3 {
                add(u, 1, 1);
            }
            for f in &v.gdt_frames {
                add(*f, 1, 1);
            }
        }
    }
    for (mfn, pg) in xen.frames.iter() {
        if pg.allocated {
            add(mfn, 1, 0);
        }
        if pg.pinned {
            add(mfn, 1, 1);
        }
        if pg.shared {
            // Invariant 6: a frame the hypervisor writes for its owner holds
            // a permanent writable type reference, so it is never a table
            // or descriptor page.
            if pg.ty != PageType::Writable || !pg.allocated || !matches!(pg.owner, Owner::Dom(_)) {
                return Err(alloc::format!("shared frame {mfn:?} is {:?} ({:?}), not a writable page of its domain", pg.ty, pg.owner));
            }
            add(mfn, 0, 1);
        }
        if pg.partial {
            // The type reference left for whoever resumes the validation.
            add(mfn, 0, 1);
        }
        let Some(level) = level_of(pg.ty).filter(|_| pg.type_count > 0) else { continue };
        let Owner::Dom(owner) = pg.owner else { return Err(alloc::format!("table {mfn:?} not owned by a domain")) };
        // A table whose validation was preempted holds references for its
        // first entries only.
        let validated = if pg.partial { pg.nr_validated as usize } else { 512 };
        for i in 0..validated {
            if level == 4 && (256..272).contains(&i) {
                continue;
            }
            let e = xen.platform.read_u64(mfn, i);
            if e & _PAGE_PRESENT == 0 {
                continue;
            }
            let t = Mfn(entry_mfn(e));
            let Some(tp) = xen.frames.get(t) else { return Err(alloc::format!("L{level} {mfn:?}[{i}] names no frame")) };
            let privileged = xen.domains.get(&owner).is_some_and(|d| d.privileged);
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
    // Entries of former tables whose references are still to be dropped.
    for q in xen.frames.deferred.values() {
        for &(e, level) in q {
            let t = Mfn(entry_mfn(e));
            let io = xen.frames.get(t).is_some_and(|pg| pg.owner == Owner::Io);
            if level == 1 && io {
                continue;
            }
            let typed = level > 1 || e & _PAGE_RW != 0;
            let e = want.entry(t.0).or_default();
            e.count += 1;
            e.type_count += typed as u32;
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
    check_isolation(xen)
}

/// Invariants 2, 3 and 6 seen the way the CPU sees them, without trusting
/// the frame table's types: walk every domain's address spaces from each
/// vCPU's roots, as the MMU would, and collect which frames are used as
/// page tables and which are reachable writable. No frame may be both; no
/// writable leaf may reach a descriptor frame, a frame the hypervisor owns
/// or no one owns, or another domain's frame (except through a grant, or
/// Dom0's foreign mappings); every L4 carries exactly the hypervisor's
/// slots; global leaves (`_PAGE_GLOBAL`) only in L1s and only to frames the
/// domain may map at all.
fn check_isolation(xen: &Xen<HostPlatform>) -> Result<(), String> {
    use alloc::collections::BTreeSet;
    let hv = xen.platform.hypervisor_slots;
    let mut tables: BTreeSet<u64> = BTreeSet::new();
    let mut writable: BTreeMap<u64, (DomId, u64)> = BTreeMap::new();
    for d in xen.domains.values() {
        let mut seen: BTreeSet<(u64, u8, bool)> = BTreeSet::new();
        let mut stack: alloc::vec::Vec<(Mfn, u8, bool)> = alloc::vec::Vec::new();
        for v in d.vcpus.iter().filter(|v| v.initialised) {
            stack.push((v.cr3, 4, true));
            if let Some(u) = v.user_cr3 {
                stack.push((u, 4, true));
            }
        }
        while let Some((t, level, rw_above)) = stack.pop() {
            if !seen.insert((t.0, level, rw_above)) {
                continue;
            }
            tables.insert(t.0);
            for i in 0..512usize {
                let e = xen.platform.read_u64(t, i);
                if level == 4 && (256..272).contains(&i) {
                    if e != hv[i - 256] {
                        return Err(alloc::format!("d{} L4 {t:?} slot {i} is {e:#x}, not the hypervisor's", d.id.0));
                    }
                    continue;
                }
                if e & _PAGE_PRESENT == 0 {
                    continue;
                }
                let target = Mfn(entry_mfn(e));
                let rw = rw_above && e & _PAGE_RW != 0;
                if level > 1 {
                    if e & (_PAGE_PSE | _PAGE_GLOBAL) != 0 {
                        return Err(alloc::format!("d{} L{level} {t:?}[{i}] = {e:#x}: superpage or global", d.id.0));
                    }
                    stack.push((target, level - 1, rw));
                    continue;
                }
                let Some(pg) = xen.frames.get(target) else {
                    return Err(alloc::format!("d{} maps {target:?}, beyond memory", d.id.0));
                };
                let granted = e & crate::gnttab::PTE_GRANT_MAPPING != 0;
                let may_map = match pg.owner {
                    Owner::Dom(o) => o == d.id || granted || d.privileged,
                    Owner::Dead => granted || d.privileged,
                    Owner::Io => d.privileged,
                    Owner::None | Owner::Free | Owner::Xen => false,
                };
                if !may_map {
                    return Err(alloc::format!("d{} L1 {t:?}[{i}] maps {target:?} owned by {:?}", d.id.0, pg.owner));
                }
                if rw && pg.owner != Owner::Io {
                    if pg.ty != PageType::Writable {
                        return Err(alloc::format!("d{} has a writable mapping of {target:?}, a {:?} frame", d.id.0, pg.ty));
                    }
                    writable.insert(target.0, (d.id, t.0 << 12 | (i as u64) << 3));
                }
            }
        }
        for v in &d.vcpus {
            for f in &v.gdt_frames {
                if let Some((who, at)) = writable.get(&f.0) {
                    return Err(alloc::format!("GDT frame {f:?} of d{} is writable by d{} (entry at {at:#x})", d.id.0, who.0));
                }
            }
        }
    }
    for t in &tables {
        if let Some((who, at)) = writable.get(t) {
            return Err(alloc::format!("page table {t:#x} is writable by d{} (entry at {at:#x})", who.0));
        }
        if xen.frames.get(Mfn(*t)).is_some_and(|pg| pg.shared) {
            return Err(alloc::format!("shared frame {t:#x} is walked as a page table"));
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
