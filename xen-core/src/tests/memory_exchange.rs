//! `XENMEM_exchange`, as Linux's `xen_create_contiguous_region` uses it:
//! single frames given back for one machine-contiguous extent under an
//! address limit; hostile lists, frames and orders get Xen's codes.

use super::World;
use crate::domain::DomId;
use crate::mm::{Mfn, Owner};
use hypercall_abi::errno::Errno;
use hypercall_abi::memory::XENMEM_exchange;
use hypercall_abi::nr;

const DOMID_SELF: u16 = 0x7ff0;

/// The exchange struct at scratch, the in list at +0x200, the out list at
/// +0x400; returns (result, nr_exchanged).
#[allow(clippy::too_many_arguments)]
fn exchange(w: &mut World, ins: &[u64], in_order: u32, outs: &[u64], out_order: u32, bits: u32, nr_exchanged: u64) -> (i64, u64) {
    let (ex, il, ol) = (w.scratch, w.scratch + 0x200, w.scratch + 0x400);
    for (k, v) in ins.iter().enumerate() {
        w.write(il + 8 * k as u64, &v.to_le_bytes());
    }
    for (k, v) in outs.iter().enumerate() {
        w.write(ol + 8 * k as u64, &v.to_le_bytes());
    }
    let mut b = [0u8; 72];
    let res = |b: &mut [u8], at: usize, list: u64, nr: u64, order: u32| {
        b[at..at + 8].copy_from_slice(&list.to_le_bytes());
        b[at + 8..at + 16].copy_from_slice(&nr.to_le_bytes());
        b[at + 16..at + 20].copy_from_slice(&order.to_le_bytes());
        b[at + 24..at + 26].copy_from_slice(&DOMID_SELF.to_le_bytes());
    };
    res(&mut b, 0, il, ins.len() as u64, in_order);
    res(&mut b, 32, ol, outs.len() as u64, out_order);
    b[52..56].copy_from_slice(&bits.to_le_bytes());
    b[64..72].copy_from_slice(&nr_exchanged.to_le_bytes());
    w.write(ex, &b);
    let r = w.hypercall(nr::MEMORY_OP, [XENMEM_exchange as u64, ex, 0, 0, 0]);
    (r, w.read_u64(ex + 64))
}

fn spare_mfns(w: &World, n: u64) -> Vec<u64> {
    (0..n).map(|k| w.pfn(w.spare_pfn(k)).0).collect()
}

#[test]
fn four_frames_become_one_contiguous_extent_below_the_limit() {
    let mut w = World::new();
    let ins = spare_mfns(&w, 4);
    let before = w.xen.domains[&DomId(0)].tot_pages;
    let gpfn = w.spare_pfn(0);
    let (r, done) = exchange(&mut w, &ins, 0, &[gpfn], 2, 32, 0);
    assert_eq!((r, done), (0, 4));
    let base = w.read_u64(w.scratch + 0x400);
    assert_eq!(base % 4, 0, "naturally aligned");
    assert!(base + 4 <= 1 << 20, "below 4 GiB");
    for k in 0..4 {
        let pg = w.xen.frames.get(Mfn(base + k)).unwrap();
        assert_eq!((pg.owner, pg.allocated, pg.count), (Owner::Dom(DomId(0)), true, 1));
        assert_eq!(w.xen.frames.m2p(Mfn(base + k)), gpfn + k, "the M2P names the guest's pfns");
    }
    for m in &ins {
        assert_ne!(w.xen.frames.get(Mfn(*m)).unwrap().owner, Owner::Dom(DomId(0)), "{m:#x} was given back");
    }
    assert_eq!(w.xen.domains[&DomId(0)].tot_pages, before, "as many frames as before");
}

