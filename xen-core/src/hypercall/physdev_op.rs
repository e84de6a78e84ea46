//! `physdev_op` (Xen's `xen/arch/x86/physdev.c`): the vCPU's I/O privilege.
//!
//! `set_iopl` and `set_iobitmap` are open to every PV guest, as in Xen:
//! they only decide which `in`/`out` instructions are emulated instead of
//! raising #GP; which real ports a domain reaches is the hypervisor's
//! decision (`emulate::io`).

use super::{ret, HcResult};
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
            _ => {
                let (d, v) = self.current.map_or((0, 0), |(d, v)| (d.0, v));
                crate::gdprintk!("d{}v{} physdev_op {} not implemented", d, v, cmd);
                Err(Errno::ENOSYS)
            }
        }
    }
}
