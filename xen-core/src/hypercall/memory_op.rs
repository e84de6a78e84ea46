//! `memory_op`: reservations (ballooning) and the machine-to-phys table.

use super::{batch, ret, Done, HcResult};
use crate::mm::pte::HYPERVISOR_VIRT_START;
use crate::mm::{Mfn, Owner};
use crate::platform::Platform;
use crate::xen::Xen;
use hypercall_abi::errno::Errno;
use hypercall_abi::memory::*;

/// Extents per entry into the hypervisor before a continuation.
const BUDGET: u64 = 512;
/// Where guests find the M2P table (`MACH2PHYS_VIRT_START`).
pub const MACH2PHYS_VIRT_START: u64 = HYPERVISOR_VIRT_START;

impl<P: Platform> Xen<P> {
    pub(super) fn do_memory_op(&mut self, [cmd, arg, ..]: [u64; 5]) -> HcResult {
        let op = (cmd & MEMOP_CMD_MASK) as u32;
        let start = cmd >> MEMOP_EXTENT_SHIFT;
        match op {
            XENMEM_increase_reservation | XENMEM_decrease_reservation => self.reservation(op, start, arg),
            XENMEM_populate_physmap => self.populate_physmap_op(start, arg),
            XENMEM_maximum_ram_page => ret(self.frames.len() as i64),
            XENMEM_memory_map | XENMEM_machine_memory_map => self.memory_map(op, arg),
            XENMEM_exchange => self.memory_exchange(arg),
            XENMEM_current_reservation | XENMEM_maximum_reservation => {
                let domid = self.guest_mem().ok_or(Errno::ESRCH)?.copy_u16(arg)?;
                let d = self.target_domain(domid)?;
                let dom = &self.domains[&d];
                ret(if op == XENMEM_current_reservation { dom.tot_pages } else { dom.max_pages } as i64)
            }
            XENMEM_machphys_mfn_list => {
                let g = self.guest_mem().ok_or(Errno::ESRCH)?;
                let max = g.read_u32(arg)? as u64;
                let list = g.read_u64(arg.wrapping_add(8))?;
                let (maddr, size) = self.platform.m2p_maddr();
                let chunks = size.div_ceil(2 << 20);
                let n = max.min(chunks);
                for k in 0..n {
                    g.write_u64(list.wrapping_add(8 * k), (maddr >> 12) + k * 512)?;
                }
                g.write_u32(arg.wrapping_add(16), n as u32)?;
                ret(0)
            }
            XENMEM_machphys_mapping => {
                let (_, size) = self.platform.m2p_maddr();
                let g = self.guest_mem().ok_or(Errno::ESRCH)?;
                g.write_u64(arg, MACH2PHYS_VIRT_START)?;
                g.write_u64(arg.wrapping_add(8), MACH2PHYS_VIRT_START + size)?;
                g.write_u64(arg.wrapping_add(16), self.frames.len().saturating_sub(1))?;
                ret(0)
            }
            _ => Err(Errno::ENOSYS),
        }
    }

    /// Increase: allocate extents (order 0) up to the domain's limit and
    /// report their MFNs. Decrease: give back the named frames. Both return
    /// the number of extents done, as Xen does.
    fn reservation(&mut self, op: u32, start: u64, arg: u64) -> HcResult {
        let (list, nr_extents, order, domid) = self.read_reservation(arg)?;
        let d = self.target_domain(domid)?;
        if order != 0 || start > nr_extents {
            // Only single pages: a PV guest's memory has no contiguity to offer.
            return ret(start as i64);
        }
        self.extents(op, start, nr_extents, arg, |x, i| {
            if op == XENMEM_increase_reservation { x.populate_one(d, list, i) } else { x.release_one(d, list, i) }
        })
    }

