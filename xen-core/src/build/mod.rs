//! Building a PV domain from a kernel image, as Xen's PV builder does.
//! Images are read by the `pv-image` crate, which Dom0's DomU builder shares.

pub mod layout;
pub mod pv;

pub use pv::{build_pv_domain, BuildRequest, Built};
pub use pv_image::elf;

/// A bzImage's payload, if `kernel` is one (`None`: take it as an ELF).
/// The caller finds room for `unpacked_len + scratch_len()` bytes and calls
/// [`unpack`]: the unpacked kernel of a distribution (60 MiB and more, with
/// a 32 MiB XZ dictionary) does not fit in the hypervisor heap.
pub fn bzimage_payload(kernel: &[u8]) -> Option<Result<pv_image::Payload<'_>, pv_image::ImageError>> {
    pv_image::bzimage::is_bzimage(kernel).then(|| pv_image::bzimage::payload(kernel))
}

/// Unpack into `room` (unpacked kernel first, decompressor scratch after);
/// returns the unpacked ELF image.
pub fn unpack<'r>(p: &pv_image::Payload, room: &'r mut [u8]) -> Result<&'r [u8], pv_image::ImageError> {
    if room.len() < p.unpacked_len {
        return Err(pv_image::ImageError::OutputTooSmall);
    }
    let (out, scratch) = room.split_at_mut(p.unpacked_len);
    let n = p.unpack(out, scratch)?;
    Ok(&out[..n])
}
