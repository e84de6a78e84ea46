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

use alloc::collections::BTreeMap;
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
        self.maptrack.iter().any(|m| m.is_none()) || (self.maptrack.len() < MAX_MAPTRACK && self.maptrack.try_reserve(1).is_ok())
    }

    pub fn new_handle(&mut self, t: MapTrack) -> u32 {
        if let Some(i) = self.maptrack.iter().position(|m| m.is_none()) {
            self.maptrack[i] = Some(t);
            return i as u32;
        }
        self.maptrack.push(Some(t));
        (self.maptrack.len() - 1) as u32
    }
}
