//! qcow2 images (QEMU's `docs/interop/qcow2.txt`), read and written:
//! version 2 and 3, 16-bit refcounts, no backing file, no encryption, no
//! compressed clusters, no snapshots (each refused with a message: writing
//! in place beside a snapshot would corrupt it). Clusters are allocated on
//! their first write, at the end of the file; a cluster never written reads
//! as zeroes, as does one with the v3 "all zeroes" flag.
//!
//! Consistency: an allocation writes the cluster's refcount first, then
//! the data, then the L2 entry that points at it, so a crash in between
//! leaves at worst a leaked cluster (`qemu-img check` calls it a leak, not
//! corruption), never an L2 entry pointing at a cluster not counted.
//! Entries we write carry `QCOW_OFLAG_COPIED` (refcount 1), as
//! `qemu-img check` expects.
//!
//! New images are version 3 with 64 KiB clusters, as `qemu-img create -f
//! qcow2` makes them: header, refcount table, one refcount block, L1 table.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use alloc::format;

/// Where an image's bytes live: a file, or memory in tests.
pub trait Backing {
    fn read_at(&mut self, off: u64, buf: &mut [u8]) -> Result<(), String>;
    fn write_at(&mut self, off: u64, data: &[u8]) -> Result<(), String>;
    fn size(&mut self) -> Result<u64, String>;
    fn flush(&mut self) -> Result<(), String>;
}

const MAGIC: u32 = 0x5146_49fb;
const OFLAG_COPIED: u64 = 1 << 63;
const OFLAG_COMPRESSED: u64 = 1 << 62;
const OFLAG_ZERO: u64 = 1;
const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
const HEADER_V3_LEN: u32 = 104;
pub const DEFAULT_CLUSTER_BITS: u32 = 16;
/// L2 tables kept in memory (64 KiB each at most).
const L2_CACHE: usize = 4;
/// Dom0's heap is shared (the store, the builder, every open image): an image's L1 and refcount tables, read
/// whole, may take at most this much each, and clusters at most 64 KiB
/// (an L2 table is a cluster). An image asking for more is refused, not
/// allowed to exhaust the heap.
const MAX_TABLE_BYTES: u64 = 256 << 10;
const MAX_CLUSTER_BITS: u32 = 16;

fn be32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}
fn be64(b: &[u8], off: usize) -> u64 {
    (u64::from(be32(b, off)) << 32) | u64::from(be32(b, off + 4))
}

fn put32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_be_bytes());
}
fn put64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_be_bytes());
}

pub struct Qcow2<B: Backing> {
    pub backing: B,
    /// Virtual size in bytes.
    pub size: u64,
    cluster_bits: u32,
    l1_offset: u64,
    l1: Vec<u64>,
    refcount_table_offset: u64,
    refcount_table: Vec<u64>,
    /// The next cluster index to allocate (everything below is in use).
    next_cluster: u64,
    l2_cache: BTreeMap<u64, Vec<u64>>,
    pub readonly: bool,
}

impl<B: Backing> Qcow2<B> {
    fn cluster_size(&self) -> u64 {
        1 << self.cluster_bits
    }
    fn l2_entries(&self) -> u64 {
        1 << (self.cluster_bits - 3)
    }
    fn refcounts_per_block(&self) -> u64 {
        // 16-bit refcounts.
        1 << (self.cluster_bits - 1)
    }

