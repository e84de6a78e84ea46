//! bzImage unpacking and ELF parsing on well-formed and hostile images: a
//! good image unpacks to exactly its kernel; a bad one is an error that
//! names the problem, and nothing an image holds can make the crate panic.

use pv_image::bzimage::{payload, Compression};
use pv_image::elf::test_image::{build, Note};
use pv_image::{ElfError, ImageError};
use proptest::prelude::*;

const XZ_FIXTURE: &[u8] = include_bytes!("data/fixture.txt.xz");

fn fixture_text() -> Vec<u8> {
    (0..200).flat_map(|i| format!("pv-image xz fixture line {i:04}\n").into_bytes()).collect()
}

/// A bzImage (boot protocol 2.15) around `payload`, with Linux's appended
/// unpacked size.
fn bzimage(compressed: &[u8], unpacked_len: u32) -> Vec<u8> {
    let setup_sects = 3u8;
    let mut img = vec![0u8; (setup_sects as usize + 1) * 512];
    img[0x1f1] = setup_sects;
    img[0x202..0x206].copy_from_slice(b"HdrS");
    img[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
    let offset = 0x40u32;
    img[0x248..0x24c].copy_from_slice(&offset.to_le_bytes());
    img[0x24c..0x250].copy_from_slice(&(compressed.len() as u32 + 4).to_le_bytes());
    img.resize(img.len() + offset as usize, 0);
    img.extend_from_slice(compressed);
    img.extend_from_slice(&unpacked_len.to_le_bytes());
    img.extend_from_slice(&[0; 32]);
    img
}

fn unpack(img: &[u8]) -> Result<Vec<u8>, ImageError> {
    let p = payload(img)?;
    let mut out = vec![0u8; p.unpacked_len];
    let mut scratch = vec![0u8; p.scratch_len()?];
    let n = p.unpack(&mut out, &mut scratch)?;
    out.truncate(n);
    Ok(out)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut g = vec![0x1f, 0x8b, 8, 8, 0, 0, 0, 0, 0, 3];
    g.extend_from_slice(b"vmlinux.bin\0");
    g.extend_from_slice(&miniz_oxide::deflate::compress_to_vec(data, 9));
    g.extend_from_slice(&[0; 8]);
    g
}

#[test]
fn xz_with_the_x86_filter_unpacks_as_linux_packs_it() {
    let text = fixture_text();
    let img = bzimage(XZ_FIXTURE, text.len() as u32);
    assert_eq!(payload(&img).unwrap().compression, Compression::Xz);
    assert_eq!(payload(&img).unwrap().scratch_len().unwrap(), 64 << 10, "the stream's dictionary");
    assert_eq!(unpack(&img).unwrap(), text);
}

#[test]
fn gzip_and_zstd_unpack() {
    let text = fixture_text();
    assert_eq!(unpack(&bzimage(&gzip(&text), text.len() as u32)).unwrap(), text);
    let z = ruzstd::encoding::compress_to_vec(&text[..], ruzstd::encoding::CompressionLevel::Fastest);
    assert_eq!(unpack(&bzimage(&z, text.len() as u32)).unwrap(), text);
}

#[test]
fn a_wrong_size_or_other_compression_is_a_clear_error() {
    let text = fixture_text();
    let e = unpack(&bzimage(XZ_FIXTURE, text.len() as u32 - 1)).unwrap_err();
    assert!(matches!(e, ImageError::Corrupt(_)), "{e}");
    let e = unpack(&bzimage(b"BZh91AY&SY....", 100)).unwrap_err();
    assert_eq!(e, ImageError::UnsupportedCompression(Compression::Bzip2));
    assert!(e.to_string().contains("bzip2"));
    assert_eq!(unpack(&bzimage(b"\x00\x01\x02\x03", 100)).unwrap_err(), ImageError::UnknownCompression);
    let mut old = bzimage(XZ_FIXTURE, 6000);
    old[0x206] = 0x04;
    old[0x207] = 0x02;
    assert_eq!(unpack(&old).unwrap_err(), ImageError::OldBootProtocol(0x204));
    let img = bzimage(XZ_FIXTURE, 6000);
    assert_eq!(unpack(&img[..img.len() - 100]).unwrap_err(), ImageError::Truncated);
    // A zstd frame asking for a 1 GiB window is refused before decoding.
    let mut z = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, (20 << 3) as u8];
    z.extend_from_slice(&[0; 16]);
    assert!(matches!(unpack(&bzimage(&z, 100)).unwrap_err(), ImageError::ZstdWindowTooLarge(_)));
}

