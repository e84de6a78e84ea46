//! `set_gdt` and `update_descriptor`: the guest's own GDT.
//!
//! The guest gives frames of its memory; each becomes a descriptor page (a
//! frame type of its own, so it can no longer be mapped writable) once
//! every descriptor in it passed `descriptor::check_descriptor`. The
//! hypervisor copies them into the real GDT, below its reserved entries.

use alloc::vec::Vec;

use super::{ret, HcResult};
use crate::descriptor::{self, SegKind, MAX_GUEST_GDT_FRAMES};
use crate::domain::DomId;
use crate::mm::{Mfn, Owner, PageType};
use crate::platform::Platform;
use crate::xen::Xen;
use hypercall_abi::errno::Errno;

impl<P: Platform> Xen<P> {
    /// Whether the CPU could load `sel` as `kind` in vCPU `v` of `d`.
    pub(crate) fn selector_ok_for(&self, d: DomId, v: usize, sel: u16, kind: SegKind) -> bool {
        let Some(vc) = self.domains.get(&d).and_then(|d| d.vcpus.get(v)) else { return false };
        let lookup = |i: usize| -> Option<u64> {
            if i >= vc.gdt_ents as usize {
                return None;
            }
            let frame = *vc.gdt_frames.get(i / 512)?;
            Some(self.platform.read_u64(frame, i % 512))
        };
        descriptor::selector_ok(sel, kind, &lookup)
    }

    /// The descriptors of a vCPU's GDT, as the hardware GDT should hold them.
    pub(crate) fn gdt_entries(&self, d: DomId, v: usize) -> Vec<u64> {
        let Some(vc) = self.domains.get(&d).and_then(|d| d.vcpus.get(v)) else { return Vec::new() };
        (0..vc.gdt_ents as usize).map(|i| self.platform.read_u64(vc.gdt_frames[i / 512], i % 512)).collect()
    }

    /// Install `frames` (machine frame numbers) as vCPU `v`'s GDT of `ents`
    /// entries, releasing the old one.
    pub(crate) fn set_gdt(&mut self, d: DomId, v: usize, frames: &[u64], ents: u64) -> Result<(), Errno> {
        let nr = (ents as usize).div_ceil(512);
        if ents > (MAX_GUEST_GDT_FRAMES * 512) as u64 || frames.len() < nr {
            return Err(Errno::EINVAL);
        }
        let mut taken = Vec::new();
        for &f in &frames[..nr] {
            if let Err(e) = self.mm().get_page_and_type(Mfn(f), d, PageType::SegDesc) {
                for m in taken {
                    self.mm().put_page_and_type(m);
                }
                return Err(e);
            }
            taken.push(Mfn(f));
        }
        let vc = self.domains.get_mut(&d).and_then(|d| d.vcpus.get_mut(v)).ok_or(Errno::ESRCH)?;
        let old = core::mem::replace(&mut vc.gdt_frames, taken);
        vc.gdt_ents = ents as u32;
        for m in old {
            self.mm().put_page_and_type(m);
        }
        if self.current == Some((d, v)) {
            let entries = self.gdt_entries(d, v);
            self.platform.load_guest_gdt(&entries);
        }
        Ok(())
    }

    /// `set_gdt(frame_list, entries)`.
    pub(super) fn do_set_gdt(&mut self, [list, ents, ..]: [u64; 5]) -> HcResult {
        let (d, v) = self.current.ok_or(Errno::ESRCH)?;
        if ents > (MAX_GUEST_GDT_FRAMES * 512) as u64 {
            return Err(Errno::EINVAL);
        }
        let nr = (ents as usize).div_ceil(512);
        let g = self.guest_mem().ok_or(Errno::ESRCH)?;
        let mut frames = Vec::with_capacity(nr);
        for i in 0..nr as u64 {
            frames.push(g.read_u64(list.wrapping_add(8 * i))?);
        }
        self.set_gdt(d, v, &frames, ents)?;
        ret(0)
    }

    /// `update_descriptor(ma, desc)`: one descriptor, by machine address, in
    /// a descriptor page or in a page the guest could write anyway.
    pub(super) fn do_update_descriptor(&mut self, [ma, desc, ..]: [u64; 5]) -> HcResult {
        let d = self.current_id()?;
        if ma & 7 != 0 {
            return Err(Errno::EINVAL);
        }
        let desc = descriptor::check_descriptor(desc).ok_or(Errno::EINVAL)?;
        let (mfn, index) = (Mfn(ma >> 12), ((ma & 0xfff) / 8) as usize);
        let pg = *self.frames.get(mfn).ok_or(Errno::EINVAL)?;
        if pg.owner != Owner::Dom(d) {
            return Err(Errno::EINVAL);
        }
        if pg.ty == PageType::SegDesc && pg.type_count > 0 {
            // A validated descriptor page: its type (held while counted)
            // says no one maps it writable, and `desc` passed
            // check_descriptor, so the page stays valid.
            self.platform.write_u64(mfn, index, desc);
        } else {
            let mut mm = self.mm();
            mm.get_page_type(mfn, PageType::Writable)?;
            mm.mem.write_u64(mfn, index, desc);
            mm.put_page_type(mfn);
        }
        // The running vCPU's GDT may have just changed.
        if let Some((cd, cv)) = self.current {
            if self.domains[&cd].vcpus[cv].gdt_frames.contains(&mfn) {
                let entries = self.gdt_entries(cd, cv);
                self.platform.load_guest_gdt(&entries);
            }
        }
        ret(0)
    }
}
