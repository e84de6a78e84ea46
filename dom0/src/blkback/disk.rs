//! Virtual disks held in Dom0's memory: sparse (a page is allocated on its
//! first write, and a discard frees it), all of them together limited to
//! [`MEMORY_LIMIT`] of written data, so no guest can exhaust Dom0's heap.
//! They outlive the guests that use them, until Dom0 powers off.

use alloc::boxed::Box;
use alloc::collections::btree_map::Entry;
use alloc::collections::BTreeMap;
use core::sync::atomic::{AtomicUsize, Ordering};

/// Written pages of all memory disks together.
pub const MEMORY_LIMIT: usize = 4 << 20;
static USED: AtomicUsize = AtomicUsize::new(0);

const PAGE: u64 = 4096;

/// What a back end needs of a disk: 512-byte sectors.
pub trait Disk {
    fn sectors(&self) -> u64;
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), ()>;
    fn write(&mut self, sector: u64, data: &[u8]) -> Result<(), ()>;
    fn flush(&mut self) -> Result<(), ()>;
    fn discard(&mut self, sector: u64, count: u64) -> Result<(), ()>;
}

pub struct MemDisk {
    sectors: u64,
    pages: BTreeMap<u64, Box<[u8; PAGE as usize]>>,
}

impl MemDisk {
    pub fn new(bytes: u64) -> MemDisk {
        MemDisk { sectors: bytes / 512, pages: BTreeMap::new() }
    }

    pub fn allocated_bytes(&self) -> usize {
        self.pages.len() * PAGE as usize
    }

    fn in_range(&self, sector: u64, len: usize) -> bool {
        len.is_multiple_of(512) && sector.checked_add(len as u64 / 512).is_some_and(|end| end <= self.sectors)
    }
}

impl Drop for MemDisk {
    fn drop(&mut self) {
        USED.fetch_sub(self.allocated_bytes(), Ordering::Relaxed);
    }
}

impl Disk for MemDisk {
    fn sectors(&self) -> u64 {
        self.sectors
    }

    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), ()> {
        if !self.in_range(sector, buf.len()) {
            return Err(());
        }
        let mut off = sector * 512;
        for chunk in buf.chunks_mut(512) {
            match self.pages.get(&(off / PAGE)) {
                Some(p) => chunk.copy_from_slice(&p[(off % PAGE) as usize..(off % PAGE) as usize + 512]),
                None => chunk.fill(0),
            }
            off += 512;
        }
        Ok(())
    }

    fn write(&mut self, sector: u64, data: &[u8]) -> Result<(), ()> {
        if !self.in_range(sector, data.len()) {
            return Err(());
        }
        let mut off = sector * 512;
        for chunk in data.chunks(512) {
            let page = match self.pages.entry(off / PAGE) {
                Entry::Occupied(e) => e.into_mut(),
                // A page never written reads as zeroes: zeroes need no page.
                Entry::Vacant(_) if chunk.iter().all(|&b| b == 0) => {
                    off += 512;
                    continue;
                }
                Entry::Vacant(e) => {
                    if USED.fetch_add(PAGE as usize, Ordering::Relaxed) + PAGE as usize > MEMORY_LIMIT {
                        USED.fetch_sub(PAGE as usize, Ordering::Relaxed);
                        return Err(());
                    }
                    e.insert(Box::new([0; PAGE as usize]))
                }
            };
            page[(off % PAGE) as usize..(off % PAGE) as usize + 512].copy_from_slice(chunk);
            off += 512;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ()> {
        Ok(())
    }

    fn discard(&mut self, sector: u64, count: u64) -> Result<(), ()> {
        let Some(end) = sector.checked_add(count).filter(|&e| e <= self.sectors) else { return Err(()) };
        // Whole pages go; the rest of a partly discarded page is zeroed.
        let mut s = sector;
        while s < end {
            let idx = s * 512 / PAGE;
            let page_start = idx * PAGE / 512;
            let page_end = page_start + PAGE / 512;
            if s == page_start && end >= page_end {
                if self.pages.remove(&idx).is_some() {
                    USED.fetch_sub(PAGE as usize, Ordering::Relaxed);
                }
                s = page_end;
            } else {
                let upto = end.min(page_end);
                if let Some(p) = self.pages.get_mut(&idx) {
                    let a = ((s - page_start) * 512) as usize;
                    let b = ((upto - page_start) * 512) as usize;
                    p[a..b].fill(0);
                }
                s = upto;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_was_written_zeroes_elsewhere_and_refuses_past_the_end() {
        let mut d = MemDisk::new(1 << 20);
        assert_eq!(d.sectors(), 2048);
        let data: alloc::vec::Vec<u8> = (0..1024u32).map(|i| i as u8).collect();
        d.write(7, &data).unwrap();
        let mut back = [0xffu8; 1536];
        d.read(6, &mut back).unwrap();
        assert!(back[..512].iter().all(|&b| b == 0));
        assert_eq!(&back[512..], &data[..]);
        assert!(d.write(2047, &[1; 1024]).is_err(), "past the end");
        assert!(d.read(u64::MAX, &mut [0; 512]).is_err(), "overflow");
        assert!(d.write(0, &[1; 100]).is_err(), "not whole sectors");
        d.discard(0, 2048).unwrap();
        assert_eq!(d.allocated_bytes(), 0);
        assert!(d.discard(2000, 100).is_err());
    }
}
