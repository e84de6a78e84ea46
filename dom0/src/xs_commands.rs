//! Dom0's `xenstore-*` commands, as Xen's `xenstore-ls`, `-read`,
//! `-write`, `-rm` and `-watch` tools print: they talk to the store daemon
//! as Dom0 (privileged), as Xen's tools talk to xenstored.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;

use pv_rt::println;

use crate::cmdline;
use crate::xl::Toolstack;

fn fail(args: core::fmt::Arguments) -> Result<(), ()> {
    println!("{}", args);
    Err(())
}

/// A value as xenstore-ls shows it: printable ASCII as is, the rest as
/// `\xNN` (and `\\`, `\"`), so a guest's bytes cannot drive the terminal.
fn escaped(v: &[u8]) -> String {
    let mut s = String::new();
    for &c in v {
        match c {
            b'\\' => s.push_str("\\\\"),
            b'"' => s.push_str("\\\""),
            0x20..=0x7e => s.push(c as char),
            _ => {
                let _ = write!(s, "\\x{:02x}", c);
            }
        }
    }
    s
}

impl Toolstack {
    pub(crate) fn cmd_xenstore(&mut self, cmd: &str, args: &[&str]) -> Result<(), ()> {
        match cmd {
            "xenstore-ls" => self.xs_ls(args),
            "xenstore-read" => self.xs_read(args),
            "xenstore-write" => self.xs_write(args),
            "xenstore-rm" => self.xs_rm(args),
            "xenstore-watch" => self.xs_watch(args),
            _ => fail(format_args!("xl: unknown command '{}' (try 'help')", cmd)),
        }
    }

    fn xs_ls(&mut self, args: &[&str]) -> Result<(), ()> {
        let (mut full, mut perms, mut path) = (false, false, "/");
        for a in args {
            match *a {
                "-f" => full = true,
                "-p" => perms = true,
                p if !p.starts_with('-') => path = p,
                _ => return fail(format_args!("usage: xenstore-ls [-f] [-p] [Path]")),
            }
        }
        let xs = self.xenstored();
        if let Err(e) = xs.read(0, path) {
            return fail(format_args!("xenstore-ls: {}: {}", path, e));
        }
        // Depth-first, as xenstore-ls walks: (path, depth).
        let mut todo: Vec<(String, usize)> = Vec::new();
        let kids = |xs: &mut crate::xenstore::daemon::Xenstored, p: &str, depth: usize| -> Vec<(String, usize)> {
            let names = xs.directory(0, p).unwrap_or_default();
            names.into_iter().rev().map(|n| (if p == "/" { alloc::format!("/{}", n) } else { alloc::format!("{}/{}", p, n) }, depth)).collect()
        };
        todo.extend(kids(xs, path, 0));
        while let Some((p, depth)) = todo.pop() {
            let v = xs.read(0, &p).unwrap_or_default();
            let name = if full { p.as_str() } else { p.rsplit('/').next().unwrap_or("") };
            let mut line = String::new();
            let _ = write!(line, "{:indent$}{} = \"{}\"", "", name, escaped(&v), indent = if full { 0 } else { depth });
            if perms {
                let p = xs.get_perms(0, &p).unwrap_or_default();
                let _ = write!(line, "  ({})", p.join(","));
            }
            println!("{}", line);
            todo.extend(kids(xs, &p, depth + 1));
        }
        Ok(())
    }

    fn xs_read(&mut self, args: &[&str]) -> Result<(), ()> {
        if args.is_empty() {
            return fail(format_args!("usage: xenstore-read Path..."));
        }
        for p in args {
            match self.xenstored().read(0, p) {
                Ok(v) => println!("{}", escaped(&v)),
                Err(e) => return fail(format_args!("xenstore-read: couldn't read path {}: {}", p, e)),
            }
        }
        Ok(())
    }

    fn xs_write(&mut self, args: &[&str]) -> Result<(), ()> {
        if args.is_empty() || !args.len().is_multiple_of(2) {
            return fail(format_args!("usage: xenstore-write Path Value [Path Value...]"));
        }
        for pair in args.chunks(2) {
            if let Err(e) = self.xenstored().write(0, pair[0], pair[1].as_bytes()) {
                return fail(format_args!("xenstore-write: could not write path {}: {}", pair[0], e));
            }
        }
        Ok(())
    }

    fn xs_rm(&mut self, args: &[&str]) -> Result<(), ()> {
        if args.is_empty() {
            return fail(format_args!("usage: xenstore-rm Path..."));
        }
        for p in args {
            if let Err(e) = self.xenstored().rm(0, p) {
                return fail(format_args!("xenstore-rm: could not remove path {}: {}", p, e));
            }
        }
        Ok(())
    }

    /// Prints each event's path (the first comes at once, as the watch is
    /// set) until `-n` events (default 2) or `-T` seconds (default 10).
    fn xs_watch(&mut self, args: &[&str]) -> Result<(), ()> {
        const USAGE: &str = "usage: xenstore-watch [-n Count] [-T Seconds] Path";
        let (mut count, mut secs, mut path): (u64, u64, Option<&str>) = (2, 10_000_000_000, None);
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match *a {
                "-n" => match it.next().and_then(|v| v.parse().ok()) {
                    Some(n) => count = n,
                    None => return fail(format_args!("{}", USAGE)),
                },
                "-T" => match it.next().and_then(|v| cmdline::parse_seconds(v)) {
                    Some(ns) => secs = ns,
                    None => return fail(format_args!("{}", USAGE)),
                },
                p if path.is_none() && !p.starts_with('-') => path = Some(p),
                _ => return fail(format_args!("{}", USAGE)),
            }
        }
        let Some(path) = path else { return fail(format_args!("{}", USAGE)) };
        let token = "xenstore-watch";
        self.xenstored().take_dom0_events();
        if let Err(e) = self.xenstored().watch(path, token) {
            return fail(format_args!("xenstore-watch: could not watch {}: {}", path, e));
        }
        let deadline = self.now_ns() + secs;
        let mut seen = 0;
        while seen < count && self.now_ns() < deadline {
            for e in self.xenstored().take_dom0_events() {
                if e.token == token && seen < count {
                    println!("{}", e.path);
                    seen += 1;
                }
            }
            if seen < count {
                self.serve_until(deadline);
            }
        }
        let _ = self.xenstored().unwatch(path, token);
        if seen < count {
            println!("xenstore-watch: {} event(s) of {} before the timeout", seen, count);
        }
        Ok(())
    }
}