    /// Writes a new, empty image of `size` bytes into `backing` (which must
    /// be empty) and opens it.
    pub fn create(mut backing: B, size: u64) -> Result<Qcow2<B>, String> {
        let cb = DEFAULT_CLUSTER_BITS;
        let cs = 1u64 << cb;
        if size == 0 || !size.is_multiple_of(512) {
            return Err("the size must be a positive multiple of 512 bytes".to_string());
        }
        let l1_size = size.div_ceil(cs * (cs / 8));
        let l1_clusters = (l1_size * 8).div_ceil(cs).max(1);
        // Cluster 0 header, 1 refcount table, 2 refcount block, 3.. L1.
        let used = 3 + l1_clusters;
        if used > cs / 2 {
            return Err("image too large".to_string());
        }
        let mut header = vec![0u8; cs as usize];
        put32(&mut header, 0, MAGIC);
        put32(&mut header, 4, 3);
        put32(&mut header, 20, cb);
        put64(&mut header, 24, size);
        put32(&mut header, 36, l1_size as u32);
        put64(&mut header, 40, 3 * cs);
        put64(&mut header, 48, cs);
        put32(&mut header, 56, 1);
        put32(&mut header, 96, 4);
        put32(&mut header, 100, HEADER_V3_LEN);
        let mut rt = vec![0u8; cs as usize];
        put64(&mut rt, 0, 2 * cs);
        let mut rb = vec![0u8; cs as usize];
        for i in 0..used as usize {
            rb[2 * i..2 * i + 2].copy_from_slice(&1u16.to_be_bytes());
        }
        // Everything but the header first: an image is one once its magic is.
        backing.write_at(cs, &rt)?;
        backing.write_at(2 * cs, &rb)?;
        backing.write_at(3 * cs, &vec![0u8; (l1_clusters * cs) as usize])?;
        backing.write_at(0, &header)?;
        backing.flush()?;
        Qcow2::open(backing, false)
    }

    pub fn open(mut backing: B, readonly: bool) -> Result<Qcow2<B>, String> {
        let mut h = [0u8; 104];
        backing.read_at(0, &mut h)?;
        if be32(&h, 0) != MAGIC {
            return Err("not a qcow2 image (bad magic)".to_string());
        }
        let version = be32(&h, 4);
        if version != 2 && version != 3 {
            return Err(format!("qcow2 version {} is not supported (2 or 3)", version));
        }
        if be64(&h, 8) != 0 {
            return Err("qcow2 images with a backing file are not supported".to_string());
        }
        let cluster_bits = be32(&h, 20);
        if !(9..=MAX_CLUSTER_BITS).contains(&cluster_bits) {
            return Err("cluster sizes from 512 bytes to 64 KiB are supported".to_string());
        }
        if be32(&h, 32) != 0 {
            return Err("encrypted qcow2 images are not supported".to_string());
        }
        if be32(&h, 60) != 0 {
            return Err("qcow2 images with snapshots are not supported".to_string());
        }
        if version == 3 {
            if be64(&h, 72) != 0 {
                return Err("the image has incompatible features set (dirty, corrupt, external data or compression)".to_string());
            }
            if be32(&h, 96) != 4 {
                return Err("only 16-bit refcounts are supported".to_string());
            }
        }
        let size = be64(&h, 24);
        let l1_size = be32(&h, 36) as u64;
        let l1_offset = be64(&h, 40);
        let refcount_table_offset = be64(&h, 48);
        let rt_clusters = be32(&h, 56) as u64;
        let cs = 1u64 << cluster_bits;
        let need_l1 = size.div_ceil(cs * (cs / 8));
        if l1_size < need_l1 || rt_clusters == 0 {
            return Err("inconsistent qcow2 header".to_string());
        }
        if l1_size * 8 > MAX_TABLE_BYTES || rt_clusters * cs > MAX_TABLE_BYTES {
            return Err("the image's tables are too large for Dom0's memory".to_string());
        }
        if !l1_offset.is_multiple_of(cs) || !refcount_table_offset.is_multiple_of(cs) {
            return Err("inconsistent qcow2 header (unaligned tables)".to_string());
        }
        let mut buf = vec![0u8; (l1_size * 8) as usize];
        backing.read_at(l1_offset, &mut buf)?;
        let l1 = buf.chunks(8).map(|c| be64(c, 0)).collect();
        let mut buf = vec![0u8; (rt_clusters * cs) as usize];
        backing.read_at(refcount_table_offset, &mut buf)?;
        let refcount_table = buf.chunks(8).map(|c| be64(c, 0)).collect();
        let len = backing.size()?;
        let mut q = Qcow2 {
            backing,
            size,
            cluster_bits,
            l1_offset,
            l1,
            refcount_table_offset,
            refcount_table,
            next_cluster: len.div_ceil(cs),
            l2_cache: BTreeMap::new(),
            readonly,
        };
        if version == 3 && !readonly && be64(&h, 88) != 0 {
            // Autoclear features (e.g. bitmaps) we do not keep up to date
            // must be cleared by a writer that does not know them.
            let mut z = [0u8; 8];
            put64(&mut z, 0, 0);
            q.backing.write_at(88, &z)?;
        }
        Ok(q)
    }

