//! `xl mem-set` and `xl mem-max`, as libxl does them: the target goes to
//! the guest's `memory/target` in XenStore, where its balloon driver
//! (pv-rt's `xenbus::balloon`) picks it up and gives pages back or takes
//! them; the limit goes to the hypervisor (`XEN_DOMCTL_max_mem`, with xl's
//! 1 MiB of slack) and to `memory/static-max`. The target may not exceed
//! the limit, nor the limit fall under the target (libxl's checks, with
//! its messages).

#[cfg(not(test))]
use {
    crate::builder::MAXMEM_SLACK_KB,
    crate::hv,
    crate::xl::Toolstack,
    alloc::format,
};

/// xl's `parse_mem_size_kb`: a number, MiB unless it ends in b, k, m, g
/// or t. `None` for anything else or a size that does not fit.
pub fn parse_mem_kb(s: &str) -> Option<u64> {
    let (num, unit) = match s.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&s[..i], c.to_ascii_lowercase()),
        _ => (s, 'm'),
    };
    let n: u64 = num.parse().ok()?;
    match unit {
        'b' => Some(n >> 10),
        'k' => Some(n),
        'm' => n.checked_mul(1 << 10),
        'g' => n.checked_mul(1 << 20),
        't' => n.checked_mul(1 << 30),
        _ => None,
    }
}

#[cfg(not(test))]
impl Toolstack {
    pub(crate) fn cmd_mem(&mut self, cmd: &str, args: &[&str]) -> Result<(), ()> {
        let [dom, size] = args else {
            crate::xl::xerr(format_args!("usage: xl {} <Domain> <Mem>", cmd));
            return Err(());
        };
        let Some(kb) = parse_mem_kb(size) else {
            crate::xl::xerr(format_args!("invalid memory size: {}", size));
            return Err(());
        };
        let d = self.resolve(dom)?;
        if d == 0 {
            crate::xl::xerr(format_args!("{}: not for Domain-0 (it has no balloon driver)", cmd));
            return Err(());
        }
        let home = format!("/local/domain/{}", d);
        let read = |ts: &mut Self, key: &str| -> Option<u64> {
            let v = ts.xenstored().read(0, &format!("{}/memory/{}", home, key)).ok()?;
            core::str::from_utf8(&v).ok()?.trim().parse().ok()
        };
        let (Some(target), Some(max)) = (read(self, "target"), read(self, "static-max")) else {
            crate::xl::xerr(format_args!("cannot get memory info from {}/memory", home));
            return Err(());
        };
        if cmd == "mem-set" {
            if kb > max {
                crate::xl::xerr(format_args!("memory_dynamic_max must be less than or equal to memory_static_max"));
                return Err(());
            }
            return self.write_mem(&home, "target", kb);
        }
        if kb < target {
            crate::xl::xerr(format_args!("memory_static_max must be greater than or or equal to memory_dynamic_max"));
            return Err(());
        }
        if let Err(e) = hv::max_mem(d, kb + MAXMEM_SLACK_KB) {
            crate::xl::xerr(format_args!("setting domain {}'s maximum memory to {} KiB failed: {}", d, kb, e));
            return Err(());
        }
        self.write_mem(&home, "static-max", kb)
    }

    fn write_mem(&mut self, home: &str, key: &str, kb: u64) -> Result<(), ()> {
        let path = format!("{}/memory/{}", home, key);
        if let Err(e) = self.xenstored().write(0, &path, format!("{}", kb).as_bytes()) {
            crate::xl::xerr(format_args!("writing {}: {}", path, e));
            return Err(());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::parse_mem_kb;

    #[test]
    fn sizes_as_xl_reads_them() {
        assert_eq!(parse_mem_kb("16"), Some(16 << 10));
        assert_eq!(parse_mem_kb("8m"), Some(8 << 10));
        assert_eq!(parse_mem_kb("8M"), Some(8 << 10));
        assert_eq!(parse_mem_kb("2048k"), Some(2048));
        assert_eq!(parse_mem_kb("1g"), Some(1 << 20));
        assert_eq!(parse_mem_kb("4096b"), Some(4));
        for bad in ["", "m", "-1", "1x", "1.5m", "99999999999999999999t", "18014398509481984t"] {
            assert_eq!(parse_mem_kb(bad), None, "{bad}");
        }
    }
}
