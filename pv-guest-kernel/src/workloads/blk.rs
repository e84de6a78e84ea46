//! Block workloads over pv-rt's blkfront, on `xvda` (`persistent=0`: do
//! not offer persistent grants):
//! - `blk-write pattern=N`: writes 64 sectors of a pattern made from N and
//!   the sector number, flushes;
//! - `blk-read pattern=N`: reads them back and compares;
//! - `blk-hostile`: requests a back end must refuse (a grant never given,
//!   sectors past the end, `first_sect > last_sect`, too many segments, an
//!   unknown operation), a full ring at once, a flood of events, then a
//!   producer index far past the ring. Each refused request must get an error response and the
//!   back end must keep serving until the bogus index.

use hypercall_abi::blkif::*;
use pv_rt::blkfront::{slot_bytes, Blkfront, Layout};
use pv_rt::gnttab::GrantTable;
use pv_rt::xenbus::Xenbus;
use pv_rt::{cmdline, println, start_info};

use super::grant::{Env, GNTTAB_VA, PAGE_A_VA, PAGE_B_VA};
use crate::check::Checks;

const XVDA: u32 = 51712;
const SECTORS: u64 = 64;

fn connect(c: &mut Checks, cmd: &str) -> Option<(Env, Blkfront)> {
    let mut env = match Env::new() {
        Ok(e) => e,
        Err(_) => {
            c.eq("blk set-up", false, true);
            return None;
        }
    };
    let Some(mut xs) = Xenbus::new(start_info()) else {
        c.eq("blk store ring", false, true);
        return None;
    };
    // SAFETY: GNTTAB_VA is this workload's and unused.
    let Ok(gt) = (unsafe { GrantTable::setup(&mut env.mm, GNTTAB_VA, 1) }) else {
        c.eq("blk grant table", false, true);
        return None;
    };
    let persistent = cmdline::get(cmd, "persistent") != Some("0");
    let l = Layout { ring_va: PAGE_A_VA, data_va: PAGE_B_VA, ring_gref: 8, data_gref: 9, persistent };
    let deadline = env.now_ns() + 10_000_000_000;
    match Blkfront::connect(&mut env.mm, &mut xs, &gt, XVDA, &l, deadline) {
        Ok(b) => {
            println!("blk: xvda connected: {} sectors, info {}, persistent grants {}", b.sectors, b.info, if b.persistent { "yes" } else { "no" });
            Some((env, b))
        }
        Err(e) => {
            println!("blk: connecting xvda failed: {:?}", e);
            c.eq("blk connected", false, true);
            None
        }
    }
}

fn byte(pattern: u64, sector: u64, i: usize) -> u8 {
    (pattern as u8).wrapping_mul(31).wrapping_add(sector as u8).wrapping_add(i as u8)
}

pub fn write(cmd: &str) {
    let mut c = Checks::default();
    let pattern = cmdline::get(cmd, "pattern").and_then(|p| p.parse().ok()).unwrap_or(1u64);
    if let Some((env, mut b)) = connect(&mut c, cmd) {
        let deadline = env.now_ns() + 10_000_000_000;
        let mut ok = true;
        for s in (0..SECTORS).step_by(8) {
            let mut buf = [0u8; 4096];
            for (i, x) in buf.iter_mut().enumerate() {
                *x = byte(pattern, s + i as u64 / 512, i);
            }
            ok &= b.io(BLKIF_OP_WRITE, s, &mut buf, deadline) == Some(BLKIF_RSP_OKAY);
        }
        c.eq("blk write 64 sectors", ok, true);
        c.eq("blk flush", b.io(BLKIF_OP_FLUSH_DISKCACHE, 0, &mut [0u8; 512], deadline).unwrap_or(99), BLKIF_RSP_OKAY);
        println!("blk: wrote {} sectors of pattern {}", SECTORS, pattern);
    }
    c.verdict();
}

