//! Grant tables, version 1, on the guest side (`grant_table.h`), the way
//! Linux's `drivers/xen/grant-table.c` does it for a PV guest.
//!
//! - [`GrantTable::setup`]: `GNTTABOP_setup_table` for our own domain. Xen
//!   answers with the machine frames of the table, which a PV guest maps
//!   itself, writable: we write our entries there, Xen writes the
//!   `GTF_reading`/`GTF_writing` bits while a peer uses one.
//! - [`GrantTable::grant`] fills an entry: frame and domid first, the flags
//!   last, after a write barrier, because Xen may read an entry whose flags
//!   say `GTF_permit_access` at any moment.
//! - [`GrantTable::end`] revokes a grant, but only while no peer uses it
//!   (Linux's `gnttab_end_foreign_access_ref`): a compare-and-exchange of
//!   the flags to 0 that gives up when `GTF_reading|GTF_writing` are set.
//! - [`map`], [`unmap`], [`copy`], [`query_size`]: one operation each, with
//!   the per-operation `GNTST_*` status turned into [`GnttabError`].
//!
//! Xen's checks (`xen/common/grant_table.c`): a mapping of an entry whose
//! type is not `GTF_permit_access`, whose domid is not the mapper's, or a
//! writable mapping of a `GTF_readonly` entry, fails with
//! `GNTST_general_error`; a reference past the table with
//! `GNTST_bad_gntref`; an unknown domain with `GNTST_bad_domain`.

// Xen's constant names (`GNTST_okay`) in match patterns.
#![allow(non_upper_case_globals)]

use core::fmt;
use core::ptr;
use core::sync::atomic::{fence, AtomicU16, Ordering};

use hypercall_abi::grant::*;
use hypercall_abi::mm::DOMID_SELF;
use hypercall_abi::{guest, nr, DomId, Errno};

use crate::mm::pte::{l1_table_offset, pte, LEAF_RW};
use crate::mm::{check, Mm};

/// A grant reference: an index into the granting domain's table.
pub type GrantRef = u32;

/// Frames [`GrantTable::setup`] asks for at most.
pub const MAX_FRAMES: usize = 4;

/// Entries of a v1 table per frame (8 bytes each).
pub const ENTRIES_PER_FRAME: u32 = 512;

/// The first reference a guest may use: Xen's toolstack reserves 0-7
/// (`GNTTAB_RESERVED_CONSOLE`, `GNTTAB_RESERVED_XENSTORE`, ...).
pub const FIRST_FREE_REF: GrantRef = GNTTAB_NR_RESERVED_ENTRIES;

/// How a grant-table operation failed: the hypercall itself, or the
/// operation's own `GNTST_*` status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GnttabError {
    Hypercall(Errno),
    Status(i16),
}

impl GnttabError {
    /// The status as a hypercall-free number for comparisons: the `GNTST_*`
    /// value, or 0 when the hypercall failed before any operation ran.
    pub fn status(self) -> i16 {
        match self {
            GnttabError::Status(s) => s,
            GnttabError::Hypercall(_) => 0,
        }
    }
}

impl fmt::Display for GnttabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GnttabError::Hypercall(e) => write!(f, "grant_table_op failed: {}", e),
            GnttabError::Status(s) => write!(f, "{}", Gntst(*s)),
        }
    }
}

/// A `GNTST_*` status printed by its name in `grant_table.h`
/// (`GNTST_general_error`), so check lines read like the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gntst(pub i16);

impl Gntst {
    /// The status of an operation's result: `GNTST_okay` for success.
    pub fn of<T>(r: &Result<T, GnttabError>) -> Gntst {
        Gntst(match r {
            Ok(_) => GNTST_okay,
            Err(e) => e.status(),
        })
    }
}

impl fmt::Display for Gntst {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 14] = [
            "GNTST_okay",
            "GNTST_general_error",
            "GNTST_bad_domain",
            "GNTST_bad_gntref",
            "GNTST_bad_handle",
            "GNTST_bad_virt_addr",
            "GNTST_bad_dev_addr",
            "GNTST_no_device_space",
            "GNTST_permission_denied",
            "GNTST_bad_page",
            "GNTST_bad_copy_arg",
            "GNTST_address_too_big",
            "GNTST_eagain",
            "GNTST_no_space",
        ];
        match NAMES.get(self.0.unsigned_abs() as usize) {
            Some(name) if self.0 <= 0 => f.write_str(name),
            _ => write!(f, "GNTST?({})", self.0),
        }
    }
}

