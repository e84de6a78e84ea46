//! The PV MMU hypercalls: `mmu_update`, `update_va_mapping` (and its
//! foreign form), `mmuext_op`. All page-table changes a guest makes come
//! through here and through `mm::validate`.

use super::{ret, HcResult};
use crate::domain::DomId;
use crate::mm::pte::{entry_mfn, in_hypervisor_range, is_canonical, l1_index, l2_index, l3_index, l4_index, _PAGE_PRESENT};
use crate::mm::validate::Mm;
use crate::mm::{Mfn, PageType};
use crate::platform::Platform;
use crate::xen::Xen;
use hypercall_abi::errno::Errno;
use hypercall_abi::mm::{
    DOMID_IO, DOMID_SELF, DOMID_XEN, MMUEXT_CLEAR_PAGE, MMUEXT_COPY_PAGE, MMUEXT_FLUSH_CACHE, MMUEXT_FLUSH_CACHE_GLOBAL,
    MMUEXT_INVLPG_ALL, MMUEXT_INVLPG_LOCAL, MMUEXT_INVLPG_MULTI, MMUEXT_MARK_SUPER, MMUEXT_NEW_BASEPTR,
    MMUEXT_NEW_USER_BASEPTR, MMUEXT_PIN_L1_TABLE, MMUEXT_PIN_L2_TABLE, MMUEXT_PIN_L3_TABLE, MMUEXT_PIN_L4_TABLE,
    MMUEXT_SET_LDT, MMUEXT_TLB_FLUSH_ALL, MMUEXT_TLB_FLUSH_LOCAL, MMUEXT_TLB_FLUSH_MULTI, MMUEXT_UNMARK_SUPER,
    MMUEXT_UNPIN_TABLE, MMU_MACHPHYS_UPDATE, MMU_NORMAL_PT_UPDATE, MMU_PT_UPDATE_PRESERVE_AD, UVMF_ALL,
    UVMF_FLUSHTYPE_MASK, UVMF_INVLPG, UVMF_TLB_FLUSH,
};

use super::batch::MMU_UPDATE_PREEMPTED;
/// Entries handled per entry into the hypervisor before a continuation.
const BATCH_BUDGET: u64 = 1024;
/// Requests copied from the guest at once.
const CHUNK: usize = 8;

impl<P: Platform> Xen<P> {
    pub(crate) fn current_id(&self) -> Result<DomId, Errno> {
        self.current.map(|(d, _)| d).ok_or(Errno::ESRCH)
    }

    fn is_privileged(&self) -> bool {
        self.current_domain().is_some_and(|d| d.privileged)
    }

    /// A domain named by a guest: `DOMID_SELF` or its own id, or (for the
    /// privileged domain only) any existing domain (Xen's `get_pg_owner`).
    pub(crate) fn target_domain(&self, domid: u16) -> Result<DomId, Errno> {
        let cur = self.current_id()?;
        if domid == DOMID_SELF || domid == cur.0 {
            return Ok(cur);
        }
        if domid == DOMID_IO || domid == DOMID_XEN {
            // Mappings of device memory or Xen's heap on their owners' behalf
            // are not offered.
            return Err(if self.is_privileged() { Errno::EOPNOTSUPP } else { Errno::EPERM });
        }
        if !self.domains.contains_key(&DomId(domid)) {
            return Err(Errno::ESRCH);
        }
        if !self.is_privileged() {
            return Err(Errno::EPERM);
        }
        Ok(DomId(domid))
    }

