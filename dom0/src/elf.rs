//! Reading a PV kernel image: its loadable segments and `Xen` ELF notes,
//! as libxc's `libelf` does for a domU (`xg_dom_elfloader.c`).

use heapless::Vec;
use hypercall_abi::elfnote::{
    XEN_ELFNOTE_ENTRY, XEN_ELFNOTE_HYPERCALL_PAGE, XEN_ELFNOTE_NAME, XEN_ELFNOTE_PADDR_OFFSET,
    XEN_ELFNOTE_VIRT_BASE,
};

pub const MAX_SEGMENTS: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub paddr: u64,
    pub offset: u64,
    pub filesz: u64,
    pub memsz: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kernel {
    pub segments: Vec<Segment, MAX_SEGMENTS>,
    /// Virtual addresses, after the notes' VIRT_BASE/PADDR_OFFSET.
    pub virt_base: u64,
    pub virt_kstart: u64,
    pub virt_kend: u64,
    pub entry: u64,
    pub hypercall_page: Option<u64>,
    /// Add to a segment's `paddr` for its virtual address.
    pub virt_offset: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    NotElf,
    NotX86_64Executable,
    BadSegment,
    BadNote,
    NoLoadableSegments,
    TooManySegments,
    NoXenNotes,
}

impl ElfError {
    pub fn what(self) -> &'static str {
        match self {
            ElfError::NotElf => "not an ELF64 file",
            ElfError::NotX86_64Executable => "not an x86-64 executable",
            ElfError::BadSegment => "a segment lies outside the file",
            ElfError::BadNote => "a malformed ELF note",
            ElfError::NoLoadableSegments => "nothing to load",
            ElfError::TooManySegments => "too many segments",
            ElfError::NoXenNotes => "no Xen ELF notes: not a Xen PV kernel",
        }
    }
}

/// ELF64 fields are read byte by byte (`from_le_bytes`), never through a
/// cast: an image inside Dom0's cpio initrd is only 4-byte aligned, and a
/// reader that needs 8-byte alignment (xmas-elf's `zero` crate asserts it)
/// panics on such an image.
fn u16_at(image: &[u8], o: usize) -> Option<u64> {
    let b = image.get(o..o.checked_add(2)?)?;
    Some(u16::from_le_bytes([b[0], b[1]]) as u64)
}

fn u32_at(image: &[u8], o: usize) -> Option<u64> {
    let b = image.get(o..o.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64)
}

fn u64_at(image: &[u8], o: usize) -> Option<u64> {
    let b = image.get(o..o.checked_add(8)?)?;
    let mut w = [0u8; 8];
    w.copy_from_slice(b);
    Some(u64::from_le_bytes(w))
}

/// `PT_LOAD` and `PT_NOTE` of the ELF specification.
const PT_LOAD: u64 = 1;
const PT_NOTE: u64 = 4;
/// `ET_EXEC`, `EM_X86_64`.
const ET_EXEC: u64 = 2;
const EM_X86_64: u64 = 62;

/// One program header (Elf64_Phdr, 56 bytes).
struct Phdr {
    ty: u64,
    offset: u64,
    paddr: u64,
    filesz: u64,
    memsz: u64,
}

fn phdr_at(image: &[u8], o: usize) -> Option<Phdr> {
    Some(Phdr {
        ty: u32_at(image, o)?,
        offset: u64_at(image, o + 8)?,
        paddr: u64_at(image, o + 24)?,
        filesz: u64_at(image, o + 32)?,
        memsz: u64_at(image, o + 40)?,
    })
}

#[derive(Default)]
struct Notes {
    entry: Option<u64>,
    hypercall_page: Option<u64>,
    virt_base: Option<u64>,
    paddr_offset: Option<u64>,
}

fn parse_notes(mut data: &[u8], n: &mut Notes) -> Result<bool, ElfError> {
    let mut saw = false;
    let align4 = |x: usize| x.checked_add(3).map(|v| v & !3).ok_or(ElfError::BadNote);
    while data.len() >= 12 {
        let word = |i: usize| u32::from_le_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]) as usize;
        let (namesz, descsz, ty) = (word(0), word(4), word(8) as u32);
        let name_end = 12usize.checked_add(namesz).ok_or(ElfError::BadNote)?;
        let desc_start = align4(name_end)?;
        let desc_end = desc_start.checked_add(descsz).ok_or(ElfError::BadNote)?;
        if desc_end > data.len() {
            return Err(ElfError::BadNote);
        }
        let name = &data[12..name_end];
        let desc = &data[desc_start..desc_end];
        if name.strip_suffix(b"\0").unwrap_or(name) == XEN_ELFNOTE_NAME {
            saw = true;
            // Numeric notes are 4 or 8 bytes, little-endian.
            let num = match desc.len() {
                4 => Some(u32::from_le_bytes([desc[0], desc[1], desc[2], desc[3]]) as u64),
                8 => {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(desc);
                    Some(u64::from_le_bytes(b))
                }
                _ => None,
            };
            match ty {
                XEN_ELFNOTE_ENTRY => n.entry = num,
                XEN_ELFNOTE_HYPERCALL_PAGE => n.hypercall_page = num,
                XEN_ELFNOTE_VIRT_BASE => n.virt_base = num,
                XEN_ELFNOTE_PADDR_OFFSET => n.paddr_offset = num,
                _ => {}
            }
        }
        data = &data[align4(desc_end)?.min(data.len())..];
    }
    Ok(saw)
}

