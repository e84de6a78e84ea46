//! Host tests that drive the whole core through its hypercall entry, as a
//! guest would: a Dom0 built from a small ELF image over simulated memory.

mod console_io;
mod cpuid;
mod domctl;
mod emul_priv_op;
mod emul_review;
mod fuzz_diff;
mod events_props;
mod evtchn_fifo;
mod foreign_refs;
mod gnttab_props;
mod hypercall_fuzz;
mod invariants;
mod isolation;
mod linux_abi;
mod lifecycle;
mod machine_safety;
mod mmu_props;
mod memory_exchange;
mod mmu_regressions;
mod platform_op;
mod vcpu_hostile;

use alloc::vec::Vec;

use pv_image::elf::test_image::{build, Note};
use crate::build::layout::Layout;
use crate::build::{build_pv_domain, BuildRequest};
use crate::domain::DomId;
use crate::mm::pte::*;
use crate::mm::{FrameTable, MachineMemory, Mfn};
use crate::regs::GuestRegs;
use crate::testing::HostPlatform;
use crate::xen::{Next, Xen};
use hypercall_abi::elfnote::*;

pub const FRAMES: u64 = 6144;
pub const DOM_PAGES: u64 = 2048;

pub struct World {
    pub xen: Xen<HostPlatform>,
    pub layout: Layout,
    /// A writable guest buffer (inside the initial mapping's padding) for
    /// hypercall arguments.
    pub scratch: u64,
}

/// The frame of `syscall` from hypercall-page entry `nr` (page at 0x101000,
/// `syscall` 7 bytes in), on Xen's flat ring-3 selectors.
pub fn hypercall_frame(nr: u64, args: [u64; 5]) -> GuestRegs {
    GuestRegs {
        rax: nr,
        rdi: args[0],
        rsi: args[1],
        rdx: args[2],
        r10: args[3],
        r8: args[4],
        rip: 0x101000 + 32 * nr + 9,
        cs: 0xe033,
        ss: 0xe02b,
        ..GuestRegs::default()
    }
}

/// Cases per property test: 48 by default (a few seconds in a debug
/// build); `PROPTEST_CASES` overrides (scripts/test.sh runs a release build
/// with more, see docs/testing.md).
pub fn prop_config() -> proptest::prelude::ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48);
    proptest::prelude::ProptestConfig { cases, ..proptest::prelude::ProptestConfig::default() }
}

pub fn kernel_image() -> Vec<u8> {
    build(
        0x100000,
        &[0x90; 64],
        0x3000,
        0x100000,
        &[
            Note { ty: XEN_ELFNOTE_HYPERCALL_PAGE, desc: &0x101000u64.to_le_bytes() },
            Note { ty: XEN_ELFNOTE_XEN_VERSION, desc: b"xen-3.0\0" },
            Note { ty: XEN_ELFNOTE_LOADER, desc: b"generic\0" },
        ],
    )
}

impl World {
    /// Dom0 (privileged) running, with `DOM_PAGES` pages.
    pub fn new() -> World {
        World::with_domain(DomId(0), true)
    }

    pub fn with_domain(id: DomId, privileged: bool) -> World {
        let p = HostPlatform::new(FRAMES as usize);
        let mut ft = FrameTable::new(FRAMES);
        ft.add_free(Mfn(16), FRAMES - 16);
        let k = kernel_image();
        let req = BuildRequest { domid: id, name: "d", privileged, kernel: &k, module: None, cmdline: "", nr_pages: DOM_PAGES, max_vcpus: 2, max_pages: 0 };
        let built = build_pv_domain(&p, &mut ft, &req).expect("build");
        let mut xen = Xen::new(p, ft, "");
        let layout = built.layout;
        xen.domains.insert(id, built.domain);
        xen.current = Some((id, 0));
        World { xen, layout, scratch: layout.v_end - 0x10000 }
    }

    /// Add another domain (not running).
    pub fn add_domain(&mut self, id: DomId, privileged: bool) {
        let k = kernel_image();
        let req = BuildRequest { domid: id, name: "other", privileged, kernel: &k, module: None, cmdline: "", nr_pages: 1100, max_vcpus: 1, max_pages: 0 };
        let built = build_pv_domain(&self.xen.platform, &mut self.xen.frames, &req).expect("build other");
        self.xen.domains.insert(id, built.domain);
    }

