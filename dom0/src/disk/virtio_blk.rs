//! Dom0's own disk: a legacy virtio-blk PCI device (virtio 0.9.5, QEMU's
//! `virtio-blk-pci,disable-modern=on`), driven through its I/O-port BAR and
//! polled (no interrupts: Dom0 polls everything).
//!
//! Why by hand: the `virtio-drivers` crate drives only the modern PCI
//! transport (memory BARs, which Dom0 would have to map as foreign I/O
//! memory) and the MMIO transports; the legacy I/O-port interface is about
//! a dozen registers.
//!
//! DMA: the device sees machine addresses. Dom0 knows its own from its P2M
//! list (`start_info.mfn_list`). Every data buffer is one page, so needs
//! no contiguity; a request of several pages gives one descriptor per page.
//! Only the virtqueue itself must be machine-contiguous (the legacy device
//! takes one page-frame number for it, at most three pages): it is made of
//! pages of a static area of Dom0's whose machine frames, as the P2M shows,
//! are consecutive, in whatever order they lie in Dom0's own address space
//! (the two builders order Dom0's frames differently), each
//! part of the queue reached through the page that holds it. If the area
//! has no such run, the disk is refused with a message rather than given a
//! broken queue (Xen's way out would be `XENMEM_exchange` for a contiguous
//! region, which xen-core lacks).

use core::ptr::{addr_of, addr_of_mut, read_volatile, write_volatile};
use core::sync::atomic::{fence, Ordering};

use super::pci::{self, Function, COMMAND_IO, COMMAND_MASTER};
use super::portio::{inb, inl, inw, outb, outl, outw};

const VENDOR_VIRTIO: u16 = 0x1af4;
/// The transitional (legacy) block device id.
const DEVICE_LEGACY_BLK: u16 = 0x1001;

// Legacy virtio header in BAR0 (virtio 0.9.5, "Virtio header").
const REG_DEVICE_FEATURES: u16 = 0x00;
const REG_GUEST_FEATURES: u16 = 0x04;
const REG_QUEUE_PFN: u16 = 0x08;
const REG_QUEUE_SIZE: u16 = 0x0c;
const REG_QUEUE_SELECT: u16 = 0x0e;
const REG_QUEUE_NOTIFY: u16 = 0x10;
const REG_STATUS: u16 = 0x12;
const REG_ISR: u16 = 0x13;
/// Device configuration without MSI-X: `capacity` (u64 sectors) first.
const REG_CAPACITY: u16 = 0x14;

const STATUS_ACKNOWLEDGE: u8 = 1;
const STATUS_DRIVER: u8 = 2;
const STATUS_DRIVER_OK: u8 = 4;
const STATUS_FAILED: u8 = 0x80;

const VIRTIO_BLK_F_RO: u32 = 1 << 5;
const VIRTIO_BLK_F_FLUSH: u32 = 1 << 9;

const VIRTIO_BLK_T_IN: u32 = 0;
const VIRTIO_BLK_T_OUT: u32 = 1;
const VIRTIO_BLK_T_FLUSH: u32 = 4;
const VIRTIO_BLK_S_OK: u8 = 0;

const VRING_DESC_F_NEXT: u16 = 1;
const VRING_DESC_F_WRITE: u16 = 2;
const VRING_AVAIL_F_NO_INTERRUPT: u16 = 1;

const PAGE: usize = 4096;
/// Data pages one request may carry.
pub const MAX_PAGES: usize = 16;
/// The largest queue we accept: three pages of ring (QEMU's default is 256).
const MAX_QUEUE: u16 = 256;
/// Pages searched for a machine-contiguous run to hold the queue.
const QUEUE_AREA_PAGES: usize = 16;

#[repr(C, align(4096))]
struct Pages<const N: usize>([[u8; PAGE]; N]);

static mut QUEUE_AREA: Pages<QUEUE_AREA_PAGES> = Pages([[0; PAGE]; QUEUE_AREA_PAGES]);
/// The request header (16 bytes) at 0 and the status byte at 64.
static mut HEADER: Pages<1> = Pages([[0; PAGE]; 1]);
/// Data moves through these pages.
static mut DATA: Pages<MAX_PAGES> = Pages([[0; PAGE]; MAX_PAGES]);

