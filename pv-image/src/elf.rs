//! The parts of a PV kernel's ELF image a builder needs: loadable segments
//! and the `Xen` ELF notes (`elfnote.h`), checked against the image's bounds
//! (Xen's `libelf`). Kernels xen-core cannot run are named, not just refused:
//! 32-bit PV, legacy `__xen_guest` section kernels, PVH-only kernels.

use alloc::string::String;
use alloc::vec::Vec;

use hypercall_abi::elfnote::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub paddr: u64,
    pub offset: u64,
    pub filesz: u64,
    pub memsz: u64,
}

/// What the `Xen` notes said (Xen's `struct elf_dom_parms`, abridged).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct XenNotes {
    pub entry: Option<u64>,
    pub hypercall_page: Option<u64>,
    pub virt_base: Option<u64>,
    pub paddr_offset: Option<u64>,
    pub xen_version: Option<String>,
    pub guest_os: Option<String>,
    pub loader: Option<String>,
    pub features: Option<String>,
    pub mod_start_pfn: bool,
    pub init_p2m: Option<u64>,
    pub phys32_entry: Option<u64>,
}

#[derive(Clone, Debug)]
pub struct KernelImage {
    pub entry: u64,
    pub segments: Vec<Segment>,
    pub notes: XenNotes,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    NotElf,
    NotX86_64Executable,
    /// An ELF32 image: a 32-bit PV kernel (Xen's PV32, not offered).
    ThirtyTwoBit,
    BadSegment,
    NoLoadableSegments,
    NoXenNotes,
    /// Only the pre-Xen-3.0 `__xen_guest` section, no ELF notes.
    LegacyXenGuest,
    /// Only a PVH entry point (`PHYS32_ENTRY`), no PV entry.
    PvhOnly,
    BadNote,
}

impl core::fmt::Display for ElfError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            ElfError::NotElf => "not an ELF image",
            ElfError::NotX86_64Executable => "not an x86-64 executable",
            ElfError::ThirtyTwoBit => "a 32-bit kernel: 32-bit PV guests are not supported (64-bit PV only)",
            ElfError::BadSegment => "a segment lies outside the image",
            ElfError::NoLoadableSegments => "no loadable segments",
            ElfError::NoXenNotes => "no Xen ELF notes (not a PV kernel)",
            ElfError::LegacyXenGuest => {
                "only a legacy __xen_guest section, no Xen ELF notes: pre-3.0 PV kernels are not supported (Xen 4.17 refuses them too)"
            }
            ElfError::PvhOnly => "a PVH-only kernel (PHYS32_ENTRY, no PV entry point): PVH guests are not supported",
            ElfError::BadNote => "malformed ELF note",
        })
    }
}

/// A little-endian field of `n` bytes at `at`, if the image holds it.
fn field(image: &[u8], at: u64, n: usize) -> Option<u64> {
    let at = usize::try_from(at).ok()?;
    let b = image.get(at..at.checked_add(n)?)?;
    let mut v = [0u8; 8];
    v[..n].copy_from_slice(b);
    Some(u64::from_le_bytes(v))
}

const PT_LOAD: u64 = 1;
const PT_NOTE: u64 = 4;
const ET_EXEC: u64 = 2;
const EM_X86_64: u64 = 62;

