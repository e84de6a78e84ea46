//! What the fuzzer checks from inside after every call, reading its own
//! page tables (Xen lets a PV guest read them):
//!
//! - no entry of our slot maps one of our page tables writable (the escape
//!   every PV advisory ends in: a guest-writable page table);
//! - no L2 or L3 entry is a superpage (a PV guest may not make one);
//! - the hypervisor's slots of our L4 (256-271) are as they were built.
//!
//! And, for the differential mode, a digest of the guest-visible effect of
//! the call: every present entry of our slot's tables and our L4's free
//! slots, with frames named by what they are to us (`Sandbox::name_of`)
//! and the accessed/dirty bits left out (the CPU sets them).

use hypercall_abi::mm::{PAGE_SIZE, _PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_PRESENT, _PAGE_PSE, _PAGE_RW, pte_mfn};
use pv_rt::mm::Mm;

use super::sandbox::{Sandbox, L4_SLOT_FIRST, L4_SLOT_LAST};

pub struct Audit {
    /// Where we read our L4, L3, L2, L1 (their read-only aliases).
    tables: [u64; 4],
    pub findings: u32,
}

fn read(va: u64, i: u64) -> u64 {
    // SAFETY: `va` is the alias of one of our page tables, which stays
    // mapped (read-only) for the domain's life; i < 512.
    unsafe { core::ptr::read_volatile((va as *const u64).add(i as usize)) }
}

impl Audit {
    pub fn new(mm: &Mm, sb: &Sandbox) -> Audit {
        let alias = |mfn| mm.mfn_to_pfn(mfn).and_then(|pfn| mm.alias(pfn)).unwrap_or(0);
        Audit { tables: [alias(sb.l4), alias(sb.l3), alias(sb.l2), alias(sb.l1)], findings: 0 }
    }

    /// The entries the checks and the digest look at: (table, first, last).
    fn ranges(&self) -> [(usize, u64, u64); 4] {
        [(0, 81, 81), (0, L4_SLOT_FIRST, L4_SLOT_LAST), (1, 0, 511), (2, 0, 511)]
    }

    /// Checks the promises; the first broken one, if any, is returned (and
    /// counted).
    pub fn after_call(&mut self, _mm: &Mm, sb: &Sandbox) -> Option<&'static str> {
        let what = self.check(sb);
        if what.is_some() {
            self.findings += 1;
        }
        what
    }

    fn check(&self, sb: &Sandbox) -> Option<&'static str> {
        if self.tables.contains(&0) {
            return None;
        }
        for (i, &e) in sb.xen_slots.iter().enumerate() {
            if read(self.tables[0], 256 + i as u64) != e {
                return Some("the hypervisor's slots of our L4 changed");
            }
        }
        let tables = [sb.l4, sb.l3, sb.l2, sb.l1];
        for i in 0..512 {
            let e = read(self.tables[3], i);
            if e & (_PAGE_PRESENT | _PAGE_RW) == _PAGE_PRESENT | _PAGE_RW && tables.contains(&pte_mfn(e)) {
                return Some("guest-writable mapping of a page table");
            }
        }
        for t in [1, 2] {
            for i in 0..512 {
                let e = read(self.tables[t], i);
                if e & (_PAGE_PRESENT | _PAGE_PSE) == _PAGE_PRESENT | _PAGE_PSE {
                    return Some("superpage in an L2 or L3");
                }
            }
        }
        None
    }

    /// FNV-1a over the present entries of our slot, frames named.
    pub fn digest(&self, _mm: &Mm, sb: &Sandbox) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut mix = |v: u64| {
            h ^= v;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        };
        if self.tables.contains(&0) {
            return 0;
        }
        let mut one = |t: usize, i: u64| {
            let e = read(self.tables[t], i);
            if e & _PAGE_PRESENT != 0 {
                mix((t as u64) << 16 | i);
                mix(e & !(pte_mask()) & !(_PAGE_ACCESSED | _PAGE_DIRTY));
                mix(sb.name_of(pte_mfn(e)));
            }
        };
        for (t, a, b) in self.ranges() {
            for i in a..=b {
                one(t, i);
            }
        }
        for i in 0..512 {
            one(3, i);
        }
        h
    }
}

/// The frame-number bits of an entry.
fn pte_mask() -> u64 {
    hypercall_abi::mm::PTE_PADDR_MASK & !(PAGE_SIZE - 1)
}
