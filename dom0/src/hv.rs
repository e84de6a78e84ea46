//! The hypercalls the toolstack makes, as typed functions returning
//! `Result<_, Errno>`: domctl and sysctl commands, memory reservations for
//! another domain, event channels, foreign mappings, console input.
//!
//! Foreign mappings go through `update_va_mapping_otherdomain`, which maps
//! another domain's frame at one of our virtual addresses in one call (the
//! L1 table must exist: [`pv_rt::mm::Mm::ensure_l1`]).

use hypercall_abi::console::CONSOLEIO_read;
use hypercall_abi::domctl::*;
use hypercall_abi::errno::Errno;
use hypercall_abi::evtchn::{
    EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnBindVirq, EvtchnClose, EvtchnSend,
    EVTCHNOP_alloc_unbound, EVTCHNOP_bind_interdomain, EVTCHNOP_bind_virq, EVTCHNOP_close,
    EVTCHNOP_send,
};
use hypercall_abi::guest::{hypercall2, hypercall3, hypercall4};
use hypercall_abi::memory::{XenMemoryReservation, XENMEM_populate_physmap};
use hypercall_abi::mm::{MmuextOp, MMUEXT_PIN_L4_TABLE, UVMF_INVLPG, _PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_PRESENT, _PAGE_RW, _PAGE_USER};
use hypercall_abi::nr;
use hypercall_abi::sched::{SchedPoll, SchedRemoteShutdown, SCHEDOP_poll, SCHEDOP_remote_shutdown};
use hypercall_abi::arch::VcpuGuestContext;
use hypercall_abi::{DomId, EvtchnPort};

pub fn check(ret: i64) -> Result<i64, Errno> {
    match Errno::from_ret(ret) {
        Some(e) => Err(e),
        None => Ok(ret),
    }
}

fn do_domctl(d: &mut XenDomctl) -> Result<(), Errno> {
    // SAFETY: every caller in this module passes a domctl whose handles (if
    // any) point at live buffers of the right type and size.
    check(unsafe { domctl(d) }).map(drop)
}

fn do_sysctl(s: &mut XenSysctl) -> Result<(), Errno> {
    // SAFETY: as in `do_domctl`.
    check(unsafe { sysctl(s) }).map(drop)
}

/// `XEN_DOMCTL_createdomain` for a PV guest: returns the new domain's id,
/// `want` if not 0 (`domctl.h`: the domain field is IN/OUT; 0 lets the
/// hypervisor choose; an id in use is -EEXIST). The domain starts paused,
/// without memory.
pub fn createdomain(want: DomId, max_vcpus: u32, grant_version: u32) -> Result<DomId, Errno> {
    let mut d = XenDomctl::new(XEN_DOMCTL_createdomain, want);
    let c = d.createdomain_mut();
    // PV: no HVM/HAP flags, no emulated devices.
    c.flags = 0;
    c.max_vcpus = max_vcpus;
    // xl's defaults: 1023 event channels, the hypervisor's grant limits.
    c.max_evtchn_port = 1023;
    c.max_grant_frames = -1;
    c.max_maptrack_frames = -1;
    c.grant_opts = XEN_DOMCTL_GRANT_version(grant_version);
    do_domctl(&mut d)?;
    Ok(d.domain)
}

/// `XEN_DOMCTL_max_vcpus`: in Xen 4.17 this is what creates the vCPU
/// structures, and `max` must equal createdomain's `max_vcpus` (-EINVAL
/// otherwise); without it setvcpucontext finds no vCPU 0 (-EINVAL).
pub fn max_vcpus(domid: DomId, max: u32) -> Result<(), Errno> {
    let mut d = XenDomctl::new(XEN_DOMCTL_max_vcpus, domid);
    d.max_vcpus_mut().max = max;
    do_domctl(&mut d)
}

pub fn destroydomain(domid: DomId) -> Result<(), Errno> {
    // Xen answers -ERESTART... internally (a continuation); a caller sees 0
    // once every frame is back, or an error.
    do_domctl(&mut XenDomctl::new(XEN_DOMCTL_destroydomain, domid))
}

