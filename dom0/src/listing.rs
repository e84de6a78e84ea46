//! One row of `xl list` as xl 4.17 prints it (`xl_list.c`'s
//! `list_domains`): name, id, memory in MiB, online vCPUs, the six state
//! letters, CPU seconds.

use hypercall_abi::domctl::*;

/// One row of `xl list`, as xl 4.17 prints it.
pub struct ListLine<'a> {
    pub name: &'a str,
    pub info: &'a XenDomctlGetdomaininfo,
}

impl core::fmt::Display for ListLine<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let i = self.info;
        let flag = |bit: u32, c: char| if i.flags & bit != 0 { c } else { '-' };
        // xl's shutdown_reason_letters: poweroff '-', reboot 'r', suspend
        // 's', crash 'c', watchdog 'w', soft_reset 'S'.
        let reason = match i.shutdown_reason() {
            None => '-',
            Some(r) => *b"-rscwS".get(r as usize).unwrap_or(&b'?') as char,
        };
        // %8.1f of seconds, rounded as printf does.
        let tenths = (i.cpu_time + 50_000_000) / 100_000_000;
        let mem_mib = (i.tot_pages + i.outstanding_pages) / 256;
        write!(
            f,
            "{:<40} {:>5} {:>5} {:>5}     {}{}{}{}{}{}  {:>6}.{}",
            self.name,
            i.domain,
            mem_mib,
            i.nr_online_vcpus,
            flag(XEN_DOMINF_running, 'r'),
            flag(XEN_DOMINF_blocked, 'b'),
            flag(XEN_DOMINF_paused, 'p'),
            flag(XEN_DOMINF_shutdown, 's'),
            reason,
            flag(XEN_DOMINF_dying, 'd'),
            tenths / 10,
            tenths % 10
        )
    }
}

/// One row of `xl top` (xentop's columns up to VCPUS): `cpu_permille`
/// is the share of one CPU used since the previous refresh, in tenths of a
/// percent; `total_kib` the host's memory.
pub struct TopLine<'a> {
    pub name: &'a str,
    pub info: &'a XenDomctlGetdomaininfo,
    pub cpu_permille: u64,
    pub total_kib: u64,
}

/// xentop's header for [`TopLine`]'s columns.
pub const TOP_HEADER: &str = "      NAME  STATE   CPU(sec) CPU(%)     MEM(k) MEM(%)  MAXMEM(k) MAXMEM(%) VCPUS";

impl core::fmt::Display for TopLine<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let i = self.info;
        let flag = |bit: u32, c: char| if i.flags & bit != 0 { c } else { '-' };
        let crashed = if i.shutdown_reason() == Some(hypercall_abi::sched::SHUTDOWN_crash) { 'c' } else { '-' };
        let mem_kib = i.tot_pages.saturating_mul(4);
        // Tenths of a percent of the host's memory, rounded.
        let share = |kib: u64| kib.saturating_mul(1000).saturating_add(self.total_kib / 2).checked_div(self.total_kib).unwrap_or(0);
        let pct = |tenths: u64| Tenths(tenths);
        write!(
            f,
            "{:>10} {}{}{}{}{}{} {:>10} {:>6} {:>10} {:>6} ",
            self.name,
            flag(XEN_DOMINF_dying, 'd'),
            flag(XEN_DOMINF_shutdown, 's'),
            flag(XEN_DOMINF_blocked, 'b'),
            crashed,
            flag(XEN_DOMINF_paused, 'p'),
            flag(XEN_DOMINF_running, 'r'),
            i.cpu_time / 1_000_000_000,
            pct(self.cpu_permille),
            mem_kib,
            pct(share(mem_kib)),
        )?;
        // Dom0 (and any domain without a limit) has max_pages ~0.
        if i.max_pages >= u32::MAX as u64 {
            write!(f, "{:>10} {:>9}", "no limit", "n/a")?;
        } else {
            write!(f, "{:>10} {:>9}", i.max_pages * 4, pct(share(i.max_pages * 4)))?;
        }
        write!(f, " {:>5}", i.nr_online_vcpus)
    }
}

/// Tenths as `%.1f` prints them.
struct Tenths(u64);

impl core::fmt::Display for Tenths {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mut s: heapless::String<24> = heapless::String::new();
        let _ = core::fmt::write(&mut s, format_args!("{}.{}", self.0 / 10, self.0 % 10));
        f.pad(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hypercall_abi::sched::SHUTDOWN_crash;

    #[test]
    fn top_rows_read_like_xentop() {
        let i = XenDomctlGetdomaininfo {
            domain: 1,
            flags: XEN_DOMINF_blocked,
            tot_pages: 4096,
            max_pages: 4352,
            nr_online_vcpus: 1,
            cpu_time: 3_400_000_000,
            ..Default::default()
        };
        let row = std::format!("{}", TopLine { name: "hello", info: &i, cpu_permille: 125, total_kib: 163840 });
        assert_eq!(row, "     hello --b---          3   12.5      16384   10.0      17408      10.6     1");
        assert_eq!(row.len(), TOP_HEADER.len(), "columns line up with the header");
        let dom0 = XenDomctlGetdomaininfo { max_pages: u64::MAX, ..i };
        let row = std::format!("{}", TopLine { name: "Domain-0", info: &dom0, cpu_permille: 0, total_kib: 163840 });
        assert!(row.contains("  no limit       n/a"), "{row}");
    }

    #[test]
    fn list_rows_read_like_xl() {
        let mut i = XenDomctlGetdomaininfo {
            domain: 0,
            flags: XEN_DOMINF_running,
            tot_pages: 16384,
            nr_online_vcpus: 1,
            cpu_time: 1_260_000_000,
            ..Default::default()
        };
        assert_eq!(
            std::format!("{}", ListLine { name: "Domain-0", info: &i }),
            "Domain-0                                     0    64     1     r-----       1.3"
        );
        i.domain = 3;
        i.flags = XEN_DOMINF_shutdown | (SHUTDOWN_crash << XEN_DOMINF_shutdownshift) | XEN_DOMINF_paused;
        i.cpu_time = 12_345_000_000_000;
        assert_eq!(
            std::format!("{}", ListLine { name: "g1", info: &i }),
            "g1                                           3    64     1     --psc-   12345.0"
        );
    }
}