    fn l2(&mut self, l2_off: u64) -> Result<&mut Vec<u64>, String> {
        if !self.l2_cache.contains_key(&l2_off) {
            if self.l2_cache.len() >= L2_CACHE {
                let first = *self.l2_cache.keys().next().unwrap_or(&0);
                self.l2_cache.remove(&first);
            }
            let mut buf = vec![0u8; self.cluster_size() as usize];
            self.backing.read_at(l2_off, &mut buf)?;
            self.l2_cache.insert(l2_off, buf.chunks(8).map(|c| be64(c, 0)).collect());
        }
        self.l2_cache.get_mut(&l2_off).ok_or_else(|| "l2 cache".to_string())
    }

    /// The L2 entry for guest offset `off`, or 0 when unallocated.
    fn lookup(&mut self, off: u64) -> Result<u64, String> {
        let cb = self.cluster_bits;
        let l1_idx = (off >> (cb + cb - 3)) as usize;
        let l2_idx = ((off >> cb) & (self.l2_entries() - 1)) as usize;
        let l1e = *self.l1.get(l1_idx).ok_or("offset past the L1 table")?;
        let l2_off = l1e & OFFSET_MASK;
        if l2_off == 0 {
            return Ok(0);
        }
        let e = *self.l2(l2_off)?.get(l2_idx).ok_or("bad L2 index")?;
        if e & OFLAG_COMPRESSED != 0 {
            return Err("compressed clusters are not supported".to_string());
        }
        Ok(e)
    }

    /// Sets the refcount of cluster `idx` to `v`, making its refcount block if needed.
    fn set_refcount(&mut self, idx: u64, v: u16) -> Result<(), String> {
        let per = self.refcounts_per_block();
        let rt_idx = (idx / per) as usize;
        if rt_idx >= self.refcount_table.len() {
            return Err("the image outgrew its refcount table".to_string());
        }
        if self.refcount_table[rt_idx] & OFFSET_MASK == 0 {
            // A new refcount block, in a new cluster; it counts itself when
            // it falls into its own range.
            let blk = self.next_cluster;
            self.next_cluster += 1;
            let mut b = vec![0u8; self.cluster_size() as usize];
            if blk / per == rt_idx as u64 {
                let i = (blk % per) as usize;
                b[2 * i..2 * i + 2].copy_from_slice(&1u16.to_be_bytes());
            } else {
                self.set_refcount(blk, 1)?;
            }
            let cs = self.cluster_size();
            self.backing.write_at(blk * cs, &b)?;
            self.refcount_table[rt_idx] = blk * cs;
            let mut e = [0u8; 8];
            put64(&mut e, 0, blk * cs);
            self.backing.write_at(self.refcount_table_offset + rt_idx as u64 * 8, &e)?;
        }
        let blk_off = self.refcount_table[rt_idx] & OFFSET_MASK;
        let i = idx % per;
        self.backing.write_at(blk_off + 2 * i, &v.to_be_bytes())
    }

    /// A new cluster at the end of the file, counted, filled with zeroes.
    fn alloc(&mut self) -> Result<u64, String> {
        let idx = self.next_cluster;
        self.next_cluster += 1;
        self.set_refcount(idx, 1)?;
        // (A refcount block that `set_refcount` needed went after `idx`.)
        let cs = self.cluster_size();
        self.backing.write_at(idx * cs, &vec![0u8; cs as usize])?;
        Ok(idx * cs)
    }

