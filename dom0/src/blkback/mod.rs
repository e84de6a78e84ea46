//! The block back end (Linux's `drivers/block/xen-blkback/`): virtual
//! disks served to guests over `io/blkif.h` rings.
//!
//! - [`disk`] holds the disks (in Dom0's memory for now);
//! - [`request`] carries out one request checked and carried out through grant copies;
//! - [`ring`] is the back end's side of the shared ring;
//! - [`spec`] reads `disk=` entries of a config.

// Disk and grant failures carry no detail: each becomes BLKIF_RSP_ERROR.
#![allow(clippy::result_unit_err)]

#[cfg(not(test))]
pub mod backend;
pub mod disk;
pub mod request;
pub mod ring;
pub mod spec;

#[cfg(test)]
mod tests;
