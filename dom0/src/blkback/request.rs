//! One block request, checked and carried out, as Linux's blkback does it
//! (`dispatch_rw_block_io`, `dispatch_discard_io`, `dispatch_other_io`):
//! the request is copied out of the ring first (the frontend may change
//! the slot meanwhile), every segment checked (`first_sect <= last_sect <=
//! 7`, at least one and at most 11 segments, or the advertised indirect
//! maximum), the sectors checked against the disk's end, writes refused on
//! a read-only disk; anything wrong is `BLKIF_RSP_ERROR`, an operation we do
//! not offer `BLKIF_RSP_EOPNOTSUPP`. Data moves with grant copies, so the
//! frontend's pages are never mapped into Dom0.

use alloc::vec;
use alloc::vec::Vec;

use hypercall_abi::blkif::*;

use super::disk::Disk;

/// Most segments an indirect request may carry (`feature-max-indirect-segments`).
pub const MAX_INDIRECT_SEGMENTS: usize = 256;

/// The frontend's granted pages, as the back end reaches them.
pub trait Grants {
    /// Copies `buf.len()` bytes at `offset` of the page granted as `gref`.
    fn copy_from(&mut self, gref: u32, offset: usize, buf: &mut [u8]) -> Result<(), ()>;
    /// Copies `data` to `offset` of the page granted as `gref` (a
    /// writable grant).
    fn copy_to(&mut self, gref: u32, offset: usize, data: &[u8]) -> Result<(), ()>;
}

/// Reads a `T` out of a slot's bytes.
fn read_as<T: Copy + Default>(slot: &[u8; BLKIF_SLOT_SIZE]) -> T {
    let mut v = T::default();
    let n = core::mem::size_of::<T>().min(BLKIF_SLOT_SIZE);
    // SAFETY: T is one of blkif.h's plain-integer structures, valid for any
    // bytes; we write at most its size from the slot.
    unsafe { core::ptr::copy_nonoverlapping(slot.as_ptr(), &mut v as *mut T as *mut u8, n) };
    v
}

/// Carries out one request (the slot's bytes, already copied out of the
/// ring); returns the response.
pub fn handle(slot: &[u8; BLKIF_SLOT_SIZE], disk: &mut dyn Disk, grants: &mut dyn Grants, readonly: bool) -> BlkifResponse {
    let r: BlkifRequest = read_as(slot);
    let status = match r.operation {
        BLKIF_OP_READ | BLKIF_OP_WRITE => {
            let n = r.nr_segments as usize;
            if n == 0 || n > BLKIF_MAX_SEGMENTS_PER_REQUEST {
                BLKIF_RSP_ERROR
            } else {
                rw(r.operation == BLKIF_OP_WRITE, r.sector_number, &r.seg[..n], disk, grants, readonly)
            }
        }
        BLKIF_OP_INDIRECT => {
            let ind: BlkifRequestIndirect = read_as(slot);
            // The response names the operation carried out, as Linux's
            // blkback answers (`pending_req->operation`): Linux's blkfront
            // takes any other as a broken back end and stops the disk.
            let status = indirect(&ind, disk, grants, readonly);
            return BlkifResponse { id: ind.id, operation: ind.indirect_op, _pad: 0, status, _pad2: 0 };
        }
        BLKIF_OP_FLUSH_DISKCACHE | BLKIF_OP_WRITE_BARRIER => {
            // Either may carry data, as Linux's blkback takes them (a
            // write with REQ_PREFLUSH): Linux's blkfront sends a write it
            // must make durable (REQ_FUA, e.g. ext4's superblock) as
            // FLUSH_DISKCACHE with its segments. A barrier also orders the
            // writes before it: we complete each request before taking
            // the next, so it is the same. The data is written, then the
            // disk flushed.
            let n = r.nr_segments as usize;
            let data = if n > BLKIF_MAX_SEGMENTS_PER_REQUEST {
                BLKIF_RSP_ERROR
            } else if n == 0 {
                BLKIF_RSP_OKAY
            } else {
                rw(true, r.sector_number, &r.seg[..n], disk, grants, readonly)
            };
            if data != BLKIF_RSP_OKAY || disk.flush().is_err() {
                BLKIF_RSP_ERROR
            } else {
                BLKIF_RSP_OKAY
            }
        }
        BLKIF_OP_DISCARD => {
            let d: BlkifRequestDiscard = read_as(slot);
            if readonly || disk.discard(d.sector_number, d.nr_sectors).is_err() {
                BLKIF_RSP_ERROR
            } else {
                BLKIF_RSP_OKAY
            }
        }
        _ => BLKIF_RSP_EOPNOTSUPP,
    };
    BlkifResponse { id: r.id, operation: r.operation, _pad: 0, status, _pad2: 0 }
}

