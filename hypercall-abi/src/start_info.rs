//! `struct start_info` (`xen.h`): what a PV guest finds at `%rsi` on entry.

use crate::assert_layout;
use core::fmt;

/// Prefix of `start_info.magic` for a 64-bit PV guest (`"xen-<version>-<platform>"`).
pub const START_INFO_MAGIC: &[u8] = b"xen-3.0-x86_64";
pub const MAX_GUEST_CMDLINE: usize = 1024;

/// Is the domain privileged?
pub const SIF_PRIVILEGED: u32 = 1 << 0;
/// Is this the initial control domain?
pub const SIF_INITDOMAIN: u32 = 1 << 1;
/// Is `mod_start` a multiboot module?
pub const SIF_MULTIBOOT_MOD: u32 = 1 << 2;
/// Is `mod_start` a PFN rather than a virtual address?
pub const SIF_MOD_START_PFN: u32 = 1 << 3;
/// Do the tools understand a virtually mapped P2M?
pub const SIF_VIRT_P2M_4TOOLS: u32 = 1 << 4;
/// Reserved for xen-pm options.
pub const SIF_PM_MASK: u32 = 0xFF << 8;

/// `start_info.console.domU`: the guest's console ring.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DomUConsole {
    /// Machine frame of the `xencons_interface` page.
    pub mfn: u64,
    pub evtchn: u32,
    pub _pad: u32,
}

/// `start_info.console.dom0`: where in the start_info page the
/// `dom0_vga_console_info` lies.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dom0ConsoleInfo {
    pub info_off: u32,
    pub info_size: u32,
    pub _pad: u64,
}

/// The `console` union of `start_info`. Both views cover all 16 bytes with
/// plain integers and no implicit padding, so whichever view wrote the union,
/// reading the other reads initialised integers: the accessors are safe.
#[repr(C)]
#[derive(Clone, Copy)]
pub union StartInfoConsole {
    pub domu: DomUConsole,
    pub dom0: Dom0ConsoleInfo,
}
assert_layout!(StartInfoConsole, size = 16);

impl StartInfoConsole {
    pub const fn from_domu(mfn: u64, evtchn: u32) -> Self {
        StartInfoConsole { domu: DomUConsole { mfn, evtchn, _pad: 0 } }
    }
    pub const fn from_dom0(info_off: u32, info_size: u32) -> Self {
        StartInfoConsole { dom0: Dom0ConsoleInfo { info_off, info_size, _pad: 0 } }
    }
    pub const fn domu(&self) -> DomUConsole {
        // SAFETY: both views are 16 bytes of integers without padding (see the
        // type's comment), so the bytes are initialised and any value is valid.
        unsafe { self.domu }
    }
    pub const fn dom0(&self) -> Dom0ConsoleInfo {
        // SAFETY: as in `domu`.
        unsafe { self.dom0 }
    }
}

impl Default for StartInfoConsole {
    fn default() -> Self {
        Self::from_domu(0, 0)
    }
}

impl fmt::Debug for StartInfoConsole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StartInfoConsole")
            .field("domu", &self.domu())
            .field("dom0", &self.dom0())
            .finish()
    }
}

/// `struct start_info`, filled by the domain builder; one page at most.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct StartInfo {
    /// `"xen-<version>-<platform>"`, NUL-padded.
    pub magic: [u8; 32],
    /// Total pages allocated to this domain.
    pub nr_pages: u64,
    /// MACHINE address of the shared info page.
    pub shared_info: u64,
    /// `SIF_*`.
    pub flags: u32,
    pub _pad0: u32,
    /// MACHINE frame of the xenstore ring page.
    pub store_mfn: u64,
    pub store_evtchn: u32,
    pub _pad1: u32,
    pub console: StartInfoConsole,
    // The fields below are filled only on initial boot, not on resume.
    /// VIRTUAL address of the top-level bootstrap page table.
    pub pt_base: u64,
    /// Number of bootstrap page-table frames.
    pub nr_pt_frames: u64,
    /// VIRTUAL address of the P2M list (`nr_pages` MFNs).
    pub mfn_list: u64,
    /// VIRTUAL address of the first module, or its PFN with `SIF_MOD_START_PFN`.
    pub mod_start: u64,
    /// Size of the module in bytes.
    pub mod_len: u64,
    /// NUL-terminated command line.
    pub cmd_line: [u8; MAX_GUEST_CMDLINE],
    /// First PFN of the initial P2M table (page-table and P2M frames).
    pub first_p2m_pfn: u64,
    pub nr_p2m_frames: u64,
}
assert_layout!(StartInfo, size = 1168, magic = 0, nr_pages = 32, shared_info = 40,
               flags = 48, store_mfn = 56, store_evtchn = 64, console = 72,
               pt_base = 88, nr_pt_frames = 96, mfn_list = 104, mod_start = 112,
               mod_len = 120, cmd_line = 128, first_p2m_pfn = 1152, nr_p2m_frames = 1160);

impl StartInfo {
    pub const fn zeroed() -> Self {
        StartInfo {
            magic: [0; 32],
            nr_pages: 0,
            shared_info: 0,
            flags: 0,
            _pad0: 0,
            store_mfn: 0,
            store_evtchn: 0,
            _pad1: 0,
            console: StartInfoConsole::from_domu(0, 0),
            pt_base: 0,
            nr_pt_frames: 0,
            mfn_list: 0,
            mod_start: 0,
            mod_len: 0,
            cmd_line: [0; MAX_GUEST_CMDLINE],
            first_p2m_pfn: 0,
            nr_p2m_frames: 0,
        }
    }

