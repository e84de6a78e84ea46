//! The PV block protocol (`io/blkif.h`, x86-64 layouts) and its shared
//! ring (`io/ring.h`'s `DEFINE_RING_TYPES(blkif, ...)`: a 64-byte header,
//! then 32 slots of 112 bytes in one page).

use crate::assert_layout;

pub const BLKIF_OP_READ: u8 = 0;
pub const BLKIF_OP_WRITE: u8 = 1;
pub const BLKIF_OP_WRITE_BARRIER: u8 = 2;
pub const BLKIF_OP_FLUSH_DISKCACHE: u8 = 3;
pub const BLKIF_OP_RESERVED_1: u8 = 4;
pub const BLKIF_OP_DISCARD: u8 = 5;
pub const BLKIF_OP_INDIRECT: u8 = 6;

pub const BLKIF_RSP_EOPNOTSUPP: i16 = -2;
pub const BLKIF_RSP_ERROR: i16 = -1;
pub const BLKIF_RSP_OKAY: i16 = 0;

/// Segments in a direct request.
pub const BLKIF_MAX_SEGMENTS_PER_REQUEST: usize = 11;
/// Pages of segment descriptors an indirect request may name.
pub const BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST: usize = 8;
/// Segment descriptors in one indirect page.
pub const SEGS_PER_INDIRECT_FRAME: usize = 4096 / 8;
/// `BLKIF_DISCARD_SECURE`.
pub const BLKIF_DISCARD_SECURE: u8 = 1;
/// Sectors are 512 bytes in the protocol, whatever the disk's sector-size.
pub const SECTOR_SHIFT: u32 = 9;
pub const SECTORS_PER_PAGE: u8 = 8;

/// `VDISK_*` bits of the backend's `info` node.
pub const VDISK_CDROM: u32 = 1;
pub const VDISK_REMOVABLE: u32 = 2;
pub const VDISK_READONLY: u32 = 4;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlkifRequestSegment {
    pub gref: u32,
    /// First and last 512-byte sector of the page to transfer (inclusive).
    pub first_sect: u8,
    pub last_sect: u8,
    pub _pad: u16,
}
assert_layout!(BlkifRequestSegment, size = 8, gref = 0, first_sect = 4, last_sect = 5);

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlkifRequest {
    pub operation: u8,
    pub nr_segments: u8,
    pub handle: u16,
    pub _pad: u32,
    pub id: u64,
    pub sector_number: u64,
    pub seg: [BlkifRequestSegment; BLKIF_MAX_SEGMENTS_PER_REQUEST],
}
assert_layout!(BlkifRequest, size = 112, operation = 0, nr_segments = 1, handle = 2, id = 8, sector_number = 16, seg = 24);

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlkifRequestDiscard {
    pub operation: u8,
    /// `BLKIF_DISCARD_SECURE`.
    pub flag: u8,
    pub handle: u16,
    pub _pad: u32,
    pub id: u64,
    pub sector_number: u64,
    pub nr_sectors: u64,
}
assert_layout!(BlkifRequestDiscard, size = 32, operation = 0, flag = 1, handle = 2, id = 8, sector_number = 16, nr_sectors = 24);

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlkifRequestIndirect {
    pub operation: u8,
    /// The operation the segments are for (`READ` or `WRITE`).
    pub indirect_op: u8,
    pub nr_segments: u16,
    pub _pad: u32,
    pub id: u64,
    pub sector_number: u64,
    pub handle: u16,
    pub _pad2: u16,
    pub indirect_grefs: [u32; BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST],
    pub _pad3: u32,
}
assert_layout!(BlkifRequestIndirect, size = 64, operation = 0, indirect_op = 1, nr_segments = 2, id = 8,
               sector_number = 16, handle = 24, indirect_grefs = 28);

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlkifResponse {
    pub id: u64,
    pub operation: u8,
    pub _pad: u8,
    pub status: i16,
    pub _pad2: u32,
}
assert_layout!(BlkifResponse, size = 16, id = 0, operation = 8, status = 10);

/// `io/ring.h`'s shared-ring header.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SringHeader {
    pub req_prod: u32,
    pub req_event: u32,
    pub rsp_prod: u32,
    pub rsp_event: u32,
    pub _pad: [u8; 48],
}
assert_layout!(SringHeader, size = 64, req_prod = 0, req_event = 4, rsp_prod = 8, rsp_event = 12);

/// One slot: a request or a response (the C union).
pub const BLKIF_SLOT_SIZE: usize = 112;
/// `__CONST_RING_SIZE(blkif, 4096)`: the largest power of two of slots
/// that fits after the header.
pub const BLKIF_RING_SIZE: usize = 32;
const _: () = assert!(64 + BLKIF_RING_SIZE * BLKIF_SLOT_SIZE <= 4096 && 64 + 2 * BLKIF_RING_SIZE * BLKIF_SLOT_SIZE > 4096);

/// Byte offset of slot `idx` (a free-running index) in the ring page.
pub const fn slot_offset(idx: u32) -> usize {
    64 + (idx as usize & (BLKIF_RING_SIZE - 1)) * BLKIF_SLOT_SIZE
}
