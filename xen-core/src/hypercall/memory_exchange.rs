//! `XENMEM_exchange` (Xen's `memory_exchange` in `xen/common/memory.c`): a
//! domain gives back some of its frames and gets as many others, possibly
//! machine-contiguous and below an address limit. Linux asks for it to make
//! DMA-able buffers (`xen_create_contiguous_region`, swiotlb's bounce
//! buffers): it unmaps the pages first, so each frame it gives must hold no
//! reference but its allocation.
//!
//! Xen's checks and codes: bad sizes or orders (here: extents up to 2 MiB)
//! `-EINVAL`, lists out of the
//! guest's half `-EFAULT`, multi-page extents for an unprivileged domain
//! `-EPERM`, a frame not the domain's or still in use `-EINVAL`, no
//! contiguous memory `-ENOMEM`. `nr_exchanged` says how many input extents
//! were done; work goes a chunk at a time and is preempted between chunks.

use core::mem::offset_of;

use super::{Done, HcResult};
use crate::domain::DomId;
use crate::mm::pte::guest_range_ok;
use crate::mm::{Mfn, Owner};
use crate::platform::Platform;
use crate::xen::Xen;
use hypercall_abi::errno::Errno;
use hypercall_abi::memory::*;

/// Largest extent order taken (larger is `-EINVAL`, as Xen past its
/// `MAX_ORDER`). Xen takes up to 2^20 frames; xen-core stops at 2 MiB
/// extents, far more than Linux asks (its swiotlb segments are 256 KiB),
/// so the bookkeeping of one chunk stays small in the hypervisor's heap.
const MAX_ORDER: u32 = 9;
/// Chunks done per entry into the hypervisor before a continuation.
const CHUNK_BUDGET: u64 = 64;

struct Reservation {
    list: u64,
    nr: u64,
    order: u32,
    address_bits: u32,
    domid: u16,
}

