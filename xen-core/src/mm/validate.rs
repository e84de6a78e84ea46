//! Page-table validation: Xen's type system for PV page tables
//! (`xen/arch/x86/mm.c`: `get_page_from_lNe`, `mod_lN_entry`,
//! `promote_lN_table`, `_get_page_type`).
//!
//! A frame becomes an Ln table only by having every entry validated: each
//! present entry takes a general reference on the frame it names and, for a
//! writable leaf, a `Writable` type reference, for an upper level the next
//! level's type. Because a frame has one type at a time, a page-table frame
//! can never also be writable (DESIGN.md invariant 2), and because references
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

    /// Xen's `get_page_type`: the first reference of a table type validates it.
    pub fn get_page_type(&mut self, mfn: Mfn, ty: PageType) -> Result<(), Errno> {
        let first = self.ft.get_page_type(mfn, ty)?;
        if first {
            let checked = match ty {
                PageType::SegDesc => self.validate_descriptors(mfn),
                _ => level_of(ty).map_or(Ok(()), |level| self.promote(mfn, level)),
            };
            if let Err(e) = checked {
                self.ft.abandon_type(mfn);
                return Err(e);
            }
        }
        Ok(())
    }

    /// The last type reference of a table drops everything its entries held.
    pub fn put_page_type(&mut self, mfn: Mfn) {
        let Some(ty) = self.ft.get(mfn).map(|pg| pg.ty) else { return };
        if self.ft.put_page_type(mfn) {
            if let Some(level) = level_of(ty) {
                self.demote(mfn, level);
            }
            self.ft.clear_type(mfn);
        }
    }

    fn promote(&mut self, table: Mfn, level: u8) -> Result<(), Errno> {
        let owner = self.owner(table).ok_or(Errno::EINVAL)?;
        self.ft.pt_gen += 1;
        if level == 4 {
            for (i, e) in self.hv_slots.iter().enumerate() {
                self.mem.write_u64(table, FIRST_HYPERVISOR_SLOT + i, *e);
            }
        }
        for i in 0..ENTRIES as usize {
            if is_hypervisor_slot(level, i) {
                continue;
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

    fn demote(&mut self, table: Mfn, level: u8) {
        self.ft.pt_gen += 1;
        for i in 0..ENTRIES as usize {
            if !is_hypervisor_slot(level, i) {
                let e = self.mem.read_u64(table, i);
                self.put_entry_ref(e, level);
            }
        }
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
            if self.get_page_type(mfn, ty).is_err() {
                self.ft.put_page(mfn);
                return Err(fail);
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
    pub fn mod_entry(
        &mut self,
        table: Mfn,
        index: usize,
        mut new: u64,
        pg_owner: DomId,
        preserve_ad: bool,
    ) -> Result<(), Errno> {
        let pg = self.ft.get(table).ok_or(Errno::EINVAL)?;
        let level = level_of(pg.ty).filter(|_| pg.type_count > 0).ok_or(Errno::EINVAL)?;
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
        let new = self.get_entry_ref(new, level, pg_owner)?;
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
