//! blkback against a hostile frontend, with fake grants and a memory disk.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;

use hypercall_abi::blkif::*;

use super::disk::{Disk, MemDisk};
use super::request::{handle, to_slot, Grants, MAX_INDIRECT_SEGMENTS};
use super::ring::BackRing;

/// Pages a frontend granted: gref -> (page, writable by the back end).
#[derive(Default)]
struct Fake(BTreeMap<u32, (Vec<u8>, bool)>);

impl Fake {
    fn grant(&mut self, gref: u32, fill: u8, writable: bool) {
        self.0.insert(gref, (vec![fill; 4096], writable));
    }
}

impl Grants for Fake {
    fn copy_from(&mut self, gref: u32, offset: usize, buf: &mut [u8]) -> Result<(), ()> {
        let (p, _) = self.0.get(&gref).ok_or(())?;
        buf.copy_from_slice(p.get(offset..offset + buf.len()).ok_or(())?);
        Ok(())
    }
    fn copy_to(&mut self, gref: u32, offset: usize, data: &[u8]) -> Result<(), ()> {
        match self.0.get_mut(&gref) {
            Some((p, true)) => {
                p.get_mut(offset..offset + data.len()).ok_or(())?.copy_from_slice(data);
                Ok(())
            }
            _ => Err(()),
        }
    }
}

fn seg(gref: u32, first: u8, last: u8) -> BlkifRequestSegment {
    BlkifRequestSegment { gref, first_sect: first, last_sect: last, _pad: 0 }
}

fn rw(op: u8, id: u64, sector: u64, segs: &[BlkifRequestSegment]) -> [u8; BLKIF_SLOT_SIZE] {
    let mut r = BlkifRequest { operation: op, nr_segments: segs.len() as u8, id, sector_number: sector, ..Default::default() };
    r.seg[..segs.len()].copy_from_slice(segs);
    to_slot(&r)
}

#[test]
fn a_pattern_written_through_grants_reads_back() {
    let mut disk = MemDisk::new(1 << 20);
    let mut g = Fake::default();
    g.grant(1, 0xa5, false);
    g.grant(2, 0x5a, false);
    g.grant(3, 0, true);
    let r = handle(&rw(BLKIF_OP_WRITE, 7, 16, &[seg(1, 0, 7), seg(2, 0, 3)]), &mut disk, &mut g, false);
    assert_eq!((r.id, r.operation, r.status), (7, BLKIF_OP_WRITE, BLKIF_RSP_OKAY));
    let r = handle(&rw(BLKIF_OP_READ, 8, 20, &[seg(3, 2, 7)]), &mut disk, &mut g, false);
    assert_eq!(r.status, BLKIF_RSP_OKAY);
    let page = &g.0[&3].0;
    assert!(page[..1024].iter().all(|&b| b == 0), "untouched before first_sect");
    assert!(page[1024..1024 + 2048].iter().all(|&b| b == 0xa5), "sectors 20..24 from gref 1");
    assert!(page[3072..].iter().all(|&b| b == 0x5a), "sectors 24..26 from gref 2");
}