fn indirect(r: &BlkifRequestIndirect, disk: &mut dyn Disk, grants: &mut dyn Grants, readonly: bool) -> i16 {
    let n = r.nr_segments as usize;
    if !matches!(r.indirect_op, BLKIF_OP_READ | BLKIF_OP_WRITE) || n == 0 || n > MAX_INDIRECT_SEGMENTS {
        return BLKIF_RSP_ERROR;
    }
    let mut segs = Vec::with_capacity(n);
    let mut page = vec![0u8; 4096];
    for (i, &gref) in r.indirect_grefs.iter().enumerate().take(n.div_ceil(SEGS_PER_INDIRECT_FRAME)) {
        if grants.copy_from(gref, 0, &mut page).is_err() {
            return BLKIF_RSP_ERROR;
        }
        let here = (n - i * SEGS_PER_INDIRECT_FRAME).min(SEGS_PER_INDIRECT_FRAME);
        for s in page.chunks_exact(8).take(here) {
            segs.push(BlkifRequestSegment {
                gref: u32::from_le_bytes([s[0], s[1], s[2], s[3]]),
                first_sect: s[4],
                last_sect: s[5],
                _pad: 0,
            });
        }
    }
    rw(r.indirect_op == BLKIF_OP_WRITE, r.sector_number, &segs, disk, grants, readonly)
}

fn rw(write: bool, sector: u64, segs: &[BlkifRequestSegment], disk: &mut dyn Disk, grants: &mut dyn Grants, readonly: bool) -> i16 {
    if write && readonly {
        return BLKIF_RSP_ERROR;
    }
    let mut total: u64 = 0;
    for s in segs {
        if s.first_sect > s.last_sect || s.last_sect >= SECTORS_PER_PAGE {
            return BLKIF_RSP_ERROR;
        }
        total += (s.last_sect - s.first_sect + 1) as u64;
    }
    if sector.checked_add(total).is_none_or(|end| end > disk.sectors()) {
        return BLKIF_RSP_ERROR;
    }
    let mut buf = [0u8; 4096];
    let mut at = sector;
    for s in segs {
        let count = (s.last_sect - s.first_sect + 1) as usize;
        let (off, len) = (s.first_sect as usize * 512, count * 512);
        let data = &mut buf[..len];
        let ok = if write {
            grants.copy_from(s.gref, off, data).is_ok() && disk.write(at, data).is_ok()
        } else {
            disk.read(at, data).is_ok() && grants.copy_to(s.gref, off, data).is_ok()
        };
        if !ok {
            return BLKIF_RSP_ERROR;
        }
        at += count as u64;
    }
    BLKIF_RSP_OKAY
}

/// A request's bytes as a frontend writes them into a slot.
pub fn to_slot<T: Copy>(req: &T) -> [u8; BLKIF_SLOT_SIZE] {
    let mut slot = [0u8; BLKIF_SLOT_SIZE];
    let n = core::mem::size_of::<T>().min(BLKIF_SLOT_SIZE);
    // SAFETY: T is a plain-integer blkif structure; at most its size is read.
    unsafe { core::ptr::copy_nonoverlapping(req as *const T as *const u8, slot.as_mut_ptr(), n) };
    slot
}
