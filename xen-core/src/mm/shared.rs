//! Frames the hypervisor writes on a guest's behalf (Xen's
//! `share_xen_page_with_guest`): `shared_info`, grant-table frames, and any
//! later page the hypervisor itself fills while the guest runs.
//!
//! Such a frame belongs to its domain (the guest maps it, reads and writes
//! it) but holds a permanent `Writable` type reference from allocation until
//! the domain dies, so validation can never make it a page table or a
//! descriptor page (DESIGN.md invariant 6). Without that, a guest could pin
//! its `shared_info` as an L1 table, link it into an L2, and let the
//! hypervisor's own write (a #PF's CR2 into `vcpu_info.arch.cr2`, an event's
//! pending bit, a grant's `GTF_reading`) forge a writable mapping of one of
//! its page tables: the escape this type exists to rule out.
//!
//! A [`SharedPage`] is made only by [`FrameTable::alloc_shared`]; the
//! hypervisor's writes into guest memory outside `mm` go through it, so the
//! compiler shows that they land in a frame nobody can retype.
//!
//! [`FrameTable::alloc_shared`]: super::FrameTable::alloc_shared

use super::machine::MachineMemory;
use super::types::Mfn;

/// A frame shared with a guest that holds a permanent `Writable` type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SharedPage(Mfn);

impl SharedPage {
    /// Only the frame table, which takes the permanent type reference.
    pub(super) const fn new(mfn: Mfn) -> SharedPage {
        SharedPage(mfn)
    }

    pub const fn mfn(self) -> Mfn {
        self.0
    }

    pub fn read(self, mem: &impl MachineMemory, offset: usize, buf: &mut [u8]) {
        mem.read(self.0, offset, buf)
    }

    pub fn write(self, mem: &impl MachineMemory, offset: usize, data: &[u8]) {
        mem.write(self.0, offset, data)
    }

    pub fn read_u64(self, mem: &impl MachineMemory, index: usize) -> u64 {
        mem.read_u64(self.0, index)
    }

    pub fn write_u64(self, mem: &impl MachineMemory, index: usize, value: u64) {
        mem.write_u64(self.0, index, value)
    }
}

impl<M: MachineMemory> super::validate::Mm<'_, M> {
    /// Share one of `dom`'s own frames with the hypervisor for writing
    /// (`VCPUOP_register_vcpu_info`, Xen's `map_vcpu_info`): a general and
    /// a `Writable` type reference, held until [`unshare_guest_frame`], so
    /// the frame cannot become a page table or descriptor page while the
    /// hypervisor writes into it. `-EINVAL` for a frame that is not the
    /// domain's or cannot be typed writable, as Xen.
    ///
    /// [`unshare_guest_frame`]: super::validate::Mm::unshare_guest_frame
    pub fn share_guest_frame(&mut self, mfn: Mfn, dom: crate::domain::DomId) -> Result<SharedPage, hypercall_abi::errno::Errno> {
        self.get_page_and_type(mfn, dom, super::PageType::Writable).map_err(|_| hypercall_abi::errno::Errno::EINVAL)?;
        Ok(SharedPage::new(mfn))
    }

    /// Drop what [`share_guest_frame`] took.
    ///
    /// [`share_guest_frame`]: super::validate::Mm::share_guest_frame
    pub fn unshare_guest_frame(&mut self, page: SharedPage) {
        self.put_page_and_type(page.mfn());
    }
}