#[test]
fn hostile_requests_get_error_responses() {
    let mut disk = MemDisk::new(64 << 10); // 128 sectors
    let mut g = Fake::default();
    g.grant(1, 1, false);
    g.grant(2, 0, true);
    let mut st = |slot: [u8; BLKIF_SLOT_SIZE], ro: bool| handle(&slot, &mut disk, &mut g, ro).status;
    assert_eq!(st(rw(BLKIF_OP_WRITE, 1, 0, &[seg(99, 0, 7)]), false), BLKIF_RSP_ERROR, "a grant never given");
    assert_eq!(st(rw(BLKIF_OP_READ, 1, 0, &[seg(1, 0, 7)]), false), BLKIF_RSP_ERROR, "reading into a read-only grant");
    assert_eq!(st(rw(BLKIF_OP_WRITE, 1, 127, &[seg(1, 0, 1)]), false), BLKIF_RSP_ERROR, "past the end");
    assert_eq!(st(rw(BLKIF_OP_WRITE, 1, u64::MAX, &[seg(1, 0, 0)]), false), BLKIF_RSP_ERROR, "sector overflow");
    assert_eq!(st(rw(BLKIF_OP_WRITE, 1, 0, &[seg(1, 5, 2)]), false), BLKIF_RSP_ERROR, "first_sect > last_sect");
    assert_eq!(st(rw(BLKIF_OP_WRITE, 1, 0, &[seg(1, 0, 8)]), false), BLKIF_RSP_ERROR, "last_sect past the page");
    assert_eq!(st(rw(BLKIF_OP_WRITE, 1, 0, &[]), false), BLKIF_RSP_ERROR, "no segment");
    let mut r = BlkifRequest { operation: BLKIF_OP_READ, nr_segments: 12, ..Default::default() };
    r.seg[0] = seg(2, 0, 0);
    assert_eq!(st(to_slot(&r), false), BLKIF_RSP_ERROR, "more than 11 segments");
    assert_eq!(st(rw(BLKIF_OP_WRITE, 1, 0, &[seg(1, 0, 7)]), true), BLKIF_RSP_ERROR, "write to a read-only disk");
    assert_eq!(st(rw(42, 1, 0, &[]), false), BLKIF_RSP_EOPNOTSUPP, "unknown operation");
    assert_eq!(st(rw(BLKIF_OP_READ, 1, 0, &[seg(2, 0, 7)]), false), BLKIF_RSP_OKAY, "a good request still works");
}

#[test]
fn flush_barrier_discard_and_indirect_requests() {
    let mut disk = MemDisk::new(1 << 20);
    let mut g = Fake::default();
    g.grant(1, 0x11, false);
    assert_eq!(handle(&rw(BLKIF_OP_FLUSH_DISKCACHE, 1, 0, &[]), &mut disk, &mut g, false).status, BLKIF_RSP_OKAY);
    assert_eq!(handle(&rw(BLKIF_OP_WRITE_BARRIER, 2, 8, &[seg(1, 0, 7)]), &mut disk, &mut g, false).status, BLKIF_RSP_OKAY);
    let mut back = [0u8; 4096];
    disk.read(8, &mut back).unwrap();
    assert!(back.iter().all(|&b| b == 0x11), "a barrier with data writes it");
    // Linux's blkfront sends a write that must be durable (REQ_FUA) as a
    // FLUSH_DISKCACHE with its data when the back end offers
    // feature-flush-cache.
    g.grant(4, 0x44, false);
    let r = handle(&rw(BLKIF_OP_FLUSH_DISKCACHE, 5, 16, &[seg(4, 0, 7), seg(4, 0, 3)]), &mut disk, &mut g, false);
    assert_eq!((r.id, r.operation, r.status), (5, BLKIF_OP_FLUSH_DISKCACHE, BLKIF_RSP_OKAY));
    let mut twelve = [0u8; 12 * 512];
    disk.read(16, &mut twelve).unwrap();
    assert!(twelve.iter().all(|&b| b == 0x44), "a flush with data writes it");
    assert_eq!(handle(&rw(BLKIF_OP_FLUSH_DISKCACHE, 6, 16, &[seg(4, 0, 7)]), &mut disk, &mut g, true).status, BLKIF_RSP_ERROR, "a flush with data on a read-only disk");
    let mut many = BlkifRequest { operation: BLKIF_OP_FLUSH_DISKCACHE, nr_segments: 12, id: 7, ..Default::default() };
    many.seg[0] = seg(4, 0, 7);
    assert_eq!(handle(&to_slot(&many), &mut disk, &mut g, false).status, BLKIF_RSP_ERROR, "more than 11 segments");
    let d = BlkifRequestDiscard { operation: BLKIF_OP_DISCARD, id: 3, sector_number: 8, nr_sectors: 8, ..Default::default() };
    assert_eq!(handle(&to_slot(&d), &mut disk, &mut g, false).status, BLKIF_RSP_OKAY);
    disk.read(8, &mut back).unwrap();
    assert!(back.iter().all(|&b| b == 0), "discarded");
    let d = BlkifRequestDiscard { operation: BLKIF_OP_DISCARD, sector_number: 2040, nr_sectors: 100, ..Default::default() };
    assert_eq!(handle(&to_slot(&d), &mut disk, &mut g, false).status, BLKIF_RSP_ERROR, "discard past the end");

    // Indirect: 16 segments described in a granted page.
    let mut desc = vec![0u8; 4096];
    for i in 0..16u32 {
        g.grant(100 + i, i as u8, false);
        desc[8 * i as usize..8 * i as usize + 4].copy_from_slice(&(100 + i).to_le_bytes());
        desc[8 * i as usize + 5] = 7;
    }
    g.0.insert(50, (desc, false));
    let mut ind = BlkifRequestIndirect { operation: BLKIF_OP_INDIRECT, indirect_op: BLKIF_OP_WRITE, nr_segments: 16, id: 9, sector_number: 0, ..Default::default() };
    ind.indirect_grefs[0] = 50;
    let r = handle(&to_slot(&ind), &mut disk, &mut g, false);
    // Linux's blkfront stops a disk whose response names another
    // operation than the one carried out (the indirect one, here).
    assert_eq!((r.id, r.operation, r.status), (9, BLKIF_OP_WRITE, BLKIF_RSP_OKAY));
    disk.read(15 * 8, &mut back).unwrap();
    assert!(back.iter().all(|&b| b == 15), "the 16th segment's page");
    ind.nr_segments = (MAX_INDIRECT_SEGMENTS + 1) as u16;
    assert_eq!(handle(&to_slot(&ind), &mut disk, &mut g, false).status, BLKIF_RSP_ERROR, "more segments than offered");
    ind.nr_segments = 16;
    ind.indirect_grefs[0] = 77;
    assert_eq!(handle(&to_slot(&ind), &mut disk, &mut g, false).status, BLKIF_RSP_ERROR, "bad indirect grant");
}

