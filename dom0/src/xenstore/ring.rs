//! One domain's connection over its store page: request bytes taken from
//! `req` into whole messages, replies and watch events queued and copied
//! into `rsp` as space frees. The domain writes the page while we read it,
//! so every access is volatile and no index is trusted: a producer index
//! more than a ring ahead of the consumer, or a message header longer than
//! `XENSTORE_PAYLOAD_MAX`, breaks the connection for good (xenstored
//! ignores such a domain from then on); it harms nobody else.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::ptr::{self, addr_of, addr_of_mut};
use core::sync::atomic::{fence, Ordering};

use hypercall_abi::xs_wire::*;
use hypercall_abi::DomId;

/// Bytes of replies and events a domain may leave unread; past it, new
/// watch events for it are dropped and its requests wait.
pub const OUT_LIMIT: usize = 64 << 10;
/// Requests served per connection each time round, so one domain cannot
/// keep the store to itself.
pub const BATCH: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Broken {
    /// `req_prod - req_cons` or `rsp_prod - rsp_cons` beyond the ring.
    RingIndex,
    /// A header whose length exceeds `XENSTORE_PAYLOAD_MAX`.
    Length(u32),
}

impl Broken {
    pub fn what(self) -> &'static str {
        match self {
            Broken::RingIndex => "ring indices out of range",
            Broken::Length(_) => "message longer than XENSTORE_PAYLOAD_MAX",
        }
    }
}

pub struct Conn {
    pub domid: DomId,
    intf: *mut XenstoreDomainInterface,
    partial: Vec<u8>,
    out: VecDeque<u8>,
    pub broken: Option<Broken>,
    /// Watch events dropped because the domain did not read its ring.
    pub dropped: u64,
}

impl Conn {
    /// # Safety
    /// `intf` maps the domain's store page (read-write) for as long as the
    /// connection exists.
    pub unsafe fn new(domid: DomId, intf: *mut XenstoreDomainInterface) -> Conn {
        // SAFETY: the caller vouches for the mapping.
        unsafe {
            ptr::write_volatile(addr_of_mut!((*intf).server_features), XENSTORE_SERVER_FEATURE_ERROR);
            ptr::write_volatile(addr_of_mut!((*intf).connection), XENSTORE_CONNECTED);
        }
        Conn { domid, intf, partial: Vec::new(), out: VecDeque::new(), broken: None, dropped: 0 }
    }

    fn load(&self, f: fn(*mut XenstoreDomainInterface) -> *mut u32) -> u32 {
        // SAFETY: `intf` is mapped (see `new`); u32 loads are single accesses.
        unsafe { ptr::read_volatile(f(self.intf)) }
    }

    fn store(&self, f: fn(*mut XenstoreDomainInterface) -> *mut u32, v: u32) {
        // SAFETY: as in `load`.
        unsafe { ptr::write_volatile(f(self.intf), v) }
    }

    fn fail(&mut self, why: Broken) {
        if self.broken.is_none() {
            self.broken = Some(why);
            let code = match why {
                Broken::RingIndex => XENSTORE_ERROR_RINGIDX,
                Broken::Length(_) => XENSTORE_ERROR_COMM,
            };
            // SAFETY: as in `load`.
            self.store(|i| unsafe { addr_of_mut!((*i).error) }, code);
        }
    }