pub fn pausedomain(domid: DomId) -> Result<(), Errno> {
    do_domctl(&mut XenDomctl::new(XEN_DOMCTL_pausedomain, domid))
}

pub fn unpausedomain(domid: DomId) -> Result<(), Errno> {
    do_domctl(&mut XenDomctl::new(XEN_DOMCTL_unpausedomain, domid))
}

/// `XEN_DOMCTL_getdomaininfo` for exactly `domid`: Xen 4.17 answers for
/// the next domain up when `domid` does not exist, which we turn into -ESRCH.
pub fn getdomaininfo(domid: DomId) -> Result<XenDomctlGetdomaininfo, Errno> {
    let mut d = XenDomctl::new(XEN_DOMCTL_getdomaininfo, domid);
    do_domctl(&mut d)?;
    let info = *d.getdomaininfo();
    if info.domain != domid {
        return Err(Errno::ESRCH);
    }
    Ok(info)
}

pub fn max_mem(domid: DomId, max_memkb: u64) -> Result<(), Errno> {
    let mut d = XenDomctl::new(XEN_DOMCTL_max_mem, domid);
    d.max_mem_mut().max_memkb = max_memkb;
    do_domctl(&mut d)
}

pub fn setvcpucontext(domid: DomId, vcpu: u32, ctxt: &VcpuGuestContext) -> Result<(), Errno> {
    let mut d = XenDomctl::new(XEN_DOMCTL_setvcpucontext, domid);
    let v = d.vcpucontext_mut();
    v.vcpu = vcpu;
    v.ctxt = ctxt as *const VcpuGuestContext as u64;
    // SAFETY: Xen only reads the context, which `ctxt` borrows for the call.
    check(unsafe { domctl(&mut d) }).map(drop)
}

pub fn hypercall_init(domid: DomId, gmfn: u64) -> Result<(), Errno> {
    let mut d = XenDomctl::new(XEN_DOMCTL_hypercall_init, domid);
    d.hypercall_init_mut().gmfn = gmfn;
    do_domctl(&mut d)
}

/// `XEN_DOMCTL_scheduler_op` for the credit or credit2 scheduler
/// (`sched_id`, which must be the one running): reads weight and cap, and
/// with `weight`/`cap` given, writes them back changed. Like libxl we always
/// put both: credit2 takes a cap of 0 as "remove the cap".
pub fn sched_credit(
    domid: DomId,
    sched_id: u32,
    weight: Option<u16>,
    cap: Option<u16>,
) -> Result<XenDomctlSchedCredit, Errno> {
    let mut d = XenDomctl::new(XEN_DOMCTL_scheduler_op, domid);
    let s = d.scheduler_op_mut();
    s.sched_id = sched_id;
    s.cmd = XEN_DOMCTL_SCHEDOP_getinfo;
    do_domctl(&mut d)?;
    let mut c = d.scheduler_op().credit();
    if weight.is_none() && cap.is_none() {
        return Ok(c);
    }
    c.weight = weight.unwrap_or(c.weight);
    c.cap = cap.unwrap_or(c.cap);
    let s = d.scheduler_op_mut();
    s.cmd = XEN_DOMCTL_SCHEDOP_putinfo;
    s.set_credit(c);
    do_domctl(&mut d)?;
    Ok(c)
}

pub fn physinfo() -> Result<XenSysctlPhysinfo, Errno> {
    let mut s = XenSysctl::new(XEN_SYSCTL_physinfo);
    do_sysctl(&mut s)?;
    Ok(*s.physinfo())
}

pub fn sched_id() -> Result<u32, Errno> {
    let mut s = XenSysctl::new(XEN_SYSCTL_sched_id);
    do_sysctl(&mut s)?;
    Ok(s.sched_id().sched_id)
}

/// `XEN_SYSCTL_scheduler_op` getinfo for cpupool 0, whose scheduler is
/// `sched_id`: the union's first three words (credit: tslice_ms,
/// ratelimit_us, vcpu_migr_delay_us; credit2: ratelimit_us).
pub fn scheduler_params(sched_id: u32) -> Result<[u32; 3], Errno> {
    let mut s = XenSysctl::new(XEN_SYSCTL_scheduler_op);
    let op = s.scheduler_op_mut();
    op.cpupool_id = 0;
    op.sched_id = sched_id;
    op.cmd = XEN_SYSCTL_SCHEDOP_getinfo;
    do_sysctl(&mut s)?;
    Ok(s.scheduler_op().params)
}

