//! Linux's bzImage (`Documentation/arch/x86/boot.rst`): a real-mode setup
//! part, then a compressed payload holding the ELF kernel. Xen's Dom0
//! builder (`xen/arch/x86/bzimage.c`) and libxc's DomU builder take the
//! bzImage and unpack the payload themselves; so do both of ours.
//!
//! Every offset is checked against the image; a bad image is an error that
//! says what is wrong, never a panic.

use crate::ImageError;

/// The setup header's fields this needs (boot protocol 2.08 or later).
const SETUP_SECTS: usize = 0x1f1;
const HDR_MAGIC: usize = 0x202;
const HDR_VERSION: usize = 0x206;
const PAYLOAD_OFFSET: usize = 0x248;
const PAYLOAD_LENGTH: usize = 0x24c;

/// Compressions Linux can use for its payload (`CONFIG_KERNEL_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Xz,
    Zstd,
    Bzip2,
    Lzma,
    Lzo,
    Lz4,
}

impl Compression {
    fn detect(p: &[u8]) -> Option<Compression> {
        Some(match p {
            [0x1f, 0x8b | 0x9e, ..] => Compression::Gzip,
            [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => Compression::Xz,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
            [b'B', b'Z', b'h', ..] => Compression::Bzip2,
            [0x5d, 0, 0, ..] => Compression::Lzma,
            [0x89, b'L', b'Z', b'O', ..] => Compression::Lzo,
            [0x02, 0x21, 0x4c, 0x18, ..] => Compression::Lz4,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
            Compression::Bzip2 => "bzip2",
            Compression::Lzma => "lzma",
            Compression::Lzo => "lzo",
            Compression::Lz4 => "lz4",
        }
    }
}

/// A bzImage's compressed payload.
#[derive(Clone, Copy, Debug)]
pub struct Payload<'a> {
    /// The compressed stream (without the size Linux appends to it).
    pub data: &'a [u8],
    pub compression: Compression,
    /// The kernel's size once unpacked (the little-endian word Linux's
    /// build appends to every payload; Xen's `output_length`).
    pub unpacked_len: usize,
}

fn le(image: &[u8], at: usize, n: usize) -> Option<u64> {
    let b = image.get(at..at.checked_add(n)?)?;
    let mut v = [0u8; 8];
    v[..n].copy_from_slice(b);
    Some(u64::from_le_bytes(v))
}

/// Whether `image` is a bzImage at all (the `HdrS` setup header).
pub fn is_bzimage(image: &[u8]) -> bool {
    image.get(HDR_MAGIC..HDR_MAGIC + 4) == Some(b"HdrS")
}

/// The payload of a bzImage. Errors for a bzImage that cannot be unpacked.
pub fn payload(image: &[u8]) -> Result<Payload<'_>, ImageError> {
    if !is_bzimage(image) {
        return Err(ImageError::NotBzImage);
    }
    let version = le(image, HDR_VERSION, 2).ok_or(ImageError::Truncated)?;
    if version < 0x208 {
        return Err(ImageError::OldBootProtocol(version as u16));
    }
    let sects = match le(image, SETUP_SECTS, 1).ok_or(ImageError::Truncated)? {
        0 => 4,
        n => n,
    };
    let off = le(image, PAYLOAD_OFFSET, 4).ok_or(ImageError::Truncated)?;
    let len = le(image, PAYLOAD_LENGTH, 4).ok_or(ImageError::Truncated)?;
    let start = (sects + 1) * 512 + off;
    let end = start.checked_add(len).ok_or(ImageError::Truncated)?;
    if len < 8 || end > image.len() as u64 {
        return Err(ImageError::Truncated);
    }
    let p = &image[start as usize..end as usize];
    let (data, size) = p.split_at(p.len() - 4);
    let compression = Compression::detect(data).ok_or(ImageError::UnknownCompression)?;
    let unpacked_len = u32::from_le_bytes([size[0], size[1], size[2], size[3]]) as usize;
    Ok(Payload { data, compression, unpacked_len })
}

/// Largest XZ dictionary accepted (Linux packs with 32 MiB): the caller
/// must find this much working memory, which a hostile header must not be
/// able to make absurd.
pub const XZ_MAX_DICT: u64 = 128 << 20;

/// Largest zstd window accepted: the decoder keeps the window on the heap,
/// which a hostile header must not be able to exhaust.
pub const ZSTD_MAX_WINDOW: u64 = 8 << 20;

impl Payload<'_> {
    /// Working memory the decompressor needs besides the output (the XZ
    /// dictionary, as the stream's header gives it), so the caller can take
    /// it from where it has room.
    pub fn scratch_len(&self) -> Result<usize, ImageError> {
        match self.compression {
            Compression::Xz => xz_dict_size(self.data),
            _ => Ok(0),
        }
    }

    /// Unpack into `out` (at least `unpacked_len` bytes), with `scratch`
    /// (at least `scratch_len()` bytes). Returns the bytes written.
    pub fn unpack(&self, out: &mut [u8], scratch: &mut [u8]) -> Result<usize, ImageError> {
        let out = out.get_mut(..self.unpacked_len).ok_or(ImageError::OutputTooSmall)?;
        let n = match self.compression {
            Compression::Gzip => gunzip(self.data, out)?,
            Compression::Xz => unxz(self.data, out, scratch)?,
            Compression::Zstd => unzstd(self.data, out)?,
            c => return Err(ImageError::UnsupportedCompression(c)),
        };
        if n != self.unpacked_len {
            return Err(ImageError::Corrupt("the unpacked kernel is not the size the bzImage gives"));
        }
        Ok(n)
    }
}

