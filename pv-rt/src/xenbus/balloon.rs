//! The balloon driver (Linux's `drivers/xen/balloon.c` and
//! `xen-balloon.c`): the toolstack writes the memory it wants the guest to
//! have to `memory/target` (KiB; `xl mem-set`), the guest watches it and
//! gives frames back with `XENMEM_decrease_reservation` or takes new ones
//! with `XENMEM_increase_reservation`, which the hypervisor grants up to the
//! domain's limit (`XEN_DOMCTL_max_mem`, `xl mem-max`).
//!
//! Free frames past the initial mapping go first (the frame allocator's
//! high pool: mapped nowhere), then free frames of the initial mapping,
//! whose alias is unmapped first (a frame still mapped could not be freed).
//! A frame given back keeps no P2M entry (`INVALID_MFN`); deflating refills
//! those pfns, records the new frame in the P2M and the M2P, maps the
//! alias again for a low one, and frees the pfn to the allocator again.

use hypercall_abi::guest;
use hypercall_abi::memory::{
    XenMemoryReservation, XENMEM_current_reservation, XENMEM_decrease_reservation, XENMEM_increase_reservation,
};
use hypercall_abi::mm::{MmuUpdate, DOMID_SELF, MMU_MACHPHYS_UPDATE, UVMF_INVLPG};
use hypercall_abi::Errno;

use super::{Xenbus, XsError};
use crate::mm::pte::{pte, LEAF_RW};
use crate::mm::{Mm, INVALID_MFN};

const TOKEN: &str = "memory/target";
/// Frames per reservation call.
const BATCH: usize = 64;

/// The guest's pages as the hypervisor counts them.
pub fn current_pages() -> Result<u64, Errno> {
    let domid = DOMID_SELF;
    // SAFETY: the hypervisor reads the domid at that address.
    let r = unsafe { guest::memory_op(XENMEM_current_reservation, &domid as *const u16 as *mut u8) };
    crate::mm::check(r).map(|n| n as u64)
}

/// Sets the watch on `memory/target`.
pub fn listen(xs: &mut Xenbus) -> Result<(), XsError> {
    xs.watch("memory/target", TOKEN)
}

/// `memory/target` in KiB, if it is there and a number.
pub fn target_kib(xs: &mut Xenbus) -> Result<Option<u64>, XsError> {
    match xs.read(0, "memory/target") {
        Ok(v) => Ok(core::str::from_utf8(&v).ok().and_then(|s| s.trim().parse().ok())),
        Err(XsError::Store(ref s)) if s == "ENOENT" => Ok(None),
        Err(e) => Err(e),
    }
}

/// Sleeps on the watch until `memory/target` changes (or system time
/// `deadline`); whether it fired.
pub fn wait(xs: &mut Xenbus, deadline: u64) -> bool {
    matches!(xs.wait_watch(deadline), Some((_, ref t)) if t.as_str() == TOKEN)
}

fn reservation(op: u32, frames: &mut [u64]) -> Result<usize, Errno> {
    let mut res = XenMemoryReservation {
        extent_start: frames.as_mut_ptr() as u64,
        nr_extents: frames.len() as u64,
        extent_order: 0,
        mem_flags: 0,
        domid: DOMID_SELF,
        _pad: [0; 3],
    };
    // SAFETY: `frames` and `res` outlive the call; for a decrease the
    // frames are ours and mapped nowhere, for an increase the hypervisor
    // writes new frame numbers into `frames`.
    let r = unsafe { guest::memory_op(op, &mut res as *mut _ as *mut u8) };
    crate::mm::check(r).map(|n| (n as usize).min(frames.len()))
}

/// Gives frames back or takes new ones until the guest holds `target`
/// pages, as far as it can (no free high frame left to give; the
/// hypervisor's limit reached). Returns the pages held afterwards.
pub fn balloon_to(mm: &mut Mm, target: u64) -> Result<u64, Errno> {
    let mut now = current_pages()?;
    while now > target {
        let mut pfns = [0u64; BATCH];
        let mut mfns = [0u64; BATCH];
        let want = ((now - target) as usize).min(BATCH);
        let mut n = 0;
        while n < want {
            // High frames first; `alloc_frame` falls back to low ones.
            let Some(pfn) = mm.alloc_frame() else { break };
            let Some(mfn) = mm.p2m(pfn) else { continue };
            if let Some(va) = mm.alias(pfn) {
                // SAFETY: a free frame: nothing uses its alias.
                if crate::mm::check(unsafe { guest::update_va_mapping(va, 0, UVMF_INVLPG) }).is_err() {
                    mm.free_frame(pfn);
                    break;
                }
            }
            pfns[n] = pfn;
            mfns[n] = mfn;
            n += 1;
        }
        if n == 0 {
            break;
        }
        let done = reservation(XENMEM_decrease_reservation, &mut mfns[..n])?;
        for (i, &pfn) in pfns[..n].iter().enumerate() {
            if i < done {
                mm.set_p2m(pfn, INVALID_MFN);
            } else {
                // Still ours: its alias back as it was, then free again.
                remap_alias(mm, pfn, mfns[i])?;
                mm.free_frame(pfn);
            }
        }
        now -= done as u64;
        if done < n {
            break;
        }
    }
    let mut next_pfn = 0;
    while now < target {
        let mut pfns = [0u64; BATCH];
        let want = ((target - now) as usize).min(BATCH);
        let mut n = 0;
        while n < want && next_pfn < mm.nr_pages() {
            // Every pfn had a frame at boot: one without is ballooned out.
            if mm.p2m(next_pfn).is_none() {
                pfns[n] = next_pfn;
                n += 1;
            }
            next_pfn += 1;
        }
        if n == 0 {
            // Nothing ballooned out is left to refill (the guest cannot
            // grow past the pages it booted with).
            break;
        }
        let mut mfns = [0u64; BATCH];
        let done = reservation(XENMEM_increase_reservation, &mut mfns[..n])?;
        for i in 0..done {
            let (pfn, mfn) = (pfns[i], mfns[i]);
            mm.set_p2m(pfn, mfn);
            let req = MmuUpdate { ptr: (mfn << 12) | MMU_MACHPHYS_UPDATE, val: pfn };
            // SAFETY: M2P bookkeeping for a frame just given to us; no
            // mapping changes.
            crate::mm::check(unsafe { guest::mmu_update(&[req], None, DOMID_SELF as u32) })?;
            remap_alias(mm, pfn, mfn)?;
            mm.free_frame(pfn);
        }
        now += done as u64;
        if done < n {
            // The hypervisor's limit (max_mem).
            break;
        }
    }
    Ok(now)
}

/// Maps a low pfn's alias in the initial mapping to `mfn`, writable, as the
/// frame allocator expects a free low frame (nothing for a high one).
fn remap_alias(mm: &Mm, pfn: u64, mfn: u64) -> Result<(), Errno> {
    let Some(va) = mm.alias(pfn) else { return Ok(()) };
    // SAFETY: the alias mapped nothing since the frame went; it maps our
    // own (new) frame now.
    crate::mm::check(unsafe { guest::update_va_mapping(va, pte(mfn, LEAF_RW), UVMF_INVLPG) }).map(drop)
}
