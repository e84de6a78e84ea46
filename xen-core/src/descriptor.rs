//! Segment descriptors a guest may install (Xen's `check_descriptor`) and
//! selectors it may put in front of the CPU.
//!
//! A PV kernel runs in ring 3 and must stay there: every code or data
//! descriptor it installs has DPL 3 (a lower DPL is raised to 3, as Xen
//! does), and system descriptors (call gates, TSS, LDT) are refused, since a
//! gate is a door into ring 0. On x86-64 no 32-bit segment limit can reach
//! the hypervisor's range, so base and limit need no check.

use hypercall_abi::arch::{FLAT_RING3_CS32, FLAT_RING3_CS64, FLAT_RING3_DS32};

const DESC_S: u64 = 1 << 44; // code/data (not system)
const DESC_P: u64 = 1 << 47;
const DESC_DPL: u64 = 3 << 45;
const DESC_CODE: u64 = 1 << 43;
const DESC_RW: u64 = 1 << 41; // readable code / writable data

/// First GDT entry the hypervisor reserves (selector 0xe000).
pub const FIRST_RESERVED_GDT_ENTRY: usize = 0xe000 / 8;
/// At most 14 pages of guest descriptors (`FIRST_RESERVED_GDT_PAGE`).
pub const MAX_GUEST_GDT_FRAMES: usize = 14;

/// The descriptor as it may be stored, or `None` if it must be refused.
pub fn check_descriptor(d: u64) -> Option<u64> {
    if d & DESC_P == 0 {
        // Not present: harmless whatever else it says.
        return Some(d);
    }
    if d & DESC_S == 0 {
        return None;
    }
    Some(d | DESC_DPL)
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum SegKind {
    Code,
    Stack,
    Data,
}

/// Whether `sel` (with RPL 3) can be loaded as `kind` from ring 3 without
/// faulting, given the guest's descriptors (`gdt[i]` for selector `i << 3`).
/// The hypervisor's flat selectors always can. Selectors into the LDT are
/// refused: no LDT is supported.
pub fn selector_ok(sel: u16, kind: SegKind, gdt: &dyn Fn(usize) -> Option<u64>) -> bool {
    match (kind, sel | 3) {
        (SegKind::Code, s) if s == FLAT_RING3_CS64 || s == FLAT_RING3_CS32 => return true,
        (SegKind::Stack | SegKind::Data, s) if s == FLAT_RING3_DS32 => return true,
        _ => {}
    }
    if kind == SegKind::Data && sel & !3 == 0 {
        return true; // null data selector
    }
    let index = (sel >> 3) as usize;
    if sel & 4 != 0 || index == 0 || index >= FIRST_RESERVED_GDT_ENTRY {
        return false;
    }
    let Some(d) = gdt(index) else { return false };
    let dpl3 = d & DESC_DPL == DESC_DPL;
    let present = d & DESC_P != 0 && d & DESC_S != 0;
    present
        && dpl3
        && match kind {
            SegKind::Code => d & DESC_CODE != 0,
            SegKind::Stack => d & DESC_CODE == 0 && d & DESC_RW != 0,
            SegKind::Data => d & DESC_CODE == 0 || d & DESC_RW != 0,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODE64_DPL0: u64 = 0x00af9a000000ffff;
    const DATA_DPL3: u64 = 0x00cff2000000ffff;

    #[test]
    fn descriptors_cannot_grant_ring_0() {
        let d = check_descriptor(CODE64_DPL0).unwrap();
        assert_eq!(d & DESC_DPL, DESC_DPL, "DPL raised to 3");
        // A 64-bit call gate into the hypervisor's code segment.
        let gate = 0x0000_ec00_e008_0000u64 | DESC_P;
        assert_eq!(check_descriptor(gate & !DESC_S), None);
        // A TSS descriptor.
        assert_eq!(check_descriptor(0x0000_8900_0000_0067), None);
        assert_eq!(check_descriptor(0x1234 & !DESC_P), Some(0x1234));
    }

    #[test]
    fn only_loadable_selectors_pass() {
        let gdt = |i: usize| match i {
            1 => Some(DATA_DPL3),
            2 => Some(CODE64_DPL0 | DESC_DPL),
            3 => Some(CODE64_DPL0),
            _ => None,
        };
        assert!(selector_ok(0xe033, SegKind::Code, &gdt));
        assert!(selector_ok(0xe02b, SegKind::Stack, &gdt));
        assert!(selector_ok(0x0b, SegKind::Stack, &gdt));
        assert!(selector_ok(0x13, SegKind::Code, &gdt));
        assert!(!selector_ok(0x1b, SegKind::Code, &gdt), "DPL 0 code");
        assert!(!selector_ok(0x0b, SegKind::Code, &gdt), "data as code");
        assert!(!selector_ok(0x13, SegKind::Stack, &gdt), "code as stack");
        assert!(!selector_ok(0xe008, SegKind::Code, &gdt), "the hypervisor's own");
        assert!(!selector_ok(0x0f, SegKind::Data, &gdt), "LDT");
        assert!(!selector_ok(0, SegKind::Stack, &gdt), "null stack in ring 3");
        assert!(selector_ok(0, SegKind::Data, &gdt));
    }
}
