//! Dom0's heap, for the store's nodes, watches and queues and for the
//! builder's unpacked kernels: the first-fit heap the hypervisor also
//! uses (`bare_rt::heap`) over Dom0's own free RAM, mapped at [`HEAP_VA`] at boot.
//!
//! Sized from Dom0's memory (`dom0_mem=`), not fixed in the image: the
//! builder unpacks a distribution's kernel here (Debian's Linux: 63 MiB
//! unpacked plus a 32 MiB XZ dictionary), as libxc unpacks into the
//! toolstack's own memory. A fixed area large enough for that would make
//! every Dom0 that size; this way a small Dom0 still boots and a kernel
//! that does not fit is an `xl` error saying how much is missing.

use bare_rt::heap::LockedHeap;
use hypercall_abi::Errno;
use pv_rt::mm::Mm;

/// Where the heap is mapped: away from the initial mapping and from the
/// toolstack's windows (`xl::VA_BASE`, 64 GiB).
pub const HEAP_VA: u64 = 0x20_0000_0000;
/// At most this much (the PML4 slot's L3 holds it with room to spare).
const HEAP_MAX: u64 = 16 << 30;
/// A page used once per 2 MiB block while the heap is mapped.
const SCRATCH_VA: u64 = HEAP_VA - 4096;
/// Free frames left to Dom0's memory manager for later page tables.
const KEEP_FRAMES: u64 = 256;

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

/// Maps Dom0's free RAM past its initial mapping at [`HEAP_VA`] and hands
/// it to the allocator; returns the heap's size in bytes. Call once, before
/// any allocation.
pub fn init(mm: &mut Mm) -> Result<u64, Errno> {
    // SAFETY: HEAP_VA.. and SCRATCH_VA are used by nothing else in Dom0.
    let pages = unsafe { mm.map_fresh(HEAP_VA, HEAP_MAX / 4096, KEEP_FRAMES, SCRATCH_VA)? };
    if pages == 0 {
        return Err(Errno::ENOMEM);
    }
    let size = pages * 4096;
    // SAFETY: called once at start of day; `map_fresh` just mapped these
    // pages writable for Dom0 alone, and nothing else names them.
    unsafe { HEAP.init(HEAP_VA as *mut u8, size as usize) };
    Ok(size)
}

/// Bytes free in the heap (for the builder's error messages).
pub fn free() -> usize {
    HEAP.free()
}
