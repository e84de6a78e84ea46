//! `workload=grant-accept peer=<domid> [timeout=<s>]`: the mapping half of
//! the grant demo (the protocol is in `grant.rs`). Maps the peer's
//! reference 8 (`GNTMAP_host_map`, retrying while the peer is not ready),
//! binds the port the mailbox names, writes a request, notifies, sleeps in
//! `SCHEDOP_poll` until the answer, then checks what it must not be able to
//! do, says bye, unmaps and notifies.
//!
//! The negative checks expect what Xen 4.17 answers
//! (`xen/common/grant_table.c`, `xen/common/domctl.c`): an entry granted to
//! another domain, or not granted at all, fails to map with
//! `GNTST_general_error` ("Bad flags ... or dom"), as does a writable
//! mapping of a read-only grant ("Attempt to write-pin a r/o grant entry");
//! `GNTST_permission_denied` comes only from an XSM policy. A reference past
//! the granter's table is `GNTST_bad_gntref`; domctl and sysctl from a
//! guest are `-EPERM`.

// Xen's constant names (`GNTST_bad_domain`) in patterns.
#![allow(non_upper_case_globals)]

use core::ptr;

use hypercall_abi::grant::*;
use hypercall_abi::{DomId, Errno};
use pv_rt::gnttab::{self, Gntst, GnttabError};
use pv_rt::println;

use super::grant::*;
use crate::check::Checks;

pub fn run(cmd: &str) {
    let mut c = Checks::default();
    if let Err(what) = accept(cmd, &mut c) {
        println!("grant-accept: {}", what);
        c.eq("grant-accept completed", false, true);
    }
    c.verdict();
}

fn accept(cmd: &str, c: &mut Checks) -> Step<()> {
    let Some(peer) = peer_option(cmd) else {
        return give_up("usage: workload=grant-accept peer=<domid> [timeout=<seconds>]");
    };
    let timeout = timeout_option(cmd);
    let mut env = Env::new().map_err(failed("setting up memory and shared_info"))?;
    let me = whoami().map_err(failed("finding our domain id"))?;
    println!("grant-accept: I am domain {}, my peer is domain {}", me, peer);
    // Xen writes our L1 entries for grant mappings: the tables must exist.
    for va in [MAP_VA, MAP2_VA] {
        env.mm.ensure_l1(va).map_err(failed("making page tables"))?;
    }

    let handle = map_mailbox(&env, peer, timeout)?;
    let mb = MAP_VA as *mut Mailbox;
    let magic = mb_read!(mb, magic);
    c.eq("grant-accept mailbox magic", magic == MAGIC, true);
    let (port, ro_ref) = (mb_read!(mb, port), mb_read!(mb, ro_ref));
    let local = bind_interdomain(peer, port).map_err(failed("EVTCHNOP_bind_interdomain"))?;
    env.mask(local);
    // Xen marks a freshly bound port pending ("we may have lost
    // notifications"): that one is not the answer.
    env.take_pending(local);
    println!(
        "grant-accept: mapped ref {} of domain {}; bound its port {} as my port {}",
        GREF_MAILBOX, peer, port, local
    );

    let request = text(format_args!("hello from domain {}", me));
    // SAFETY: the request fields lie in the mapped mailbox.
    unsafe { put_msg(ptr::addr_of_mut!((*mb).request), ptr::addr_of_mut!((*mb).request_len), &request) };
    core::sync::atomic::fence(core::sync::atomic::Ordering::Release);
    mb_write!(mb, request_seq, 1);
    send(local).map_err(failed("EVTCHNOP_send"))?;
    println!("grant-accept: wrote \"{}\" and notified; waiting", request);

    let deadline = env.deadline(timeout);
    if !env.wait(local, deadline, || mb_read!(mb, answer_seq) == 1) {
        return give_up("no answer from the peer before the timeout");
    }
    // SAFETY: the answer fields lie in the mapped mailbox.
    let answer = unsafe { get_msg(ptr::addr_of!((*mb).answer), ptr::addr_of!((*mb).answer_len)) };
    println!("grant-accept: domain {} answered: \"{}\"", peer, answer);
    c.eq("grant-accept answer", answer.as_str(), text(format_args!("hello back from domain {}", peer)).as_str());

    negative_checks(c, peer, ro_ref);

    mb_write!(mb, bye, 1);
    core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
    // SAFETY: we are done with the mailbox (`mb` is not used after this).
    let r = unsafe { gnttab::unmap(MAP_VA, handle) };
    c.eq("grant-accept unmap of the mailbox", Gntst::of(&r), Gntst(GNTST_okay));
    send(local).map_err(failed("EVTCHNOP_send"))?;
    let _ = close(local);
    println!("grant-accept: unmapped the mailbox, notified, closed my port");
    Ok(())
}