#[repr(C)]
#[derive(Clone, Copy)]
struct Desc {
    addr: u64,
    len: u32,
    flags: u16,
    next: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The device answered with a status other than OK.
    Device(u8),
    /// No answer in time.
    Timeout,
    /// Past the end, not whole sectors, or a write to a read-only disk.
    Bad,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match self {
            Error::Device(s) => write!(f, "device status {}", s),
            Error::Timeout => f.write_str("no answer from the device"),
            Error::Bad => f.write_str("request out of range"),
        }
    }
}

impl core::error::Error for Error {}

pub struct VirtioBlk {
    pub function: Function,
    pub io_base: u16,
    pub io_len: u16,
    pub sectors: u64,
    pub readonly: bool,
    pub flush: bool,
    queue_size: u16,
    /// The queue's machine pages, in order: their indices in QUEUE_AREA.
    qpages: [usize; 3],
    /// Offsets of the queue parts in the queue (machine order).
    desc: usize,
    avail: usize,
    used: usize,
    avail_idx: u16,
    used_idx: u16,
    /// Requests done, for `xl info`-style reporting.
    pub requests: u64,
}

/// The machine frame behind one of our (statically allocated) pages.
fn mfn_of(va: u64) -> u64 {
    let si = pv_rt::start_info();
    let pfn = (va - pv_rt::mm::VIRT_BASE) / PAGE as u64;
    // SAFETY: the P2M list (`mfn_list`) maps every pfn of ours for good, and
    // `va` lies in our image, below `nr_pages`.
    unsafe { read_volatile((si.mfn_list as *const u64).add(pfn as usize)) }
}

fn maddr_of(va: u64) -> u64 {
    (mfn_of(va & !(PAGE as u64 - 1)) << 12) | (va & (PAGE as u64 - 1))
}

impl VirtioBlk {
    /// Finds the device on bus 0 and sets it up, or says why not.
    pub fn probe() -> Result<Option<VirtioBlk>, &'static str> {
        let Some(f) = pci::find(VENDOR_VIRTIO, DEVICE_LEGACY_BLK) else { return Ok(None) };
        let bar0 = f.read32(0x10);
        if bar0 & 1 == 0 {
            return Err("BAR0 is not an I/O-port BAR");
        }
        // BAR size: all-ones, read back, restore.
        f.write32(0x10, 0xffff_ffff);
        let mask = f.read32(0x10) & !3;
        f.write32(0x10, bar0);
        let io_base = (bar0 & 0xfffc) as u16;
        let io_len = ((!mask).wrapping_add(1) & 0xffff) as u16;
        if io_base == 0 {
            return Err("BAR0 has no port assigned");
        }
        let cmd = f.read32(0x04);
        f.write32(0x04, (cmd & 0xffff) | COMMAND_IO | COMMAND_MASTER);

        let mut d = VirtioBlk {
            function: f,
            io_base,
            io_len,
            sectors: 0,
            readonly: false,
            flush: false,
            queue_size: 0,
            qpages: [0; 3],
            desc: 0,
            avail: 0,
            used: 0,
            avail_idx: 0,
            used_idx: 0,
            requests: 0,
        };
        outb(d.reg(REG_STATUS), 0); // reset
        outb(d.reg(REG_STATUS), STATUS_ACKNOWLEDGE);
        outb(d.reg(REG_STATUS), STATUS_ACKNOWLEDGE | STATUS_DRIVER);
        let features = inl(d.reg(REG_DEVICE_FEATURES));
        let want = features & (VIRTIO_BLK_F_FLUSH | VIRTIO_BLK_F_RO);
        outl(d.reg(REG_GUEST_FEATURES), want);
        d.flush = want & VIRTIO_BLK_F_FLUSH != 0;
        d.readonly = want & VIRTIO_BLK_F_RO != 0;
        d.sectors = u64::from(inl(d.reg(REG_CAPACITY))) | (u64::from(inl(d.reg(REG_CAPACITY + 4))) << 32);

