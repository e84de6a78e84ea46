//! Where each vCPU's `vcpu_info` lives, and `VCPUOP_register_vcpu_info`
//! (Xen's `map_vcpu_info`): a guest may move it out of `shared_info` into a
//! page of its own (Linux does, for every vCPU, and panics if refused).

use crate::domain::{DomId, Domain};
use crate::mm::{Mfn, PageType};
use crate::platform::Platform;
use crate::xen::Xen;
use hypercall_abi::errno::Errno;

/// `sizeof(struct vcpu_info)` on x86-64.
pub const VCPU_INFO_BYTES: usize = 64;
const PENDING: usize = 0;
const PENDING_SEL: usize = 8;

impl Domain {
    /// (frame, byte offset) of vCPU `v`'s `vcpu_info`: where it registered
    /// one, else its slot in `shared_info` (which has 32).
    pub fn vcpu_info_at(&self, v: usize) -> Option<(Mfn, usize)> {
        match self.vcpus.get(v)?.vcpu_info {
            Some(loc) => Some(loc),
            None => (v < 32).then_some((self.shared_info, v * VCPU_INFO_BYTES)),
        }
    }
}

impl<P: Platform> Xen<P> {
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
        let old = dom.vcpu_info_at(v);
        let mfn = Mfn(mfn);
        self.mm().get_page_and_type(mfn, d, PageType::Writable).map_err(|_| Errno::EINVAL)?;
        let off = offset as usize;
        let mut info = [0u8; VCPU_INFO_BYTES];
        if let Some((m, o)) = old {
            self.platform.read(m, o, &mut info);
        }
        info[PENDING] = 1;
        info[PENDING_SEL..PENDING_SEL + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        self.platform.write(mfn, off, &info);
        if let Some(vc) = self.domains.get_mut(&d).and_then(|dd| dd.vcpus.get_mut(v)) {
            vc.vcpu_info = Some((mfn, off));
        }
        self.update_vcpu_time(d, v);
        Ok(())
    }
}
