//! Property tests: arbitrary sequences of PV MMU hypercalls from a hostile
//! guest (random frames, levels, flags, batch sizes, domain ids) never panic,
//! never break an invariant, and leave no reference behind once the domain's
//! tables are unpinned and its memory given back.
//!
//! `PROPTEST_CASES` sets how many sequences run (CI's default is modest;
//! raise it for long runs: `PROPTEST_CASES=5000 cargo test -p xen-core props`).

use alloc::vec::Vec;

use proptest::prelude::*;

use super::invariants::{check, teardown};
use super::World;
use crate::domain::DomId;
use crate::mm::pte::*;
use crate::mm::Owner;
use hypercall_abi::mm::{MMUEXT_CLEAR_PAGE, MMUEXT_COPY_PAGE, MMUEXT_NEW_BASEPTR, MMUEXT_PIN_L1_TABLE, MMUEXT_UNPIN_TABLE};
use hypercall_abi::nr;

/// Which frame an operation names: one of the domain's own (by pfn, so the
/// interesting ones come up often), or any machine frame at all.
#[derive(Clone, Debug)]
enum Frame {
    Pfn(u64),
    PageTable(u64),
    Raw(u64),
}

#[derive(Clone, Debug)]
enum Op {
    /// `mmu_update` of entry `index` of a frame, naming `target`.
    Update { table: Frame, index: usize, target: Frame, flags: u64, cmd: u64, foreign: u16 },
    Batch { n: usize, table: Frame, target: Frame },
    Pin { frame: Frame, level: u32 },
    Unpin { frame: Frame },
    NewBaseptr { frame: Frame },
    UpdateVa { va_page: u64, target: Frame, flags: u64 },
    Balloon { out: bool, frame: Frame },
    ClearOrCopy { clear: bool, a: Frame, b: Frame },
}

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        4 => (0u64..300).prop_map(Frame::Pfn),
        3 => (0u64..8).prop_map(Frame::PageTable),
        2 => (0u64..9000).prop_map(Frame::Raw),
    ]
}

fn flags() -> impl Strategy<Value = u64> {
    let bits = [_PAGE_PRESENT, _PAGE_RW, _PAGE_USER, _PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_PSE, _PAGE_GLOBAL, _PAGE_NX, 1 << 52];
    proptest::collection::vec(any::<bool>(), bits.len()).prop_map(move |on| {
        bits.iter().zip(on).filter(|(_, b)| *b).fold(_PAGE_PRESENT, |acc, (bit, _)| acc | bit)
    })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (frame(), 0usize..512, frame(), flags(), 0u64..4, prop_oneof![Just(0x7ff0u16), Just(0), Just(1), any::<u16>()])
            .prop_map(|(table, index, target, flags, cmd, foreign)| Op::Update { table, index, target, flags, cmd, foreign }),
        1 => (1usize..40, frame(), frame()).prop_map(|(n, table, target)| Op::Batch { n, table, target }),
        3 => (frame(), 0u32..5).prop_map(|(frame, level)| Op::Pin { frame, level }),
        2 => frame().prop_map(|frame| Op::Unpin { frame }),
        1 => frame().prop_map(|frame| Op::NewBaseptr { frame }),
        3 => (0u64..1100, frame(), 0u64..8).prop_map(|(va_page, target, flags)| Op::UpdateVa { va_page, target, flags }),
        1 => (any::<bool>(), frame()).prop_map(|(out, frame)| Op::Balloon { out, frame }),
        1 => (any::<bool>(), frame(), frame()).prop_map(|(clear, a, b)| Op::ClearOrCopy { clear, a, b }),
    ]
}