#[test]
fn frames_in_use_or_not_the_callers_are_refused_and_nothing_moves() {
    let mut w = World::new();
    let mut ins = spare_mfns(&w, 2);
    // A frame mapped somewhere (here: the first page of the kernel).
    ins[1] = w.pfn(0x100).0;
    let sp = w.spare_pfn(0);
    let (r, done) = exchange(&mut w, &ins, 0, &[sp], 1, 0, 0);
    assert_eq!((r, done), (Errno::EINVAL.to_ret(), 0));
    assert_eq!(w.xen.frames.get(Mfn(ins[0])).unwrap().owner, Owner::Dom(DomId(0)), "the free one stays the caller's");
    // Another domain's frame.
    w.add_domain(DomId(5), false);
    let theirs = w.xen.domains[&DomId(5)].p2m[1000].0;
    assert_eq!(exchange(&mut w, &[theirs], 0, &[7], 0, 0, 0).0, Errno::EINVAL.to_ret());
    assert_eq!(w.xen.frames.get(Mfn(theirs)).unwrap().owner, Owner::Dom(DomId(5)));
    // The same frame twice, and a frame past the machine.
    let one = spare_mfns(&w, 1)[0];
    assert_eq!(exchange(&mut w, &[one, one], 0, &[7], 1, 0, 0).0, Errno::EINVAL.to_ret());
    assert_eq!(exchange(&mut w, &[u64::MAX], 0, &[7], 0, 0, 0).0, Errno::EINVAL.to_ret());
}

#[test]
fn bad_sizes_lists_and_orders_get_xens_codes() {
    let mut w = World::new();
    let ins = spare_mfns(&w, 2);
    // 2 pages in, 1 page out.
    assert_eq!(exchange(&mut w, &ins, 0, &[7], 0, 0, 0), (Errno::EINVAL.to_ret(), 0));
    // nr_exchanged past the input.
    assert_eq!(exchange(&mut w, &ins, 0, &[7], 1, 0, 3), (Errno::EINVAL.to_ret(), 3));
    // An order past the largest.
    assert_eq!(exchange(&mut w, &ins[..1], 0, &[], 40, 0, 0).0, Errno::EINVAL.to_ret());
    // A list in the hypervisor's half.
    let ex = w.scratch;
    let mut b = [0u8; 72];
    b[0..8].copy_from_slice(&0xffff_8300_0000_0000u64.to_le_bytes());
    b[8..16].copy_from_slice(&1u64.to_le_bytes());
    b[32..40].copy_from_slice(&(w.scratch + 0x400).to_le_bytes());
    b[40..48].copy_from_slice(&1u64.to_le_bytes());
    b[24..26].copy_from_slice(&DOMID_SELF.to_le_bytes());
    b[56..58].copy_from_slice(&DOMID_SELF.to_le_bytes());
    w.write(ex, &b);
    assert_eq!(w.hypercall(nr::MEMORY_OP, [XENMEM_exchange as u64, ex, 0, 0, 0]), Errno::EFAULT.to_ret());
    assert_eq!(w.hypercall(nr::MEMORY_OP, [XENMEM_exchange as u64, 0xffff_8300_0000_0000, 0, 0, 0]), Errno::EFAULT.to_ret());
    // No room under a 13-bit limit (two frames), which the machine uses.
    assert_eq!(exchange(&mut w, &ins, 0, &[7], 1, 13, 0), (Errno::ENOMEM.to_ret(), 0));
    assert_eq!(w.xen.frames.get(Mfn(ins[0])).unwrap().owner, Owner::Dom(DomId(0)));
}

#[test]
fn an_unprivileged_domain_swaps_single_frames_but_not_extents() {
    let mut w = World::with_domain(DomId(3), false);
    let ins = spare_mfns(&w, 2);
    let sp = w.spare_pfn(0);
    assert_eq!(exchange(&mut w, &ins, 0, &[sp], 1, 0, 0), (Errno::EPERM.to_ret(), 0));
    let (r, done) = exchange(&mut w, &ins[..1], 0, &[sp], 0, 0, 0);
    assert_eq!((r, done), (0, 1));
    let new = w.read_u64(w.scratch + 0x400);
    assert_ne!(new, ins[0]);
    assert_eq!(w.xen.frames.get(Mfn(new)).unwrap().owner, Owner::Dom(DomId(3)));
}
