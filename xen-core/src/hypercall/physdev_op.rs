//! `physdev_op` (Xen's `xen/arch/x86/physdev.c`): the vCPU's I/O privilege,
//! and the PIRQ EOI bitmap frame every Linux registers at boot
//! (`pirq_eoi_gmfn_v1`/`_v2`). xen-core routes no physical interrupts to
//! guests: the bitmap stays all clear, and the IRQ/PIRQ operations
//! (`map_pirq`, `setup_gsi`, `irq_status_query`, ...) and PCI device
//! registration are `-ENOSYS`.
//!
//! `set_iopl` and `set_iobitmap` are open to every PV guest, as in Xen:
//! they only decide which `in`/`out` instructions are emulated instead of
//! raising #GP; which real ports a domain reaches is the hypervisor's
//! decision (`emulate::io`).

use core::mem::offset_of;

use super::{ret, HcResult};
use crate::mm::Mfn;
use crate::mm::pte::guest_range_ok;
use crate::platform::Platform;
use crate::xen::Xen;
use hypercall_abi::errno::Errno;
use hypercall_abi::physdev::*;

impl<P: Platform> Xen<P> {
    pub(super) fn do_physdev_op(&mut self, [cmd, arg, ..]: [u64; 5]) -> HcResult {
        match cmd as u32 {
            PHYSDEVOP_set_iopl => {
                let iopl = self.guest_mem().ok_or(Errno::ESRCH)?.read_u32(arg)?;
                if iopl > 3 {
                    return Err(Errno::EINVAL);
                }
                self.current_vcpu_mut()?.io.iopl = iopl as u8;
                ret(0)
            }
            PHYSDEVOP_set_iobitmap => {
                let g = self.guest_mem().ok_or(Errno::ESRCH)?;
                let bitmap = g.read_u64(arg)?;
                let nr_ports = g.read_u32(arg.wrapping_add(8))?;
                if !guest_range_ok(bitmap, IOBMP_BYTES) || nr_ports > 65536 {
                    return Err(Errno::EINVAL);
                }
                let io = &mut self.current_vcpu_mut()?.io;
                io.iobmp = bitmap;
                io.iobmp_limit = nr_ports;
                ret(0)
            }
            PHYSDEVOP_pirq_eoi_gmfn_v1 | PHYSDEVOP_pirq_eoi_gmfn_v2 => {
                let gmfn = self.guest_mem().ok_or(Errno::ESRCH)?.read_u64(arg.wrapping_add(offset_of!(PhysdevPirqEoiGmfn, gmfn) as u64))?;
                let d = self.current_id()?;
                if self.domains.get(&d).is_some_and(|dd| dd.pirq_eoi_map.is_some()) {
                    // Xen takes the frame first and gives it back on EBUSY:
                    // a bad frame is EINVAL even then.
                    let page = self.mm().share_guest_frame(Mfn(gmfn), d)?;
                    self.mm().unshare_guest_frame(page);
                    return Err(Errno::EBUSY);
                }
                // A PV guest names machine frames; it must own this one and
                // it must be able to take a writable type (not a page table).
                let page = self.mm().share_guest_frame(Mfn(gmfn), d)?;
                if let Some(dd) = self.domains.get_mut(&d) {
                    dd.pirq_eoi_map = Some(page);
                }
                ret(0)
            }
            _ => {
                let (d, v) = self.current.map_or((0, 0), |(d, v)| (d.0, v));
                crate::gdprintk!("d{}v{} physdev_op {} not implemented", d, v, cmd);
                Err(Errno::ENOSYS)
            }
        }
    }
}
