//! Grant tables, version 1 (Xen's `common/grant_table.c`): how a domain
//! lets another map or copy one of its pages.
//!
//! The granter writes `grant_entry_v1 {flags, domid, frame}` entries into
//! its grant frames (pages it owns and maps, handed out by
//! `GNTTABOP_setup_table`). A mapping domain names (granter, ref); the
//! hypervisor checks the entry (`GTF_permit_access`, the right domid, no
//! write to a `GTF_readonly` grant), sets `GTF_reading`/`GTF_writing` so the
//! granter can see its page is in use, takes references on the frame in the
//! frame table (a writable grant also a `Writable` type reference, so a
//! granted page cannot become a page table under a mapping, nor be freed),
//! and installs the PTE itself, marked as a grant mapping.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

use crate::domain::DomId;
use crate::mm::{Mfn, SharedPage};

/// Grant frames a domain may have (Xen's default `max_grant_frames`).
pub const MAX_GRANT_FRAMES: u32 = 32;
pub const ENTRIES_PER_FRAME: u32 = 512;

/// Grant mappings a domain may hold at once: Xen's default
/// `max_maptrack_frames` (1024) of 256 handles each. Without a bound a
/// guest mapping one of its own grants into every free L1 slot grows the
/// hypervisor's heap until an allocation fails.
pub const MAX_MAPTRACK: usize = 1024 * 256;

/// Software bit 62 of a PTE: the hypervisor installed this entry for a
/// grant mapping. Guests can never set it (it is outside the bits
/// `mm::validate` accepts), so no guest can forge one.
pub const PTE_GRANT_MAPPING: u64 = 1 << 62;

/// One active use of a granted entry (Xen's `active_grant_entry`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Active {
    pub frame: u64,
    pub readers: u32,
    pub writers: u32,
}

/// A mapping this domain made of someone's grant (Xen's maptrack entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapTrack {
    pub granter: DomId,
    pub gref: u32,
    pub frame: Mfn,
    pub host_addr: u64,
    pub readonly: bool,
    /// Where the PTE is: the L1 table and index.
    pub l1: Mfn,
    pub index: usize,
}

#[derive(Clone, Debug, Default)]
pub struct GrantTable {
    /// The shared frames holding this domain's grant entries.
    /// The hypervisor writes their `GTF_reading`/`GTF_writing` bits, so
    /// they are typed writable for good.
    pub frames: Vec<SharedPage>,
    /// Entries of this domain's table currently mapped by others.
    pub active: BTreeMap<u32, Active>,
    /// Mappings this domain holds, by handle.
    pub maptrack: Vec<Option<MapTrack>>,
    /// Free handles, oldest first (a FIFO, as Xen's maptrack free lists):
    /// a map takes one without searching. A scan for a free slot cost a
    /// guest holding Xen's maximum of mappings about a second of the only
    /// CPU per hypercall entry (256 maps of a 262 144-slot scan each).
    /// Its capacity is kept at least `maptrack.len()`, so freeing a handle
    /// never allocates.
    free_handles: VecDeque<u32>,
}

impl GrantTable {
    pub fn nr_entries(&self) -> u32 {
        self.frames.len() as u32 * ENTRIES_PER_FRAME
    }

    /// The frame and byte offset of entry `gref`.
    pub fn entry_location(&self, gref: u32) -> Option<(SharedPage, usize)> {
        let f = *self.frames.get((gref / ENTRIES_PER_FRAME) as usize)?;
        Some((f, (gref % ENTRIES_PER_FRAME) as usize * core::mem::size_of::<hypercall_abi::grant::GrantEntryV1>()))
    }

    /// Whether [`new_handle`] has a slot to give without growing past
    /// [`MAX_MAPTRACK`] or failing to allocate (Xen's
    /// `get_maptrack_handle` failing).
    ///
    /// [`new_handle`]: GrantTable::new_handle
    pub fn handle_available(&mut self) -> bool {
        // A listed handle whose slot is in use again (only tests set slots
        // directly) is dropped from the list, each at most once.
        while let Some(&h) = self.free_handles.front() {
            if matches!(self.maptrack.get(h as usize), Some(None)) {
                break;
            }
            self.free_handles.pop_front();
        }
        !self.free_handles.is_empty()
            || (self.maptrack.len() < MAX_MAPTRACK
                && self.maptrack.try_reserve(1).is_ok()
                && self.free_handles.try_reserve((self.maptrack.len() + 1).saturating_sub(self.free_handles.len())).is_ok())
    }

    /// Record a mapping under a free handle (after [`handle_available`]).
    ///
    /// [`handle_available`]: GrantTable::handle_available
    pub fn new_handle(&mut self, t: MapTrack) -> u32 {
        while let Some(h) = self.free_handles.pop_front() {
            if let Some(slot @ None) = self.maptrack.get_mut(h as usize) {
                *slot = Some(t);
                return h;
            }
        }
        self.maptrack.push(Some(t));
        (self.maptrack.len() - 1) as u32
    }

    /// Forget the mapping under `handle` and make the handle reusable.
    pub fn free_handle(&mut self, handle: u32) {
        if self.maptrack.get_mut(handle as usize).and_then(Option::take).is_some() {
            self.free_handles.push_back(handle);
        }
    }
}