fn elf32() -> Vec<u8> {
    let mut e = build(0x100000, &[0x90; 16], 0x2000, 0x100000, &[]);
    e[4] = 1;
    e
}

#[test]
fn kernels_xen_core_cannot_run_are_named() {
    assert_eq!(pv_image::parse(&elf32()).unwrap_err(), ElfError::ThirtyTwoBit);
    let pvh = build(0x100000, &[0x90; 16], 0x2000, 0x100000, &[Note { ty: 18, desc: &0x100000u32.to_le_bytes() }]);
    assert_eq!(pv_image::parse(&pvh).unwrap_err(), ElfError::PvhOnly);
    assert!(ElfError::PvhOnly.to_string().contains("PVH"));
    // A legacy kernel: no notes, a __xen_guest section.
    let mut legacy = build(0x100000, &[0x90; 16], 0x2000, 0x100000, &[]);
    let strtab_off = legacy.len() as u64;
    legacy.extend_from_slice(b"\0__xen_guest\0.shstrtab\0");
    let shoff = legacy.len() as u64;
    let sh = |name: u32, off: u64, size: u64| {
        let mut s = vec![0u8; 64];
        s[0..4].copy_from_slice(&name.to_le_bytes());
        s[4..8].copy_from_slice(&1u32.to_le_bytes());
        s[24..32].copy_from_slice(&off.to_le_bytes());
        s[32..40].copy_from_slice(&size.to_le_bytes());
        s
    };
    legacy.extend_from_slice(&[0u8; 64]);
    legacy.extend_from_slice(&sh(1, 0, 0));
    legacy.extend_from_slice(&sh(13, strtab_off, 23));
    legacy[40..48].copy_from_slice(&shoff.to_le_bytes());
    legacy[58..60].copy_from_slice(&64u16.to_le_bytes());
    legacy[60..62].copy_from_slice(&3u16.to_le_bytes());
    legacy[62..64].copy_from_slice(&2u16.to_le_bytes());
    assert_eq!(pv_image::parse(&legacy).unwrap_err(), ElfError::LegacyXenGuest);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random bytes anywhere in a bzImage (header, payload, appended size):
    /// an error or the right kernel, never a panic.
    #[test]
    fn a_corrupted_bzimage_never_panics(flips in proptest::collection::vec((0usize..4000, any::<u8>()), 1..8), gz: bool) {
        let text = fixture_text();
        let packed = if gz { gzip(&text) } else { XZ_FIXTURE.to_vec() };
        let mut img = bzimage(&packed, text.len() as u32);
        for (at, b) in flips {
            let n = img.len();
            img[at % n] = b;
        }
        if let Ok(out) = unpack(&img) {
            prop_assert_eq!(out.len(), text.len());
        }
    }

    /// Random bytes in an ELF kernel's headers and notes: an error or an
    /// image whose segments lie inside it.
    #[test]
    fn a_corrupted_elf_never_panics(flips in proptest::collection::vec((0usize..400, any::<u8>()), 1..8)) {
        let mut img = build(0x100000, &[0x90; 64], 0x3000, 0x100000, &[
            Note { ty: 2, desc: &0x101000u64.to_le_bytes() },
            Note { ty: 5, desc: b"xen-3.0\0" },
        ]);
        for (at, b) in flips {
            let n = img.len();
            img[at % n] = b;
        }
        if let Ok(k) = pv_image::parse(&img) {
            for s in k.segments {
                prop_assert!(s.offset + s.filesz <= img.len() as u64);
            }
        }
    }

    #[test]
    fn arbitrary_bytes_are_refused_not_crashed_on(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = pv_image::parse(&bytes);
        let _ = unpack(&bytes);
        let mut hdr = bytes.clone();
        hdr.resize(0x300, 0);
        hdr[0x202..0x206].copy_from_slice(b"HdrS");
        let _ = unpack(&hdr);
    }
}
