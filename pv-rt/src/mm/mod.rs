//! A small memory manager for a 64-bit PV kernel, built on Xen's PV MMU
//! hypercalls.
//!
//! A PV guest never writes its page tables directly: Xen maps every frame
//! that is a page table read-only, and each change goes through
//! `mmu_update` (write an entry, named by its machine address) or
//! `update_va_mapping` (write the L1 entry that maps a virtual address),
//! which Xen validates first. So this module:
//! - finds its tables by walking from `start_info.pt_base` (the L4), turning
//!   each entry's machine frame back into a pfn (our P2M list, or the
//!   hypervisor's M2P table) and reading the table through the pfn's alias in
//!   the initial mapping, `v_start + pfn * 4096`;
//! - maps and unmaps pages with `mmu_update` on the L1 entry's machine
//!   address and with `update_va_mapping`;
//! - makes new L3/L2/L1 tables as Xen requires: zeroed, no writable mapping
//!   anywhere (the alias is remapped read-only first), pinned with
//!   `MMUEXT_PIN_Lx_TABLE`, then hooked into the parent with `mmu_update`.
//!
//! Single-threaded, one instance per kernel (see [`Mm::new`]).

pub mod frames;
pub mod pte;

use core::ptr;

use heapless::Vec;
use hypercall_abi::arch::MACH2PHYS_VIRT_START;
use hypercall_abi::guest;
use hypercall_abi::mm::{
    MmuUpdate, MmuextOp, DOMID_SELF, MMUEXT_PIN_L1_TABLE, MMU_NORMAL_PT_UPDATE, PAGE_SIZE, UVMF_INVLPG,
    _PAGE_PSE, pte_mfn,
};
use hypercall_abi::start_info::StartInfo;
use hypercall_abi::Errno;

pub use frames::FrameAllocator;
use pte::{l1_table_offset, present, table_offset, TABLE_FLAGS, LEAF_RO, LEAF_RW};

/// `v_start` of our kernels: `link.ld` leaves `XEN_ELFNOTE_VIRT_BASE` unset,
/// and Xen's libelf then takes 0, so the initial mapping starts at 0 and pfn
/// `n` is at `n * 4096`. [`Mm::new`] checks this against the page tables.
pub const VIRT_BASE: u64 = 0;

/// Our marker for a pfn with no machine frame (Linux's `INVALID_P2M_ENTRY`).
pub const INVALID_MFN: u64 = !0;

/// Tables whose frame number we remember, so a walk needs no P2M search:
/// the bootstrap ones plus the ones we make.
const KNOWN_TABLES: usize = 64;

/// A hypercall's return value as a `Result`.
pub fn check(ret: i64) -> Result<i64, Errno> {
    match Errno::from_ret(ret) {
        Some(e) => Err(e),
        None => Ok(ret),
    }
}

/// `m2p[mfn]`: Xen's read-only machine-to-phys table, which every 64-bit PV
/// guest finds at `MACH2PHYS_VIRT_START` (`arch-x86/xen-x86_64.h`).
///
/// # Safety
/// `mfn` must be a frame of RAM (one the domain owns, for instance): Xen maps
/// the table only as far as the machine's memory goes, and a read past it
/// faults.
pub unsafe fn m2p(mfn: u64) -> u64 {
    // SAFETY: the caller keeps `mfn` within the machine's RAM, which the
    // hypervisor maps read-only into every PV address space.
    unsafe { ptr::read_volatile((MACH2PHYS_VIRT_START as *const u64).add(mfn as usize)) }
}

pub struct Mm {
    /// The P2M list (`start_info.mfn_list`): pfn -> mfn, ours to update.
    p2m: *mut u64,
    nr_pages: u64,
    v_start: u64,
    /// pfn and mfn of the top-level table (`pt_base`).
    l4_pfn: u64,
    l4_mfn: u64,
    /// First pfn past the bootstrap stack: where free frames start.
    free_start_pfn: u64,
    /// First pfn past the initial mapping.
    init_end_pfn: u64,
    /// `(mfn, pfn)` of page tables we know, all with an alias.
    tables: Vec<(u64, u64), KNOWN_TABLES>,
    frames: FrameAllocator,
}

