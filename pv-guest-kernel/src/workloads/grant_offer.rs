//! `workload=grant-offer peer=<domid> [timeout=<s>] [linger]`: the
//! granting half of the grant demo (the protocol is in `grant.rs`). Grants
//! its mailbox page to the peer as reference 8, a read-only page as
//! reference 9, allocates an unbound port for the peer, sleeps in
//! `SCHEDOP_poll` until the peer's request arrives, answers it, then waits
//! for the peer to unmap and revokes its grants. `timeout=0` waits for ever
//! (an idle guest, blocked in the hypervisor, for Dom0's `bench destroy`);
//! `linger` stays up afterwards, blocked, as a back end would, until Dom0
//! destroys the domain.

use core::ptr;

use hypercall_abi::grant::{GTF_reading, GTF_writing};
use hypercall_abi::{DomId, Errno, EvtchnPort};
use pv_rt::gnttab::GrantTable;
use pv_rt::println;

use super::grant::*;
use crate::check::Checks;

pub fn run(cmd: &str) {
    let mut c = Checks::default();
    match offer(cmd, &mut c) {
        Ok(()) => {}
        Err(what) => {
            println!("grant-offer: {}", what);
            c.eq("grant-offer completed", false, true);
        }
    }
    c.verdict();
    if pv_rt::cmdline::get(cmd, "linger").is_some() {
        println!("grant-offer: lingering until destroyed");
        block_forever();
    }
}

fn offer(cmd: &str, c: &mut Checks) -> Step<()> {
    let Some(peer) = peer_option(cmd) else {
        return give_up("usage: workload=grant-offer peer=<domid> [timeout=<seconds>]");
    };
    let timeout = timeout_option(cmd);
    let mut env = Env::new().map_err(failed("setting up memory and shared_info"))?;
    let me = whoami().map_err(failed("finding our domain id"))?;
    println!("grant-offer: I am domain {}, my peer is domain {}", me, peer);

    // SAFETY: GNTTAB_VA is this workload's and unused.
    let gt = unsafe { GrantTable::setup(&mut env.mm, GNTTAB_VA, NR_GRANT_FRAMES) }
        .map_err(failed("GNTTABOP_setup_table"))?;
    let mailbox_mfn = own_page(&mut env, PAGE_A_VA)?;
    let ro_mfn = own_page(&mut env, PAGE_B_VA)?;
    let ro_text = text(format_args!("read-only page of domain {}", me));
    // SAFETY: PAGE_B_VA maps our own zeroed page, which only we write.
    unsafe { ptr::copy_nonoverlapping(ro_text.as_ptr(), PAGE_B_VA as *mut u8, ro_text.len()) };

    let port = alloc_port(&env, peer, timeout)?;
    env.mask(port);

    // The whole mailbox before the grant that lets the peer read it.
    let mb = PAGE_A_VA as *mut Mailbox;
    mb_write!(mb, offer_domid, me as u32);
    mb_write!(mb, port, port);
    mb_write!(mb, ro_ref, GREF_READONLY);
    mb_write!(mb, magic, MAGIC);
    core::sync::atomic::fence(core::sync::atomic::Ordering::Release);
    let grants = [
        (GREF_MAILBOX, peer, mailbox_mfn, false),
        (GREF_READONLY, peer, ro_mfn, true),
        // Granted, but to another domain: the peer must not map it.
        (GREF_OTHER_DOMAIN, 0, ro_mfn, false),
    ];
    for (gref, dom, mfn, ro) in grants {
        gt.grant(gref, dom, mfn, ro).map_err(failed("writing a grant entry"))?;
    }
    println!(
        "grant-offer: granted my mailbox to domain {} as ref {} (a read-only page as ref {}), port {} is open for it; waiting",
        peer, GREF_MAILBOX, GREF_READONLY, port
    );

    // Sleep until the request is there.
    let deadline = env.deadline(timeout);
    if !env.wait(port, deadline, || mb_read!(mb, request_seq) == 1) {
        return give_up("no request from the peer before the timeout");
    }
    // SAFETY: the request fields lie in the mapped mailbox.
    let request = unsafe { get_msg(ptr::addr_of!((*mb).request), ptr::addr_of!((*mb).request_len)) };
    println!("grant-offer: domain {} wrote: \"{}\"", peer, request);
    c.eq("grant-offer request", request.as_str(), text(format_args!("hello from domain {}", peer)).as_str());

    let answer = text(format_args!("hello back from domain {}", me));
    // SAFETY: the answer fields lie in the mapped mailbox.
    unsafe { put_msg(ptr::addr_of_mut!((*mb).answer), ptr::addr_of_mut!((*mb).answer_len), &answer) };
    core::sync::atomic::fence(core::sync::atomic::Ordering::Release);
    mb_write!(mb, answer_seq, 1);
    send(port).map_err(failed("EVTCHNOP_send"))?;
    println!("grant-offer: answered \"{}\" and notified port {}", answer, port);

    // The peer says bye, unmaps, then notifies: then the page must be free.
    if !env.wait(port, deadline, || mb_read!(mb, bye) == 1) {
        return give_up("the peer did not say bye before the timeout");
    }
    let in_use = gt.flags(GREF_MAILBOX).unwrap_or(0xffff) & (GTF_reading | GTF_writing);
    c.eq("grant-offer mailbox in use after the peer unmapped it", in_use, 0);
    for gref in [GREF_MAILBOX, GREF_READONLY, GREF_OTHER_DOMAIN] {
        c.eq("grant-offer grant revoked", gt.end(gref).is_ok(), true);
    }
    let _ = close(port);
    println!("grant-offer: domain {} unmapped my page; grants revoked, port closed", peer);
    Ok(())
}

/// A zeroed page of ours mapped writable at `va`: returns its machine frame.
fn own_page(env: &mut Env, va: u64) -> Step<u64> {
    let Some(pfn) = env.mm.alloc_frame() else { return Err(failed("allocating a page")(Errno::ENOMEM)) };
    // SAFETY: `va` is this workload's and unused; the frame is fresh.
    unsafe { env.mm.map(va, pfn, true) }.map_err(failed("mapping a page"))?;
    // SAFETY: the page was just mapped writable, and nothing else uses it.
    unsafe { ptr::write_bytes(va as *mut u8, 0, 4096) };
    env.mm.p2m(pfn).ok_or(Errno::EINVAL).map_err(failed("finding the page's frame"))
}

/// A port for `peer` to bind. Xen 4.17 does not check that `peer` exists
/// (`evtchn_alloc_unbound`), so the peer may be created after us; a
/// hypervisor that answers -ESRCH until it exists gets asked again, every
/// 10 ms, and the retries are reported.
fn alloc_port(env: &Env, peer: DomId, timeout: Option<u64>) -> Step<EvtchnPort> {
    let deadline = env.deadline(timeout);
    let mut retries = 0u32;
    loop {
        match alloc_unbound(peer) {
            Ok(p) => {
                if retries > 0 {
                    println!(
                        "grant-offer: note: EVTCHNOP_alloc_unbound for domain {} was -ESRCH {} time(s) until it existed (Xen 4.17 does not check)",
                        peer, retries
                    );
                }
                return Ok(p);
            }
            Err(Errno::ESRCH) if deadline.is_none_or(|d| env.now_ns() < d) => {
                retries += 1;
                env.sleep(10_000_000);
            }
            Err(e) => return Err(failed("EVTCHNOP_alloc_unbound")(e)),
        }
    }
}