/// `grant_table_op(cmd, ops, count)`.
///
/// # Safety
/// `ops` must point at `count` structures of the kind `cmd` reads and
/// writes; what they ask for (a mapping at an address, a copy into a frame)
/// must not pull memory from under Rust code.
pub unsafe fn grant_table_op<T>(cmd: u32, ops: *mut T, count: u32) -> i64 {
    // SAFETY: the caller vouches for the operations.
    unsafe { guest::hypercall3(nr::GRANT_TABLE_OP, cmd as u64, ops as u64, count as u64) }
}

/// Runs one operation and turns hypercall error or status into a `Result`.
///
/// # Safety
/// As [`grant_table_op`], for the single operation `op`.
unsafe fn one<T>(cmd: u32, op: &mut T, status: impl Fn(&T) -> i16) -> Result<(), GnttabError> {
    // SAFETY: the caller vouches for `op`.
    check(unsafe { grant_table_op(cmd, op as *mut T, 1) }).map_err(GnttabError::Hypercall)?;
    match status(op) {
        GNTST_okay => Ok(()),
        s => Err(GnttabError::Status(s)),
    }
}

/// `GNTTABOP_query_size` for `dom` (`DOMID_SELF` for ours): the table's
/// current and largest number of frames.
pub fn query_size(dom: DomId) -> Result<(u32, u32), GnttabError> {
    let mut q = GnttabQuerySize { dom, ..Default::default() };
    // SAFETY: Xen only writes the structure.
    unsafe { one(GNTTABOP_query_size, &mut q, |q| q.status)? };
    Ok((q.nr_frames, q.max_nr_frames))
}

