//! The image store and qcow2 on the host, judged by the host's own tools:
//! `qemu-img check`/`convert`/`qemu-io` for qcow2, `mtools` and `fsck.fat`
//! for the filesystem (Debian's qemu-utils, mtools, dosfstools, which
//! `scripts/ensure-qemu.sh` installs).

use std::cell::RefCell;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::string::String;
use std::vec::Vec;
use std::{format, vec};

use embedded_sdmmc::{Block, BlockCount, BlockDevice, BlockIdx, RawFile};

use super::fs::{Format, Store};
use super::image::ImageDisk;
use super::qcow2::{Backing, Qcow2};

struct Mem(Vec<u8>);

impl Backing for Mem {
    fn read_at(&mut self, off: u64, buf: &mut [u8]) -> Result<(), String> {
        let off = off as usize;
        for (i, b) in buf.iter_mut().enumerate() {
            *b = self.0.get(off + i).copied().unwrap_or(0);
        }
        Ok(())
    }
    fn write_at(&mut self, off: u64, data: &[u8]) -> Result<(), String> {
        let end = off as usize + data.len();
        if self.0.len() < end {
            self.0.resize(end, 0);
        }
        self.0[off as usize..end].copy_from_slice(data);
        Ok(())
    }
    fn size(&mut self) -> Result<u64, String> {
        Ok(self.0.len() as u64)
    }
    fn flush(&mut self) -> Result<(), String> {
        Ok(())
    }
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dom0-disk-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e} (scripts/ensure-qemu.sh installs qemu-utils, mtools, dosfstools)"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{cmd} {args:?} failed:\n{text}");
    text
}

fn qemu_img_check(path: &Path) {
    let text = run("qemu-img", &["check", "-f", "qcow2", path.to_str().unwrap()]);
    assert!(text.contains("No errors were found"), "qemu-img check:\n{text}");
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1).collect()
}

#[test]
fn qcow2_we_write_is_clean_for_qemu_img_and_holds_the_data() {
    let mut q = Qcow2::create(Mem(Vec::new()), 8 << 20).unwrap();
    let empty = q.backing.0.len();
    q.write(5 << 20, &[0; 4096]).unwrap();
    assert_eq!(q.backing.0.len(), empty, "zeroes into a cluster never written allocate nothing");
    let a = pattern(1, 4096);
    let b = pattern(2, 1024);
    q.write(0, &a).unwrap();
    q.write((5 << 20) + 512, &b).unwrap();
    q.write((8 << 20) - 512, &a[..512]).unwrap();
    assert!(q.write(8 << 20, &a[..512]).is_err(), "past the end");
    let mut back = vec![0xffu8; 4096];
    q.read((5 << 20) - 1024, &mut back[..2048]).unwrap();
    assert!(back[..1024].iter().all(|&x| x == 0));
    q.read((5 << 20) + 512, &mut back[..1024]).unwrap();
    assert_eq!(&back[..1024], &b[..]);

    // Reopened, as after a restart.
    let mut q = Qcow2::open(Mem(q.backing.0), false).unwrap();
    q.read(0, &mut back).unwrap();
    assert_eq!(back, a);

    let path = tmp("ours.qcow2");
    std::fs::write(&path, &q.backing.0).unwrap();
    qemu_img_check(&path);
    let raw = tmp("ours.raw");
    run("qemu-img", &["convert", "-f", "qcow2", "-O", "raw", path.to_str().unwrap(), raw.to_str().unwrap()]);
    let r = std::fs::read(&raw).unwrap();
    assert_eq!(r.len(), 8 << 20);
    assert_eq!(&r[..4096], &a[..]);
    assert_eq!(&r[(5 << 20) + 512..(5 << 20) + 1536], &b[..]);
    assert_eq!(&r[(8 << 20) - 512..], &a[..512]);
    assert!(r[4096..(5 << 20) + 512].iter().all(|&x| x == 0));
}

#[test]
fn qcow2_made_by_qemu_img_is_read_and_written_and_its_refcount_blocks_grow() {
    let path = tmp("theirs.qcow2");
    let p = path.to_str().unwrap();
    // 512-byte clusters: a refcount block covers 256 clusters, so a few
    // hundred KiB of writes need new refcount blocks.
    run("qemu-img", &["create", "-q", "-f", "qcow2", "-o", "cluster_size=512", p, "4M"]);
    run("qemu-io", &["-f", "qcow2", "-c", "write -q -P 0xab 1M 64k", p]);
    let mut q = Qcow2::open(Mem(std::fs::read(&path).unwrap()), false).unwrap();
    let mut buf = vec![0u8; 65536];
    q.read(1 << 20, &mut buf).unwrap();
    assert!(buf.iter().all(|&x| x == 0xab), "qemu-io's pattern");
    q.read(2 << 20, &mut buf).unwrap();
    assert!(buf.iter().all(|&x| x == 0));
    for i in 0..600u64 {
        q.write((2 << 20) + i * 1024, &[0xcd; 1024]).unwrap();
    }
    std::fs::write(&path, &q.backing.0).unwrap();
    qemu_img_check(&path);
    let text = run("qemu-io", &["-f", "qcow2", "-c", "read -P 0xcd 2M 600k", "-c", "read -P 0xab 1M 64k", p]);
    assert!(!text.contains("Pattern verification failed"), "{text}");
}

