//! An image file as blkback's [`Disk`]: raw (sector `s` at byte `512 * s`
//! of the file) or qcow2 (see [`super::qcow2`]), over any [`Backing`].

use alloc::string::String;
use alloc::vec;

use super::fs::Format;
use super::qcow2::{Backing, Qcow2};
use crate::blkback::disk::Disk;

pub enum ImageDisk<B: Backing> {
    Raw { backing: B, sectors: u64, readonly: bool },
    Qcow2(Qcow2<B>),
}

/// The last error an image met, for Dom0's log (blkback's `Disk` returns
/// only that a request failed).
pub struct Failing<B: Backing> {
    pub disk: ImageDisk<B>,
    pub last_error: Option<String>,
}

impl<B: Backing> ImageDisk<B> {
    pub fn open(mut backing: B, format: Format, readonly: bool) -> Result<ImageDisk<B>, String> {
        Ok(match format {
            Format::Raw => {
                let len = backing.size()?;
                ImageDisk::Raw { backing, sectors: len / 512, readonly }
            }
            Format::Qcow2 => ImageDisk::Qcow2(Qcow2::open(backing, readonly)?),
        })
    }

    /// Makes a new image of `bytes` in an empty `backing`: a raw one is
    /// written out in full (FAT has no sparse files), a qcow2 holds only
    /// its metadata.
    pub fn create(mut backing: B, format: Format, bytes: u64) -> Result<ImageDisk<B>, String> {
        if bytes == 0 || !bytes.is_multiple_of(512) {
            return Err("the size must be a positive multiple of 512 bytes".into());
        }
        match format {
            Format::Raw => {
                let zeroes = vec![0u8; 64 << 10];
                let mut off = 0;
                while off < bytes {
                    let n = (bytes - off).min(zeroes.len() as u64) as usize;
                    backing.write_at(off, &zeroes[..n])?;
                    off += n as u64;
                }
                backing.flush()?;
                Ok(ImageDisk::Raw { backing, sectors: bytes / 512, readonly: false })
            }
            Format::Qcow2 => Ok(ImageDisk::Qcow2(Qcow2::create(backing, bytes)?)),
        }
    }

    pub fn into_backing(self) -> B {
        match self {
            ImageDisk::Raw { backing, .. } => backing,
            ImageDisk::Qcow2(q) => q.backing,
        }
    }

    fn range(&self, sector: u64, len: usize) -> Result<u64, String> {
        let ok = len.is_multiple_of(512) && sector.checked_add(len as u64 / 512).is_some_and(|e| e <= self.sectors_());
        if ok { Ok(sector * 512) } else { Err("past the end of the image".into()) }
    }

    fn sectors_(&self) -> u64 {
        match self {
            ImageDisk::Raw { sectors, .. } => *sectors,
            ImageDisk::Qcow2(q) => q.size / 512,
        }
    }

    pub fn read_bytes(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), String> {
        let off = self.range(sector, buf.len())?;
        match self {
            ImageDisk::Raw { backing, .. } => backing.read_at(off, buf),
            ImageDisk::Qcow2(q) => q.read(off, buf),
        }
    }

    pub fn write_bytes(&mut self, sector: u64, data: &[u8]) -> Result<(), String> {
        let off = self.range(sector, data.len())?;
        match self {
            ImageDisk::Raw { readonly: true, .. } => Err("read-only".into()),
            ImageDisk::Raw { backing, .. } => backing.write_at(off, data),
            ImageDisk::Qcow2(q) => q.write(off, data),
        }
    }

    pub fn flush_all(&mut self) -> Result<(), String> {
        match self {
            ImageDisk::Raw { backing, .. } => backing.flush(),
            ImageDisk::Qcow2(q) => q.flush(),
        }
    }

    pub fn discard_range(&mut self, sector: u64, count: u64) -> Result<(), String> {
        let bytes = count.checked_mul(512).ok_or("past the end of the image")?;
        sector.checked_add(count).filter(|&e| e <= self.sectors_()).ok_or("past the end of the image")?;
        match self {
            ImageDisk::Raw { readonly: true, .. } => Err("read-only".into()),
            // A discard is a hint: blkif.h leaves the data read afterwards
            // undefined (`discard-secure` = 0), and FAT cannot punch holes.
            ImageDisk::Raw { .. } => Ok(()),
            ImageDisk::Qcow2(q) => q.discard(sector * 512, bytes),
        }
    }
}

impl<B: Backing> Failing<B> {
    pub fn new(disk: ImageDisk<B>) -> Failing<B> {
        Failing { disk, last_error: None }
    }

    fn note(&mut self, r: Result<(), String>) -> Result<(), ()> {
        r.map_err(|e| self.last_error = Some(e))
    }
}

impl<B: Backing> Disk for Failing<B> {
    fn sectors(&self) -> u64 {
        self.disk.sectors_()
    }
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), ()> {
        let r = self.disk.read_bytes(sector, buf);
        self.note(r)
    }
    fn write(&mut self, sector: u64, data: &[u8]) -> Result<(), ()> {
        let r = self.disk.write_bytes(sector, data);
        self.note(r)
    }
    fn flush(&mut self) -> Result<(), ()> {
        let r = self.disk.flush_all();
        self.note(r)
    }
    fn discard(&mut self, sector: u64, count: u64) -> Result<(), ()> {
        let r = self.disk.discard_range(sector, count);
        self.note(r)
    }
}