/// `GNTTABOP_map_grant_ref` with `GNTMAP_host_map`: maps entry `gref` of
/// domain `dom`'s table at our page `va`, read-only or writable. Returns the
/// handle for [`unmap`]. The L1 table that maps `va` must exist (Xen writes
/// the entry itself and fails with `GNTST_general_error` otherwise).
///
/// # Safety
/// Whatever `va` mapped is gone; nothing may use it. The page becomes
/// memory shared with another domain, which may change it at any time.
pub unsafe fn map(dom: DomId, gref: GrantRef, va: u64, readonly: bool) -> Result<u32, GnttabError> {
    let flags = GNTMAP_host_map | if readonly { GNTMAP_readonly } else { 0 };
    let mut op = GnttabMapGrantRef { host_addr: va, flags, r#ref: gref, dom, ..Default::default() };
    // SAFETY: the caller gives up `va`.
    unsafe { one(GNTTABOP_map_grant_ref, &mut op, |o| o.status)? };
    Ok(op.handle)
}

/// `GNTTABOP_unmap_grant_ref` of the mapping `handle` at `va`: Xen clears
/// our entry for `va` and drops the granter's `GTF_reading`/`GTF_writing`
/// once no mapping of the entry remains.
///
/// # Safety
/// Nothing may use the page at `va` any more.
pub unsafe fn unmap(va: u64, handle: u32) -> Result<(), GnttabError> {
    let mut op = GnttabUnmapGrantRef { host_addr: va, dev_bus_addr: 0, handle, ..Default::default() };
    // SAFETY: the caller gives the page up.
    unsafe { one(GNTTABOP_unmap_grant_ref, &mut op, |o| o.status) }
}

/// `GNTTABOP_copy` of the operations in `ops`, in one hypercall. The
/// hypercall's own error is returned; each operation's `status` says how it
/// went.
///
/// # Safety
/// Each destination frame is written behind Rust's back: none may hold
/// memory Rust code uses as something else.
pub unsafe fn copy(ops: &mut [GnttabCopy]) -> Result<(), Errno> {
    // SAFETY: the caller vouches for the destinations.
    check(unsafe { grant_table_op(GNTTABOP_copy, ops.as_mut_ptr(), ops.len() as u32) }).map(drop)
}

/// Our own grant table, mapped.
pub struct GrantTable {
    entries: *mut GrantEntryV1,
    nr_entries: u32,
}

impl GrantTable {
    /// `GNTTABOP_setup_table` of `nr_frames` frames for our domain, mapped
    /// writable at `va`, `va + 4096`, ...
    ///
    /// # Safety
    /// The pages at `va` (page-aligned, outside the initial mapping) are
    /// ours to take: whatever they mapped is gone and nothing else may use
    /// them afterwards.
    pub unsafe fn setup(mm: &mut Mm, va: u64, nr_frames: u32) -> Result<GrantTable, GnttabError> {
        if nr_frames == 0 || nr_frames as usize > MAX_FRAMES {
            return Err(GnttabError::Hypercall(Errno::EINVAL));
        }
        let mut frames = [0u64; MAX_FRAMES];
        let mut op = GnttabSetupTable {
            dom: DOMID_SELF,
            nr_frames,
            frame_list: frames.as_mut_ptr() as u64,
            ..Default::default()
        };
        // SAFETY: Xen writes `nr_frames` frame numbers into `frames`, which
        // holds MAX_FRAMES of them.
        unsafe { one(GNTTABOP_setup_table, &mut op, |o| o.status)? };
        for (i, &mfn) in frames[..nr_frames as usize].iter().enumerate() {
            let page = va + i as u64 * 4096;
            let l1 = mm.ensure_l1(page).map_err(GnttabError::Hypercall)?;
            // The frames are Xen's pages shared with us, not in our P2M: the
            // entry names the machine frame directly.
            // SAFETY: the caller gives up `va`; nothing refers into the page.
            unsafe { mm.write_entry(l1, l1_table_offset(page), pte(mfn, LEAF_RW)) }.map_err(GnttabError::Hypercall)?;
        }
        Ok(GrantTable { entries: va as *mut GrantEntryV1, nr_entries: nr_frames * ENTRIES_PER_FRAME })
    }

    pub fn nr_entries(&self) -> u32 {
        self.nr_entries
    }

    fn entry(&self, gref: GrantRef) -> Result<*mut GrantEntryV1, GnttabError> {
        if gref >= self.nr_entries {
            return Err(GnttabError::Status(GNTST_bad_gntref));
        }
        // SAFETY: in bounds of the mapped table; only the address is made.
        Ok(unsafe { self.entries.add(gref as usize) })
    }

    fn flags_atomic(&self, gref: GrantRef) -> Result<&AtomicU16, GnttabError> {
        let e = self.entry(gref)?;
        // SAFETY: `flags` is an aligned u16 of the mapped table, which Xen
        // changes with locked instructions; we do the same through an atomic.
        Ok(unsafe { AtomicU16::from_ptr(ptr::addr_of_mut!((*e).flags)) })
    }

    /// Lets domain `domid` map or copy machine frame `mfn` through entry
    /// `gref`, read-only or not.
    pub fn grant(&self, gref: GrantRef, domid: DomId, mfn: u64, readonly: bool) -> Result<(), GnttabError> {
        let frame = u32::try_from(mfn).map_err(|_| GnttabError::Status(GNTST_address_too_big))?;
        let e = self.entry(gref)?;
        // SAFETY: the entry lies in our mapped table; Xen reads it
        // concurrently, so the writes are volatile.
        unsafe {
            ptr::write_volatile(ptr::addr_of_mut!((*e).domid), domid);
            ptr::write_volatile(ptr::addr_of_mut!((*e).frame), frame);
        }
        // Frame and domid before the flags that make them valid (wmb).
        fence(Ordering::Release);
        let flags = GTF_permit_access | if readonly { GTF_readonly } else { 0 };
        self.flags_atomic(gref)?.store(flags, Ordering::Release);
        Ok(())
    }

    /// The entry's flags as Xen left them (`GTF_reading`/`GTF_writing` while
    /// mapped or being copied).
    pub fn flags(&self, gref: GrantRef) -> Result<u16, GnttabError> {
        Ok(self.flags_atomic(gref)?.load(Ordering::Acquire))
    }

    /// Revokes grant `gref`: `Err(GTF_reading|GTF_writing bits)` while a peer
    /// still uses it, in which case the grant stays.
    pub fn end(&self, gref: GrantRef) -> Result<(), u16> {
        let flags = self.flags_atomic(gref).map_err(|_| 0u16)?;
        let mut cur = flags.load(Ordering::Acquire);
        loop {
            if cur & (GTF_reading | GTF_writing) != 0 {
                return Err(cur & (GTF_reading | GTF_writing));
            }
            match flags.compare_exchange(cur, 0, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(()),
                Err(now) => cur = now,
            }
        }
    }
}
