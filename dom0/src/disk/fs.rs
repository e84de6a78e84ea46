//! The image store: a FAT filesystem on Dom0's disk holding the virtual
//! disks as files, in its root directory.
//!
//! FAT, through the `embedded-sdmmc` crate, because a user can open it on
//! the host with standard tools (`mtools`, `fsck.fat`, or a loop mount), and
//! because that crate builds `no_std` on stable Rust as it is; `fatfs`, the
//! fuller FAT crate, needs the nightly-only `core_io` without `std`, and no
//! maintained crate writes ext2 without `std`. What the crate gives and what
//! follows from it: an MBR-partitioned disk (its first partition, FAT16 or
//! FAT32), 8.3 file names (an image is `NAME.EXT`, `NAME` up to 8
//! characters), files up to 4 GiB.
//!
//! The format of an image follows from its extension: `RAW` or `IMG` is a
//! raw image, `QCO` a qcow2 (what `mcopy disk.qcow2 ::` gives as the short
//! name on the host).

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use alloc::format;
use core::ops::ControlFlow;

use embedded_sdmmc::{Block, BlockDevice, BlockIdx, Mode, RawDirectory, RawFile, RawVolume, TimeSource, Timestamp, VolumeIdx, VolumeManager};

/// Files open at once (each attached image keeps one open).
pub const MAX_OPEN: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Raw,
    Qcow2,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Qcow2 => "qcow2",
        }
    }

    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "raw" => Some(Format::Raw),
            "qcow2" => Some(Format::Qcow2),
            _ => None,
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Format::Raw => "RAW",
            Format::Qcow2 => "QCO",
        }
    }

    fn of_extension(ext: &[u8]) -> Option<Format> {
        match ext {
            b"RAW" | b"IMG" => Some(Format::Raw),
            b"QCO" | b"QC2" => Some(Format::Qcow2),
            _ => None,
        }
    }
}

/// An image's name is up to 8 letters, digits, `-` or `_` (the 8.3 base).
pub fn valid_name(name: &str) -> bool {
    (1..=8).contains(&name.len()) && name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

/// FAT timestamps: Dom0 has no calendar of its own; files carry 2026-01-01.
pub struct Clock;

impl TimeSource for Clock {
    fn get_timestamp(&self) -> Timestamp {
        Timestamp { year_since_1970: 56, zero_indexed_month: 0, zero_indexed_day: 0, hours: 0, minutes: 0, seconds: 0 }
    }
}

pub struct Entry {
    /// Lower case, as the user names it.
    pub name: String,
    pub format: Format,
    pub bytes: u32,
    /// The 8.3 name on the disk, e.g. `IMG1.QCO`.
    pub file: String,
    /// Where its directory entry lies: block, byte offset.
    dirent: (u32, u32),
}

/// What `remove` needs to know of the FAT (from the partition's boot
/// sector, as the FAT specification lays it out).
struct Geometry {
    /// First sector of each FAT copy.
    fats: Vec<u32>,
    fat32: bool,
    /// Clusters on the volume (+2: cluster numbers start at 2).
    clusters: u32,
}

pub struct Store<D: BlockDevice> {
    vm: VolumeManager<D, Clock, 2, MAX_OPEN, 1>,
    _vol: RawVolume,
    root: RawDirectory,
}

pub type Error = String;

fn err<E: core::fmt::Debug>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{}: {}", what, describe(&e))
}

/// The crate's error in words (its variants' names, not Rust's debug form).
fn describe<E: core::fmt::Debug>(e: &E) -> String {
    let s = format!("{:?}", e);
    match s.as_str() {
        "NotFound" => "no such file".to_string(),
        "DiskFull" | "AllocationError" => "the disk is full".to_string(),
        "FileAlreadyExists" => "exists already".to_string(),
        "FileAlreadyOpen" => "in use".to_string(),
        "TooManyOpenFiles" => "too many images open".to_string(),
        _ if s.starts_with("FormatError") => "not a FAT16/FAT32 filesystem on an MBR disk".to_string(),
        _ if s.starts_with("DeviceError") => "disk I/O error".to_string(),
        _ => "filesystem error".to_string(),
    }
}

impl<D: BlockDevice> Store<D> {
    /// Opens the first partition's FAT filesystem.
    ///
    /// FAT32's count of free clusters (in its FSInfo sector) is set to
    /// "unknown" first: `remove` frees clusters behind the crate's back
    /// (see there), so the crate's own count would go wrong; with an
    /// unknown count it keeps none, and readers such as Linux and fsck.fat
    /// count for themselves, as the specification allows.
    pub fn open(dev: D) -> Result<Store<D>, Error> {
        if let Some(info) = fsinfo_sector(&dev) {
            let mut b = [Block::new()];
            if dev.read(&mut b, BlockIdx(info)).is_ok() && b[0].contents[484..488] == *b"rrAa" {
                b[0].contents[488..492].copy_from_slice(&u32::MAX.to_le_bytes());
                dev.write(&b, BlockIdx(info)).map_err(err("writing FSInfo"))?;
            }
        }
        let vm = VolumeManager::new_with_limits(dev, Clock, 1);
        let vol = vm.open_raw_volume(VolumeIdx(0)).map_err(err("opening the filesystem"))?;
        let root = vm.open_root_dir(vol).map_err(err("opening its root directory"))?;
        Ok(Store { vm, _vol: vol, root })
    }

