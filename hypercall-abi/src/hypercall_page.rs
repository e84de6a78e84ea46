//! The 64-bit PV hypercall page, byte for byte as Xen writes it
//! (`hypercall_page_initialise_ring3_kernel`): 128 entries of 32 bytes, each
//! `push %rcx; push %r11; mov $nr,%eax; syscall; pop %r11; pop %rcx; ret`.
//! `syscall` clobbers `%rcx` and `%r11`; the pushes let a guest treat the
//! entry like a plain call. Entry 23 (`iret`) pushes `%rax` as well and never
//! returns: the guest `jmp`s to it with an [`crate::arch::IretContext`] on
//! its stack. Unused bytes are `int3` so a stray jump traps.

use crate::nr;

pub const PAGE_SIZE: usize = 4096;
/// Bytes per entry: entry `nr` starts at `nr * ENTRY_SIZE`.
pub const ENTRY_SIZE: usize = 32;

/// One ordinary entry.
pub const fn entry(nr: u32) -> [u8; 14] {
    let n = nr.to_le_bytes();
    [
        0x51, // push %rcx
        0x41, 0x53, // push %r11
        0xb8, n[0], n[1], n[2], n[3], // mov $nr,%eax
        0x0f, 0x05, // syscall
        0x41, 0x5b, // pop %r11
        0x59, // pop %rcx
        0xc3, // ret
    ]
}

/// The `iret` entry: the hypercall consumes the frame and does not return.
pub const fn iret_entry() -> [u8; 11] {
    let n = (nr::IRET as u32).to_le_bytes();
    [
        0x51, // push %rcx
        0x41, 0x53, // push %r11
        0x50, // push %rax
        0xb8, n[0], n[1], n[2], n[3], // mov $__HYPERVISOR_iret,%eax
        0x0f, 0x05, // syscall
    ]
}

/// Writes a complete hypercall page.
pub fn fill(page: &mut [u8; PAGE_SIZE]) {
    page.fill(0xcc);
    for (i, slot) in page.chunks_exact_mut(ENTRY_SIZE).enumerate() {
        if i as u64 == nr::IRET {
            let e = iret_entry();
            slot[..e.len()].copy_from_slice(&e);
        } else {
            let e = entry(i as u32);
            slot[..e.len()].copy_from_slice(&e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> [u8; PAGE_SIZE] {
        let mut p = [0u8; PAGE_SIZE];
        fill(&mut p);
        p
    }

    #[test]
    fn ordinary_entries_match_xen() {
        let p = page();
        let console_io = &p[18 * 32..19 * 32];
        assert_eq!(
            &console_io[..14],
            &[0x51, 0x41, 0x53, 0xb8, 18, 0, 0, 0, 0x0f, 0x05, 0x41, 0x5b, 0x59, 0xc3]
        );
        assert!(console_io[14..].iter().all(|&b| b == 0xcc));
        for i in 0..128usize {
            if i == 23 {
                continue;
            }
            let e = &p[i * 32..i * 32 + 14];
            assert_eq!(e[3], 0xb8);
            assert_eq!(u32::from_le_bytes([e[4], e[5], e[6], e[7]]), i as u32);
            assert_eq!(&e[8..10], &[0x0f, 0x05]);
        }
        assert_eq!(&p[127 * 32..127 * 32 + 8], &[0x51, 0x41, 0x53, 0xb8, 127, 0, 0, 0]);
    }

    #[test]
    fn iret_entry_pushes_rax_and_does_not_return() {
        let p = page();
        let iret = &p[23 * 32..24 * 32];
        assert_eq!(&iret[..11], &[0x51, 0x41, 0x53, 0x50, 0xb8, 23, 0, 0, 0, 0x0f, 0x05]);
        assert!(iret[11..].iter().all(|&b| b == 0xcc));
    }

    #[test]
    fn tails_are_int3() {
        let mut p = [0u8; PAGE_SIZE];
        fill(&mut p);
        for (i, slot) in p.chunks_exact(32).enumerate() {
            let used = if i == 23 { 11 } else { 14 };
            assert!(slot[used..].iter().all(|&b| b == 0xcc), "entry {i}");
        }
    }
}
