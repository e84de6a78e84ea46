//! The block back end (Linux's `drivers/block/xen-blkback/`): virtual
//! disks served to guests over `io/blkif.h` rings.
//!
//! - [`disk`]: the disks (in Dom0's memory for now);
//! - [`request`]: one request checked and carried out through grant copies;
//! - [`ring`]: the back end's side of the shared ring.

pub mod disk;
pub mod request;
pub mod ring;

#[cfg(test)]
mod tests;
