//! `workload=bench-mmu`: the cost of PV page-table updates, in TSC ticks
//! (instructions, under QEMU's `-icount shift=0`).
//!
//! - `mmu_update_batch1`, `mmu_update_batch16`, `mmu_update_batch512`: one
//!   `mmu_update` hypercall writing 1, 16 or 512 L1 entries of one table.
//!   These lines count ENTRIES: `iterations` is the number of entries
//!   written and `per_call_tsc` the cost per entry, so the three show what
//!   batching saves. The `iters=N` option asks for about N entries (rounded
//!   to whole batches).
//! - `update_va_mapping_invlpg`: one `update_va_mapping(va, pte,
//!   UVMF_INVLPG)` per iteration, the way a kernel changes a single mapping.
//!
//! Every write replaces a writable mapping of one data frame by one of
//! another, so each takes Xen's full path (drop the old frame's writable
//! reference, validate and take the new one); writing an entry's own value
//! again would hit the fast path of mod_l1_entry and measure nothing useful.

use hypercall_abi::guest;
use hypercall_abi::mm::{MmuUpdate, DOMID_SELF, MMU_NORMAL_PT_UPDATE, UVMF_INVLPG};
use pv_rt::mm::pte::{pte, LEAF_RW};
use pv_rt::mm::Mm;
use pv_rt::tsc::rdtsc_fenced;
use pv_rt::{cmdline, println};

const DEFAULT_ITERS: u64 = 100_000;

/// L4 slot 65: a region of its own, one L1 table's worth (2 MiB) of pages.
const BENCH_BASE: u64 = 0x0000_2080_0000_0000;
const ENTRIES: usize = 512;

/// The same 512 entries, mapping frame A or frame B.
struct Batches {
    to_a: [MmuUpdate; ENTRIES],
    to_b: [MmuUpdate; ENTRIES],
}

fn mmu_update(reqs: &[MmuUpdate]) -> i64 {
    // SAFETY: the requests only write entries of the benchmark's own L1
    // table, which maps nothing but its two data frames.
    unsafe { guest::mmu_update(reqs, None, DOMID_SELF as u32) }
}

/// Writes `batch` entries per call, alternating A and B, for about `iters`
/// entries; prints the line. Entries start (and end) mapping A.
fn bench_batch(b: &Batches, batch: usize, iters: u64) -> bool {
    let calls = (iters / batch as u64).max(2) & !1;
    let entries = calls * batch as u64;
    // Warm: one round trip, so caches and TLBs hold what the loop uses.
    if mmu_update(&b.to_b[..batch]) != 0 || mmu_update(&b.to_a[..batch]) != 0 {
        println!("bench-mmu: mmu_update of {} entries failed", batch);
        return false;
    }
    let mut failed = 0;
    let start = rdtsc_fenced();
    for i in 0..calls {
        let reqs = if i % 2 == 0 { &b.to_b[..batch] } else { &b.to_a[..batch] };
        failed |= mmu_update(reqs);
    }
    let total = rdtsc_fenced() - start;
    if failed != 0 {
        println!("bench-mmu: mmu_update of {} entries failed during the run", batch);
        return false;
    }
    println!(
        "bench mmu_update_batch{} iterations={} total_tsc={} per_call_tsc={}",
        batch,
        entries,
        total,
        total / entries
    );
    true
}

fn bench_update_va_mapping(va: u64, pte_a: u64, pte_b: u64, iters: u64) -> bool {
    let uvm = |val| {
        // SAFETY: `va` is the benchmark's first page, which maps one of its
        // two data frames and nothing Rust code uses.
        unsafe { guest::update_va_mapping(va, val, UVMF_INVLPG) }
    };
    let iters = iters.max(2) & !1;
    if uvm(pte_b) != 0 || uvm(pte_a) != 0 {
        println!("bench-mmu: update_va_mapping failed");
        return false;
    }
    let mut failed = 0;
    let start = rdtsc_fenced();
    for i in 0..iters {
        failed |= uvm(if i % 2 == 0 { pte_b } else { pte_a });
    }
    let total = rdtsc_fenced() - start;
    if failed != 0 {
        println!("bench-mmu: update_va_mapping failed during the run");
        return false;
    }
    println!(
        "bench update_va_mapping_invlpg iterations={} total_tsc={} per_call_tsc={}",
        iters,
        total,
        total / iters
    );
    true
}

pub fn run(cmd: &str) {
    let iters = cmdline::get(cmd, "iters").and_then(cmdline::parse_u64).unwrap_or(DEFAULT_ITERS);
    // SAFETY: the only memory manager of this kernel; pv-rt's entry has left
    // the bootstrap stack.
    let mut mm = match unsafe { Mm::new(pv_rt::start_info()) } {
        Ok(mm) => mm,
        Err(e) => {
            println!("bench-mmu: cannot walk the initial page tables: {}", e);
            return;
        }
    };
    let l1 = match mm.ensure_l1(BENCH_BASE) {
        Ok(l1) => l1,
        Err(e) => {
            println!("bench-mmu: cannot make the benchmark's page tables: {}", e);
            return;
        }
    };
    let (Some(a), Some(b)) = (mm.alloc_frame(), mm.alloc_frame()) else {
        println!("bench-mmu: out of frames");
        return;
    };
    let (Some(mfn_a), Some(mfn_b)) = (mm.p2m(a), mm.p2m(b)) else { return };
    let (pte_a, pte_b) = (pte(mfn_a, LEAF_RW), pte(mfn_b, LEAF_RW));
    let entry = |i: usize, val| MmuUpdate { ptr: ((l1 << 12) + 8 * i as u64) | MMU_NORMAL_PT_UPDATE, val };
    let batches = Batches {
        to_a: core::array::from_fn(|i| entry(i, pte_a)),
        to_b: core::array::from_fn(|i| entry(i, pte_b)),
    };
    if mmu_update(&batches.to_a) != 0 {
        println!("bench-mmu: cannot map the benchmark's pages");
        return;
    }
    let ok = bench_batch(&batches, 1, iters)
        && bench_batch(&batches, 16, iters)
        && bench_batch(&batches, ENTRIES, iters)
        && bench_update_va_mapping(BENCH_BASE, pte_a, pte_b, iters);
    // Leave nothing mapped: the same 512 entries, cleared.
    let clear: [MmuUpdate; ENTRIES] = core::array::from_fn(|i| entry(i, 0));
    if mmu_update(&clear) != 0 || !ok {
        println!("bench-mmu: FAILED");
    }
}