/// The ELF64 header and program headers are read field by field with
/// bounds checks, not through `xmas-elf`: it asserts on a header table
/// that is out of bounds or not 8-byte aligned in memory, which the
/// property tests reach with a flipped byte.
pub fn parse(image: &[u8]) -> Result<KernelImage, ElfError> {
    if image.len() < 64 || image[..4] != [0x7f, b'E', b'L', b'F'] {
        return Err(ElfError::NotElf);
    }
    match image[4] {
        1 => return Err(ElfError::ThirtyTwoBit),
        2 => {}
        _ => return Err(ElfError::NotElf),
    }
    let hdr = |at: u64, n: usize| field(image, at, n).ok_or(ElfError::NotElf);
    if image[5] != 1 || hdr(16, 2)? != ET_EXEC || hdr(18, 2)? != EM_X86_64 {
        return Err(ElfError::NotX86_64Executable);
    }
    let entry = hdr(24, 8)?;
    let (phoff, phentsize, phnum) = (hdr(32, 8)?, hdr(54, 2)?, hdr(56, 2)?);
    if phentsize != 56 || phoff.checked_add(phnum * 56).is_none_or(|end| end > image.len() as u64) {
        return Err(ElfError::NotElf);
    }
    let mut segments = Vec::new();
    let mut notes = XenNotes::default();
    let mut saw_note = false;
    for i in 0..phnum {
        let ph = phoff + i * 56;
        let f = |off: u64, n: usize| field(image, ph + off, n).ok_or(ElfError::NotElf);
        let (ty, offset, paddr, filesz, memsz) = (f(0, 4)?, f(8, 8)?, f(24, 8)?, f(32, 8)?, f(40, 8)?);
        let in_image = offset.checked_add(filesz).is_some_and(|end| end <= image.len() as u64);
        match ty {
            PT_LOAD => {
                if !in_image || memsz < filesz || paddr.checked_add(memsz).is_none() {
                    return Err(ElfError::BadSegment);
                }
                if memsz > 0 {
                    segments.push(Segment { paddr, offset, filesz, memsz });
                }
            }
            PT_NOTE => {
                if !in_image {
                    return Err(ElfError::BadSegment);
                }
                saw_note |= parse_notes(&image[offset as usize..(offset + filesz) as usize], &mut notes)?;
            }
            _ => {}
        }
    }
    if segments.is_empty() {
        return Err(ElfError::NoLoadableSegments);
    }
    if !saw_note {
        return Err(if has_section(image, b"__xen_guest") { ElfError::LegacyXenGuest } else { ElfError::NoXenNotes });
    }
    if notes.phys32_entry.is_some() && notes.entry.is_none() && notes.hypercall_page.is_none() {
        return Err(ElfError::PvhOnly);
    }
    Ok(KernelImage { entry, segments, notes })
}

/// Whether the image has a section called `name`, read without trusting
/// any offset (a section table or name outside the image: no).
fn has_section(image: &[u8], name: &[u8]) -> bool {
    let rd = |o: usize, n: usize| -> Option<u64> {
        let b = image.get(o..o.checked_add(n)?)?;
        let mut v = [0u8; 8];
        v[..n].copy_from_slice(b);
        Some(u64::from_le_bytes(v))
    };
    let Some(shoff) = rd(40, 8) else { return false };
    let (Some(shentsize), Some(shnum), Some(shstrndx)) = (rd(58, 2), rd(60, 2), rd(62, 2)) else { return false };
    if shentsize != 64 || shstrndx >= shnum {
        return false;
    }
    let sh = |i: u64| usize::try_from(shoff.checked_add(i * 64)?).ok();
    let Some(strtab) = sh(shstrndx).and_then(|o| rd(o.checked_add(24)?, 8)) else { return false };
    (0..shnum).any(|i| {
        let Some(o) = sh(i) else { return false };
        let Some(at) = rd(o, 4).and_then(|n| strtab.checked_add(n)).and_then(|a| usize::try_from(a).ok()) else {
            return false;
        };
        image.get(at..).is_some_and(|s| s.starts_with(name) && s.get(name.len()) == Some(&0))
    })
}

