//! A PV block frontend (Linux's `drivers/block/xen-blkfront.c`, small): the
//! XenbusState handshake with the back end named in
//! `device/vbd/<vdev>/backend`, a one-page `io/blkif.h` ring granted to it,
//! an event channel, and one request at a time through one granted data
//! page (up to 8 sectors a request).

use core::ptr;
use core::sync::atomic::{fence, Ordering};

use heapless::String;
use hypercall_abi::blkif::*;
use hypercall_abi::mm::DOMID_SELF;
use hypercall_abi::xs_wire::xenbus_state::*;
use hypercall_abi::{DomId, EvtchnPort};

use crate::events;
use crate::gnttab::GrantTable;
use crate::mm::Mm;
use crate::xenbus::{Xenbus, XsError};

#[derive(Debug)]
pub enum BlkError {
    Store(XsError),
    /// The back end is not there, or not in a state we can use.
    Backend(&'static str),
    NoMemory,
    Grant,
    Timeout,
}

impl From<XsError> for BlkError {
    fn from(e: XsError) -> Self {
        BlkError::Store(e)
    }
}

/// Where the frontend puts its pages and which grant references it uses.
pub struct Layout {
    pub ring_va: u64,
    pub data_va: u64,
    pub ring_gref: u32,
    pub data_gref: u32,
    /// Offer `feature-persistent`: the data page's grant is never revoked,
    /// so the back end may keep it mapped.
    pub persistent: bool,
}

pub struct Blkfront {
    ring: *mut u8,
    data: *mut u8,
    pub port: EvtchnPort,
    pub backend_id: DomId,
    pub data_gref: u32,
    pub sectors: u64,
    pub info: u32,
    /// Both ends offered persistent grants.
    pub persistent: bool,
    req_prod_pvt: u32,
    rsp_cons: u32,
    next_id: u64,
}

fn num(xs: &mut Xenbus, path: &str) -> Result<u64, BlkError> {
    let v = xs.read(0, path)?;
    core::str::from_utf8(&v).ok().and_then(|s| s.trim().parse().ok()).ok_or(BlkError::Backend("a number expected in the store"))
}

fn path(a: &str, b: &str) -> String<128> {
    let mut s = String::new();
    let _ = s.push_str(a);
    let _ = s.push('/');
    let _ = s.push_str(b);
    s
}

/// Waits until `path`'s number satisfies `ok` (a watch wakes us).
fn wait_state(xs: &mut Xenbus, p: &str, deadline: u64, ok: impl Fn(u64) -> bool) -> Result<u64, BlkError> {
    xs.watch(p, "blkfront-state")?;
    let r = loop {
        if let Ok(s) = num(xs, p) {
            if ok(s) {
                break Ok(s);
            }
        }
        if xs.wait_watch(deadline).is_none() && crate::time::system_time() >= deadline {
            break Err(BlkError::Timeout);
        }
    };
    let _ = xs.unwatch(p, "blkfront-state");
    r
}

impl Blkfront {
    /// Connects to disk `vdev` (51712 for xvda), waiting until `deadline`
    /// for the toolstack to attach it if it is not there yet.
    pub fn connect(mm: &mut Mm, xs: &mut Xenbus, gt: &GrantTable, vdev: u32, l: &Layout, deadline: u64) -> Result<Blkfront, BlkError> {
        let mut dir: String<64> = String::new();
        let _ = core::fmt::write(&mut dir, format_args!("device/vbd/{}", vdev));
        // A disk attached later (`xl block-attach`): wait for its nodes.
        if xs.read(0, &path(&dir, "backend")).is_err() {
            xs.watch("device", "blkfront-device")?;
            while xs.read(0, &path(&dir, "backend")).is_err() {
                if xs.wait_watch(deadline).is_none() && crate::time::system_time() >= deadline {
                    let _ = xs.unwatch("device", "blkfront-device");
                    return Err(BlkError::Backend("no such disk"));
                }
            }
            let _ = xs.unwatch("device", "blkfront-device");
        }
        let be = xs.read(0, &path(&dir, "backend"))?;
        let backend: String<128> = core::str::from_utf8(&be).ok().and_then(|s| String::try_from(s).ok()).ok_or(BlkError::Backend("bad backend path"))?;
        let backend_id = num(xs, &path(&dir, "backend-id"))? as DomId;
        wait_state(xs, &path(&backend, "state"), deadline, |s| s == XenbusStateInitWait as u64 || s == XenbusStateConnected as u64)?;

        // The ring: a zeroed page, SHARED_RING_INIT, granted to the back end.
        let mut page = |va: u64| -> Result<u64, BlkError> {
            let pfn = mm.alloc_frame().ok_or(BlkError::NoMemory)?;
            // SAFETY: the caller gives us `va`; the frame is fresh.
            unsafe { mm.map(va, pfn, true) }.map_err(|_| BlkError::NoMemory)?;
            // SAFETY: just mapped writable, ours alone.
            unsafe { ptr::write_bytes(va as *mut u8, 0, 4096) };
            mm.p2m(pfn).ok_or(BlkError::NoMemory)
        };
        let ring_mfn = page(l.ring_va)?;
        let data_mfn = page(l.data_va)?;
        let h = l.ring_va as *mut SringHeader;
        // SAFETY: the ring page is mapped and ours; the back end does not see
        // it before the grant.
        unsafe {
            ptr::write_volatile(ptr::addr_of_mut!((*h).req_event), 1);
            ptr::write_volatile(ptr::addr_of_mut!((*h).rsp_event), 1);
        }
        gt.grant(l.ring_gref, backend_id, ring_mfn, false).map_err(|_| BlkError::Grant)?;
        gt.grant(l.data_gref, backend_id, data_mfn, false).map_err(|_| BlkError::Grant)?;
        let port = events::alloc_unbound(DOMID_SELF, backend_id).map_err(|_| BlkError::Backend("alloc_unbound failed"))?;
        events::mask(port);

        // talk_to_blkback: one transaction, retried on EAGAIN.
        loop {
            let tx = xs.transaction_start()?;
            let mut n: String<16> = String::new();
            let _ = core::fmt::write(&mut n, format_args!("{}", l.ring_gref));
            xs.write(tx, &path(&dir, "ring-ref"), n.as_bytes())?;
            n.clear();
            let _ = core::fmt::write(&mut n, format_args!("{}", port));
            xs.write(tx, &path(&dir, "event-channel"), n.as_bytes())?;
            xs.write(tx, &path(&dir, "protocol"), b"x86_64-abi")?;
            xs.write(tx, &path(&dir, "feature-persistent"), if l.persistent { b"1" } else { b"0" })?;
            xs.write(tx, &path(&dir, "state"), b"3")?;
            match xs.transaction_end(tx, true) {
                Ok(()) => break,
                Err(XsError::Store(ref e)) if e == "EAGAIN" => continue,
                Err(e) => return Err(e.into()),
            }
        }
        wait_state(xs, &path(&backend, "state"), deadline, |s| s == XenbusStateConnected as u64)?;
        let sectors = num(xs, &path(&backend, "sectors"))?;
        let info = num(xs, &path(&backend, "info")).unwrap_or(0) as u32;
        let persistent = l.persistent && num(xs, &path(&backend, "feature-persistent")).unwrap_or(0) == 1;
        xs.write(0, &path(&dir, "state"), b"4")?;
        Ok(Blkfront {
            ring: l.ring_va as *mut u8,
            data: l.data_va as *mut u8,
            port,
            backend_id,
            data_gref: l.data_gref,
            sectors,
            info,
            persistent,
            req_prod_pvt: 0,
            rsp_cons: 0,
            next_id: 1,
        })
    }

