//! The boot banner both kernels print, identical on Xen and xen-core apart
//! from addresses and the `hypervisor:` line.
//!
//! ```text
//! <kernel>: Xen PV kernel <version>
//! hypervisor: Xen <major>.<minor><extraversion>
//! start_info: magic=<magic> nr_pages=<n> flags=<hex> (<names>)
//! start_info: cmd_line="<cmd_line>"
//! start_info: mod_start=<hex> mod_len=<n>
//! start_info: pt_base=<hex> nr_pt_frames=<n> mfn_list=<hex> shared_info=<hex>
//! ```

use core::fmt;

use hypercall_abi::guest;
use hypercall_abi::start_info::{
    SIF_INITDOMAIN, SIF_MOD_START_PFN, SIF_MULTIBOOT_MOD, SIF_PM_MASK, SIF_PRIVILEGED,
    SIF_VIRT_P2M_4TOOLS,
};
use hypercall_abi::version::{xen_version_decode, XenExtraversion, XENVER_extraversion, XENVER_version};

use crate::{println, StartInfo};

/// Names of the `SIF_*` bits set in `flags`, comma-separated, with the
/// power-management byte (Xen gives Dom0 its `xen_processor_pmbits` there) as
/// `pm=<hex>`; "none" if nothing is set.
pub struct SifNames(pub u32);

impl fmt::Display for SifNames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [(u32, &str); 5] = [
            (SIF_PRIVILEGED, "privileged"),
            (SIF_INITDOMAIN, "initdomain"),
            (SIF_MULTIBOOT_MOD, "multiboot_mod"),
            (SIF_MOD_START_PFN, "mod_start_pfn"),
            (SIF_VIRT_P2M_4TOOLS, "virt_p2m_4tools"),
        ];
        let mut rest = self.0 & !SIF_PM_MASK;
        let mut first = true;
        for (bit, name) in NAMES {
            if rest & bit != 0 {
                f.write_str(if first { "" } else { "," })?;
                f.write_str(name)?;
                rest &= !bit;
                first = false;
            }
        }
        if rest != 0 {
            write!(f, "{}{:#x}", if first { "" } else { "," }, rest)?;
            first = false;
        }
        let pm = (self.0 & SIF_PM_MASK) >> 8;
        if pm != 0 {
            write!(f, "{}pm={:#x}", if first { "" } else { "," }, pm)?;
            first = false;
        }
        if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}

/// The hypervisor's version as `XENVER_version` and `XENVER_extraversion`
/// report it: `(major, minor, extraversion)`.
pub fn xen_version() -> (u16, u16, XenExtraversion) {
    // SAFETY: XENVER_version takes no buffer.
    let v = unsafe { guest::xen_version(XENVER_version, core::ptr::null_mut()) };
    let mut extra: XenExtraversion = [0; 16];
    // SAFETY: XENVER_extraversion writes exactly a xen_extraversion_t.
    let ret = unsafe { guest::xen_version(XENVER_extraversion, extra.as_mut_ptr()) };
    if ret < 0 {
        extra = [0; 16];
    }
    let (major, minor) = if v < 0 { (0, 0) } else { xen_version_decode(v as u32) };
    (major, minor, extra)
}

/// Bytes up to the first NUL, as text (up to the first invalid byte).
pub fn c_str(bytes: &[u8]) -> &str {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    match core::str::from_utf8(&bytes[..end]) {
        Ok(s) => s,
        Err(e) => core::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
    }
}

pub fn print(kernel: &str, version: &str, si: &StartInfo) {
    println!("{}: Xen PV kernel {}", kernel, version);
    let (major, minor, extra) = xen_version();
    println!("hypervisor: Xen {}.{}{}", major, minor, c_str(&extra));
    println!(
        "start_info: magic={} nr_pages={} flags={:#x} ({})",
        si.magic_str(),
        si.nr_pages,
        si.flags,
        SifNames(si.flags)
    );
    println!("start_info: cmd_line=\"{}\"", si.cmd_line_str());
    println!("start_info: mod_start={:#x} mod_len={}", si.mod_start, si.mod_len);
    println!(
        "start_info: pt_base={:#x} nr_pt_frames={} mfn_list={:#x} shared_info={:#x}",
        si.pt_base, si.nr_pt_frames, si.mfn_list, si.shared_info
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sif_names() {
        assert_eq!(SifNames(0).to_string(), "none");
        assert_eq!(SifNames(0x303).to_string(), "privileged,initdomain,pm=0x3");
        assert_eq!(SifNames(SIF_MOD_START_PFN).to_string(), "mod_start_pfn");
        assert_eq!(SifNames(0x10000 | SIF_PRIVILEGED).to_string(), "privileged,0x10000");
    }

    #[test]
    fn c_str_stops_at_nul() {
        assert_eq!(c_str(b".7\0\0\0"), ".7");
        assert_eq!(c_str(b"abc"), "abc");
        assert_eq!(c_str(b"ab\xffc\0"), "ab");
    }
}