#[test]
fn qcow2_refuses_what_it_cannot_keep_consistent() {
    let path = tmp("snap.qcow2");
    let p = path.to_str().unwrap();
    run("qemu-img", &["create", "-q", "-f", "qcow2", p, "1M"]);
    run("qemu-img", &["snapshot", "-c", "s1", p]);
    let e = Qcow2::open(Mem(std::fs::read(&path).unwrap()), false).err().unwrap();
    assert!(e.contains("snapshots"), "{e}");
    assert!(Qcow2::open(Mem(vec![0; 4096]), false).err().unwrap().contains("magic"));
    let mut bad = std::fs::read(&path).unwrap();
    bad[36..40].copy_from_slice(&0u32.to_be_bytes()); // l1_size 0 for 1M
    bad[60..64].copy_from_slice(&0u32.to_be_bytes());
    assert!(Qcow2::open(Mem(bad), false).is_err(), "an L1 too small for the size");
    // Tables that would exhaust Dom0's heap, and clusters too large.
    run("qemu-img", &["create", "-q", "-f", "qcow2", "-o", "cluster_size=2M", p, "1M"]);
    assert!(Qcow2::open(Mem(std::fs::read(&path).unwrap()), false).err().unwrap().contains("64 KiB"));
    run("qemu-img", &["create", "-q", "-f", "qcow2", p, "1M"]);
    let mut big = std::fs::read(&path).unwrap();
    big[36..40].copy_from_slice(&(1u32 << 22).to_be_bytes());
    assert!(Qcow2::open(Mem(big), false).err().unwrap().contains("too large"));
}

/// The host file as the filesystem crate's block device.
struct HostDisk(RefCell<File>, u64);

impl BlockDevice for HostDisk {
    type Error = std::io::Error;
    fn read(&self, blocks: &mut [Block], start: BlockIdx) -> Result<(), Self::Error> {
        for (i, b) in blocks.iter_mut().enumerate() {
            self.0.borrow().read_exact_at(&mut b.contents, (u64::from(start.0) + i as u64) * 512)?;
        }
        Ok(())
    }
    fn write(&self, blocks: &[Block], start: BlockIdx) -> Result<(), Self::Error> {
        for (i, b) in blocks.iter().enumerate() {
            self.0.borrow().write_all_at(&b.contents, (u64::from(start.0) + i as u64) * 512)?;
        }
        Ok(())
    }
    fn num_blocks(&self) -> Result<BlockCount, Self::Error> {
        Ok(BlockCount((self.1 / 512) as u32))
    }
}

struct InStore<'a, D: BlockDevice>(&'a Store<D>, RawFile);

impl<D: BlockDevice> Backing for InStore<'_, D> {
    fn read_at(&mut self, off: u64, buf: &mut [u8]) -> Result<(), String> {
        self.0.read_at(self.1, off, buf)
    }
    fn write_at(&mut self, off: u64, data: &[u8]) -> Result<(), String> {
        self.0.write_at(self.1, off, data)
    }
    fn size(&mut self) -> Result<u64, String> {
        self.0.len(self.1)
    }
    fn flush(&mut self) -> Result<(), String> {
        self.0.sync(self.1)
    }
}

