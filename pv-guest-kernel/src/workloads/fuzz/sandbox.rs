//! The fuzzer's own corner of its address space, built before the first
//! call, so that hostile calls have real targets without pulling memory
//! from under the kernel:
//!
//! - L4 slot 81 (`BASE`): an L3, L2 and L1 of ours. `mmu_update` and
//!   `update_va_mapping` write only here (and into empty L4 slots), never
//!   the kernel's own mappings.
//! - Slot 82 (`ARGS_VA`): the argument pages the hypervisor reads and
//!   writes, then an unmapped hole, so an oversized count runs into a fault
//!   (`-EFAULT`) instead of into kernel memory. The grant table is mapped
//!   after the hole. Calls never touch slot 82's tables.
//! - A pool of spare frames: half read-only in the initial mapping (free to
//!   become page tables), half writable (data pages).

use hypercall_abi::grant::{GnttabSetupTable, GNTTABOP_setup_table};
use hypercall_abi::mm::{DOMID_SELF, PAGE_SIZE};
use hypercall_abi::{guest, nr, Errno};
use pv_rt::mm::Mm;

pub const BASE: u64 = 0x0000_2880_0000_0000;
pub const ARGS_VA: u64 = 0x0000_2900_0000_0000;
/// Argument pages: `ARGS_PAGES` mapped, then a hole.
pub const ARGS_PAGES: u64 = 4;
pub const ARGS_LEN: u64 = ARGS_PAGES * PAGE_SIZE;
/// Where the grant table is mapped (after the hole).
pub const GT_VA: u64 = ARGS_VA + 16 * PAGE_SIZE;
/// Empty L4 slots the fuzzer may write (above shared_info's, 96).
pub const L4_SLOT_FIRST: u64 = 97;
pub const L4_SLOT_LAST: u64 = 127;
pub const POOL: usize = 12;

pub struct Sandbox {
    pub l4: u64,
    pub l3: u64,
    pub l2: u64,
    pub l1: u64,
    /// Spare frames (mfns); `pool[..POOL / 2]` have read-only aliases.
    pub pool: [u64; POOL],
    pub shared_info: u64,
    pub grant: [u64; 2],
    /// The grant table is mapped writable at `GT_VA`.
    pub gt_mapped: bool,
    /// Our L4's hypervisor slots (256-271) as built: no call may change them.
    pub xen_slots: [u64; 16],
}

impl Sandbox {
    pub fn new(mm: &mut Mm) -> Result<Sandbox, Errno> {
        let si = pv_rt::start_info();
        mm.ensure_l1(BASE)?;
        let l4 = mm.l4_mfn();
        let l3 = mm.table_mfn(BASE, 3).ok_or(Errno::EINVAL)?;
        let l2 = mm.table_mfn(BASE, 2).ok_or(Errno::EINVAL)?;
        let l1 = mm.table_mfn(BASE, 1).ok_or(Errno::EINVAL)?;
        for i in 0..ARGS_PAGES {
            let pfn = mm.alloc_frame().ok_or(Errno::ENOMEM)?;
            // SAFETY: slot 82 is the fuzzer's; the frame is fresh.
            unsafe { mm.map(ARGS_VA + i * PAGE_SIZE, pfn, true)? };
        }
        let mut pool = [0u64; POOL];
        for (i, slot) in pool.iter_mut().enumerate() {
            let pfn = mm.alloc_frame_low().ok_or(Errno::ENOMEM)?;
            *slot = mm.p2m(pfn).ok_or(Errno::EINVAL)?;
            if i < POOL / 2 {
                // SAFETY: the frame is fresh: nothing writes through its alias.
                unsafe { mm.set_alias_writable(pfn, false)? };
            }
        }
        let mut grant = [0u64; 2];
        let mut op = GnttabSetupTable { dom: DOMID_SELF, nr_frames: 2, frame_list: grant.as_mut_ptr() as u64, ..Default::default() };
        // SAFETY: Xen reads `op` and writes two frame numbers into `grant`.
        let r = unsafe { guest::hypercall3(nr::GRANT_TABLE_OP, GNTTABOP_setup_table as u64, &mut op as *mut _ as u64, 1) };
        let mut gt_mapped = r == 0 && op.status == 0;
        if gt_mapped {
            for (i, &mfn) in grant.iter().enumerate() {
                let va = GT_VA + i as u64 * PAGE_SIZE;
                mm.ensure_l1(va)?;
                let pte = pv_rt::mm::pte::pte(mfn, pv_rt::mm::pte::LEAF_RW);
                // SAFETY: a fresh VA of slot 82, mapping our own grant frame.
                gt_mapped &= unsafe { guest::update_va_mapping(va, pte, hypercall_abi::mm::UVMF_INVLPG) } == 0;
            }
        }
        let mut xen_slots = [0u64; 16];
        for (i, e) in xen_slots.iter_mut().enumerate() {
            *e = mm.read_entry(l4, 256 + i).unwrap_or(0);
        }
        Ok(Sandbox { l4, l3, l2, l1, pool, shared_info: si.shared_info >> 12, grant, gt_mapped, xen_slots })
    }

    /// What a frame is to us, for the effect digest (frame numbers differ
    /// between hypervisors; these names do not).
    pub fn name_of(&self, mfn: u64) -> u64 {
        let named = [self.l4, self.l3, self.l2, self.l1, self.shared_info, self.grant[0], self.grant[1]];
        if let Some(i) = named.iter().position(|&m| m == mfn) {
            return 0x100 + i as u64;
        }
        if let Some(i) = self.pool.iter().position(|&m| m == mfn) {
            return 0x200 + i as u64;
        }
        0xfff
    }
}
