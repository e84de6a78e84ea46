//! x86-64 page-table entries and the guest address-space map.

// The entry bits are part of the ABI (guests write them): one definition.
pub use hypercall_abi::mm::{
    _PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_GLOBAL, _PAGE_NX, _PAGE_PCD, _PAGE_PRESENT, _PAGE_PSE, _PAGE_PWT, _PAGE_RW,
    _PAGE_USER,
};

/// Bits 12..51: the frame an entry points at.
pub const PADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

pub const L1_SHIFT: u32 = 12;
pub const L2_SHIFT: u32 = 21;
pub const L3_SHIFT: u32 = 30;
pub const L4_SHIFT: u32 = 39;
pub const ENTRIES: u64 = 512;

/// The hypervisor's part of every address space: PML4 slots 256..=271
/// (`HYPERVISOR_VIRT_START`..`HYPERVISOR_VIRT_END` in `arch-x86/xen-x86_64.h`).
pub const HYPERVISOR_VIRT_START: u64 = 0xFFFF_8000_0000_0000;
pub const HYPERVISOR_VIRT_END: u64 = 0xFFFF_8800_0000_0000;
pub const FIRST_HYPERVISOR_SLOT: usize = 256;
pub const NR_HYPERVISOR_SLOTS: usize = 16;

/// Where this hypervisor keeps the direct map of all machine memory (slot 262,
/// as in Xen).
pub const DIRECTMAP_VIRT_START: u64 = 0xFFFF_8300_0000_0000;

pub const fn l4_index(va: u64) -> usize {
    ((va >> L4_SHIFT) & 511) as usize
}
pub const fn l3_index(va: u64) -> usize {
    ((va >> L3_SHIFT) & 511) as usize
}
pub const fn l2_index(va: u64) -> usize {
    ((va >> L2_SHIFT) & 511) as usize
}
pub const fn l1_index(va: u64) -> usize {
    ((va >> L1_SHIFT) & 511) as usize
}

pub const fn entry_mfn(e: u64) -> u64 {
    (e & PADDR_MASK) >> 12
}

/// A 48-bit virtual address is canonical when bits 63..47 are all equal.
pub const fn is_canonical(va: u64) -> bool {
    let top = (va as i64) >> 47;
    top == 0 || top == -1
}

/// Addresses a guest may never touch, map or hand to the hypervisor.
pub const fn in_hypervisor_range(va: u64) -> bool {
    va >= HYPERVISOR_VIRT_START && va < HYPERVISOR_VIRT_END
}

/// A guest-usable range `[start, end)`: canonical, no wrap, clear of the
/// hypervisor's slots.
pub fn guest_range_ok(start: u64, len: u64) -> bool {
    if len == 0 {
        return is_canonical(start) && !in_hypervisor_range(start);
    }
    let Some(last) = start.checked_add(len - 1) else { return false };
    is_canonical(start)
        && is_canonical(last)
        && (start as i64 >> 47) == (last as i64 >> 47)
        && !(start < HYPERVISOR_VIRT_END && last >= HYPERVISOR_VIRT_START)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypervisor_slots_are_never_a_guest_range() {
        assert!(!guest_range_ok(HYPERVISOR_VIRT_START, 1));
        assert!(!guest_range_ok(HYPERVISOR_VIRT_START - 4096, 8192));
        assert!(!guest_range_ok(HYPERVISOR_VIRT_END - 1, 1));
        assert!(guest_range_ok(HYPERVISOR_VIRT_END, 4096));
        assert!(guest_range_ok(0x100000, 4096));
        assert!(guest_range_ok(0xffff_ffff_8000_0000, 0x1000));
    }

    #[test]
    fn non_canonical_and_wrapping_ranges_are_refused() {
        assert!(!guest_range_ok(0x0000_8000_0000_0000, 1));
        assert!(!guest_range_ok(0x0000_7fff_ffff_f000, 0x2000));
        assert!(!guest_range_ok(u64::MAX, 2));
    }
}
