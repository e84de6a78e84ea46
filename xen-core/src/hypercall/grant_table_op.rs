//! `grant_table_op`: version-1 grant tables (see `gnttab.rs`).

use super::{ret, Done, HcResult};
use crate::domain::DomId;
use crate::gnttab::*;
use crate::mm::{Mfn, Owner, PageType, SharedPage};
use crate::platform::Platform;
use crate::xen::Xen;
use hypercall_abi::errno::Errno;
use hypercall_abi::grant::*;
use hypercall_abi::mm::DOMID_SELF;

/// Operations handled per entry into the hypervisor before a continuation.
const BUDGET: u64 = 256;

type Status = i16;

/// Little-endian field readers over a copied-in argument block; offsets
/// come from the `hypercall-abi` structs (`offset_of!`), never by hand.
fn u16_at(b: &[u8], o: usize) -> u16 {
    b.get(o..o + 2).and_then(|s| s.try_into().ok()).map_or(0, u16::from_le_bytes)
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    b.get(o..o + 4).and_then(|s| s.try_into().ok()).map_or(0, u32::from_le_bytes)
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    b.get(o..o + 8).and_then(|s| s.try_into().ok()).map_or(0, u64::from_le_bytes)
}

/// Where `field` of the struct at guest address `at` is.
macro_rules! field {
    ($at:expr, $ty:ty, $f:ident) => {
        $at.wrapping_add(core::mem::offset_of!($ty, $f) as u64)
    };
}

impl<P: Platform> Xen<P> {
    pub(super) fn do_grant_table_op(&mut self, [cmd, uop, count, ..]: [u64; 5]) -> HcResult {
        let count = count & 0xffff_ffff;
        let size = match cmd as u32 {
            GNTTABOP_map_grant_ref => 32,
            GNTTABOP_unmap_grant_ref => 24,
            GNTTABOP_copy => 40,
            GNTTABOP_setup_table
            | GNTTABOP_query_size
            | GNTTABOP_set_version
            | GNTTABOP_get_version
            | GNTTABOP_get_status_frames
            | GNTTABOP_dump_table => {
                if count != 1 {
                    return Err(Errno::EINVAL);
                }
                return self.gnttab_table_op(cmd as u32, uop);
            }
            _ => return Err(Errno::ENOSYS),
        };
        for i in 0..count {
            if i == BUDGET {
                return Ok(Done::Continue([cmd, uop.wrapping_add(size * i), count - i, 0, 0]));
            }
            let at = uop.wrapping_add(size * i);
            let mut op = [0u8; 40];
            self.guest_mem().ok_or(Errno::ESRCH)?.copy_from_guest(at, &mut op[..size as usize])?;
            match cmd as u32 {
                GNTTABOP_map_grant_ref => {
                    let (status, handle, bus) = match self.gnttab_map(&op) {
                        Ok((h, frame)) => (GNTST_okay, h, frame.maddr()),
                        Err(s) => (s, 0, 0),
                    };
                    let g = self.guest_mem().ok_or(Errno::ESRCH)?;
                    g.copy_to_guest(field!(at, GnttabMapGrantRef, status), &status.to_le_bytes())?;
                    g.write_u32(field!(at, GnttabMapGrantRef, handle), handle)?;
                    g.write_u64(field!(at, GnttabMapGrantRef, dev_bus_addr), bus)?;
                }
                GNTTABOP_unmap_grant_ref => {
                    let status = self.gnttab_unmap(&op).err().unwrap_or(GNTST_okay);
                    self.guest_mem().ok_or(Errno::ESRCH)?.copy_to_guest(field!(at, GnttabUnmapGrantRef, status), &status.to_le_bytes())?;
                }
                _ => {
                    let status = self.gnttab_copy(&op).err().unwrap_or(GNTST_okay);
                    self.guest_mem().ok_or(Errno::ESRCH)?.copy_to_guest(field!(at, GnttabCopy, status), &status.to_le_bytes())?;
                }
            }
        }
        ret(0)
    }

