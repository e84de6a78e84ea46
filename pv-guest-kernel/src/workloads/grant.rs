//! What the two halves of the grant demo (`grant-offer`, `grant-accept`)
//! and `bench-grant` share: the rendezvous both sides agree on, the
//! mailbox page's layout, and event channels waited on with `SCHEDOP_poll`.
//!
//! ## Finding each other without xenstore
//!
//! - Domain ids: each side gets the other's on its command line
//!   (`peer=<domid>`). Dom0's toolstack fills them in: `${domid:NAME}` in a
//!   config's `extra=` is NAME's id, set aside by Dom0 when NAME does not
//!   run yet (see dom0/README.md), so the two configs can name each other.
//! - The grant reference is fixed: the offer grants its mailbox page as
//!   reference [`GREF_MAILBOX`] = 8, the first one Xen's toolstacks leave
//!   to the guest (0-7 are reserved).
//! - Everything else is in the mailbox page itself, written before the page
//!   is granted: the offer's unbound event-channel port for the peer, the
//!   reference of a second, read-only grant, and a magic number.
//!
//! ## The exchange
//!
//! 1. offer: grant table set up, mailbox filled, port allocated for the
//!    peer, pages granted; it sleeps in `SCHEDOP_poll` on the port.
//! 2. accept: maps reference 8 (retrying while the offer is not ready),
//!    binds the port, writes its request, notifies; polls its own port.
//! 3. offer: woken, reads the request, writes the answer, notifies.
//! 4. accept: reads the answer, runs its negative checks, sets `bye`,
//!    unmaps the page, notifies, closes its port.
//! 5. offer: woken, checks that the page is no longer in use
//!    (`GTF_reading|GTF_writing` clear) and revokes its grants.
//!
//! Nobody takes event upcalls: events stay masked in `vcpu_info` (the
//! builder leaves them so), the ports are masked too, and each side clears
//! its port's pending bit in shared_info itself after `SCHEDOP_poll`
//! returns (pv-rt's `events` module maps the page and wraps the calls).

use core::fmt::Write as _;
use core::ptr;

use heapless::String;
use hypercall_abi::domctl::{domctl, sysctl, XenDomctl, XenSysctl, XEN_DOMCTL_getdomaininfo, XEN_SYSCTL_physinfo};
use hypercall_abi::evtchn::EVTCHNSTAT_unbound;
use hypercall_abi::mm::DOMID_SELF;
use hypercall_abi::{DomId, Errno, EvtchnPort};
use pv_rt::events;
use pv_rt::gnttab::{GnttabError, GrantRef, FIRST_FREE_REF};
use pv_rt::mm::{check, Mm};
use pv_rt::{cmdline, start_info};

/// The offer's mailbox page, granted writable to the peer.
pub const GREF_MAILBOX: GrantRef = FIRST_FREE_REF;
/// A second page, granted read-only to the peer (also named in the mailbox).
pub const GREF_READONLY: GrantRef = FIRST_FREE_REF + 1;
/// Granted too, but to Dom0, not to the peer.
pub const GREF_OTHER_DOMAIN: GrantRef = FIRST_FREE_REF + 2;
/// Never granted (flags 0).
pub const GREF_UNUSED: GrantRef = FIRST_FREE_REF + 3;
/// Grant-table frames the offer sets up: 512 references.
pub const NR_GRANT_FRAMES: u32 = 1;

/// Our mappings live in L4 slot 128, apart from the initial mapping
/// (slot 0) and the other workloads' regions.
pub const VA_BASE: u64 = 0x0000_4000_0000_0000;
/// Our own grant table (up to 4 frames).
pub const GNTTAB_VA: u64 = VA_BASE;
/// The offer's pages (mailbox, read-only page), or the bench's two frames.
pub const PAGE_A_VA: u64 = VA_BASE + 0x2_0000;
pub const PAGE_B_VA: u64 = VA_BASE + 0x2_1000;
/// Where the accept maps the peer's grants.
pub const MAP_VA: u64 = VA_BASE + 0x3_0000;
pub const MAP2_VA: u64 = VA_BASE + 0x3_1000;

/// "XCGRANT1", little-endian: the mailbox is valid.
pub const MAGIC: u64 = u64::from_le_bytes(*b"XCGRANT1");
pub const MSG_MAX: usize = 128;