    /// The extent loop of the reservation ops: `one(self, i)` handles
    /// extent `i` (false: stop there). The result is the number of extents
    /// done, as Xen's; a continuation carries the next extent in the
    /// command's high bits (`MEMOP_EXTENT_SHIFT`).
    fn extents(&mut self, op: u32, start: u64, nr_extents: u64, arg: u64, mut one: impl FnMut(&mut Self, u64) -> bool) -> HcResult {
        match batch::run(start, nr_extents, BUDGET, |i| if one(self, i) { Ok(()) } else { Err(()) }) {
            (i, batch::End::Preempted) => Ok(Done::Continue([(op as u64) | (i << MEMOP_EXTENT_SHIFT), arg, 0, 0, 0])),
            (i, _) => ret(i as i64),
        }
    }

    /// `XENMEM_populate_physmap` for a PV domain (the builder uses it for a
    /// new guest): the extent list holds guest frame numbers on the way in
    /// and the machine frames given for them on the way out.
    fn populate_physmap_op(&mut self, start: u64, arg: u64) -> HcResult {
        let (list, nr_extents, order, domid) = self.read_reservation(arg)?;
        let d = self.target_domain(domid)?;
        if order != 0 || start > nr_extents {
            return ret(start as i64);
        }
        self.extents(XENMEM_populate_physmap, start, nr_extents, arg, |x, i| {
            let Some(gpfn) = x.guest_mem().and_then(|g| g.read_u64(list.wrapping_add(8 * i)).ok()) else { return false };
            let Some(mfn) = x.populate_physmap(d, &[gpfn]).first().copied() else { return false };
            let wrote = x.guest_mem().is_some_and(|g| g.write_u64(list.wrapping_add(8 * i), mfn.0).is_ok());
            if !wrote {
                x.frames.release(mfn);
                if let Some(dom) = x.domains.get_mut(&d) {
                    dom.tot_pages -= 1;
                }
            }
            wrote
        })
    }

    /// `struct xen_memory_reservation` at `arg`: the extent list, how many
    /// extents, their order, the domain.
    fn read_reservation(&self, arg: u64) -> Result<(u64, u64, u32, u16), Errno> {
        let g = self.guest_mem().ok_or(Errno::ESRCH)?;
        let mut raw = [0u8; XenMemoryReservation::SIZE];
        g.copy_from_guest(arg, &mut raw)?;
        let r = XenMemoryReservation::from_bytes(&raw);
        Ok((r.extent_start, r.nr_extents, r.extent_order, r.domid))
    }

    fn populate_one(&mut self, d: crate::domain::DomId, list: u64, i: u64) -> bool {
        let Some(dom) = self.domains.get(&d) else { return false };
        // Frames given back but still in use count too (see
        // `FrameTable::lingering`).
        if dom.tot_pages.saturating_add(self.frames.lingering(d)) >= dom.max_pages {
            return false;
        }
        let Some(mfn) = self.frames.alloc(&self.platform, Owner::Dom(d)) else { return false };
        if list != 0 {
            let wrote = self.guest_mem().is_some_and(|g| g.write_u64(list.wrapping_add(8 * i), mfn.0).is_ok());
            if !wrote {
                self.frames.release(mfn);
                return false;
            }
        }
        if let Some(dom) = self.domains.get_mut(&d) {
            dom.tot_pages += 1;
        }
        true
    }

    fn release_one(&mut self, d: crate::domain::DomId, list: u64, i: u64) -> bool {
        let Some(mfn) = self.guest_mem().and_then(|g| g.read_u64(list.wrapping_add(8 * i)).ok()) else { return false };
        let mfn = Mfn(mfn);
        // Frames shared with the hypervisor (shared_info, grant frames) are
        // not the guest's to give back, as on Xen (they are Xen-heap pages).
        let owned = self.frames.get(mfn).is_some_and(|pg| pg.owner == Owner::Dom(d) && pg.allocated && !pg.shared);
        if !owned {
            crate::gdprintk!("d{}: decrease_reservation of frame {:#x} it does not hold", d.0, mfn.0);
            return false;
        }
        // The frame stays alive (and owned) while mappings still hold it.
        self.frames.release(mfn);
        if let Some(dom) = self.domains.get_mut(&d) {
            dom.tot_pages -= 1;
        }
        true
    }
}
