//! Where a parsed kernel goes, and whether a builder may load it at all:
//! the checks and address arithmetic of Xen's `libelf`
//! (`elf_xen_note_check`, `elf_xen_addr_calc_check`), shared by the
//! hypervisor's Dom0 builder and Dom0's DomU builder so both accept, place
//! and refuse the same kernels with the same words.

use alloc::format;
use alloc::string::String;

use crate::elf::{required_features, KernelImage};

/// Features of the `FEATURES` note both builders honour when a kernel marks
/// them required (`!name`).
pub const SUPPORTED_REQUIRED: &[&str] = &["writable_page_tables", "pae_pgdir_above_4gb"];

/// The kernel's virtual addresses, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// `VIRT_BASE`: where the initial mapping starts.
    pub virt_base: u64,
    /// Add to a segment's `paddr` for its virtual address.
    pub virt_offset: u64,
    pub vkern_start: u64,
    pub vkern_end: u64,
    pub entry: u64,
    pub hypercall_page: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlaceError {
    /// A kernel of a kind neither builder loads (as Xen's words).
    Unsupported(String),
    /// Addresses that cannot be (wrap, entry outside the kernel...).
    BadImage(&'static str),
}

impl core::fmt::Display for PlaceError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PlaceError::Unsupported(s) => write!(f, "unsupported kernel: {s}"),
            PlaceError::BadImage(s) => write!(f, "bad kernel image: {s}"),
        }
    }
}

/// Checks the notes and computes the kernel's virtual placement.
pub fn place(image: &KernelImage) -> Result<Placement, PlaceError> {
    let n = &image.notes;
    if n.xen_version.as_deref() != Some("xen-3.0") {
        return Err(PlaceError::Unsupported("will only load images built for Xen v3.0".into()));
    }
    let generic = n.loader.as_deref() == Some("generic");
    let linux = n.guest_os.as_deref().is_some_and(|os| os.starts_with("linux"));
    if !generic && !linux {
        return Err(PlaceError::Unsupported("will only load images built for the generic loader or Linux".into()));
    }
    if let Some(features) = n.features.as_deref() {
        if let Some(f) = required_features(features).find(|f| !SUPPORTED_REQUIRED.contains(f)) {
            return Err(PlaceError::Unsupported(format!("requires feature '{f}'")));
        }
    }
    // elf_xen_addr_calc_check: no VIRT_BASE means 0; no PADDR_OFFSET with
    // notes present means 0.
    let virt_base = n.virt_base.unwrap_or(0);
    let virt_offset = virt_base.wrapping_sub(n.paddr_offset.unwrap_or(0));
    let pstart = image.segments.iter().map(|s| s.paddr).min().ok_or(PlaceError::BadImage("no segments"))?;
    // `parse` checked paddr + memsz for overflow.
    let pend = image.segments.iter().map(|s| s.paddr + s.memsz).max().ok_or(PlaceError::BadImage("no segments"))?;
    let vkern_start = pstart.wrapping_add(virt_offset);
    let vkern_end = vkern_start.checked_add(pend - pstart).ok_or(PlaceError::BadImage("kernel wraps"))?;
    if vkern_start < virt_base {
        return Err(PlaceError::BadImage("kernel below its virtual base"));
    }
    let entry = n.entry.unwrap_or(image.entry);
    if !(vkern_start..vkern_end).contains(&entry) {
        return Err(PlaceError::BadImage("entry point outside the kernel"));
    }
    if let Some(hp) = n.hypercall_page {
        if hp % 4096 != 0 || hp < vkern_start || hp.checked_add(4096).is_none_or(|end| end > vkern_end) {
            return Err(PlaceError::BadImage("hypercall page not a page inside the kernel"));
        }
    }
    Ok(Placement { virt_base, virt_offset, vkern_start, vkern_end, entry, hypercall_page: n.hypercall_page })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::parse;
    use crate::elf::test_image::{build, Note};
    use hypercall_abi::elfnote::*;

    fn notes<'a>(extra: &[Note<'a>]) -> alloc::vec::Vec<Note<'a>> {
        let mut v = alloc::vec![
            Note { ty: XEN_ELFNOTE_XEN_VERSION, desc: b"xen-3.0\0" },
            Note { ty: XEN_ELFNOTE_LOADER, desc: b"generic\0" },
        ];
        v.extend(extra.iter().map(|n| Note { ty: n.ty, desc: n.desc }));
        v
    }

    #[test]
    fn a_linux_style_kernel_is_placed_at_its_virtual_base() {
        // Linux: VIRT_BASE 0xffffffff80000000, PADDR_OFFSET 0, paddr 16 MiB.
        let base = 0xffff_ffff_8000_0000u64.to_le_bytes();
        let entry = 0xffff_ffff_8100_0000u64.to_le_bytes();
        let img = build(
            0x100_0000,
            &[0x90; 16],
            0x2000,
            0x100_0000,
            &notes(&[Note { ty: XEN_ELFNOTE_VIRT_BASE, desc: &base }, Note { ty: XEN_ELFNOTE_ENTRY, desc: &entry }]),
        );
        let p = place(&parse(&img).unwrap()).unwrap();
        assert_eq!(p.virt_offset, 0xffff_ffff_8000_0000);
        assert_eq!((p.vkern_start, p.vkern_end), (0xffff_ffff_8100_0000, 0xffff_ffff_8100_2000));
        assert_eq!(p.entry, 0xffff_ffff_8100_0000);
    }

    #[test]
    fn bad_placements_and_kernels_are_named() {
        let outside = 0x20_0000u64.to_le_bytes();
        let img = build(0x100000, &[0x90; 16], 0x2000, 0x100000, &notes(&[Note { ty: XEN_ELFNOTE_ENTRY, desc: &outside }]));
        assert_eq!(place(&parse(&img).unwrap()), Err(PlaceError::BadImage("entry point outside the kernel")));
        let odd = 0x100800u64.to_le_bytes();
        let img = build(0x100000, &[0x90; 16], 0x2000, 0x100000, &notes(&[Note { ty: XEN_ELFNOTE_HYPERCALL_PAGE, desc: &odd }]));
        assert_eq!(place(&parse(&img).unwrap()), Err(PlaceError::BadImage("hypercall page not a page inside the kernel")));
        let img = build(0x100000, &[0x90; 16], 0x2000, 0x100000, &notes(&[Note { ty: XEN_ELFNOTE_FEATURES, desc: b"!hvm_callback_vector\0" }]));
        assert_eq!(place(&parse(&img).unwrap()), Err(PlaceError::Unsupported("requires feature 'hvm_callback_vector'".into())));
        let img = build(0x100000, &[0x90; 16], 0x2000, 0x100000, &[Note { ty: XEN_ELFNOTE_XEN_VERSION, desc: b"xen-2.0\0" }]);
        assert!(matches!(place(&parse(&img).unwrap()), Err(PlaceError::Unsupported(_))));
    }
}
