//! The FIFO event-channel ABI (Xen's `common/event_fifo.c`): instead of the
//! 2-level bitmaps in shared_info, each port has a 32-bit event word in
//! pages the guest gives (`EVTCHNOP_expand_array`), and each vCPU a control
//! block (`EVTCHNOP_init_control`) with 16 priority queues. A pending,
//! unmasked event is linked at the tail of its queue (the LINK field of the
//! previous tail's word, or the queue's head when the queue was empty) and
//! the queue's READY bit set; the guest consumes from the heads.
//!
//! Every page is a frame of the guest's own, held with a writable type
//! reference while the ABI is in use (so it can never become a page table),
//! and given back by `EVTCHNOP_reset` or the domain's death. The guest may
//! write its words at any time: a word is read fresh each time and only its
//! own bits are trusted, never as a pointer.

use alloc::vec::Vec;

use crate::domain::DomId;
use crate::mm::{Mfn, SharedPage};
use crate::platform::Platform;
use crate::xen::Xen;
use hypercall_abi::errno::Errno;
use hypercall_abi::evtchn::*;

/// One vCPU's control block and the tail Xen keeps for each queue.
#[derive(Clone, Debug, Default)]
pub struct FifoVcpu {
    pub control: Option<(SharedPage, usize)>,
    pub tails: [u32; EVTCHN_FIFO_MAX_QUEUES],
}

#[derive(Clone, Debug, Default)]
pub struct Fifo {
    pub vcpus: Vec<FifoVcpu>,
    /// The event array, `EVTCHN_FIFO_EVENT_WORDS_PER_PAGE` ports a page.
    pub array: Vec<SharedPage>,
}

const fn bit(b: u32) -> u32 {
    1 << b
}

impl<P: Platform> Xen<P> {
    fn fifo_word_at(&self, d: DomId, port: u32) -> Option<(Mfn, usize)> {
        let f = self.domains.get(&d)?.fifo.as_ref()?;
        let page = f.array.get((port / EVTCHN_FIFO_EVENT_WORDS_PER_PAGE) as usize)?;
        Some((page.mfn(), 4 * (port % EVTCHN_FIFO_EVENT_WORDS_PER_PAGE) as usize))
    }

    /// Port `port`'s event word, if the array covers it.
    pub(crate) fn fifo_word(&self, d: DomId, port: u32) -> Option<u32> {
        let (mfn, off) = self.fifo_word_at(d, port)?;
        let mut b = [0u8; 4];
        self.platform.read(mfn, off, &mut b);
        Some(u32::from_le_bytes(b))
    }

    pub(crate) fn fifo_write_word(&self, d: DomId, port: u32, w: u32) {
        self.set_fifo_word(d, port, w)
    }

    fn set_fifo_word(&self, d: DomId, port: u32, w: u32) {
        if let Some((mfn, off)) = self.fifo_word_at(d, port) {
            self.platform.write(mfn, off, &w.to_le_bytes());
        }
    }

    /// `EVTCHNOP_init_control`: vCPU `vcpu`'s control block at `offset` in
    /// frame `gfn`. The first one switches the domain to the FIFO ABI, and
    /// events pending in the 2-level bitmap move over.
    pub(crate) fn fifo_init_control(&mut self, d: DomId, gfn: u64, offset: u32, vcpu: u32) -> Result<(), Errno> {
        let cb_size = core::mem::size_of::<EvtchnFifoControlBlock>() as u32;
        if !offset.is_multiple_of(8) || offset > 4096 - cb_size {
            return Err(Errno::EINVAL);
        }
        let dom = self.domains.get(&d).ok_or(Errno::ESRCH)?;
        if vcpu as usize >= dom.vcpus.len() {
            return Err(Errno::ENOENT);
        }
        if dom.fifo.as_ref().is_some_and(|f| f.vcpus.get(vcpu as usize).is_some_and(|v| v.control.is_some())) {
            return Err(Errno::EINVAL);
        }
        let (first, nr_vcpus) = (dom.fifo.is_none(), dom.vcpus.len());
        let page = self.mm().share_guest_frame(Mfn(gfn), d)?;
        let Some(dd) = self.domains.get_mut(&d) else { return Err(Errno::ESRCH) };
        let f = dd.fifo.get_or_insert_with(|| Fifo { vcpus: alloc::vec![FifoVcpu::default(); nr_vcpus], array: Vec::new() });
        if let Some(v) = f.vcpus.get_mut(vcpu as usize) {
            v.control = Some((page, offset as usize));
            v.tails = [0; EVTCHN_FIFO_MAX_QUEUES];
        }
        if first {
            // Xen's setup_ports: what the 2-level bitmap had pending is
            // delivered once the array covers the port.
            let si = dd.shared_info.shared_info(&self.platform);
            let mut pending = Vec::new();
            for (port, _) in dd.evtchn.in_use() {
                if si.evtchn_pending((port / 64) as usize) & (1u64 << (port % 64)) != 0 {
                    pending.push(port);
                }
            }
            for c in dd.evtchn.chans.iter_mut() {
                c.priority = EVTCHN_FIFO_PRIORITY_DEFAULT as u8;
            }
            for p in pending {
                if let Some(c) = dd.evtchn.get_mut(p) {
                    c.pending = true;
                }
            }
        }
        Ok(())
    }

