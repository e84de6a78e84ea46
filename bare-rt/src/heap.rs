//! The heap both bare-metal images use (the hypervisor's xmalloc and Dom0's
//! heap): `linked_list_allocator`'s first-fit heap behind a spin lock, as a
//! global allocator. Each image gives it its region once at start of day.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;

use linked_list_allocator::Heap;
use spin::Mutex;

pub struct LockedHeap(Mutex<Heap>);

impl LockedHeap {
    /// A heap with no memory yet (every allocation fails until `init`).
    pub const fn empty() -> Self {
        LockedHeap(Mutex::new(Heap::empty()))
    }

    /// Give the heap `[start, start + size)`.
    ///
    /// # Safety
    /// The range is mapped, writable memory nobody else uses, for the rest
    /// of the program's life; called once, before any allocation.
    pub unsafe fn init(&self, start: *mut u8, size: usize) {
        // SAFETY: forwarded from the caller.
        unsafe { self.0.lock().init(start, size) }
    }

    /// Bytes not handed out.
    pub fn free(&self) -> usize {
        self.0.lock().free()
    }
}

// SAFETY: every access goes through the mutex; the heap hands out disjoint blocks.
unsafe impl GlobalAlloc for LockedHeap {
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