    fn gnttab_table_op(&mut self, cmd: u32, uop: u64) -> HcResult {
        let g = self.guest_mem().ok_or(Errno::ESRCH)?;
        match cmd {
            GNTTABOP_setup_table => {
                let mut op = [0u8; 24];
                g.copy_from_guest(uop, &mut op)?;
                let dom = u16_at(&op, core::mem::offset_of!(GnttabSetupTable, dom));
                let nr = u32_at(&op, core::mem::offset_of!(GnttabSetupTable, nr_frames));
                let list = u64_at(&op, core::mem::offset_of!(GnttabSetupTable, frame_list));
                let status = match self.target_domain(dom) {
                    Err(Errno::ESRCH) => GNTST_bad_domain,
                    Err(_) => GNTST_permission_denied,
                    Ok(_) if nr > MAX_GRANT_FRAMES => GNTST_general_error,
                    Ok(d) => self.gnttab_grow(d, nr, list).err().unwrap_or(GNTST_okay),
                };
                self.guest_mem().ok_or(Errno::ESRCH)?.copy_to_guest(field!(uop, GnttabSetupTable, status), &status.to_le_bytes())?;
                ret(0)
            }
            GNTTABOP_query_size => {
                let dom = g.copy_u16(uop)?;
                let (nr, status) = match self.target_domain(dom) {
                    Ok(d) => (self.domains[&d].gnttab.frames.len() as u32, GNTST_okay),
                    Err(Errno::ESRCH) => (0, GNTST_bad_domain),
                    Err(_) => (0, GNTST_permission_denied),
                };
                g.write_u32(field!(uop, GnttabQuerySize, nr_frames), nr)?;
                g.write_u32(field!(uop, GnttabQuerySize, max_nr_frames), MAX_GRANT_FRAMES)?;
                g.copy_to_guest(field!(uop, GnttabQuerySize, status), &status.to_le_bytes())?;
                ret(0)
            }
            GNTTABOP_set_version => {
                // Only version 1 exists here (as on a Xen booted with
                // gnttab=max-ver:1); asking for it is fine, anything else not.
                let v = g.read_u32(uop)?;
                if v != 1 {
                    return Err(Errno::EINVAL);
                }
                ret(0)
            }
            GNTTABOP_get_status_frames => {
                let mut op = [0u8; 16];
                g.copy_from_guest(uop, &mut op)?;
                let nr = u32_at(&op, core::mem::offset_of!(GnttabGetStatusFrames, nr_frames));
                let dom = u16_at(&op, core::mem::offset_of!(GnttabGetStatusFrames, dom));
                let list = u64_at(&op, core::mem::offset_of!(GnttabGetStatusFrames, frame_list));
                if !crate::mm::pte::guest_range_ok(list, u64::from(nr) * 8) {
                    return Err(Errno::EFAULT);
                }
                // Version 1 has no status frames: asking for any is Xen's
                // "requested more than it has" general error.
                let status = match self.target_domain(dom) {
                    Err(Errno::ESRCH) => GNTST_bad_domain,
                    Err(_) => GNTST_permission_denied,
                    Ok(_) if nr > 0 => GNTST_general_error,
                    Ok(_) => GNTST_okay,
                };
                g.copy_to_guest(field!(uop, GnttabGetStatusFrames, status), &status.to_le_bytes())?;
                ret(0)
            }
            GNTTABOP_dump_table => {
                let dom = g.copy_u16(field!(uop, GnttabDumpTable, dom))?;
                let status = match self.target_domain(dom) {
                    Err(Errno::ESRCH) => GNTST_bad_domain,
                    Err(_) => GNTST_permission_denied,
                    Ok(d) => {
                        let gt = &self.domains[&d].gnttab;
                        crate::gdprintk!("d{} grant table: version 1, {} frames", d.0, gt.frames.len());
                        GNTST_okay
                    }
                };
                let g = self.guest_mem().ok_or(Errno::ESRCH)?;
                g.copy_to_guest(field!(uop, GnttabDumpTable, status), &status.to_le_bytes())?;
                ret(0)
            }
            _ => {
                g.write_u32(field!(uop, GnttabGetVersion, version), 1)?;
                ret(0)
            }
        }
    }

    /// Grow `d`'s table to `nr` frames and report all their frame numbers.
    fn gnttab_grow(&mut self, d: DomId, nr: u32, list: u64) -> Result<(), Status> {
        while (self.domains[&d].gnttab.frames.len() as u32) < nr {
            // The hypervisor writes GTF_reading/GTF_writing into these:
            // shared frames, typed writable for good (never a page table).
            let mfn = self.frames.alloc_shared(&self.platform, d).ok_or(GNTST_no_space)?;
            self.domains.get_mut(&d).ok_or(GNTST_bad_domain)?.gnttab.frames.push(mfn);
        }
        let g = self.guest_mem().ok_or(GNTST_general_error)?;
        for (i, f) in self.domains[&d].gnttab.frames.iter().take(nr as usize).enumerate() {
            g.write_u64(list.wrapping_add(8 * i as u64), f.mfn().0).map_err(|_| GNTST_bad_virt_addr)?;
        }
        Ok(())
    }