/// `XEN_SYSCTL_getdomaininfolist` from `first`: fills `out`, returns how many.
pub fn getdomaininfolist(first: DomId, out: &mut [XenDomctlGetdomaininfo]) -> Result<usize, Errno> {
    let mut s = XenSysctl::new(XEN_SYSCTL_getdomaininfolist);
    let l = s.getdomaininfolist_mut();
    l.first_domain = first;
    l.max_domains = out.len() as u32;
    l.buffer = out.as_mut_ptr() as u64;
    // SAFETY: Xen writes at most `max_domains` entries into `out`, which we
    // borrow mutably for the call; each is plain integers.
    check(unsafe { sysctl(&mut s) })?;
    Ok((s.getdomaininfolist().num_domains as usize).min(out.len()))
}

/// `XEN_SYSCTL_readconsole`: copies the hypervisor's console ring from
/// `index` (when `incremental`) into `buf`; returns (bytes, next index).
pub fn readconsole(buf: &mut [u8], index: Option<u32>, clear: bool) -> Result<(usize, u32), Errno> {
    let mut s = XenSysctl::new(XEN_SYSCTL_readconsole);
    let r = s.readconsole_mut();
    r.clear = clear as u8;
    r.incremental = index.is_some() as u8;
    r.index = index.unwrap_or(0);
    r.buffer = buf.as_mut_ptr() as u64;
    r.count = buf.len() as u32;
    // SAFETY: Xen writes at most `count` bytes into `buf`.
    check(unsafe { sysctl(&mut s) })?;
    let r = s.readconsole();
    Ok(((r.count as usize).min(buf.len()), r.index))
}

/// `XENMEM_populate_physmap` of order-0 extents for `domid`: `frames` holds
/// the pfns on entry and receives the MFNs (a PV domain's P2M). Returns how
/// many were populated; fewer than asked means the memory ran out.
pub fn populate_physmap(domid: DomId, frames: &mut [u64]) -> Result<usize, Errno> {
    let mut r = XenMemoryReservation {
        extent_start: frames.as_mut_ptr() as u64,
        nr_extents: frames.len() as u64,
        extent_order: 0,
        mem_flags: 0,
        domid,
        _pad: [0; 3],
    };
    // SAFETY: Xen reads and writes `nr_extents` u64s of `frames`, which we
    // borrow mutably, and gives the frames to `domid`, not to us.
    let ret = check(unsafe { hypercall_abi::guest::memory_op(XENMEM_populate_physmap, &mut r as *mut _ as *mut u8) })?;
    Ok(ret as usize)
}

fn evtchn_op<T>(cmd: u32, arg: &mut T) -> Result<(), Errno> {
    // SAFETY: each caller passes the structure `cmd` reads and writes.
    check(unsafe { hypercall2(nr::EVENT_CHANNEL_OP, cmd as u64, arg as *mut T as u64) }).map(drop)
}

/// A port in `dom` that `remote` may bind (the console's, in the guest).
pub fn alloc_unbound(dom: DomId, remote: DomId) -> Result<EvtchnPort, Errno> {
    let mut a = EvtchnAllocUnbound { dom, remote_dom: remote, port: 0 };
    evtchn_op(EVTCHNOP_alloc_unbound, &mut a)?;
    Ok(a.port)
}

pub fn bind_interdomain(remote_dom: DomId, remote_port: EvtchnPort) -> Result<EvtchnPort, Errno> {
    let mut b = EvtchnBindInterdomain { remote_dom, _pad: 0, remote_port, local_port: 0 };
    evtchn_op(EVTCHNOP_bind_interdomain, &mut b)?;
    Ok(b.local_port)
}

pub fn bind_virq(virq: u32) -> Result<EvtchnPort, Errno> {
    let mut b = EvtchnBindVirq { virq, vcpu: 0, port: 0 };
    evtchn_op(EVTCHNOP_bind_virq, &mut b)?;
    Ok(b.port)
}

