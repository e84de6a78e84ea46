//! The pseudo-physical frame allocator.
//!
//! A PV domain's memory is pfns `0..nr_pages`. The domain builder maps the
//! first ones 1:1 at `v_start` (the initial mapping): kernel, P2M list,
//! start_info, the bootstrap page tables and stack, then free padding up to
//! the end of the mapping. Everything past the initial mapping is free and
//! mapped nowhere.
//!
//! Two pools, because the two kinds of page want different things:
//! - `low`, the free padding inside the initial mapping: each page has an
//!   alias at `v_start + pfn * 4096` through which the kernel can read it.
//!   Page tables come from here (we read our tables through that alias).
//! - `high`, the pages past the initial mapping: mapped nowhere, so a page
//!   handed out from here has no writable alias to take down first.

use heapless::Vec;

/// How many freed frames are kept for reuse; more are dropped (leaked to us,
/// never given back to Xen), which a small kernel can afford.
const FREE_SLOTS: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool {
    next: u64,
    end: u64,
}

impl Pool {
    pub const fn new(start: u64, end: u64) -> Pool {
        Pool { next: start, end: if end > start { end } else { start } }
    }

    fn take(&mut self) -> Option<u64> {
        (self.next < self.end).then(|| {
            self.next += 1;
            self.next - 1
        })
    }

    pub fn remaining(&self) -> u64 {
        self.end - self.next
    }

    fn contains(&self, pfn: u64) -> bool {
        pfn < self.end
    }
}

#[derive(Debug)]
pub struct FrameAllocator {
    low: Pool,
    high: Pool,
    free_low: Vec<u64, FREE_SLOTS>,
    free_high: Vec<u64, FREE_SLOTS>,
}

impl FrameAllocator {
    /// `low` = `[low_start, high_start)`, `high` = `[high_start, nr_pages)`.
    pub fn new(low_start: u64, high_start: u64, nr_pages: u64) -> FrameAllocator {
        let high_start = high_start.min(nr_pages);
        FrameAllocator {
            low: Pool::new(low_start, high_start),
            high: Pool::new(high_start, nr_pages),
            free_low: Vec::new(),
            free_high: Vec::new(),
        }
    }

    /// A frame of the initial mapping (it has a 1:1 alias).
    pub fn alloc_low(&mut self) -> Option<u64> {
        self.free_low.pop().or_else(|| self.low.take())
    }

    /// A frame past the initial mapping if any is left, else a low one.
    pub fn alloc(&mut self) -> Option<u64> {
        self.free_high.pop().or_else(|| self.high.take()).or_else(|| self.alloc_low())
    }

    /// A frame past the initial mapping (mapped nowhere), if any is left.
    pub fn alloc_high(&mut self) -> Option<u64> {
        self.free_high.pop().or_else(|| self.high.take())
    }

    /// Returns `pfn` for reuse. The caller has unmapped it everywhere it
    /// mapped it (and restored its alias if it was a low frame).
    pub fn free(&mut self, pfn: u64) {
        let list = if self.low.contains(pfn) { &mut self.free_low } else { &mut self.free_high };
        // A full list drops the frame: see FREE_SLOTS.
        let _ = list.push(pfn);
    }

    pub fn low_remaining(&self) -> u64 {
        self.low.remaining() + self.free_low.len() as u64
    }

    pub fn high_remaining(&self) -> u64 {
        self.high.remaining() + self.free_high.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn high_pool_first_then_low() {
        let mut a = FrameAllocator::new(10, 12, 14);
        assert_eq!(a.alloc(), Some(12));
        assert_eq!(a.alloc(), Some(13));
        assert_eq!(a.alloc(), Some(10));
        assert_eq!(a.alloc(), Some(11));
        assert_eq!(a.alloc(), None);
    }

    #[test]
    fn low_frames_only_from_the_initial_mapping() {
        let mut a = FrameAllocator::new(10, 11, 100);
        assert_eq!(a.alloc_low(), Some(10));
        assert_eq!(a.alloc_low(), None);
        assert_eq!(a.high_remaining(), 89);
    }

    #[test]
    fn freed_frames_return_to_their_pool() {
        let mut a = FrameAllocator::new(10, 12, 14);
        let (h, l) = (a.alloc().unwrap(), a.alloc_low().unwrap());
        a.free(l);
        a.free(h);
        assert_eq!(a.alloc_low(), Some(l));
        assert_eq!(a.alloc(), Some(h));
        assert_eq!(a.low_remaining(), 1);
    }

    #[test]
    fn empty_or_inverted_ranges_hand_out_nothing() {
        let mut a = FrameAllocator::new(20, 10, 5);
        assert_eq!(a.alloc(), None);
        assert_eq!(a.alloc_low(), None);
    }
}
