//! The start-of-day memory layout of a PV domU, as libxc's PV builder
//! (`xg_dom_x86.c`, `xg_dom_core.c`) arranges it and `xen.h` documents it:
//!
//! 1. the kernel's segments (and nothing below them is used),
//! 2. the initial ramdisk, if any (`ramdisk=`; `start_info.mod_start` is
//!    its virtual address),
//! 3. the P2M list (`nr_pages` MFNs),
//! 4. start_info, the xenstore page, the console page (a page each),
//! 5. the bootstrap page tables (L4 first),
//! 6. one page of boot stack,
//!
//! then padding to a 4 MiB boundary with at least 512 KiB to spare; all of
//! `[v_start, v_end)` is mapped onto pfns `0..` in order, the page-table
//! frames read-only. Pure arithmetic, tested on the host.

use hypercall_abi::mm::{_PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_PRESENT, _PAGE_RW, _PAGE_USER};

pub const PAGE_SIZE: u64 = 4096;
const MB4: u64 = 4 << 20;
/// libxc's padding after the boot stack.
const PADDING: u64 = 512 << 10;
/// More bootstrap page-table frames than this means an absurd image.
const MAX_PT_PAGES: u64 = 1 << 12;

/// libxc's `L1_PROT` and `L2_PROT` (used for L2-L4) on x86-64.
pub const L1_PROT: u64 = _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_USER;
pub const TABLE_PROT: u64 = _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY | _PAGE_USER;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub v_start: u64,
    pub vkern_start: u64,
    pub vkern_end: u64,
    /// pfns of each element.
    pub ramdisk_pfn: u64,
    pub ramdisk_len: u64,
    pub p2m_pfn: u64,
    pub nr_p2m_pages: u64,
    pub start_info_pfn: u64,
    pub xenstore_pfn: u64,
    pub console_pfn: u64,
    pub pt_pfn: u64,
    pub nr_pt_pages: u64,
    pub stack_pfn: u64,
    /// End of the initial mapping.
    pub v_end: u64,
    /// How many of each level's tables, from L4 down: `[L4, L3, L2, L1]`.
    pub tables: [u64; 4],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// Addresses overflow or reach the hypervisor's hole: the image lies.
    BadImage,
    /// The domain needs at least this many pages for its initial mapping.
    TooLittleMemory { needed_pages: u64 },
}

const fn shift(level: u32) -> u32 {
    12 + 9 * (level - 1)
}

/// Tables of `level` (1 = L1 ... 4 = L4) needed to map `[lo, hi)`.
fn tables_for(lo: u64, hi: u64, level: u32) -> u64 {
    if level == 4 {
        return 1;
    }
    // A table of `level` spans what one entry of `level + 1` maps.
    let s = shift(level + 1);
    ((hi - 1) >> s) - (lo >> s) + 1
}