/// Walk one note segment; returns whether any `Xen` note was present.
fn parse_notes(mut data: &[u8], notes: &mut XenNotes) -> Result<bool, ElfError> {
    let mut saw = false;
    let align4 = |n: usize| n.checked_add(3).map(|v| v & !3).ok_or(ElfError::BadNote);
    while data.len() >= 12 {
        let word = |i: usize| u32::from_le_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]) as usize;
        let (namesz, descsz, ty) = (word(0), word(4), word(8) as u32);
        let name_end = 12usize.checked_add(namesz).ok_or(ElfError::BadNote)?;
        let desc_start = align4(name_end)?;
        let desc_end = desc_start.checked_add(descsz).ok_or(ElfError::BadNote)?;
        let next = align4(desc_end)?;
        if desc_end > data.len() {
            return Err(ElfError::BadNote);
        }
        let name = &data[12..name_end];
        let desc = &data[desc_start..desc_end];
        if name.strip_suffix(b"\0").unwrap_or(name) == XEN_ELFNOTE_NAME {
            saw = true;
            record(ty, desc, notes);
        }
        data = &data[next.min(data.len())..];
    }
    Ok(saw)
}

fn record(ty: u32, desc: &[u8], n: &mut XenNotes) {
    // Numeric notes are 4 or 8 bytes, little-endian (Xen's elf_note_numeric).
    let num = || -> Option<u64> {
        match desc.len() {
            4 => Some(u32::from_le_bytes(desc.try_into().ok()?) as u64),
            8 => Some(u64::from_le_bytes(desc.try_into().ok()?)),
            _ => None,
        }
    };
    let text = || -> Option<String> {
        let s = desc.split(|&b| b == 0).next().unwrap_or(&[]);
        core::str::from_utf8(s).ok().map(String::from)
    };
    match ty {
        XEN_ELFNOTE_ENTRY => n.entry = num(),
        XEN_ELFNOTE_HYPERCALL_PAGE => n.hypercall_page = num(),
        XEN_ELFNOTE_VIRT_BASE => n.virt_base = num(),
        XEN_ELFNOTE_PADDR_OFFSET => n.paddr_offset = num(),
        XEN_ELFNOTE_XEN_VERSION => n.xen_version = text(),
        XEN_ELFNOTE_GUEST_OS => n.guest_os = text(),
        XEN_ELFNOTE_LOADER => n.loader = text(),
        XEN_ELFNOTE_FEATURES => n.features = text(),
        XEN_ELFNOTE_MOD_START_PFN => n.mod_start_pfn = num().unwrap_or(0) != 0,
        XEN_ELFNOTE_INIT_P2M => n.init_p2m = num(),
        XEN_ELFNOTE_PHYS32_ENTRY => n.phys32_entry = num(),
        _ => {}
    }
}

/// Xen's `FEATURES` note: `|`-separated names; a leading `!` marks a
/// feature the kernel requires rather than merely supports.
pub fn required_features(features: &str) -> impl Iterator<Item = &str> {
    features.split('|').filter_map(|f| f.strip_prefix('!')).filter(|f| !f.is_empty())
}

pub mod test_image {
    //! Hand-made ELF images for builder tests.
    use alloc::vec::Vec;