impl Mm {
    /// Takes over the memory after the bootstrap region.
    ///
    /// Xen's start-of-day layout (`xen.h`): the kernel, the P2M list,
    /// start_info, the bootstrap page tables (`pt_base`, `nr_pt_frames`,
    /// the L4 first), one page of bootstrap stack, then padding to the end of
    /// the initial mapping, which this finds by walking the tables.
    ///
    /// # Safety
    /// At most one `Mm` may exist: two would hand out the same frames. The
    /// kernel must no longer use the bootstrap stack (pv-rt's entry moves to
    /// its own stack in `.bss` before anything else runs).
    pub unsafe fn new(si: &StartInfo) -> Result<Mm, Errno> {
        let v_start = VIRT_BASE;
        let nr_pages = si.nr_pages;
        if si.pt_base < v_start || !si.pt_base.is_multiple_of(PAGE_SIZE) || si.nr_pt_frames == 0 {
            return Err(Errno::EINVAL);
        }
        let l4_pfn = (si.pt_base - v_start) / PAGE_SIZE;
        let free_start_pfn = l4_pfn + si.nr_pt_frames + 1;
        if free_start_pfn > nr_pages {
            return Err(Errno::EINVAL);
        }
        let p2m = si.mfn_list as *mut u64;
        let mut mm = Mm {
            p2m,
            nr_pages,
            v_start,
            l4_pfn,
            l4_mfn: 0,
            free_start_pfn,
            // Until the walk below says otherwise, only the bootstrap region
            // is known to be mapped.
            init_end_pfn: free_start_pfn,
            tables: Vec::new(),
            frames: FrameAllocator::new(0, 0, 0),
        };
        mm.l4_mfn = mm.p2m(l4_pfn).ok_or(Errno::EINVAL)?;
        for pfn in l4_pfn..l4_pfn + si.nr_pt_frames {
            let mfn = mm.p2m(pfn).ok_or(Errno::EINVAL)?;
            mm.tables.push((mfn, pfn)).map_err(|_| Errno::ENOMEM)?;
        }
        // The walk must find pt_base where the P2M says it is: this checks
        // VIRT_BASE and the whole chain L4 -> L1 at once.
        if mm.lookup(si.pt_base).map(pte_mfn) != Some(mm.l4_mfn) {
            return Err(Errno::EINVAL);
        }
        // The initial mapping goes on, 1:1, up to the first pfn it does not map.
        let mut end = free_start_pfn;
        while end < nr_pages && mm.lookup(v_start + end * PAGE_SIZE).map(pte_mfn) == mm.p2m(end) {
            end += 1;
        }
        mm.init_end_pfn = end;
        mm.frames = FrameAllocator::new(free_start_pfn, end, nr_pages);
        Ok(mm)
    }

    pub fn nr_pages(&self) -> u64 {
        self.nr_pages
    }
    pub fn v_start(&self) -> u64 {
        self.v_start
    }
    pub fn l4_mfn(&self) -> u64 {
        self.l4_mfn
    }
    pub fn l4_pfn(&self) -> u64 {
        self.l4_pfn
    }
    pub fn free_start_pfn(&self) -> u64 {
        self.free_start_pfn
    }
    pub fn init_end_pfn(&self) -> u64 {
        self.init_end_pfn
    }
    pub fn frames(&self) -> &FrameAllocator {
        &self.frames
    }

    /// `p2m[pfn]`, `None` past the end or for a pfn with no frame.
    pub fn p2m(&self, pfn: u64) -> Option<u64> {
        if pfn >= self.nr_pages {
            return None;
        }
        // SAFETY: the builder maps the P2M list at `mfn_list`, `nr_pages`
        // entries, for the life of the domain (`xen.h`), and pfn is in range.
        let mfn = unsafe { ptr::read_volatile(self.p2m.add(pfn as usize)) };
        (mfn != INVALID_MFN).then_some(mfn)
    }

    /// Records that `pfn` is now backed by `mfn` (or by nothing, with
    /// [`INVALID_MFN`]), after the reservation changed.
    pub fn set_p2m(&mut self, pfn: u64, mfn: u64) {
        assert!(pfn < self.nr_pages, "pfn {pfn:#x} past the P2M list");
        // SAFETY: as in `p2m`; the list is ordinary writable guest memory.
        unsafe { ptr::write_volatile(self.p2m.add(pfn as usize), mfn) };
    }

    /// The pfn backed by `mfn`, by searching the P2M list (no M2P needed).
    pub fn mfn_to_pfn(&self, mfn: u64) -> Option<u64> {
        (0..self.nr_pages).find(|&pfn| self.p2m(pfn) == Some(mfn))
    }

    /// `pfn`'s address in the initial mapping, if it has one.
    pub fn alias(&self, pfn: u64) -> Option<u64> {
        (pfn < self.init_end_pfn).then(|| self.v_start + pfn * PAGE_SIZE)
    }

    /// Does `va` lie in the initial mapping (whose aliases we must keep)?
    pub fn in_initial_mapping(&self, va: u64) -> bool {
        va >= self.v_start && va < self.v_start + self.init_end_pfn * PAGE_SIZE
    }