/// Maps the peer's mailbox writable at [`MAP_VA`]. Until the peer exists,
/// has a table and has written the entry, Xen answers `GNTST_bad_domain`,
/// `GNTST_bad_gntref` or `GNTST_general_error`: ask again every 10 ms until
/// the timeout.
fn map_mailbox(env: &Env, peer: DomId, timeout: Option<u64>) -> Step<u32> {
    let deadline = env.deadline(timeout);
    loop {
        // SAFETY: MAP_VA is this workload's and unused.
        match unsafe { gnttab::map(peer, GREF_MAILBOX, MAP_VA, false) } {
            Ok(h) => return Ok(h),
            Err(GnttabError::Status(s))
                if matches!(s, GNTST_bad_domain | GNTST_bad_gntref | GNTST_general_error | GNTST_permission_denied)
                    && deadline.is_none_or(|d| env.now_ns() < d) =>
            {
                env.sleep(10_000_000)
            }
            Err(e) => return Err(failed("mapping the peer's mailbox (GNTTABOP_map_grant_ref)")(e)),
        }
    }
}

/// Maps `gref` of `peer` at [`MAP2_VA`] and unmaps it again if that worked.
fn try_map(peer: DomId, gref: u32, readonly: bool) -> Result<u32, GnttabError> {
    // SAFETY: MAP2_VA is this workload's scratch page, used by nothing.
    let r = unsafe { gnttab::map(peer, gref, MAP2_VA, readonly) };
    if let Ok(h) = r {
        // SAFETY: as above.
        let _ = unsafe { gnttab::unmap(MAP2_VA, h) };
    }
    r
}

fn negative_checks(c: &mut Checks, peer: DomId, ro_ref: u32) {
    // The read-only grant: writable refused, read-only fine.
    c.eq(
        "grant-accept map a read-only grant writable",
        Gntst::of(&try_map(peer, ro_ref, false)),
        Gntst(GNTST_general_error),
    );
    // SAFETY: MAP2_VA is the scratch page, read below and unmapped.
    match unsafe { gnttab::map(peer, ro_ref, MAP2_VA, true) } {
        Ok(h) => {
            let mut buf = [0u8; 32];
            for (i, b) in buf.iter_mut().enumerate() {
                // SAFETY: the page is mapped (read-only) at MAP2_VA.
                *b = unsafe { ptr::read_volatile((MAP2_VA as *const u8).add(i)) };
            }
            let n = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            let got = core::str::from_utf8(&buf[..n]).unwrap_or("?");
            println!("grant-accept: read-only page says \"{}\"", got);
            c.eq("grant-accept read-only page", got, text(format_args!("read-only page of domain {}", peer)).as_str());
            // SAFETY: done reading.
            let r = unsafe { gnttab::unmap(MAP2_VA, h) };
            c.eq("grant-accept unmap of the read-only page", Gntst::of(&r), Gntst(GNTST_okay));
        }
        Err(e) => {
            c.eq("grant-accept map a read-only grant read-only", Gntst(e.status()), Gntst(GNTST_okay));
        }
    }
    // References that are not ours to map.
    c.eq(
        "grant-accept map a ref granted to another domain",
        Gntst::of(&try_map(peer, GREF_OTHER_DOMAIN, true)),
        Gntst(GNTST_general_error),
    );
    c.eq(
        "grant-accept map a ref never granted",
        Gntst::of(&try_map(peer, GREF_UNUSED, true)),
        Gntst(GNTST_general_error),
    );
    c.eq(
        "grant-accept map a ref past the table",
        Gntst::of(&try_map(peer, NR_GRANT_FRAMES * gnttab::ENTRIES_PER_FRAME, true)),
        Gntst(GNTST_bad_gntref),
    );
    // The control domain's interfaces.
    c.eq("grant-accept domctl getdomaininfo of the peer", Ret(domctl_getdomaininfo(peer)), Ret(Errno::EPERM.to_ret()));
    c.eq("grant-accept sysctl physinfo", Ret(sysctl_physinfo()), Ret(Errno::EPERM.to_ret()));
}

/// A hypercall's return value, printed as `-EPERM` or the number.
#[derive(PartialEq)]
struct Ret(i64);

impl core::fmt::Display for Ret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match Errno::from_ret(self.0) {
            Some(e) => write!(f, "-{}", e),
            None => write!(f, "{}", self.0),
        }
    }
}
