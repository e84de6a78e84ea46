//! blkback's machine side: the images, each guest's virtual block devices
//! (vbd), the XenbusState handshake in XenStore as Linux's `xen-blkfront`
//! expects it, the ring page mapped from the frontend's grant, its event
//! channel, and the data moved with `GNTTABOP_copy` through a bounce page of
//! Dom0's.
//!
//! Handshake (Linux's `xen-blkback/xenbus.c` and `xen-blkfront.c`): the
//! toolstack writes the backend and frontend directories (state 1,
//! Initialising); the back end adds its `feature-*` keys and goes to 2
//! (InitWait); the frontend writes `ring-ref`, `event-channel`, `protocol`
//! and goes to 3 (Initialised); the back end maps the ring, binds the
//! channel, writes `sectors`, `info`, `sector-size` and goes to 4
//! (Connected); the frontend reads them and goes to 4. A frontend going to
//! 5 or 6 (Closing, Closed) is disconnected and the back end follows.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::ptr::addr_of_mut;

use hypercall_abi::blkif::*;
use hypercall_abi::grant::{GnttabCopy, GnttabCopyPtr, GNTCOPY_dest_gref, GNTCOPY_source_gref};
use hypercall_abi::mm::DOMID_SELF;
use hypercall_abi::xs_wire::xenbus_state::*;
use hypercall_abi::{DomId, EvtchnPort};
use pv_rt::println;

use alloc::boxed::Box;

use super::disk::{Disk, MemDisk};
use super::request::{self, Grants};
use super::ring::BackRing;
use super::spec::DiskSpec;
use crate::hv;
use crate::xenstore::daemon::Xenstored;
use crate::xenstore::perms::{Access, Perm};

/// Size of an image made on first use.
pub const IMAGE_SIZE: u64 = 8 << 20;
/// Pages a device may keep mapped as persistent grants.
pub const PGRANTS_PER_VBD: usize = 16;
/// Requests served per device each time round (a flood waits its turn).
const BATCH: usize = BLKIF_RING_SIZE;


pub struct Image {
    pub name: String,
    /// In memory, or a file on Dom0's disk.
    disk: Box<dyn Disk>,
    /// The format the image was opened as (memory images are raw).
    pub format: crate::disk::fs::Format,
    /// Domains using it, and whether read-write.
    pub users: Vec<(DomId, bool)>,
}

struct Connected {
    ring: BackRing,
    port: EvtchnPort,
    handle: u32,
    /// Both ends offered `feature-persistent`: the frontend's data pages
    /// stay mapped in Dom0 once seen.
    persistent: Option<Persistent>,
}

/// Persistent grants of one device: up to [`PGRANTS_PER_VBD`] pages
/// mapped at `va_base + i * 4096`, kept until the device disconnects; past
/// that, grant copies as without the feature.
struct Persistent {
    va_base: u64,
    maps: Vec<(u32, u64, u32)>,
}

struct Vbd {
    domid: DomId,
    devid: u32,
    image: usize,
    readonly: bool,
    slot: usize,
    conn: Option<Connected>,
}

impl Vbd {
    fn backend(&self) -> String {
        format!("/local/domain/0/backend/vbd/{}/{}", self.domid, self.devid)
    }
    fn frontend(&self) -> String {
        format!("/local/domain/{}/device/vbd/{}", self.domid, self.devid)
    }
}

/// Dom0's page that data passes through (granted pages are copied to and
/// from it, never mapped).
#[repr(align(4096))]
struct Bounce([u8; 4096]);
static mut BOUNCE: Bounce = Bounce([0; 4096]);

struct Copier<'a> {
    domid: DomId,
    bounce_mfn: u64,
    persistent: Option<&'a mut Persistent>,
}

impl Copier<'_> {
    /// The page of `gref`, mapped persistently (mapped now if there is
    /// room and the grant allows a writable mapping).
    fn mapped(&mut self, gref: u32) -> Option<*mut u8> {
        let p = self.persistent.as_mut()?;
        if let Some(&(_, va, _)) = p.maps.iter().find(|m| m.0 == gref) {
            return Some(va as *mut u8);
        }
        if p.maps.len() >= PGRANTS_PER_VBD {
            return None;
        }
        let va = p.va_base + p.maps.len() as u64 * 4096;
        // SAFETY: the page at `va` is this device's and unused.
        let handle = unsafe { pv_rt::gnttab::map(self.domid, gref, va, false) }.ok()?;
        p.maps.push((gref, va, handle));
        Some(va as *mut u8)
    }
}