impl Layout {
    pub fn compute(v_start: u64, vkern_start: u64, vkern_end: u64, ramdisk_len: u64, nr_pages: u64) -> Result<Layout, LayoutError> {
        let pgup = |x: u64| x.checked_add(PAGE_SIZE - 1).map(|v| v & !(PAGE_SIZE - 1));
        if vkern_start < v_start || vkern_end < vkern_start || !v_start.is_multiple_of(PAGE_SIZE) {
            return Err(LayoutError::BadImage);
        }
        let kern_end = pgup(vkern_end).ok_or(LayoutError::BadImage)?;
        let pfn = |va: u64| (va - v_start) / PAGE_SIZE;
        let ramdisk_pfn = pfn(kern_end);
        let p2m_pfn = ramdisk_pfn.checked_add(ramdisk_len.div_ceil(PAGE_SIZE)).ok_or(LayoutError::BadImage)?;
        let nr_p2m_pages = nr_pages.checked_mul(8).ok_or(LayoutError::BadImage)?.div_ceil(PAGE_SIZE);
        let start_info_pfn = p2m_pfn + nr_p2m_pages;
        let xenstore_pfn = start_info_pfn + 1;
        let console_pfn = xenstore_pfn + 1;
        let pt_pfn = console_pfn + 1;
        for nr_pt_pages in 1..=MAX_PT_PAGES {
            let stack_pfn = pt_pfn + nr_pt_pages;
            let alloc_end = v_start
                .checked_add((stack_pfn + 1).checked_mul(PAGE_SIZE).ok_or(LayoutError::BadImage)?)
                .ok_or(LayoutError::BadImage)?;
            let v_end = alloc_end.checked_add(PADDING + MB4 - 1).ok_or(LayoutError::BadImage)? & !(MB4 - 1);
            // The initial mapping must stay out of the hypervisor's hole.
            use hypercall_abi::arch::{HYPERVISOR_VIRT_END, HYPERVISOR_VIRT_START};
            if v_start < HYPERVISOR_VIRT_END && v_end > HYPERVISOR_VIRT_START {
                return Err(LayoutError::BadImage);
            }
            let tables = [4, 3, 2, 1].map(|l| tables_for(v_start, v_end, l));
            if tables.iter().sum::<u64>() <= nr_pt_pages {
                let l = Layout {
                    v_start,
                    vkern_start,
                    vkern_end,
                    ramdisk_pfn,
                    ramdisk_len,
                    p2m_pfn,
                    nr_p2m_pages,
                    start_info_pfn,
                    xenstore_pfn,
                    console_pfn,
                    pt_pfn,
                    nr_pt_pages,
                    stack_pfn,
                    v_end,
                    tables,
                };
                if l.pages() > nr_pages {
                    return Err(LayoutError::TooLittleMemory { needed_pages: l.pages() });
                }
                return Ok(l);
            }
        }
        Err(LayoutError::BadImage)
    }

    /// Pages of the initial mapping.
    pub fn pages(&self) -> u64 {
        (self.v_end - self.v_start) / PAGE_SIZE
    }
    pub fn va(&self, pfn: u64) -> u64 {
        self.v_start + pfn * PAGE_SIZE
    }
    pub fn pfn(&self, va: u64) -> u64 {
        (va - self.v_start) / PAGE_SIZE
    }
    pub fn is_page_table(&self, pfn: u64) -> bool {
        (self.pt_pfn..self.pt_pfn + self.nr_pt_pages).contains(&pfn)
    }

    /// Index among the page-table frames of the first table of `level`
    /// (the L4 is 0, then the L3s, L2s and L1s).
    fn first_table(&self, level: u32) -> u64 {
        self.tables[..(4 - level) as usize].iter().sum()
    }

    /// The level (4..=1) of page-table frame `i` and its number within the level.
    pub fn table_level(&self, i: u64) -> Option<(u32, u64)> {
        let mut first = 0;
        for (k, &n) in self.tables.iter().enumerate() {
            if i < first + n {
                return Some((4 - k as u32, i - first));
            }
            first += n;
        }
        None
    }

