//! The DomU builder's kernel image: a bzImage is unpacked (gzip, XZ or
//! zstd, as libxc's `xc_dom_bzimageloader.c`), then the ELF and its Xen
//! notes are read and placed. All of it is the `pv-image` crate, which the
//! hypervisor's Dom0 builder uses too, so `xl create` and Dom0's boot
//! accept and refuse the same kernels with the same words.
//!
//! Unpacking takes memory from Dom0's heap (Debian's Linux: 63 MiB of
//! kernel and a 32 MiB XZ dictionary). It is asked for fallibly, so a
//! kernel that does not fit is an error saying how much it needs, never an
//! allocation failure that would stop Dom0.

use alloc::collections::TryReserveError;
use alloc::vec::Vec;
use core::fmt;

use pv_image::{ElfError, ImageError, KernelImage, PlaceError, Placement};

/// The ELF image: the file itself, or what a bzImage unpacked to.
pub enum Elf<'a> {
    Borrowed(&'a [u8]),
    Unpacked(Vec<u8>),
}

impl core::ops::Deref for Elf<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Elf::Borrowed(b) => b,
            Elf::Unpacked(v) => v,
        }
    }
}

/// A kernel ready to be loaded.
pub struct Kernel<'a> {
    pub elf: Elf<'a>,
    pub image: KernelImage,
    pub place: Placement,
    /// The bzImage's compression, if it was one.
    pub compression: Option<&'static str>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum KernelError {
    BzImage(ImageError),
    Elf(ElfError),
    Place(PlaceError),
    /// Dom0 has no room to unpack it: `needed` bytes, `free` in its heap.
    NoRoom { needed: usize, free: usize },
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelError::BzImage(e) => write!(f, "bad kernel image: {e}"),
            KernelError::Elf(e) => write!(f, "bad kernel image: {e}"),
            KernelError::Place(e) => write!(f, "{e}"),
            KernelError::NoRoom { needed, free } => write!(
                f,
                "unpacking this kernel needs {} MiB of Dom0's memory, {} MiB are free: give Dom0 more (dom0_mem=)",
                needed.div_ceil(1 << 20),
                free >> 20
            ),
        }
    }
}

/// A zeroed buffer of `n` bytes, or `None` if the heap cannot give it.
fn buffer(n: usize) -> Result<Vec<u8>, TryReserveError> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)?;
    v.resize(n, 0);
    Ok(v)
}

