//! Page-table entries and indices of x86-64 4-level paging, with Xen's names
//! (`l1_table_offset`, `l4e`), and the entry flags our kernels use.

use hypercall_abi::arch::{HYPERVISOR_VIRT_END, HYPERVISOR_VIRT_START};
use hypercall_abi::mm::{
    PAGE_SHIFT, PTE_PADDR_MASK, _PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_PRESENT, _PAGE_RW, _PAGE_USER,
};

pub const ENTRIES: usize = 512;

pub const L1_PAGETABLE_SHIFT: u32 = 12;
pub const L2_PAGETABLE_SHIFT: u32 = 21;
pub const L3_PAGETABLE_SHIFT: u32 = 30;
pub const L4_PAGETABLE_SHIFT: u32 = 39;

/// Index of `va`'s entry in the table of `level` (1 = L1 ... 4 = L4).
pub const fn table_offset(va: u64, level: u32) -> usize {
    ((va >> (PAGE_SHIFT + 9 * (level - 1))) & 511) as usize
}
pub const fn l1_table_offset(va: u64) -> usize {
    table_offset(va, 1)
}
pub const fn l2_table_offset(va: u64) -> usize {
    table_offset(va, 2)
}
pub const fn l3_table_offset(va: u64) -> usize {
    table_offset(va, 3)
}
pub const fn l4_table_offset(va: u64) -> usize {
    table_offset(va, 4)
}

/// Flags of an intermediate entry (L4, L3, L2 pointing at the next table):
/// as Linux's `_PAGE_TABLE`. Xen forces `_PAGE_USER` on 64-bit PV guests'
/// entries anyway, since their kernel runs in ring 3.
pub const TABLE_FLAGS: u64 = _PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED | _PAGE_DIRTY;
/// Flags of a read-only leaf.
pub const LEAF_RO: u64 = _PAGE_PRESENT | _PAGE_ACCESSED;
/// Flags of a writable leaf (dirty already set: no A/D assist needed).
pub const LEAF_RW: u64 = _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY;

/// An entry pointing at machine frame `mfn` with `flags`.
pub const fn pte(mfn: u64, flags: u64) -> u64 {
    ((mfn << PAGE_SHIFT) & PTE_PADDR_MASK) | flags
}

pub const fn present(e: u64) -> bool {
    e & _PAGE_PRESENT != 0
}

/// Bits 63..47 all equal to bit 47.
pub const fn is_canonical(va: u64) -> bool {
    let top = (va as i64) >> 47;
    top == 0 || top == -1
}

/// Inside the hole Xen keeps in every address space (L4 slots 256..272).
pub const fn in_hypervisor_hole(va: u64) -> bool {
    va >= HYPERVISOR_VIRT_START && va < HYPERVISOR_VIRT_END
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets() {
        let va = 0x0000_2000_4060_3123u64;
        assert_eq!(l4_table_offset(va), 64);
        assert_eq!(l3_table_offset(va), 1);
        assert_eq!(l2_table_offset(va), 3);
        assert_eq!(l1_table_offset(va), 3);
        assert_eq!(l4_table_offset(HYPERVISOR_VIRT_START), 256);
        assert_eq!(l4_table_offset(HYPERVISOR_VIRT_END - 1), 271);
    }

    #[test]
    fn entries() {
        assert_eq!(pte(0x1234, LEAF_RW), 0x0123_4063);
        assert_eq!(pte(1 << 41, LEAF_RO), LEAF_RO, "bits past 52 are not an address");
        assert!(present(pte(5, LEAF_RO)));
        assert!(!present(0x1000));
    }

    #[test]
    fn address_classes() {
        assert!(is_canonical(0x0000_7fff_ffff_f000));
        assert!(is_canonical(0xffff_8000_0000_0000));
        assert!(!is_canonical(0x0000_8000_0000_0000));
        assert!(in_hypervisor_hole(0xffff_8300_0000_0000));
        assert!(!in_hypervisor_hole(0xffff_8800_0000_0000));
    }
}