    /// The contents of page-table frame `i`, given the domain's P2M (`p2m[pfn]`
    /// = mfn). Frames past the needed tables are left empty.
    pub fn table(&self, i: u64, p2m: &[u64], out: &mut [u64; 512]) {
        out.fill(0);
        let Some((level, n)) = self.table_level(i) else { return };
        // The first address this table maps: `v_start` rounded down to the
        // span of one table of this level, plus n spans.
        let span_shift = if level == 4 { 48 } else { shift(level + 1) };
        let base = ((self.v_start >> span_shift) << span_shift).wrapping_add(n << span_shift);
        let entry_shift = shift(level);
        for (idx, e) in out.iter_mut().enumerate() {
            let va = base.wrapping_add((idx as u64) << entry_shift);
            let va_end = va.saturating_add(1u64 << entry_shift);
            if va_end <= self.v_start || va >= self.v_end {
                continue;
            }
            *e = if level == 1 {
                let pfn = self.pfn(va);
                let prot = if self.is_page_table(pfn) { L1_PROT & !_PAGE_RW } else { L1_PROT };
                (p2m[pfn as usize] << 12) | prot
            } else {
                let child = (va >> entry_shift) - (self.v_start >> entry_shift);
                let child_pfn = self.pt_pfn + self.first_table(level - 1) + child;
                (p2m[child_pfn as usize] << 12) | TABLE_PROT
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_follow_libxcs_order() {
        // Our kernels: linked at 1 MiB, v_start 0; 16 MiB of memory.
        let l = Layout::compute(0, 0x100000, 0x116110, 0, 4096).unwrap();
        assert_eq!(l.p2m_pfn, 0x117);
        assert_eq!(l.nr_p2m_pages, 8);
        assert_eq!(l.start_info_pfn, 0x11f);
        assert_eq!((l.xenstore_pfn, l.console_pfn, l.pt_pfn), (0x120, 0x121, 0x122));
        assert_eq!(l.tables, [1, 1, 1, 2]);
        assert_eq!(l.nr_pt_pages, 5);
        assert_eq!(l.stack_pfn, 0x127);
        assert_eq!(l.v_end, 0x400000);
        assert!(l.v_end - (l.stack_pfn + 1) * 4096 >= 512 << 10);
    }

    #[test]
    fn too_little_memory_says_how_much_is_needed() {
        assert_eq!(Layout::compute(0, 0x100000, 0x116110, 0, 512), Err(LayoutError::TooLittleMemory { needed_pages: 1024 }));
        assert!(Layout::compute(0, 0x100000, u64::MAX - 5, 0, 4096).is_err());
        assert!(Layout::compute(0, 0x100000, 0xffff_8000_0000_0000, 0, 4096).is_err());
    }

    #[test]
    fn tables_map_the_region_and_themselves_read_only() {
        let l = Layout::compute(0, 0x100000, 0x116110, 0, 4096).unwrap();
        let p2m: std::vec::Vec<u64> = (0..4096).map(|p| 0x10000 + p).collect();
        let mut t = [0u64; 512];
        let mfn = |e: u64| (e >> 12) & 0xff_ffff_ffff;
        // L4 -> L3 -> L2 -> two L1s.
        l.table(0, &p2m, &mut t);
        assert_eq!(mfn(t[0]), p2m[(l.pt_pfn + 1) as usize]);
        assert_eq!(t[1..].iter().filter(|&&e| e != 0).count(), 0);
        l.table(1, &p2m, &mut t);
        assert_eq!(mfn(t[0]), p2m[(l.pt_pfn + 2) as usize]);
        l.table(2, &p2m, &mut t);
        assert_eq!((mfn(t[0]), mfn(t[1])), (p2m[(l.pt_pfn + 3) as usize], p2m[(l.pt_pfn + 4) as usize]));
        assert_eq!(t[2], 0);
        for i in 3..5 {
            l.table(i, &p2m, &mut t);
            for (k, e) in t.iter().enumerate() {
                let pfn = (i - 3) * 512 + k as u64;
                assert_eq!(mfn(*e), p2m[pfn as usize]);
                assert_eq!(*e & _PAGE_RW == 0, l.is_page_table(pfn), "pfn {pfn:#x}");
            }
        }
    }

    #[test]
    fn the_ramdisk_follows_the_kernel_and_moves_the_rest_up() {
        let plain = Layout::compute(0, 0x100000, 0x116110, 0, 4096).unwrap();
        let l = Layout::compute(0, 0x100000, 0x116110, 0x2001, 4096).unwrap();
        assert_eq!(l.ramdisk_pfn, 0x117);
        assert_eq!(l.p2m_pfn, 0x117 + 3);
        assert_eq!(l.stack_pfn, plain.stack_pfn + 3);
        assert_eq!(
            Layout::compute(0, 0x100000, 0x116110, 64 << 20, 4096),
            Err(LayoutError::TooLittleMemory { needed_pages: 0x4400 })
        );
        assert_eq!(Layout::compute(0, 0x100000, 0x116110, u64::MAX, 4096), Err(LayoutError::BadImage));
    }

    #[test]
    fn a_high_v_start_is_mapped_from_its_own_slots() {
        let v = 0xffff_ffff_8000_0000;
        let l = Layout::compute(v, v + 0x200000, v + 0x300000, 0, 8192).unwrap();
        let p2m: std::vec::Vec<u64> = (0..8192).collect();
        let mut t = [0u64; 512];
        l.table(0, &p2m, &mut t);
        assert_ne!(t[511], 0);
        l.table(1, &p2m, &mut t);
        assert_ne!(t[510], 0);
    }
}