    /// Check `granter`'s entry `gref` for use by the current domain.
    /// Returns the entry's location and frame.
    fn grant_entry(&self, granter: DomId, gref: u32, write: bool) -> Result<(SharedPage, usize, Mfn), Status> {
        let me = self.current_id().map_err(|_| GNTST_general_error)?;
        let rd = self.domains.get(&granter).ok_or(GNTST_bad_domain)?;
        if gref >= rd.gnttab.nr_entries() {
            return Err(GNTST_bad_gntref);
        }
        let (f, off) = rd.gnttab.entry_location(gref).ok_or(GNTST_bad_gntref)?;
        let mut e = [0u8; 8];
        f.read(&self.platform, off, &mut e);
        let flags = u16_at(&e, core::mem::offset_of!(GrantEntryV1, flags));
        let domid = u16_at(&e, core::mem::offset_of!(GrantEntryV1, domid));
        let frame = u32_at(&e, core::mem::offset_of!(GrantEntryV1, frame)) as u64;
        // Xen answers all three (not a grant, not for us, read-only) with
        // GNTST_general_error; permission_denied is left to XSM policies.
        if flags & GTF_type_mask != GTF_permit_access || domid != me.0 || (write && flags & GTF_readonly != 0) {
            return Err(GNTST_general_error);
        }
        Ok((f, off, Mfn(frame)))
    }

    /// Keep the granter's `GTF_reading`/`GTF_writing` in step with its
    /// entry's active uses.
    fn grant_set_in_use(&mut self, granter: DomId, gref: u32, frame: Mfn, write: bool, delta: i32) {
        let Some(rd) = self.domains.get_mut(&granter) else { return };
        let a = rd.gnttab.active.entry(gref).or_insert(Active { frame: frame.0, ..Active::default() });
        let c = if write { &mut a.writers } else { &mut a.readers };
        *c = c.saturating_add_signed(delta);
        let (r, w) = (a.readers > 0 || a.writers > 0, a.writers > 0);
        if !r {
            rd.gnttab.active.remove(&gref);
        }
        if let Some((f, off)) = rd.gnttab.entry_location(gref) {
            // `flags` is the entry's first field (GrantEntryV1).
            let off = off + core::mem::offset_of!(GrantEntryV1, flags);
            let mut fl = [0u8; 2];
            f.read(&self.platform, off, &mut fl);
            let mut flags = u16::from_le_bytes(fl) & !(GTF_reading | GTF_writing);
            if r {
                flags |= GTF_reading;
            }
            if w {
                flags |= GTF_writing;
            }
            f.write(&self.platform, off, &flags.to_le_bytes());
        }
    }

