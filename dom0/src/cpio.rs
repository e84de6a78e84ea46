//! A reader of the `cpio` "newc" archives that carry guest kernels and
//! configurations in Dom0's initrd (the format Linux's initramfs uses,
//! `cpio -o -H newc`).
//!
//! Each member is a 110-byte ASCII header (`070701`, then thirteen 8-digit
//! hex fields), the NUL-terminated name, padding to 4 bytes, the data,
//! padding to 4 bytes. The member named `TRAILER!!!` ends the archive.
//! Names are kept as written except for a leading `./`.

/// The newc magic; `070702` is the same with a checksum, which we ignore.
const MAGIC: &[u8] = b"070701";
const MAGIC_CRC: &[u8] = b"070702";
const HEADER: usize = 110;
const TRAILER: &str = "TRAILER!!!";

/// `S_IFMT` and the regular-file type in the mode field.
const S_IFMT: u32 = 0o170000;
const S_IFREG: u32 = 0o100000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    pub name: &'a str,
    pub mode: u32,
    pub data: &'a [u8],
}

impl Entry<'_> {
    pub fn is_file(&self) -> bool {
        self.mode & S_IFMT == S_IFREG
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpioError {
    /// The bytes at `offset` are not a newc header.
    BadMagic { offset: usize },
    /// A header field is not hexadecimal, or a name is not UTF-8.
    BadHeader { offset: usize },
    /// A member runs past the end of the archive.
    Truncated { offset: usize },
}

/// Iterates over an archive's members; stops after the first error.
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    done: bool,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0, done: data.is_empty() }
    }
}

const fn align4(x: usize) -> usize {
    (x + 3) & !3
}

fn hex_field(h: &[u8], index: usize) -> Option<u32> {
    let f = h.get(6 + 8 * index..6 + 8 * (index + 1))?;
    let s = core::str::from_utf8(f).ok()?;
    u32::from_str_radix(s, 16).ok()
}

impl<'a> Iterator for Reader<'a> {
    type Item = Result<Entry<'a>, CpioError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let r = self.read_one();
        match r {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl<'a> Reader<'a> {
    fn read_one(&mut self) -> Result<Option<Entry<'a>>, CpioError> {
        let offset = self.pos;
        let h = self.data.get(offset..offset + HEADER).ok_or(CpioError::Truncated { offset })?;
        if &h[..6] != MAGIC && &h[..6] != MAGIC_CRC {
            return Err(CpioError::BadMagic { offset });
        }
        let bad = CpioError::BadHeader { offset };
        // Fields: 0 ino, 1 mode, 2 uid, 3 gid, 4 nlink, 5 mtime, 6 filesize,
        // 7-10 devices, 11 namesize, 12 check.
        let mode = hex_field(h, 1).ok_or(bad)?;
        let filesize = hex_field(h, 6).ok_or(bad)? as usize;
        let namesize = hex_field(h, 11).ok_or(bad)? as usize;
        if namesize == 0 {
            return Err(bad);
        }
        let name_start = offset + HEADER;
        let name_end = name_start.checked_add(namesize).ok_or(bad)?;
        let name = self.data.get(name_start..name_end - 1).ok_or(CpioError::Truncated { offset })?;
        let name = core::str::from_utf8(name).map_err(|_| bad)?;
        let data_start = align4(name_end);
        let data_end = data_start.checked_add(filesize).ok_or(bad)?;
        let data = self.data.get(data_start..data_end).ok_or(CpioError::Truncated { offset })?;
        self.pos = align4(data_end);
        if name == TRAILER {
            return Ok(None);
        }
        let name = name.strip_prefix("./").unwrap_or(name);
        Ok(Some(Entry { name, mode, data }))
    }
}

/// The regular file called `name`, if the archive has one (the last one
/// wins, as when cpio extracts). An absolute name is looked up relative to
/// the archive's root, where `scripts/run.sh` puts the kernels that configs
/// name by absolute host paths.
pub fn find<'a>(archive: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let name = name.strip_prefix("./").unwrap_or(name);
    let name = name.trim_start_matches('/');
    let mut found = None;
    for e in Reader::new(archive) {
        match e {
            Ok(e) if e.is_file() && e.name == name => found = Some(e.data),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    found
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// Packs `(name, data)` files as `cpio -o -H newc` would.
    pub fn pack(files: &[(&str, &[u8])]) -> std::vec::Vec<u8> {
        let mut out = std::vec::Vec::new();
        let put = |name: &str, mode: u32, data: &[u8], out: &mut std::vec::Vec<u8>| {
            let fields = [1, mode, 0, 0, 1, 0, data.len() as u32, 0, 0, 0, 0, name.len() as u32 + 1, 0];
            out.extend_from_slice(MAGIC);
            for f in fields {
                out.extend_from_slice(std::format!("{:08X}", f).as_bytes());
            }
            out.extend_from_slice(name.as_bytes());
            out.push(0);
            while !out.len().is_multiple_of(4) {
                out.push(0);
            }
            out.extend_from_slice(data);
            while !out.len().is_multiple_of(4) {
                out.push(0);
            }
        };
        for (n, d) in files {
            put(n, S_IFREG | 0o644, d, &mut out);
        }
        put(TRAILER, 0, &[], &mut out);
        out
    }

    #[test]
    fn reads_files_in_order_and_stops_at_the_trailer() {
        let a = pack(&[("pv-guest-kernel", b"\x7fELF..."), ("./guests/g1.cfg", b"name=\"g1\"\n")]);
        let names: std::vec::Vec<_> = Reader::new(&a).map(|e| e.unwrap().name).collect();
        assert_eq!(names, ["pv-guest-kernel", "guests/g1.cfg"]);
        assert_eq!(find(&a, "guests/g1.cfg"), Some(&b"name=\"g1\"\n"[..]));
        assert_eq!(find(&a, "./pv-guest-kernel"), Some(&b"\x7fELF..."[..]));
        assert_eq!(find(&a, "nothing"), None);
    }

    #[test]
    fn truncated_and_foreign_archives_are_errors_not_panics() {
        let a = pack(&[("f", b"0123456789")]);
        for cut in 0..a.len() {
            for e in Reader::new(&a[..cut]) {
                let _ = e;
            }
        }
        assert!(matches!(Reader::new(b"garbage garbage").next(), Some(Err(_))));
        let mut bad = a.clone();
        bad[6 + 8 * 6] = b'Z';
        assert_eq!(Reader::new(&bad).next(), Some(Err(CpioError::BadHeader { offset: 0 })));
        // A file size that points past the end.
        let mut huge = a.clone();
        huge[6 + 8 * 6..6 + 8 * 7].copy_from_slice(b"FFFFFFFF");
        assert_eq!(Reader::new(&huge).next(), Some(Err(CpioError::Truncated { offset: 0 })));
    }
}
