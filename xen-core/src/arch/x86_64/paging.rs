//! The hypervisor's own page tables.
//!
//! After boot, the lower half belongs to guests: the idle page table maps
//! nothing but the direct map (all RAM, PML4 slot 262, 2 MiB pages,
//! supervisor-only, no-execute except over the hypervisor image). Every
//! guest L4 gets the same hypervisor slots, so the hypervisor keeps running
//! whichever guest's CR3 is loaded.

use xen_core::mm::pte::*;

pub fn phys_to_virt(pa: u64) -> u64 {
    DIRECTMAP_VIRT_START + pa
}

pub fn virt_to_phys(va: u64) -> u64 {
    va - DIRECTMAP_VIRT_START
}

/// Build the idle L4 covering `[0, top)` of machine memory in frames taken
/// from `alloc_frame` (each returned zeroed). Returns the L4's physical
/// address and the PML4 entries of the hypervisor slots.
pub fn build_idle_tables(top: u64, mut alloc_frame: impl FnMut() -> u64, nx: bool) -> (u64, [u64; 16]) {
    let table = |pa: u64| phys_to_virt(pa) as *mut u64;
    let l4 = alloc_frame();
    let l3 = alloc_frame();
    let image = super::image_phys_range();
    let gib = top.div_ceil(1 << 30).clamp(4, 512);
    for g in 0..gib {
        let l2 = alloc_frame();
        for i in 0..512u64 {
            let pa = (g << 30) | (i << 21);
            let exec = pa < image.1 && pa + (1 << 21) > image.0;
            let mut e = pa | _PAGE_PRESENT | _PAGE_RW | _PAGE_PSE | _PAGE_GLOBAL;
            if nx && !exec {
                e |= _PAGE_NX;
            }
            // SAFETY: l2 is a fresh, zeroed, direct-mapped frame we own.
            unsafe { table(l2).add(i as usize).write_volatile(e) };
        }
        // SAFETY: as above, for the L3.
        unsafe { table(l3).add(g as usize).write_volatile(l2 | _PAGE_PRESENT | _PAGE_RW) };
    }
    let slot = l4_index(DIRECTMAP_VIRT_START);
    // SAFETY: as above, for the L4.
    unsafe { table(l4).add(slot).write_volatile(l3 | _PAGE_PRESENT | _PAGE_RW) };
    let mut slots = [0u64; 16];
    slots[slot - FIRST_HYPERVISOR_SLOT] = l3 | _PAGE_PRESENT | _PAGE_RW;
    (l4, slots)
}

/// Map the M2P table's storage (`len` bytes from physical `pa`, page
/// aligned) read-only and user-accessible at `MACH2PHYS_VIRT_START` (PML4
/// slot 256), so guests can read it from ring 3 but never write it. Returns
/// the PML4 entry for slot 256.
pub fn map_m2p(pa: u64, len: u64, mut alloc_frame: impl FnMut() -> u64) -> u64 {
    let table = |pa: u64| phys_to_virt(pa) as *mut u64;
    let ro_user = _PAGE_PRESENT | _PAGE_USER;
    let l3 = alloc_frame();
    let l2 = alloc_frame();
    let pages = len.div_ceil(4096).min(512 * 512);
    let mut l1 = 0;
    for p in 0..pages {
        if p % 512 == 0 {
            l1 = alloc_frame();
            // SAFETY: l2 is a fresh, zeroed, direct-mapped frame we own.
            unsafe { table(l2).add((p / 512) as usize).write_volatile(l1 | ro_user) };
        }
        // SAFETY: as above, for the L1.
        unsafe { table(l1).add((p % 512) as usize).write_volatile((pa + p * 4096) | ro_user | _PAGE_NX) };
    }
    // SAFETY: as above, for the L3.
    unsafe { table(l3).write_volatile(l2 | ro_user) };
    l3 | ro_user
}

/// Load a vCPU's top-level table and drop every TLB entry, global ones
/// included, as Xen's `switch_cr3_cr4` does when it changes address space:
/// with CR4.PGE clear no entry is global, so the CR3 load flushes all, and
/// setting PGE again starts from an empty TLB. Guests may set `_PAGE_GLOBAL`,
/// and another vCPU (another domain's, above all) must not inherit them.
pub fn switch_cr3_flush_global(l4_maddr: u64, flags: u16) {
    use x86_64::registers::control::{Cr3, Cr4, Cr4Flags};
    let cr4 = Cr4::read();
    let frame = x86_64::structures::paging::PhysFrame::containing_address(x86_64::PhysAddr::new(l4_maddr));
    // SAFETY: the core hands over only validated guest L4s, which carry the
    // hypervisor's slots (this code, its stack and data stay mapped);
    // toggling PGE changes nothing but the TLB's contents. Interrupts are
    // off, so nothing runs between the three writes.
    unsafe {
        Cr4::write(cr4 - Cr4Flags::PAGE_GLOBAL);
        Cr3::write_raw(frame, flags);
        Cr4::write(cr4);
    }
}