    /// The whole requests waiting in the ring (at most [`BATCH`]); says
    /// also whether it consumed bytes (the domain is then told).
    pub fn read(&mut self) -> (Vec<(XsdSockmsg, Vec<u8>)>, bool) {
        let mut msgs = Vec::new();
        let mut moved = false;
        if self.broken.is_some() || self.out.len() > OUT_LIMIT {
            return (msgs, false);
        }
        // SAFETY (closures below): field addresses within the mapped page.
        let mut cons = self.load(|i| unsafe { addr_of_mut!((*i).req_cons) });
        let prod = self.load(|i| unsafe { addr_of_mut!((*i).req_prod) });
        // io/xs_wire.h: indices, then the data (rmb).
        fence(Ordering::Acquire);
        if prod.wrapping_sub(cons) as usize > XENSTORE_RING_SIZE {
            self.fail(Broken::RingIndex);
            return (msgs, false);
        }
        while cons != prod && msgs.len() < BATCH {
            let want = self.needed();
            while cons != prod && self.partial.len() < want {
                // SAFETY: the index is masked into the ring.
                let b = unsafe { ptr::read_volatile(addr_of!((*self.intf).req[mask_xenstore_idx(cons)])) };
                self.partial.push(b);
                cons = cons.wrapping_add(1);
                moved = true;
            }
            if self.partial.len() == XsdSockmsg::SIZE {
                let h = self.header();
                if h.len as usize > XENSTORE_PAYLOAD_MAX {
                    self.fail(Broken::Length(h.len));
                    break;
                }
            }
            if self.partial.len() >= XsdSockmsg::SIZE && self.partial.len() == self.needed() {
                let h = self.header();
                let payload = self.partial.split_off(XsdSockmsg::SIZE);
                self.partial.clear();
                msgs.push((h, payload));
            }
        }
        if moved {
            // Done with the bytes before handing the space back (mb).
            fence(Ordering::Release);
            // SAFETY: as above.
            self.store(|i| unsafe { addr_of_mut!((*i).req_cons) }, cons);
        }
        (msgs, moved)
    }

    fn header(&self) -> XsdSockmsg {
        let mut b = [0u8; 16];
        b.copy_from_slice(&self.partial[..16]);
        XsdSockmsg::from_bytes(&b)
    }

    /// Bytes of the message being assembled that we need in all.
    fn needed(&self) -> usize {
        if self.partial.len() < XsdSockmsg::SIZE {
            XsdSockmsg::SIZE
        } else {
            XsdSockmsg::SIZE + (self.header().len as usize).min(XENSTORE_PAYLOAD_MAX)
        }
    }

    /// Queues a message for the domain. Replies always go; a watch event
    /// (`droppable`) is dropped when the domain leaves too much unread.
    pub fn send(&mut self, hdr: XsdSockmsg, payload: &[u8], droppable: bool) {
        if droppable && self.out.len() > OUT_LIMIT {
            self.dropped += 1;
            return;
        }
        self.out.extend(hdr.to_bytes());
        self.out.extend(payload.iter().copied());
    }

    pub fn pending_out(&self) -> usize {
        self.out.len()
    }

    /// Copies queued bytes into `rsp` as far as it has room; says whether
    /// it wrote any (the domain is then told).
    pub fn flush(&mut self) -> bool {
        if self.broken.is_some() || self.out.is_empty() {
            return false;
        }
        // SAFETY (closures): field addresses within the mapped page.
        let cons = self.load(|i| unsafe { addr_of_mut!((*i).rsp_cons) });
        let mut prod = self.load(|i| unsafe { addr_of_mut!((*i).rsp_prod) });
        // The consumer index before reusing the space it frees (mb).
        fence(Ordering::SeqCst);
        let used = prod.wrapping_sub(cons) as usize;
        if used > XENSTORE_RING_SIZE {
            self.fail(Broken::RingIndex);
            return false;
        }
        let n = (XENSTORE_RING_SIZE - used).min(self.out.len());
        for _ in 0..n {
            let Some(b) = self.out.pop_front() else { break };
            // SAFETY: the index is masked into the ring.
            unsafe { ptr::write_volatile(addr_of_mut!((*self.intf).rsp[mask_xenstore_idx(prod)]), b) };
            prod = prod.wrapping_add(1);
        }
        if n == 0 {
            return false;
        }
        // The bytes before the index that publishes them (wmb).
        fence(Ordering::Release);
        // SAFETY: as above.
        self.store(|i| unsafe { addr_of_mut!((*i).rsp_prod) }, prod);
        true
    }
}
