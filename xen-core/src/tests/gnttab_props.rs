//! Grant tables through the hypercall entry: a granter and a mapper, named
//! behaviours, and hostile sequences by both.

use alloc::vec::Vec;

use proptest::prelude::*;

use super::invariants::check;
use super::{World, RW};
use crate::domain::DomId;
use crate::mm::{MachineMemory, Mfn, Owner, PageType};
use hypercall_abi::grant::*;
use hypercall_abi::nr;

impl World {
    pub(super) fn gnttab(&mut self, cmd: u32, op: &[u8], count: u64) -> (i64, Vec<u8>) {
        let s = self.scratch + 0x4000;
        if self.xen.guest_mem().unwrap().copy_to_guest(s, op).is_err() {
            return (i64::MIN, Vec::new());
        }
        let rc = self.hypercall(nr::GRANT_TABLE_OP, [cmd as u64, s, count, 0, 0]);
        let mut out = alloc::vec![0u8; op.len()];
        self.xen.guest_mem().unwrap().copy_from_guest(s, &mut out).unwrap();
        (rc, out)
    }

    /// setup_table for the current domain; returns its grant frames.
    pub(super) fn setup_grants(&mut self, nr_frames: u32) -> (i16, Vec<Mfn>) {
        let list = self.scratch + 0x5000;
        let mut op = [0u8; 24];
        op[0..2].copy_from_slice(&0x7ff0u16.to_le_bytes());
        op[4..8].copy_from_slice(&nr_frames.to_le_bytes());
        op[16..24].copy_from_slice(&list.to_le_bytes());
        let (_, out) = self.gnttab(GNTTABOP_setup_table, &op, 1);
        let status = i16::from_le_bytes([out[8], out[9]]);
        let frames = (0..nr_frames as u64).map(|i| Mfn(self.read_u64(list + 8 * i))).collect();
        (status, frames)
    }

    pub(super) fn grant(&self, d: u16, gref: u32, to: u16, frame: Mfn, flags: u16) {
        let t = &self.xen.domains[&DomId(d)].gnttab;
        let (f, off) = t.entry_location(gref).unwrap();
        let f = f.mfn();
        let mut e = [0u8; 8];
        e[0..2].copy_from_slice(&flags.to_le_bytes());
        e[2..4].copy_from_slice(&to.to_le_bytes());
        e[4..8].copy_from_slice(&(frame.0 as u32).to_le_bytes());
        self.xen.platform.write(f, off, &e);
    }

    pub(super) fn entry_flags(&self, d: u16, gref: u32) -> u16 {
        let (f, off) = self.xen.domains[&DomId(d)].gnttab.entry_location(gref).unwrap();
        let f = f.mfn();
        let mut b = [0u8; 2];
        self.xen.platform.read(f, off, &mut b);
        u16::from_le_bytes(b)
    }

    pub(super) fn map_grant(&mut self, va: u64, granter: u16, gref: u32, readonly: bool) -> (i16, u32) {
        let mut op = [0u8; 32];
        op[0..8].copy_from_slice(&va.to_le_bytes());
        let flags = GNTMAP_host_map | if readonly { GNTMAP_readonly } else { 0 };
        op[8..12].copy_from_slice(&flags.to_le_bytes());
        op[12..16].copy_from_slice(&gref.to_le_bytes());
        op[16..18].copy_from_slice(&granter.to_le_bytes());
        let (rc, out) = self.gnttab(GNTTABOP_map_grant_ref, &op, 1);
        assert_eq!(rc, 0);
        (i16::from_le_bytes([out[18], out[19]]), u32::from_le_bytes(out[20..24].try_into().unwrap()))
    }

    pub(super) fn unmap_grant(&mut self, va: u64, handle: u32) -> i16 {
        let mut op = [0u8; 24];
        op[0..8].copy_from_slice(&va.to_le_bytes());
        op[16..20].copy_from_slice(&handle.to_le_bytes());
        let (_, out) = self.gnttab(GNTTABOP_unmap_grant_ref, &op, 1);
        i16::from_le_bytes([out[20], out[21]])
    }