    /// The images in the root directory, in directory order.
    pub fn list(&self) -> Result<Vec<Entry>, Error> {
        let mut out = Vec::new();
        self.vm
            .iterate_dir(self.root, |e| {
                if !e.attributes.is_directory() && !e.attributes.is_volume() {
                    if let Some(format) = Format::of_extension(e.name.extension()) {
                        let name = String::from_utf8_lossy(e.name.base_name()).to_ascii_lowercase();
                        let dirent = (e.entry_block.0, e.entry_offset);
                        out.push(Entry { name, format, bytes: e.size, file: e.name.to_string(), dirent });
                    }
                }
                ControlFlow::Continue(())
            })
            .map_err(err("reading the directory"))?;
        Ok(out)
    }

    pub fn find(&self, name: &str) -> Result<Option<Entry>, Error> {
        Ok(self.list()?.into_iter().find(|e| e.name.eq_ignore_ascii_case(name)))
    }

    fn file_name(name: &str, format: Format) -> String {
        format!("{}.{}", name.to_ascii_uppercase(), format.extension())
    }

    /// Creates an empty file for an image (`create_new` semantics).
    pub fn create(&self, name: &str, format: Format) -> Result<RawFile, Error> {
        if !valid_name(name) {
            return Err("an image name is 1 to 8 letters, digits, '-' or '_'".to_string());
        }
        if self.find(name)?.is_some() {
            return Err(format!("image {} exists already", name));
        }
        self.vm
            .open_file_in_dir(self.root, Self::file_name(name, format).as_str(), Mode::ReadWriteCreate)
            .map_err(err("creating the file"))
    }

    pub fn open_file(&self, e: &Entry, writable: bool) -> Result<RawFile, Error> {
        let mode = if writable { Mode::ReadWriteAppend } else { Mode::ReadOnly };
        self.vm.open_file_in_dir(self.root, e.file.as_str(), mode).map_err(err("opening the image"))
    }

    /// Removes a closed file and frees its clusters. The crate only marks
    /// the directory entry deleted and leaves the cluster chain allocated
    /// (a leak `fsck.fat` reclaims), so the chain is freed here, in every
    /// FAT copy, after reading its first cluster from the entry.
    pub fn remove(&self, e: &Entry) -> Result<(), Error> {
        let first = self.vm.device(|d| {
            let mut b = [Block::new()];
            d.read(&mut b, BlockIdx(e.dirent.0)).ok()?;
            let o = e.dirent.1 as usize;
            let c = b[0].contents.get(o..o + 32)?;
            Some(u32::from(u16::from_le_bytes([c[20], c[21]])) << 16 | u32::from(u16::from_le_bytes([c[26], c[27]])))
        });
        self.vm.delete_entry_in_dir(self.root, e.file.as_str()).map_err(err("removing the file"))?;
        if let Some(first) = first.filter(|&c| c >= 2) {
            self.vm.device(|d| free_chain(d, first)).map_err(err("freeing its clusters"))?;
            // The crate caches one block: make it read something else, so
            // that a FAT block it held is read anew.
            self.vm.iterate_dir(self.root, |_| ControlFlow::Break(())).map_err(err("reading the directory"))?;
        }
        Ok(())
    }

    pub fn close(&self, f: RawFile) -> Result<(), Error> {
        self.vm.close_file(f).map_err(err("closing the image"))
    }

    pub fn len(&self, f: RawFile) -> Result<u64, Error> {
        self.vm.file_length(f).map(u64::from).map_err(err("reading the length"))
    }

    fn seek(&self, f: RawFile, off: u64) -> Result<(), Error> {
        let off = u32::try_from(off).map_err(|_| "past 4 GiB, FAT's limit".to_string())?;
        self.vm.file_seek_from_start(f, off).map_err(err("seeking"))
    }

    /// Reads `buf.len()` bytes at `off`; past the end of the file reads zeroes.
    pub fn read_at(&self, f: RawFile, off: u64, buf: &mut [u8]) -> Result<(), Error> {
        let len = self.len(f)?;
        let inside = len.saturating_sub(off).min(buf.len() as u64) as usize;
        buf[inside..].fill(0);
        if inside == 0 {
            return Ok(());
        }
        self.seek(f, off)?;
        let mut done = 0;
        while done < inside {
            let n = self.vm.read(f, &mut buf[done..inside]).map_err(err("reading"))?;
            if n == 0 {
                return Err("the file ended early".to_string());
            }
            done += n;
        }
        Ok(())
    }