    /// The host offset of the cluster holding `off`, allocated if needed.
    fn cluster_for_write(&mut self, off: u64) -> Result<u64, String> {
        let cb = self.cluster_bits;
        let l1_idx = (off >> (cb + cb - 3)) as usize;
        let l2_idx = ((off >> cb) & (self.l2_entries() - 1)) as usize;
        let l1e = *self.l1.get(l1_idx).ok_or("offset past the L1 table")?;
        let mut l2_off = l1e & OFFSET_MASK;
        if l2_off == 0 {
            l2_off = self.alloc()?;
            self.l1[l1_idx] = l2_off | OFLAG_COPIED;
            let mut e = [0u8; 8];
            put64(&mut e, 0, l2_off | OFLAG_COPIED);
            self.backing.write_at(self.l1_offset + l1_idx as u64 * 8, &e)?;
        }
        let e = *self.l2(l2_off)?.get(l2_idx).ok_or("bad L2 index")?;
        if e & OFLAG_COMPRESSED != 0 {
            return Err("compressed clusters are not supported".to_string());
        }
        let host = e & OFFSET_MASK;
        if host != 0 && e & OFLAG_ZERO == 0 {
            if e & OFLAG_COPIED == 0 {
                return Err("shared clusters (refcount > 1) are not supported".to_string());
            }
            return Ok(host);
        }
        let host = if host != 0 {
            // Preallocated but reading as zeroes: make it so, then use it.
            self.backing.write_at(host, &vec![0u8; self.cluster_size() as usize])?;
            host
        } else {
            self.alloc()?
        };
        let new = host | OFLAG_COPIED;
        if let Some(slot) = self.l2(l2_off)?.get_mut(l2_idx) {
            *slot = new;
        }
        let mut b = [0u8; 8];
        put64(&mut b, 0, new);
        self.backing.write_at(l2_off + l2_idx as u64 * 8, &b)?;
        Ok(host)
    }

    fn check(&self, off: u64, len: usize) -> Result<(), String> {
        match off.checked_add(len as u64) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err("past the end of the image".to_string()),
        }
    }

    pub fn read(&mut self, mut off: u64, buf: &mut [u8]) -> Result<(), String> {
        self.check(off, buf.len())?;
        let cs = self.cluster_size();
        let mut done = 0;
        while done < buf.len() {
            let in_cluster = off & (cs - 1);
            let n = ((cs - in_cluster) as usize).min(buf.len() - done);
            let e = self.lookup(off)?;
            let host = e & OFFSET_MASK;
            if host == 0 || e & OFLAG_ZERO != 0 {
                buf[done..done + n].fill(0);
            } else {
                self.backing.read_at(host + in_cluster, &mut buf[done..done + n])?;
            }
            done += n;
            off += n as u64;
        }
        Ok(())
    }

    pub fn write(&mut self, mut off: u64, data: &[u8]) -> Result<(), String> {
        if self.readonly {
            return Err("read-only".to_string());
        }
        self.check(off, data.len())?;
        let cs = self.cluster_size();
        let mut done = 0;
        while done < data.len() {
            let in_cluster = off & (cs - 1);
            let n = ((cs - in_cluster) as usize).min(data.len() - done);
            let chunk = &data[done..done + n];
            let e = self.lookup(off)?;
            // Zeroes into a cluster never written need no cluster.
            if !(e & OFFSET_MASK == 0 && chunk.iter().all(|&b| b == 0)) {
                let host = self.cluster_for_write(off)?;
                self.backing.write_at(host + in_cluster, chunk)?;
            }
            done += n;
            off += n as u64;
        }
        Ok(())
    }

    /// Zeroes `len` bytes at `off` where clusters are allocated (a discard:
    /// the clusters stay, reading as zeroes).
    pub fn discard(&mut self, mut off: u64, len: u64) -> Result<(), String> {
        let end = off.checked_add(len).filter(|&e| e <= self.size).ok_or("past the end of the image")?;
        let cs = self.cluster_size();
        while off < end {
            let in_cluster = off & (cs - 1);
            let n = (cs - in_cluster).min(end - off);
            let e = self.lookup(off)?;
            if e & OFFSET_MASK != 0 && e & OFLAG_ZERO == 0 && !self.readonly {
                self.backing.write_at((e & OFFSET_MASK) + in_cluster, &vec![0u8; n as usize])?;
            }
            off += n;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> Result<(), String> {
        self.backing.flush()
    }
}