impl World {
    fn mfn_of(&self, f: &Frame) -> u64 {
        let d = &self.xen.domains[&self.me()];
        match *f {
            Frame::Pfn(p) => d.p2m.get(p as usize).map_or(p, |m| m.0),
            Frame::PageTable(k) => {
                let p = self.layout.pfn_of(self.layout.vpt_start) + k % self.layout.nr_pt_pages;
                d.p2m[p as usize].0
            }
            Frame::Raw(m) => m,
        }
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Update { table, index, target, flags, cmd, foreign } => {
                let ptr = (self.mfn_of(table) << 12) + 8 * *index as u64 + cmd;
                let val = (self.mfn_of(target) << 12) | flags;
                self.mmu_update(ptr, val, *foreign as u64);
            }
            Op::Batch { n, table, target } => {
                let s = self.scratch;
                let t = self.mfn_of(table) << 12;
                let v = self.mfn_of(target) << 12;
                let mut reqs = Vec::new();
                for i in 0..*n as u64 {
                    reqs.extend_from_slice(&(t + 8 * (i % 512)).to_le_bytes());
                    let f = if i % 3 == 0 { _PAGE_PRESENT | _PAGE_RW } else { _PAGE_PRESENT };
                    reqs.extend_from_slice(&(v | f).to_le_bytes());
                }
                if self.xen.guest_mem().unwrap().copy_to_guest(s + 0x1000, &reqs).is_ok() {
                    self.hypercall(nr::MMU_UPDATE, [s + 0x1000, *n as u64, s + 0xf00, 0x7ff0, 0]);
                }
            }
            Op::Pin { frame, level } => {
                let m = self.mfn_of(frame);
                let cmd = if *level == 4 { MMUEXT_UNPIN_TABLE } else { MMUEXT_PIN_L1_TABLE + level };
                self.try_mmuext(cmd, m, 0);
            }
            Op::Unpin { frame } => {
                let m = self.mfn_of(frame);
                self.try_mmuext(MMUEXT_UNPIN_TABLE, m, 0);
            }
            Op::NewBaseptr { frame } => {
                let m = self.mfn_of(frame);
                self.try_mmuext(MMUEXT_NEW_BASEPTR, m, 0);
            }
            Op::UpdateVa { va_page, target, flags } => {
                let va = self.layout.v_start + va_page * 4096;
                let val = (self.mfn_of(target) << 12) | _PAGE_PRESENT | if flags & 1 != 0 { _PAGE_RW } else { 0 };
                self.hypercall(nr::UPDATE_VA_MAPPING, [va, val, flags >> 1, 0, 0]);
            }
            Op::Balloon { out, frame } => {
                let s = self.scratch;
                let m = self.mfn_of(frame);
                let g = self.xen.guest_mem().unwrap();
                let mut res = [0u8; 32];
                res[..8].copy_from_slice(&(s + 0x800).to_le_bytes());
                res[8..16].copy_from_slice(&1u64.to_le_bytes());
                res[24..26].copy_from_slice(&0x7ff0u16.to_le_bytes());
                if g.copy_to_guest(s + 0x800, &m.to_le_bytes()).is_ok() && g.copy_to_guest(s + 0x900, &res).is_ok() {
                    let cmd = if *out { 1 } else { 0 };
                    self.hypercall(nr::MEMORY_OP, [cmd, s + 0x900, 0, 0, 0]);
                }
            }
            Op::ClearOrCopy { clear, a, b } => {
                let (ma, mb) = (self.mfn_of(a), self.mfn_of(b));
                let cmd = if *clear { MMUEXT_CLEAR_PAGE } else { MMUEXT_COPY_PAGE };
                self.try_mmuext(cmd, ma, mb);
            }
        }
    }

    /// mmuext_op, unless the scratch area is no longer mapped writable.
    fn try_mmuext(&mut self, cmd: u32, a1: u64, a2: u64) {
        let mut op = [0u8; 24];
        op[..4].copy_from_slice(&cmd.to_le_bytes());
        op[8..16].copy_from_slice(&a1.to_le_bytes());
        op[16..].copy_from_slice(&a2.to_le_bytes());
        let s = self.scratch + 0x100;
        if self.xen.guest_mem().unwrap().copy_to_guest(s, &op).is_ok() {
            self.hypercall(nr::MMUEXT_OP, [s, 1, 0, 0x7ff0, 0]);
        }
    }
}

proptest! {
    #![proptest_config(super::prop_config())]

    #[test]
    fn props_hostile_mmu_sequences_keep_every_invariant(ops in proptest::collection::vec(op(), 1..60)) {
        let mut w = World::new();
        for (i, op) in ops.iter().enumerate() {
            w.apply(op);
            if let Err(e) = check(&w.xen) {
                prop_assert!(false, "after op {} ({:?}): {}", i, op, e);
            }
        }
        let free_before = w.xen.frames.free_count();
        let held = w.xen.frames.owned_by(DomId(0)).count() as u64;
        teardown(&mut w.xen, DomId(0));
        prop_assert!(check(&w.xen).is_ok());
        for (mfn, pg) in w.xen.frames.iter() {
            prop_assert!(pg.owner != Owner::Dom(DomId(0)), "{:?} still owned after teardown: {:?}", mfn, pg);
        }
        prop_assert_eq!(w.xen.frames.free_count(), free_before + held, "every frame came back");
    }

    #[test]
    fn props_an_unprivileged_guest_never_touches_another_domain(ops in proptest::collection::vec(op(), 1..40)) {
        let mut w = World::with_domain(DomId(1), false);
        w.add_domain(DomId(2), false);
        let theirs: Vec<(crate::mm::Mfn, crate::mm::frame_table::PageInfo)> =
            w.xen.frames.owned_by(DomId(2)).map(|m| (m, *w.xen.frames.get(m).unwrap())).collect();
        let mut before = Vec::new();
        for (m, _) in &theirs {
            let mut page = [0u8; 4096];
            crate::mm::MachineMemory::read(&w.xen.platform, *m, 0, &mut page);
            before.push(page);
        }
        for op in &ops {
            w.apply(op);
        }
        prop_assert!(check(&w.xen).is_ok());
        for ((m, pg), page) in theirs.iter().zip(before) {
            let mut now = [0u8; 4096];
            crate::mm::MachineMemory::read(&w.xen.platform, *m, 0, &mut now);
            prop_assert!(now == page, "{:?} of d2 changed", m);
            prop_assert_eq!(w.xen.frames.get(*m).unwrap(), pg, "d2's frame {:?} accounting changed", m);
        }
    }
}
