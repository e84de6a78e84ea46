//! `workload=canary [passes=N]`: a domain that only watches its own
//! memory, run beside the fuzzers. It fills every free frame of its initial
//! mapping with a pattern of (frame, word), snapshots its page tables, then
//! checks both over and over, yielding between passes. Any change is
//! damage done by someone else (only the hypervisor can write there):
//! `canary: DAMAGE ...` and a FAILURE verdict. Every pass prints
//! `canary: pass N ok frames=F`; with `passes=0` (the default) it runs
//! until it is destroyed.

use hypercall_abi::guest;
use hypercall_abi::mm::PAGE_SIZE;
use pv_rt::cmdline;
use pv_rt::mm::Mm;
use pv_rt::println;

/// Runs of consecutive frames watched (the allocator hands out low frames
/// in order, so a few runs cover them all; kept small: this is the stack).
const MAX_RUNS: usize = 16;
const WORDS: u64 = PAGE_SIZE / 8;
/// Page-table frames we snapshot: up to this many, 512 entries each, kept
/// as an FNV digest per table.
const MAX_TABLES: usize = 64;

fn pattern(pfn: u64, word: u64) -> u64 {
    (pfn << 32 | word) ^ 0x5a5a_c3c3_0f0f_9696
}

fn table_digest(mm: &Mm, mfn: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for i in 0..512 {
        // A/D bits are the CPU's to set.
        h ^= mm.read_entry(mfn, i).unwrap_or(0) & !0x60;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

pub fn run(cmd: &str) {
    let passes = cmdline::get(cmd, "passes").and_then(cmdline::parse_u64).unwrap_or(0);
    let si = pv_rt::start_info();
    // SAFETY: the only memory manager of this kernel.
    let mut mm = match unsafe { Mm::new(si) } {
        Ok(mm) => mm,
        Err(e) => {
            println!("canary: cannot walk the initial page tables: {}", e);
            println!("Test result: FAILURE");
            return;
        }
    };
    // (first pfn, frames) runs.
    let mut runs = heapless::Vec::<(u64, u64), MAX_RUNS>::new();
    let mut nr_frames = 0u64;
    while let Some(pfn) = mm.alloc_frame_low() {
        let Some(va) = mm.alias(pfn) else { break };
        match runs.last_mut() {
            Some((first, n)) if *first + *n == pfn => *n += 1,
            _ => {
                if runs.push((pfn, 1)).is_err() {
                    break;
                }
            }
        }
        nr_frames += 1;
        for w in 0..WORDS {
            // SAFETY: a free frame of the initial mapping, mapped writable
            // at its alias and used by nothing else.
            unsafe { core::ptr::write_volatile((va as *mut u64).add(w as usize), pattern(pfn, w)) };
        }
    }
    // Our page tables: the initial ones (pt_base on).
    let l4_pfn = mm.l4_pfn();
    let nr_tables = (si.nr_pt_frames as usize).min(MAX_TABLES);
    let mut tables = heapless::Vec::<(u64, u64), MAX_TABLES>::new();
    for pfn in l4_pfn..l4_pfn + nr_tables as u64 {
        if let Some(mfn) = mm.p2m(pfn) {
            let _ = tables.push((mfn, table_digest(&mm, mfn)));
        }
    }
    println!("canary: watching frames={} tables={}", nr_frames, tables.len());
    let mut damaged = 0u64;
    let mut pass = 0u64;
    loop {
        pass += 1;
        let frames = runs.iter().flat_map(|&(first, n)| first..first + n);
        for (k, pfn) in frames.enumerate() {
            let Some(va) = mm.alias(pfn) else { continue };
            for w in 0..WORDS {
                // SAFETY: as above; only this loop reads it.
                let got = unsafe { core::ptr::read_volatile((va as *const u64).add(w as usize)) };
                if got != pattern(pfn, w) {
                    damaged += 1;
                    if damaged <= 8 {
                        println!("canary: DAMAGE pfn={:#x} word={} got={:#018x} expected={:#018x}", pfn, w, got, pattern(pfn, w));
                    }
                }
            }
            if k % 256 == 255 {
                let _ = guest::sched_yield();
            }
        }
        for &(mfn, d) in &tables {
            if table_digest(&mm, mfn) != d {
                damaged += 1;
                println!("canary: DAMAGE page table mfn={:#x} changed", mfn);
            }
        }
        if damaged == 0 {
            println!("canary: pass {} ok frames={}", pass, nr_frames);
        } else {
            println!("canary: pass {} damaged words={}", pass, damaged);
        }
        if passes != 0 && pass >= passes {
            break;
        }
    }
    println!("Test result: {}", if damaged == 0 { "SUCCESS" } else { "FAILURE" });
}