pub fn parse(image: &[u8]) -> Result<Kernel, ElfError> {
    // Elf64_Ehdr: magic, class 2 (64-bit), data 1 (little-endian).
    if image.len() < 64 || image[..4] != [0x7f, b'E', b'L', b'F'] || image[4] != 2 || image[5] != 1 {
        return Err(ElfError::NotElf);
    }
    let field = |o, f: fn(&[u8], usize) -> Option<u64>| f(image, o).ok_or(ElfError::NotElf);
    let (ty, machine) = (field(16, u16_at)?, field(18, u16_at)?);
    if ty != ET_EXEC || machine != EM_X86_64 {
        return Err(ElfError::NotX86_64Executable);
    }
    let entry_point = field(24, u64_at)?;
    let phoff = field(32, u64_at)?;
    let (phentsize, phnum) = (field(54, u16_at)?, field(56, u16_at)?);
    let table_in_image = phoff.checked_add(phnum * 56).is_some_and(|end| end <= image.len() as u64);
    if phentsize != 56 || !table_in_image {
        return Err(ElfError::NotElf);
    }
    let mut segments = Vec::new();
    let mut notes = Notes::default();
    let mut saw_note = false;
    for i in 0..phnum {
        let ph = phdr_at(image, (phoff + i * 56) as usize).ok_or(ElfError::NotElf)?;
        let (offset, filesz) = (ph.offset, ph.filesz);
        let in_image = offset.checked_add(filesz).is_some_and(|end| end <= image.len() as u64);
        match ph.ty {
            PT_LOAD => {
                if !in_image || ph.memsz < filesz || ph.paddr.checked_add(ph.memsz).is_none() {
                    return Err(ElfError::BadSegment);
                }
                if ph.memsz > 0 {
                    let s = Segment { paddr: ph.paddr, offset, filesz, memsz: ph.memsz };
                    segments.push(s).map_err(|_| ElfError::TooManySegments)?;
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
        return Err(ElfError::NoXenNotes);
    }
    // libelf: without the notes, virt_base and the paddr offset are 0, and
    // a segment's virtual address is paddr + virt_base - paddr_offset.
    let virt_base = notes.virt_base.unwrap_or(0);
    let virt_offset = virt_base.wrapping_sub(notes.paddr_offset.unwrap_or(virt_base));
    let pstart = segments.iter().map(|s| s.paddr).min().unwrap_or(0);
    let pend = segments.iter().map(|s| s.paddr + s.memsz).max().unwrap_or(0);
    let virt_kstart = pstart.checked_add(virt_offset).ok_or(ElfError::BadSegment)?;
    let virt_kend = pend.checked_add(virt_offset).ok_or(ElfError::BadSegment)?;
    Ok(Kernel {
        segments,
        virt_base,
        virt_kstart,
        virt_kend,
        entry: notes.entry.unwrap_or(entry_point),
        hypercall_page: notes.hypercall_page,
        virt_offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_guest_kernel_parses() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/images/pv-guest-kernel");
        let Ok(image) = std::fs::read(path) else { return };
        let k = parse(&image).unwrap();
        assert_eq!(k.virt_base, 0);
        assert_eq!(k.virt_kstart, 0x100000);
        assert_eq!(k.entry, 0x100000);
        assert_eq!(k.hypercall_page, Some(0x101000));
    }

    /// In a cpio archive a file's data is only 4-byte aligned: the same
    /// image at an address that is 4 but not 8 modulo 8 parses the same.
    #[test]
    fn an_image_only_4_byte_aligned_parses() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/images/pv-guest-kernel");
        let Ok(image) = std::fs::read(path) else { return };
        let mut buf = std::vec![0u64; image.len() / 8 + 2];
        // SAFETY: the u64 buffer is larger than the image plus 4 bytes.
        let bytes = unsafe { core::slice::from_raw_parts_mut(buf.as_mut_ptr() as *mut u8, buf.len() * 8) };
        bytes[4..4 + image.len()].copy_from_slice(&image);
        let k = parse(&bytes[4..4 + image.len()]).unwrap();
        assert_eq!(k, parse(&image).unwrap());
    }

    #[test]
    fn garbage_is_refused_without_panicking() {
        assert_eq!(parse(b"not an elf"), Err(ElfError::NotElf));
        let mut fake = [0u8; 128];
        fake[..5].copy_from_slice(b"\x7fELF\x02");
        assert!(parse(&fake).is_err());
    }
}