impl Copier<'_> {
    fn copy(&self, gref: u32, offset: usize, len: usize, to_guest: bool) -> Result<(), ()> {
        if offset + len > 4096 {
            return Err(());
        }
        let guest = GnttabCopyPtr { u: gref as u64, domid: self.domid, offset: offset as u16, _pad: 0 };
        let ours = GnttabCopyPtr { u: self.bounce_mfn, domid: DOMID_SELF, offset: 0, _pad: 0 };
        let (source, dest, flags) = if to_guest { (ours, guest, GNTCOPY_dest_gref) } else { (guest, ours, GNTCOPY_source_gref) };
        let mut op = GnttabCopy { source, dest, len: len as u16, flags, status: 0, _pad: 0 };
        // SAFETY: the destination is the guest's granted page or our bounce
        // page, which Rust code only reads through `bounce()` after the copy.
        match unsafe { pv_rt::gnttab::copy(core::slice::from_mut(&mut op)) } {
            Ok(()) if op.status == 0 => Ok(()),
            _ => Err(()),
        }
    }
}

fn bounce() -> &'static mut [u8; 4096] {
    // SAFETY: Dom0 runs one vCPU's worth of toolstack code at a time and only
    // the copier uses BOUNCE, one request at a time.
    unsafe { &mut (*addr_of_mut!(BOUNCE)).0 }
}

impl Grants for Copier<'_> {
    fn copy_from(&mut self, gref: u32, offset: usize, buf: &mut [u8]) -> Result<(), ()> {
        if offset + buf.len() > 4096 {
            return Err(());
        }
        if let Some(page) = self.mapped(gref) {
            for (i, b) in buf.iter_mut().enumerate() {
                // SAFETY: the granted page stays mapped while the device is
                // connected; the frontend may write it, so volatile.
                *b = unsafe { core::ptr::read_volatile(page.add(offset + i)) };
            }
            return Ok(());
        }
        self.copy(gref, offset, buf.len(), false)?;
        buf.copy_from_slice(&bounce()[..buf.len()]);
        Ok(())
    }
    fn copy_to(&mut self, gref: u32, offset: usize, data: &[u8]) -> Result<(), ()> {
        if offset + data.len() > 4096 {
            return Err(());
        }
        if let Some(page) = self.mapped(gref) {
            for (i, &b) in data.iter().enumerate() {
                // SAFETY: as in `copy_from`.
                unsafe { core::ptr::write_volatile(page.add(offset + i), b) };
            }
            return Ok(());
        }
        bounce()[..data.len()].copy_from_slice(data);
        self.copy(gref, offset, data.len(), true)
    }
}

pub struct Blkback {
    pub images: Vec<Image>,
    vbds: Vec<Vbd>,
    /// Ring pages are mapped at `va_base + slot * 4096`.
    va_base: u64,
    /// Persistent grants at `pgrant_va + (slot * PGRANTS_PER_VBD + i) * 4096`.
    pgrant_va: u64,
    slots: usize,
}

impl Blkback {
    /// Ring pages at `va_base`, persistent grants at `pgrant_va`
    /// (`slots * PGRANTS_PER_VBD` pages), for up to `slots` devices; the L1
    /// tables there must exist.
    pub const fn new(va_base: u64, pgrant_va: u64, slots: usize) -> Blkback {
        Blkback { images: Vec::new(), vbds: Vec::new(), va_base, pgrant_va, slots }
    }

    pub fn ports(&self) -> Vec<EvtchnPort> {
        self.vbds.iter().filter_map(|v| v.conn.as_ref().map(|c| c.port)).collect()
    }

    /// The disks of `domid`: (vdev number, image, read-only, connected).
    pub fn list(&self, domid: DomId) -> Vec<(u32, &str, bool, bool)> {
        self.vbds
            .iter()
            .filter(|v| v.domid == domid)
            .map(|v| (v.devid, self.images[v.image].name.as_str(), v.readonly, v.conn.is_some()))
            .collect()
    }

