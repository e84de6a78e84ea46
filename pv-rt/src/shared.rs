//! The shared_info page: per-vCPU event state (`vcpu_info`), the faulting
//! address of the last page fault Xen bounced to us (`vcpu_info.arch.cr2`),
//! time.
//!
//! start_info gives only its machine address; the kernel maps it where it
//! likes ([`map`]). Xen writes the page at any time, so every access is
//! volatile.

use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};

use hypercall_abi::guest;
use hypercall_abi::mm::UVMF_INVLPG;
use hypercall_abi::shared_info::{SharedInfo, VcpuInfo, XEN_LEGACY_MAX_VCPUS};
use hypercall_abi::Errno;

use crate::mm::pte::{pte, LEAF_RW};
use crate::mm::{check, Mm};

static SHARED_INFO: AtomicPtr<SharedInfo> = AtomicPtr::new(ptr::null_mut());

/// Maps the shared_info page writable at `va` (page-aligned, outside the
/// initial mapping), making the page tables on the way.
///
/// # Safety
/// Whatever `va` mapped is gone; nothing else may use that page.
pub unsafe fn map(mm: &mut Mm, va: u64) -> Result<(), Errno> {
    let maddr = crate::start_info().shared_info;
    mm.ensure_l1(va)?;
    // The frame is not in our P2M (it is Xen's page, given to the domain),
    // so the entry names the machine frame directly; written with
    // update_va_mapping, as Linux maps it at a fixmap slot.
    // SAFETY: the caller gives up `va`; the new mapping is a page no Rust
    // code has references into yet.
    check(unsafe { guest::update_va_mapping(va, pte(maddr >> 12, LEAF_RW), UVMF_INVLPG) })?;
    SHARED_INFO.store(va as *mut SharedInfo, Ordering::Release);
    Ok(())
}

/// The mapped page, if [`map`] ran.
pub fn get() -> Option<*mut SharedInfo> {
    let p = SHARED_INFO.load(Ordering::Acquire);
    (!p.is_null()).then_some(p)
}

fn vcpu_info(vcpu: usize) -> *mut VcpuInfo {
    assert!(vcpu < XEN_LEGACY_MAX_VCPUS, "vcpu_info of vCPU {vcpu} is not in shared_info");
    let si = get().expect("shared_info used before pv_rt::shared::map");
    // SAFETY: `si` maps the whole page, which holds XEN_LEGACY_MAX_VCPUS
    // vcpu_info entries; only the address is computed here.
    unsafe { &raw mut (*si).vcpu_info[vcpu] }
}

/// `vcpu_info[vcpu].arch.cr2`: where the last page fault delivered to that
/// vCPU happened.
pub fn cr2(vcpu: usize) -> u64 {
    // SAFETY: a mapped, aligned field that Xen may change at any time.
    unsafe { ptr::read_volatile(&raw const (*vcpu_info(vcpu)).arch.cr2) }
}

/// `vcpu_info[vcpu].evtchn_upcall_mask`: non-zero while events are masked
/// (the PV kernel's "interrupts off").
pub fn upcall_mask(vcpu: usize) -> u8 {
    // SAFETY: as in `cr2`.
    unsafe { ptr::read_volatile(&raw const (*vcpu_info(vcpu)).evtchn_upcall_mask) }
}

pub fn set_upcall_mask(vcpu: usize, mask: u8) {
    // SAFETY: the guest owns this byte (Xen only reads it, and writes it when
    // delivering an event or an iret, which cannot interleave with us on
    // this vCPU).
    unsafe { ptr::write_volatile(&raw mut (*vcpu_info(vcpu)).evtchn_upcall_mask, mask) }
}

/// `vcpu_info[vcpu].evtchn_upcall_pending`.
pub fn upcall_pending(vcpu: usize) -> u8 {
    // SAFETY: as in `cr2`.
    unsafe { ptr::read_volatile(&raw const (*vcpu_info(vcpu)).evtchn_upcall_pending) }
}

/// Clears `evtchn_upcall_pending` of `vcpu`, as an upcall handler does
/// before it scans the pending bits.
pub fn clear_upcall_pending(vcpu: usize) {
    // SAFETY: the guest clears this byte, Xen sets it; a lost set is
    // re-signalled by the pending bits, which we do not clear.
    unsafe { ptr::write_volatile(&raw mut (*vcpu_info(vcpu)).evtchn_upcall_pending, 0) }
}
