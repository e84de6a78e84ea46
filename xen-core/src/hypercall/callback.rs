//! `set_callbacks`, `callback_op`: where events, failed segment loads and
//! user-mode system calls enter the guest kernel.

use super::{ret, HcResult};
use crate::mm::pte::guest_range_ok;
use crate::platform::Platform;
use crate::xen::Xen;
use hypercall_abi::callback::*;
use hypercall_abi::errno::Errno;

impl<P: Platform> Xen<P> {
    /// A guest entry point: canonical and outside the hypervisor's slots
    /// (a callback there would fault on every delivery).
    pub(crate) fn entry_point_ok(addr: u64) -> bool {
        guest_range_ok(addr, 1)
    }

    fn register_callback(&mut self, ty: u16, flags: u16, address: u64) -> Result<(), Errno> {
        if !Self::entry_point_ok(address) {
            return Err(Errno::EINVAL);
        }
        let mask = flags & CALLBACKF_mask_events != 0;
        let (d, v) = self.current.ok_or(Errno::ESRCH)?;
        let cb = &mut self.domains.get_mut(&d).and_then(|d| d.vcpus.get_mut(v)).ok_or(Errno::ESRCH)?.callbacks;
        match ty {
            CALLBACKTYPE_event => cb.event = address,
            CALLBACKTYPE_failsafe => {
                cb.failsafe = address;
                cb.failsafe_masks_events = mask;
            }
            CALLBACKTYPE_syscall => {
                cb.syscall = address;
                cb.syscall_masks_events = mask;
            }
            CALLBACKTYPE_syscall32 => cb.syscall32 = address,
            CALLBACKTYPE_nmi => cb.nmi = address,
            // Accepted as Xen 4.17 accepts it from 64-bit guests (XTF's
            // start of day registers one and stops if refused).
            CALLBACKTYPE_sysenter => cb.sysenter = address,
            // Xen checks the address first, then the type (-ENOSYS).
            _ => return Err(Errno::ENOSYS),
        }
        Ok(())
    }

    pub(super) fn do_set_callbacks(&mut self, [event, failsafe, syscall, ..]: [u64; 5]) -> HcResult {
        for a in [event, failsafe, syscall] {
            if !Self::entry_point_ok(a) {
                return Err(Errno::EINVAL);
            }
        }
        self.register_callback(CALLBACKTYPE_event, 0, event)?;
        self.register_callback(CALLBACKTYPE_failsafe, 0, failsafe)?;
        self.register_callback(CALLBACKTYPE_syscall, 0, syscall)?;
        ret(0)
    }

    pub(super) fn do_callback_op(&mut self, [cmd, arg, ..]: [u64; 5]) -> HcResult {
        let g = self.guest_mem().ok_or(Errno::ESRCH)?;
        match cmd as u32 {
            CALLBACKOP_register => {
                let mut b = [0u8; 16];
                g.copy_from_guest(arg, &mut b)?;
                let ty = u16::from_le_bytes([b[0], b[1]]);
                let flags = u16::from_le_bytes([b[2], b[3]]);
                let address = u64::from_le_bytes(b[8..16].try_into().unwrap_or([0; 8]));
                self.register_callback(ty, flags, address)?;
                ret(0)
            }
            CALLBACKOP_unregister => {
                let ty = g.copy_u16(arg)?;
                // Only the NMI callback can be taken away (as on Xen); the
                // others are -EINVAL, a type Xen does not know -ENOSYS.
                match ty {
                    CALLBACKTYPE_nmi => {}
                    CALLBACKTYPE_event | CALLBACKTYPE_failsafe | CALLBACKTYPE_syscall | CALLBACKTYPE_syscall32
                    | CALLBACKTYPE_sysenter => return Err(Errno::EINVAL),
                    _ => return Err(Errno::ENOSYS),
                }
                let (d, v) = self.current.ok_or(Errno::ESRCH)?;
                if let Some(vc) = self.domains.get_mut(&d).and_then(|d| d.vcpus.get_mut(v)) {
                    vc.callbacks.nmi = 0;
                }
                ret(0)
            }
            _ => Err(Errno::ENOSYS),
        }
    }
}
