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
use crate::mm::{MachineMemory, Owner};
use hypercall_abi::mm::{MMUEXT_CLEAR_PAGE, MMUEXT_COPY_PAGE, MMUEXT_NEW_BASEPTR, MMUEXT_PIN_L1_TABLE, MMUEXT_UNPIN_TABLE};
use hypercall_abi::nr;

/// Which frame an operation names: one of the domain's own (by pfn, so the
/// interesting ones come up often), or any machine frame at all.
#[derive(Clone, Debug)]
enum Frame {
    Pfn(u64),
    PageTable(u64),
    Raw(u64),
    /// The domain's shared_info (the hypervisor writes it).
    Shared,
    /// One of its grant frames (after `SetupGrants`).
    Grant(u64),
    /// A page-table frame of the other domain.
    Foreign(u64),
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
    SetupGrants { n: u32 },
    /// A #PF the hypervisor reports by writing CR2 into `vcpu_info.arch.cr2`:
    /// CR2 is chosen to read as a present, writable PTE for `frame`.
    Fault { frame: Frame },
    /// Issue 9's escape, with random parts: pin a hypervisor-written frame
    /// as a table (or GDT), link it into a table, fault so the hypervisor
    /// writes a PTE-shaped value into it.
    Retype { victim: Frame, level: u32, table: Frame, index: usize, fault: Frame },
    /// XSA-45's shape: fill spare frames (those the guest could write) with
    /// an L4 -> L3 -> L2 -> `nr_l1` full L1s tree, maybe with a bad last
    /// entry, and pin the L4: to the end (continued as often as needed), or
    /// abandoned after the first entry into the hypervisor, leaving
    /// half-validated frames for the later operations to trip over.
    DeepTree { base: u64, nr_l1: u64, bad: bool, abandon: bool },
}

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        4 => (0u64..300).prop_map(Frame::Pfn),
        3 => (0u64..8).prop_map(Frame::PageTable),
        2 => (0u64..9000).prop_map(Frame::Raw),
        1 => Just(Frame::Shared),
        1 => (0u64..4).prop_map(Frame::Grant),
        1 => (0u64..8).prop_map(Frame::Foreign),
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
        1 => (1u32..4).prop_map(|n| Op::SetupGrants { n }),
        1 => frame().prop_map(|frame| Op::Fault { frame }),
        2 => (prop_oneof![Just(Frame::Shared), (0u64..4).prop_map(Frame::Grant)], 0u32..5, frame(), 0usize..512, frame())
            .prop_map(|(victim, level, table, index, fault)| Op::Retype { victim, level, table, index, fault }),
        1 => (0u64..300, 1u64..40, any::<bool>(), any::<bool>())
            .prop_map(|(base, nr_l1, bad, abandon)| Op::DeepTree { base, nr_l1, bad, abandon }),
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
            Frame::Shared => d.shared_info.mfn().0,
            Frame::Grant(k) => d.gnttab.frames.get(k as usize).map_or(k, |f| f.mfn().0),
            Frame::Foreign(k) => {
                let other = self.xen.domains.values().find(|o| o.id != d.id).unwrap_or(d);
                let p = self.layout.pfn_of(self.layout.vpt_start) + k % self.layout.nr_pt_pages;
                other.p2m.get(p as usize).map_or(k, |m| m.0)
            }
        }
    }

    /// Apply `op` as the current domain, which stays current even if the op
    /// killed it (a dead domain's calls must be as harmless as a live one's).
    fn apply(&mut self, op: &Op) {
        let me = self.xen.current;
        self.apply_as_current(op);
        self.xen.current = me;
    }

    fn apply_as_current(&mut self, op: &Op) {
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
            Op::SetupGrants { n } => {
                // setup_grants uses the op page (scratch + 0x4000) and the
                // frame list (scratch + 0x5000): an earlier UpdateVa may have
                // unmapped either, which is the guest's business.
                let g = self.xen.guest_mem().unwrap();
                if g.copy_to_guest(self.scratch + 0x4000, &[0; 24]).is_ok() && g.copy_to_guest(self.scratch + 0x5000, &[0; 32]).is_ok() {
                    self.setup_grants(*n);
                }
            }
            Op::Fault { frame } => {
                let me = self.xen.current;
                let cr2 = (self.mfn_of(frame) << 12) | 0x67;
                let mut regs = crate::regs::GuestRegs { entry_vector: 14, cs: 0xe033, ss: 0xe02b, rip: 0x100000, ..Default::default() };
                self.xen.guest_exception(&mut regs, cr2);
                self.xen.current = me;
            }
            Op::DeepTree { base, nr_l1, bad, abandon } => self.deep_tree(*base, *nr_l1, *bad, *abandon),
            Op::Retype { victim, level, table, index, fault } => {
                let me = self.xen.current;
                let m = self.mfn_of(victim);
                if *level == 4 {
                    let s = self.scratch + 0x200;
                    if self.xen.guest_mem().unwrap().copy_to_guest(s, &m.to_le_bytes()).is_ok() {
                        self.hypercall(nr::SET_GDT, [s, 512, 0, 0, 0]);
                    }
                    self.xen.current = me;
                } else {
                    self.apply(&Op::Pin { frame: victim.clone(), level: *level });
                }
                let ptr = (self.mfn_of(table) << 12) + 8 * *index as u64;
                self.mmu_update(ptr, (m << 12) | _PAGE_PRESENT | _PAGE_RW, 0x7ff0);
                self.xen.current = me;
                self.apply(&Op::Fault { frame: fault.clone() });
            }
        }
    }

    fn deep_tree(&mut self, base: u64, nr_l1: u64, bad: bool, abandon: bool) {
        let me = self.me();
        let frames: Option<Vec<crate::mm::Mfn>> =
            (0..nr_l1 + 4).map(|k| self.xen.domains[&me].p2m.get((self.spare_pfn(base + k)) as usize).copied()).collect();
        let Some(f) = frames else { return };
        // Only frames the guest could write itself (no table, no pin).
        let writable = |m: &crate::mm::Mfn| {
            self.xen.frames.get(*m).is_some_and(|pg| pg.type_count == 0 || pg.ty == crate::mm::PageType::Writable)
        };
        if !f.iter().all(writable) {
            return;
        }
        let (l4, l3, l2, data, l1s) = (f[0], f[1], f[2], f[3], &f[4..]);
        let mem = &self.xen.platform;
        for m in &f[..3] {
            mem.zero_frame(*m);
        }
        mem.write_u64(l4, 0, l3.maddr() | _PAGE_PRESENT | _PAGE_RW);
        mem.write_u64(l3, 0, l2.maddr() | _PAGE_PRESENT | _PAGE_RW);
        for (k, l1) in l1s.iter().enumerate() {
            mem.write_u64(l2, k, l1.maddr() | _PAGE_PRESENT | _PAGE_RW);
            for i in 0..512 {
                mem.write_u64(*l1, i, data.maddr() | _PAGE_PRESENT);
            }
        }
        if bad {
            if let Some(last) = l1s.last() {
                mem.write_u64(*last, 511, (3u64 << 12) | _PAGE_PRESENT);
            }
        }
        let mut op = [0u8; 24];
        op[..4].copy_from_slice(&hypercall_abi::mm::MMUEXT_PIN_L4_TABLE.to_le_bytes());
        op[8..16].copy_from_slice(&l4.0.to_le_bytes());
        let s = self.scratch + 0x100;
        if self.xen.guest_mem().unwrap().copy_to_guest(s, &op).is_err() {
            return;
        }
        if abandon {
            let page = 0x101000 + 32 * nr::MMUEXT_OP;
            let mut regs = crate::regs::GuestRegs {
                rax: nr::MMUEXT_OP,
                rdi: s,
                rsi: 1,
                r10: 0x7ff0,
                rip: page + 9,
                cs: 0xe033,
                ss: 0xe02b,
                ..Default::default()
            };
            self.xen.hypercall(&mut regs);
        } else {
            self.hypercall(nr::MMUEXT_OP, [s, 1, 0, 0x7ff0, 0]);
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
        // Another domain, whose tables Dom0 may try to link (Frame::Foreign).
        w.add_domain(DomId(1), false);
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
            // d2's shared_info is the hypervisor's to update (time, when
            // d2 is scheduled after d1 died); nothing else may change.
            prop_assert!(now == page || pg.shared, "{:?} of d2 changed", m);
            prop_assert_eq!(w.xen.frames.get(*m).unwrap(), pg, "d2's frame {:?} accounting changed", m);
        }
    }
}
