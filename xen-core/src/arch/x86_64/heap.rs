//! The hypervisor heap (Xen's xmalloc): a first-fit allocator over a region
//! of RAM reserved at boot (`bare_rt::heap`, shared with Dom0).

use bare_rt::heap::LockedHeap;

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

/// Give the heap `[start, start + size)` (direct-mapped virtual addresses).
///
/// # Safety
/// The range is RAM nobody else uses, for the rest of the hypervisor's life.
pub unsafe fn init(start: u64, size: u64) {
    // SAFETY: forwarded from the caller.
    unsafe { HEAP.init(start as *mut u8, size as usize) }
}