/// The mailbox page's layout (the offer owns the page, both write it).
#[repr(C)]
pub struct Mailbox {
    pub magic: u64,
    /// The offer's domain id.
    pub offer_domid: u32,
    /// The offer's unbound port, allocated for the peer to bind.
    pub port: u32,
    /// The read-only grant's reference.
    pub ro_ref: u32,
    /// Set by the accept just before it unmaps the page.
    pub bye: u32,
    /// 1 once the request is complete (written by the accept).
    pub request_seq: u32,
    pub request_len: u32,
    pub request: [u8; MSG_MAX],
    /// 1 once the answer is complete (written by the offer).
    pub answer_seq: u32,
    pub answer_len: u32,
    pub answer: [u8; MSG_MAX],
}

/// Reads field `$f` of the shared mailbox at `$m` (a `*mut Mailbox`).
macro_rules! mb_read {
    ($m:expr, $f:ident) => {
        // SAFETY: the mailbox page stays mapped while the workload uses
        // it; the peer writes it concurrently, hence volatile.
        unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*$m).$f)) }
    };
}
macro_rules! mb_write {
    ($m:expr, $f:ident, $v:expr) => {
        // SAFETY: as in `mb_read`.
        unsafe { core::ptr::write_volatile(core::ptr::addr_of_mut!((*$m).$f), $v) }
    };
}
pub(crate) use {mb_read, mb_write};

pub type Msg = String<MSG_MAX>;

/// Copies `text` into a message field of the shared page.
///
/// # Safety
/// `buf` and `len` point into the mapped mailbox.
pub unsafe fn put_msg(buf: *mut [u8; MSG_MAX], len: *mut u32, text: &str) {
    let n = text.len().min(MSG_MAX);
    for (i, &b) in text.as_bytes()[..n].iter().enumerate() {
        // SAFETY: the caller's page; i < MSG_MAX.
        unsafe { ptr::write_volatile((buf as *mut u8).add(i), b) };
    }
    // SAFETY: as above.
    unsafe { ptr::write_volatile(len, n as u32) };
}

/// Reads a message field of the shared page; bytes that are not printable
/// ASCII (the peer is not trusted) become '.'.
///
/// # Safety
/// `buf` and `len` point into the mapped mailbox.
pub unsafe fn get_msg(buf: *const [u8; MSG_MAX], len: *const u32) -> Msg {
    // SAFETY: the caller's page.
    let n = (unsafe { ptr::read_volatile(len) } as usize).min(MSG_MAX);
    let mut s = Msg::new();
    for i in 0..n {
        // SAFETY: as above; i < MSG_MAX.
        let b = unsafe { ptr::read_volatile((buf as *const u8).add(i)) };
        let _ = s.push(if (0x20..0x7f).contains(&b) { b as char } else { '.' });
    }
    s
}

/// `peer=<domid>` from the command line.
pub fn peer_option(cmd: &str) -> Option<DomId> {
    cmdline::get(cmd, "peer").and_then(cmdline::parse_u64).and_then(|d| DomId::try_from(d).ok())
}

/// `timeout=<seconds>` (default 30; 0 waits for ever) in nanoseconds.
pub fn timeout_option(cmd: &str) -> Option<u64> {
    match cmdline::get(cmd, "timeout").and_then(cmdline::parse_u64).unwrap_or(30) {
        0 => None,
        s => Some(s * 1_000_000_000),
    }
}

// ---- event channels ----------------------------------------------------------

pub use pv_rt::events::{bind_interdomain, close, send};

/// A port of ours that domain `remote` may bind.
pub fn alloc_unbound(remote: DomId) -> Result<EvtchnPort, Errno> {
    events::alloc_unbound(DOMID_SELF, remote)
}

/// Our own domain id, without xenstore: a port allocated for `DOMID_SELF`
/// records the caller's id as its remote end, which `EVTCHNOP_status`
/// reports (`xen/common/event_channel.c`).
pub fn whoami() -> Result<DomId, Errno> {
    let port = events::alloc_unbound(DOMID_SELF, DOMID_SELF)?;
    let s = events::status(DOMID_SELF, port);
    let _ = close(port);
    let s = s?;
    if s.status != EVTCHNSTAT_unbound {
        return Err(Errno::EINVAL);
    }
    Ok(s.remote_dom())
}

// ---- the privileged interfaces a guest must not reach ----------------------

/// `XEN_DOMCTL_getdomaininfo` of `domid` (a guest gets `-EPERM`).
pub fn domctl_getdomaininfo(domid: DomId) -> i64 {
    let mut d = XenDomctl::new(XEN_DOMCTL_getdomaininfo, domid);
    // SAFETY: the domctl has no handles; Xen writes only the structure.
    unsafe { domctl(&mut d) }
}

