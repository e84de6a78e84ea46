//! `VCPUOP_register_runstate_memory_area` (Xen's `runstate_guest` and
//! `update_runstate_area`): a guest-virtual `vcpu_runstate_info` that the
//! hypervisor rewrites each time the vCPU is scheduled in, so the guest's
//! clock code can read stolen time without a hypercall. Linux BUG()s at
//! boot if the registration fails.

use crate::domain::DomId;
use crate::mm::pte::guest_range_ok;
use crate::platform::Platform;
use crate::xen::Xen;
use hypercall_abi::errno::Errno;

/// `sizeof(struct vcpu_runstate_info)`.
const RUNSTATE_INFO_BYTES: u64 = 48;

impl<P: Platform> Xen<P> {
    /// Register `addr` (0: none) for vCPU `v` of the current domain, and
    /// fill it at once. A range outside the guest's half is `-EFAULT`, as
    /// Xen's `guest_handle_okay`; a write that faults later is ignored.
    pub(crate) fn register_runstate_area(&mut self, d: DomId, v: usize, addr: u64) -> Result<(), Errno> {
        if addr != 0 && !guest_range_ok(addr, RUNSTATE_INFO_BYTES) {
            return Err(Errno::EFAULT);
        }
        let vc = self.domains.get_mut(&d).and_then(|dd| dd.vcpus.get_mut(v)).ok_or(Errno::ESRCH)?;
        vc.runstate_area = addr;
        self.update_runstate_area(d, v);
        Ok(())
    }

    /// Write the vCPU's run state to its registered area, through the
    /// current address space (Xen writes it on the way into the vCPU).
    pub(crate) fn update_runstate_area(&mut self, d: DomId, v: usize) {
        let Some(addr) = self.domains.get(&d).and_then(|dd| dd.vcpus.get(v)).map(|vc| vc.runstate_area) else { return };
        if addr == 0 || self.current.map(|(cd, _)| cd) != Some(d) {
            return;
        }
        let r = self.runstate_now(d, v);
        let mut b = [0u8; RUNSTATE_INFO_BYTES as usize];
        b[0..4].copy_from_slice(&r.state.to_le_bytes());
        b[8..16].copy_from_slice(&r.entry_time.to_le_bytes());
        for (i, t) in r.time.iter().enumerate() {
            b[16 + 8 * i..24 + 8 * i].copy_from_slice(&t.to_le_bytes());
        }
        if let Some(g) = self.guest_mem() {
            let _ = g.copy_to_guest(addr, &b);
        }
    }
}
