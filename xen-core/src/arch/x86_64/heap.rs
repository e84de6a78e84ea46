//! The hypervisor heap (Xen's xmalloc): a first-fit allocator over a region
//! of RAM reserved at boot.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;

use linked_list_allocator::Heap;
use spin::Mutex;

struct Locked(Mutex<Heap>);

#[global_allocator]
static HEAP: Locked = Locked(Mutex::new(Heap::empty()));

// SAFETY: every access goes through the mutex; the heap hands out disjoint blocks.
unsafe impl GlobalAlloc for Locked {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0.lock().allocate_first_fit(layout).map_or(core::ptr::null_mut(), |p| p.as_ptr())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(p) = NonNull::new(ptr) {
            // SAFETY: `ptr` came from `alloc` with this layout (GlobalAlloc's contract).
            unsafe { self.0.lock().deallocate(p, layout) }
        }
    }
}

/// Give the heap `[start, start + size)` (direct-mapped virtual addresses).
///
/// # Safety
/// The range is RAM nobody else uses, for the rest of the hypervisor's life.
pub unsafe fn init(start: u64, size: u64) {
    // SAFETY: forwarded from the caller.
    unsafe { HEAP.0.lock().init(start as *mut u8, size as usize) }
}