    /// Writes at `off`, extending the file (with zeroes up to `off`) if needed.
    pub fn write_at(&self, f: RawFile, off: u64, data: &[u8]) -> Result<(), Error> {
        let end = off.checked_add(data.len() as u64).filter(|&e| e <= u64::from(u32::MAX));
        if end.is_none() {
            return Err("past 4 GiB, FAT's limit".to_string());
        }
        let len = self.len(f)?;
        if off > len {
            self.seek(f, len)?;
            let zeroes = [0u8; 4096];
            let mut left = off - len;
            while left > 0 {
                let n = left.min(zeroes.len() as u64) as usize;
                self.vm.write(f, &zeroes[..n]).map_err(err("extending"))?;
                left -= n as u64;
            }
        } else {
            self.seek(f, off)?;
        }
        self.vm.write(f, data).map_err(err("writing"))?;
        if off + data.len() as u64 > len {
            // The crate writes a file's length to its directory entry only
            // when asked: a file that grew (a qcow2 allocating clusters)
            // has it written now, so that after a crash the length still
            // covers every cluster the image's tables point at.
            self.sync(f)?;
        }
        Ok(())
    }

    /// Writes the file's directory entry (its length); the device's cache
    /// is the caller's to flush.
    pub fn sync(&self, f: RawFile) -> Result<(), Error> {
        self.vm.flush_file(f).map_err(err("updating the directory entry"))
    }

    pub fn device<R>(&self, f: impl FnOnce(&mut D) -> R) -> R {
        self.vm.device(f)
    }
}

fn le16(b: &[u8], o: usize) -> u32 {
    u32::from(u16::from_le_bytes([b[o], b[o + 1]]))
}
fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

/// The first partition's start (MBR entry 1) and its boot sector.
fn boot_sector<D: BlockDevice>(dev: &D) -> Option<(u32, Block)> {
    let mut b = [Block::new()];
    dev.read(&mut b, BlockIdx(0)).ok()?;
    if b[0].contents[510..512] != [0x55, 0xaa] {
        return None;
    }
    let start = le32(&b[0].contents, 446 + 8);
    dev.read(&mut b, BlockIdx(start)).ok()?;
    (le16(&b[0].contents, 11) == 512).then(|| (start, b[0].clone()))
}

fn fsinfo_sector<D: BlockDevice>(dev: &D) -> Option<u32> {
    let (start, bs) = boot_sector(dev)?;
    let c = &bs.contents;
    // FAT32 only (FAT16 has no FSInfo): the 16-bit FAT size is 0.
    (le16(c, 22) == 0).then(|| start + le16(c, 48)).filter(|&s| s > start)
}

fn geometry<D: BlockDevice>(dev: &D) -> Option<Geometry> {
    let (start, bs) = boot_sector(dev)?;
    let c = &bs.contents;
    let reserved = le16(c, 14);
    let nfats = u32::from(c[16]);
    let fat16_size = le16(c, 22);
    let fat32 = fat16_size == 0;
    let fat_size = if fat32 { le32(c, 36) } else { fat16_size };
    let total = if le16(c, 19) != 0 { le16(c, 19) } else { le32(c, 32) };
    let spc = u32::from(c[13]).max(1);
    let root_sectors = (le16(c, 17) * 32).div_ceil(512);
    let data = reserved.checked_add(nfats.checked_mul(fat_size)?)?.checked_add(root_sectors)?;
    let clusters = total.checked_sub(data)? / spc + 2;
    let fats = (0..nfats).map(|i| start + reserved + i * fat_size).collect();
    Some(Geometry { fats, fat32, clusters })
}

/// Marks the chain from `first` free in every FAT copy, one block write
/// per FAT block touched. Stops at an end-of-chain mark, a free or bad
/// entry, or after as many steps as there are clusters (a looping chain).
fn free_chain<D: BlockDevice>(dev: &mut D, first: u32) -> Result<(), D::Error> {
    let Some(g) = geometry(dev) else { return Ok(()) };
    let width = if g.fat32 { 4 } else { 2 };
    let mut block = [Block::new()];
    let mut loaded: Option<u32> = None;
    let flush = |dev: &mut D, loaded: Option<u32>, block: &[Block; 1]| -> Result<(), D::Error> {
        if let Some(rel) = loaded {
            for &fat in &g.fats {
                dev.write(block, BlockIdx(fat + rel))?;
            }
        }
        Ok(())
    };
    let mut c = first;
    for _ in 0..g.clusters {
        if c < 2 || c >= g.clusters {
            break;
        }
        let rel = c * width / 512;
        if loaded != Some(rel) {
            flush(dev, loaded, &block)?;
            dev.read(&mut block, BlockIdx(g.fats[0] + rel))?;
            loaded = Some(rel);
        }
        let o = (c * width % 512) as usize;
        let b = &mut block[0].contents;
        let next = if g.fat32 {
            let v = le32(b, o);
            // The top four bits are reserved: kept.
            b[o..o + 4].copy_from_slice(&(v & 0xf000_0000).to_le_bytes());
            v & 0x0fff_ffff
        } else {
            let v = le16(b, o);
            b[o..o + 2].copy_from_slice(&[0, 0]);
            v
        };
        c = next;
    }
    flush(dev, loaded, &block)
}
