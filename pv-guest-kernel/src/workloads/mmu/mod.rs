//! `workload=mmu`: the PV MMU self-test.
//!
//! Legal operations first (map, write, read, unmap; `update_va_mapping` with
//! each flush; `mmu_update` batches; pin/unpin; the `mmuext_op` flushes and
//! page clear/copy; `multicall`; `memory_op` reservations), then illegal ones,
//! each of which must fail with the error Xen 4.17 gives and leave the domain
//! running, then reads of the read-only M2P table (last, since a hypervisor
//! without it faults the domain there), then one more legal mapping to show
//! the domain lives on.
//!
//! Every expected value is what Xen 4.17.7 (Debian's 4.17.7+13) returns to a
//! 64-bit PV Dom0, seen under QEMU; the comment at each check names the Xen
//! code that decides it (`xen/arch/x86/mm.c` unless said otherwise). Values
//! that depend on the machine or the domain's layout (frame numbers) are
//! printed as 8-digit hex, which the differential tests mask; everything
//! else must match Xen's output byte for byte.

mod illegal;
mod legal;

use core::fmt;
use core::ptr;

use hypercall_abi::guest;
use hypercall_abi::mm::{MmuUpdate, MmuextOp, DOMID_SELF, PAGE_SIZE, _PAGE_RW};
use hypercall_abi::Errno;
use pv_rt::mm::{m2p, Mm};
use pv_rt::println;

use crate::check::Checks;

/// Where the self-test maps its pages: L4 slot 64, far from the initial
/// mapping (slot 0) and from anything else, so the first `map` makes a new
/// L3, L2 and L1. Page `n` of the test is at `TEST_BASE + n * 4096`.
pub const TEST_BASE: u64 = 0x0000_2000_0000_0000;

pub fn test_va(n: u64) -> u64 {
    TEST_BASE + n * PAGE_SIZE
}

/// A machine-dependent number (a frame number, an address): always eight
/// hex digits or more, so that the differential tests mask it.
pub struct Hex(pub u64);

impl fmt::Display for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#010x}", self.0)
    }
}

impl PartialEq for Hex {
    fn eq(&self, other: &Hex) -> bool {
        self.0 == other.0
    }
}

/// What a `Result` of the memory manager would have been as a hypercall
/// return value: 0 or `-errno`.
pub fn ret(r: Result<(), Errno>) -> i64 {
    match r {
        Ok(()) => 0,
        Err(e) => e.to_ret(),
    }
}

/// A word read through a test mapping, or `unmapped` when our tables do not
/// map the address (so a hypervisor that wrongly refused a mapping gets a
/// FAIL line instead of a page fault that would end the test).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Word(pub Option<u64>);

impl fmt::Display for Word {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(v) => write!(f, "{:#x}", v),
            None => f.write_str("unmapped"),
        }
    }
}

/// The state the checks share.
pub struct Ctx {
    pub mm: Mm,
    pub checks: Checks,
    /// A frame of RAM that is not ours (see `find_foreign_ram_frame`).
    pub foreign_mfn: Option<u64>,
    /// `XENMEM_maximum_ram_page`.
    pub max_ram_page: u64,
    /// Frames whose M2P entry the M2P checks compare: `(pfn, what)`.
    pub m2p_probes: heapless::Vec<(u64, &'static str), 8>,
}

impl Ctx {
    pub fn eq<T: PartialEq + fmt::Display>(&mut self, name: &str, got: T, expected: T) -> bool {
        self.checks.eq(name, got, expected)
    }

    pub fn mfn(&self, pfn: u64) -> u64 {
        self.mm.p2m(pfn).expect("frame handed out by the allocator has an mfn")
    }

    /// A fresh frame past the initial mapping, mapped nowhere.
    pub fn frame(&mut self) -> u64 {
        self.mm.alloc_frame().expect("the self-test needs a few dozen free frames")
    }

    /// Maps `pfn` at test page `n` (writable) and returns the address.
    pub fn map_rw(&mut self, n: u64, pfn: u64) -> Result<u64, Errno> {
        let va = test_va(n);
        // SAFETY: test pages hold nothing but what the checks put there.
        unsafe { self.mm.map(va, pfn, true)? };
        Ok(va)
    }

    pub fn unmap(&self, n: u64) -> i64 {
        // SAFETY: as in `map_rw`.
        ret(unsafe { self.mm.unmap(test_va(n)) })
    }

    /// One `mmu_update` request for our own pages.
    pub fn mmu_update(&self, ptr: u64, val: u64) -> i64 {
        // SAFETY: the self-test only ever points `ptr` at entries of the test
        // region's tables, at the test L4 slots, or at entries the hypervisor
        // must refuse to change.
        unsafe { guest::mmu_update(&[MmuUpdate { ptr, val }], None, DOMID_SELF as u32) }
    }

    pub fn update_va_mapping(&self, va: u64, val: u64, flags: u64) -> i64 {
        // SAFETY: `va` is a test page or an address the hypervisor must
        // refuse (its own, or one with no L1 table).
        unsafe { guest::update_va_mapping(va, val, flags) }
    }

    /// One `mmuext_op` for our own pages.
    pub fn mmuext(&self, cmd: u32, arg1: u64, arg2: u64) -> i64 {
        // SAFETY: the ops the self-test issues touch test frames, flush
        // TLBs, or must be refused.
        unsafe { guest::mmuext_op(&[MmuextOp::new(cmd, arg1, arg2)], None, DOMID_SELF as u32) }
    }