    fn gnttab_map(&mut self, op: &[u8; 40]) -> Result<(u32, Mfn), Status> {
        let me = self.current_id().map_err(|_| GNTST_general_error)?;
        use core::mem::offset_of;
        let host_addr = u64_at(op, offset_of!(GnttabMapGrantRef, host_addr));
        let flags = u32_at(op, offset_of!(GnttabMapGrantRef, flags));
        let gref = u32_at(op, offset_of!(GnttabMapGrantRef, r#ref));
        let granter = match u16_at(op, offset_of!(GnttabMapGrantRef, dom)) {
            DOMID_SELF => me,
            d => DomId(d),
        };
        // Only host mappings by virtual address: there is no IOMMU to map
        // into, and GNTMAP_contains_pte is not offered.
        if flags & GNTMAP_host_map == 0 || flags & GNTMAP_contains_pte != 0 {
            return Err(GNTST_general_error);
        }
        let readonly = flags & GNTMAP_readonly != 0;
        let (_, _, frame) = self.grant_entry(granter, gref, !readonly)?;
        // A handle first, as Xen's map_grant_ref: nothing is mapped when
        // none is left.
        if !self.domains.get_mut(&me).is_some_and(|d| d.gnttab.handle_available()) {
            crate::gdprintk!("d{}: failed to obtain maptrack handle", me.0);
            return Err(GNTST_no_device_space);
        }
        let (l1, index) = self.l1_slot_of(host_addr & !0xfff).map_err(|_| GNTST_general_error)?;
        self.mm().install_grant_pte(l1, index, me, frame, granter, readonly).map_err(|_| GNTST_general_error)?;
        self.platform.invlpg(host_addr);
        self.grant_set_in_use(granter, gref, frame, !readonly, 1);
        let t = MapTrack { granter, gref, frame, host_addr: host_addr & !0xfff, readonly, l1, index };
        let handle = self.domains.get_mut(&me).ok_or(GNTST_general_error)?.gnttab.new_handle(t);
        Ok((handle, frame))
    }

    fn gnttab_unmap(&mut self, op: &[u8; 40]) -> Result<(), Status> {
        let me = self.current_id().map_err(|_| GNTST_general_error)?;
        use core::mem::offset_of;
        let host_addr = u64_at(op, offset_of!(GnttabUnmapGrantRef, host_addr));
        let handle = u32_at(op, offset_of!(GnttabUnmapGrantRef, handle));
        let t = self.domains[&me].gnttab.maptrack.get(handle as usize).copied().flatten().ok_or(GNTST_bad_handle)?;
        if host_addr != 0 && host_addr & !0xfff != t.host_addr {
            return Err(GNTST_general_error);
        }
        self.release_mapping(me, handle, t);
        Ok(())
    }

    /// Remove one grant mapping and its references. If the guest already
    /// tore the PTE down (its table was dropped), the references went with
    /// it and only the bookkeeping remains; `mm` touches the recorded
    /// (L1, index) only if it still is `me`'s L1 holding this mapping (the
    /// frame may be someone else's page table by now).
    pub(crate) fn release_mapping(&mut self, me: DomId, handle: u32, t: MapTrack) {
        if self.mm().remove_grant_pte(t.l1, t.index, me, t.frame, t.readonly) {
            self.platform.invlpg(t.host_addr);
        }
        self.grant_set_in_use(t.granter, t.gref, t.frame, !t.readonly, -1);
        if let Some(d) = self.domains.get_mut(&me) {
            d.gnttab.free_handle(handle);
        }
    }

    /// `d` is being destroyed: other domains' mappings of its grants stay
    /// (their PTEs keep the frames alive, ownerless), but no longer name
    /// `d`, so unmapping them later cannot touch the grant entries of a
    /// new domain given the same id. Xen gets the same by keeping a dying
    /// domain, id and all, until its last page reference is gone.
    pub(crate) fn forget_granter(&mut self, d: DomId) {
        let gone = DomId(hypercall_abi::mm::DOMID_INVALID);
        for t in self.domains.values_mut().flat_map(|o| o.gnttab.maptrack.iter_mut().flatten()) {
            if t.granter == d {
                t.granter = gone;
            }
        }
    }

    fn gnttab_copy(&mut self, op: &[u8; 40]) -> Result<(), Status> {
        let me = self.current_id().map_err(|_| GNTST_general_error)?;
        use core::mem::offset_of;
        let len = u16_at(op, offset_of!(GnttabCopy, len)) as usize;
        let flags = u16_at(op, offset_of!(GnttabCopy, flags));
        let side = |base: usize, is_gref: bool, write: bool| -> Result<(Mfn, usize), Status> {
            let u = u64_at(op, base + offset_of!(GnttabCopyPtr, u));
            let raw_dom = u16_at(op, base + offset_of!(GnttabCopyPtr, domid));
            // As Xen: a plain frame number only with DOMID_SELF.
            if !is_gref && raw_dom != DOMID_SELF {
                return Err(GNTST_permission_denied);
            }
            let dom = match raw_dom {
                DOMID_SELF => me,
                d => DomId(d),
            };
            let offset = u16_at(op, base + offset_of!(GnttabCopyPtr, offset)) as usize;
            if offset + len > 4096 {
                return Err(GNTST_bad_copy_arg);
            }
            let frame = if is_gref { self.grant_entry(dom, u as u32, write)?.2 } else { Mfn(u) };
            let ok = self.frames.get(frame).is_some_and(|pg| pg.owner == Owner::Dom(dom));
            if !ok {
                return Err(GNTST_bad_page);
            }
            Ok((frame, offset))
        };
        let (src, soff) = side(offset_of!(GnttabCopy, source), flags & GNTCOPY_source_gref != 0, false)?;
        let (dst, doff) = side(offset_of!(GnttabCopy, dest), flags & GNTCOPY_dest_gref != 0, true)?;
        let mut mm = self.mm();
        // The destination must be writable memory, never a page table.
        mm.get_page_type(dst, PageType::Writable).map_err(|_| GNTST_general_error)?;
        mm.mem.copy(dst, doff, src, soff, len);
        mm.put_page_type(dst);
        Ok(())
    }
}