    /// `EVTCHNOP_expand_array`: one more page of event words.
    pub(crate) fn fifo_expand_array(&mut self, d: DomId, gfn: u64) -> Result<(), Errno> {
        let dom = self.domains.get(&d).ok_or(Errno::ESRCH)?;
        let f = dom.fifo.as_ref().ok_or(Errno::EOPNOTSUPP)?;
        let slot = f.array.len() as u32;
        if slot >= EVTCHN_FIFO_MAX_EVENT_ARRAY_PAGES {
            return Err(Errno::ENOSPC);
        }
        let page = self.mm().share_guest_frame(Mfn(gfn), d)?;
        if let Some(f) = self.domains.get_mut(&d).and_then(|dd| dd.fifo.as_mut()) {
            f.array.push(page);
        }
        // Events that came before the page did.
        let first = slot * EVTCHN_FIFO_EVENT_WORDS_PER_PAGE;
        let late: Vec<u32> = self.domains[&d]
            .evtchn
            .in_use()
            .filter(|(p, c)| c.pending && (first..first + EVTCHN_FIFO_EVENT_WORDS_PER_PAGE).contains(p))
            .map(|(p, _)| p)
            .collect();
        for p in late {
            if let Some(c) = self.domains.get_mut(&d).and_then(|dd| dd.evtchn.get_mut(p)) {
                c.pending = false;
            }
            self.fifo_set_pending(d, p);
        }
        Ok(())
    }

    /// `EVTCHNOP_set_priority`.
    pub(crate) fn fifo_set_priority(&mut self, d: DomId, port: u32, priority: u32) -> Result<(), Errno> {
        let dom = self.domains.get_mut(&d).ok_or(Errno::ESRCH)?;
        if dom.fifo.is_none() {
            // The 2-level ABI has no priorities.
            return Err(Errno::ENOSYS);
        }
        if priority > EVTCHN_FIFO_PRIORITY_MIN {
            return Err(Errno::EINVAL);
        }
        let c = dom.evtchn.get_mut(port).filter(|c| !matches!(c.state, crate::evtchn::State::Reserved)).ok_or(Errno::EINVAL)?;
        c.priority = priority as u8;
        Ok(())
    }

    /// Xen's `evtchn_fifo_set_pending`: set PENDING; an unmasked event not
    /// yet on a queue is linked at its queue's tail, and the vCPU told.
    pub(crate) fn fifo_set_pending(&mut self, d: DomId, port: u32) {
        let Some(chan) = self.domains.get(&d).and_then(|dd| dd.evtchn.get(port)).copied() else { return };
        let Some(w) = self.fifo_word(d, port) else {
            if let Some(c) = self.domains.get_mut(&d).and_then(|dd| dd.evtchn.get_mut(port)) {
                c.pending = true;
            }
            return;
        };
        let was_pending = w & bit(EVTCHN_FIFO_PENDING) != 0;
        let mut w = w | bit(EVTCHN_FIFO_PENDING);
        self.set_fifo_word(d, port, w);
        if w & (bit(EVTCHN_FIFO_MASKED) | bit(EVTCHN_FIFO_LINKED)) == 0 {
            let v = chan.notify_vcpu as usize;
            let q = (chan.priority as usize).min(EVTCHN_FIFO_MAX_QUEUES - 1);
            let control = self.domains[&d].fifo.as_ref().and_then(|f| f.vcpus.get(v)).and_then(|fv| fv.control.map(|c| (c, fv.tails[q])));
            if let Some(((page, off), tail)) = control {
                w |= bit(EVTCHN_FIFO_LINKED);
                self.set_fifo_word(d, port, w);
                // Link after the tail if the tail is still on the queue;
                // otherwise the guest emptied it and this is the new head.
                let mut linked = false;
                if tail != 0 && tail != port {
                    if let Some(tw) = self.fifo_word(d, tail).filter(|tw| tw & bit(EVTCHN_FIFO_LINKED) != 0) {
                        self.set_fifo_word(d, tail, (tw & !EVTCHN_FIFO_LINK_MASK) | port);
                        linked = true;
                    }
                }
                let head_at = off + core::mem::offset_of!(EvtchnFifoControlBlock, head) + 4 * q;
                if !linked {
                    self.platform.write(page.mfn(), head_at, &port.to_le_bytes());
                }
                if let Some(fv) = self.domains.get_mut(&d).and_then(|dd| dd.fifo.as_mut()).and_then(|f| f.vcpus.get_mut(v)) {
                    fv.tails[q] = port;
                }
                let mut r = [0u8; 4];
                let ready_at = off + core::mem::offset_of!(EvtchnFifoControlBlock, ready);
                self.platform.read(page.mfn(), ready_at, &mut r);
                let ready = u32::from_le_bytes(r);
                if !linked && ready & bit(q as u32) == 0 {
                    self.platform.write(page.mfn(), ready_at, &(ready | bit(q as u32)).to_le_bytes());
                    if let Some(vi) = self.vcpu_info_of(d, v) {
                        vi.set_upcall_pending();
                    }
                    self.vcpu_wake(d, v);
                }
            }
        }
        if !was_pending {
            self.wake_pollers(d, port);
        }
    }

    /// `EVTCHNOP_unmask` under FIFO: the guest cleared MASKED itself; an
    /// event that waited is linked now.
    pub(crate) fn fifo_unmask(&mut self, d: DomId, port: u32) {
        if self.fifo_word(d, port).is_some_and(|w| w & bit(EVTCHN_FIFO_PENDING) != 0) {
            self.fifo_set_pending(d, port);
        }
    }

    /// Back to the 2-level ABI (`EVTCHNOP_reset`, the domain's death): the
    /// pages go back to the guest.
    pub(crate) fn fifo_destroy(&mut self, d: DomId) {
        let Some(f) = self.domains.get_mut(&d).and_then(|dd| dd.fifo.take()) else { return };
        let mut mm = self.mm();
        for v in f.vcpus {
            if let Some((page, _)) = v.control {
                mm.unshare_guest_frame(page);
            }
        }
        for page in f.array {
            mm.unshare_guest_frame(page);
        }
    }
}