pub fn read(cmd: &str) {
    let mut c = Checks::default();
    let pattern = cmdline::get(cmd, "pattern").and_then(|p| p.parse().ok()).unwrap_or(1u64);
    if let Some((env, mut b)) = connect(&mut c, cmd) {
        let deadline = env.now_ns() + 10_000_000_000;
        let mut same = true;
        for s in (0..SECTORS).step_by(8) {
            let mut buf = [0u8; 4096];
            same &= b.io(BLKIF_OP_READ, s, &mut buf, deadline) == Some(BLKIF_RSP_OKAY);
            same &= buf.iter().enumerate().all(|(i, &x)| x == byte(pattern, s + i as u64 / 512, i));
        }
        c.eq("blk read back the pattern", same, true);
        println!("blk: read {} sectors of pattern {}: {}", SECTORS, pattern, if same { "same" } else { "DIFFERENT" });
    }
    c.verdict();
}

pub fn hostile(cmd: &str) {
    let mut c = Checks::default();
    if let Some((env, mut b)) = connect(&mut c, cmd) {
        let deadline = env.now_ns() + 10_000_000_000;
        let seg = |gref, first, last| BlkifRequestSegment { gref, first_sect: first, last_sect: last, _pad: 0 };
        let one = |b: &mut Blkfront, r: BlkifRequest| {
            b.queue_raw(&slot_bytes(&r));
            b.push();
            b.response(deadline).map_or(99, |r| r.status)
        };
        let req = |op, sector, s: BlkifRequestSegment| {
            let mut r = BlkifRequest { operation: op, nr_segments: 1, id: 77, sector_number: sector, ..Default::default() };
            r.seg[0] = s;
            r
        };
        let end = b.sectors;
        let data = b.data_gref;
        c.eq("blk a grant never given", one(&mut b, req(BLKIF_OP_READ, 0, seg(4000, 0, 7))), BLKIF_RSP_ERROR);
        c.eq("blk sectors past the end", one(&mut b, req(BLKIF_OP_READ, end - 4, seg(data, 0, 7))), BLKIF_RSP_ERROR);
        c.eq("blk first_sect > last_sect", one(&mut b, req(BLKIF_OP_WRITE, 0, seg(data, 6, 2))), BLKIF_RSP_ERROR);
        c.eq("blk last_sect past the page", one(&mut b, req(BLKIF_OP_WRITE, 0, seg(data, 0, 9))), BLKIF_RSP_ERROR);
        let mut many = req(BLKIF_OP_READ, 0, seg(data, 0, 0));
        many.nr_segments = 200;
        c.eq("blk 200 segments", one(&mut b, many), BLKIF_RSP_ERROR);
        c.eq("blk unknown operation", one(&mut b, req(99, 0, seg(data, 0, 0))), BLKIF_RSP_EOPNOTSUPP);
        // A full ring at once: every request answered.
        for _ in 0..BLKIF_RING_SIZE {
            b.queue_raw(&slot_bytes(&req(BLKIF_OP_READ, 0, seg(data, 0, 7))));
        }
        b.push();
        let answered = (0..BLKIF_RING_SIZE).filter(|_| b.response(deadline).is_some_and(|r| r.status == BLKIF_RSP_OKAY)).count();
        c.eq("blk a full ring answered", answered, BLKIF_RING_SIZE);
        c.eq("blk still serving", b.io(BLKIF_OP_READ, 0, &mut [0u8; 4096], deadline).unwrap_or(99), BLKIF_RSP_OKAY);
        // A flood of notifications with nothing behind them.
        for _ in 0..5000 {
            let _ = pv_rt::events::send(b.port);
        }
        c.eq("blk serving after an event flood", b.io(BLKIF_OP_READ, 0, &mut [0u8; 4096], deadline).unwrap_or(99), BLKIF_RSP_OKAY);
        // More requests than slots: the back end stops serving this ring.
        let bogus = b.req_prod_pvt().wrapping_add(1000);
        b.push_raw(bogus);
        env.sleep(300_000_000);
        println!("blk: published a producer index 1000 past the ring");
    }
    c.verdict();
}

/// `blk-bench iters=N [xs=M]`: blkif and XenStore costs as a guest sees
/// them. XenStore: M (default N) writes of `data/bench`, then M reads. blkif, 4 KiB
/// requests (one granted page each) over the first 2 MiB of xvda (or the
/// whole disk if smaller): a sequential write pass, a flush, a sequential
/// read pass, then N random reads and N random writes. Each prints
/// `bench <name> iterations= total_tsc= per_call_tsc=` and a
/// `rate <name> <value> <unit>` line in the guest's system time (IOPS,
/// MB/s; under `-icount` virtual time).
pub fn bench(cmd: &str) {
    let mut c = Checks::default();
    let iters: u64 = cmdline::get(cmd, "iters").and_then(|p| p.parse().ok()).unwrap_or(1000).max(1);
    let xs_iters: u64 = cmdline::get(cmd, "xs").and_then(|p| p.parse().ok()).unwrap_or(iters).max(1);
    // Connecting first also maps shared_info, which system time needs.
    let conn = connect(&mut c, cmd);
    bench_xenstore(&mut c, xs_iters);
    if let Some((env, mut b)) = conn {
        bench_blkif(&mut c, &env, &mut b, iters);
    }
    c.verdict();
}