    /// Puts raw request bytes in the next slot (not yet published).
    pub fn queue_raw(&mut self, slot: &[u8; BLKIF_SLOT_SIZE]) {
        let base = slot_offset(self.req_prod_pvt);
        for (i, &b) in slot.iter().enumerate() {
            // SAFETY: the slot lies in our ring page.
            unsafe { ptr::write_volatile(self.ring.add(base + i), b) };
        }
        self.req_prod_pvt = self.req_prod_pvt.wrapping_add(1);
    }

    /// Publishes the queued requests (or, for tests, any producer index)
    /// and notifies the back end.
    pub fn push_raw(&mut self, req_prod: u32) {
        fence(Ordering::Release);
        // SAFETY: the header lies in our ring page.
        unsafe { ptr::write_volatile(ptr::addr_of_mut!((*(self.ring as *mut SringHeader)).req_prod), req_prod) };
        let _ = events::send(self.port);
    }

    pub fn push(&mut self) {
        self.push_raw(self.req_prod_pvt)
    }

    pub fn req_prod_pvt(&self) -> u32 {
        self.req_prod_pvt
    }

    /// The next response, waiting for it until `deadline`.
    pub fn response(&mut self, deadline: u64) -> Option<BlkifResponse> {
        loop {
            // SAFETY: the header lies in our ring page.
            let prod = unsafe { ptr::read_volatile(ptr::addr_of!((*(self.ring as *mut SringHeader)).rsp_prod)) };
            fence(Ordering::Acquire);
            if prod != self.rsp_cons {
                let base = slot_offset(self.rsp_cons);
                // SAFETY: the slot lies in our ring page.
                let r = unsafe { ptr::read_volatile(self.ring.add(base) as *const BlkifResponse) };
                self.rsp_cons = self.rsp_cons.wrapping_add(1);
                // SAFETY: as above.
                unsafe { ptr::write_volatile(ptr::addr_of_mut!((*(self.ring as *mut SringHeader)).rsp_event), self.rsp_cons.wrapping_add(1)) };
                return Some(r);
            }
            if crate::time::system_time() >= deadline {
                return None;
            }
            events::clear_pending(self.port);
            let _ = events::poll(&[self.port], deadline);
        }
    }

