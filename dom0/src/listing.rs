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

#[cfg(test)]
mod tests {
    use super::*;
    use hypercall_abi::sched::SHUTDOWN_crash;

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