fn report(name: &str, n: u64, tsc: u64, ns: u64, bytes: u64) {
    println!("bench {} iterations={} total_tsc={} per_call_tsc={}", name, n, tsc, tsc / n.max(1));
    let ns = ns.max(1);
    if bytes > 0 {
        println!("rate {}_mb_s {}.{:02} MB/s", name, bytes * 1000 / ns, bytes * 100_000 / ns % 100);
    } else {
        println!("rate {}_iops {} IOPS", name, n * 1_000_000_000 / ns);
    }
}

fn time() -> (u64, u64) {
    (pv_rt::tsc::rdtsc_fenced(), pv_rt::time::system_time())
}

/// Separate frames: the guest's stack is small, and the store client and
/// the block front end are both large.
#[inline(never)]
fn bench_xenstore(c: &mut Checks, iters: u64) {
    let Some(mut xs) = Xenbus::new(start_info()) else {
        c.eq("blk-bench store ring", false, true);
        return;
    };
    let mut ok = true;
    let (t0, n0) = time();
    for i in 0..iters {
        ok &= xs.write(0, "data/bench", if i % 2 == 0 { b"0123456789abcdef" } else { b"fedcba9876543210" }).is_ok();
    }
    let (t1, n1) = time();
    report("xs_write", iters, t1 - t0, n1 - n0, 0);
    for _ in 0..iters {
        ok &= xs.read(0, "data/bench").is_ok_and(|v| v.len() == 16);
    }
    let (t2, n2) = time();
    report("xs_read", iters, t2 - t1, n2 - n1, 0);
    c.eq("xenstore write and read", ok, true);
}

#[inline(never)]
fn bench_blkif(c: &mut Checks, env: &Env, b: &mut Blkfront, iters: u64) {
    let pages = (b.sectors / 8).min(512);
    let deadline = env.now_ns() + 3_600_000_000_000;
    let mut buf = [0u8; 4096];
    let mut ok = true;
    let op = |b: &mut Blkfront, o: u8, page: u64, buf: &mut [u8; 4096]| b.io(o, page * 8, buf, deadline) == Some(BLKIF_RSP_OKAY);
    let (t0, n0) = time();
    for p in 0..pages {
        buf[0..8].copy_from_slice(&p.to_le_bytes());
        ok &= op(b, BLKIF_OP_WRITE, p, &mut buf);
    }
    ok &= b.io(BLKIF_OP_FLUSH_DISKCACHE, 0, &mut [0u8; 512], deadline) == Some(BLKIF_RSP_OKAY);
    let (t1, n1) = time();
    report("blk_seq_write_4k", pages, t1 - t0, n1 - n0, pages * 4096);
    for p in 0..pages {
        ok &= op(b, BLKIF_OP_READ, p, &mut buf) && buf[0..8] == p.to_le_bytes();
    }
    let (t2, n2) = time();
    report("blk_seq_read_4k", pages, t2 - t1, n2 - n1, pages * 4096);
    // xorshift64: the same "random" pages on both hypervisors.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % pages.max(1)
    };
    for _ in 0..iters {
        let p = next();
        ok &= op(b, BLKIF_OP_READ, p, &mut buf) && buf[0..8] == p.to_le_bytes();
    }
    let (t3, n3) = time();
    report("blk_rand_read_4k", iters, t3 - t2, n3 - n2, 0);
    for _ in 0..iters {
        let p = next();
        buf[0..8].copy_from_slice(&p.to_le_bytes());
        ok &= op(b, BLKIF_OP_WRITE, p, &mut buf);
    }
    let (t4, n4) = time();
    report("blk_rand_write_4k", iters, t4 - t3, n4 - n3, 0);
    c.eq("blk-bench requests answered OKAY, data as written", ok, true);
}