    /// `magic` up to its first NUL.
    pub fn magic_bytes(&self) -> &[u8] {
        until_nul(&self.magic)
    }

    /// `magic` as text, up to the first NUL or invalid UTF-8 byte.
    pub fn magic_str(&self) -> &str {
        utf8_prefix(self.magic_bytes())
    }

    /// Does `magic` name a 64-bit x86 PV ABI of Xen 3.0 or later?
    pub fn magic_ok(&self) -> bool {
        self.magic_bytes().starts_with(START_INFO_MAGIC)
    }

    /// `cmd_line` up to its first NUL (all 1024 bytes if there is none).
    pub fn cmd_line_bytes(&self) -> &[u8] {
        until_nul(&self.cmd_line)
    }

    /// `cmd_line` as text, up to the first NUL or invalid UTF-8 byte.
    pub fn cmd_line_str(&self) -> &str {
        utf8_prefix(self.cmd_line_bytes())
    }

    /// Stores `magic`, truncated to 31 bytes so a NUL always ends it.
    pub fn set_magic(&mut self, magic: &[u8]) {
        copy_nul_terminated(&mut self.magic, magic);
    }

    /// Stores `cmd_line`, truncated to 1023 bytes so a NUL always ends it.
    pub fn set_cmd_line(&mut self, cmd_line: &[u8]) {
        copy_nul_terminated(&mut self.cmd_line, cmd_line);
    }
}

impl Default for StartInfo {
    fn default() -> Self {
        Self::zeroed()
    }
}

impl fmt::Debug for StartInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StartInfo")
            .field("magic", &self.magic_str())
            .field("nr_pages", &self.nr_pages)
            .field("shared_info", &format_args!("{:#x}", self.shared_info))
            .field("flags", &format_args!("{:#x}", self.flags))
            .field("store_mfn", &format_args!("{:#x}", self.store_mfn))
            .field("store_evtchn", &self.store_evtchn)
            .field("console", &self.console)
            .field("pt_base", &format_args!("{:#x}", self.pt_base))
            .field("nr_pt_frames", &self.nr_pt_frames)
            .field("mfn_list", &format_args!("{:#x}", self.mfn_list))
            .field("mod_start", &format_args!("{:#x}", self.mod_start))
            .field("mod_len", &self.mod_len)
            .field("cmd_line", &self.cmd_line_str())
            .field("first_p2m_pfn", &format_args!("{:#x}", self.first_p2m_pfn))
            .field("nr_p2m_frames", &self.nr_p2m_frames)
            .finish()
    }
}

/// `struct dom0_vga_console_info`'s leading type byte values.
pub const XEN_VGATYPE_TEXT_MODE_3: u8 = 0x03;
pub const XEN_VGATYPE_VESA_LFB: u8 = 0x23;
pub const XEN_VGATYPE_EFI_LFB: u8 = 0x70;

/// `struct xen_multiboot_mod_list`: one entry of a `SIF_MULTIBOOT_MOD` module
/// package; the list ends at an entry with `mod_start == 0`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenMultibootModList {
    pub mod_start: u32,
    /// Last byte of the module (inclusive).
    pub mod_end: u32,
    pub cmdline: u32,
    pub pad: u32,
}
assert_layout!(XenMultibootModList, size = 16, mod_start = 0, mod_end = 4, cmdline = 8, pad = 12);

fn until_nul(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&b| b == 0) {
        Some(end) => &bytes[..end],
        None => bytes,
    }
}

fn utf8_prefix(bytes: &[u8]) -> &str {
    match core::str::from_utf8(bytes) {
        Ok(s) => s,
        // valid_up_to() is a char boundary, so the prefix is valid UTF-8.
        Err(e) => core::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
    }
}

fn copy_nul_terminated(dst: &mut [u8], src: &[u8]) {
    let n = src.len().min(dst.len() - 1);
    dst[..n].copy_from_slice(&src[..n]);
    dst[n..].fill(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmd_line_stops_at_nul_and_bad_utf8() {
        let mut si = StartInfo::zeroed();
        assert_eq!(si.cmd_line_str(), "");
        si.set_cmd_line(b"workload=enosys iters=5");
        assert_eq!(si.cmd_line_str(), "workload=enosys iters=5");
        si.cmd_line[3] = 0xff;
        assert_eq!(si.cmd_line_str(), "wor");
        si.cmd_line = [b'a'; MAX_GUEST_CMDLINE];
        assert_eq!(si.cmd_line_str().len(), MAX_GUEST_CMDLINE);
        si.set_cmd_line(&[b'b'; 2000]);
        assert_eq!(si.cmd_line_str().len(), MAX_GUEST_CMDLINE - 1);
    }

    #[test]
    fn magic() {
        let mut si = StartInfo::zeroed();
        assert!(!si.magic_ok());
        si.set_magic(b"xen-3.0-x86_64");
        assert!(si.magic_ok());
        assert_eq!(si.magic_str(), "xen-3.0-x86_64");
    }

    #[test]
    fn console_views_share_bytes() {
        let c = StartInfoConsole::from_dom0(0x480, 0x40);
        assert_eq!(c.domu().mfn, 0x40_0000_0480);
        let c = StartInfoConsole::from_domu(0x1234, 7);
        assert_eq!(c.dom0().info_off, 0x1234);
        assert_eq!(c.domu().evtchn, 7);
    }
}
