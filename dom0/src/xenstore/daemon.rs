//! The store daemon's machine side: each introduced domain's store page
//! mapped in Dom0 and its event channel bound, requests served from the
//! rings, watch events delivered. Dom0's own requests (the toolstack's, the
//! `xenstore-*` commands) come in through [`Xenstored::local`], as xl's
//! come to xenstored through its socket.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use hypercall_abi::xs_wire::*;
use hypercall_abi::{DomId, EvtchnPort};
use pv_rt::println;

use super::perms::{self, Perm};
use super::request::{self, strings};
use super::ring::Conn;
use super::store::{Event, Store};
use super::Error;
use crate::hv;

/// Dom0's own watch events kept for the toolstack, at most.
const DOM0_EVENTS: usize = 256;

struct Ring {
    conn: Conn,
    slot: usize,
    port: EvtchnPort,
}

pub struct Xenstored {
    pub store: Store,
    rings: BTreeMap<DomId, Ring>,
    /// Where ring pages are mapped: `va_base + slot * 4096`.
    va_base: u64,
    slots: usize,
    dom0_events: Vec<Event>,
}

impl Xenstored {
    /// The daemon maps store pages at `va_base`, one page for each of up to
    /// `slots` domains (the L1 table there must exist). [`Xenstored::start`]
    /// makes the store's first nodes.
    pub const fn new(va_base: u64, slots: usize) -> Xenstored {
        Xenstored { store: Store::empty(), rings: BTreeMap::new(), va_base, slots, dom0_events: Vec::new() }
    }

    pub fn start(&mut self) {
        self.store.add_roots();
    }

    /// The local ports of the rings, to sleep on.
    pub fn ports(&self) -> Vec<EvtchnPort> {
        self.rings.values().map(|r| r.port).collect()
    }