/// `XEN_SYSCTL_physinfo` (a guest gets `-EPERM`).
pub fn sysctl_physinfo() -> i64 {
    let mut s = XenSysctl::new(XEN_SYSCTL_physinfo);
    // SAFETY: physinfo's only handle (cpu_to_node) is left null.
    unsafe { sysctl(&mut s) }
}

// ---- waiting -----------------------------------------------------------------

/// The memory manager, with shared_info mapped (pv-rt's events module):
/// what waiting on ports needs.
pub struct Env {
    pub mm: Mm,
}

impl Env {
    /// Takes over memory management and maps shared_info.
    pub fn new() -> Result<Env, Errno> {
        // SAFETY: the workload is the only user of the memory manager.
        let mut mm = unsafe { Mm::new(start_info())? };
        events::map_shared_info(&mut mm)?;
        Ok(Env { mm })
    }

    /// Clears `port`'s pending bit; says whether it was set.
    pub fn take_pending(&self, port: EvtchnPort) -> bool {
        let pending = events::is_pending(port);
        if pending {
            events::clear_pending(port);
        }
        pending
    }

    /// Masks `port`: Xen still marks it pending and wakes a poller, but
    /// never asks for an upcall for it.
    pub fn mask(&self, port: EvtchnPort) {
        events::mask(port);
    }

    /// Xen's system time in ns.
    pub fn now_ns(&self) -> u64 {
        pv_rt::time::system_time()
    }

    /// The system time `timeout` from now, if there is a timeout.
    pub fn deadline(&self, timeout: Option<u64>) -> Option<u64> {
        timeout.map(|t| self.now_ns() + t)
    }

    /// `SCHEDOP_poll` on `ports` until one is pending or system time
    /// `deadline` (`None`: no timeout; with no ports, a plain sleep).
    pub fn poll(&self, ports: &[EvtchnPort], deadline: Option<u64>) -> Result<(), Errno> {
        check(events::poll(ports, deadline.unwrap_or(0))).map(drop)
    }

    /// Sleeps `ns` nanoseconds.
    pub fn sleep(&self, ns: u64) {
        let _ = self.poll(&[], Some(self.now_ns() + ns));
    }

    /// Sleeps in `SCHEDOP_poll` until an event arrives on `port` and `ready`
    /// holds (each event is taken: its pending bit cleared), or until
    /// `deadline`. Says whether `ready` held.
    pub fn wait(&self, port: EvtchnPort, deadline: Option<u64>, ready: impl Fn() -> bool) -> bool {
        loop {
            if self.take_pending(port) && ready() {
                return true;
            }
            if deadline.is_some_and(|d| self.now_ns() >= d) {
                return false;
            }
            if self.poll(&[port], deadline).is_err() {
                return false;
            }
        }
    }
}

/// Sleeps in the hypervisor for good: `SCHEDOP_poll` on no port without a
/// timeout (an event of ours only makes us poll again). No upcall can come:
/// events stay masked.
pub fn block_forever() -> ! {
    loop {
        events::poll(&[], 0);
    }
}

/// Why a step of the demo failed: what was being done, and the
/// hypervisor's answer if there was one.
pub struct Failed {
    pub what: &'static str,
    pub why: Option<Why>,
}

pub enum Why {
    Errno(Errno),
    Gnttab(GnttabError),
}

impl From<Errno> for Why {
    fn from(e: Errno) -> Why {
        Why::Errno(e)
    }
}

impl From<GnttabError> for Why {
    fn from(e: GnttabError) -> Why {
        Why::Gnttab(e)
    }
}

impl core::fmt::Display for Failed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match &self.why {
            None => f.write_str(self.what),
            Some(Why::Errno(e)) => write!(f, "{} failed: -{}", self.what, e),
            Some(Why::Gnttab(e)) => write!(f, "{} failed: {}", self.what, e),
        }
    }
}

/// A step's result.
pub type Step<T> = Result<T, Failed>;

/// `Err` for a step that failed with `why`, as a closure for `map_err`.
pub fn failed<E: Into<Why>>(what: &'static str) -> impl Fn(E) -> Failed {
    move |e| Failed { what, why: Some(e.into()) }
}

/// `Err` for a step that failed without a hypercall error.
pub fn give_up<T>(what: &'static str) -> Step<T> {
    Err(Failed { what, why: None })
}

/// "hello from domain N"-style texts, in a message-sized string.
pub fn text(args: core::fmt::Arguments) -> Msg {
    let mut s = Msg::new();
    let _ = s.write_fmt(args);
    s
}
