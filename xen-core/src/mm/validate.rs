//! Page-table validation: Xen's type system for PV page tables
//! (`xen/arch/x86/mm.c`: `get_page_from_lNe`, `mod_lN_entry`,
//! `promote_lN_table`, `_get_page_type`).
//!
//! A frame becomes an Ln table only by having every entry validated: each
//! present entry takes a general reference on the frame it names and, for a
//! writable leaf, a `Writable` type reference, for an upper level the next
//! level's type. Because a frame has one type at a time, a page-table frame
//! can never also be writable (invariant 2 of docs/architecture.md), and because references
//! are only taken on frames of the right owner, a guest reaches nothing but
//! its own memory (invariant 3). When the last type reference of a table
//! goes, every reference its entries held is dropped again (invariant 4).
//!
//! Decisions, each refusing rather than supporting something risky:
//! - **Superpages** (PSE in an L2 or L3 entry) are refused with `-EINVAL`:
//!   a 2 MiB or 1 GiB mapping would need a type for every frame it covers,
//!   and one covering a page-table frame writable is the classic hole. Xen
//!   4.17 refuses them for PV guests too.
//! - **Linear page tables** (an entry pointing back at a table of its own
//!   level or above, e.g. an L4 mapping itself) are refused: the entry asks
//!   for the next level's type, which the frame cannot have while it is a
//!   table of another level, so validation fails (`-EINVAL`). Xen permits a
//!   read-only variant under extra rules (XSA-240: a linear entry must hold
//!   a type reference, and domain destruction must break the cycles it
//!   makes); we keep none of that, so this is a deliberate difference.
//! - The hypervisor's L4 slots (256-271) are written by the hypervisor when
//!   an L4 is validated and can never be changed by the guest.

use super::frame_table::{FrameTable, Owner, PageType};
use super::machine::MachineMemory;
use super::pte::*;
use super::types::Mfn;
use crate::domain::DomId;
use hypercall_abi::errno::Errno;

const AVAIL: u64 = 7 << 9;
/// Bits a guest may set in an L1 entry (PAT at bit 7 is a leaf attribute here).
const L1_ALLOWED: u64 = _PAGE_PRESENT
    | _PAGE_RW
    | _PAGE_USER
    | _PAGE_PWT
    | _PAGE_PCD
    | _PAGE_ACCESSED
    | _PAGE_DIRTY
    | _PAGE_PSE
    | _PAGE_GLOBAL
    | AVAIL
    | _PAGE_NX
    | PADDR_MASK;
/// Bits a guest may set in an L2-L4 entry: no PSE (no superpages), no G.
const UPPER_ALLOWED: u64 =
    _PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_PWT | _PAGE_PCD | _PAGE_ACCESSED | _PAGE_DIRTY | AVAIL | _PAGE_NX | PADDR_MASK;

pub fn level_of(ty: PageType) -> Option<u8> {
    match ty {
        PageType::L1 => Some(1),
        PageType::L2 => Some(2),
        PageType::L3 => Some(3),
        PageType::L4 => Some(4),
        _ => None,
    }
}

fn is_hypervisor_slot(level: u8, index: usize) -> bool {
    level == 4 && (FIRST_HYPERVISOR_SLOT..FIRST_HYPERVISOR_SLOT + NR_HYPERVISOR_SLOTS).contains(&index)
}

/// Page-table operations on machine memory and the frame table.
pub struct Mm<'a, M: MachineMemory> {
    pub mem: &'a M,
    pub ft: &'a mut FrameTable,
    /// The hypervisor's PML4 entries, written into every validated L4.
    pub hv_slots: [u64; 16],
    /// The domain allowed to map legacy I/O memory (Dom0), if any.
    pub io_domain: Option<DomId>,
    /// Frames from here up are beyond the machine's physical address width:
    /// not even Dom0's I/O memory (Xen's iomem caps end there).
    pub iomem_end: Mfn,
}

