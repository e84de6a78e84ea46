//! Reading a PV kernel image: its loadable segments and `Xen` ELF notes,
//! as libxc's `libelf` does for a domU (`xg_dom_elfloader.c`).

use heapless::Vec;
use hypercall_abi::elfnote::{
    XEN_ELFNOTE_ENTRY, XEN_ELFNOTE_HYPERCALL_PAGE, XEN_ELFNOTE_NAME, XEN_ELFNOTE_PADDR_OFFSET,
    XEN_ELFNOTE_VIRT_BASE,
};
use xmas_elf::header::{Class, Machine, Type as ElfType};
use xmas_elf::program::Type;
use xmas_elf::ElfFile;

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

/// xmas-elf trusts the program-header table to lie inside the file; check
/// that first (64-byte header, 56-byte entries).
fn phdrs_in_bounds(image: &[u8]) -> bool {
    if image.len() < 64 || image[..4] != [0x7f, b'E', b'L', b'F'] || image[4] != 2 {
        return false;
    }
    let u16_at = |o: usize| u16::from_le_bytes([image[o], image[o + 1]]) as u64;
    let mut phoff = [0u8; 8];
    phoff.copy_from_slice(&image[32..40]);
    let phoff = u64::from_le_bytes(phoff);
    let (phentsize, phnum) = (u16_at(54), u16_at(56));
    phentsize == 56 && phoff.checked_add(phnum * 56).is_some_and(|end| end <= image.len() as u64)
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
    if !phdrs_in_bounds(image) {
        return Err(ElfError::NotElf);
    }
    let elf = ElfFile::new(image).map_err(|_| ElfError::NotElf)?;
    let h = &elf.header;
    if h.pt1.class() != Class::SixtyFour
        || h.pt2.machine().as_machine() != Machine::X86_64
        || h.pt2.type_().as_type() != ElfType::Executable
    {
        return Err(ElfError::NotX86_64Executable);
    }
    let mut segments = Vec::new();
    let mut notes = Notes::default();
    let mut saw_note = false;
    for ph in elf.program_iter() {
        let (offset, filesz) = (ph.offset(), ph.file_size());
        let in_image = offset.checked_add(filesz).is_some_and(|end| end <= image.len() as u64);
        match ph.get_type() {
            Ok(Type::Load) => {
                if !in_image || ph.mem_size() < filesz || ph.physical_addr().checked_add(ph.mem_size()).is_none() {
                    return Err(ElfError::BadSegment);
                }
                if ph.mem_size() > 0 {
                    let s = Segment { paddr: ph.physical_addr(), offset, filesz, memsz: ph.mem_size() };
                    segments.push(s).map_err(|_| ElfError::TooManySegments)?;
                }
            }
            Ok(Type::Note) => {
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
        entry: notes.entry.unwrap_or(h.pt2.entry_point()),
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

    #[test]
    fn garbage_is_refused_without_panicking() {
        assert_eq!(parse(b"not an elf"), Err(ElfError::NotElf));
        let mut fake = [0u8; 128];
        fake[..5].copy_from_slice(b"\x7fELF\x02");
        assert!(parse(&fake).is_err());
    }
}