/// gzip (RFC 1952): skip the member header, inflate the deflate stream.
fn gunzip(data: &[u8], out: &mut [u8]) -> Result<usize, ImageError> {
    const FHCRC: u8 = 2;
    const FEXTRA: u8 = 4;
    const FNAME: u8 = 8;
    const FCOMMENT: u8 = 16;
    let bad = ImageError::Corrupt("bad gzip header");
    let flags = *data.get(3).ok_or(bad)?;
    if data.get(2) != Some(&8) {
        return Err(ImageError::Corrupt("gzip method is not deflate"));
    }
    let mut at = 10usize;
    if flags & FEXTRA != 0 {
        let xlen = le(data, at, 2).ok_or(bad)? as usize;
        at = at.checked_add(2 + xlen).ok_or(bad)?;
    }
    for f in [FNAME, FCOMMENT] {
        if flags & f != 0 {
            let z = data.get(at..).ok_or(bad)?.iter().position(|&b| b == 0).ok_or(bad)?;
            at += z + 1;
        }
    }
    if flags & FHCRC != 0 {
        at += 2;
    }
    let body = data.get(at..).ok_or(bad)?;
    miniz_oxide::inflate::decompress_slice_iter_to_slice(out, core::iter::once(body), false, true)
        .map_err(|_| ImageError::Corrupt("bad deflate stream"))
}

/// The LZMA2 dictionary size in an XZ stream's first block header.
fn xz_dict_size(data: &[u8]) -> Result<usize, ImageError> {
    let bad = ImageError::Corrupt("bad xz block header");
    // Stream header: 12 bytes. Block header: size byte, flags, optional
    // sizes (VLIs), then the filter flags.
    let hdr = data.get(12..).ok_or(bad)?;
    let hsize = (*hdr.first().ok_or(bad)? as usize + 1) * 4;
    let hdr = hdr.get(..hsize).ok_or(bad)?;
    let flags = *hdr.get(1).ok_or(bad)?;
    let mut at = 2usize;
    let vli = |at: &mut usize| -> Result<u64, ImageError> {
        let mut v = 0u64;
        for i in 0..9 {
            let b = *hdr.get(*at).ok_or(bad)?;
            *at += 1;
            v |= ((b & 0x7f) as u64) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(bad)
    };
    for present in [0x40, 0x80] {
        if flags & present != 0 {
            vli(&mut at)?;
        }
    }
    for _ in 0..=(flags & 3) {
        let id = vli(&mut at)?;
        let psize = vli(&mut at)? as usize;
        if id == 0x21 {
            let p = *hdr.get(at).ok_or(bad)?;
            if psize != 1 || p > 40 {
                return Err(bad);
            }
            let size = (2u64 | (p as u64 & 1)) << (p / 2 + 11);
            if size > XZ_MAX_DICT {
                return Err(ImageError::XzDictTooLarge(size));
            }
            return Ok(size as usize);
        }
        at = at.checked_add(psize).ok_or(bad)?;
    }
    Err(ImageError::Corrupt("xz stream without an LZMA2 filter"))
}

fn unxz(data: &[u8], out: &mut [u8], scratch: &mut [u8]) -> Result<usize, ImageError> {
    use xz4rust::{XzDecoder, XzNextBlockResult};
    let dict = xz_dict_size(data)?;
    let scratch = scratch.get_mut(..dict).ok_or(ImageError::OutputTooSmall)?;
    // The decoder's state is some 32 KiB: on the heap, not the stack.
    let mut dec = alloc::boxed::Box::new(XzDecoder::with_fixed_size_dict(scratch));
    let (mut inp, mut outp) = (0usize, 0usize);
    loop {
        let input = data.get(inp..).unwrap_or(&[]);
        let output = out.get_mut(outp..).unwrap_or(&mut []);
        match dec.decode(input, output) {
            Ok(XzNextBlockResult::NeedMoreData(i, o)) => {
                if i == 0 && o == 0 {
                    return Err(ImageError::Corrupt("xz stream ends early or unpacks past its size"));
                }
                inp += i;
                outp += o;
            }
            Ok(XzNextBlockResult::EndOfStream(_, o)) => return Ok(outp + o),
            Err(_) => return Err(ImageError::Corrupt("bad xz stream")),
        }
    }
}

fn unzstd(data: &[u8], out: &mut [u8]) -> Result<usize, ImageError> {
    // Frame header: magic, descriptor, [window descriptor].
    let fhd = *data.get(4).ok_or(ImageError::Corrupt("bad zstd frame"))?;
    let single_segment = fhd & 0x20 != 0;
    if !single_segment {
        let wd = *data.get(5).ok_or(ImageError::Corrupt("bad zstd frame"))? as u64;
        let base = 1u64 << (10 + (wd >> 3));
        let window = base + (base / 8) * (wd & 7);
        if window > ZSTD_MAX_WINDOW {
            return Err(ImageError::ZstdWindowTooLarge(window));
        }
    } else if out.len() as u64 > ZSTD_MAX_WINDOW {
        // A single-segment frame's window is its whole content.
        return Err(ImageError::ZstdWindowTooLarge(out.len() as u64));
    }
    let mut dec = ruzstd::decoding::FrameDecoder::new();
    dec.decode_all(data, out).map_err(|_| ImageError::Corrupt("bad zstd stream"))
}