    pub fn alloc_frame(&mut self) -> Option<u64> {
        self.frames.alloc()
    }
    /// A frame with an alias in the initial mapping (mapped writable there).
    pub fn alloc_frame_low(&mut self) -> Option<u64> {
        self.frames.alloc_low()
    }
    /// The caller has unmapped `pfn` everywhere it mapped it and left its
    /// alias, if any, writable as it found it.
    pub fn free_frame(&mut self, pfn: u64) {
        self.frames.free(pfn)
    }

    /// The pfn of page-table frame `mfn`, if it has an alias we can read.
    fn table_pfn(&self, mfn: u64) -> Option<u64> {
        if let Some(&(_, pfn)) = self.tables.iter().find(|(m, _)| *m == mfn) {
            return Some(pfn);
        }
        (0..self.init_end_pfn).find(|&pfn| self.p2m(pfn) == Some(mfn))
    }

    /// Entry `index` of page-table frame `table_mfn`, read through its alias.
    pub fn read_entry(&self, table_mfn: u64, index: usize) -> Option<u64> {
        if index >= pte::ENTRIES {
            return None;
        }
        let va = self.alias(self.table_pfn(table_mfn)?)?;
        // SAFETY: `va` is the alias of a frame of the initial mapping, which
        // stays mapped (read-only for page tables) for the domain's life: we
        // never unmap an alias, only switch it between RO and RW.
        Some(unsafe { ptr::read_volatile((va as *const u64).add(index)) })
    }

    /// The mfn of the level-`level` table (1..=4) on `va`'s walk, if the walk
    /// gets that far.
    pub fn table_mfn(&self, va: u64, level: u32) -> Option<u64> {
        let mut mfn = self.l4_mfn;
        for l in (level + 1..=4).rev() {
            let e = self.read_entry(mfn, table_offset(va, l))?;
            // PV guests cannot make superpages, so a PSE bit here is no table.
            if !present(e) || (l < 4 && e & _PAGE_PSE != 0) {
                return None;
            }
            mfn = pte_mfn(e);
        }
        Some(mfn)
    }

    /// Machine address of the level-`level` entry for `va`: what
    /// `mmu_update` takes as `ptr`.
    pub fn entry_maddr(&self, va: u64, level: u32) -> Option<u64> {
        Some((self.table_mfn(va, level)? << 12) + 8 * table_offset(va, level) as u64)
    }

    /// The L1 entry that maps `va`, if `va` has an L1 table; present or not.
    pub fn l1e(&self, va: u64) -> Option<u64> {
        self.read_entry(self.table_mfn(va, 1)?, l1_table_offset(va))
    }

    /// The L1 entry that maps `va`, if it is present.
    pub fn lookup(&self, va: u64) -> Option<u64> {
        self.l1e(va).filter(|&e| present(e))
    }

    /// Writes entry `index` of table `table_mfn` through `mmu_update`.
    ///
    /// # Safety
    /// As [`guest::mmu_update`]: the change must not pull memory from under
    /// Rust code.
    pub unsafe fn write_entry(&self, table_mfn: u64, index: usize, val: u64) -> Result<(), Errno> {
        let req = MmuUpdate { ptr: ((table_mfn << 12) + 8 * index as u64) | MMU_NORMAL_PT_UPDATE, val };
        // SAFETY: the caller vouches for the change.
        check(unsafe { guest::mmu_update(&[req], None, DOMID_SELF as u32) }).map(drop)
    }

    /// Maps `pfn`'s alias writable again, or read-only (as a page-table frame
    /// must be), with `update_va_mapping` and a local INVLPG.
    ///
    /// # Safety
    /// Making an alias read-only faults any later write through it: nothing
    /// may still write there.
    pub unsafe fn set_alias_writable(&self, pfn: u64, writable: bool) -> Result<(), Errno> {
        let va = self.alias(pfn).ok_or(Errno::EINVAL)?;
        let mfn = self.p2m(pfn).ok_or(Errno::EINVAL)?;
        let flags = if writable { LEAF_RW } else { LEAF_RO };
        // SAFETY: the alias keeps mapping the same frame; the caller vouches
        // that nobody writes through a read-only alias.
        check(unsafe { guest::update_va_mapping(va, pte::pte(mfn, flags), UVMF_INVLPG) }).map(drop)
    }

