//! Grant mappings' PTEs (Xen's `create_grant_host_mapping` and
//! `replace_grant_host_mapping` in `arch/x86/pv/grant_table.c`). The grant
//! code decides *whether* a mapping may exist; only `mm` writes the entry,
//! as for every other PTE.

use super::frame_table::{Owner, PageType};
use super::machine::MachineMemory;
use super::pte::{_PAGE_ACCESSED, _PAGE_PRESENT, _PAGE_RW, _PAGE_USER, PADDR_MASK};
use super::types::Mfn;
use super::validate::Mm;
use crate::domain::DomId;
use crate::gnttab::PTE_GRANT_MAPPING;
use hypercall_abi::errno::Errno;

impl<M: MachineMemory> Mm<'_, M> {
    /// Is `l1` a validated L1 table of `owner`?
    fn is_l1_of(&self, l1: Mfn, owner: DomId) -> bool {
        self.ft.get(l1).is_some_and(|pg| pg.owner == Owner::Dom(owner) && pg.ty == PageType::L1 && pg.type_count > 0)
    }

    /// Install a grant mapping of `frame` (owned by `granter`) at entry
    /// `index` of `mapper`'s L1 `l1`, taking the references the entry
    /// holds: a general one, and for a writable mapping a `Writable` type
    /// one, so the granted page can be neither freed nor retyped while
    /// mapped. The entry it replaces is dropped as `mod_entry` would.
    pub fn install_grant_pte(
        &mut self,
        l1: Mfn,
        index: usize,
        mapper: DomId,
        frame: Mfn,
        granter: DomId,
        readonly: bool,
    ) -> Result<(), Errno> {
        if index >= 512 || !self.is_l1_of(l1, mapper) {
            return Err(Errno::EINVAL);
        }
        let old = self.mem.read_u64(l1, index);
        if old & PTE_GRANT_MAPPING != 0 {
            return Err(Errno::EBUSY);
        }
        self.ft.get_page(frame, granter)?;
        if !readonly && self.get_page_type(frame, PageType::Writable).is_err() {
            self.ft.put_page(frame);
            return Err(Errno::EINVAL);
        }
        let new = frame.maddr()
            | _PAGE_PRESENT
            | _PAGE_USER
            | _PAGE_ACCESSED
            | PTE_GRANT_MAPPING
            | if readonly { 0 } else { _PAGE_RW };
        self.mem.write_u64(l1, index, new);
        self.ft.pt_gen += 1;
        self.put_entry_ref(old, 1);
        Ok(())
    }

    /// Remove the grant mapping of `frame` at entry `index` of `mapper`'s L1
    /// `l1`, if that entry still is exactly it: the table must still be
    /// `mapper`'s validated L1 (it may have been dropped, freed and become
    /// another domain's since the mapping was made) and the entry the grant
    /// mapping of that frame with the same access. Returns whether an entry
    /// was removed; when not, the references went when the table was
    /// dropped, and nothing of anyone else's is touched.
    pub fn remove_grant_pte(&mut self, l1: Mfn, index: usize, mapper: DomId, frame: Mfn, readonly: bool) -> bool {
        if index >= 512 || !self.is_l1_of(l1, mapper) {
            return false;
        }
        let cur = self.mem.read_u64(l1, index);
        let want = frame.maddr() | _PAGE_PRESENT | PTE_GRANT_MAPPING | if readonly { 0 } else { _PAGE_RW };
        let mask = PADDR_MASK | _PAGE_PRESENT | PTE_GRANT_MAPPING | _PAGE_RW;
        if cur & mask != want {
            return false;
        }
        self.mem.write_u64(l1, index, 0);
        self.ft.pt_gen += 1;
        self.put_entry_ref(cur, 1);
        true
    }
}
