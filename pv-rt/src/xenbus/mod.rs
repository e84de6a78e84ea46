//! The store client of a domU, as Linux's `drivers/xen/xenbus/` is: the
//! store page and port that `start_info` names (`store_mfn`,
//! `store_evtchn`), `xs_wire.h` requests written into `req`, replies read
//! from `rsp`, watch events that arrive in between kept for
//! [`Xenbus::wait_watch`]. One request at a time; the caller sleeps in
//! `SCHEDOP_poll` on the store's port while it waits, so shared_info must
//! be mapped first ([`crate::events::map_shared_info`]). [`control`]: the
//! shutdown requests of the toolstack.

use core::ptr::{self, addr_of, addr_of_mut};
use core::sync::atomic::{fence, Ordering};

use heapless::{Deque, String, Vec};
use hypercall_abi::xs_wire::*;
use hypercall_abi::EvtchnPort;

use crate::events;
use crate::mm::{self, VIRT_BASE};
use crate::StartInfo;

pub mod balloon;
pub mod control;

/// A reply's payload.
pub type Payload = Vec<u8, XENSTORE_PAYLOAD_MAX>;
/// A watch event: path and token.
pub type WatchEvent = (String<256>, String<64>);

/// How a request failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum XsError {
    /// The store answered `XS_ERROR` with this name (`ENOENT`, ...).
    Store(String<16>),
    /// No reply within the time allowed.
    Timeout,
    /// The request does not fit in a message.
    TooBig,
    /// A reply that breaks the protocol (wrong id, length past the limit).
    Protocol,
}

impl XsError {
    pub fn name(&self) -> &str {
        match self {
            XsError::Store(s) => s,
            XsError::Timeout => "timeout",
            XsError::TooBig => "too big",
            XsError::Protocol => "protocol error",
        }
    }
}

pub struct Xenbus {
    intf: *mut XenstoreDomainInterface,
    pub port: EvtchnPort,
    req_id: u32,
    events: Deque<WatchEvent, 16>,
    /// How long a request may wait for its reply (ns).
    pub timeout_ns: u64,
}

impl Xenbus {
    /// The store of this domain, if start_info names one that is ours.
    pub fn new(si: &StartInfo) -> Option<Xenbus> {
        if si.store_mfn == 0 || si.store_evtchn == 0 {
            return None;
        }
        // SAFETY: the builder gave us this frame, so it is RAM the M2P covers.
        let pfn = unsafe { mm::m2p(si.store_mfn) };
        if pfn >= si.nr_pages {
            return None;
        }
        // SAFETY: `mfn_list` maps `nr_pages` entries for the domain's life.
        if unsafe { ptr::read_volatile((si.mfn_list as *const u64).add(pfn as usize)) } != si.store_mfn {
            return None;
        }
        events::mask(si.store_evtchn);
        Some(Xenbus {
            intf: (VIRT_BASE + pfn * 4096) as *mut XenstoreDomainInterface,
            port: si.store_evtchn,
            req_id: 0,
            events: Deque::new(),
            timeout_ns: 10_000_000_000,
        })
    }

    /// The ring page itself, for tests that must break the protocol.
    pub fn interface(&self) -> *mut XenstoreDomainInterface {
        self.intf
    }

    fn load(&self, f: fn(*mut XenstoreDomainInterface) -> *mut u32) -> u32 {
        // SAFETY: the store page is in our initial mapping for good.
        unsafe { ptr::read_volatile(f(self.intf)) }
    }

    fn wait(&self, deadline: u64) -> Result<(), XsError> {
        if crate::time::system_time() >= deadline {
            return Err(XsError::Timeout);
        }
        let _ = events::poll(&[self.port], deadline);
        events::clear_pending(self.port);
        Ok(())
    }

    /// Writes raw bytes into `req`, waiting for room.
    pub fn put_raw(&mut self, bytes: &[u8], deadline: u64) -> Result<(), XsError> {
        let mut rest = bytes;
        while !rest.is_empty() {
            // SAFETY (closures): fields of the mapped page.
            let cons = self.load(|i| unsafe { addr_of_mut!((*i).req_cons) });
            let mut prod = self.load(|i| unsafe { addr_of_mut!((*i).req_prod) });
            fence(Ordering::SeqCst);
            let free = XENSTORE_RING_SIZE.saturating_sub(prod.wrapping_sub(cons) as usize);
            if free == 0 {
                let _ = events::send(self.port);
                self.wait(deadline)?;
                continue;
            }
            let n = free.min(rest.len());
            for &b in &rest[..n] {
                // SAFETY: the index is masked into the ring.
                unsafe { ptr::write_volatile(addr_of_mut!((*self.intf).req[mask_xenstore_idx(prod)]), b) };
                prod = prod.wrapping_add(1);
            }
            fence(Ordering::Release);
            // SAFETY: as above.
            unsafe { ptr::write_volatile(addr_of_mut!((*self.intf).req_prod), prod) };
            let _ = events::send(self.port);
            rest = &rest[n..];
        }
        Ok(())
    }

    /// Reads exactly `out.len()` bytes from `rsp`, waiting for them.
    fn get_raw(&mut self, out: &mut [u8], deadline: u64) -> Result<(), XsError> {
        let mut got = 0;
        while got < out.len() {
            // SAFETY (closures): fields of the mapped page.
            let mut cons = self.load(|i| unsafe { addr_of_mut!((*i).rsp_cons) });
            let prod = self.load(|i| unsafe { addr_of_mut!((*i).rsp_prod) });
            fence(Ordering::Acquire);
            if prod.wrapping_sub(cons) as usize > XENSTORE_RING_SIZE {
                return Err(XsError::Protocol);
            }
            if cons == prod {
                self.wait(deadline)?;
                continue;
            }
            while cons != prod && got < out.len() {
                // SAFETY: the index is masked into the ring.
                out[got] = unsafe { ptr::read_volatile(addr_of!((*self.intf).rsp[mask_xenstore_idx(cons)])) };
                cons = cons.wrapping_add(1);
                got += 1;
            }
            fence(Ordering::Release);
            // SAFETY: as above.
            unsafe { ptr::write_volatile(addr_of_mut!((*self.intf).rsp_cons), cons) };
            let _ = events::send(self.port);
        }
        Ok(())
    }