    pub(super) fn switch_to(&mut self, d: u16) {
        self.xen.current = Some((DomId(d), 0));
    }
}

/// Domain 1 grants, domain 2 maps (both unprivileged, same layout).
fn granter_and_mapper() -> (World, Mfn) {
    let mut w = World::with_domain(DomId(1), false);
    w.add_domain(DomId(2), false);
    let page = w.pfn(w.spare_pfn(0));
    w.xen.platform.write(page, 0, b"granted!");
    (w, page)
}

#[test]
fn a_granted_page_is_mapped_used_and_unmapped() {
    let (mut w, page) = granter_and_mapper();
    let (st, frames) = w.setup_grants(1);
    assert_eq!(st, GNTST_okay);
    assert_eq!(w.xen.frames.get(frames[0]).unwrap().owner, Owner::Dom(DomId(1)), "mappable by its granter");
    w.grant(1, 5, 2, page, GTF_permit_access);
    w.switch_to(2);
    let va = w.scratch + 0x2000;
    let (st, h) = w.map_grant(va, 1, 5, false);
    assert_eq!(st, GNTST_okay);
    let mut b = [0u8; 8];
    w.xen.guest_mem().unwrap().copy_from_guest(va, &mut b).unwrap();
    assert_eq!(&b, b"granted!");
    assert_eq!(w.entry_flags(1, 5), GTF_permit_access | GTF_reading | GTF_writing, "the granter sees it in use");
    assert_eq!(w.xen.frames.get(page).unwrap().ty, PageType::Writable);
    check(&w.xen).unwrap();
    // Mapped, it cannot be freed or become a page table.
    w.switch_to(1);
    assert_eq!(w.mmuext(hypercall_abi::mm::MMUEXT_PIN_L1_TABLE, page.0, 0), hypercall_abi::errno::Errno::EINVAL.to_ret());
    assert_eq!(w.xen.frames.get(page).unwrap().ty, PageType::Writable, "still a mapped data page");
    w.switch_to(2);
    assert_eq!(w.unmap_grant(va, h), GNTST_okay);
    assert_eq!(w.entry_flags(1, 5), GTF_permit_access);
    assert_eq!(w.xen.guest_mem().unwrap().read_u64(va), Err(hypercall_abi::errno::Errno::EFAULT));
    assert_eq!(w.unmap_grant(va, h), GNTST_bad_handle, "twice");
    check(&w.xen).unwrap();
}

#[test]
fn grants_not_given_cannot_be_mapped_or_written() {
    let (mut w, page) = granter_and_mapper();
    w.add_domain(DomId(3), false);
    w.setup_grants(1);
    w.grant(1, 1, 2, page, GTF_permit_access | GTF_readonly);
    w.grant(1, 2, 3, page, GTF_permit_access);
    w.switch_to(2);
    let va = w.scratch + 0x2000;
    // Xen answers these with GNTST_general_error (permission_denied is XSM's).
    assert_eq!(w.map_grant(va, 1, 1, false).0, GNTST_general_error, "read-only grant mapped writable");
    assert_eq!(w.map_grant(va, 1, 2, true).0, GNTST_general_error, "granted to someone else");
    assert_eq!(w.map_grant(va, 1, 3, true).0, GNTST_general_error, "an empty entry");
    assert_eq!(w.map_grant(va, 1, 9999, true).0, GNTST_bad_gntref);
    assert_eq!(w.map_grant(va, 7, 1, true).0, GNTST_bad_domain);
    assert_eq!(w.map_grant(0xffff_8300_0000_0000, 1, 1, true).0, GNTST_general_error);
    let (st, h) = w.map_grant(va, 1, 1, true);
    assert_eq!(st, GNTST_okay);
    assert_eq!(w.xen.guest_mem().unwrap().write_u64(va, 1), Err(hypercall_abi::errno::Errno::EFAULT), "read-only");
    // The grant PTE cannot be rewritten behind the hypervisor's back.
    let (_, l1e) = w.l1e_maddr(va);
    let before = w.xen.platform.read_u64(Mfn(l1e >> 12), ((l1e & 0xfff) / 8) as usize);
    assert_eq!(w.mmu_update(l1e, page.maddr() | RW, 0x7ff0), hypercall_abi::errno::Errno::EINVAL.to_ret());
    assert_eq!(w.xen.platform.read_u64(Mfn(l1e >> 12), ((l1e & 0xfff) / 8) as usize), before, "the grant PTE is untouched");
    assert_eq!(w.unmap_grant(va, h), GNTST_okay);
    check(&w.xen).unwrap();
}

