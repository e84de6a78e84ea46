//! Dom0's disk as the image store: the virtio-blk device under a block
//! cache, the FAT filesystem on it ([`super::fs`]), and image files as
//! blkback disks. One store for Dom0's life, behind a lock (Dom0 runs on
//! one vCPU; the lock only makes the static safe).

use alloc::boxed::Box;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;

use embedded_sdmmc::{Block, BlockCount, BlockDevice, BlockIdx, RawFile};
use pv_rt::println;
use spin::Mutex;

use super::fs::{Entry, Format, Store};
use super::image::{Failing, ImageDisk};
use super::qcow2::Backing;
use super::virtio_blk::{self, VirtioBlk};
use crate::blkback::disk::Disk;

/// Blocks kept in the cache (direct-mapped, write-through), and how many a
/// miss reads at once (one page: the filesystem walks forward).
const CACHE_BLOCKS: usize = 2048;
const READ_AHEAD: u32 = 8;

pub struct CachedDisk {
    dev: VirtioBlk,
    tags: Vec<u32>,
    data: Vec<[u8; 512]>,
}

impl CachedDisk {
    fn new(dev: VirtioBlk) -> CachedDisk {
        CachedDisk { dev, tags: vec![u32::MAX; CACHE_BLOCKS], data: vec![[0; 512]; CACHE_BLOCKS] }
    }

    fn slot(b: u32) -> usize {
        b as usize % CACHE_BLOCKS
    }

    fn read_block(&mut self, b: u32, out: &mut [u8; 512]) -> Result<(), virtio_blk::Error> {
        let s = Self::slot(b);
        if self.tags[s] != b {
            let first = b - b % READ_AHEAD;
            let n = (u64::from(READ_AHEAD)).min(self.dev.sectors.saturating_sub(u64::from(first))) as u32;
            let mut buf = [0u8; 512 * READ_AHEAD as usize];
            self.dev.read(u64::from(first), &mut buf[..512 * n as usize])?;
            for i in 0..n {
                let s = Self::slot(first + i);
                self.tags[s] = first + i;
                self.data[s].copy_from_slice(&buf[512 * i as usize..512 * (i as usize + 1)]);
            }
        }
        out.copy_from_slice(&self.data[s]);
        Ok(())
    }
}

/// The filesystem crate's view of the disk.
pub struct Dev(RefCell<CachedDisk>);

impl BlockDevice for Dev {
    type Error = virtio_blk::Error;

    fn read(&self, blocks: &mut [Block], start: BlockIdx) -> Result<(), Self::Error> {
        let mut d = self.0.borrow_mut();
        for (i, b) in blocks.iter_mut().enumerate() {
            d.read_block(start.0 + i as u32, &mut b.contents)?;
        }
        Ok(())
    }

    fn write(&self, blocks: &[Block], start: BlockIdx) -> Result<(), Self::Error> {
        let mut d = self.0.borrow_mut();
        let mut buf = Vec::with_capacity(blocks.len() * 512);
        for b in blocks {
            buf.extend_from_slice(&b.contents);
        }
        d.dev.write(u64::from(start.0), &buf)?;
        for (i, b) in blocks.iter().enumerate() {
            let n = start.0 + i as u32;
            let s = CachedDisk::slot(n);
            d.tags[s] = n;
            d.data[s] = b.contents;
        }
        Ok(())
    }

    fn num_blocks(&self) -> Result<BlockCount, Self::Error> {
        Ok(BlockCount(self.0.borrow().dev.sectors.min(u64::from(u32::MAX)) as u32))
    }
}

// SAFETY: Dev is only reached through STORE's lock.
unsafe impl Send for Dev {}

static STORE: Mutex<Option<Store<Dev>>> = Mutex::new(None);