impl<P: Platform> Xen<P> {
    pub(super) fn memory_exchange(&mut self, arg: u64) -> HcResult {
        let g = self.guest_mem().ok_or(Errno::ESRCH)?;
        let mut raw = [0u8; core::mem::size_of::<XenMemoryExchange>()];
        g.copy_from_guest(arg, &mut raw)?;
        let u64_at = |o: usize| u64::from_le_bytes([raw[o], raw[o + 1], raw[o + 2], raw[o + 3], raw[o + 4], raw[o + 5], raw[o + 6], raw[o + 7]]);
        let u32_at = |o: usize| u32::from_le_bytes([raw[o], raw[o + 1], raw[o + 2], raw[o + 3]]);
        let res = |base: usize| Reservation {
            list: u64_at(base + offset_of!(XenMemoryReservation, extent_start)),
            nr: u64_at(base + offset_of!(XenMemoryReservation, nr_extents)),
            order: u32_at(base + offset_of!(XenMemoryReservation, extent_order)),
            // XENMEMF_get_address_bits: the low byte of mem_flags.
            address_bits: u32_at(base + offset_of!(XenMemoryReservation, mem_flags)) & 0xff,
            domid: u16::from_le_bytes([raw[base + offset_of!(XenMemoryReservation, domid)], raw[base + offset_of!(XenMemoryReservation, domid) + 1]]),
        };
        let (inp, out) = (res(offset_of!(XenMemoryExchange, r#in)), res(offset_of!(XenMemoryExchange, out)));
        let nr_exchanged = u64_at(offset_of!(XenMemoryExchange, nr_exchanged));
        let done_at = arg.wrapping_add(offset_of!(XenMemoryExchange, nr_exchanged) as u64);
        // Xen's fail_early: nr_exchanged is written back as it came.
        let early = |x: &Self, e: Errno| -> HcResult {
            match x.guest_mem().map(|g| g.write_u64(done_at, nr_exchanged)) {
                Some(Ok(())) => Err(e),
                _ => Err(Errno::EFAULT),
            }
        };
        let sizes_ok = nr_exchanged <= inp.nr
            && inp.domid == out.domid
            && inp.order <= MAX_ORDER
            && out.order <= MAX_ORDER
            && (u64::MAX >> inp.order) >= inp.nr
            && (u64::MAX >> out.order) >= out.nr
            && inp.nr << inp.order == out.nr << out.order;
        if !sizes_ok {
            return early(self, Errno::EINVAL);
        }
        if !guest_range_ok(inp.list, inp.nr.saturating_mul(8)) || !guest_range_ok(out.list, out.nr.saturating_mul(8)) {
            return early(self, Errno::EFAULT);
        }
        // multipage_allocation_permitted: contiguous extents for the domain
        // with I/O memory (Dom0) only.
        let privileged = self.current_domain().is_some_and(|d| d.privileged);
        if !privileged && (inp.order > 0 || out.order > 0) {
            return early(self, Errno::EPERM);
        }
        let (in_chunk, out_chunk) =
            if inp.order <= out.order { (out.order - inp.order, 0) } else { (0, inp.order - out.order) };
        let d = match self.target_domain(inp.domid) {
            Ok(d) => d,
            Err(e) => return early(self, e),
        };
        // An address limit of 0, or one the machine is within, is none.
        let limit = match out.address_bits {
            0 => u64::MAX,
            b if b >= 64 => u64::MAX,
            b => (1u64 << b) >> 12,
        };
        let first = nr_exchanged >> in_chunk;
        let mut rc = Ok(());
        let mut i = first;
        while i < inp.nr >> in_chunk {
            if i != first && i - first >= CHUNK_BUDGET {
                let g = self.guest_mem().ok_or(Errno::ESRCH)?;
                g.write_u64(done_at, i << in_chunk)?;
                return Ok(Done::Continue([XENMEM_exchange as u64, arg, 0, 0, 0]));
            }
            if let Err(e) = self.exchange_chunk(d, &inp, &out, i, in_chunk, out_chunk, limit, &mut rc) {
                let g = self.guest_mem().ok_or(Errno::ESRCH)?;
                g.write_u64(done_at, i << in_chunk).map_err(|_| Errno::EFAULT)?;
                return Err(e);
            }
            i += 1;
        }
        let g = self.guest_mem().ok_or(Errno::ESRCH)?;
        g.write_u64(done_at, inp.nr).map_err(|_| Errno::EFAULT)?;
        rc.map(|()| Done::Ret(0))
    }

    /// Chunk `i`: `2^in_chunk` input extents for `2^out_chunk` output ones.
    /// Nothing changes unless the whole chunk can be done; a fault writing
    /// an output MFN back is remembered in `rc` and the work goes on, as Xen.
    #[allow(clippy::too_many_arguments)]
    fn exchange_chunk(
        &mut self,
        d: DomId,
        inp: &Reservation,
        out: &Reservation,
        i: u64,
        in_chunk: u32,
        out_chunk: u32,
        limit: u64,
        rc: &mut Result<(), Errno>,
    ) -> Result<(), Errno> {
        let g = self.guest_mem().ok_or(Errno::ESRCH)?;
        let mut stolen = alloc::vec::Vec::new();
        for j in 0..1u64 << in_chunk {
            let gmfn = g.read_u64(inp.list.wrapping_add(8 * ((i << in_chunk) + j)))?;
            for k in 0..1u64 << inp.order {
                let mfn = Mfn(gmfn.checked_add(k).ok_or(Errno::EINVAL)?);
                // steal_page: the domain's, allocated, and nothing else
                // holding it (no mapping, no type use, not pinned, not a
                // page the hypervisor shares with it).
                let free_to_take = self.frames.get(mfn).is_some_and(|pg| {
                    pg.owner == Owner::Dom(d) && pg.allocated && pg.count == 1 && pg.type_count == 0 && !pg.pinned && !pg.shared
                });
                if !free_to_take {
                    crate::gdprintk!("d{}: XENMEM_exchange of frame {:#x} it cannot give", d.0, mfn.0);
                    return Err(Errno::EINVAL);
                }
                stolen.push(mfn);
            }
        }
        // The same frame named twice cannot be given twice.
        stolen.sort_unstable_by_key(|m| m.0);
        if stolen.windows(2).any(|w| w[0] == w[1]) {
            return Err(Errno::EINVAL);
        }
        let mut fresh = alloc::vec::Vec::new();
        for _ in 0..1u64 << out_chunk {
            match self.frames.alloc_contiguous(&self.platform, Owner::Dom(d), out.order, limit) {
                Some(m) => fresh.push(m),
                None => {
                    for m in fresh {
                        for k in 0..1u64 << out.order {
                            self.frames.release(Mfn(m.0 + k));
                        }
                    }
                    return Err(Errno::ENOMEM);
                }
            }
        }
        // Beyond this point the chunk cannot fail.
        for mfn in stolen {
            self.frames.release(mfn);
        }
        for (j, m) in fresh.into_iter().enumerate() {
            let slot = out.list.wrapping_add(8 * ((i << out_chunk) + j as u64));
            let Some(g) = self.guest_mem() else { continue };
            let gpfn = match g.read_u64(slot) {
                Ok(p) => p,
                Err(_) => {
                    *rc = Err(Errno::EFAULT);
                    continue;
                }
            };
            if g.write_u64(slot, m.0).is_err() {
                *rc = Err(Errno::EFAULT);
            }
            for k in 0..1u64 << out.order {
                self.frames.set_m2p(Mfn(m.0 + k), gpfn.wrapping_add(k));
            }
        }
        Ok(())
    }
}