fn ring_page() -> Box<[u8; 4096]> {
    Box::new([0u8; 4096])
}

fn set(page: &mut [u8; 4096], off: usize, v: u32) {
    page[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn the_ring_serves_in_order_and_refuses_bogus_producer_indices() {
    let mut page = ring_page();
    // SAFETY: the page outlives the ring.
    let mut ring = unsafe { BackRing::new(page.as_mut_ptr()) };
    for i in 0..3u32 {
        let slot = rw(BLKIF_OP_READ, 100 + i as u64, 0, &[]);
        let off = slot_offset(i);
        page[off..off + BLKIF_SLOT_SIZE].copy_from_slice(&slot);
    }
    set(&mut page, 0, 3); // req_prod
    let mut ids = Vec::new();
    while let Some(slot) = ring.next_request() {
        // SAFETY: the slot holds 112 bytes, a whole BlkifRequest of plain integers.
        let r: BlkifRequest = unsafe { core::ptr::read_unaligned(slot.as_ptr() as *const BlkifRequest) };
        ids.push(r.id);
        ring.respond(&BlkifResponse { id: r.id, operation: r.operation, status: BLKIF_RSP_ERROR, ..Default::default() });
    }
    assert_eq!(ids, [100, 101, 102]);
    ring.push();
    assert_eq!(u32::from_le_bytes(page[8..12].try_into().unwrap()), 3, "rsp_prod published");
    assert_eq!(u64::from_le_bytes(page[slot_offset(1)..slot_offset(1) + 8].try_into().unwrap()), 101);

    set(&mut page, 0, 3 + BLKIF_RING_SIZE as u32 + 1); // more requests than slots
    assert!(ring.next_request().is_none());
    assert!(ring.broken, "bogus ring: no more processing");
    set(&mut page, 0, 4);
    assert!(ring.next_request().is_none(), "stays halted");
}
