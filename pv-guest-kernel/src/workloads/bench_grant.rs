//! `workload=bench-grant [iters=N]`: what a 4 KiB copy costs when the
//! hypervisor does it, in TSC ticks (instructions under `-icount shift=0`).
//!
//! - `grant_copy_4k`: `GNTTABOP_copy` of one whole page, one operation per
//!   hypercall, as a back end copies a request's data. The source is named
//!   by a grant reference that we grant to our own domain id: Xen's
//!   `gnttab_copy` takes it through `acquire_grant_for_copy` as it would a
//!   peer's (the entry's domid must be the copier's id, not `DOMID_SELF`).
//!   The destination is named by frame number, which Xen accepts only
//!   with `DOMID_SELF` (`gnttab_copy_lock_domain`).
//! - `hypervisor_copy_4k`: `MMUEXT_COPY_PAGE` between the same two frames,
//!   the hypervisor's plain page copy: the difference is the grant
//!   machinery (entry checks, `GTF_reading` set and cleared, references).
//!
//! Both copies are checked once (the destination must equal the source)
//! before they are timed. Our own id comes from `whoami` (an unbound port
//! for ourselves), so this runs as Dom0 or as a guest.

use core::ptr;

use hypercall_abi::grant::{GnttabCopy, GnttabCopyPtr, GNTCOPY_source_gref, GNTST_okay};
use hypercall_abi::guest;
use hypercall_abi::mm::{MmuextOp, DOMID_SELF, MMUEXT_COPY_PAGE};
use pv_rt::gnttab::{self, GrantTable};
use pv_rt::tsc::rdtsc_fenced;
use pv_rt::{cmdline, println};

use super::grant::{whoami, Env, GNTTAB_VA, GREF_MAILBOX, PAGE_A_VA, PAGE_B_VA};

const DEFAULT_ITERS: u64 = 100_000;
const PAGE: usize = 4096;

pub fn run(cmd: &str) {
    let iters = cmdline::get(cmd, "iters").and_then(cmdline::parse_u64).unwrap_or(DEFAULT_ITERS).max(1);
    if let Err(what) = bench(iters) {
        println!("bench-grant: {}", what);
    }
}

fn bench(iters: u64) -> Result<(), &'static str> {
    let mut env = Env::new().map_err(|_| "setting up memory failed")?;
    let me = whoami().map_err(|_| "finding our domain id failed")?;
    // SAFETY: GNTTAB_VA is this workload's and unused.
    let gt = unsafe { GrantTable::setup(&mut env.mm, GNTTAB_VA, 1) }.map_err(|_| "GNTTABOP_setup_table failed")?;
    let mut page = |va: u64| -> Result<u64, &'static str> {
        let pfn = env.mm.alloc_frame().ok_or("out of pages")?;
        // SAFETY: `va` is this workload's and unused; the frame is fresh.
        unsafe { env.mm.map(va, pfn, true) }.map_err(|_| "mapping a page failed")?;
        env.mm.p2m(pfn).ok_or("a page without a frame")
    };
    let src = page(PAGE_A_VA)?;
    let dst = page(PAGE_B_VA)?;
    for i in 0..PAGE {
        // SAFETY: PAGE_A_VA maps our source page, which only we write.
        unsafe { ptr::write_volatile((PAGE_A_VA as *mut u8).add(i), (i * 7 + 3) as u8) };
    }
    gt.grant(GREF_MAILBOX, me, src, true).map_err(|_| "writing the grant entry failed")?;

    let mut op = GnttabCopy {
        source: GnttabCopyPtr { u: GREF_MAILBOX as u64, domid: me, offset: 0, _pad: 0 },
        dest: GnttabCopyPtr { u: dst, domid: DOMID_SELF, offset: 0, _pad: 0 },
        len: PAGE as u16,
        flags: GNTCOPY_source_gref,
        status: 0,
        _pad: 0,
    };
    let mut grant_copy = || -> i16 {
        op.status = 1;
        // SAFETY: the destination is our own scratch page, which Rust code
        // only reads through volatile accesses.
        match unsafe { gnttab::copy(core::slice::from_mut(&mut op)) } {
            Ok(()) => op.status,
            Err(_) => -1,
        }
    };
    let copy_page = [MmuextOp::new(MMUEXT_COPY_PAGE, dst, src)];
    let hypervisor_copy = || -> i64 {
        // SAFETY: as above: only our scratch page is written.
        unsafe { guest::mmuext_op(&copy_page, None, DOMID_SELF as u32) }
    };

    // Each copy once, checked: the destination must equal the source.
    clear(PAGE_B_VA);
    if grant_copy() != GNTST_okay || !same(PAGE_A_VA, PAGE_B_VA) {
        return Err("GNTTABOP_copy of a self-granted page did not copy it");
    }
    clear(PAGE_B_VA);
    if hypervisor_copy() != 0 || !same(PAGE_A_VA, PAGE_B_VA) {
        return Err("MMUEXT_COPY_PAGE did not copy the page");
    }

    let time = |name: &str, f: &mut dyn FnMut() -> bool| -> Result<(), &'static str> {
        // Warm caches and TLBs so the first iterations do not skew the total.
        for _ in 0..16 {
            f();
        }
        let mut ok = true;
        let start = rdtsc_fenced();
        for _ in 0..iters {
            ok &= f();
        }
        let total = rdtsc_fenced() - start;
        if !ok {
            return Err("a copy failed during the run");
        }
        println!("bench {} iterations={} total_tsc={} per_call_tsc={}", name, iters, total, total / iters);
        Ok(())
    };
    time("grant_copy_4k", &mut || grant_copy() == GNTST_okay)?;
    time("hypervisor_copy_4k", &mut || hypervisor_copy() == 0)?;
    if gt.end(GREF_MAILBOX).is_err() {
        return Err("the self-grant is still in use after the copies");
    }
    Ok(())
}

fn clear(va: u64) {
    // SAFETY: `va` maps one of the benchmark's pages, used by nothing else.
    unsafe { ptr::write_bytes(va as *mut u8, 0, PAGE) };
}

fn same(a: u64, b: u64) -> bool {
    // SAFETY: both map whole pages of the benchmark; volatile, since the
    // hypervisor wrote `b` behind the compiler's back.
    (0..PAGE).all(|i| unsafe { ptr::read_volatile((a as *const u8).add(i)) == ptr::read_volatile((b as *const u8).add(i)) })
}
