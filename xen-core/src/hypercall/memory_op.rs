//! `memory_op`: reservations (ballooning) and the machine-to-phys table.

use super::{ret, Done, HcResult};
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
            XENMEM_current_reservation | XENMEM_maximum_reservation => {
                let domid = self.guest_mem().ok_or(Errno::ESRCH)?.copy_u16(arg)?;
                let d = self.target_domain(domid)?;
                let dom = &self.domains[&d];
                ret(if op == XENMEM_current_reservation { dom.tot_pages } else { dom.max_pages } as i64)
            }
            XENMEM_machphys_mfn_list => {
                let g = self.guest_mem().ok_or(Errno::ESRCH)?;
                let max = g.read_u32(arg)? as u64;
                let list = g.read_u64(arg + 8)?;
                let (maddr, size) = self.platform.m2p_maddr();
                let chunks = size.div_ceil(2 << 20);
                let n = max.min(chunks);
                for k in 0..n {
                    g.write_u64(list.wrapping_add(8 * k), (maddr >> 12) + k * 512)?;
                }
                g.write_u32(arg + 16, n as u32)?;
                ret(0)
            }
            XENMEM_machphys_mapping => {
                let (_, size) = self.platform.m2p_maddr();
                let g = self.guest_mem().ok_or(Errno::ESRCH)?;
                g.write_u64(arg, MACH2PHYS_VIRT_START)?;
                g.write_u64(arg + 8, MACH2PHYS_VIRT_START + size)?;
                g.write_u64(arg + 16, self.frames.len().saturating_sub(1))?;
                ret(0)
            }
            _ => Err(Errno::ENOSYS),
        }
    }

    /// Increase: allocate extents (order 0) up to the domain's limit and
    /// report their MFNs. Decrease: give back the named frames. Both return
    /// the number of extents done, as Xen does.
    fn reservation(&mut self, op: u32, start: u64, arg: u64) -> HcResult {
        let g = self.guest_mem().ok_or(Errno::ESRCH)?;
        let mut raw = [0u8; 32];
        g.copy_from_guest(arg, &mut raw)?;
        let word = |o: usize| u64::from_le_bytes(raw[o..o + 8].try_into().unwrap_or([0; 8]));
        let (list, nr_extents) = (word(0), word(8));
        let order = u32::from_le_bytes(raw[16..20].try_into().unwrap_or([0; 4]));
        let domid = u16::from_le_bytes([raw[24], raw[25]]);
        let d = self.target_domain(domid)?;
        if order != 0 || start > nr_extents {
            // Only single pages: a PV guest's memory has no contiguity to offer.
            return ret(start as i64);
        }
        let mut i = start;
        while i < nr_extents {
            if i - start == BUDGET {
                return Ok(Done::Continue([(op as u64) | (i << MEMOP_EXTENT_SHIFT), arg, 0, 0, 0]));
            }
            let ok = if op == XENMEM_increase_reservation { self.populate_one(d, list, i) } else { self.release_one(d, list, i) };
            if !ok {
                break;
            }
            i += 1;
        }
        ret(i as i64)
    }

    /// `XENMEM_populate_physmap` for a PV domain (the builder uses it for a
    /// new guest): the extent list holds guest frame numbers on the way in
    /// and the machine frames given for them on the way out.
    fn populate_physmap_op(&mut self, start: u64, arg: u64) -> HcResult {
        let g = self.guest_mem().ok_or(Errno::ESRCH)?;
        let mut raw = [0u8; 32];
        g.copy_from_guest(arg, &mut raw)?;
        let word = |o: usize| u64::from_le_bytes(raw[o..o + 8].try_into().unwrap_or([0; 8]));
        let (list, nr_extents) = (word(0), word(8));
        let order = u32::from_le_bytes(raw[16..20].try_into().unwrap_or([0; 4]));
        let d = self.target_domain(u16::from_le_bytes([raw[24], raw[25]]))?;
        if order != 0 || start > nr_extents {
            return ret(start as i64);
        }
        let mut i = start;
        while i < nr_extents {
            if i - start == BUDGET {
                return Ok(Done::Continue([(XENMEM_populate_physmap as u64) | (i << MEMOP_EXTENT_SHIFT), arg, 0, 0, 0]));
            }
            let Some(gpfn) = self.guest_mem().and_then(|g| g.read_u64(list.wrapping_add(8 * i)).ok()) else { break };
            let Some(mfn) = self.populate_physmap(d, &[gpfn]).first().copied() else { break };
            let wrote = self.guest_mem().is_some_and(|g| g.write_u64(list.wrapping_add(8 * i), mfn.0).is_ok());
            if !wrote {
                self.frames.release(mfn);
                if let Some(dom) = self.domains.get_mut(&d) {
                    dom.tot_pages -= 1;
                }
                break;
            }
            i += 1;
        }
        ret(i as i64)
    }

    fn populate_one(&mut self, d: crate::domain::DomId, list: u64, i: u64) -> bool {
        let Some(dom) = self.domains.get(&d) else { return false };
        if dom.tot_pages >= dom.max_pages {
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
        let shared_info = self.domains.get(&d).map(|dom| dom.shared_info);
        let grant_frame = self.domains.get(&d).is_some_and(|dom| dom.gnttab.frames.contains(&mfn));
        let owned = self.frames.get(mfn).is_some_and(|pg| pg.owner == Owner::Dom(d) && pg.allocated);
        if !owned || Some(mfn) == shared_info || grant_frame {
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