    pub struct Note<'a> {
        pub ty: u32,
        pub desc: &'a [u8],
    }

    /// An ELF64 x86-64 executable: one PT_LOAD of `body` at `vaddr` (memsz
    /// `memsz`), one PT_NOTE with `notes` named "Xen", entry `entry`.
    pub fn build(vaddr: u64, body: &[u8], memsz: u64, entry: u64, notes: &[Note]) -> Vec<u8> {
        let mut note_bytes = Vec::new();
        for n in notes {
            note_bytes.extend_from_slice(&4u32.to_le_bytes());
            note_bytes.extend_from_slice(&(n.desc.len() as u32).to_le_bytes());
            note_bytes.extend_from_slice(&n.ty.to_le_bytes());
            note_bytes.extend_from_slice(b"Xen\0");
            note_bytes.extend_from_slice(n.desc);
            while note_bytes.len() % 4 != 0 {
                note_bytes.push(0);
            }
        }
        let phoff = 64u64;
        let notes_off = phoff + 2 * 56;
        let body_off = (notes_off + note_bytes.len() as u64 + 0xfff) & !0xfff;
        let mut f = Vec::new();
        f.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        f.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
        f.extend_from_slice(&1u32.to_le_bytes());
        f.extend_from_slice(&entry.to_le_bytes());
        f.extend_from_slice(&phoff.to_le_bytes());
        f.extend_from_slice(&0u64.to_le_bytes()); // shoff
        f.extend_from_slice(&0u32.to_le_bytes());
        f.extend_from_slice(&64u16.to_le_bytes());
        f.extend_from_slice(&56u16.to_le_bytes());
        f.extend_from_slice(&2u16.to_le_bytes());
        f.extend_from_slice(&64u16.to_le_bytes());
        f.extend_from_slice(&0u16.to_le_bytes());
        f.extend_from_slice(&0u16.to_le_bytes());
        let ph = |f: &mut Vec<u8>, ty: u32, off: u64, va: u64, filesz: u64, memsz: u64| {
            f.extend_from_slice(&ty.to_le_bytes());
            f.extend_from_slice(&7u32.to_le_bytes());
            for v in [off, va, va, filesz, memsz, 0x1000] {
                f.extend_from_slice(&v.to_le_bytes());
            }
        };
        ph(&mut f, 1, body_off, vaddr, body.len() as u64, memsz);
        ph(&mut f, 4, notes_off, 0, note_bytes.len() as u64, note_bytes.len() as u64);
        f.extend_from_slice(&note_bytes);
        f.resize(body_off as usize, 0);
        f.extend_from_slice(body);
        f
    }
}

#[cfg(test)]
mod tests {
    use super::test_image::{build, Note};
    use super::*;

    #[test]
    fn notes_and_segments_are_read() {
        let img = build(
            0x100000,
            &[0x90; 16],
            0x2000,
            0x100000,
            &[
                Note { ty: XEN_ELFNOTE_HYPERCALL_PAGE, desc: &0x101000u64.to_le_bytes() },
                Note { ty: XEN_ELFNOTE_XEN_VERSION, desc: b"xen-3.0\0" },
                Note { ty: XEN_ELFNOTE_LOADER, desc: b"generic\0" },
                Note { ty: XEN_ELFNOTE_FEATURES, desc: b"!writable_page_tables|pae_pgdir_above_4gb\0" },
            ],
        );
        let k = parse(&img).unwrap();
        assert_eq!(k.entry, 0x100000);
        assert_eq!(k.segments, [Segment { paddr: 0x100000, offset: 0x1000, filesz: 16, memsz: 0x2000 }]);
        assert_eq!(k.notes.hypercall_page, Some(0x101000));
        assert_eq!(k.notes.xen_version.as_deref(), Some("xen-3.0"));
        let req: Vec<_> = required_features(k.notes.features.as_deref().unwrap()).collect();
        assert_eq!(req, ["writable_page_tables"]);
    }

    #[test]
    fn truncated_and_foreign_images_are_refused() {
        let img = build(0x100000, &[0x90; 16], 0x2000, 0x100000, &[Note { ty: 1, desc: &[0; 8] }]);
        for cut in [0, 10, 64, 100, 200, img.len() - 1] {
            assert!(parse(&img[..cut]).is_err(), "cut at {cut}");
        }
        let no_notes = build(0x100000, &[0x90; 16], 0x2000, 0x100000, &[]);
        assert_eq!(parse(&no_notes).unwrap_err(), ElfError::NoXenNotes);
    }

    #[test]
    fn a_note_claiming_to_be_huge_is_malformed() {
        let mut notes = XenNotes::default();
        let mut n = Vec::new();
        n.extend_from_slice(&4u32.to_le_bytes());
        n.extend_from_slice(&u32::MAX.to_le_bytes());
        n.extend_from_slice(&1u32.to_le_bytes());
        n.extend_from_slice(b"Xen\0");
        assert_eq!(parse_notes(&n, &mut notes), Err(ElfError::BadNote));
    }
}