    /// A new, pinned, empty table of `level` (1..=4): returns its mfn.
    fn new_table(&mut self, level: u32) -> Result<u64, Errno> {
        let pfn = self.frames.alloc_low().ok_or(Errno::ENOMEM)?;
        let (Some(mfn), Some(va)) = (self.p2m(pfn), self.alias(pfn)) else {
            return Err(Errno::EINVAL);
        };
        // SAFETY: a free frame of the initial mapping, so its alias is mapped
        // writable and nothing else uses it.
        unsafe { ptr::write_bytes(va as *mut u8, 0, PAGE_SIZE as usize) };
        // A page table may have no writable mapping anywhere (Xen's type
        // rule: a frame is a page table or writable, never both).
        // SAFETY: we are done writing through the alias.
        if let Err(e) = unsafe { self.set_alias_writable(pfn, false) } {
            self.frames.free(pfn);
            return Err(e);
        }
        let pin = MmuextOp::new(MMUEXT_PIN_L1_TABLE + level - 1, mfn, 0);
        // SAFETY: pinning an empty table changes no mapping.
        if let Err(e) = check(unsafe { guest::mmuext_op(&[pin], None, DOMID_SELF as u32) }) {
            // SAFETY: the frame is no table: its alias may be writable again.
            let _ = unsafe { self.set_alias_writable(pfn, true) };
            self.frames.free(pfn);
            return Err(e);
        }
        // Remembered for walks; when the list is full, walks search the P2M.
        let _ = self.tables.push((mfn, pfn));
        Ok(mfn)
    }

    /// The mfn of `va`'s L1 table, making and hooking in any missing L3, L2
    /// and L1 on the way. `va` must be canonical, outside the hypervisor's
    /// hole and outside the initial mapping.
    pub fn ensure_l1(&mut self, va: u64) -> Result<u64, Errno> {
        if self.in_initial_mapping(va) {
            return Err(Errno::EINVAL);
        }
        self.ensure_l1_in(self.l4_mfn, va)
    }

    /// As [`Mm::ensure_l1`], on the walk from top-level table `l4_mfn` (ours,
    /// or one from [`Mm::new_l4`]).
    fn ensure_l1_in(&mut self, l4_mfn: u64, va: u64) -> Result<u64, Errno> {
        self.ensure_table_in(l4_mfn, va, 1)
    }

    /// The mfn of `va`'s table of `level` (1..=3) on the walk from
    /// `l4_mfn`, making and hooking in any missing table above it.
    fn ensure_table_in(&mut self, l4_mfn: u64, va: u64, level: u32) -> Result<u64, Errno> {
        if !pte::is_canonical(va) || pte::in_hypervisor_hole(va) {
            return Err(Errno::EINVAL);
        }
        let mut table = l4_mfn;
        for level in (level + 1..=4).rev() {
            let index = table_offset(va, level);
            let e = self.read_entry(table, index).ok_or(Errno::EINVAL)?;
            table = if present(e) {
                if level < 4 && e & _PAGE_PSE != 0 {
                    return Err(Errno::EINVAL);
                }
                pte_mfn(e)
            } else {
                let mfn = self.new_table(level - 1)?;
                // SAFETY: the slot was empty, so no memory in use changes;
                // the new table is pinned, so it stays a table even if this
                // fails (it is then leaked, pinned, which is harmless).
                unsafe { self.write_entry(table, index, pte::pte(mfn, TABLE_FLAGS))? };
                mfn
            };
        }
        Ok(table)
    }

    /// Maps `pfn` at `va` (a page outside the initial mapping and the
    /// hypervisor's hole), read-only or writable, writing the L1 entry with
    /// `mmu_update`; makes the tables on the way.
    ///
    /// # Safety
    /// Whatever `va` mapped before is gone: nothing may still use it. A
    /// writable mapping of a frame lets Rust code alias it: the caller keeps
    /// the frame's other uses in order.
    pub unsafe fn map(&mut self, va: u64, pfn: u64, writable: bool) -> Result<(), Errno> {
        if !va.is_multiple_of(PAGE_SIZE) {
            return Err(Errno::EINVAL);
        }
        let mfn = self.p2m(pfn).ok_or(Errno::EINVAL)?;
        let l1 = self.ensure_l1(va)?;
        let flags = if writable { LEAF_RW } else { LEAF_RO };
        // SAFETY: the caller gives up what `va` mapped.
        unsafe { self.write_entry(l1, l1_table_offset(va), pte::pte(mfn, flags)) }
    }