    pub(crate) fn mm(&mut self) -> Mm<'_, P> {
        let slots = self.platform.hypervisor_l4_slots();
        let io_domain = self.domains.values().find(|d| d.privileged).map(|d| d.id);
        let mut mm = Mm::new(&self.platform, &mut self.frames, slots);
        mm.io_domain = io_domain;
        mm.iomem_end = self.iomem_end;
        mm
    }

    /// `mmu_update(reqs, count, pdone, foreigndom)`. `foreigndom`'s low 16
    /// bits name the owner of the frames being mapped; its high 16 bits,
    /// when non-zero, name (plus one) the owner of the tables being written.
    pub(super) fn do_mmu_update(&mut self, [reqs, count, pdone, foreigndom, _]: [u64; 5]) -> HcResult {
        self.guest_mem().ok_or(Errno::ESRCH)?;
        let pg_owner = self.target_domain(foreigndom as u16)?;
        let pt_owner = match (foreigndom >> 16) & 0xffff {
            0 => self.current_id()?,
            d => self.target_domain((d - 1) as u16)?,
        };
        // Requests are copied in a chunk at a time: one walk of the guest's
        // tables per chunk rather than two per request.
        let mut chunk = [0u8; 16 * CHUNK];
        let (mut have, mut at) = (0u64, 0u64);
        let total = count & 0xffff_ffff & !MMU_UPDATE_PREEMPTED;
        self.mmu_batch([reqs, count, pdone, foreigndom], 16, BATCH_BUDGET, |x, i| {
            if i == at + have {
                at = i;
                have = total.saturating_sub(i).min(CHUNK as u64);
                let g = x.guest_mem().ok_or(Errno::ESRCH)?;
                if g.copy_from_guest(reqs.wrapping_add(16 * i), &mut chunk[..16 * have as usize]).is_err() {
                    return Err(Errno::EFAULT);
                }
            }
            let k = 16 * (i - at) as usize;
            let word = |o: usize| u64::from_le_bytes(chunk[o..o + 8].try_into().unwrap_or([0; 8]));
            let (ptr, val) = (word(k), word(k + 8));
            x.mmu_update_one(ptr, val, pt_owner, pg_owner).inspect_err(|e| {
                crate::gdprintk!("d{}: mmu_update {:#x} <- {:#x} failed: {}", pt_owner.0, ptr, val, e.name());
            })
        })
    }

    fn mmu_update_one(&mut self, ptr: u64, val: u64, pt_owner: DomId, pg_owner: DomId) -> Result<(), Errno> {
        let cmd = ptr & 7;
        let mfn = Mfn(ptr >> 12);
        match cmd {
            MMU_NORMAL_PT_UPDATE | MMU_PT_UPDATE_PRESERVE_AD => {
                let index = ((ptr & 0xfff) >> 3) as usize;
                self.frames.get_page(mfn, pt_owner)?;
                let ty = self.frames.get(mfn).map(|pg| (pg.ty, pg.type_count));
                let r = match ty {
                    Some((t, n)) if t.is_page_table() && n > 0 => {
                        self.mm().mod_entry(mfn, index, val, pg_owner, cmd == MMU_PT_UPDATE_PRESERVE_AD)
                    }
                    // Not a page table: an ordinary write to a writable page,
                    // as Xen allows.
                    _ => {
                        let mut mm = self.mm();
                        mm.get_page_type(mfn, PageType::Writable).map(|_| {
                            mm.mem.write_u64(mfn, index, val);
                            mm.put_page_type(mfn);
                        })
                    }
                };
                self.frames.put_page(mfn);
                r
            }
            MMU_MACHPHYS_UPDATE => {
                self.frames.get_page(mfn, pg_owner)?;
                self.frames.set_m2p(mfn, val);
                self.frames.put_page(mfn);
                Ok(())
            }
            _ => Err(Errno::ENOSYS),
        }
    }

    /// The L1 table and index that map `va` in the current vCPU's tables.
    pub(crate) fn l1_slot_of(&self, va: u64) -> Result<(Mfn, usize), Errno> {
        if !is_canonical(va) || in_hypervisor_range(va) {
            return Err(Errno::EINVAL);
        }
        let (d, v) = self.current.ok_or(Errno::ESRCH)?;
        let mut table = self.domains.get(&d).and_then(|d| d.vcpus.get(v)).ok_or(Errno::ESRCH)?.cr3;
        for (level, index) in [(4u8, l4_index(va)), (3, l3_index(va)), (2, l2_index(va))] {
            let e = self.platform.read_u64(table, index);
            if e & _PAGE_PRESENT == 0 {
                crate::gdprintk!("d{}: no L1 for {:#x} (L{} entry not present)", d.0, va, level);
                return Err(Errno::EINVAL);
            }
            table = Mfn(entry_mfn(e));
        }
        Ok((table, l1_index(va)))
    }

    fn uvm(&mut self, va: u64, val: u64, flags: u64, pg_owner: DomId) -> HcResult {
        let (l1, index) = self.l1_slot_of(va)?;
        self.mm().mod_entry(l1, index, val, pg_owner, false)?;
        match flags & UVMF_FLUSHTYPE_MASK {
            UVMF_TLB_FLUSH => {
                self.check_vcpumask(flags)?;
                self.platform.flush_tlb();
            }
            UVMF_INVLPG => {
                self.check_vcpumask(flags)?;
                self.platform.invlpg(va);
            }
            _ => {}
        }
        ret(0)
    }

    /// With `UVMF_MULTI`, the flags carry a pointer to a vCPU bitmap. One
    /// physical CPU runs everything, so a local flush serves every vCPU; the
    /// pointer must still be readable.
    fn check_vcpumask(&self, flags: u64) -> Result<(), Errno> {
        let ptr = flags & !(UVMF_FLUSHTYPE_MASK | UVMF_ALL);
        if ptr != 0 {
            self.guest_mem().ok_or(Errno::ESRCH)?.read_u64(ptr)?;
        }
        Ok(())
    }

    pub(super) fn do_update_va_mapping(&mut self, [va, val, flags, ..]: [u64; 5]) -> HcResult {
        let me = self.current_id()?;
        self.uvm(va, val, flags, me)
    }

    pub(super) fn do_update_va_mapping_otherdomain(&mut self, [va, val, flags, domid, _]: [u64; 5]) -> HcResult {
        let owner = self.target_domain(domid as u16)?;
        self.uvm(va, val, flags, owner)
    }

    /// `mmuext_op(ops, count, pdone, foreigndom)`.
    pub(super) fn do_mmuext_op(&mut self, [ops, count, pdone, foreigndom, _]: [u64; 5]) -> HcResult {
        let pg_owner = self.target_domain(foreigndom as u16)?;
        self.mmu_batch([ops, count, pdone, foreigndom], 24, BATCH_BUDGET, |x, i| {
            let g = x.guest_mem().ok_or(Errno::ESRCH)?;
            let base = ops.wrapping_add(24 * i);
            let op = match (g.read_u32(base), g.read_u64(base.wrapping_add(8)), g.read_u64(base.wrapping_add(16))) {
                (Ok(c), Ok(a1), Ok(a2)) => (c, a1, a2),
                _ => return Err(Errno::EFAULT),
            };
            x.mmuext_one(op.0, op.1, op.2, pg_owner).inspect_err(|e| {
                crate::gdprintk!("{}: mmuext_op cmd {} ({:#x}, {:#x}) failed: {}", crate::log::VcpuName(x.current), op.0, op.1, op.2, e.name());
            })
        })
    }

    fn mmuext_one(&mut self, cmd: u32, arg1: u64, arg2: u64, pg_owner: DomId) -> Result<(), Errno> {
        let me = self.current_id()?;
        match cmd {
            MMUEXT_PIN_L1_TABLE | MMUEXT_PIN_L2_TABLE | MMUEXT_PIN_L3_TABLE | MMUEXT_PIN_L4_TABLE => {
                let ty = PageType::table_level((cmd - MMUEXT_PIN_L1_TABLE + 1) as u8);
                self.mm().pin(Mfn(arg1), pg_owner, ty)
            }
            MMUEXT_UNPIN_TABLE => self.mm().unpin(Mfn(arg1), pg_owner),
            MMUEXT_NEW_BASEPTR => {
                if pg_owner != me {
                    return Err(Errno::EINVAL);
                }
                self.new_guest_cr3(Mfn(arg1), false)
            }
            MMUEXT_NEW_USER_BASEPTR => {
                if pg_owner != me {
                    return Err(Errno::EINVAL);
                }
                self.new_guest_cr3(Mfn(arg1), true)
            }
            MMUEXT_TLB_FLUSH_LOCAL | MMUEXT_TLB_FLUSH_ALL => {
                self.platform.flush_tlb();
                Ok(())
            }
            MMUEXT_TLB_FLUSH_MULTI => {
                self.guest_mem().ok_or(Errno::ESRCH)?.read_u64(arg2)?;
                self.platform.flush_tlb();
                Ok(())
            }
            MMUEXT_INVLPG_LOCAL | MMUEXT_INVLPG_ALL | MMUEXT_INVLPG_MULTI => {
                if cmd == MMUEXT_INVLPG_MULTI {
                    self.guest_mem().ok_or(Errno::ESRCH)?.read_u64(arg2)?;
                }
                if is_canonical(arg1) {
                    self.platform.invlpg(arg1);
                }
                Ok(())
            }
            MMUEXT_FLUSH_CACHE | MMUEXT_FLUSH_CACHE_GLOBAL => {
                if pg_owner != me {
                    return Err(Errno::EPERM);
                }
                if !self.is_privileged() {
                    return Err(Errno::EACCES);
                }
                self.platform.flush_cache();
                Ok(())
            }
            MMUEXT_CLEAR_PAGE => {
                let mfn = Mfn(arg1);
                let mut mm = self.mm();
                mm.get_page_and_type(mfn, me, PageType::Writable)?;
                mm.mem.zero_frame(mfn);
                mm.put_page_and_type(mfn);
                Ok(())
            }
            MMUEXT_COPY_PAGE => {
                let (dst, src) = (Mfn(arg1), Mfn(arg2));
                let mut mm = self.mm();
                mm.ft.get_page(src, me)?;
                if let Err(e) = mm.get_page_and_type(dst, me, PageType::Writable) {
                    mm.ft.put_page(src);
                    return Err(e);
                }
                mm.mem.copy(dst, 0, src, 0, 4096);
                mm.put_page_and_type(dst);
                mm.ft.put_page(src);
                Ok(())
            }
            // Xen's checks first; then an empty LDT (what Linux sets at boot
            // and for every process that never calls modify_ldt) is the
            // only kind xen-core has: a non-empty one is not supported.
            MMUEXT_SET_LDT => {
                if arg1 & 0xfff != 0 || !crate::mm::pte::guest_range_ok(arg1, arg2.saturating_mul(8)) || arg2 > 8192 {
                    Err(Errno::EINVAL)
                } else if arg2 == 0 {
                    Ok(())
                } else {
                    Err(Errno::EOPNOTSUPP)
                }
            }
            // PV superpages are not supported (see mm::validate).
            MMUEXT_MARK_SUPER | MMUEXT_UNMARK_SUPER => Err(Errno::EOPNOTSUPP),
            _ => Err(Errno::ENOSYS),
        }
    }

    /// Switch the current vCPU's kernel (or user) top-level table (Xen's
    /// `new_guest_cr3`): the new L4 is validated and referenced before the
    /// old one is let go.
    pub(crate) fn new_guest_cr3(&mut self, mfn: Mfn, user: bool) -> Result<(), Errno> {
        let (d, v) = self.current.ok_or(Errno::ESRCH)?;
        if user && mfn.0 == 0 {
            let old = self.domains.get_mut(&d).and_then(|d| d.vcpus.get_mut(v)).and_then(|vc| vc.user_cr3.take());
            if let Some(old) = old {
                self.mm().put_page_and_type(old);
            }
            return Ok(());
        }
        self.mm().get_page_and_type(mfn, d, PageType::L4)?;
        let vc = self.domains.get_mut(&d).and_then(|d| d.vcpus.get_mut(v)).ok_or(Errno::ESRCH)?;
        let old = if user { vc.user_cr3.replace(mfn) } else { Some(core::mem::replace(&mut vc.cr3, mfn)) };
        if let Some(old) = old {
            self.mm().put_page_and_type(old);
        }
        Ok(())
    }
}