pub fn evtchn_close(port: EvtchnPort) -> Result<(), Errno> {
    evtchn_op(EVTCHNOP_close, &mut EvtchnClose { port })
}

pub fn evtchn_send(port: EvtchnPort) -> Result<(), Errno> {
    evtchn_op(EVTCHNOP_send, &mut EvtchnSend { port })
}

/// `SCHEDOP_poll`: sleep until one of `ports` is pending or system time
/// reaches `timeout_ns` (0: no timeout).
pub fn poll(ports: &[EvtchnPort], timeout_ns: u64) -> Result<(), Errno> {
    let mut p = SchedPoll { ports: ports.as_ptr() as u64, nr_ports: ports.len() as u32, _pad: 0, timeout: timeout_ns };
    // SAFETY: Xen reads `nr_ports` ports from `ports`.
    check(unsafe { hypercall2(nr::SCHED_OP, SCHEDOP_poll as u64, &mut p as *mut _ as u64) }).map(drop)
}

pub fn remote_shutdown(domid: DomId, reason: u32) -> Result<(), Errno> {
    let mut r = SchedRemoteShutdown { domain_id: domid, _pad: 0, reason };
    // SAFETY: Xen reads the 8-byte structure.
    check(unsafe { hypercall2(nr::SCHED_OP, SCHEDOP_remote_shutdown as u64, &mut r as *mut _ as u64) }).map(drop)
}

/// `console_io(CONSOLEIO_read)`: what has been typed on Xen's console, if
/// anything (never blocks).
pub fn console_read(buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: Xen writes at most `buf.len()` bytes into `buf`.
    let n = check(unsafe {
        hypercall3(nr::CONSOLE_IO, CONSOLEIO_read as u64, buf.len() as u64, buf.as_mut_ptr() as u64)
    })?;
    Ok((n as usize).min(buf.len()))
}

/// `mmuext_op(MMUEXT_PIN_L4_TABLE, l4) ` on behalf of `domid`: validates the
/// whole tree under it as `domid`'s page tables.
pub fn pin_l4(domid: DomId, l4_mfn: u64) -> Result<(), Errno> {
    let op = MmuextOp::new(MMUEXT_PIN_L4_TABLE, l4_mfn, 0);
    // SAFETY: pinning another domain's table changes none of our mappings.
    check(unsafe { hypercall_abi::guest::mmuext_op(&[op], None, domid as u32) }).map(drop)
}

/// Maps `domid`'s frame `mfn` at our page `va` (whose L1 table exists).
///
/// # Safety
/// Whatever `va` mapped is gone; the caller must not hold references into
/// it, and must treat the new page as shared with another domain.
pub unsafe fn map_foreign(va: u64, mfn: u64, domid: DomId, writable: bool) -> Result<(), Errno> {
    let mut val = (mfn << 12) | _PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED;
    if writable {
        val |= _PAGE_RW | _PAGE_DIRTY;
    }
    // SAFETY: the caller gives up `va`'s old contents.
    check(unsafe { hypercall4(nr::UPDATE_VA_MAPPING_OTHERDOMAIN, va, val, UVMF_INVLPG, domid as u64) }).map(drop)
}

/// Unmaps our page `va`.
///
/// # Safety
/// Nothing may use the page at `va` any more.
pub unsafe fn unmap(va: u64) -> Result<(), Errno> {
    // SAFETY: the caller gives the page up.
    check(unsafe { hypercall_abi::guest::update_va_mapping(va, 0, UVMF_INVLPG) }).map(drop)
}

/// `physdev_op(PHYSDEVOP_set_iopl)`: lets our kernel's `in`/`out` through
/// (the hypervisor emulates them for the ports it allows Dom0).
pub fn set_iopl(iopl: u32) -> Result<(), Errno> {
    let mut arg = hypercall_abi::physdev::PhysdevSetIopl { iopl };
    // SAFETY: the hypervisor reads the 4-byte structure on our stack.
    check(unsafe {
        hypercall2(nr::PHYSDEV_OP, hypercall_abi::physdev::PHYSDEVOP_set_iopl as u64, &mut arg as *mut _ as u64)
    })
    .map(drop)
}
