//! The frame table: for every machine frame, who owns it, what it is used as
//! (its type) and how many references hold it (invariants 1 and 4 of docs/architecture.md).
//!
//! Xen's `struct page_info` in miniature. A frame has one type at a time; the
//! type count says how many uses need that type (a writable mapping needs
//! `Writable`, a page-table entry pointing at a table needs that table's
//! level, a pin holds one more). The type can change only when the type count
//! is zero, which is what keeps a page-table frame from ever being mapped
//! writable. The general count holds the frame allocated: one reference for
//! belonging to a domain, one per mapping or other user.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::machine::MachineMemory;
use super::shared::SharedPage;
use super::types::Mfn;
use crate::domain::DomId;
use hypercall_abi::errno::Errno;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// Not usable RAM: holes, firmware, the hypervisor image, boot modules.
    None,
    /// On the free list.
    Free,
    /// The hypervisor's own (heap, its page tables).
    Xen,
    /// Legacy low memory below 1 MiB (BIOS data, VGA, option ROMs): Xen's
    /// `dom_io`. The privileged domain may map it, uncached, without
    /// reference counting, as on Xen.
    Io,
    Dom(DomId),
    /// Was a destroyed domain's, still referenced by someone else (a
    /// foreign or grant mapping): nobody may take new references; the last
    /// put frees it.
    Dead,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageType {
    None,
    Writable,
    L1,
    L2,
    L3,
    L4,
    SegDesc,
}

impl PageType {
    pub fn is_page_table(self) -> bool {
        matches!(self, PageType::L1 | PageType::L2 | PageType::L3 | PageType::L4)
    }