    /// Attaches `spec`'s image to `domid` (made on first use): the
    /// backend's and frontend's nodes, the back end in InitWait. An image
    /// is read-write for one domain at most, and not shared read-only with
    /// others while it is (Xen's rule).
    pub fn attach(&mut self, xs: &mut Xenstored, domid: DomId, spec: &DiskSpec) -> Result<(), String> {
        if self.vbds.iter().any(|v| v.domid == domid && v.devid == spec.devid) {
            return Err(format!("{} is already attached to domain {}", spec.vdev, domid));
        }
        let used: Vec<usize> = self.vbds.iter().map(|v| v.slot).collect();
        let slot = (0..self.slots).find(|s| !used.contains(s)).ok_or_else(|| String::from("too many virtual disks"))?;
        let image = match self.images.iter().position(|i| i.name == spec.target.as_str()) {
            Some(i) => i,
            None => {
                let disk = open_image(spec)?;
                self.images.push(Image { name: String::from(spec.target.as_str()), disk, format: spec.format, users: Vec::new() });
                self.images.len() - 1
            }
        };
        let img = &self.images[image];
        if img.format != spec.format {
            return Err(format!("image {} is {}, not {}", img.name, img.format.name(), spec.format.name()));
        }
        if let Some((d, _)) = img.users.iter().find(|(d, rw)| *d != domid && (*rw || !spec.readonly)) {
            return Err(format!("image {} is in use by domain {}{}", img.name, d, if spec.readonly { " read-write" } else { "" }));
        }
        let vbd = Vbd { domid, devid: spec.devid, image, readonly: spec.readonly, slot, conn: None };
        let (b, f) = (vbd.backend(), vbd.frontend());
        let w = |xs: &mut Xenstored, p: &str, v: &str| xs.write(0, p, v.as_bytes());
        let r = (|| {
            w(xs, &b, "")?;
            xs.set_perms(0, &b, &[Perm::new(0, Access::None), Perm::new(domid, Access::Read)])?;
            for (k, v) in [
                ("frontend", f.as_str()),
                ("frontend-id", &format!("{}", domid)),
                ("online", "1"),
                ("removable", "0"),
                ("bootable", "1"),
                ("dev", spec.vdev.as_str()),
                ("type", "phy"),
                ("mode", if spec.readonly { "r" } else { "w" }),
                ("params", spec.target.as_str()),
                ("device-type", "disk"),
                ("state", &format!("{}", XenbusStateInitialising)),
            ] {
                w(xs, &format!("{}/{}", b, k), v)?;
            }
            w(xs, &f, "")?;
            xs.set_perms(0, &f, &[Perm::new(domid, Access::None), Perm::new(0, Access::Read)])?;
            for (k, v) in [
                ("backend", b.as_str()),
                ("backend-id", "0"),
                ("virtual-device", &format!("{}", spec.devid)),
                ("device-type", "disk"),
                ("state", &format!("{}", XenbusStateInitialising)),
            ] {
                w(xs, &format!("{}/{}", f, k), v)?;
            }
            // The back end's probe: what it offers, then InitWait.
            for (k, v) in [
                ("feature-flush-cache", "1"),
                ("feature-barrier", "1"),
                ("feature-discard", "1"),
                ("discard-granularity", "4096"),
                ("discard-alignment", "0"),
                ("discard-secure", "0"),
                ("feature-max-indirect-segments", &format!("{}", request::MAX_INDIRECT_SEGMENTS)),
                ("feature-persistent", "1"),
                ("state", &format!("{}", XenbusStateInitWait)),
            ] {
                w(xs, &format!("{}/{}", b, k), v)?;
            }
            Ok::<(), crate::xenstore::Error>(())
        })();
        if let Err(e) = r {
            let _ = xs.rm(0, &b);
            let _ = xs.rm(0, &f);
            return Err(format!("writing the device's xenstore nodes failed: {}", e));
        }
        self.images[image].users.push((domid, !spec.readonly));
        self.vbds.push(vbd);
        Ok(())
    }

    /// Detaches `domid`'s disk `devid` (every disk with `None`).
    pub fn detach(&mut self, xs: &mut Xenstored, domid: DomId, devid: Option<u32>) -> usize {
        let mut n = 0;
        let mut i = 0;
        while i < self.vbds.len() {
            let v = &self.vbds[i];
            if v.domid == domid && devid.is_none_or(|d| d == v.devid) {
                self.disconnect(i);
                let v = self.vbds.swap_remove(i);
                let _ = xs.rm(0, &v.backend());
                let _ = xs.rm(0, &v.frontend());
                if let Some(img) = self.images.get_mut(v.image) {
                    img.users.retain(|(d, _)| *d != domid);
                }
                n += 1;
            } else {
                i += 1;
            }
        }
        n
    }