    /// The word at `va`, if our tables map it.
    pub fn read(&self, va: u64) -> Word {
        if self.mm.lookup(va & !(PAGE_SIZE - 1)).is_none() {
            return Word(None);
        }
        // SAFETY: the walk found `va` mapped (x86 caches no non-present
        // entries, so the CPU will not fault); the self-test only reads test
        // pages and aliases, which hold nothing Rust code uses otherwise.
        Word(Some(unsafe { ptr::read_volatile(va as *const u64) }))
    }

    /// Writes the word at `va` if our tables map it writable; false if not.
    pub fn write(&self, va: u64, val: u64) -> bool {
        match self.mm.lookup(va & !(PAGE_SIZE - 1)) {
            Some(e) if e & _PAGE_RW != 0 => {
                // SAFETY: as in `read`, for a writable mapping of a frame
                // that only the self-test uses.
                unsafe { ptr::write_volatile(va as *mut u64, val) };
                true
            }
            _ => false,
        }
    }

    /// Checks the word at `va`.
    pub fn eq_word(&mut self, name: &str, va: u64, expected: u64) -> bool {
        let got = self.read(va);
        self.eq(name, got, Word(Some(expected)))
    }

    /// Maps a fresh frame writable at test page `n`, writes `pattern` to its
    /// first and last words and reads the first back. Returns the map's
    /// result and what was read.
    pub fn write_read(&mut self, n: u64, pattern: u64) -> (i64, Word) {
        let pfn = self.frame();
        match self.map_rw(n, pfn) {
            Ok(va) => {
                self.write(va, pattern);
                self.write(va + PAGE_SIZE - 8, pattern);
                (0, self.read(va))
            }
            Err(e) => (e.to_ret(), Word(None)),
        }
    }
}

/// A RAM frame that belongs neither to us nor to the low MiB (which Xen
/// hands to `dom_io`, and so lets Dom0 map): the lowest frame from 1 MiB up
/// that our P2M does not list and that is not our shared_info page.
fn find_foreign_ram_frame(mm: &Mm, max_ram_page: u64) -> Option<u64> {
    let shared_info_mfn = pv_rt::start_info().shared_info >> 12;
    (0x100..max_ram_page.min(0x100 + 0x10000))
        .find(|&mfn| mfn != shared_info_mfn && mm.mfn_to_pfn(mfn).is_none())
}

pub fn run(_cmdline: &str) {
    let si = pv_rt::start_info();
    // SAFETY: the only memory manager of this kernel; pv-rt's entry has left
    // the bootstrap stack.
    let mm = match unsafe { Mm::new(si) } {
        Ok(mm) => mm,
        Err(e) => {
            println!("mmu: cannot walk the initial page tables: {}", e);
            println!("Test result: FAILURE");
            return;
        }
    };
    println!(
        "mmu: v_start={:#x} l4 pfn={:#x} mfn={:#x}; free pfns {:#x}..{:#x} in the initial mapping, then up to {:#x}",
        mm.v_start(),
        mm.l4_pfn(),
        mm.l4_mfn(),
        mm.free_start_pfn(),
        mm.init_end_pfn(),
        mm.nr_pages()
    );
    // SAFETY: XENMEM_maximum_ram_page takes no argument.
    let max_ram_page = unsafe { guest::memory_op(hypercall_abi::memory::XENMEM_maximum_ram_page, ptr::null_mut()) };
    let max_ram_page = if max_ram_page > 0 { max_ram_page as u64 } else { 0 };
    let foreign_mfn = find_foreign_ram_frame(&mm, max_ram_page);
    match foreign_mfn {
        Some(mfn) => println!("mmu: maximum_ram_page={:#x}; a RAM frame not ours: {:#x}", max_ram_page, mfn),
        None => println!("mmu: maximum_ram_page={:#x}; found no RAM frame that is not ours", max_ram_page),
    }
    let mut ctx = Ctx {
        mm,
        checks: Checks::default(),
        foreign_mfn,
        max_ram_page,
        m2p_probes: heapless::Vec::new(),
    };

    legal::run(&mut ctx);
    illegal::run(&mut ctx);
    m2p_checks(&mut ctx);

    // The domain lives on: after all the refusals, a fresh mapping works.
    let (rc, got) = ctx.write_read(100, 0x600d);
    ctx.eq("alive_map_after_illegal_ops", rc, 0);
    ctx.eq("alive_write_read", got, Word(Some(0x600d)));
    ctx.checks.verdict();
}

/// Reads of the read-only M2P table at `MACH2PHYS_VIRT_START`: for each frame
/// we own, `m2p[mfn] == pfn` (Xen keeps it so for PV guests: the builder
/// fills it, and `MMU_MACHPHYS_UPDATE` lets the guest change it).
fn m2p_checks(ctx: &mut Ctx) {
    let probes = ctx.m2p_probes.clone();
    for (pfn, what) in probes {
        let mfn = ctx.mfn(pfn);
        // SAFETY: a frame we own is RAM.
        let got = unsafe { m2p(mfn) };
        ctx.eq(what, Hex(got), Hex(pfn));
    }
    let l4 = ctx.mm.l4_mfn();
    // SAFETY: our L4 is a frame we own.
    let got = unsafe { m2p(l4) };
    ctx.eq("m2p_of_l4", Hex(got), Hex(ctx.mm.l4_pfn()));
    // Every pfn of the domain, both ways.
    let mut disagree = 0u64;
    for pfn in 0..ctx.mm.nr_pages() {
        if let Some(mfn) = ctx.mm.p2m(pfn) {
            // SAFETY: as above.
            if unsafe { m2p(mfn) } != pfn {
                disagree += 1;
            }
        }
    }
    ctx.eq("m2p_agrees_with_p2m_everywhere", disagree, 0);
}