    pub fn table_level(level: u8) -> PageType {
        match level {
            1 => PageType::L1,
            2 => PageType::L2,
            3 => PageType::L3,
            _ => PageType::L4,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageInfo {
    pub owner: Owner,
    /// General references; a domain's frame holds one for being allocated.
    pub count: u32,
    pub ty: PageType,
    pub type_count: u32,
    pub pinned: bool,
    /// Holds the "allocated" reference (Xen's `PGC_allocated`): set while
    /// the frame belongs to its owner's memory, cleared when the owner gives
    /// it back (the frame is freed once the last user lets go).
    pub allocated: bool,
    /// The hypervisor writes this frame for its owner (`shared_info`, a
    /// grant frame): it holds one permanent `Writable` type reference while
    /// it is allocated (see `mm::shared`).
    pub shared: bool,
    /// Validation as a table was preempted (Xen's `PGT_partial`): entries
    /// `0..nr_validated` hold their references, and one type reference is
    /// left over for whoever resumes the validation, with a general
    /// reference that keeps the frame allocated meanwhile (see `mm::validate`).
    pub partial: bool,
    pub nr_validated: u16,
}

impl PageInfo {
    const UNUSABLE: PageInfo =
        PageInfo { owner: Owner::None, count: 0, ty: PageType::None, type_count: 0, pinned: false, allocated: false, shared: false, partial: false, nr_validated: 0 };
}

/// An M2P entry for a frame no guest has numbered (Xen's INVALID_M2P_ENTRY).
pub const INVALID_M2P_ENTRY: u64 = !0;

#[derive(Clone)]
#[repr(C, align(4096))]
struct M2pPage([u64; 512]);

#[derive(Clone)]
pub struct FrameTable {
    frames: Vec<PageInfo>,
    /// The machine-to-phys table: each frame's pseudo-physical number in its
    /// owner's view. Guests read it, read-only, at `MACH2PHYS_VIRT_START`;
    /// its storage never moves (allocated once, full size) and is page
    /// aligned, so it can be mapped as it is.
    m2p: Vec<M2pPage>,
    free: Vec<u64>,
    /// Set when a frame stops being writable or is freed: stale TLB entries
    /// could still write it, so the CPU's TLB must be flushed before any
    /// guest runs again.
    pub need_tlb_flush: bool,
    /// Bumped whenever a page-table entry is written or a frame is freed:
    /// translations remembered under an older value are stale
    /// (`guest_access::TranslationCache`).
    pub pt_gen: u64,
    /// Page-table entries that may still be checked or dropped during the
    /// current hypercall, or `None` outside one (boot, the domain builder,
    /// destruction): XSA-45's bound on the work one guest can make the
    /// machine do at once. Validation that runs out returns `-ERESTART`,
    /// keeping its progress in the frame (`partial`); the hypercall is
    /// continued and picks it up again.
    pub budget: Option<u32>,
    /// References still to drop, per domain, from tables that lost their
    /// last type reference (Xen's preemptible `free_page_type`): each entry
    /// value with the level of the table it was in. A stack, so a deep tree
    /// is taken down depth first with at most a few tables' entries queued.
    pub deferred: BTreeMap<DomId, Vec<(u64, u8)>>,
    /// A drain of `deferred` is under way (no nested drains).
    pub draining: bool,
    /// Frames each domain gave back that are still referenced (mapped,
    /// pinned): they stay its own and count against its `max_pages` until
    /// really freed, as Xen's `tot_pages` drops only in
    /// `free_domheap_pages`. Without this a guest could give back frames
    /// it keeps mapped and take new ones without end.
    lingering: BTreeMap<DomId, u64>,
}

impl FrameTable {
    /// A table for `nr_frames` frames, all unusable until [`add_free`] hands
    /// RAM to it.
    ///
    /// [`add_free`]: FrameTable::add_free
    pub fn new(nr_frames: u64) -> FrameTable {
        FrameTable {
            frames: alloc::vec![PageInfo::UNUSABLE; nr_frames as usize],
            m2p: alloc::vec![M2pPage([INVALID_M2P_ENTRY; 512]); (nr_frames as usize).div_ceil(512)],
            free: Vec::new(),
            need_tlb_flush: false,
            pt_gen: 0,
            budget: None,
            deferred: BTreeMap::new(),
            draining: false,
            lingering: BTreeMap::new(),
        }
    }

    pub fn len(&self) -> u64 {
        self.frames.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    pub fn get(&self, mfn: Mfn) -> Option<&PageInfo> {
        self.frames.get(usize::try_from(mfn.0).ok()?)
    }

    fn get_mut(&mut self, mfn: Mfn) -> Option<&mut PageInfo> {
        self.frames.get_mut(usize::try_from(mfn.0).ok()?)
    }

    /// For `mm`'s validation bookkeeping (`partial`, `nr_validated`).
    pub(super) fn frames_mut(&mut self, mfn: Mfn) -> Option<&mut PageInfo> {
        self.get_mut(mfn)
    }

    /// Hand RAM frames to the allocator (boot: the free ranges of the memory map).
    pub fn add_free(&mut self, first: Mfn, count: u64) {
        for m in first.0..first.0.saturating_add(count).min(self.len()) {
            self.frames[m as usize].owner = Owner::Free;
            self.free.push(m);
        }
        // Hand out low frames last: they are the scarce ones (DMA, legacy).
        self.free.sort_unstable_by(|a, b| a.cmp(b));
    }

    pub fn m2p(&self, mfn: Mfn) -> u64 {
        let m = mfn.0 as usize;
        self.m2p.get(m / 512).map_or(INVALID_M2P_ENTRY, |p| p.0[m % 512])
    }

    pub fn set_m2p(&mut self, mfn: Mfn, pfn: u64) {
        let m = mfn.0 as usize;
        if let Some(p) = self.m2p.get_mut(m / 512) {
            p.0[m % 512] = pfn;
        }
    }

    /// Where the M2P table lives (page aligned; the hypervisor maps it
    /// read-only for guests) and how many entries it has.
    pub fn m2p_storage(&self) -> (*const u64, usize) {
        (self.m2p.as_ptr() as *const u64, self.m2p.len() * 512)
    }

    /// Mark frames as legacy I/O memory (see [`Owner::Io`]).
    pub fn set_io(&mut self, first: Mfn, count: u64) {
        for m in first.0..first.0.saturating_add(count).min(self.len()) {
            if self.frames[m as usize].owner == Owner::None {
                self.frames[m as usize].owner = Owner::Io;
            }
        }
    }

    pub fn free_count(&self) -> u64 {
        self.free.len() as u64
    }

    /// Take a free frame for `owner`, zeroed so no data crosses between
    /// domains. It holds the "allocated" reference.
    pub fn alloc(&mut self, mem: &impl MachineMemory, owner: Owner) -> Option<Mfn> {
        let m = self.free.pop()?;
        let mfn = Mfn(m);
        mem.zero_frame(mfn);
        self.frames[m as usize] = PageInfo { owner, count: 1, ty: PageType::None, type_count: 0, pinned: false, allocated: true, shared: false, partial: false, nr_validated: 0 };
        Some(mfn)
    }

    /// Take `2^order` free frames in a row, naturally aligned and all below
    /// frame `limit`, for `owner` (each zeroed, with its "allocated"
    /// reference): Xen's `alloc_domheap_pages` with `MEMF_bits`, for
    /// `XENMEM_exchange`'s machine-contiguous extents. A scan of the frame
    /// table: only Dom0's rare DMA-buffer requests come here.
    pub fn alloc_contiguous(&mut self, mem: &impl MachineMemory, owner: Owner, order: u32, limit: u64) -> Option<Mfn> {
        let n = 1u64.checked_shl(order)?;
        let end = limit.min(self.len());
        let mut base = 0u64;
        while base.checked_add(n)? <= end {
            match (base..base + n).find(|&m| self.frames[m as usize].owner != Owner::Free) {
                Some(busy) => base = (busy / n + 1) * n,
                None => {
                    self.free.retain(|&m| m < base || m >= base + n);
                    for m in base..base + n {
                        mem.zero_frame(Mfn(m));
                        self.frames[m as usize] = PageInfo { owner, count: 1, ty: PageType::None, type_count: 0, pinned: false, allocated: true, shared: false, partial: false, nr_validated: 0 };
                    }
                    return Some(Mfn(base));
                }
            }
        }
        None
    }

    /// Take a free frame for `dom` that the hypervisor will write on its
    /// behalf (Xen's `share_xen_page_with_guest`): zeroed, owned by `dom`,
    /// and typed `Writable` for good, so no validation can ever make it a
    /// page table or descriptor page. The type reference goes only when the
    /// frame is released.
    pub fn alloc_shared(&mut self, mem: &impl MachineMemory, dom: DomId) -> Option<SharedPage> {
        let mfn = self.alloc(mem, Owner::Dom(dom))?;
        let pg = self.get_mut(mfn)?;
        pg.ty = PageType::Writable;
        pg.type_count = 1;
        pg.shared = true;
        Some(SharedPage::new(mfn))
    }

    /// Drop the "allocated" reference (a domain gives the frame back, or
    /// dies). The frame returns to the free list when nothing else holds it;
    /// until then its mappings keep it alive and owned.
    pub fn release(&mut self, mfn: Mfn) {
        let Some(pg) = self.get_mut(mfn) else { return };
        if !pg.allocated {
            return;
        }
        pg.allocated = false;
        if let Owner::Dom(d) = pg.owner {
            // Counted until the frame is freed (`put_page` uncounts it, at
            // once below if nothing else holds it).
            *self.lingering.entry(d).or_insert(0) += 1;
        }
        let Some(pg) = self.get_mut(mfn) else { return };
        if pg.shared {
            // The permanent type reference of a shared frame goes with its
            // owner's claim; mappings still held elsewhere keep theirs.
            pg.shared = false;
            pg.type_count = pg.type_count.saturating_sub(1);
        }
        self.put_page(mfn);
    }

    /// Take a general reference on a frame `dom` owns (Xen's `get_page`).
    pub fn get_page(&mut self, mfn: Mfn, dom: DomId) -> Result<(), Errno> {
        let pg = self.get_mut(mfn).ok_or(Errno::EINVAL)?;
        if pg.owner != Owner::Dom(dom) || pg.count == 0 {
            return Err(Errno::EINVAL);
        }
        pg.count = pg.count.checked_add(1).ok_or(Errno::EOVERFLOW)?;
        Ok(())
    }

    /// One more general reference on a frame its caller already holds one
    /// on (Xen's `get_page_light`): the one a preempted validation keeps.
    pub(super) fn get_page_light(&mut self, mfn: Mfn) {
        if let Some(pg) = self.get_mut(mfn) {
            pg.count = pg.count.saturating_add(1);
        }
    }

    /// Drop a general reference; the last one frees the frame.
    pub fn put_page(&mut self, mfn: Mfn) {
        let Some(pg) = self.get_mut(mfn) else { return };
        if pg.count == 0 {
            return;
        }
        pg.count -= 1;
        if pg.count == 0 {
            debug_assert_eq!(pg.type_count, 0, "freeing {mfn:?} with type references");
            if let (Owner::Dom(d), false) = (pg.owner, pg.allocated) {
                self.uncount_lingering(d);
            }
            let Some(pg) = self.get_mut(mfn) else { return };
            *pg = PageInfo { owner: Owner::Free, ..PageInfo::UNUSABLE };
            self.set_m2p(mfn, INVALID_M2P_ENTRY);
            self.free.push(mfn.0);
            self.need_tlb_flush = true;
            self.pt_gen += 1;
        }
    }

    fn uncount_lingering(&mut self, d: DomId) {
        if let Some(n) = self.lingering.get_mut(&d) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.lingering.remove(&d);
            }
        }
    }

    /// Frames `d` gave back that something still holds (see `lingering`).
    pub fn lingering(&self, d: DomId) -> u64 {
        self.lingering.get(&d).copied().unwrap_or(0)
    }

    /// Take a type reference without validation (the validating form, for
    /// page tables, is `mm::validate`): the frame must have no type uses yet,
    /// or already have this type. Returns whether this was the first use
    /// (the type was just set).
    pub fn get_page_type(&mut self, mfn: Mfn, ty: PageType) -> Result<bool, Errno> {
        let pg = self.get_mut(mfn).ok_or(Errno::EINVAL)?;
        let first = pg.type_count == 0;
        if first {
            if pg.ty == PageType::Writable && ty != PageType::Writable {
                // Invariant 2: writable mappings may linger in TLBs.
                self.need_tlb_flush = true;
            }
            let pg = self.get_mut(mfn).ok_or(Errno::EINVAL)?;
            pg.ty = ty;
            pg.type_count = 1;
            return Ok(true);
        }
        if pg.ty != ty {
            // Xen's _get_page_type answers a type conflict with -EINVAL.
            return Err(Errno::EINVAL);
        }
        pg.type_count = pg.type_count.checked_add(1).ok_or(Errno::EOVERFLOW)?;
        Ok(false)
    }

    /// Drop a type reference; returns whether it was the last.
    pub fn put_page_type(&mut self, mfn: Mfn) -> bool {
        let Some(pg) = self.get_mut(mfn) else { return false };
        if pg.type_count == 0 {
            return false;
        }
        pg.type_count -= 1;
        pg.type_count == 0
    }

    /// Forget a frame's type once it has no users (after a table's entries
    /// were dropped), so the next use may give it any type.
    pub fn clear_type(&mut self, mfn: Mfn) {
        if let Some(pg) = self.get_mut(mfn) {
            if pg.type_count == 0 && pg.ty != PageType::Writable {
                pg.ty = PageType::None;
            }
        }
    }

    /// Undo a failed first use: back to no type at all.
    pub fn abandon_type(&mut self, mfn: Mfn) {
        if let Some(pg) = self.get_mut(mfn) {
            pg.type_count = 0;
            pg.ty = PageType::None;
            pg.partial = false;
            pg.nr_validated = 0;
        }
    }

    /// One unit of page-table work in the current hypercall; `true` when
    /// the budget is spent and the work must be continued later.
    pub fn preempt_check(&mut self) -> bool {
        match &mut self.budget {
            Some(0) => true,
            Some(n) => {
                *n -= 1;
                false
            }
            None => false,
        }
    }

    /// Does `dom` still have table entries to drop?
    pub fn has_deferred(&self, dom: DomId) -> bool {
        self.deferred.get(&dom).is_some_and(|v| !v.is_empty())
    }

    /// Every frame, for invariant checks.
    pub fn iter(&self) -> impl Iterator<Item = (Mfn, &PageInfo)> + '_ {
        self.frames.iter().enumerate().map(|(m, pg)| (Mfn(m as u64), pg))
    }

    pub fn set_pinned(&mut self, mfn: Mfn, pinned: bool) {
        if let Some(pg) = self.get_mut(mfn) {
            pg.pinned = pinned;
        }
    }

    /// Hand every frame `dom` still owns to `Owner::Dead` (after its
    /// destruction released what it could).
    pub fn orphan(&mut self, dom: DomId) -> u64 {
        let mut n = 0;
        // Ownerless now: their domain's count goes with it.
        self.lingering.remove(&dom);
        for pg in self.frames.iter_mut().filter(|pg| pg.owner == Owner::Dom(dom)) {
            pg.owner = Owner::Dead;
            n += 1;
        }
        n
    }

    /// Frames owned by `dom`.
    pub fn owned_by(&self, dom: DomId) -> impl Iterator<Item = Mfn> + '_ {
        self.frames
            .iter()
            .enumerate()
            .filter(move |(_, pg)| pg.owner == Owner::Dom(dom))
            .map(|(m, _)| Mfn(m as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::HostMemory;

    #[test]
    fn allocated_frames_are_zeroed_and_owned() {
        let mem = HostMemory::new(16);
        mem.fill(Mfn(3), 0, 4096, 0xaa);
        let mut ft = FrameTable::new(16);
        ft.add_free(Mfn(2), 4);
        let mut got = Vec::new();
        while let Some(m) = ft.alloc(&mem, Owner::Dom(DomId(1))) {
            got.push(m);
        }
        got.sort();
        assert_eq!(got, [Mfn(2), Mfn(3), Mfn(4), Mfn(5)]);
        assert_eq!(mem.read_u64(Mfn(3), 7), 0);
        assert_eq!(ft.get(Mfn(3)).unwrap().owner, Owner::Dom(DomId(1)));
    }

    #[test]
    fn a_frame_has_one_type_at_a_time() {
        let mem = HostMemory::new(4);
        let mut ft = FrameTable::new(4);
        ft.add_free(Mfn(0), 4);
        let m = ft.alloc(&mem, Owner::Dom(DomId(0))).unwrap();
        ft.get_page_type(m, PageType::L1).unwrap();
        assert_eq!(ft.get_page_type(m, PageType::Writable), Err(Errno::EINVAL));
        ft.put_page_type(m);
        ft.get_page_type(m, PageType::L1).unwrap();
        ft.put_page_type(m);
        ft.get_page_type(m, PageType::Writable).unwrap();
    }

    #[test]
    fn foreign_frames_cannot_be_referenced() {
        let mem = HostMemory::new(4);
        let mut ft = FrameTable::new(4);
        ft.add_free(Mfn(0), 4);
        let m = ft.alloc(&mem, Owner::Dom(DomId(1))).unwrap();
        assert_eq!(ft.get_page(m, DomId(2)), Err(Errno::EINVAL));
        assert_eq!(ft.get_page(Mfn(99), DomId(1)), Err(Errno::EINVAL));
        ft.get_page(m, DomId(1)).unwrap();
    }

    #[test]
    fn released_frames_return_to_the_free_list() {
        let mem = HostMemory::new(4);
        let mut ft = FrameTable::new(4);
        ft.add_free(Mfn(0), 4);
        let m = ft.alloc(&mem, Owner::Dom(DomId(1))).unwrap();
        assert_eq!(ft.free_count(), 3);
        ft.release(m);
        assert_eq!(ft.free_count(), 4);
        assert_eq!(ft.get(m).unwrap().owner, Owner::Free);
    }
}
