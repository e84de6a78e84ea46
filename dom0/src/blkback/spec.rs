//! A disk as `xl.cfg`'s `disk=` writes it (Xen's xl-disk-configuration):
//! `[format=raw,] [vdev=xvda,] [access=rw,] target=NAME` in any order, or
//! positionally `NAME,raw,xvda,rw`; `target=` takes the rest of the spec.
//! The target names an image: a file on Dom0's disk when it has one, else
//! an image in Dom0's memory (see `docs/block.md`).

use heapless::String;

use crate::disk::fs::Format;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskSpec {
    pub target: String<64>,
    /// The Linux device number blkfront reads from `virtual-device`
    /// (`xvdX`: major 202, 16 minors a disk).
    pub devid: u32,
    pub vdev: String<16>,
    pub readonly: bool,
    pub format: Format,
}

/// `xvda` -> 51712 (202 << 8), `xvdb` -> 51728, ...
pub fn vdev_number(vdev: &str) -> Option<u32> {
    let letter = vdev.strip_prefix("xvd")?;
    let b = letter.as_bytes();
    if b.len() != 1 || !b[0].is_ascii_lowercase() {
        return None;
    }
    Some((202 << 8) | (u32::from(b[0] - b'a') << 4))
}

pub fn parse(spec: &str) -> Result<DiskSpec, &'static str> {
    let (mut target, mut format, mut vdev, mut access) = (None, None, None, None);
    let mut positional = 0;
    let mut rest = spec;
    while !rest.trim().is_empty() {
        let t = rest.trim_start();
        if let Some(v) = t.strip_prefix("target=") {
            target = Some(v.trim());
            break;
        }
        let (item, next) = t.split_once(',').unwrap_or((t, ""));
        rest = next;
        let item = item.trim();
        match item.split_once('=') {
            Some(("format", v)) => format = Some(v),
            Some(("vdev", v)) => vdev = Some(v),
            Some(("access", v)) => access = Some(v),
            Some(("devtype" | "backendtype" | "script", _)) => {}
            Some(_) => return Err("unknown disk key (known: format, vdev, access, devtype, target)"),
            None => {
                match positional {
                    0 => target = Some(item),
                    1 => format = Some(item),
                    2 => vdev = Some(item),
                    3 => access = Some(item),
                    _ => return Err("too many positional parameters"),
                }
                positional += 1;
            }
        }
    }
    let target = target.filter(|t| !t.is_empty()).ok_or("no target")?;
    if !target.bytes().all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c)) {
        return Err("a target is an image name: letters, digits, '-', '_', '.'");
    }
    let format = match format.unwrap_or("raw") {
        "" => Format::Raw,
        f => Format::parse(f).ok_or("unknown format (raw, qcow2)")?,
    };
    let vdev = vdev.unwrap_or("xvda");
    let devid = vdev_number(vdev).ok_or("vdev must be xvda..xvdz")?;
    let readonly = match access.unwrap_or("rw") {
        "rw" | "w" => false,
        "r" | "ro" => true,
        _ => return Err("access must be rw or ro"),
    };
    Ok(DiskSpec {
        target: String::try_from(target).map_err(|_| "target too long")?,
        devid,
        vdev: String::try_from(vdev).map_err(|_| "vdev too long")?,
        readonly,
        format,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_and_positional_forms() {
        let d = parse("format=raw, vdev=xvdb, access=ro, target=img1").unwrap();
        assert_eq!((d.target.as_str(), d.devid, d.readonly), ("img1", 51728, true));
        let d = parse("img2,raw,xvda,rw").unwrap();
        assert_eq!((d.target.as_str(), d.devid, d.readonly), ("img2", 51712, false));
        assert_eq!(parse("target=x").unwrap().vdev.as_str(), "xvda");
        assert!(parse("vdev=hda, target=x").is_err());
        assert_eq!(parse("format=qcow2, target=x").unwrap().format, Format::Qcow2);
        assert_eq!(parse("x,,xvdc").unwrap().format, Format::Raw);
        assert!(parse("format=vmdk, target=x").is_err());
        assert!(parse("colour=red, target=x").is_err());
        assert!(parse("vdev=xvda").is_err());
        assert!(parse("target=../etc").is_err());
    }
}