#[test]
fn images_in_the_fat_store_open_on_the_host_with_mtools_fsck_and_qemu_img() {
    let disk = tmp("dom0-disk.img");
    let _ = std::fs::remove_file(&disk);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/make-disk.sh");
    run("bash", &[script, disk.to_str().unwrap(), "4G"]);
    let f = File::options().read(true).write(true).open(&disk).unwrap();
    let store = Store::open(HostDisk(RefCell::new(f), 4 << 30)).unwrap();

    let q = store.create("img1", Format::Qcow2).unwrap();
    let mut img = ImageDisk::create(InStore(&store, q), Format::Qcow2, 16 << 20).unwrap();
    let a = pattern(7, 8192);
    img.write_bytes(2048, &a).unwrap();
    img.flush_all().unwrap();
    drop(img);
    store.close(q).unwrap();

    let r = store.create("raw1", Format::Raw).unwrap();
    let mut img = ImageDisk::create(InStore(&store, r), Format::Raw, 1 << 20).unwrap();
    img.write_bytes(1, &a[..512]).unwrap();
    img.flush_all().unwrap();
    drop(img);
    store.close(r).unwrap();

    assert!(store.create("img1", Format::Qcow2).unwrap_err().contains("exists"));
    assert!(store.create("much-too-long", Format::Raw).is_err());
    let names: Vec<(String, Format)> = store.list().unwrap().into_iter().map(|e| (e.name, e.format)).collect();
    assert_eq!(names, [("img1".into(), Format::Qcow2), ("raw1".into(), Format::Raw)]);

    // Reopened by name, the data is there.
    let e = store.find("IMG1").unwrap().unwrap();
    let q = store.open_file(&e, true).unwrap();
    let mut img = ImageDisk::open(InStore(&store, q), Format::Qcow2, false).unwrap();
    let mut back = vec![0u8; 8192];
    img.read_bytes(2048, &mut back).unwrap();
    assert_eq!(back, a);
    drop(img);
    store.close(q).unwrap();
    drop(store);

    let img = format!("{}@@1M", disk.display());
    let listing = run("mdir", &["-i", &img, "::"]);
    assert!(listing.contains("IMG1") && listing.contains("QCO") && listing.contains("RAW1"), "{listing}");
    let out = tmp("img1.qcow2");
    run("mcopy", &["-o", "-i", &img, "::IMG1.QCO", out.to_str().unwrap()]);
    qemu_img_check(&out);
    let raw = tmp("img1.raw");
    run("qemu-img", &["convert", "-f", "qcow2", "-O", "raw", out.to_str().unwrap(), raw.to_str().unwrap()]);
    assert_eq!(&std::fs::read(&raw).unwrap()[2048 * 512..2048 * 512 + 8192], &a[..]);
    let out = tmp("raw1.raw");
    run("mcopy", &["-o", "-i", &img, "::RAW1.RAW", out.to_str().unwrap()]);
    let r = std::fs::read(&out).unwrap();
    assert_eq!(r.len(), 1 << 20);
    assert_eq!(&r[512..1024], &a[..512]);

    // fsck.fat on the partition (it takes no offset): a sparse copy.
    let part = tmp("part.img");
    run("dd", &[&format!("if={}", disk.display()), &format!("of={}", part.display()), "bs=1M", "skip=1", "conv=sparse", "status=none"]);
    run("fsck.fat", &["-n", part.to_str().unwrap()]);
    let f = File::options().read(true).write(true).open(&disk).unwrap();
    let store = Store::open(HostDisk(RefCell::new(f), 4 << 30)).unwrap();
    store.remove(&store.find("raw1").unwrap().unwrap()).unwrap();
    assert_eq!(store.list().unwrap().len(), 1);
    // Its clusters are free again: a new image takes them, and fsck.fat
    // finds nothing leaked (the crate alone leaves the chain allocated).
    let r = store.create("raw2", Format::Raw).unwrap();
    let img2 = ImageDisk::create(InStore(&store, r), Format::Raw, 512 << 10).unwrap();
    drop(img2);
    store.close(r).unwrap();
    store.remove(&store.find("raw2").unwrap().unwrap()).unwrap();
    drop(store);
    assert!(!run("mdir", &["-i", &img, "::"]).contains("RAW"));
    let _ = std::fs::remove_file(&part);
    run("dd", &[&format!("if={}", disk.display()), &format!("of={}", part.display()), "bs=1M", "skip=1", "conv=sparse", "status=none"]);
    run("fsck.fat", &["-n", part.to_str().unwrap()]);
    let _ = std::fs::remove_file(&disk);
    let _ = std::fs::remove_file(&part);
}

#[test]
fn a_qcow2_that_grew_without_a_flush_is_consistent_after_power_loss() {
    let disk = tmp("power-loss.img");
    let _ = std::fs::remove_file(&disk);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/make-disk.sh");
    run("bash", &[script, disk.to_str().unwrap(), "4G"]);
    let f = File::options().read(true).write(true).open(&disk).unwrap();
    let store = Store::open(HostDisk(RefCell::new(f), 4 << 30)).unwrap();
    let q = store.create("lost", Format::Qcow2).unwrap();
    let mut img = ImageDisk::create(InStore(&store, q), Format::Qcow2, 16 << 20).unwrap();
    let a = pattern(3, 4096);
    for i in 0..8 {
        img.write_bytes(i * 4096, &a).unwrap(); // 8 clusters allocated, no flush
    }
    // Power lost: nothing closed, nothing flushed.
    std::mem::forget(img);
    std::mem::forget(store);
    let out = tmp("lost.qcow2");
    run("mcopy", &["-o", "-i", &format!("{}@@1M", disk.display()), "::LOST.QCO", out.to_str().unwrap()]);
    assert!(std::fs::metadata(&out).unwrap().len() >= (4 + 1 + 8) << 16, "the file's length covers the clusters");
    qemu_img_check(&out);
    let _ = std::fs::remove_file(&disk);
}
