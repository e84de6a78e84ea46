//! The hypervisor command line, Xen style: space-separated `name=value` or
//! bare boolean options (`noreboot`, `no-foo` to negate). Unknown options are
//! logged and ignored, as Xen does.

use crate::log::Level;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// `loglvl=`: the threshold for the hypervisor's own messages.
    pub loglvl: u8,
    /// `guest_loglvl=`: the threshold for messages about guests' errors.
    pub guest_loglvl: u8,
    /// `dom0_mem=`: Dom0's memory in bytes (None: the default).
    pub dom0_mem: Option<u64>,
    /// `noreboot`: on a Dom0 crash, halt instead of rebooting.
    pub noreboot: bool,
    /// `debug_trap`: fault in ring 0 right before entering Dom0, to show
    /// (and test) what a hypervisor bug looks like: registers, call trace,
    /// exit status 7.
    pub debug_trap: bool,
    /// `dom0_max_vcpus=N` (or Xen's `min-max` form: the larger is used).
    pub dom0_max_vcpus: u32,
    /// `smep=`, `smap=` (Xen's): use the processor's SMEP / SMAP in ring 0
    /// while guests run (default on where the CPU has them). Under QEMU 7.2
    /// TCG, Linux as Dom0 needs `smap=0` here as on Xen: QEMU checks its
    /// ring-3 `iretq` frame pops against SMAP (see docs/emulation.md).
    pub smep: bool,
    pub smap: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            loglvl: Level::Info as u8,
            guest_loglvl: Level::Info as u8,
            dom0_mem: None,
            noreboot: false,
            debug_trap: false,
            dom0_max_vcpus: 1,
            smep: true,
            smap: true,
        }
    }
}

/// Parse a size as Xen's `parse_size_and_unit` does: a number with an
/// optional B, K, M, G or T suffix; no suffix means KiB.
pub fn parse_size(s: &str) -> Option<u64> {
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    };
    let n: u64 = digits.parse().ok()?;
    let shift = match unit {
        "" | "K" | "k" => 10,
        "M" | "m" => 20,
        "G" | "g" => 30,
        "T" | "t" => 40,
        "B" | "b" => 0,
        _ => return None,
    };
    n.checked_mul(1u64 << shift)
}

/// `loglvl=info` or Xen's `loglvl=info/warning` (the second part is the
/// rate-limited threshold, which this hypervisor does not distinguish).
fn parse_level(v: &str) -> Option<u8> {
    Level::threshold_from_name(v.split('/').next().unwrap_or(v))
}

impl Options {
    pub fn parse(cmdline: &str) -> Options {
        let mut o = Options::default();
        for word in cmdline.split_ascii_whitespace() {
            let (name, value) = match word.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (word, None),
            };
            let ok = match (name, value) {
                ("loglvl", Some(v)) => parse_level(v).map(|l| o.loglvl = l).is_some(),
                ("guest_loglvl", Some(v)) => parse_level(v).map(|l| o.guest_loglvl = l).is_some(),
                // Xen also accepts `dom0_mem=min:..,max:..,..`; the plain amount is the common form.
                ("dom0_mem", Some(v)) => parse_size(v).map(|b| o.dom0_mem = Some(b)).is_some(),
                ("noreboot", None) => {
                    o.noreboot = true;
                    true
                }
                ("dom0_max_vcpus", Some(v)) => {
                    let n = v.rsplit('-').next().and_then(|n| n.parse::<u32>().ok()).filter(|n| (1..=32).contains(n));
                    n.map(|n| o.dom0_max_vcpus = n).is_some()
                }
                ("smep" | "smap", v) => match v.map_or(Some(true), parse_bool) {
                    Some(b) => {
                        *(if name == "smep" { &mut o.smep } else { &mut o.smap }) = b;
                        true
                    }
                    None => false,
                },
                ("no-smep", None) => {
                    o.smep = false;
                    true
                }
                ("no-smap", None) => {
                    o.smap = false;
                    true
                }
                ("debug_trap", None) => {
                    o.debug_trap = true;
                    true
                }
                // Accepted for compatibility with Xen command lines; nothing to configure.
                ("console" | "com1" | "dom0" | "sync_console" | "console_to_ring", _) => true,
                _ => false,
            };
            if !ok {
                crate::warn!("cmdline: ignoring unknown or malformed option '{}'", word);
            }
        }
        o
    }
}

/// Xen's `parse_bool`; `hvm` (use it for HVM guests only) means off for
/// the PV guests xen-core runs.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "yes" | "true" | "on" | "enable" => Some(true),
        "0" | "no" | "false" | "off" | "disable" | "hvm" => Some(false),
        _ => None,
    }
}

/// Multiboot loaders put the image's own path first on a command line (Xen's
/// `cmdline_cook`): drop that first word.
pub fn strip_image_name(s: &str) -> &str {
    let s = s.trim_start();
    match s.find(' ') {
        Some(i) => s[i + 1..].trim_start(),
        None => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xen_style_options_are_parsed() {
        let o = Options::parse("console=com1 loglvl=all guest_loglvl=debug/warning dom0_mem=64M noreboot");
        assert_eq!(o.loglvl, 4);
        assert_eq!(o.guest_loglvl, 4);
        assert_eq!(o.dom0_mem, Some(64 << 20));
        assert!(o.noreboot);
        assert!(o.smap && o.smep, "on by default");
        let o = Options::parse("smap=0 smep=hvm");
        assert!(!o.smap && !o.smep);
        let o = Options::parse("no-smap smep=yes smap=maybe");
        assert!(!o.smap && o.smep, "a malformed value leaves the option as it was");
        assert_eq!(Options::parse("dom0_max_vcpus=1-4").dom0_max_vcpus, 4);
        assert_eq!(Options::parse("dom0_max_vcpus=99").dom0_max_vcpus, 1);
    }

    #[test]
    fn malformed_options_keep_defaults() {
        let o = Options::parse("loglvl=loud dom0_mem=lots =x");
        assert_eq!(o, Options::default());
    }

    #[test]
    fn sizes_take_xen_units_and_default_to_kib() {
        assert_eq!(parse_size("512"), Some(512 << 10));
        assert_eq!(parse_size("2G"), Some(2 << 30));
        assert_eq!(parse_size("99999999999999999999T"), None);
    }

    #[test]
    fn loader_image_name_is_dropped() {
        assert_eq!(strip_image_name("/boot/xen.gz loglvl=all"), "loglvl=all");
        assert_eq!(strip_image_name("target/images/dom0"), "");
    }
}
