//! PV kernel images, for both domain builders (the hypervisor's for Dom0,
//! Dom0's for DomUs): bzImage unpacking (`bzimage`), then the ELF segments and
//! Xen notes (`elf`). One crate, so both builders accept and refuse the same
//! images with the same words. `no_std` with `alloc`; no input can make it
//! panic (property-tested with malformed images).
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod bzimage;
pub mod elf;
pub mod place;

pub use bzimage::{Compression, Payload};
pub use elf::{parse, ElfError, KernelImage, Segment, XenNotes};
pub use place::{place, PlaceError, Placement};

/// Why an image cannot be unpacked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageError {
    NotBzImage,
    /// A header or payload runs past the end of the image.
    Truncated,
    /// Boot protocol before 2.08: no payload fields.
    OldBootProtocol(u16),
    UnknownCompression,
    UnsupportedCompression(Compression),
    ZstdWindowTooLarge(u64),
    XzDictTooLarge(u64),
    OutputTooSmall,
    Corrupt(&'static str),
}

impl core::fmt::Display for ImageError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ImageError::NotBzImage => f.write_str("not a bzImage"),
            ImageError::Truncated => f.write_str("bzImage truncated: its payload runs past the end"),
            ImageError::OldBootProtocol(v) => write!(f, "bzImage boot protocol {}.{:02} is older than 2.08", v >> 8, v & 0xff),
            ImageError::UnknownCompression => f.write_str("bzImage payload in an unknown compression"),
            ImageError::UnsupportedCompression(c) => write!(f, "bzImage payload is {}-compressed: only gzip, xz and zstd are supported", c.name()),
            ImageError::ZstdWindowTooLarge(w) => write!(f, "zstd window of {} KiB is larger than the {} KiB supported", w >> 10, bzimage::ZSTD_MAX_WINDOW >> 10),
            ImageError::XzDictTooLarge(d) => write!(f, "xz dictionary of {} MiB is larger than the {} MiB supported", d >> 20, bzimage::XZ_MAX_DICT >> 20),
            ImageError::OutputTooSmall => f.write_str("no room to unpack the kernel"),
            ImageError::Corrupt(what) => write!(f, "bzImage payload corrupt: {what}"),
        }
    }
}
