//! The initial virtual memory arrangement of a PV domain, computed exactly as
//! Xen's builder does (the order is documented in `xen.h`, "start of day
//! memory layout"): kernel, initial ramdisk, P2M list, start_info, page
//! tables, boot stack, then padding up to a 4 MiB boundary with at least
//! 512 KiB to spare. The region maps 1:1 onto the domain's first
//! pseudo-physical pages.

use crate::mm::types::{round_pgdown, PAGE_SIZE};

/// More initial page tables than this means an absurd image (this maps 64 GiB).
const MAX_PT_PAGES: u64 = 1 << 15;

const MB4: u64 = 1 << 22;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub v_start: u64,
    pub vkern_start: u64,
    pub vkern_end: u64,
    pub vinitrd_start: u64,
    pub vinitrd_end: u64,
    pub vphysmap_start: u64,
    pub vphysmap_end: u64,
    pub vstartinfo_start: u64,
    pub vstartinfo_end: u64,
    pub vpt_start: u64,
    pub vpt_end: u64,
    pub nr_pt_pages: u64,
    pub vstack_start: u64,
    pub vstack_end: u64,
    pub v_end: u64,
}

/// Frames of `1 << shift` bytes needed to cover `[lo, hi)`. Rounds by
/// shifting, not by adding, so a kernel in the top 512 GiB (Linux's
/// `__START_KERNEL_map`) cannot overflow it.
fn nr(lo: u64, hi: u64, shift: u32) -> Option<u64> {
    let mask = (1u64 << shift) - 1;
    let top = (hi >> shift) + u64::from(hi & mask != 0);
    top.checked_sub(lo >> shift)
}

/// `start_info` plus Dom0's VGA console info behind it (Xen reserves both).
const START_INFO_BYTES: u64 = core::mem::size_of::<hypercall_abi::start_info::StartInfo>() as u64 + 64;

impl Layout {
    /// `None` when the addresses overflow: the image lies about itself.
    pub fn compute(v_start: u64, vkern_start: u64, vkern_end: u64, initrd_len: u64, nr_pages: u64) -> Option<Layout> {
        let pgup = |x: u64| x.checked_add(PAGE_SIZE - 1).map(round_pgdown);
        let vinitrd_start = pgup(vkern_end)?;
        let vinitrd_end = vinitrd_start.checked_add(initrd_len)?;
        let vphysmap_start = pgup(vinitrd_end)?;
        let vphysmap_end = vphysmap_start.checked_add(nr_pages.checked_mul(8)?)?;
        let vstartinfo_start = pgup(vphysmap_end)?;
        let vstartinfo_end = vstartinfo_start.checked_add(START_INFO_BYTES)?;
        let vpt_start = pgup(vstartinfo_end)?;
        // The count converges within a few rounds for any real image; the
        // bound only stops a hostile one from spinning here.
        for nr_pt_pages in 2u64..=MAX_PT_PAGES {
            let vpt_end = vpt_start.checked_add(nr_pt_pages * 4096)?;
            let vstack_start = vpt_end;
            let vstack_end = vstack_start.checked_add(4096)?;
            let mut v_end = vstack_end.checked_add(MB4 - 1)? & !(MB4 - 1);
            let v_end_hi = v_end.checked_add(MB4)?;
            if v_end - vstack_end < 512 << 10 {
                v_end = v_end_hi;
            }
            // One L4, then the L3s, L2s and L1s that cover [v_start, v_end).
            let needed = 1 + nr(v_start, v_end, 39)? + nr(v_start, v_end, 30)? + nr(v_start, v_end, 21)?;
            if needed <= nr_pt_pages {
                return Some(Layout {
                    v_start,
                    vkern_start,
                    vkern_end,
                    vinitrd_start,
                    vinitrd_end,
                    vphysmap_start,
                    vphysmap_end,
                    vstartinfo_start,
                    vstartinfo_end,
                    vpt_start,
                    vpt_end,
                    nr_pt_pages,
                    vstack_start,
                    vstack_end,
                    v_end,
                });
            }
        }
        None
    }

    pub fn pages(&self) -> u64 {
        (self.v_end - self.v_start) >> 12
    }

    pub fn pfn_of(&self, va: u64) -> u64 {
        (va - self.v_start) >> 12
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_follow_xens_order_and_padding() {
        let l = Layout::compute(0, 0x100000, 0x123456, 0x3000, 16384).unwrap();
        assert_eq!(l.vinitrd_start, 0x124000);
        assert_eq!(l.vphysmap_start, 0x127000);
        assert_eq!(l.vphysmap_end, 0x127000 + 16384 * 8);
        assert_eq!(l.vstartinfo_start, l.vphysmap_end);
        assert_eq!(l.vpt_start, l.vstartinfo_start + 0x1000);
        assert_eq!(l.vstack_start, l.vpt_end);
        assert_eq!(l.v_end % (4 << 20), 0);
        assert!(l.v_end - l.vstack_end >= 512 << 10);
        // 4 MiB from 0: one L4, one L3, one L2, two L1s.
        assert_eq!(l.nr_pt_pages, 5);
    }

    #[test]
    fn a_kernel_in_the_top_512_gib_has_a_layout() {
        // Debian's Linux 6.1: virt_base 0xffffffff80000000, kernel at +16 MiB.
        let (base, k) = (0xffff_ffff_8000_0000u64, 0xffff_ffff_8100_0000u64);
        let l = Layout::compute(base, k, k + (62 << 20), 2 << 20, 131072).unwrap();
        assert!(l.v_end > l.vstack_end && l.v_end % (4 << 20) == 0);
        // One L4, one L3, one L2 (all within 1 GiB), an L1 per 2 MiB.
        assert_eq!(l.nr_pt_pages, 3 + (l.v_end - base) / (2 << 20));
        assert_eq!(nr(0, u64::MAX, 39), Some(1 << 25));
        assert_eq!(nr(u64::MAX - 5, u64::MAX, 21), Some(1));
    }

    #[test]
    fn absurd_images_do_not_overflow() {
        assert!(Layout::compute(0, 0, u64::MAX - 10, 0, 1).is_none());
        assert!(Layout::compute(0, 0, 0x1000, u64::MAX, 1).is_none());
    }
}
