//! The PV console of a domU: the `xencons_interface` ring page and event
//! channel that the domain builder names in `start_info.console.domU`
//! (`io/console.h`). Dom0 (SIF_INITDOMAIN) writes with `console_io`
//! instead; so does a kernel whose start_info names no console page.
//!
//! We are the producer of `out`: copy bytes in at `out_prod`, make them
//! visible before the new index (wmb), publish the index, notify the back
//! end. When the ring is full we notify and yield until the back end has
//! consumed some. We are the consumer of `in` ([`console_read`]): what the
//! back end (Dom0's `xl console`) types into it.

use core::ptr;
use core::sync::atomic::{fence, Ordering};

use hypercall_abi::console::{mask_in_idx, mask_out_idx, XenconsInterface};
use hypercall_abi::evtchn::{EvtchnSend, EVTCHNOP_send};
use hypercall_abi::guest;
use hypercall_abi::nr;
use hypercall_abi::start_info::{StartInfo, SIF_INITDOMAIN};

use crate::mm::{self, VIRT_BASE};

/// The console ring's virtual address and port, if this domain has one.
fn ring(si: &StartInfo) -> Option<(*mut XenconsInterface, u32)> {
    if si.flags & SIF_INITDOMAIN != 0 {
        return None;
    }
    let c = si.console.domu();
    if c.mfn == 0 {
        return None;
    }
    // The builder puts the page inside the initial mapping; the M2P gives
    // its pfn, hence its alias there. Check with the P2M that it is ours.
    // SAFETY: the builder gave us this frame, so it is RAM the M2P covers.
    let pfn = unsafe { mm::m2p(c.mfn) };
    if pfn >= si.nr_pages {
        return None;
    }
    // SAFETY: `mfn_list` maps `nr_pages` entries for the domain's life.
    let back = unsafe { ptr::read_volatile((si.mfn_list as *const u64).add(pfn as usize)) };
    if back != c.mfn {
        return None;
    }
    Some(((VIRT_BASE + pfn * 4096) as *mut XenconsInterface, c.evtchn))
}

fn notify(port: u32) {
    let mut send = EvtchnSend { port };
    // SAFETY: Xen reads the 4-byte structure on our stack.
    unsafe { guest::hypercall2(nr::EVENT_CHANNEL_OP, EVTCHNOP_send as u64, &mut send as *mut _ as u64) };
}

/// Writes `bytes` to the console: the ring for a domU that has one, else
/// `console_io`. Returns 0 or the hypercall's `-errno`.
pub fn console_write(bytes: &[u8]) -> i64 {
    let si = crate::START_INFO.load(Ordering::Relaxed);
    // SAFETY: non-null only once the entry code stored the start_info page,
    // which stays mapped and which we only read.
    let si = unsafe { si.as_ref() };
    let Some((intf, port)) = si.and_then(ring) else { return guest::console_write(bytes) };
    let mut rest = bytes;
    while !rest.is_empty() {
        // SAFETY: the ring page stays mapped (initial mapping) for the
        // domain's life; the back end writes `out_cons` concurrently, so the
        // indices are read volatile and never trusted beyond the ring.
        let (cons, mut prod) = unsafe {
            (ptr::read_volatile(ptr::addr_of!((*intf).out_cons)), ptr::read_volatile(ptr::addr_of!((*intf).out_prod)))
        };
        // Read the consumer index before reusing the space it frees (mb).
        fence(Ordering::SeqCst);
        let free = 2048u32.saturating_sub(prod.wrapping_sub(cons));
        if free == 0 {
            notify(port);
            guest::sched_yield();
            continue;
        }
        let n = (free as usize).min(rest.len());
        for &b in &rest[..n] {
            // SAFETY: as above; the index is masked into the ring.
            unsafe { ptr::write_volatile(ptr::addr_of_mut!((*intf).out[mask_out_idx(prod)]), b) };
            prod = prod.wrapping_add(1);
        }
        // The bytes before the index that publishes them (wmb).
        fence(Ordering::Release);
        // SAFETY: as above.
        unsafe { ptr::write_volatile(ptr::addr_of_mut!((*intf).out_prod), prod) };
        notify(port);
        rest = &rest[n..];
    }
    0
}

/// The console's event channel, if this domain has a console ring (to
/// sleep on while waiting for input).
pub fn console_port() -> Option<u32> {
    let si = crate::START_INFO.load(Ordering::Relaxed);
    // SAFETY: as in `console_write`.
    let si = unsafe { si.as_ref() }?;
    ring(si).map(|(_, port)| port)
}

/// Reads what the back end put into the `in` ring, at most `buf.len()`
/// bytes; 0 when there is nothing (never blocks). Dom0 reads its own input
/// with `console_io` instead, so this returns 0 there.
pub fn console_read(buf: &mut [u8]) -> usize {
    let si = crate::START_INFO.load(Ordering::Relaxed);
    // SAFETY: as in `console_write`.
    let Some((intf, port)) = (unsafe { si.as_ref() }).and_then(ring) else { return 0 };
    // SAFETY: the ring page stays mapped for the domain's life; the back
    // end writes `in_prod` concurrently, so indices are read volatile and
    // not trusted beyond the ring.
    let (mut cons, prod) = unsafe {
        (ptr::read_volatile(ptr::addr_of!((*intf).in_cons)), ptr::read_volatile(ptr::addr_of!((*intf).in_prod)))
    };
    // The indices before the data (rmb).
    fence(Ordering::Acquire);
    if prod.wrapping_sub(cons) > 1024 {
        // A back end that scribbled on the indices: skip what cannot be real.
        cons = prod.wrapping_sub(1024);
    }
    let mut n = 0;
    while cons != prod && n < buf.len() {
        // SAFETY: as above; the index is masked into the ring.
        buf[n] = unsafe { ptr::read_volatile(ptr::addr_of!((*intf).r#in[mask_in_idx(cons)])) };
        cons = cons.wrapping_add(1);
        n += 1;
    }
    if n > 0 {
        // Done with the data before handing the space back (mb).
        fence(Ordering::Release);
        // SAFETY: as above.
        unsafe { ptr::write_volatile(ptr::addr_of_mut!((*intf).in_cons), cons) };
        notify(port);
    }
    n
}