/// Finds the virtio disk and opens its filesystem; says what it found.
pub fn init() {
    if let Err(e) = super::portio::enable() {
        println!("dom0: PHYSDEVOP_set_iopl failed ({}): no disk", e);
        return;
    }
    let dev = match VirtioBlk::probe() {
        Ok(Some(d)) => d,
        Ok(None) => return,
        Err(e) => {
            println!("virtio-blk: {}", e);
            return;
        }
    };
    println!(
        "virtio-blk: {} I/O ports {:#x}-{:#x}: {} sectors ({} MiB){}{}",
        dev.function.bdf(),
        dev.io_base,
        dev.io_base + dev.io_len - 1,
        dev.sectors,
        dev.sectors / 2048,
        if dev.flush { ", flush" } else { "" },
        if dev.readonly { ", read-only" } else { "" }
    );
    match Store::open(Dev(RefCell::new(CachedDisk::new(dev)))) {
        Ok(s) => {
            let n = s.list().map(|l| l.len()).unwrap_or(0);
            println!("dom0: images on the disk: {}", n);
            *STORE.lock() = Some(s);
        }
        Err(e) => println!("dom0: the disk holds no image store: {}", e),
    }
}

pub fn present() -> bool {
    STORE.lock().is_some()
}

fn with<R>(f: impl FnOnce(&Store<Dev>) -> Result<R, String>) -> Result<R, String> {
    match STORE.lock().as_ref() {
        Some(s) => f(s),
        None => Err("Dom0 has no disk (scripts/run.sh --disk PATH)".to_string()),
    }
}

/// An open image file.
pub struct StoreFile {
    file: RawFile,
}

impl Backing for StoreFile {
    fn read_at(&mut self, off: u64, buf: &mut [u8]) -> Result<(), String> {
        with(|s| s.read_at(self.file, off, buf))
    }
    fn write_at(&mut self, off: u64, data: &[u8]) -> Result<(), String> {
        with(|s| s.write_at(self.file, off, data))
    }
    fn size(&mut self) -> Result<u64, String> {
        with(|s| s.len(self.file))
    }
    /// The file's length in its directory entry, then the device's cache.
    fn flush(&mut self) -> Result<(), String> {
        with(|s| {
            s.sync(self.file)?;
            s.device(|d| d.0.borrow_mut().dev.flush()).map_err(|e| format!("flush: {}", e))
        })
    }
}

impl Drop for StoreFile {
    fn drop(&mut self) {
        let _ = with(|s| s.close(self.file));
    }
}

pub fn list() -> Result<Vec<Entry>, String> {
    with(|s| s.list())
}

pub fn create(name: &str, format: Format, bytes: u64) -> Result<(), String> {
    let file = with(|s| s.create(name, format))?;
    let r = ImageDisk::create(StoreFile { file }, format, bytes);
    if r.is_err() {
        if let Ok(Some(e)) = with(|s| s.find(name)) {
            let _ = with(|s| s.remove(&e));
        }
    }
    r.map(|_| ())
}

pub fn remove(name: &str) -> Result<(), String> {
    let e = with(|s| s.find(name))?.ok_or_else(|| format!("no image {}", name))?;
    with(|s| s.remove(&e))
}

/// Opens image `name` as a blkback disk; `format` must be the file's.
pub fn open(name: &str, format: Format, readonly: bool) -> Result<Box<dyn Disk>, String> {
    let e = with(|s| s.find(name))?.ok_or_else(|| format!("no image {} on Dom0's disk", name))?;
    if e.format != format {
        return Err(format!("image {} is {}, not {}", name, e.format.name(), format.name()));
    }
    let file = with(|s| s.open_file(&e, !readonly))?;
    let disk = ImageDisk::open(StoreFile { file }, format, readonly)?;
    Ok(Box::new(Logged { inner: Failing::new(disk), name: String::from(name) }))
}

/// Logs the reason a request failed (the ring only says "error").
struct Logged {
    inner: Failing<StoreFile>,
    name: String,
}

impl Logged {
    fn log(&mut self, r: Result<(), ()>) -> Result<(), ()> {
        if let Some(e) = self.inner.last_error.take() {
            println!("blkback: image {}: {}", self.name, e);
        }
        r
    }
}

impl Disk for Logged {
    fn sectors(&self) -> u64 {
        self.inner.sectors()
    }
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), ()> {
        let r = self.inner.read(sector, buf);
        self.log(r)
    }
    fn write(&mut self, sector: u64, data: &[u8]) -> Result<(), ()> {
        let r = self.inner.write(sector, data);
        self.log(r)
    }
    fn flush(&mut self) -> Result<(), ()> {
        let r = self.inner.flush();
        self.log(r)
    }
    fn discard(&mut self, sector: u64, count: u64) -> Result<(), ()> {
        let r = self.inner.discard(sector, count);
        self.log(r)
    }
}