#[test]
fn grant_copy_checks_both_sides() {
    let (mut w, page) = granter_and_mapper();
    w.setup_grants(1);
    w.grant(1, 4, 2, page, GTF_permit_access | GTF_readonly);
    w.switch_to(2);
    let mine = w.pfn(w.spare_pfn(1));
    let copy = |w: &mut World, src_gref: u32, dst: Mfn, flags: u16, len: u16| {
        let mut op = [0u8; 40];
        op[0..8].copy_from_slice(&(src_gref as u64).to_le_bytes());
        op[8..10].copy_from_slice(&1u16.to_le_bytes());
        op[16..24].copy_from_slice(&dst.0.to_le_bytes());
        op[24..26].copy_from_slice(&0x7ff0u16.to_le_bytes());
        op[32..34].copy_from_slice(&len.to_le_bytes());
        op[34..36].copy_from_slice(&flags.to_le_bytes());
        let (_, out) = w.gnttab(GNTTABOP_copy, &op, 1);
        i16::from_le_bytes([out[36], out[37]])
    };
    assert_eq!(copy(&mut w, 4, mine, GNTCOPY_source_gref, 8), GNTST_okay);
    let mut b = [0u8; 8];
    w.xen.platform.read(mine, 0, &mut b);
    assert_eq!(&b, b"granted!");
    assert_eq!(copy(&mut w, 4, mine, GNTCOPY_source_gref, 4097), GNTST_bad_copy_arg);
    assert_eq!(copy(&mut w, 4, page, GNTCOPY_source_gref, 8), GNTST_bad_page, "a foreign frame as a local one");
    let pt = w.pfn(w.layout.pfn_of(w.layout.vpt_start));
    assert_eq!(copy(&mut w, 4, pt, GNTCOPY_source_gref, 8), GNTST_general_error, "into a page table");
    // Writing into a read-only grant.
    let mut op = [0u8; 40];
    op[0..8].copy_from_slice(&mine.0.to_le_bytes());
    op[8..10].copy_from_slice(&0x7ff0u16.to_le_bytes());
    op[16..24].copy_from_slice(&4u64.to_le_bytes());
    op[24..26].copy_from_slice(&1u16.to_le_bytes());
    op[32..34].copy_from_slice(&8u16.to_le_bytes());
    op[34..36].copy_from_slice(&GNTCOPY_dest_gref.to_le_bytes());
    let (_, out) = w.gnttab(GNTTABOP_copy, &op, 1);
    assert_eq!(i16::from_le_bytes([out[36], out[37]]), GNTST_general_error, "a read-only grant as destination");
    // A plain frame number with a numeric domain id (even one's own).
    op[0..8].copy_from_slice(&mine.0.to_le_bytes());
    op[8..10].copy_from_slice(&2u16.to_le_bytes());
    op[34..36].copy_from_slice(&0u16.to_le_bytes());
    op[16..24].copy_from_slice(&mine.0.to_le_bytes());
    op[24..26].copy_from_slice(&0x7ff0u16.to_le_bytes());
    let (_, out) = w.gnttab(GNTTABOP_copy, &op, 1);
    assert_eq!(i16::from_le_bytes([out[36], out[37]]), GNTST_permission_denied, "copy-by-frame only for DOMID_SELF");
}

