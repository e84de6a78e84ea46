//! Where each vCPU's `vcpu_info` lives, and `VCPUOP_register_vcpu_info`
//! (Xen's `map_vcpu_info`): a guest may move it out of `shared_info` into a
//! page of its own (Linux does, for every vCPU, and panics if refused).
//!
//! A registered frame is shared with the hypervisor through `mm`
//! (`Mm::share_guest_frame`): it holds a `Writable` type reference until the
//! domain dies, so the hypervisor's writes into it (pending bits, the event
//! mask, cr2, time) can never land in a page table (invariant 6).

use crate::domain::{DomId, Domain};
use crate::mm::Mfn;
use crate::platform::Platform;
use crate::shared_info::{VcpuInfoLoc, VcpuInfoPage};
use crate::xen::Xen;
use hypercall_abi::errno::Errno;

impl Domain {
    /// Where vCPU `v`'s `vcpu_info` is: where it registered one, else its
    /// slot in `shared_info` (which has 32).
    pub fn vcpu_info(&self, v: usize) -> Option<VcpuInfoLoc> {
        match self.vcpus.get(v)?.vcpu_info {
            Some(loc) => Some(loc),
            None => VcpuInfoLoc::in_shared_info(self.shared_info, v),
        }
    }
}

impl<P: Platform> Xen<P> {
    /// vCPU `v` of `d`'s `vcpu_info`, to read or write.
    pub(crate) fn vcpu_info_of(&self, d: DomId, v: usize) -> Option<VcpuInfoPage<'_, P>> {
        Some(self.domains.get(&d)?.vcpu_info(v)?.on(&self.platform))
    }

    /// Move vCPU `v`'s `vcpu_info` to `offset` in frame `mfn` (a PV guest's
    /// frame number is the machine one). Xen's checks: once only, room for
    /// the whole structure, a frame the domain owns and that can be typed
    /// writable (it keeps that type while registered), and only for the
    /// calling vCPU or one that is down. The current contents move along,
    /// and every event is marked pending so none is lost. xen-core also
    /// wants the offset 8-byte aligned (Linux's per-CPU copy is).
    pub(crate) fn register_vcpu_info(&mut self, d: DomId, v: usize, mfn: u64, offset: u64) -> Result<(), Errno> {
        if offset > (4096 - VCPU_INFO_BYTES) as u64 || offset % 8 != 0 {
            return Err(Errno::EINVAL);
        }
        let dom = self.domains.get(&d).ok_or(Errno::ESRCH)?;
        let vc = dom.vcpus.get(v).ok_or(Errno::ENOENT)?;
        if vc.vcpu_info.is_some() {
            return Err(Errno::EINVAL);
        }
        if self.current != Some((d, v)) && vc.state != crate::domain::RunState::Down {
            return Err(Errno::EINVAL);
        }
        let old = dom.vcpu_info(v);
        let page = self.mm().share_guest_frame(Mfn(mfn), d)?;
        let Some(new) = VcpuInfoLoc::registered(page, offset as usize) else {
            self.mm().unshare_guest_frame(page);
            return Err(Errno::EINVAL);
        };
        let info = old.map_or([0u8; VCPU_INFO_BYTES], |o| o.on(&self.platform).read_all());
        let vi = new.on(&self.platform);
        vi.write_all(&info);
        vi.set_upcall_pending();
        vi.set_pending_sel(u64::MAX);
        if let Some(vc) = self.domains.get_mut(&d).and_then(|dd| dd.vcpus.get_mut(v)) {
            vc.vcpu_info = Some(new);
        }
        self.update_vcpu_time(d, v);
        Ok(())
    }
}

/// `sizeof(struct vcpu_info)` on x86-64.
pub const VCPU_INFO_BYTES: usize = core::mem::size_of::<hypercall_abi::shared_info::VcpuInfo>();