    /// The next message in `rsp`: header and payload.
    fn next_message(&mut self, deadline: u64) -> Result<(XsdSockmsg, Payload), XsError> {
        let mut h = [0u8; 16];
        self.get_raw(&mut h, deadline)?;
        let hdr = XsdSockmsg::from_bytes(&h);
        if hdr.len as usize > XENSTORE_PAYLOAD_MAX {
            return Err(XsError::Protocol);
        }
        let mut p = Payload::new();
        let _ = p.resize_default(hdr.len as usize);
        self.get_raw(&mut p, deadline)?;
        Ok((hdr, p))
    }

    fn keep_event(&mut self, p: &[u8]) {
        let mut parts = p.split(|&b| b == 0);
        let path = parts.next().and_then(|s| core::str::from_utf8(s).ok()).unwrap_or("");
        let token = parts.next().and_then(|s| core::str::from_utf8(s).ok()).unwrap_or("");
        let (Ok(path), Ok(token)) = (String::try_from(path), String::try_from(token)) else { return };
        if self.events.is_full() {
            self.events.pop_front();
        }
        let _ = self.events.push_back((path, token));
    }

    /// Sends a request whose payload is `parts` put together, and waits
    /// for its reply (watch events that come first are kept).
    pub fn request(&mut self, ty: u32, tx: u32, parts: &[&[u8]]) -> Result<Payload, XsError> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len > XENSTORE_PAYLOAD_MAX {
            return Err(XsError::TooBig);
        }
        self.req_id = self.req_id.wrapping_add(1);
        let hdr = XsdSockmsg { r#type: ty, req_id: self.req_id, tx_id: tx, len: len as u32 };
        let deadline = crate::time::system_time() + self.timeout_ns;
        self.put_raw(&hdr.to_bytes(), deadline)?;
        for p in parts {
            self.put_raw(p, deadline)?;
        }
        loop {
            let (h, p) = self.next_message(deadline)?;
            if h.r#type == XS_WATCH_EVENT {
                self.keep_event(&p);
                continue;
            }
            if h.req_id != self.req_id {
                return Err(XsError::Protocol);
            }
            if h.r#type == XS_ERROR {
                let name = p.split(|&b| b == 0).next().and_then(|s| core::str::from_utf8(s).ok()).unwrap_or("EIO");
                return Err(XsError::Store(String::try_from(name).unwrap_or_default()));
            }
            return Ok(p);
        }
    }

    pub fn read(&mut self, tx: u32, path: &str) -> Result<Payload, XsError> {
        self.request(XS_READ, tx, &[path.as_bytes(), b"\0"])
    }

    pub fn write(&mut self, tx: u32, path: &str, value: &[u8]) -> Result<(), XsError> {
        self.request(XS_WRITE, tx, &[path.as_bytes(), b"\0", value]).map(drop)
    }

    pub fn mkdir(&mut self, tx: u32, path: &str) -> Result<(), XsError> {
        self.request(XS_MKDIR, tx, &[path.as_bytes(), b"\0"]).map(drop)
    }

    pub fn rm(&mut self, tx: u32, path: &str) -> Result<(), XsError> {
        self.request(XS_RM, tx, &[path.as_bytes(), b"\0"]).map(drop)
    }

    /// The children's names, each NUL-terminated.
    pub fn directory(&mut self, tx: u32, path: &str) -> Result<Payload, XsError> {
        self.request(XS_DIRECTORY, tx, &[path.as_bytes(), b"\0"])
    }

    pub fn watch(&mut self, path: &str, token: &str) -> Result<(), XsError> {
        self.request(XS_WATCH, 0, &[path.as_bytes(), b"\0", token.as_bytes(), b"\0"]).map(drop)
    }

    pub fn unwatch(&mut self, path: &str, token: &str) -> Result<(), XsError> {
        self.request(XS_UNWATCH, 0, &[path.as_bytes(), b"\0", token.as_bytes(), b"\0"]).map(drop)
    }

    pub fn transaction_start(&mut self) -> Result<u32, XsError> {
        let p = self.request(XS_TRANSACTION_START, 0, &[b"\0"])?;
        core::str::from_utf8(p.split(|&b| b == 0).next().unwrap_or(b""))
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(XsError::Protocol)
    }

    pub fn transaction_end(&mut self, tx: u32, commit: bool) -> Result<(), XsError> {
        self.request(XS_TRANSACTION_END, tx, &[if commit { b"T\0" } else { b"F\0" }]).map(drop)
    }

    /// The next watch event, waiting for it until system time `deadline`.
    pub fn wait_watch(&mut self, deadline: u64) -> Option<WatchEvent> {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Some(e);
            }
            // SAFETY (closures): fields of the mapped page.
            let cons = self.load(|i| unsafe { addr_of_mut!((*i).rsp_cons) });
            let prod = self.load(|i| unsafe { addr_of_mut!((*i).rsp_prod) });
            if cons == prod {
                self.wait(deadline).ok()?;
                continue;
            }
            let (h, p) = self.next_message(deadline).ok()?;
            if h.r#type == XS_WATCH_EVENT {
                self.keep_event(&p);
            }
        }
    }
}