    fn disconnect(&mut self, i: usize) {
        let va = self.va_base + self.vbds[i].slot as u64 * 4096;
        if let Some(c) = self.vbds[i].conn.take() {
            let _ = hv::evtchn_close(c.port);
            for (_, pva, h) in c.persistent.map(|p| p.maps).unwrap_or_default() {
                // SAFETY: the device is gone; nothing refers to its pages.
                let _ = unsafe { pv_rt::gnttab::unmap(pva, h) };
            }
            // SAFETY: the ring is gone; nothing refers to the page.
            let _ = unsafe { pv_rt::gnttab::unmap(va, c.handle) };
        }
    }

    /// Follows the frontends' states (called each time round: a frontend's
    /// store write wakes Dom0).
    pub fn poll_states(&mut self, xs: &mut Xenstored) {
        for i in 0..self.vbds.len() {
            let f = self.vbds[i].frontend();
            let b = self.vbds[i].backend();
            let state = read_u64(xs, &format!("{}/state", f)).unwrap_or(0) as u32;
            let connected = self.vbds[i].conn.is_some();
            match state {
                XenbusStateInitialised | XenbusStateConnected if !connected => {
                    let bstate = read_u64(xs, &format!("{}/state", b)).unwrap_or(0) as u32;
                    if bstate == XenbusStateConnected {
                        continue;
                    }
                    match self.connect(xs, i) {
                        Ok(()) => {}
                        Err(why) => {
                            println!("blkback: domain {} vbd {}: {}", self.vbds[i].domid, self.vbds[i].devid, why);
                            let _ = xs.write(0, &format!("{}/state", b), format!("{}", XenbusStateClosing).as_bytes());
                        }
                    }
                }
                XenbusStateClosing | XenbusStateClosed if connected || read_u64(xs, &format!("{}/state", b)) != Some(state as u64) => {
                    self.disconnect(i);
                    let _ = xs.write(0, &format!("{}/state", b), format!("{}", state).as_bytes());
                }
                _ => {}
            }
        }
    }

    fn connect(&mut self, xs: &mut Xenstored, i: usize) -> Result<(), String> {
        let (domid, f, b) = (self.vbds[i].domid, self.vbds[i].frontend(), self.vbds[i].backend());
        let gref = read_u64(xs, &format!("{}/ring-ref", f)).ok_or("no ring-ref")?;
        let port = read_u64(xs, &format!("{}/event-channel", f)).ok_or("no event-channel")?;
        if let Ok(p) = xs.read(0, &format!("{}/protocol", f)) {
            if p != b"x86_64-abi" {
                return Err(String::from("unsupported protocol (x86_64-abi only)"));
            }
        }
        if gref > u32::MAX as u64 || port > u32::MAX as u64 {
            return Err(String::from("bad ring-ref or event-channel"));
        }
        let va = self.va_base + self.vbds[i].slot as u64 * 4096;
        // SAFETY: the slot's page is ours and free.
        let handle = unsafe { pv_rt::gnttab::map(domid, gref as u32, va, false) }.map_err(|e| format!("mapping ring-ref {} failed: {:?}", gref, e))?;
        let local = match hv::bind_interdomain(domid, port as u32) {
            Ok(p) => p,
            Err(e) => {
                // SAFETY: nothing uses the page yet.
                let _ = unsafe { pv_rt::gnttab::unmap(va, handle) };
                return Err(format!("binding event-channel {} failed: {}", port, e));
            }
        };
        // SAFETY: the page stays mapped until `disconnect`.
        let ring = unsafe { BackRing::new(va as *mut u8) };
        let persistent = (read_u64(xs, &format!("{}/feature-persistent", f)) == Some(1)).then(|| Persistent {
            va_base: self.pgrant_va + (self.vbds[i].slot * PGRANTS_PER_VBD) as u64 * 4096,
            maps: Vec::new(),
        });
        let v = &self.vbds[i];
        let sectors = self.images[v.image].disk_sectors();
        println!(
            "blkback: domain {} vbd {} connected: image {}, {} sectors, {}{}",
            domid,
            v.devid,
            self.images[v.image].name,
            sectors,
            if v.readonly { "read-only" } else { "read-write" },
            if persistent.is_some() { ", persistent grants" } else { "" }
        );
        self.vbds[i].conn = Some(Connected { ring, port: local, handle, persistent });
        let v = &self.vbds[i];
        for (k, val) in [
            ("sectors", format!("{}", sectors)),
            ("info", format!("{}", if v.readonly { VDISK_READONLY } else { 0 })),
            ("sector-size", String::from("512")),
            ("physical-sector-size", String::from("512")),
            ("state", format!("{}", XenbusStateConnected)),
        ] {
            let _ = xs.write(0, &format!("{}/{}", b, k), val.as_bytes());
        }
        Ok(())
    }

