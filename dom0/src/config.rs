//! Guest configurations in `xl.cfg` syntax (the subset a PV guest of ours
//! needs): `key = value` statements, one a line or separated by `;`, `#`
//! comments, values that are "double"- or 'single'-quoted strings, numbers,
//! or `[ ... ]` lists. As with `xl create cfg k=v`,
//! extra statements given on the command line are applied after the file.
//!
//! Keys understood: `name`, `kernel` (an ELF or a bzImage), `ramdisk` (the
//! initial ramdisk, e.g. a Linux initramfs), `memory` (MiB), `maxmem` (MiB),
//! `vcpus`, the guest's command line as xl makes it (`cmdline`, else
//! `root=ROOT EXTRA` from `root` and `extra`; `cmdline` wins over both, with
//! a warning; `${domid:NAME}` in it becomes the id of domain NAME, see
//! [`expand`]), `on_poweroff`, `on_reboot`, `on_crash`, `disk` (a list of
//! xl-disk-configuration strings). Other keys are ignored with a warning
//! (`vif` says networking is not offered yet), so a mistyped key does not
//! pass unnoticed; `type = "pv"` is accepted quietly.

use core::fmt;

use heapless::{String, Vec};

pub const NAME_MAX: usize = 64;
pub const PATH_MAX: usize = 128;
/// `MAX_GUEST_CMDLINE` less the NUL.
pub const CMDLINE_MAX: usize = 1023;

/// What to do when the guest shuts down for a reason (`xl.cfg`'s
/// `on_poweroff`/`on_reboot`/`on_crash`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Destroy the domain (xl's default on poweroff and crash).
    Destroy,
    /// Destroy it and build it again from the same configuration (xl's
    /// default on reboot).
    Restart,
    /// Leave it shut down, for inspection, until `xl destroy`.
    Preserve,
}

