//! The call generator: from call `i`'s random numbers, one hypercall of any
//! family and sub-op, its argument memory written into the argument pages.
//!
//! The values are the classes of Xen's security advisories: stray PTE bits
//! (PSE in an L1, PAT, global, NX, the available bits), self-referencing
//! and linear entries (a table naming itself or its own L4), unaligned and
//! non-canonical addresses, counts one past the array and huge, pointers
//! into the hypervisor's slots and the M2P, system domain ids, grant flag
//! combinations (each call stands alone, so a map or unmap is done twice
//! whenever the seed draws it twice), `shared_info` and grant frames as page
//! tables, GDT frames and `vcpu_info` areas, multicalls of mixed entries
//! with unknown numbers and nested multicalls inside.
//!
//! What the fuzzer must survive is left out: nothing maps or unmaps the
//! kernel's own addresses or frees its frames, no `iret` or shutdown of
//! itself (an `iret` entry ends a multicall with a real `iret` from the
//! caller's stack, in Xen too: the host fuzzer covers it), no `SCHEDOP_block`, no unbounded poll, no
//! vCPU brought up on a garbage context, no event callback at a garbage
//! address. With `diff` (the differential mode, run as Dom0 on both
//! hypervisors) it also leaves out absolute frame numbers and the Dom0
//! powers that would touch the machine (physdev, domctl, sysctl, platform
//! ops with their right interface version).

#![allow(non_upper_case_globals)] // Xen's names for the grant sub-ops, matched on.

use hypercall_abi::arch::{HYPERVISOR_VIRT_START, MACH2PHYS_VIRT_START};
use hypercall_abi::grant::*;
use hypercall_abi::mm::*;
use hypercall_abi::nr;

use super::rng::Rng;
use super::sandbox::{Sandbox, ARGS_LEN, ARGS_VA, BASE, GT_VA, L4_SLOT_FIRST, L4_SLOT_LAST};

/// One hypercall: number, five arguments, and a name for the trace.
#[derive(Clone, Copy)]
pub struct Call {
    pub nr: u64,
    pub args: [u64; 5],
    pub name: &'static str,
}

/// One generated step: a hypercall, or a write to our own grant table.
pub enum Step {
    Hypercall(Call),
    GrantEntry { gref: u64, flags: u16, domid: u16, frame: u32 },
}

/// Each argument buffer is 1 KiB of the argument pages (a call uses its
/// buffer `b` and `b + 1`); buffers 14 and 15 hold multicall entries. The
/// entries of a multicall use buffers 2-9, those of a nested one 10-13.
const BUF: u64 = 1024;
const MULTICALL_BUF: u64 = 14;
/// An address nothing maps (the hole after the argument pages). Not 0: the
/// kernel is linked at 0, so NULL is a mapped address in this guest.
const HOLE: u64 = ARGS_VA + 8 * 4096;

pub struct Gen<'a> {
    pub sb: &'a Sandbox,
    pub diff: bool,
}

fn buf(k: u64) -> u64 {
    ARGS_VA + k * BUF
}

/// Writes `val` at byte `off` of argument buffer `b` (kept inside it).
fn w64(b: u64, off: u64, val: u64) {
    let off = off.min(BUF - 8) & !7;
    // SAFETY: the argument pages are mapped writable for the fuzzer's whole
    // life (no call touches slot 82) and hold nothing of Rust's.
    unsafe { core::ptr::write_volatile((b + off) as *mut u64, val) };
}

fn w32(b: u64, off: u64, val: u32) {
    let off = off.min(BUF - 4) & !3;
    // SAFETY: as in `w64`.
    unsafe { core::ptr::write_volatile((b + off) as *mut u32, val) };
}

fn w16(b: u64, off: u64, val: u16) {
    let off = off.min(BUF - 2) & !1;
    // SAFETY: as in `w64`.
    unsafe { core::ptr::write_volatile((b + off) as *mut u16, val) };
}

