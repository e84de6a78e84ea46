//! The back end's side of a blkif ring page (`io/ring.h`): requests taken
//! from `req_prod` on, responses produced at our private index and
//! published through `rsp_prod`. The frontend writes the page while we read
//! it, so the producer index is checked (a frontend that claims more
//! requests than the ring has slots is not served any more, as Linux's
//! blkback "Halting ring processing") and each request is copied out of its
//! slot once, before it is looked at.

use core::ptr::{self, addr_of, addr_of_mut};
use core::sync::atomic::{fence, Ordering};

use hypercall_abi::blkif::*;

pub struct BackRing {
    page: *mut u8,
    req_cons: u32,
    rsp_prod_pvt: u32,
    pub broken: bool,
}

impl BackRing {
    /// # Safety
    /// `page` maps the shared ring page (read-write) for as long as the
    /// `BackRing` is used. The frontend initialised it (`SHARED_RING_INIT`).
    pub unsafe fn new(page: *mut u8) -> BackRing {
        // SAFETY: the caller vouches for the mapping.
        let (req, rsp) = unsafe {
            let h = page as *mut SringHeader;
            (ptr::read_volatile(addr_of!((*h).req_prod)), ptr::read_volatile(addr_of!((*h).rsp_prod)))
        };
        // A fresh ring starts at 0; one handed over mid-way keeps its place.
        BackRing { page, req_cons: rsp, rsp_prod_pvt: rsp, broken: req.wrapping_sub(rsp) as usize > BLKIF_RING_SIZE }
    }

    fn header(&self) -> *mut SringHeader {
        self.page as *mut SringHeader
    }

    /// The next request's bytes, if any (at most a ring's worth may be
    /// outstanding: requests whose responses we have not produced).
    pub fn next_request(&mut self) -> Option<[u8; BLKIF_SLOT_SIZE]> {
        if self.broken {
            return None;
        }
        // SAFETY: the header lies in the mapped page.
        let prod = unsafe { ptr::read_volatile(addr_of!((*self.header()).req_prod)) };
        // The index before the slots it publishes (rmb).
        fence(Ordering::Acquire);
        if prod.wrapping_sub(self.rsp_prod_pvt) as usize > BLKIF_RING_SIZE {
            self.broken = true;
            return None;
        }
        if self.req_cons == prod {
            return None;
        }
        let mut slot = [0u8; BLKIF_SLOT_SIZE];
        let base = slot_offset(self.req_cons);
        for (i, b) in slot.iter_mut().enumerate() {
            // SAFETY: the slot lies within the page (slot_offset masks).
            *b = unsafe { ptr::read_volatile(self.page.add(base + i)) };
        }
        self.req_cons = self.req_cons.wrapping_add(1);
        Some(slot)
    }

    /// Puts a response in the next slot (not yet published).
    pub fn respond(&mut self, rsp: &BlkifResponse) {
        let base = slot_offset(self.rsp_prod_pvt);
        let bytes = super::request::to_slot(rsp);
        for (i, &b) in bytes.iter().take(core::mem::size_of::<BlkifResponse>()).enumerate() {
            // SAFETY: the slot lies within the page.
            unsafe { ptr::write_volatile(self.page.add(base + i), b) };
        }
        self.rsp_prod_pvt = self.rsp_prod_pvt.wrapping_add(1);
    }

    /// Publishes the responses; asks for an event at the next request
    /// (`RING_FINAL_CHECK_FOR_REQUESTS`). Says whether the frontend wants
    /// to be told (`RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`).
    pub fn push(&mut self) -> bool {
        let h = self.header();
        // SAFETY: the header lies in the mapped page.
        unsafe {
            let old = ptr::read_volatile(addr_of!((*h).rsp_prod));
            // The responses before the index (wmb).
            fence(Ordering::Release);
            ptr::write_volatile(addr_of_mut!((*h).rsp_prod), self.rsp_prod_pvt);
            ptr::write_volatile(addr_of_mut!((*h).req_event), self.req_cons.wrapping_add(1));
            fence(Ordering::SeqCst);
            let event = ptr::read_volatile(addr_of!((*h).rsp_event));
            self.rsp_prod_pvt.wrapping_sub(event) < self.rsp_prod_pvt.wrapping_sub(old)
        }
    }
}