#[test]
fn only_version_1_and_a_bounded_table() {
    let (mut w, _) = granter_and_mapper();
    assert_eq!(w.gnttab(GNTTABOP_set_version, &2u32.to_le_bytes(), 1).0, hypercall_abi::errno::Errno::EINVAL.to_ret());
    assert_eq!(w.gnttab(GNTTABOP_set_version, &1u32.to_le_bytes(), 1).0, 0);
    assert_eq!(w.setup_grants(crate::gnttab::MAX_GRANT_FRAMES + 1).0, GNTST_general_error);
    let (st, f) = w.setup_grants(2);
    assert_eq!(st, GNTST_okay);
    let mut q = [0u8; 16];
    q[0..2].copy_from_slice(&0x7ff0u16.to_le_bytes());
    let (_, out) = w.gnttab(GNTTABOP_query_size, &q, 1);
    assert_eq!(u32::from_le_bytes(out[4..8].try_into().unwrap()), 2);
    // A grant frame cannot be ballooned out from under the hypervisor.
    let s = w.scratch;
    w.write(s + 0x800, &f[0].0.to_le_bytes());
    let mut res = [0u8; 32];
    res[..8].copy_from_slice(&(s + 0x800).to_le_bytes());
    res[8..16].copy_from_slice(&1u64.to_le_bytes());
    res[24..26].copy_from_slice(&0x7ff0u16.to_le_bytes());
    w.write(s + 0x900, &res);
    assert_eq!(w.hypercall(nr::MEMORY_OP, [1, s + 0x900, 0, 0, 0]), 0);
}

#[derive(Clone, Debug)]
enum GOp {
    Grant { gref: u32, to: u16, pfn: u64, ro: bool, kind: u16 },
    Map { gref: u32, slot: u64, ro: bool },
    Unmap { handle: u32, slot: u64 },
    Overwrite { slot: u64, pfn: u64 },
    Balloon { pfn: u64 },
}

fn g_op() -> impl Strategy<Value = GOp> {
    prop_oneof![
        (0u32..8, 0u16..4, 0u64..8, any::<bool>(), 0u16..4).prop_map(|(gref, to, pfn, ro, kind)| GOp::Grant { gref, to, pfn, ro, kind }),
        (0u32..10, 0u64..4, any::<bool>()).prop_map(|(gref, slot, ro)| GOp::Map { gref, slot, ro }),
        (0u32..6, 0u64..4).prop_map(|(handle, slot)| GOp::Unmap { handle, slot }),
        (0u64..4, 0u64..8).prop_map(|(slot, pfn)| GOp::Overwrite { slot, pfn }),
        (0u64..8).prop_map(|pfn| GOp::Balloon { pfn }),
    ]
}