/// Reads `file` (a bzImage or an ELF). Unpacking may take at most `budget`
/// bytes (what Dom0's heap has free); more is [`KernelError::NoRoom`].
pub fn load(file: &[u8], budget: usize) -> Result<Kernel<'_>, KernelError> {
    let (elf, compression) = if pv_image::bzimage::is_bzimage(file) {
        let p = pv_image::bzimage::payload(file).map_err(KernelError::BzImage)?;
        let scratch_len = p.scratch_len().map_err(KernelError::BzImage)?;
        let needed = p.unpacked_len.saturating_add(scratch_len);
        let no_room = || KernelError::NoRoom { needed, free: budget };
        if needed > budget {
            return Err(no_room());
        }
        // Fallible even within the budget: the heap may be fragmented.
        let mut out = buffer(p.unpacked_len).map_err(|_| no_room())?;
        let mut scratch = buffer(scratch_len).map_err(|_| no_room())?;
        let n = p.unpack(&mut out, &mut scratch).map_err(KernelError::BzImage)?;
        drop(scratch);
        out.truncate(n);
        (Elf::Unpacked(out), Some(p.compression.name()))
    } else {
        (Elf::Borrowed(file), None)
    };
    let image = pv_image::parse(&elf).map_err(KernelError::Elf)?;
    let place = pv_image::place(&image).map_err(KernelError::Place)?;
    Ok(Kernel { elf, image, place, compression })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hypercall_abi::elfnote::*;
    use pv_image::elf::test_image::{build, Note};

    fn guest_like() -> Vec<u8> {
        build(
            0x100000,
            &[0x90; 16],
            0x2000,
            0x100000,
            &[
                Note { ty: XEN_ELFNOTE_XEN_VERSION, desc: b"xen-3.0\0" },
                Note { ty: XEN_ELFNOTE_LOADER, desc: b"generic\0" },
                Note { ty: XEN_ELFNOTE_HYPERCALL_PAGE, desc: &0x101000u64.to_le_bytes() },
            ],
        )
    }

    /// A bzImage around `payload` (boot protocol 2.15, one setup sector).
    fn bzimage(payload: &[u8], unpacked_len: u32) -> Vec<u8> {
        let mut f = vec![0u8; 2 * 512];
        f[0x1f1] = 1;
        f[0x202..0x206].copy_from_slice(b"HdrS");
        f[0x206..0x208].copy_from_slice(&0x20fu16.to_le_bytes());
        f[0x248..0x24c].copy_from_slice(&0u32.to_le_bytes());
        f[0x24c..0x250].copy_from_slice(&(payload.len() as u32 + 4).to_le_bytes());
        f.extend_from_slice(payload);
        f.extend_from_slice(&unpacked_len.to_le_bytes());
        f
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut g = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
        g.extend_from_slice(&miniz_oxide::deflate::compress_to_vec(data, 6));
        g.extend_from_slice(&[0; 8]);
        g
    }

    #[test]
    fn our_guest_kernel_loads_as_it_is() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/images/pv-guest-kernel");
        let Ok(image) = std::fs::read(path) else { return };
        let k = load(&image, usize::MAX).unwrap();
        assert!(matches!(k.elf, Elf::Borrowed(_)));
        assert_eq!(k.place.virt_base, 0);
        assert_eq!(k.place.vkern_start, 0x100000);
        assert_eq!(k.place.entry, 0x100000);
        assert_eq!(k.place.hypercall_page, Some(0x101000));
    }

    /// In a cpio archive a file's data is only 4-byte aligned.
    #[test]
    fn an_image_only_4_byte_aligned_loads() {
        let image = guest_like();
        let mut buf = vec![0u64; image.len() / 8 + 2];
        // SAFETY: the u64 buffer is larger than the image plus 4 bytes.
        let bytes = unsafe { core::slice::from_raw_parts_mut(buf.as_mut_ptr() as *mut u8, buf.len() * 8) };
        bytes[4..4 + image.len()].copy_from_slice(&image);
        let k = load(&bytes[4..4 + image.len()], usize::MAX).unwrap();
        assert_eq!(k.place, load(&image, usize::MAX).unwrap().place);
    }

    #[test]
    fn a_gzip_bzimage_unpacks_to_the_same_kernel() {
        let elf = guest_like();
        let bz = bzimage(&gzip(&elf), elf.len() as u32);
        let k = load(&bz, usize::MAX).unwrap();
        assert_eq!(k.compression, Some("gzip"));
        assert_eq!(&*k.elf, &elf[..]);
        assert_eq!(k.place, load(&elf, usize::MAX).unwrap().place);
    }

    #[test]
    fn garbage_and_truncated_images_are_refused_with_their_reason() {
        assert_eq!(load(b"not an elf", usize::MAX).err(), Some(KernelError::Elf(ElfError::NotElf)));
        let elf = guest_like();
        for cut in [0, 10, 64, 100, 200, elf.len() - 1] {
            assert!(load(&elf[..cut], usize::MAX).is_err(), "cut at {cut}");
        }
        let bz = bzimage(&gzip(&elf), elf.len() as u32);
        assert_eq!(load(&bz[..bz.len() - 100], usize::MAX).err(), Some(KernelError::BzImage(ImageError::Truncated)));
        let mut corrupt = bz.clone();
        corrupt[2 * 512 + 2] = 7; // gzip's method byte: not deflate
        assert!(matches!(load(&corrupt, usize::MAX).err(), Some(KernelError::BzImage(ImageError::Corrupt(_)))));
        // A size word that lies about the unpacked kernel.
        let liar = bzimage(&gzip(&elf), elf.len() as u32 + 1);
        assert!(matches!(load(&liar, usize::MAX).err(), Some(KernelError::BzImage(ImageError::Corrupt(_)))));
    }

    #[test]
    fn a_kernel_too_big_for_dom0_is_an_error_saying_how_much_it_needs() {
        // A payload claiming 4 GiB unpacked: refused before any allocation,
        // where an infallible one would stop Dom0.
        let elf = guest_like();
        let bz = bzimage(&gzip(&elf), u32::MAX);
        assert_eq!(load(&bz, 5 << 20).err(), Some(KernelError::NoRoom { needed: u32::MAX as usize, free: 5 << 20 }));
        // Within the budget it unpacks.
        assert!(load(&bzimage(&gzip(&elf), elf.len() as u32), elf.len()).is_ok());
        let e = KernelError::NoRoom { needed: 95 << 20, free: 40 << 20 };
        assert_eq!(
            e.to_string(),
            "unpacking this kernel needs 95 MiB of Dom0's memory, 40 MiB are free: give Dom0 more (dom0_mem=)"
        );
    }
}