        outw(d.reg(REG_QUEUE_SELECT), 0);
        let n = inw(d.reg(REG_QUEUE_SIZE));
        if n == 0 || n > MAX_QUEUE || !n.is_power_of_two() {
            outb(d.reg(REG_STATUS), STATUS_FAILED);
            return Err("queue 0 has an unusable size");
        }
        d.queue_size = n;
        let n = usize::from(n);
        d.desc = 0;
        d.avail = 16 * n;
        d.used = (d.avail + 6 + 2 * n).next_multiple_of(PAGE);
        let pages = (d.used + 6 + 8 * n).div_ceil(PAGE);
        let base = addr_of!(QUEUE_AREA) as u64;
        let mfns: [u64; QUEUE_AREA_PAGES] = core::array::from_fn(|p| mfn_of(base + (p * PAGE) as u64));
        let run = (0..QUEUE_AREA_PAGES).find_map(|first| {
            let mut q = [first; 3];
            for (i, slot) in q.iter_mut().enumerate().take(pages).skip(1) {
                *slot = mfns.iter().position(|&m| m == mfns[first] + i as u64)?;
            }
            Some(q)
        });
        let Some(run) = run else {
            outb(d.reg(REG_STATUS), STATUS_FAILED);
            return Err("no machine-contiguous pages for the virtqueue");
        };
        d.qpages = run;
        // The device's interrupts are of no use to us: we poll the used ring.
        d.write16(d.avail, VRING_AVAIL_F_NO_INTERRUPT);
        let pfn = mfns[run[0]];
        let Ok(pfn) = u32::try_from(pfn) else {
            outb(d.reg(REG_STATUS), STATUS_FAILED);
            return Err("the virtqueue lies above 16 TiB");
        };
        outl(d.reg(REG_QUEUE_PFN), pfn);
        outb(d.reg(REG_STATUS), STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_DRIVER_OK);
        Ok(Some(d))
    }

    fn reg(&self, off: u16) -> u16 {
        self.io_base + off
    }

    /// Where queue offset `off` is in our address space. No field of the
    /// queue straddles a page (16-byte descriptors, 2-byte indices and
    /// avail entries, 8-byte used entries, all aligned), so a field is
    /// reached through the page holding its first byte.
    fn at(&self, off: usize) -> *mut u8 {
        let area = addr_of_mut!(QUEUE_AREA) as *mut u8;
        // SAFETY: `off` lies in the queue (below `pages * PAGE`, checked
        // by the callers' construction), whose pages are in QUEUE_AREA.
        unsafe { area.add(self.qpages[off / PAGE] * PAGE + off % PAGE) }
    }

    fn write16(&self, off: usize, v: u16) {
        // SAFETY: `off` is a 2-byte-aligned field of the queue (see `at`);
        // only this driver (one instance, one vCPU) touches the area.
        unsafe { write_volatile(self.at(off) as *mut u16, v) }
    }

    fn read16(&self, off: usize) -> u16 {
        // SAFETY: as `write16`; the device writes the used ring, hence volatile.
        unsafe { read_volatile(self.at(off) as *const u16) }
    }

    fn set_desc(&self, i: usize, d: Desc) {
        // SAFETY: i < queue_size (`transfer` checks), so the descriptor is
        // in the table, 16-byte aligned, within one page (see `at`).
        unsafe { write_volatile(self.at(self.desc + 16 * i) as *mut Desc, d) }
    }

    /// One request: a header, `pages` data pages of DATA (`len` bytes), a
    /// status byte; waits for the device.
    fn transfer(&mut self, kind: u32, sector: u64, len: usize) -> Result<(), Error> {
        let pages = len.div_ceil(PAGE);
        if pages + 2 > usize::from(self.queue_size) {
            return Err(Error::Bad);
        }
        let hdr = addr_of_mut!(HEADER) as *mut u8;
        // SAFETY: HEADER is ours alone; the device reads it only while we wait.
        unsafe {
            write_volatile(hdr as *mut u32, kind);
            write_volatile(hdr.add(4) as *mut u32, 0);
            write_volatile(hdr.add(8) as *mut u64, sector);
            write_volatile(hdr.add(64), 0xff);
        }
        let hdr_va = hdr as u64;
        self.set_desc(0, Desc { addr: maddr_of(hdr_va), len: 16, flags: VRING_DESC_F_NEXT, next: 1 });
        let data_va = addr_of!(DATA) as u64;
        let mut left = len;
        for p in 0..pages {
            let n = left.min(PAGE);
            left -= n;
            let flags = VRING_DESC_F_NEXT | if kind == VIRTIO_BLK_T_IN { VRING_DESC_F_WRITE } else { 0 };
            self.set_desc(1 + p, Desc { addr: maddr_of(data_va + (p * PAGE) as u64), len: n as u32, flags, next: (2 + p) as u16 });
        }
        self.set_desc(1 + pages, Desc { addr: maddr_of(hdr_va + 64), len: 1, flags: VRING_DESC_F_WRITE, next: 0 });

        let n = usize::from(self.queue_size);
        self.write16(self.avail + 4 + 2 * (usize::from(self.avail_idx) % n), 0);
        fence(Ordering::SeqCst); // descriptors before the index
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.write16(self.avail + 2, self.avail_idx);
        fence(Ordering::SeqCst); // the index before the notify
        outw(self.reg(REG_QUEUE_NOTIFY), 0);

        // TSC cycles (not time: Dom0 may not have mapped shared_info yet)
        // before giving up on the device: tens of seconds at any clock.
        let start = pv_rt::tsc::rdtsc_fenced();
        while self.read16(self.used + 2) == self.used_idx {
            if pv_rt::tsc::rdtsc_fenced().wrapping_sub(start) > 1 << 37 {
                return Err(Error::Timeout);
            }
            core::hint::spin_loop();
        }
        fence(Ordering::SeqCst);
        self.used_idx = self.used_idx.wrapping_add(1);
        let _ = inb(self.reg(REG_ISR)); // acknowledges (and clears) the interrupt line
        self.requests += 1;
        // SAFETY: as above; the device has written the status.
        let status = unsafe { read_volatile(hdr.add(64)) };
        if status == VIRTIO_BLK_S_OK { Ok(()) } else { Err(Error::Device(status)) }
    }

    fn check(&self, sector: u64, len: usize) -> Result<(), Error> {
        let ok = len.is_multiple_of(512) && sector.checked_add(len as u64 / 512).is_some_and(|e| e <= self.sectors);
        if ok { Ok(()) } else { Err(Error::Bad) }
    }

    pub fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), Error> {
        self.check(sector, buf.len())?;
        let mut s = sector;
        for chunk in buf.chunks_mut(MAX_PAGES * PAGE) {
            self.transfer(VIRTIO_BLK_T_IN, s, chunk.len())?;
            // SAFETY: DATA is ours alone and the device is done with it.
            let data = unsafe { &*(addr_of!(DATA) as *const [u8; MAX_PAGES * PAGE]) };
            chunk.copy_from_slice(&data[..chunk.len()]);
            s += chunk.len() as u64 / 512;
        }
        Ok(())
    }

    pub fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), Error> {
        self.check(sector, buf.len())?;
        if self.readonly {
            return Err(Error::Bad);
        }
        let mut s = sector;
        for chunk in buf.chunks(MAX_PAGES * PAGE) {
            // SAFETY: as in `read`; the device reads DATA only in `transfer`.
            let data = unsafe { &mut *(addr_of_mut!(DATA) as *mut [u8; MAX_PAGES * PAGE]) };
            data[..chunk.len()].copy_from_slice(chunk);
            self.transfer(VIRTIO_BLK_T_OUT, s, chunk.len())?;
            s += chunk.len() as u64 / 512;
        }
        Ok(())
    }

    /// Makes every completed write durable (the host's `fdatasync`). A
    /// device without `VIRTIO_BLK_F_FLUSH` writes through: nothing to do.
    pub fn flush(&mut self) -> Result<(), Error> {
        if !self.flush {
            return Ok(());
        }
        self.transfer(VIRTIO_BLK_T_FLUSH, 0, 0)
    }
}
