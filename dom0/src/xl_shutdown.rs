//! `xl shutdown` and `xl reboot`: the cooperative way, as libxl's
//! `libxl_domain_shutdown`/`reboot` for a PV guest: the request is written
//! to the guest's `control/shutdown`, which the guest watches, takes and
//! acts on. Unlike xl, which returns at once unless `-w`, the command
//! waits (up to `-T` seconds, 10 by default) for the guest to shut down,
//! since the prompt has no background; if it does not, `-F` shuts it down
//! from the outside (`SCHEDOP_remote_shutdown`), as xl's `-F` falls back
//! when a guest has no PV control.

use alloc::format;

use hypercall_abi::errno::Errno;
use hypercall_abi::sched::{SHUTDOWN_poweroff, SHUTDOWN_reboot};
use pv_rt::println;

use crate::cmdline;
use crate::hv;
use crate::xl::Toolstack;

fn usage(cmd: &str) -> Result<(), ()> {
    println!("usage: xl {} [-F] [-T Seconds] <Domain>", cmd);
    Err(())
}

impl Toolstack {
    pub(crate) fn cmd_shutdown(&mut self, cmd: &str, args: &[&str]) -> Result<(), ()> {
        let (request, reason) = if cmd == "reboot" { ("reboot", SHUTDOWN_reboot) } else { ("poweroff", SHUTDOWN_poweroff) };
        let (mut force, mut timeout, mut dom) = (false, 10_000_000_000u64, None);
        let mut it = args.iter();
        while let Some(&a) = it.next() {
            match a {
                "-F" => force = true,
                "-w" => {} // we always wait
                "-T" => match it.next().and_then(|v| cmdline::parse_seconds(v)) {
                    Some(ns) => timeout = ns,
                    None => return usage(cmd),
                },
                d if dom.is_none() && !d.starts_with('-') => dom = Some(d),
                _ => return usage(cmd),
            }
        }
        let Some(dom) = dom else { return usage(cmd) };
        let d = self.resolve(dom)?;
        if d == 0 {
            println!("xl: {}: not for Domain-0", cmd);
            return Err(());
        }
        let path = format!("/local/domain/{}/control/shutdown", d);
        if let Err(e) = self.xenstored().write(0, &path, request.as_bytes()) {
            println!("xl: {}: writing {} failed: {}", cmd, path, e);
            return Err(());
        }
        let deadline = self.now_ns() + timeout;
        loop {
            match hv::getdomaininfo(d) {
                Err(Errno::ESRCH) => return Ok(()),
                Ok(info) if info.shutdown_reason().is_some() => return Ok(()),
                _ => {}
            }
            if self.now_ns() >= deadline {
                break;
            }
            self.serve_until(deadline);
        }
        let _ = self.xenstored().write(0, &path, b"");
        if !force {
            println!("xl: domain {} did not {} within the timeout; 'xl {} -F {}' forces it", dom, if cmd == "reboot" { "reboot" } else { "shut down" }, cmd, dom);
            return Err(());
        }
        println!("xl: domain {} did not answer: forcing the {} (SCHEDOP_remote_shutdown)", dom, request);
        if let Err(e) = hv::remote_shutdown(d, reason) {
            println!("xl: {} of domain {} failed: {}", cmd, dom, e);
            return Err(());
        }
        Ok(())
    }
}