impl<'a, M: MachineMemory> Mm<'a, M> {
    pub fn new(mem: &'a M, ft: &'a mut FrameTable, hv_slots: [u64; 16]) -> Self {
        Mm { mem, ft, hv_slots, io_domain: None, iomem_end: Mfn(0) }
    }

    fn owner(&self, mfn: Mfn) -> Option<DomId> {
        match self.ft.get(mfn)?.owner {
            Owner::Dom(d) => Some(d),
            _ => None,
        }
    }

    /// A general reference plus a type reference (validating tables).
    pub fn get_page_and_type(&mut self, mfn: Mfn, dom: DomId, ty: PageType) -> Result<(), Errno> {
        self.ft.get_page(mfn, dom)?;
        if let Err(e) = self.get_page_type(mfn, ty) {
            self.ft.put_page(mfn);
            return Err(e);
        }
        Ok(())
    }

    pub fn put_page_and_type(&mut self, mfn: Mfn) {
        self.put_page_type(mfn);
        self.ft.put_page(mfn);
    }

    /// Xen's `get_page_type`: the first reference of a table type validates
    /// it. A table whose validation was preempted (`partial`) is resumed by
    /// whoever asks for its type next, who takes over the reference left
    /// for it. `-ERESTART` means the budget ran out first: the frame keeps
    /// its progress and the caller continues its hypercall (XSA-45).
    pub fn get_page_type(&mut self, mfn: Mfn, ty: PageType) -> Result<(), Errno> {
        let pg = self.ft.get(mfn).ok_or(Errno::EINVAL)?;
        let was_partial = pg.partial;
        let first = if pg.partial {
            if pg.ty != ty {
                return Err(Errno::EINVAL);
            }
            true
        } else {
            self.ft.get_page_type(mfn, ty)?
        };
        if first {
            let checked = match ty {
                PageType::SegDesc => self.validate_descriptors(mfn),
                _ => level_of(ty).map_or(Ok(()), |level| self.promote(mfn, level)),
            };
            // The partial state holds a general reference of its own, as
            // Xen's PGT_partial does: a guest that gives the frame back
            // between two steps must not free a frame whose validated
            // entries still hold references.
            match checked {
                Ok(()) => {
                    self.set_partial(mfn, false);
                    if was_partial {
                        self.ft.put_page(mfn);
                    }
                }
                Err(Errno::ERESTART) => {
                    // Progress kept, one type reference left for the resumer.
                    if !was_partial {
                        self.ft.get_page_light(mfn);
                    }
                    self.set_partial(mfn, true);
                    return Err(Errno::ERESTART);
                }
                Err(e) => {
                    self.ft.abandon_type(mfn);
                    if was_partial {
                        self.ft.put_page(mfn);
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn set_partial(&mut self, mfn: Mfn, partial: bool) {
        if let Some(pg) = self.ft.frames_mut(mfn) {
            pg.partial = partial;
            if !partial {
                pg.nr_validated = 0;
            }
        }
    }

    /// The last type reference of a table drops everything its entries
    /// held. The entries are queued and dropped within the hypercall's
    /// budget (a deep tree's teardown is XSA-45's other half); what is left
    /// is dropped at the owner's next hypercall, before anything else.
    pub fn put_page_type(&mut self, mfn: Mfn) {
        let Some(ty) = self.ft.get(mfn).map(|pg| pg.ty) else { return };
        if self.ft.put_page_type(mfn) {
            if let Some(level) = level_of(ty) {
                // Tables belong to a domain; a frame already handed to
                // `Owner::Dead` queues under DOMID_XEN's key instead.
                let owner = self.owner(mfn).unwrap_or(DomId(hypercall_abi::mm::DOMID_XEN));
                self.demote(mfn, level, owner);
                self.ft.clear_type(mfn);
                let _ = self.drain_deferred(owner);
                return;
            }
            self.ft.clear_type(mfn);
        }
    }

    /// Drop queued entries of `dom`'s former tables, within the budget;
    /// `-ERESTART` if some are left.
    pub fn drain_deferred(&mut self, dom: DomId) -> Result<(), Errno> {
        if self.ft.draining {
            return Ok(());
        }
        self.ft.draining = true;
        let mut rc = Ok(());
        while let Some((e, level)) = self.ft.deferred.get_mut(&dom).and_then(|v| v.pop()) {
            if self.ft.preempt_check() {
                if let Some(v) = self.ft.deferred.get_mut(&dom) {
                    v.push((e, level));
                }
                rc = Err(Errno::ERESTART);
                break;
            }
            self.put_entry_ref(e, level);
        }
        if rc.is_ok() {
            self.ft.deferred.remove(&dom);
        }
        self.ft.draining = false;
        rc
    }

    /// Validate entries from where a preempted validation stopped
    /// (`nr_validated`), checking the budget before each one after the
    /// first, so every resumption makes progress.
    fn promote(&mut self, table: Mfn, level: u8) -> Result<(), Errno> {
        let owner = self.owner(table).ok_or(Errno::EINVAL)?;
        let start = self.ft.get(table).map_or(0, |pg| if pg.partial { pg.nr_validated as usize } else { 0 });
        self.ft.pt_gen += 1;
        if level == 4 && start == 0 {
            for (i, e) in self.hv_slots.iter().enumerate() {
                self.mem.write_u64(table, FIRST_HYPERVISOR_SLOT + i, *e);
            }
        }
        for i in start..ENTRIES as usize {
            if is_hypervisor_slot(level, i) {
                continue;
            }
            if i > start && self.ft.preempt_check() {
                self.set_nr_validated(table, i);
                return Err(Errno::ERESTART);
            }
            let raw = self.mem.read_u64(table, i);
            // Xen's adjust_guest_lNe on validation too, not only in
            // mod_entry: a kernel that builds its own tables and pins them
            // runs in ring 3, so every present entry is a user entry.
            let e = if raw & _PAGE_PRESENT != 0 { raw | _PAGE_USER } else { raw };
            let checked = self.get_entry_ref(e, level, owner);
            if let Ok(adjusted) = checked {
                if adjusted != raw {
                    self.mem.write_u64(table, i, adjusted);
                }
            }
            if checked == Err(Errno::ERESTART) {
                // The child keeps its own progress; this entry is done again
                // (from its general reference on) when we resume.
                self.set_nr_validated(table, i);
                return Err(Errno::ERESTART);
            }
            if let Err(err) = checked {
                crate::gdprintk!("d{}: L{} table {:#x} entry {} = {:#x} refused: {}", owner.0, level, table.0, i, e, err.name());
                for j in (0..i).rev() {
                    if !is_hypervisor_slot(level, j) {
                        let e = self.mem.read_u64(table, j);
                        self.put_entry_ref(e, level);
                    }
                }
                return Err(err);
            }
        }
        Ok(())
    }

    /// A frame becomes a descriptor page (GDT or LDT) only if every
    /// descriptor in it is safe; DPLs below 3 are raised to 3 in place, as
    /// Xen's `check_descriptor` does.
    fn validate_descriptors(&mut self, mfn: Mfn) -> Result<(), Errno> {
        for i in 0..512 {
            let d = self.mem.read_u64(mfn, i);
            match crate::descriptor::check_descriptor(d) {
                Some(ok) if ok != d => self.mem.write_u64(mfn, i, ok),
                Some(_) => {}
                None => return Err(Errno::EINVAL),
            }
        }
        Ok(())
    }

    fn set_nr_validated(&mut self, table: Mfn, n: usize) {
        if let Some(pg) = self.ft.frames_mut(table) {
            pg.nr_validated = n as u16;
        }
    }

    /// Queue every reference a table's entries hold, to be dropped by
    /// `drain_deferred`.
    fn demote(&mut self, table: Mfn, level: u8, owner: DomId) {
        self.ft.pt_gen += 1;
        let mut q = self.ft.deferred.remove(&owner).unwrap_or_default();
        for i in (0..ENTRIES as usize).rev() {
            if !is_hypervisor_slot(level, i) {
                let e = self.mem.read_u64(table, i);
                if e & _PAGE_PRESENT != 0 {
                    q.push((e, level));
                }
            }
        }
        self.ft.deferred.insert(owner, q);
    }

    /// Give up a validation that was preempted and never resumed (its
    /// domain is being destroyed): drop what its validated entries hold and
    /// the reference left for the resumer.
    pub fn abandon_partial(&mut self, mfn: Mfn) {
        let Some(pg) = self.ft.get(mfn).copied().filter(|pg| pg.partial) else { return };
        let Some(level) = level_of(pg.ty) else { return };
        for i in 0..pg.nr_validated as usize {
            if !is_hypervisor_slot(level, i) {
                let e = self.mem.read_u64(mfn, i);
                self.put_entry_ref(e, level);
            }
        }
        self.ft.abandon_type(mfn);
        // The general reference the partial state held.
        self.ft.put_page(mfn);
    }

    /// Check one entry of a level-`level` table and take the references it
    /// needs (Xen's `get_page_from_lNe`). `pg_owner` must own what it maps.
    /// Returns the entry as it may be written (I/O mappings are forced
    /// uncached). The error codes are Xen's: a leaf naming a frame that is
    /// not RAM is `-EPERM`; a leaf whose frame cannot be referenced or typed
    /// is `-EBUSY`; bad flags, and anything wrong with an upper-level entry,
    /// `-EINVAL`.
    pub fn get_entry_ref(&mut self, e: u64, level: u8, pg_owner: DomId) -> Result<u64, Errno> {
        if e & _PAGE_PRESENT == 0 {
            return Ok(e);
        }
        let allowed = if level == 1 { L1_ALLOWED } else { UPPER_ALLOWED };
        if e & !allowed != 0 {
            return Err(Errno::EINVAL);
        }
        let mfn = Mfn(entry_mfn(e));
        if level == 1 {
            match self.ft.get(mfn).map(|pg| pg.owner) {
                // Not RAM: Dom0 may map the machine's I/O memory (ACPI
                // tables, device registers) but not the interrupt
                // controllers and MSI window the hypervisor keeps (Xen's
                // iomem caps, dom0_setup_permissions).
                None if self.io_domain == Some(pg_owner) && mfn < self.iomem_end && !crate::mm::types::hypervisor_iomem(mfn) => {
                    return Ok(e)
                }
                None => return Err(Errno::EPERM),
                Some(Owner::Io) if self.io_domain == Some(pg_owner) => return Ok(e | _PAGE_PCD | _PAGE_PWT),
                _ => {}
            }
        }
        let fail = if level == 1 { Errno::EBUSY } else { Errno::EINVAL };
        self.ft.get_page(mfn, pg_owner).map_err(|_| fail)?;
        let ty = match level {
            1 if e & _PAGE_RW != 0 => Some(PageType::Writable),
            1 => None,
            l => Some(PageType::table_level(l - 1)),
        };
        if let Some(ty) = ty {
            if let Err(err) = self.get_page_type(mfn, ty) {
                self.ft.put_page(mfn);
                return Err(if err == Errno::ERESTART { err } else { fail });
            }
        }
        Ok(e)
    }

    pub fn put_entry_ref(&mut self, e: u64, level: u8) {
        if e & _PAGE_PRESENT == 0 {
            return;
        }
        let mfn = Mfn(entry_mfn(e));
        if level == 1 && self.ft.get(mfn).is_none_or(|pg| pg.owner == Owner::Io) {
            return;
        }
        if level > 1 || e & _PAGE_RW != 0 {
            self.put_page_type(mfn);
        }
        self.ft.put_page(mfn);
    }

    /// Write entry `index` of a validated table (Xen's `mod_lN_entry`): the new
    /// entry is checked in full (flags, owner, type) before it is written, and
    /// only then are the old entry's references dropped. There is no fast
    /// path that skips the checks (XSA-182 was a fast path that did).
    ///
    /// `pg_owner` (a privileged caller's `foreigndom`) may name the owner of
    /// the frame an L1 entry maps; an L2-L4 entry links a table into the
    /// table owner's own tree, so it is checked against the table's owner
    /// whatever the caller asked (Xen's `mod_l2..l4_entry` pass the
    /// page-table owner to `get_page_from_lNe`): no domain, Dom0 included,
    /// links another domain's page tables into a tree.
    pub fn mod_entry(
        &mut self,
        table: Mfn,
        index: usize,
        mut new: u64,
        pg_owner: DomId,
        preserve_ad: bool,
    ) -> Result<(), Errno> {
        let pg = self.ft.get(table).ok_or(Errno::EINVAL)?;
        // A table whose validation is still under way is no table yet.
        let level = level_of(pg.ty).filter(|_| pg.type_count > 0 && !pg.partial).ok_or(Errno::EINVAL)?;
        if is_hypervisor_slot(level, index) {
            return Err(Errno::EINVAL);
        }
        let old = self.mem.read_u64(table, index);
        if old & crate::gnttab::PTE_GRANT_MAPPING != 0 {
            // A grant mapping goes only through GNTTABOP_unmap_grant_ref.
            return Err(Errno::EINVAL);
        }
        if new & _PAGE_PRESENT != 0 {
            // Everything runs in ring 3 on 64-bit PV: guest entries are user.
            new |= _PAGE_USER;
            if preserve_ad {
                new |= old & (_PAGE_ACCESSED | _PAGE_DIRTY);
            }
        }
        // Only an L1 entry may name another domain's frame (`pg_owner`, the
        // foreign domain of a privileged `mmu_update`); an upper-level entry
        // links a table of the table's own owner, as Xen's mod_l2..l4_entry
        // check against the vCPU's domain. (Found by the hypercall fuzzer:
        // Dom0 could link a DomU's live L1 into its own L2.)
        let owner = if level == 1 { pg_owner } else { self.owner(table).ok_or(Errno::EINVAL)? };
        let new = self.get_entry_ref(new, level, owner)?;
        self.mem.write_u64(table, index, new);
        self.ft.pt_gen += 1;
        // A stale TLB entry for `old` is the guest's to flush (it asks with
        // UVMF_INVLPG or MMUEXT_*). It becomes the hypervisor's problem only
        // when the frame behind it changes type or is freed, and the frame
        // table flushes for exactly those cases.
        self.put_entry_ref(old, level);
        Ok(())
    }

    /// `MMUEXT_PIN_Ln_TABLE`.
    pub fn pin(&mut self, mfn: Mfn, dom: DomId, ty: PageType) -> Result<(), Errno> {
        self.get_page_and_type(mfn, dom, ty)?;
        if self.ft.get(mfn).is_some_and(|pg| pg.pinned) {
            self.put_page_and_type(mfn);
            return Err(Errno::EINVAL);
        }
        self.ft.set_pinned(mfn, true);
        Ok(())
    }

    /// `MMUEXT_UNPIN_TABLE`.
    pub fn unpin(&mut self, mfn: Mfn, dom: DomId) -> Result<(), Errno> {
        let pg = self.ft.get(mfn).ok_or(Errno::EINVAL)?;
        if pg.owner != Owner::Dom(dom) || !pg.pinned {
            return Err(Errno::EINVAL);
        }
        self.ft.set_pinned(mfn, false);
        self.put_page_and_type(mfn);
        Ok(())
    }
}