impl Gen<'_> {
    pub fn step(&self, r: &mut Rng) -> Step {
        if self.sb.gt_mapped && r.one_in(12) {
            return Step::GrantEntry {
                gref: r.below(16),
                flags: self.grant_flags(r),
                domid: self.domid(r),
                frame: self.frame_w(r) as u32,
            };
        }
        Step::Hypercall(self.call(r, 0, 0))
    }

    /// A call whose memory arguments live in buffer `b`; `depth` counts
    /// multicall nesting.
    fn call(&self, r: &mut Rng, b: u64, depth: u32) -> Call {
        match r.below(100) {
            0..=14 => self.mmu_update(r, b),
            15..=24 => self.mmuext_op(r, b),
            25..=32 => self.update_va_mapping(r),
            33..=44 => self.grant_table_op(r, b),
            45..=54 => self.event_channel_op(r, b),
            55..=60 => self.memory_op(r, b),
            61..=65 => self.vcpu_op(r, b),
            66..=69 => self.sched_op(r, b),
            70..=73 if depth < 2 => self.multicall(r, depth),
            74..=76 => self.descriptors(r, b),
            77..=79 => self.xen_version(r, b),
            80..=82 => self.callbacks(r, b),
            83..=85 => self.cpu_state(r),
            86..=87 => self.console_io(r, b),
            88..=90 => self.privileged(r, b),
            91..=92 => self.other_nr(r, b),
            93 => Call { nr: nr::SET_TIMER_OP, args: [r.field(), 0, 0, 0, 0], name: "set_timer_op" },
            94..=96 => self.update_va_mapping_otherdomain(r),
            _ => self.mmu_update(r, b),
        }
    }

    /// A frame: ours (pool, page tables, shared_info, grant frames) or one
    /// that is not (absolute numbers only outside the differential mode).
    fn frame(&self, r: &mut Rng) -> u64 {
        let sb = self.sb;
        match r.below(20) {
            0..=9 => sb.pool[r.below(sb.pool.len() as u64) as usize],
            10..=13 => r.pick(&[sb.l1, sb.l2, sb.l3, sb.l4]),
            14 => sb.shared_info,
            15 => sb.grant[r.below(2) as usize],
            16 if !self.diff => r.below(0x2_0000),
            _ => r.pick(&[0, 1, 0xf_ffff_ffff, 0xff_ffff_ffff, 0x7_ffff_ffff_ffff, u64::MAX >> 12]),
        }
    }

    /// A frame the hypervisor may write into on our behalf (a page copy or
    /// clear, a grant copy, a `vcpu_info`): never an absolute number, which
    /// could be one of the kernel's own frames.
    fn frame_w(&self, r: &mut Rng) -> u64 {
        let f = self.frame(r);
        if f < 0x2_0000 && self.sb.name_of(f) == 0xfff {
            self.sb.pool[(f % self.sb.pool.len() as u64) as usize]
        } else {
            f
        }
    }

    /// A page-table entry naming `frame()`, with flags plausible or not.
    fn pte(&self, r: &mut Rng) -> u64 {
        let mfn = self.frame(r);
        let mut flags = match r.below(6) {
            0 => _PAGE_PRESENT,
            1 | 2 => _PAGE_PRESENT | _PAGE_RW,
            3 => _PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED | _PAGE_DIRTY,
            4 => 0,
            _ => r.next() & 0xfff,
        };
        if r.one_in(3) {
            flags |= r.pick(&[_PAGE_PSE, _PAGE_PAT, _PAGE_GLOBAL, _PAGE_NX, 1 << 9, 1 << 10, 1 << 11, _PAGE_PWT | _PAGE_PCD, 1 << 52, 1 << 62]);
        }
        if r.one_in(16) {
            return r.field();
        }
        (mfn << 12 & PTE_PADDR_MASK) | flags
    }

    /// A pointer for an argument in buffer `b`, or a hostile one.
    fn ptr(&self, r: &mut Rng, b: u64) -> u64 {
        if r.below(8) != 0 {
            return buf(b);
        }
        r.pick(&[
            HOLE,
            buf(b) + 1,
            buf(b) + 4,
            HYPERVISOR_VIRT_START + 0x1000,
            0xffff_8300_0000_0000,
            MACH2PHYS_VIRT_START,
            0x0000_8000_0000_0000,
            ARGS_VA + ARGS_LEN - 8,
            u64::MAX - 7,
        ])
    }

    /// A count: small, one past an array, or huge.
    fn count(&self, r: &mut Rng, usual: u64) -> u64 {
        match r.below(8) {
            0..=5 => 1 + r.below(usual),
            6 => r.pick(&[0, 17, 64, 513, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff]),
            _ => r.field(),
        }
    }

    fn domid(&self, r: &mut Rng) -> u16 {
        match r.below(4) {
            0 | 1 => DOMID_SELF,
            2 => r.below(8) as u16,
            _ => r.pick(&[DOMID_IO, DOMID_XEN, DOMID_COW, DOMID_INVALID, DOMID_IDLE, 0x7ff6, 0x7fef, 0xffff, 0x8000]),
        }
    }

    /// A virtual address: in the fuzzer's slot, or hostile.
    fn va(&self, r: &mut Rng) -> u64 {
        match r.below(8) {
            0..=5 => BASE + r.below(1024) * 4096,
            6 => BASE + r.below(1 << 21) | r.pick(&[1, 0x123, 0xfff]),
            _ => r.pick(&[
                HYPERVISOR_VIRT_START,
                MACH2PHYS_VIRT_START + 0x1000,
                0xffff_8300_0000_0000,
                0x0000_8000_0000_0000,
                0xffff_7fff_ffff_f000,
                0xffff_ffff_ffff_f000,
                GT_VA - 4096,
            ]),
        }
    }

    /// The machine address of a page-table entry we may write: our slot's
    /// tables, an empty slot of our L4, or a frame that is no table.
    fn entry_ptr(&self, r: &mut Rng) -> u64 {
        let sb = self.sb;
        let (table, index) = match r.below(10) {
            0..=3 => (sb.l1, r.below(512)),
            4 | 5 => (sb.l2, r.below(512)),
            6 | 7 => (sb.l3, r.below(512)),
            8 => (sb.l4, L4_SLOT_FIRST + r.below(L4_SLOT_LAST - L4_SLOT_FIRST + 1)),
            _ => (sb.pool[r.below(sb.pool.len() as u64) as usize], r.below(512)),
        };
        let mut ptr = (table << 12) + index * 8;
        if r.one_in(16) {
            ptr += r.pick(&[4, 2]);
        }
        ptr
    }

    fn mmu_update(&self, r: &mut Rng, b: u64) -> Call {
        let n = 1 + r.below(4);
        for i in 0..n {
            let cmd = match r.below(20) {
                0..=13 => MMU_NORMAL_PT_UPDATE,
                14..=16 => MMU_PT_UPDATE_PRESERVE_AD,
                17 | 18 => MMU_MACHPHYS_UPDATE,
                _ => 3,
            };
            let (ptr, val) = if cmd == MMU_MACHPHYS_UPDATE {
                (self.frame_w(r) << 12, r.field())
            } else {
                (self.entry_ptr(r), self.pte(r))
            };
            w64(buf(b), i * 16, ptr | cmd);
            w64(buf(b), i * 16 + 8, val);
        }
        let count = if r.below(6) == 0 { self.count(r, 4) } else { n };
        let done = if r.one_in(2) { 0 } else { self.ptr(r, b + 1) };
        let fd = if r.below(3) == 0 { self.domid(r) } else { DOMID_SELF };
        Call { nr: nr::MMU_UPDATE, args: [self.ptr(r, b), count, done, fd as u64, 0], name: "mmu_update" }
    }

    fn mmuext_op(&self, r: &mut Rng, b: u64) -> Call {
        let n = 1 + r.below(3);
        let mut name = "mmuext_op";
        for i in 0..n {
            let cmd = if r.one_in(20) { r.field() as u32 } else { r.below(22) as u32 };
            let arg1 = match cmd {
                // Never a new kernel base pointer that could work: it
                // would run the fuzzer on a table of its choosing.
                MMUEXT_NEW_BASEPTR => r.pick(&[self.sb.l1, self.sb.shared_info, 0, u64::MAX >> 12]),
                MMUEXT_INVLPG_LOCAL | MMUEXT_INVLPG_MULTI | MMUEXT_INVLPG_ALL | MMUEXT_SET_LDT => self.va(r),
                _ => self.frame_w(r),
            };
            let arg2 = match cmd {
                MMUEXT_SET_LDT => r.pick(&[0, 1, 16, 8192, 8193, 0xffff_ffff]),
                MMUEXT_COPY_PAGE => self.frame_w(r),
                MMUEXT_TLB_FLUSH_MULTI | MMUEXT_INVLPG_MULTI => self.ptr(r, b + 1),
                _ => r.field(),
            };
            w32(buf(b), i * 24, cmd);
            w64(buf(b), i * 24 + 8, arg1);
            w64(buf(b), i * 24 + 16, arg2);
            if i == 0 {
                name = match cmd {
                    0..=3 => "mmuext_op.pin",
                    MMUEXT_UNPIN_TABLE => "mmuext_op.unpin",
                    MMUEXT_NEW_BASEPTR | MMUEXT_NEW_USER_BASEPTR => "mmuext_op.baseptr",
                    MMUEXT_CLEAR_PAGE | MMUEXT_COPY_PAGE => "mmuext_op.page",
                    MMUEXT_SET_LDT => "mmuext_op.set_ldt",
                    _ => "mmuext_op.flush",
                };
            }
        }
        w64(buf(b + 1), 0, r.field());
        let count = if r.below(6) == 0 { self.count(r, 3) } else { n };
        let done = if r.one_in(2) { 0 } else { self.ptr(r, b + 1) + 8 };
        let fd = if r.below(4) == 0 { self.domid(r) } else { DOMID_SELF };
        Call { nr: nr::MMUEXT_OP, args: [self.ptr(r, b), count, done, fd as u64, 0], name }
    }

    fn uvmf(&self, r: &mut Rng) -> u64 {
        match r.below(6) {
            0 => UVMF_NONE,
            1 => UVMF_INVLPG,
            2 => UVMF_TLB_FLUSH,
            3 => UVMF_INVLPG | UVMF_ALL,
            4 => UVMF_MULTI | buf(13),
            _ => r.field(),
        }
    }

    fn update_va_mapping(&self, r: &mut Rng) -> Call {
        Call { nr: nr::UPDATE_VA_MAPPING, args: [self.va(r), self.pte(r), self.uvmf(r), 0, 0], name: "update_va_mapping" }
    }

    fn update_va_mapping_otherdomain(&self, r: &mut Rng) -> Call {
        let d = self.domid(r) as u64;
        Call { nr: nr::UPDATE_VA_MAPPING_OTHERDOMAIN, args: [self.va(r), self.pte(r), self.uvmf(r), d, 0], name: "update_va_mapping_otherdomain" }
    }

    fn grant_flags(&self, r: &mut Rng) -> u16 {
        let mut f = r.pick(&[GTF_invalid, GTF_permit_access, GTF_accept_transfer, GTF_transitive, 3]);
        for bit in [GTF_readonly, GTF_reading, GTF_writing, GTF_PWT, GTF_PCD, GTF_sub_page, GTF_transfer_committed] {
            if r.one_in(4) {
                f |= bit;
            }
        }
        f
    }

    fn gntmap_flags(&self, r: &mut Rng) -> u32 {
        let mut f = if r.one_in(4) { 0 } else { GNTMAP_host_map };
        for bit in [GNTMAP_device_map, GNTMAP_readonly, GNTMAP_application_map, GNTMAP_contains_pte] {
            if r.one_in(5) {
                f |= bit;
            }
        }
        if r.one_in(8) {
            f |= 1 << (16 + r.below(16));
        }
        f
    }

    fn grant_table_op(&self, r: &mut Rng, b: u64) -> Call {
        let op = if r.one_in(30) { r.field() as u32 } else { r.below(13) as u32 };
        let p = buf(b);
        let n = 1 + r.below(3);
        let (count, name) = match op {
            GNTTABOP_map_grant_ref => {
                for i in 0..n {
                    let flags = self.gntmap_flags(r);
                    let addr = if flags & GNTMAP_contains_pte != 0 && r.below(3) != 0 { self.entry_ptr(r) } else { self.va(r) };
                    let o = i * 32;
                    w64(p, o, addr);
                    w32(p, o + 8, flags);
                    w32(p, o + 12, if r.one_in(6) { r.field() as u32 } else { r.below(16) as u32 });
                    w16(p, o + 16, self.domid(r));
                }
                (n, "grant.map")
            }
            GNTTABOP_unmap_grant_ref | GNTTABOP_unmap_and_replace => {
                for i in 0..n {
                    let o = i * 24;
                    w64(p, o, self.va(r));
                    w64(p, o + 8, if r.one_in(2) { 0 } else { r.field() });
                    w32(p, o + 16, if r.one_in(6) { r.field() as u32 } else { r.below(8) as u32 });
                }
                (n, if op == GNTTABOP_unmap_grant_ref { "grant.unmap" } else { "grant.unmap_and_replace" })
            }
            GNTTABOP_setup_table | GNTTABOP_get_status_frames => {
                w16(p, 0, self.domid(r));
                w32(p, 4, r.pick(&[0, 1, 2, 4, 32, 33, 64, 65, 0xffff_ffff]));
                w64(p, 16, self.ptr(r, b + 1));
                (1, if op == GNTTABOP_setup_table { "grant.setup_table" } else { "grant.get_status_frames" })
            }
            GNTTABOP_copy => {
                for i in 0..n {
                    let o = i * 40;
                    for (half, off) in [(0u64, 0u64), (1, 16)] {
                        let gref = r.one_in(2);
                        w64(p, o + off, if gref { r.below(16) } else { self.frame_w(r) });
                        w16(p, o + off + 8, self.domid(r));
                        w16(p, o + off + 10, r.pick(&[0, 8, 2048, 4088, 4095, 4096, 0xffff]));
                        let _ = half;
                    }
                    w16(p, o + 32, r.pick(&[0, 1, 8, 4096, 4097, 0xffff]));
                    w16(p, o + 34, r.below(4) as u16);
                }
                (n, "grant.copy")
            }
            GNTTABOP_transfer => {
                w64(p, 0, self.frame(r));
                w16(p, 8, self.domid(r));
                w32(p, 12, r.below(16) as u32);
                (1, "grant.transfer")
            }
            GNTTABOP_set_version => {
                w32(p, 0, r.pick(&[0, 1, 2, 3, 0xffff_ffff]));
                (1, "grant.set_version")
            }
            GNTTABOP_swap_grant_ref => {
                w32(p, 0, r.below(20) as u32);
                w32(p, 4, r.below(20) as u32);
                (1, "grant.swap")
            }
            _ => {
                w16(p, 0, self.domid(r));
                for i in 1..6 {
                    w64(p, i * 8, r.field());
                }
                (1, "grant.other")
            }
        };
        let count = if r.one_in(8) { self.count(r, 3) } else { count };
        Call { nr: nr::GRANT_TABLE_OP, args: [op as u64, self.ptr(r, b), count, 0, 0], name }
    }

    /// A port number: the low ones a domain has, or past every limit.
    fn port(&self, r: &mut Rng) -> u32 {
        if r.below(4) == 0 {
            r.pick(&[0, 1023, 1024, 4095, 4096, 131_071, 131_072, 0x7fff_ffff, 0xffff_ffff])
        } else {
            r.below(12) as u32
        }
    }

    fn event_channel_op(&self, r: &mut Rng, b: u64) -> Call {
        let cmd = if r.one_in(30) { r.field() as u32 } else { r.below(16) as u32 };
        let p = buf(b);
        // Every struct of the family is a handful of 16- and 32-bit fields:
        // ports, domain ids, vCPUs, VIRQ numbers, priorities.
        w16(p, 0, self.domid(r));
        w16(p, 2, self.domid(r));
        for i in 0..6 {
            let v = match r.below(4) {
                0 => self.port(r),
                1 => r.below(4) as u32,
                2 => r.below(26) as u32,
                _ => r.field() as u32,
            };
            w32(p, 4 + i * 4, v);
        }
        if r.one_in(3) {
            w32(p, 0, self.port(r));
        }
        // init_control/expand_array take a frame.
        if cmd == 11 || cmd == 12 {
            w64(p, 0, self.frame(r));
        }
        Call { nr: nr::EVENT_CHANNEL_OP, args: [cmd as u64, self.ptr(r, b), 0, 0, 0], name: "event_channel_op" }
    }

    fn memory_op(&self, r: &mut Rng, b: u64) -> Call {
        let cmd = if r.one_in(10) { r.below(32) } else { r.pick(&[0, 1, 2, 3, 4, 5, 6, 7, 11, 12]) };
        let p = buf(b);
        let ext = buf(b + 1);
        let mut name = "memory_op";
        match cmd {
            0 | 1 | 6 => {
                for i in 0..4 {
                    w64(ext, i * 8, self.frame(r));
                }
                w64(p, 0, self.ptr(r, b + 1));
                w64(p, 8, self.count(r, 4));
                w32(p, 16, r.pick(&[0, 0, 0, 1, 9, 18, 31, 63, 0xffff_ffff]));
                w32(p, 20, if r.one_in(4) { r.field() as u32 } else { 0 });
                w16(p, 24, self.domid(r));
                name = match cmd {
                    0 => "memory_op.increase_reservation",
                    1 => "memory_op.decrease_reservation",
                    _ => "memory_op.populate_physmap",
                };
            }
            7 => {
                // xen_add_to_physmap: domid, size, space, idx, gpfn.
                w16(p, 0, self.domid(r));
                w16(p, 2, r.below(4) as u16);
                w32(p, 4, r.below(7) as u32);
                w64(p, 8, r.field());
                w64(p, 16, self.frame(r));
                name = "memory_op.add_to_physmap";
            }
            _ => {
                w16(p, 0, self.domid(r));
                for i in 1..8 {
                    w64(p, i * 8, r.field());
                }
                w64(p, 8, self.ptr(r, b + 1));
            }
        }
        // Dom0 may read another domain's reservation, nothing more here.
        let arg = if cmd == 2 { 0 } else { self.ptr(r, b) };
        let cont = if r.one_in(16) { r.below(64) << 6 } else { 0 };
        Call { nr: nr::MEMORY_OP, args: [cmd | cont, arg, 0, 0, 0], name }
    }

    fn vcpu_op(&self, r: &mut Rng, b: u64) -> Call {
        let cmd = if r.one_in(20) { r.field() } else { r.below(16) };
        let vcpu = match r.below(6) {
            0..=2 => 0,
            3 | 4 => 1,
            _ => r.field(),
        };
        // Never down the vCPU we run on, never up a vCPU on whatever
        // context a call may have given it.
        let vcpu = match cmd {
            2 if vcpu == 0 => 1,
            1 if vcpu < 2 => 2,
            _ => vcpu,
        };
        let p = buf(b);
        for i in 0..8 {
            w64(p, i * 8, r.field());
        }
        if cmd == 10 {
            // register_vcpu_info: mfn, offset.
            w64(p, 0, self.frame_w(r));
            w32(p, 8, r.pick(&[0, 64, 4032, 4033, 4095, 4096]));
        }
        if cmd == 5 || cmd == 13 {
            // runstate and time areas: written on every reschedule, so
            // only into the argument pages, or where nothing can be written.
            w64(p, 0, r.pick(&[buf(b + 1), buf(b + 1) + 4, HOLE, HYPERVISOR_VIRT_START, ARGS_VA + ARGS_LEN - 8, 0x0000_8000_0000_0000]));
        }
        if cmd == 6 {
            // Periodic timers of a sane period; others are refused.
            w64(p, 0, r.pick(&[0, 1, 999_999, 1_000_000, 50_000_000]));
        }
        Call { nr: nr::VCPU_OP, args: [cmd, vcpu, self.ptr(r, b), 0, 0], name: "vcpu_op" }
    }

    fn sched_op(&self, r: &mut Rng, b: u64) -> Call {
        let p = buf(b);
        let (cmd, arg, name) = match r.below(8) {
            0 => (0, 0, "sched_op.yield"),
            1 => {
                // poll: ports, count, and a timeout already past.
                for i in 0..4 {
                    w32(p, 64 + i * 4, self.port(r));
                }
                w64(p, 0, self.ptr(r, b) + 64);
                w32(p, 8, r.pick(&[0, 1, 4, 128, 129, 0xffff_ffff]));
                w64(p, 16, 1);
                // Read from anywhere else the timeout could be 0: forever.
                (3, if r.one_in(8) { HOLE } else { p }, "sched_op.poll")
            }
            // shutdown only with an argument that cannot be read.
            2 => (2, r.pick(&[HOLE, HYPERVISOR_VIRT_START, 0x0000_8000_0000_0000]), "sched_op.shutdown_efault"),
            3 => {
                let d = if self.diff { r.pick(&[1, 7, 0x7ff0, 0x7ff1, 0xffff]) } else { self.domid(r) as u64 };
                w16(p, 0, d as u16);
                w32(p, 4, r.below(8) as u32);
                // Its own domain id, read from anywhere else, would shut
                // down a Dom0 (the differential mode runs as one).
                // (In the differential mode a bigger call may have written
                // over it in a multicall: only an unreadable argument.)
                (4, if self.diff || r.one_in(8) { HOLE } else { p }, "sched_op.remote_shutdown")
            }
            4 => {
                w32(p, 0, r.field() as u32);
                (5, self.ptr(r, b), "sched_op.shutdown_code")
            }
            5 => {
                // watchdog: only ids that cannot arm a new one.
                w32(p, 0, 1 + r.below(4) as u32);
                w32(p, 4, r.below(3) as u32);
                (6, self.ptr(r, b), "sched_op.watchdog")
            }
            6 => (7, self.ptr(r, b), "sched_op.pin_override"),
            _ => (r.pick(&[8, 9, 0xff, 0xffff_ffff]), self.ptr(r, b), "sched_op.unknown"),
        };
        Call { nr: nr::SCHED_OP, args: [cmd, arg, 0, 0, 0], name }
    }

    fn multicall(&self, r: &mut Rng, depth: u32) -> Call {
        let n = 1 + r.below(if depth == 0 { 4 } else { 2 });
        let table = buf(MULTICALL_BUF) + depth as u64 * 1024;
        for i in 0..n {
            let e = table + i * 64;
            let c = match r.below(10) {
                0 | 1 => Call { nr: r.pick(&[43, 63, 64, 0xffff_ffff]), args: [r.field(); 5], name: "" },
                _ => self.call(r, 2 + 2 * i + depth as u64 * 8, depth + 1),
            };
            // SAFETY: the entry lies in the multicall buffer of the argument pages.
            unsafe {
                core::ptr::write_volatile(e as *mut u64, c.nr);
                core::ptr::write_volatile((e + 8) as *mut u64, 0);
                for (k, a) in c.args.iter().enumerate() {
                    core::ptr::write_volatile((e + 16 + 8 * k as u64) as *mut u64, *a);
                }
            }
        }
        let count = if r.one_in(6) { self.count(r, 4) } else { n };
        // Never the entries read from a shifted start: an `op` made of
        // shifted bytes can be `iret` (23), which returns to whatever the
        // fuzzer's stack holds.
        let list = if r.one_in(10) { r.pick(&[HOLE, HYPERVISOR_VIRT_START, 0x0000_8000_0000_0000, ARGS_VA + ARGS_LEN - 32]) } else { table };
        Call { nr: nr::MULTICALL, args: [list, count, 0, 0, 0], name: "multicall" }
    }

    fn descriptors(&self, r: &mut Rng, b: u64) -> Call {
        if r.one_in(2) {
            let n = 1 + r.below(3);
            for i in 0..n {
                w64(buf(b), i * 8, self.frame(r));
            }
            let entries = r.pick(&[0, 1, 512, 513, 8192, 14 * 512, 16 * 512, 0xffff_ffff]);
            Call { nr: nr::SET_GDT, args: [self.ptr(r, b), entries, 0, 0, 0], name: "set_gdt" }
        } else {
            let maddr = (self.frame(r) << 12) + r.pick(&[0, 8, 0x800, 0xff8, 0xffc, 3]);
            let desc = match r.below(4) {
                0 => 0,
                1 => 0x00cf_fa00_0000_ffff, // flat 32-bit user code
                2 => 0x00af_9a00_0000_ffff, // 64-bit ring-0 code: refused
                _ => r.next(),
            };
            Call { nr: nr::UPDATE_DESCRIPTOR, args: [maddr, desc, 0, 0, 0], name: "update_descriptor" }
        }
    }

    fn xen_version(&self, r: &mut Rng, b: u64) -> Call {
        let cmd = if r.one_in(8) { r.field() } else { r.below(16) };
        Call { nr: nr::XEN_VERSION, args: [cmd, self.ptr(r, b), 0, 0, 0], name: "xen_version" }
    }

    fn callbacks(&self, r: &mut Rng, b: u64) -> Call {
        let p = buf(b);
        match r.below(3) {
            0 => {
                // callback_op: every type gets any address but the event
                // upcall and the failsafe callback, which the fuzzer may
                // take: those get their own stubs again.
                let kind = r.below(8) as u32;
                let addr = match kind {
                    0 => pv_rt::traps::event_callback(),
                    1 => pv_rt::traps::failsafe_callback(),
                    // The NMI callback only at an address both refuse:
                    // VCPUOP_send_nmi would run it.
                    4 => 0x0000_8000_0000_0000,
                    _ => self.va(r),
                };
                w32(p, 0, kind);
                w32(p, 4, r.below(4) as u32);
                w64(p, 8, addr);
                let cmd = r.pick(&[0, 0, 1, 2, 0xffff]);
                // Never unregistered (CALLBACKOP_unregister is 1).
                let cmd = if kind < 2 && cmd == 1 { 0 } else { cmd };
                let arg = if kind < 2 { p } else { self.ptr(r, b) };
                let (cmd, arg) = (cmd, arg);
                Call { nr: nr::CALLBACK_OP, args: [cmd, arg, 0, 0, 0], name: "callback_op" }
            }
            // The kernel stack the fuzzer's own entries use, with every
            // selector: Xen 4.17 takes a bad stack and then fails to
            // build bounce frames on it (the domain crashes).
            1 => Call {
                nr: nr::STACK_SWITCH,
                args: [r.pick(&[0, 0xe02b, 0xe033, 3, 0xffff]), pv_rt::traps::kernel_stack_top(), 0, 0, 0],
                name: "stack_switch",
            },
            // Only tables that cannot be read: the M2P at the start of the
            // hypervisor's slots is readable, and read as trap entries it
            // would install its frame numbers as handlers.
            _ => Call { nr: nr::SET_TRAP_TABLE, args: [r.pick(&[HOLE, 0xffff_8300_0000_0000, 0x0000_8000_0000_0000, u64::MAX - 15]), 0, 0, 0, 0], name: "set_trap_table_efault" },
        }
    }

    fn cpu_state(&self, r: &mut Rng) -> Call {
        match r.below(5) {
            0 => Call { nr: nr::FPU_TASKSWITCH, args: [0, 0, 0, 0, 0], name: "fpu_taskswitch" },
            1 => {
                let reg = r.below(9);
                // Values that enable no breakpoint: the fuzzer must not trap itself.
                let val = if reg == 7 { r.field() & !0xff } else { r.field() };
                Call { nr: nr::SET_DEBUGREG, args: [reg, val, 0, 0, 0], name: "set_debugreg" }
            }
            2 => Call { nr: nr::GET_DEBUGREG, args: [r.below(10), 0, 0, 0, 0], name: "get_debugreg" },
            3 => Call { nr: nr::VM_ASSIST, args: [r.below(3), r.pick(&[0, 1, 2, 3, 4, 5, 31, 32, 63]), 0, 0, 0], name: "vm_assist" },
            // FS and the user GS only: the kernel's GS is its own.
            _ => Call { nr: nr::SET_SEGMENT_BASE, args: [r.pick(&[0, 2, 3, 5, 0xffff]), r.field(), 0, 0, 0], name: "set_segment_base" },
        }
    }

    fn console_io(&self, r: &mut Rng, b: u64) -> Call {
        w64(buf(b), 0, 0x0a7a_667a); // "zfz\n"
        let cmd = r.pick(&[0, 1, 2, 0xffff]);
        let count = r.pick(&[0, 1, 0x7fff_ffff, 0xffff_ffff, 1 << 32]);
        // One known byte, or a count no buffer has from where nothing is mapped.
        let ptr = if count == 1 { buf(b) } else { self.ptr(r, b) | 0xffff_8000_0000_0000 };
        Call { nr: nr::CONSOLE_IO, args: [cmd, count, ptr, 0, 0], name: "console_io" }
    }

    /// physdev, platform, sysctl, domctl: unprivileged, or with an
    /// interface version no Xen has.
    fn privileged(&self, r: &mut Rng, b: u64) -> Call {
        let p = buf(b);
        for i in 0..16 {
            w64(p, i * 8, r.field());
        }
        let nr = r.pick(&[nr::PHYSDEV_OP, nr::PLATFORM_OP, nr::SYSCTL, nr::DOMCTL]);
        if self.diff || r.one_in(2) {
            w32(p, 4, 0xdead_0001);
        } else {
            w32(p, 4, if nr == nr::DOMCTL { 0x15 } else { 0x15 });
        }
        if nr == nr::PHYSDEV_OP {
            // Dom0 would reach the machine's interrupt controllers.
            let cmd = if self.diff { r.pick(&[5, 0xffff]) } else { r.below(34) };
            return Call { nr, args: [cmd, self.ptr(r, b), 0, 0, 0], name: "physdev_op" };
        }
        Call { nr, args: [self.ptr(r, b), 0, 0, 0, 0], name: "privileged" }
    }

    /// The families nobody implements, compat numbers, and past the table.
    fn other_nr(&self, r: &mut Rng, b: u64) -> Call {
        let nr = r.pick(&[
            nr::SCHED_OP_COMPAT, nr::EVENT_CHANNEL_OP_COMPAT, nr::PHYSDEV_OP_COMPAT, nr::XSM_OP, nr::NMI_OP,
            nr::XENOPROF_OP, nr::HVM_OP, nr::KEXEC_OP, nr::TMEM_OP, nr::ARGO_OP, nr::XENPMU_OP, nr::DM_OP,
            nr::HYPFS_OP, 11, 43, 48, 63, 64, 0xffff_ffff,
        ]);
        let a0 = match nr {
            // The compat sched_op: yield or nothing known (never shutdown).
            nr::SCHED_OP_COMPAT => r.pick(&[0, 7, 0xff]),
            _ => r.field(),
        };
        Call { nr, args: [a0, self.ptr(r, b), r.field(), 0, 0], name: "other" }
    }
}