impl Action {
    fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "destroy" => Action::Destroy,
            "restart" => Action::Restart,
            "preserve" => Action::Preserve,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            Action::Destroy => "destroy",
            Action::Restart => "restart",
            Action::Preserve => "preserve",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainConfig {
    pub name: String<NAME_MAX>,
    pub kernel: String<PATH_MAX>,
    /// `ramdisk=`: the initial ramdisk's path, if any.
    pub ramdisk: Option<String<PATH_MAX>>,
    /// Initial memory in MiB (xl's default: 32).
    pub memory: u64,
    /// Most memory the guest may balloon up to, in MiB (default: `memory`).
    pub maxmem: u64,
    pub vcpus: u32,
    pub cmdline: String<CMDLINE_MAX>,
    pub on_poweroff: Action,
    pub on_reboot: Action,
    pub on_crash: Action,
    /// `disk = [ 'spec', ... ]`: each disk as written (xl-disk-configuration;
    /// `blkback::spec` reads them).
    pub disks: Vec<String<DISK_SPEC_MAX>, MAX_DISKS>,
    /// What the toolstack should say about the file (keys it ignored).
    pub warnings: Vec<String<WARNING_MAX>, MAX_WARNINGS>,
}

pub const WARNING_MAX: usize = 96;
pub const MAX_WARNINGS: usize = 8;
pub const DISK_SPEC_MAX: usize = 160;
pub const MAX_DISKS: usize = 4;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// Line `line` (1-based; 0 for a command-line override) is not `key = value`.
    Syntax { line: usize, what: &'static str },
    /// `key` has a value of the wrong kind or out of range.
    BadValue { line: usize, key: String<32>, what: &'static str },
    /// A required key is missing.
    Missing(&'static str),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = |f: &mut fmt::Formatter<'_>, line: usize| {
            if line == 0 {
                write!(f, "key=value after the file name: ")
            } else {
                write!(f, "line {}: ", line)
            }
        };
        match self {
            ConfigError::Syntax { line, what } => {
                at(f, *line)?;
                write!(f, "{}", what)
            }
            ConfigError::BadValue { line, key, what } => {
                at(f, *line)?;
                write!(f, "{}: {}", key, what)
            }
            ConfigError::Missing(key) => write!(f, "'{}' is required", key),
        }
    }
}

/// A value as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Value<'a> {
    Str(&'a str),
    /// A bare word: a number, or a string written without quotes (which
    /// we accept on the command line, `name=g2`).
    Word(&'a str),
    /// `[ ... ]`, the text between the brackets.
    List(&'a str),
}

struct Partial {
    name: Option<String<NAME_MAX>>,
    kernel: Option<String<PATH_MAX>>,
    memory: Option<u64>,
    maxmem: Option<u64>,
    /// Where `memory` and `maxmem` were last set (0: a command-line
    /// override), for errors found once everything is read.
    memory_line: usize,
    maxmem_line: usize,
    vcpus: u32,
    ramdisk: Option<String<PATH_MAX>>,
    cmdline: Option<String<CMDLINE_MAX>>,
    root: Option<String<CMDLINE_MAX>>,
    extra: Option<String<CMDLINE_MAX>>,
    on_poweroff: Action,
    on_reboot: Action,
    on_crash: Action,
    disks: Vec<String<DISK_SPEC_MAX>, MAX_DISKS>,
    warnings: Vec<String<WARNING_MAX>, MAX_WARNINGS>,
}

/// The quoted strings of a list's text, in order.
fn list_strings(line: usize, key: &str, body: &str) -> Result<Vec<String<DISK_SPEC_MAX>, MAX_DISKS>, ConfigError> {
    let mut out = Vec::new();
    let mut rest = body.trim();
    while !rest.is_empty() {
        let q = rest.as_bytes()[0];
        if q != b'"' && q != b'\'' {
            return Err(bad(line, key, "expected a list of quoted strings"));
        }
        let end = rest[1..].find(q as char).ok_or(bad(line, key, "unterminated string"))? + 1;
        let mut s = String::new();
        s.push_str(&rest[1..end]).map_err(|_| bad(line, key, "an entry is too long"))?;
        out.push(s).map_err(|_| bad(line, key, "too many entries"))?;
        rest = rest[end + 1..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    Ok(out)
}

/// Splits `text` into statements: `(line number, statement)`, comments and
/// blank ones dropped. `;` and newlines end statements outside quotes and
/// brackets.
fn statements(text: &str, mut f: impl FnMut(usize, &str) -> Result<(), ConfigError>) -> Result<(), ConfigError> {
    let mut line = 1;
    let mut start = 0;
    let mut start_line = 1;
    let mut quote: Option<u8> = None;
    let mut depth = 0u32;
    let mut comment = false;
    let b = text.as_bytes();
    let mut i = 0;
    while i <= b.len() {
        let c = b.get(i).copied();
        let end = match (c, quote) {
            (None, _) => true,
            (Some(b'\n'), Some(_)) => {
                return Err(ConfigError::Syntax { line, what: "string not closed on its line" })
            }
            (Some(q), Some(open)) if q == open => {
                quote = None;
                false
            }
            (Some(_), Some(_)) => false,
            (Some(b'\n'), None) => depth == 0 || comment,
            _ if comment => false,
            (Some(b'#'), None) => {
                comment = true;
                false
            }
            (Some(q @ (b'"' | b'\'')), None) => {
                quote = Some(q);
                false
            }
            (Some(b'['), None) => {
                depth += 1;
                false
            }
            (Some(b']'), None) => {
                depth = depth.saturating_sub(1);
                false
            }
            (Some(b';'), None) => depth == 0,
            _ => false,
        };
        if end {
            let mut s = &text[start..i];
            if let Some(h) = find_comment(s) {
                s = &s[..h];
            }
            let s = s.trim();
            if !s.is_empty() {
                f(start_line, s)?;
            }
            if c == Some(b'\n') {
                comment = false;
            }
            start = i + 1;
            start_line = if c == Some(b'\n') { line + 1 } else { line };
        }
        if c == Some(b'\n') {
            line += 1;
        }
        i += 1;
    }
    Ok(())
}

/// Where a `#` comment starts in a statement, outside quotes.
fn find_comment(s: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in s.bytes().enumerate() {
        match (c, quote) {
            (q, Some(open)) if q == open => quote = None,
            (_, Some(_)) => {}
            (b'"' | b'\'', None) => quote = Some(c),
            (b'#', None) => return Some(i),
            _ => {}
        }
    }
    None
}

fn parse_statement(line: usize, s: &str) -> Result<(&str, Value<'_>), ConfigError> {
    let (key, value) = s.split_once('=').ok_or(ConfigError::Syntax { line, what: "expected 'key = value'" })?;
    let key = key.trim();
    if key.is_empty() || !key.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') {
        return Err(ConfigError::Syntax { line, what: "a key is letters, digits and '_'" });
    }
    let value = value.trim();
    let v = if let Some(rest) = value.strip_prefix('"') {
        Value::Str(rest.strip_suffix('"').ok_or(ConfigError::Syntax { line, what: "unterminated string" })?)
    } else if let Some(rest) = value.strip_prefix('\'') {
        Value::Str(rest.strip_suffix('\'').ok_or(ConfigError::Syntax { line, what: "unterminated string" })?)
    } else if value.starts_with('[') {
        if !value.ends_with(']') {
            return Err(ConfigError::Syntax { line, what: "unterminated list" });
        }
        Value::List(&value[1..value.len() - 1])
    } else if value.is_empty() {
        return Err(ConfigError::Syntax { line, what: "missing value" });
    } else if value.bytes().any(|c| c.is_ascii_whitespace()) {
        return Err(ConfigError::Syntax { line, what: "a value with spaces must be quoted" });
    } else {
        Value::Word(value)
    };
    Ok((key, v))
}

fn bad(line: usize, key: &str, what: &'static str) -> ConfigError {
    let mut k = String::new();
    for c in key.chars() {
        if k.push(c).is_err() {
            break;
        }
    }
    ConfigError::BadValue { line, key: k, what }
}

fn string<const N: usize>(line: usize, key: &str, v: Value) -> Result<String<N>, ConfigError> {
    let s = match v {
        Value::Str(s) | Value::Word(s) => s,
        Value::List(_) => return Err(bad(line, key, "expected a string, not a list")),
    };
    let mut out = String::new();
    out.push_str(s).map_err(|_| bad(line, key, "too long"))?;
    Ok(out)
}

fn number(line: usize, key: &str, v: Value) -> Result<u64, ConfigError> {
    match v {
        Value::Word(s) | Value::Str(s) => s.parse().map_err(|_| bad(line, key, "expected a number")),
        Value::List(_) => Err(bad(line, key, "expected a number, not a list")),
    }
}

impl Partial {
    fn warn(&mut self, line: usize, what: fmt::Arguments) {
        let mut w: String<WARNING_MAX> = String::new();
        if line > 0 {
            let _ = fmt::write(&mut w, format_args!("line {}: ", line));
        }
        let _ = fmt::write(&mut w, what);
        let _ = self.warnings.push(w);
    }

    fn apply(&mut self, line: usize, key: &str, v: Value) -> Result<(), ConfigError> {
        match key {
            "name" => {
                let n: String<NAME_MAX> = string(line, key, v)?;
                if n.is_empty() || n.bytes().any(|c| c.is_ascii_whitespace() || c.is_ascii_control()) {
                    return Err(bad(line, key, "a name is one word"));
                }
                if n.bytes().all(|c| c.is_ascii_digit()) {
                    return Err(bad(line, key, "a name cannot be a number (it would read as a domain id)"));
                }
                if n.as_str() == "Domain-0" {
                    return Err(bad(line, key, "Domain-0 is Dom0's name"));
                }
                self.name = Some(n);
            }
            "kernel" => self.kernel = Some(string(line, key, v)?),
            "memory" => {
                self.memory = Some(number(line, key, v)?);
                self.memory_line = line;
            }
            "maxmem" => {
                self.maxmem = Some(number(line, key, v)?);
                self.maxmem_line = line;
            }
            "vcpus" => {
                let n = number(line, key, v)?;
                if n == 0 || n > hypercall_abi::arch::XEN_LEGACY_MAX_VCPUS as u64 {
                    return Err(bad(line, key, "must be 1 to 32"));
                }
                self.vcpus = n as u32;
            }
            "ramdisk" => self.ramdisk = Some(string(line, key, v)?),
            "cmdline" => self.cmdline = Some(string(line, key, v)?),
            "root" => self.root = Some(string(line, key, v)?),
            "extra" => self.extra = Some(string(line, key, v)?),
            "on_poweroff" | "on_reboot" | "on_crash" => {
                let s: String<16> = string(line, key, v).map_err(|_| bad(line, key, "expected destroy, restart or preserve"))?;
                let a = Action::parse(&s).ok_or(bad(line, key, "expected destroy, restart or preserve"))?;
                match key {
                    "on_poweroff" => self.on_poweroff = a,
                    "on_reboot" => self.on_reboot = a,
                    _ => self.on_crash = a,
                }
            }
            "disk" => match v {
                Value::List(body) => self.disks = list_strings(line, key, body)?,
                _ => self.disks = list_strings(line, key, &alloc::format!("'{}'", string::<DISK_SPEC_MAX>(line, key, v)?))?,
            },
            "type" if matches!(v, Value::Str("pv") | Value::Word("pv")) => {}
            "vif" => self.warn(line, format_args!("vif: networking is not offered yet; the guest gets no network interface")),
            _ => self.warn(line, format_args!("unknown or unsupported key '{}' ignored", key)),
        }
        Ok(())
    }
}

/// Parses a configuration file, then the `key=value` overrides.
pub fn parse<'a>(text: &str, overrides: impl IntoIterator<Item = &'a str>) -> Result<DomainConfig, ConfigError> {
    let mut p = Partial {
        name: None,
        kernel: None,
        memory: None,
        maxmem: None,
        memory_line: 0,
        maxmem_line: 0,
        vcpus: 1,
        ramdisk: None,
        cmdline: None,
        root: None,
        extra: None,
        on_poweroff: Action::Destroy,
        on_reboot: Action::Restart,
        on_crash: Action::Destroy,
        disks: Vec::new(),
        warnings: Vec::new(),
    };
    statements(text, |line, s| {
        let (k, v) = parse_statement(line, s)?;
        p.apply(line, k, v)
    })?;
    for o in overrides {
        statements(o, |_, s| {
            let (k, v) = parse_statement(0, s)?;
            p.apply(0, k, v)
        })?;
    }
    let memory = p.memory.unwrap_or(32);
    if memory == 0 {
        return Err(bad(p.memory_line, "memory", "must be at least 1 MiB"));
    }
    let maxmem = p.maxmem.unwrap_or(memory);
    if maxmem < memory {
        return Err(bad(p.maxmem_line.max(p.memory_line), "maxmem", "is less than memory"));
    }
    // libxl's parse_cmdline: cmdline= alone, else "root=R E", "root=R" or E.
    let cmdline = match (p.cmdline.take(), p.root.take(), p.extra.take()) {
        (Some(c), root, extra) => {
            if root.is_some() || extra.is_some() {
                p.warn(0, format_args!("ignoring root= and extra= in favour of cmdline="));
            }
            c
        }
        (None, Some(root), extra) => {
            let mut c = String::new();
            let joined = match extra {
                Some(e) => fmt::write(&mut c, format_args!("root={} {}", root, e)),
                None => fmt::write(&mut c, format_args!("root={}", root)),
            };
            joined.map_err(|_| bad(0, "root", "root= and extra= together are too long"))?;
            c
        }
        (None, None, extra) => extra.unwrap_or_default(),
    };
    Ok(DomainConfig {
        name: p.name.ok_or(ConfigError::Missing("name"))?,
        kernel: p.kernel.ok_or(ConfigError::Missing("kernel"))?,
        ramdisk: p.ramdisk,
        memory,
        maxmem,
        vcpus: p.vcpus,
        cmdline,
        on_poweroff: p.on_poweroff,
        on_reboot: p.on_reboot,
        on_crash: p.on_crash,
        disks: p.disks,
        warnings: p.warnings,
    })
}

/// The names `${domid:NAME}` refers to in a guest's command line, in order
/// (an unterminated reference ends the list; [`expand`] reports it).
pub fn domid_refs(cmdline: &str) -> impl Iterator<Item = &str> {
    let mut rest = cmdline;
    core::iter::from_fn(move || {
        let at = rest.find("${domid:")?;
        let after = &rest[at + 8..];
        let end = after.find('}')?;
        rest = &after[end + 1..];
        Some(&after[..end])
    })
}

/// Expands `${domid:NAME}` in a guest's command line to the id `lookup`
/// gives for NAME (a running domain's, or one Dom0 set aside for NAME), so
/// that guests can find each other without xenstore. `Err(name)` for an
/// unknown name or a line that grows too long.
pub fn expand(cmdline: &str, lookup: impl Fn(&str) -> Option<u16>) -> Result<String<CMDLINE_MAX>, &str> {
    let mut out = String::new();
    let mut rest = cmdline;
    while let Some(at) = rest.find("${domid:") {
        out.push_str(&rest[..at]).map_err(|_| cmdline)?;
        let after = &rest[at + 8..];
        let end = after.find('}').ok_or(&rest[at..])?;
        let name = &after[..end];
        let id = lookup(name).ok_or(name)?;
        write_num(&mut out, id).map_err(|_| cmdline)?;
        rest = &after[end + 1..];
    }
    out.push_str(rest).map_err(|_| cmdline)?;
    Ok(out)
}

fn write_num(out: &mut String<CMDLINE_MAX>, n: u16) -> Result<(), ()> {
    use core::fmt::Write;
    write!(out, "{}", n).map_err(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_made_as_xl_makes_it() {
        let cmd = |text: &str| parse(&alloc::format!("name=\"l\"\nkernel=\"vmlinuz\"\n{text}"), []).unwrap();
        assert_eq!(cmd("root=\"/dev/xvda1\"\nextra=\"console=hvc0\"").cmdline.as_str(), "root=/dev/xvda1 console=hvc0");
        assert_eq!(cmd("root=\"/dev/xvda1\"").cmdline.as_str(), "root=/dev/xvda1");
        assert_eq!(cmd("extra=\"console=hvc0\"").cmdline.as_str(), "console=hvc0");
        let c = cmd("cmdline=\"quiet\"\nroot=\"/dev/xvda1\"\nextra=\"x\"");
        assert_eq!(c.cmdline.as_str(), "quiet");
        assert_eq!(c.warnings.iter().map(|w| w.as_str()).collect::<std::vec::Vec<_>>(), ["ignoring root= and extra= in favour of cmdline="]);
        assert!(cmd("").cmdline.is_empty());
        let c = cmd("ramdisk=\"initrd.cpio\"");
        assert_eq!(c.ramdisk.as_deref(), Some("initrd.cpio"));
        assert!(c.warnings.is_empty());
        assert_eq!(cmd("").ramdisk, None);
    }

    #[test]
    fn reads_an_xl_cfg() {
        let c = parse(
            "# a guest\nname = \"g1\"\nkernel = 'pv-guest-kernel'  # the image\nmemory = 16\n\
             vcpus=2; extra = \"workload=banner x=#1\"\non_crash = \"preserve\"\nvif = [ 'bridge=xenbr0', ]\n",
            [],
        )
        .unwrap();
        assert_eq!(c.name.as_str(), "g1");
        assert_eq!(c.kernel.as_str(), "pv-guest-kernel");
        assert_eq!((c.memory, c.maxmem, c.vcpus), (16, 16, 2));
        assert_eq!(c.cmdline.as_str(), "workload=banner x=#1");
        assert_eq!(c.on_crash, Action::Preserve);
        assert_eq!(c.on_poweroff, Action::Destroy);
        assert_eq!(c.on_reboot, Action::Restart);
        assert_eq!(c.warnings.len(), 1);
        assert_eq!(c.warnings[0].as_str(), "line 7: vif: networking is not offered yet; the guest gets no network interface");
    }

    #[test]
    fn disks_are_read_and_unknown_keys_warned_about() {
        let c = parse(
            "name='g'\nkernel='k'\ntype='pv'\ndisk = [ 'format=raw, vdev=xvda, access=rw, target=a',\n 'b,raw,xvdb,ro' ]\nmemmory = 16\n",
            ["colour=blue"],
        )
        .unwrap();
        assert_eq!(c.disks.iter().map(|d| d.as_str()).collect::<std::vec::Vec<_>>(), ["format=raw, vdev=xvda, access=rw, target=a", "b,raw,xvdb,ro"]);
        let w: std::vec::Vec<&str> = c.warnings.iter().map(|w| w.as_str()).collect();
        assert_eq!(w, ["line 6: unknown or unsupported key 'memmory' ignored", "unknown or unsupported key 'colour' ignored"]);
        assert!(parse("name='g'\nkernel='k'\ndisk = [ target=a ]\n", []).is_err(), "unquoted list entries");
    }

    #[test]
    fn command_line_overrides_come_last() {
        let c = parse("name=\"g1\"\nkernel=\"k\"\n", ["name=g2", "memory=24", "extra=\"a b\""]).unwrap();
        assert_eq!(c.name.as_str(), "g2");
        assert_eq!(c.memory, 24);
        assert_eq!(c.cmdline.as_str(), "a b");
    }

    #[test]
    fn domids_of_running_domains_expand() {
        let lookup = |n: &str| (n == "ping").then_some(3);
        assert_eq!(expand("workload=pong peer=${domid:ping} x", lookup).unwrap().as_str(), "workload=pong peer=3 x");
        assert_eq!(expand("plain", lookup).unwrap().as_str(), "plain");
        assert_eq!(expand("peer=${domid:nobody}", lookup), Err("nobody"));
        assert!(expand("peer=${domid:ping", lookup).is_err());
    }

    #[test]
    fn domid_references_are_listed() {
        let refs: std::vec::Vec<_> = domid_refs("a=${domid:x} b=${domid:y}${domid:x} c=${domid:z").collect();
        assert_eq!(refs, ["x", "y", "x"]);
        assert_eq!(domid_refs("plain").count(), 0);
    }

    #[test]
    fn mistakes_are_named() {
        let e = |t: &str| parse(t, []).unwrap_err();
        assert_eq!(e("kernel=\"k\"\n"), ConfigError::Missing("name"));
        assert_eq!(e("name=\"a\"\n"), ConfigError::Missing("kernel"));
        assert!(matches!(e("name=\"a\nkernel=\"k\"\n"), ConfigError::Syntax { line: 1, .. }));
        assert!(matches!(e("name=\"a\"\nmemory = lots\n"), ConfigError::BadValue { line: 2, .. }));
        assert!(matches!(e("name=\"a\"\nvcpus = 0\n"), ConfigError::BadValue { line: 2, .. }));
        assert!(matches!(e("name=\"12\"\n"), ConfigError::BadValue { line: 1, .. }));
        assert!(matches!(e("name\n"), ConfigError::Syntax { line: 1, .. }));
        assert!(matches!(e("name=\"a\"\nkernel=\"k\"\non_crash=\"explode\"\n"), ConfigError::BadValue { line: 3, .. }));
        let m = std::format!("{}", e("x=1\n\nmemory=\"x\"\n"));
        assert_eq!(m, "line 3: memory: expected a number");
        // Found only after the whole file is read: still its line, not the
        // command line's.
        let m = std::format!("{}", e("name=\"a\"\nkernel=\"k\"\nmemory = 0\n"));
        assert_eq!(m, "line 3: memory: must be at least 1 MiB");
        let m = std::format!("{}", e("name=\"a\"\nmemory = 64\nmaxmem = 32\n"));
        assert_eq!(m, "line 3: maxmem: is less than memory");
        let m = std::format!("{}", e("name=\"a\"\nvcpus = 99\n"));
        assert_eq!(m, "line 2: vcpus: must be 1 to 32", "no Rust range syntax");
        let m = std::format!("{}", parse("name=\"a\"\nkernel=\"k\"\n", ["vcpus=0"]).unwrap_err());
        assert_eq!(m, "key=value after the file name: vcpus: must be 1 to 32");
    }
}