    /// One request of `op` for `count` sectors (1..=8) at `sector`, through
    /// the data page; `data` in and out. The response's status.
    pub fn io(&mut self, op: u8, sector: u64, data: &mut [u8], deadline: u64) -> Option<i16> {
        let count = (data.len() / 512).clamp(1, 8);
        if op == BLKIF_OP_WRITE {
            // SAFETY: our data page, mapped; the back end only reads it
            // through a grant copy once we publish the request.
            unsafe { ptr::copy_nonoverlapping(data.as_ptr(), self.data, count * 512) };
        }
        let mut r = BlkifRequest { operation: op, nr_segments: 1, id: self.next_id, sector_number: sector, ..Default::default() };
        r.seg[0] = BlkifRequestSegment { gref: self.data_gref, first_sect: 0, last_sect: count as u8 - 1, _pad: 0 };
        if op == BLKIF_OP_FLUSH_DISKCACHE {
            r.nr_segments = 0;
        }
        self.next_id += 1;
        self.queue_raw(&slot_bytes(&r));
        self.push();
        let rsp = self.response(deadline)?;
        if op == BLKIF_OP_READ && rsp.status == BLKIF_RSP_OKAY {
            // SAFETY: as above; the back end wrote the page before responding.
            unsafe { ptr::copy_nonoverlapping(self.data, data.as_mut_ptr(), count * 512) };
        }
        Some(rsp.status)
    }
}

/// A request's bytes as they go into a slot.
pub fn slot_bytes<T: Copy>(req: &T) -> [u8; BLKIF_SLOT_SIZE] {
    let mut slot = [0u8; BLKIF_SLOT_SIZE];
    let n = core::mem::size_of::<T>().min(BLKIF_SLOT_SIZE);
    // SAFETY: T is a plain-integer blkif structure; at most its size is read.
    unsafe { ptr::copy_nonoverlapping(req as *const T as *const u8, slot.as_mut_ptr(), n) };
    slot
}