    /// Serves every ring: requests in, replies and events out.
    pub fn serve(&mut self) {
        let ids: Vec<DomId> = self.rings.keys().copied().collect();
        for d in ids {
            let Some(r) = self.rings.get_mut(&d) else { continue };
            let was_broken = r.conn.broken.is_some();
            let (msgs, consumed) = r.conn.read();
            if let (false, Some(b)) = (was_broken, r.conn.broken) {
                println!("xenstored: domain {}: {}; ignoring its ring from now on", d, b.what());
            }
            for (hdr, payload) in msgs {
                let (ty, reply) = request::handle(&mut self.store, d, &hdr, &payload);
                if let Some(r) = self.rings.get_mut(&d) {
                    r.conn.send(XsdSockmsg { r#type: ty, req_id: hdr.req_id, tx_id: hdr.tx_id, len: reply.len() as u32 }, &reply, false);
                }
            }
            if consumed {
                if let Some(r) = self.rings.get(&d) {
                    let _ = hv::evtchn_send(r.port);
                }
            }
        }
        self.deliver();
    }

    /// Watch events to their connections; every ring flushed.
    fn deliver(&mut self) {
        for e in self.store.take_events() {
            if e.conn == 0 {
                if self.dom0_events.len() >= DOM0_EVENTS {
                    self.dom0_events.remove(0);
                }
                self.dom0_events.push(e);
            } else if let Some(r) = self.rings.get_mut(&e.conn) {
                let pl = request::watch_event(&e.path, &e.token);
                r.conn.send(XsdSockmsg { r#type: XS_WATCH_EVENT, req_id: 0, tx_id: 0, len: pl.len() as u32 }, &pl, true);
            }
        }
        for r in self.rings.values_mut() {
            if r.conn.flush() {
                let _ = hv::evtchn_send(r.port);
            }
        }
    }

    /// Dom0's watch events since the last call.
    pub fn take_dom0_events(&mut self) -> Vec<Event> {
        core::mem::take(&mut self.dom0_events)
    }

    /// One request from Dom0; the reply's payload.
    pub fn local(&mut self, ty: u32, tx: u32, payload: &[u8]) -> Result<Vec<u8>, Error> {
        let hdr = XsdSockmsg { r#type: ty, req_id: 0, tx_id: tx, len: payload.len() as u32 };
        let (rty, reply) = request::handle(&mut self.store, 0, &hdr, payload);
        self.deliver();
        if rty == XS_ERROR {
            return Err(strings(&reply).first().and_then(|s| Error::from_name(s)).unwrap_or(Error::EIO));
        }
        Ok(reply)
    }

    // ---- the toolstack's calls (libxenstore's, for Dom0) ---------------------

    fn z(parts: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for p in parts {
            v.extend_from_slice(p);
            v.push(0);
        }
        v
    }

    pub fn read(&mut self, tx: u32, path: &str) -> Result<Vec<u8>, Error> {
        self.local(XS_READ, tx, &Self::z(&[path.as_bytes()]))
    }

    pub fn write(&mut self, tx: u32, path: &str, value: &[u8]) -> Result<(), Error> {
        let mut pl = Self::z(&[path.as_bytes()]);
        pl.extend_from_slice(value);
        self.local(XS_WRITE, tx, &pl).map(drop)
    }

    pub fn mkdir(&mut self, tx: u32, path: &str) -> Result<(), Error> {
        self.local(XS_MKDIR, tx, &Self::z(&[path.as_bytes()])).map(drop)
    }

    pub fn rm(&mut self, tx: u32, path: &str) -> Result<(), Error> {
        self.local(XS_RM, tx, &Self::z(&[path.as_bytes()])).map(drop)
    }

    pub fn directory(&mut self, tx: u32, path: &str) -> Result<Vec<String>, Error> {
        self.local(XS_DIRECTORY, tx, &Self::z(&[path.as_bytes()])).map(|r| strings(&r))
    }

    pub fn set_perms(&mut self, tx: u32, path: &str, perms: &[Perm]) -> Result<(), Error> {
        let mut pl = Self::z(&[path.as_bytes()]);
        pl.extend_from_slice(&perms::to_wire(perms));
        self.local(XS_SET_PERMS, tx, &pl).map(drop)
    }

    pub fn get_perms(&mut self, tx: u32, path: &str) -> Result<Vec<String>, Error> {
        self.local(XS_GET_PERMS, tx, &Self::z(&[path.as_bytes()])).map(|r| strings(&r))
    }

    pub fn watch(&mut self, path: &str, token: &str) -> Result<(), Error> {
        self.local(XS_WATCH, 0, &Self::z(&[path.as_bytes(), token.as_bytes()])).map(drop)
    }

    pub fn unwatch(&mut self, path: &str, token: &str) -> Result<(), Error> {
        self.local(XS_UNWATCH, 0, &Self::z(&[path.as_bytes(), token.as_bytes()])).map(drop)
    }

    pub fn transaction_start(&mut self) -> Result<u32, Error> {
        let r = self.local(XS_TRANSACTION_START, 0, b"\0")?;
        strings(&r).first().and_then(|s| s.parse().ok()).ok_or(Error::EIO)
    }

    pub fn transaction_end(&mut self, tx: u32, commit: bool) -> Result<(), Error> {
        self.local(XS_TRANSACTION_END, tx, if commit { b"T\0" } else { b"F\0" }).map(drop)
    }

    /// `XS_INTRODUCE`: maps the domain's store page, binds its port, then
    /// tells the store, which fires `@introduceDomain`.
    pub fn introduce(&mut self, domid: DomId, mfn: u64, remote_port: EvtchnPort) -> Result<(), Error> {
        if self.rings.contains_key(&domid) {
            return Err(Error::EEXIST);
        }
        let used: Vec<usize> = self.rings.values().map(|r| r.slot).collect();
        let Some(slot) = (0..self.slots).find(|s| !used.contains(s)) else { return Err(Error::ENOSPC) };
        let va = self.va_base + slot as u64 * 4096;
        // SAFETY: the slot's page is free (no ring uses it).
        if let Err(e) = unsafe { hv::map_foreign(va, mfn, domid, true) } {
            println!("xenstored: domain {}: mapping its store page failed: {}", domid, e);
            return Err(Error::EINVAL);
        }
        let port = match hv::bind_interdomain(domid, remote_port) {
            Ok(p) => p,
            Err(e) => {
                println!("xenstored: domain {}: binding its store port failed: {}", domid, e);
                // SAFETY: nothing refers to the page yet.
                let _ = unsafe { hv::unmap(va) };
                return Err(Error::EINVAL);
            }
        };
        let pl = Self::z(&[alloc::format!("{}", domid).as_bytes(), alloc::format!("{}", mfn).as_bytes(), alloc::format!("{}", remote_port).as_bytes()]);
        if let Err(e) = self.local(XS_INTRODUCE, 0, &pl) {
            let _ = hv::evtchn_close(port);
            // SAFETY: nothing refers to the page.
            let _ = unsafe { hv::unmap(va) };
            return Err(e);
        }
        // SAFETY: the page stays mapped until `release` drops the ring.
        let conn = unsafe { Conn::new(domid, va as *mut XenstoreDomainInterface) };
        self.rings.insert(domid, Ring { conn, slot, port });
        Ok(())
    }

    /// `XS_RELEASE`: the store forgets the domain (its watches and
    /// transactions), `@releaseDomain` fires, the ring is unmapped.
    pub fn release(&mut self, domid: DomId) -> Result<(), Error> {
        let r = self.local(XS_RELEASE, 0, &Self::z(&[alloc::format!("{}", domid).as_bytes()]));
        if let Some(ring) = self.rings.remove(&domid) {
            let _ = hv::evtchn_close(ring.port);
            // SAFETY: the ring is gone, nothing refers to the page.
            let _ = unsafe { hv::unmap(self.va_base + ring.slot as u64 * 4096) };
        }
        r.map(drop)
    }
}
