//! Dom0's heap, for the store's nodes, watches and queues: a first-fit
//! allocator (the `linked_list_allocator` crate the hypervisor also uses)
//! over a static area of Dom0's image. Its size bounds what the store can
//! hold; the store's per-domain quotas keep guests well inside it.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{addr_of_mut, NonNull};

use linked_list_allocator::Heap;
use spin::Mutex;

// 16 MiB: the store, and files the host sends (`host_files`,
// `host_channel`: a request being read, and those kept). More would not
// fit Xen's Dom0 builder with dom0_mem=64M ("allocation is too small for
// kernel image").
const HEAP_SIZE: usize = 16 << 20;

#[repr(align(4096))]
struct Area([u8; HEAP_SIZE]);

static mut AREA: Area = Area([0; HEAP_SIZE]);

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

/// Hands the static area to the allocator; call once, before any allocation.
pub fn init() {
    // SAFETY: called once at start of day: AREA is named nowhere else, so
    // the heap owns it from here on.
    unsafe { HEAP.0.lock().init(addr_of_mut!(AREA.0) as *mut u8, HEAP_SIZE) }
}