    pub fn hypercall(&mut self, nr: u64, args: [u64; 5]) -> i64 {
        let mut regs = hypercall_frame(nr, args);
        loop {
            self.xen.hypercall(&mut regs);
            // A continuation rewinds rip over the syscall: run it again, as
            // the CPU would.
            if regs.rax == nr && regs.rip == 0x101000 + 32 * nr + 7 {
                regs.rip += 2;
                continue;
            }
            return regs.rax as i64;
        }
    }

    /// Run `code` (written at `at`) as the guest kernel, faulting at its
    /// first byte with `vector` (error code `ec`, fault address `cr2`) and
    /// the registers of `init`. The frame as the guest resumes with it.
    pub fn kernel_fault(&mut self, at: u64, code: &[u8], vector: u64, ec: u64, cr2: u64, init: GuestRegs) -> (Next, GuestRegs) {
        self.write(at, code);
        let mut regs = GuestRegs {
            entry_vector: vector,
            error_code: ec,
            rip: at,
            cs: 0xe033,
            ss: 0xe02b,
            rsp: self.layout.vstack_end - 0x100,
            rflags: 0x202,
            ..init
        };
        let next = self.xen.guest_exception(&mut regs, cr2);
        (next, regs)
    }

    pub fn write(&self, va: u64, data: &[u8]) {
        self.xen.guest_mem().unwrap().copy_to_guest(va, data).expect("scratch write");
    }

    pub fn read_u64(&self, va: u64) -> u64 {
        self.xen.guest_mem().unwrap().read_u64(va).expect("guest read")
    }

    /// `mmu_update` with one request, through the scratch buffer.
    pub fn mmu_update(&mut self, ptr: u64, val: u64, foreigndom: u64) -> i64 {
        let mut req = [0u8; 16];
        req[..8].copy_from_slice(&ptr.to_le_bytes());
        req[8..].copy_from_slice(&val.to_le_bytes());
        let s = self.scratch;
        // A hostile sequence may have unmapped its own scratch buffer.
        if self.xen.guest_mem().unwrap().copy_to_guest(s, &req).is_err() {
            return i64::MIN;
        }
        self.hypercall(hypercall_abi::nr::MMU_UPDATE, [s, 1, 0, foreigndom, 0])
    }

    pub fn mmuext(&mut self, cmd: u32, arg1: u64, arg2: u64) -> i64 {
        let mut op = [0u8; 24];
        op[..4].copy_from_slice(&cmd.to_le_bytes());
        op[8..16].copy_from_slice(&arg1.to_le_bytes());
        op[16..].copy_from_slice(&arg2.to_le_bytes());
        let s = self.scratch + 0x100;
        self.write(s, &op);
        self.hypercall(hypercall_abi::nr::MMUEXT_OP, [s, 1, 0, 0x7ff0, 0])
    }

    pub fn pfn(&self, pfn: u64) -> Mfn {
        self.xen.domains[&self.me()].p2m[pfn as usize]
    }

    pub fn me(&self) -> DomId {
        self.xen.current.unwrap().0
    }

    /// The L1 table and the machine address of the entry that maps `va`.
    pub fn l1e_maddr(&self, va: u64) -> (Mfn, u64) {
        let p = &self.xen.platform;
        let mut t = self.xen.domains[&self.me()].vcpus[0].cr3;
        for idx in [l4_index(va), l3_index(va), l2_index(va)] {
            t = Mfn(entry_mfn(p.read_u64(t, idx)));
        }
        (t, t.maddr() + 8 * l1_index(va) as u64)
    }

    /// A frame of the domain outside the initial mapping: free to use as a
    /// new table or data page.
    pub fn spare_pfn(&self, k: u64) -> u64 {
        self.layout.pages() + k
    }
}

pub const RW: u64 = _PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED;
pub const RO: u64 = _PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED;

/// A `vcpu_guest_context` for a 64-bit PV vCPU in kernel mode at `rip`, on
/// World's Dom0 page tables (callers patch `ctrlreg[3]` for their own).
pub fn vcpu_hostile_context_for(w: &World, rip: u64) -> alloc::vec::Vec<u8> {
    vcpu_hostile::context(w, rip)
}