    /// Maps up to `max_pages` free frames from past the initial mapping at
    /// `va..`, in whole 2 MiB blocks, leaving `keep` such frames free; returns
    /// how many pages are mapped (contiguous from `va`). For large areas
    /// (Dom0's heap): each block's L1 table is a free frame filled whole
    /// through `scratch_va` before it is pinned, so a block costs a few
    /// hypercalls and none of the scarce frames of the initial mapping,
    /// where [`Mm::map`] takes one hypercall a page and an L1 from there.
    ///
    /// # Safety
    /// `va..` (as far as it is mapped) and `scratch_va` must be unused:
    /// whatever they mapped is gone. `va` must be 2 MiB aligned, outside
    /// the initial mapping, and have no L1 tables yet.
    pub unsafe fn map_fresh(&mut self, va: u64, max_pages: u64, keep: u64, scratch_va: u64) -> Result<u64, Errno> {
        const BLOCK: u64 = pte::ENTRIES as u64;
        if !va.is_multiple_of(BLOCK * PAGE_SIZE) || self.in_initial_mapping(va) {
            return Err(Errno::EINVAL);
        }
        let mut done = 0;
        // One frame for the L1 table and a full block of pages each time.
        while done + BLOCK <= max_pages && self.frames.high_remaining() > keep + BLOCK {
            let block_va = va + done * PAGE_SIZE;
            let l2 = self.ensure_table_in(self.l4_mfn, block_va, 2)?;
            let Some(l1_pfn) = self.frames.alloc_high() else { break };
            let l1_mfn = self.p2m(l1_pfn).ok_or(Errno::EINVAL)?;
            // SAFETY: the caller gives scratch_va up; the frame is free.
            unsafe { self.map(scratch_va, l1_pfn, true)? };
            for i in 0..BLOCK as usize {
                let pfn = self.frames.alloc_high().ok_or(Errno::ENOMEM)?;
                let mfn = self.p2m(pfn).ok_or(Errno::EINVAL)?;
                // SAFETY: scratch_va maps the L1-to-be, a whole writable page.
                unsafe { ptr::write_volatile((scratch_va as *mut u64).add(i), pte::pte(mfn, LEAF_RW)) };
            }
            // A page table may have no writable mapping anywhere.
            // SAFETY: done writing through scratch_va.
            unsafe { self.unmap(scratch_va)? };
            let pin = MmuextOp::new(MMUEXT_PIN_L1_TABLE, l1_mfn, 0);
            // SAFETY: pinning a table that no L2 refers to changes no mapping.
            check(unsafe { guest::mmuext_op(&[pin], None, DOMID_SELF as u32) })?;
            // SAFETY: the caller gives `va..` up; the slot maps nothing of ours.
            unsafe { self.write_entry(l2, pte::l2_table_offset(block_va), pte::pte(l1_mfn, TABLE_FLAGS))? };
            done += BLOCK;
        }
        Ok(done)
    }

    /// Unmaps the page at `va` with `update_va_mapping(va, 0, UVMF_INVLPG)`;
    /// nothing to do when `va` has no L1 table.
    ///
    /// # Safety
    /// Nothing may use the page at `va` any more.
    pub unsafe fn unmap(&self, va: u64) -> Result<(), Errno> {
        if !va.is_multiple_of(PAGE_SIZE) || self.in_initial_mapping(va) {
            return Err(Errno::EINVAL);
        }
        if self.table_mfn(va, 1).is_none() {
            return Ok(());
        }
        // SAFETY: the caller gives the page up.
        check(unsafe { guest::update_va_mapping(va, 0, UVMF_INVLPG) }).map(drop)
    }

    /// A new, pinned, empty top-level table: a second address space, such
    /// as the one guest user mode runs on (`MMUEXT_NEW_USER_BASEPTR`). Xen
    /// fills in its own slots (256-271) when it validates the table; the
    /// guest's slots start empty, so none of our kernel's pages is in it.
    pub fn new_l4(&mut self) -> Result<u64, Errno> {
        self.new_table(4)
    }

    /// Maps `pfn` at `va` in the address space of top-level table `l4_mfn`
    /// (one from [`Mm::new_l4`]), read-only or writable, making the tables
    /// on the way.
    ///
    /// # Safety
    /// As [`Mm::map`], for the address space of `l4_mfn`.
    pub unsafe fn map_in(&mut self, l4_mfn: u64, va: u64, pfn: u64, writable: bool) -> Result<(), Errno> {
        if !va.is_multiple_of(PAGE_SIZE) {
            return Err(Errno::EINVAL);
        }
        let mfn = self.p2m(pfn).ok_or(Errno::EINVAL)?;
        let l1 = self.ensure_l1_in(l4_mfn, va)?;
        let flags = if writable { LEAF_RW } else { LEAF_RO };
        // SAFETY: the caller gives up what `va` mapped in that address space.
        unsafe { self.write_entry(l1, l1_table_offset(va), pte::pte(mfn, flags)) }
    }
}
