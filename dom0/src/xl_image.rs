//! Dom0's own commands for the images on its disk (`scripts/run.sh --disk`):
//!
//! - `image-create [-f raw|qcow2] <Name> [Size]`: a new image (default
//!   qcow2, 8M; Size in bytes or with K, M, G). A qcow2 holds only its
//!   metadata until written; a raw one is written out in full.
//! - `image-list`: name, format, virtual size, bytes on the disk, users.
//! - `image-rm <Name>`: removes an image no guest uses.

use alloc::format;
use alloc::string::String;

use pv_rt::println;

use crate::disk::fs::Format;
use crate::disk::store;
use crate::xl::Toolstack;

/// `8M`, `1G`, `4096`: bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let (num, shift) = match s.as_bytes().last()? {
        b'K' | b'k' => (&s[..s.len() - 1], 10),
        b'M' | b'm' => (&s[..s.len() - 1], 20),
        b'G' | b'g' => (&s[..s.len() - 1], 30),
        _ => (s, 0),
    };
    num.parse::<u64>().ok()?.checked_mul(1 << shift)
}

fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 && b.is_multiple_of(1 << 30) => format!("{}G", b >> 30),
        b if b >= 1 << 20 => format!("{}M", b >> 20),
        b if b >= 1 << 10 => format!("{}K", b >> 10),
        b => format!("{}", b),
    }
}

impl Toolstack {
    pub(crate) fn cmd_image(&mut self, cmd: &str, args: &[&str]) -> Result<(), ()> {
        let r = match cmd {
            "image-create" => self.image_create(args),
            "image-rm" => self.image_rm(args),
            _ => self.image_list(),
        };
        r.map_err(|e| println!("xl: {}: {}", cmd, e))
    }

    fn image_create(&mut self, args: &[&str]) -> Result<(), String> {
        let usage = || String::from("usage: xl image-create [-f raw|qcow2] <Name> [Size]");
        let (format, rest) = match args {
            ["-f", f, rest @ ..] => (Format::parse(f).ok_or("the format is raw or qcow2")?, rest),
            rest => (Format::Qcow2, rest),
        };
        let (name, size) = match rest {
            [name] => (*name, 8 << 20),
            [name, size] => (*name, parse_size(size).ok_or_else(|| format!("bad size '{}' (e.g. 64M, 1G)", size))?),
            _ => return Err(usage()),
        };
        if size == 0 || !size.is_multiple_of(512) || size > 2 << 40 {
            return Err(String::from("the size is a multiple of 512 bytes, up to 2T"));
        }
        if format == Format::Raw && size > 3 << 30 {
            return Err(String::from("a raw image on FAT is at most 3G"));
        }
        store::create(name, format, size)?;
        println!("image {}: {}, {}", name, format.name(), human(size));
        Ok(())
    }

    fn image_rm(&mut self, args: &[&str]) -> Result<(), String> {
        let [name] = args else { return Err(String::from("usage: xl image-rm <Name>")) };
        let (blk, _) = self.blkback();
        blk.release_image(name)?;
        store::remove(name)
    }

    fn image_list(&mut self) -> Result<(), String> {
        let list = store::list()?;
        println!("{:<10} {:<7} {:>8} {:>10}  {}", "Name", "Format", "Size", "On disk", "Used by");
        for e in list {
            let (blk, _) = self.blkback();
            let sectors = match blk.image_sectors(&e.name) {
                Some(s) => Some(s),
                None => store::open(&e.name, e.format, true).ok().map(|d| d.sectors()),
            };
            let virt = sectors.map(|s| human(s * 512)).unwrap_or_else(|| String::from("?"));
            let users: String = blk
                .images
                .iter()
                .filter(|i| i.name.eq_ignore_ascii_case(&e.name))
                .flat_map(|i| i.users.iter())
                .map(|(d, rw)| format!("{}{} ", d, if *rw { "" } else { "(ro)" }))
                .collect();
            println!("{:<10} {:<7} {:>8} {:>10}  {}", e.name, e.format.name(), virt, e.bytes, if users.is_empty() { "-" } else { users.trim_end() });
        }
        Ok(())
    }
}