proptest! {
    #![proptest_config(super::prop_config())]

    /// A hostile granter (changing entries under mappings, ballooning the
    /// page out) and a hostile mapper (bad refs, double unmaps, overwriting
    /// grant PTEs) never break an invariant; once all mappings are gone the
    /// granter's entries show nothing in use.
    #[test]
    fn props_hostile_granters_and_mappers(ops in proptest::collection::vec(g_op(), 1..40)) {
        let (mut w, _) = granter_and_mapper();
        w.setup_grants(1);
        let mut handles = Vec::new();
        for op in &ops {
            match *op {
                GOp::Grant { gref, to, pfn, ro, kind } => {
                    let page = w.xen.domains[&DomId(1)].p2m[(w.spare_pfn(pfn)) as usize];
                    let flags = kind | if ro { GTF_readonly } else { 0 };
                    w.grant(1, gref, to, page, flags);
                }
                GOp::Map { gref, slot, ro } => {
                    w.switch_to(2);
                    let va = w.scratch + 0x8000 + slot * 0x1000;
                    let (st, h) = w.map_grant(va, 1, gref, ro);
                    if st == GNTST_okay { handles.push((h, va)); }
                    w.switch_to(1);
                }
                GOp::Unmap { handle, slot } => {
                    w.switch_to(2);
                    w.unmap_grant(w.scratch + 0x8000 + slot * 0x1000, handle);
                    w.switch_to(1);
                }
                GOp::Overwrite { slot, pfn } => {
                    w.switch_to(2);
                    let va = w.scratch + 0x8000 + slot * 0x1000;
                    let (_, l1e) = w.l1e_maddr(va);
                    let page = w.pfn(w.spare_pfn(pfn));
                    w.mmu_update(l1e, page.maddr() | RW, 0x7ff0);
                    w.switch_to(1);
                }
                GOp::Balloon { pfn } => {
                    let page = w.pfn(w.spare_pfn(pfn));
                    let s = w.scratch;
                    w.write(s + 0x800, &page.0.to_le_bytes());
                    let mut res = [0u8; 32];
                    res[..8].copy_from_slice(&(s + 0x800).to_le_bytes());
                    res[8..16].copy_from_slice(&1u64.to_le_bytes());
                    res[24..26].copy_from_slice(&0x7ff0u16.to_le_bytes());
                    w.write(s + 0x900, &res);
                    w.hypercall(nr::MEMORY_OP, [1, s + 0x900, 0, 0, 0]);
                }
            }
            if let Err(e) = check(&w.xen) {
                prop_assert!(false, "after {:?}: {}", op, e);
            }
        }
        w.switch_to(2);
        for (h, va) in handles {
            w.unmap_grant(va, h);
        }
        prop_assert!(w.xen.domains[&DomId(1)].gnttab.active.is_empty(), "{:?}", w.xen.domains[&DomId(1)].gnttab.active);
        for gref in 0..8 {
            prop_assert_eq!(w.entry_flags(1, gref) & (GTF_reading | GTF_writing), 0);
        }
        check(&w.xen).map_err(|e| TestCaseError::fail(e))?;
    }
}

#[test]
fn version_1_has_no_status_frames_and_dump_table_checks_the_domain() {
    let (mut w, _) = granter_and_mapper();
    let einval = hypercall_abi::errno::Errno::EINVAL.to_ret();
    let status_frames = |w: &mut World, nr: u32, dom: u16, list: u64| {
        let mut op = [0u8; 16];
        op[0..4].copy_from_slice(&nr.to_le_bytes());
        op[4..6].copy_from_slice(&dom.to_le_bytes());
        op[8..16].copy_from_slice(&list.to_le_bytes());
        let (rc, out) = w.gnttab(GNTTABOP_get_status_frames, &op, 1);
        (rc, i16::from_le_bytes([out[6], out[7]]))
    };
    let list = w.scratch + 0x6000;
    assert_eq!(status_frames(&mut w, 0, 0x7ff0, list), (0, GNTST_okay));
    assert_eq!(status_frames(&mut w, 1, 0x7ff0, list), (0, GNTST_general_error), "v1: none to give");
    assert_eq!(status_frames(&mut w, 1, 0x1234, list), (0, GNTST_bad_domain));
    assert_eq!(status_frames(&mut w, 4, 0x7ff0, 0xffff_8300_0000_0000).0, hypercall_abi::errno::Errno::EFAULT.to_ret());
    assert_eq!(w.gnttab(GNTTABOP_get_status_frames, &[0; 16], 2).0, einval, "one op at a time");
    let dump = |w: &mut World, dom: u16| {
        let mut op = [0u8; 4];
        op[0..2].copy_from_slice(&dom.to_le_bytes());
        op[2..4].copy_from_slice(&0x5555u16.to_le_bytes());
        let (rc, out) = w.gnttab(GNTTABOP_dump_table, &op, 1);
        (rc, i16::from_le_bytes([out[2], out[3]]))
    };
    assert_eq!(dump(&mut w, 0x7ff0), (0, GNTST_okay));
    assert_eq!(dump(&mut w, 0x1234), (0, GNTST_bad_domain));
    assert_eq!(w.gnttab(GNTTABOP_dump_table, &[0; 4], 0).0, einval);
}