    /// Serves the rings: at most a ring's worth of requests per device.
    pub fn serve(&mut self) {
        let bounce_mfn = bounce_mfn();
        for v in self.vbds.iter_mut() {
            let Some(c) = v.conn.as_mut() else { continue };
            let was_broken = c.ring.broken;
            let mut served = 0;
            let mut copier = Copier { domid: v.domid, bounce_mfn, persistent: c.persistent.as_mut() };
            while served < BATCH {
                let Some(slot) = c.ring.next_request() else { break };
                let img = &mut self.images[v.image];
                let rsp = request::handle(&slot, &mut *img.disk, &mut copier, v.readonly);
                c.ring.respond(&rsp);
                served += 1;
            }
            if !was_broken && c.ring.broken {
                println!("blkback: domain {} vbd {}: frontend's ring indices are bogus; halting it", v.domid, v.devid);
            }
            if served > 0 && c.ring.push() {
                let _ = hv::evtchn_send(c.port);
            }
        }
    }
}

impl Image {
    fn disk_sectors(&self) -> u64 {
        self.disk.sectors()
    }
}

/// An image's disk: the file on Dom0's disk when it has one (made on first
/// use, as memory images are), else an image in memory.
fn open_image(spec: &DiskSpec) -> Result<Box<dyn Disk>, String> {
    use crate::disk::{fs, store};
    let name = spec.target.as_str();
    if !store::present() {
        if spec.format != fs::Format::Raw {
            return Err(String::from("qcow2 images need Dom0's disk (scripts/run.sh --disk PATH)"));
        }
        return Ok(Box::new(MemDisk::new(IMAGE_SIZE)));
    }
    if !fs::valid_name(name) {
        return Err(String::from("an image name is 1 to 8 letters, digits, '-' or '_'"));
    }
    if store::list()?.iter().all(|e| !e.name.eq_ignore_ascii_case(name)) {
        store::create(name, spec.format, IMAGE_SIZE)?;
        println!("dom0: image {} made on first use: {} MiB, {}", name, IMAGE_SIZE >> 20, spec.format.name());
    }
    // Opened writable even for `ro`: blkback refuses the writes, and the
    // next guest may have it read-write.
    store::open(name, spec.format, false)
}

impl Blkback {
    /// The size of image `name` in sectors, if it is open here.
    pub fn image_sectors(&self, name: &str) -> Option<u64> {
        self.images.iter().find(|i| !i.name.is_empty() && i.name.eq_ignore_ascii_case(name)).map(|i| i.disk.sectors())
    }

    /// Forgets image `name` if no domain uses it (its file closes), so
    /// that it can be removed; an image in use says by whom.
    pub fn release_image(&mut self, name: &str) -> Result<(), String> {
        for img in self.images.iter_mut().filter(|i| i.name.eq_ignore_ascii_case(name)) {
            if let Some((d, _)) = img.users.first() {
                return Err(format!("image {} is in use by domain {}", img.name, d));
            }
            // Indices of images stay valid: the entry stays, nameless.
            img.name.clear();
            img.disk = Box::new(MemDisk::new(0));
        }
        Ok(())
    }
}

fn read_u64(xs: &mut Xenstored, p: &str) -> Option<u64> {
    let v = xs.read(0, p).ok()?;
    core::str::from_utf8(&v).ok()?.trim().parse().ok()
}

/// The machine frame of the bounce page, from our P2M.
fn bounce_mfn() -> u64 {
    let si = pv_rt::start_info();
    let pfn = (addr_of_mut!(BOUNCE) as u64 - pv_rt::mm::VIRT_BASE) / 4096;
    // SAFETY: the P2M list (`mfn_list`) maps all our pages for good, and the
    // bounce page lies in our image.
    unsafe { core::ptr::read_volatile((si.mfn_list as *const u64).add(pfn as usize)) }
}
