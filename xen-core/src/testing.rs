//! Host stand-ins for the platform, for unit and property tests.

use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;

use crate::mm::{MachineMemory, Mfn};
use crate::platform::Platform;

/// Simulated machine memory: `n` zeroed 4 KiB frames.
pub struct HostMemory {
    frames: RefCell<Vec<[u8; 4096]>>,
    /// Frames written since the last [`HostMemory::drain_written`], while
    /// tracking is on: the fuzzer checks only what a call touched.
    written: RefCell<Vec<u32>>,
    tracking: core::cell::Cell<bool>,
    /// Frames written since the last snapshot (each once), so a restore
    /// copies back only those.
    touched: RefCell<(Vec<u32>, Vec<bool>)>,
}

impl HostMemory {
    pub fn new(n: usize) -> HostMemory {
        HostMemory {
            frames: RefCell::new(alloc::vec![[0u8; 4096]; n]),
            written: RefCell::new(Vec::new()),
            tracking: core::cell::Cell::new(false),
            touched: RefCell::new((Vec::new(), alloc::vec![false; n])),
        }
    }

    /// Start or stop recording which frames are written.
    pub fn track_writes(&self, on: bool) {
        self.tracking.set(on);
        self.written.borrow_mut().clear();
    }

    /// The frames written since the last call (sorted, once each) into `out`.
    pub fn drain_written(&self, out: &mut Vec<u32>) {
        out.clear();
        out.append(&mut self.written.borrow_mut());
        out.sort_unstable();
        out.dedup();
    }

    fn note_write(&self, mfn: Mfn) {
        if self.tracking.get() {
            self.written.borrow_mut().push(mfn.0 as u32);
        }
        let mut t = self.touched.borrow_mut();
        if let Some(f) = t.1.get_mut(mfn.0 as usize).filter(|f| !**f) {
            *f = true;
            t.0.push(mfn.0 as u32);
        }
    }

    /// A copy of every frame; from now on writes are remembered.
    fn snapshot(&self) -> Vec<[u8; 4096]> {
        let mut t = self.touched.borrow_mut();
        for m in t.0.drain(..).collect::<Vec<_>>() {
            t.1[m as usize] = false;
        }
        self.frames.borrow().clone()
    }

    /// Put back the frames written since `snap` was taken.
    fn restore(&self, snap: &[[u8; 4096]]) {
        let mut t = self.touched.borrow_mut();
        let mut f = self.frames.borrow_mut();
        for m in t.0.drain(..).collect::<Vec<_>>() {
            t.1[m as usize] = false;
            f[m as usize] = snap[m as usize];
        }
    }

    /// The whole frame, for checksums.
    pub fn frame(&self, mfn: u64) -> [u8; 4096] {
        self.frames.borrow()[mfn as usize]
    }
}

impl MachineMemory for HostMemory {
    fn read(&self, mfn: Mfn, offset: usize, buf: &mut [u8]) {
        let f = self.frames.borrow();
        buf.copy_from_slice(&f[mfn.0 as usize][offset..offset + buf.len()]);
    }

    fn write(&self, mfn: Mfn, offset: usize, data: &[u8]) {
        self.note_write(mfn);
        let mut f = self.frames.borrow_mut();
        f[mfn.0 as usize][offset..offset + data.len()].copy_from_slice(data);
    }

    fn fill(&self, mfn: Mfn, offset: usize, len: usize, byte: u8) {
        self.note_write(mfn);
        let mut f = self.frames.borrow_mut();
        f[mfn.0 as usize][offset..offset + len].fill(byte);
    }
}

/// A whole host platform: memory, a console that records, a counting clock.
pub struct HostPlatform {
    pub mem: HostMemory,
    pub console_out: RefCell<String>,
    /// Drop console output instead of recording it (the fuzzer's guests
    /// write a lot of garbage).
    pub discard_console: core::cell::Cell<bool>,
    pub console_in: RefCell<Vec<u8>>,
    pub hypervisor_slots: [u64; 16],
    pub tlb_flushes: core::cell::Cell<u64>,
    pub invlpgs: RefCell<Vec<u64>>,
    /// The "CPU" state the core loads: FPU image, TS, segment bases, GDT, DRs.
    pub fpu: RefCell<[u8; 512]>,
    pub ts: core::cell::Cell<bool>,
    pub segs: core::cell::Cell<(u64, u64, u64)>,
    pub gdt: RefCell<Vec<u64>>,
    pub debugregs: core::cell::Cell<[u64; 8]>,
    pub clock: core::cell::Cell<u64>,
    /// Every port access the core made: ('r' or 'w', port, bytes, value).
    pub io_log: RefCell<Vec<(char, u16, u8, u32)>>,
}

impl HostPlatform {
    pub fn new(frames: usize) -> HostPlatform {
        let mut slots = [0u64; 16];
        // A recognisable stand-in for the direct-map entry (slot 262).
        slots[6] = 0xdead_0000 | crate::mm::pte::_PAGE_PRESENT | crate::mm::pte::_PAGE_RW;
        HostPlatform {
            mem: HostMemory::new(frames),
            console_out: RefCell::new(String::new()),
            discard_console: core::cell::Cell::new(false),
            console_in: RefCell::new(Vec::new()),
            hypervisor_slots: slots,
            tlb_flushes: core::cell::Cell::new(0),
            invlpgs: RefCell::new(Vec::new()),
            fpu: RefCell::new([0; 512]),
            ts: core::cell::Cell::new(false),
            segs: core::cell::Cell::new((0, 0, 0)),
            gdt: RefCell::new(Vec::new()),
            debugregs: core::cell::Cell::new([0; 8]),
            clock: core::cell::Cell::new(0),
            io_log: RefCell::new(Vec::new()),
        }
    }
}

impl MachineMemory for HostPlatform {
    fn read(&self, mfn: Mfn, offset: usize, buf: &mut [u8]) {
        self.mem.read(mfn, offset, buf)
    }
    fn write(&self, mfn: Mfn, offset: usize, data: &[u8]) {
        self.mem.write(mfn, offset, data)
    }
    fn fill(&self, mfn: Mfn, offset: usize, len: usize, byte: u8) {
        self.mem.fill(mfn, offset, len, byte)
    }
}

impl Platform for HostPlatform {
    fn console_write(&self, bytes: &[u8]) {
        if self.discard_console.get() {
            return;
        }
        self.console_out.borrow_mut().push_str(&String::from_utf8_lossy(bytes));
    }

    fn console_read(&self, buf: &mut [u8]) -> usize {
        let mut input = self.console_in.borrow_mut();
        let n = buf.len().min(input.len());
        buf[..n].copy_from_slice(&input[..n]);
        input.drain(..n);
        n
    }

    fn hypervisor_l4_slots(&self) -> [u64; 16] {
        self.hypervisor_slots
    }

    fn flush_tlb(&self) {
        self.tlb_flushes.set(self.tlb_flushes.get() + 1);
    }

    fn invlpg(&self, va: u64) {
        self.invlpgs.borrow_mut().push(va);
    }

    fn flush_cache(&self) {}

    fn m2p_maddr(&self) -> (u64, u64) {
        (0x4000_0000, 2 << 20)
    }

    fn save_fpu(&self, out: &mut [u8; 512]) {
        out.copy_from_slice(&*self.fpu.borrow());
    }

    fn load_fpu(&self, image: &[u8; 512]) {
        self.fpu.borrow_mut().copy_from_slice(image);
    }

    fn set_guest_ts(&self, ts: bool) {
        self.ts.set(ts);
    }

    fn load_segment_bases(&self, fs: u64, gs: u64, gs_shadow: u64) {
        self.segs.set((fs, gs, gs_shadow));
    }

    fn read_segment_bases(&self) -> (u64, u64, u64) {
        self.segs.get()
    }

    fn swap_gs(&self) {
        let (fs, gs, shadow) = self.segs.get();
        self.segs.set((fs, shadow, gs));
    }

    fn load_user_gs_selector(&self, _sel: u16) -> u64 {
        0
    }

    fn load_guest_gdt(&self, entries: &[u64]) {
        *self.gdt.borrow_mut() = entries.to_vec();
    }

    fn load_debugregs(&self, dr: &[u64; 8]) {
        self.debugregs.set(*dr);
    }

    fn take_dr6(&self) -> u64 {
        0xffff_0ff0
    }

    fn now_ns(&self) -> u64 {
        self.clock.get()
    }

    fn tsc_and_now(&self) -> (u64, u64) {
        (self.clock.get() * 2, self.clock.get())
    }

    fn tsc_khz(&self) -> u64 {
        2_000_000
    }

    fn wallclock_at_boot(&self) -> (u64, u32) {
        (1_795_000_000, 5)
    }

    fn console_input_ready(&self) -> bool {
        !self.console_in.borrow().is_empty()
    }

    fn machine_memory_map(&self) -> Vec<(u64, u64, u32)> {
        // QEMU's PC with 24 MiB: low RAM, the BIOS hole, RAM, the BIOS ROM.
        alloc::vec![(0, 0x9fc00, 1), (0x9fc00, 0x400, 2), (0xf0000, 0x10000, 2), (0x10_0000, 0x170_0000, 1), (0xfffc_0000, 0x4_0000, 2)]
    }

    fn ioport_read(&self, port: u16, bytes: u8) -> u32 {
        let v = HostPlatform::port_value(port, bytes);
        self.io_log.borrow_mut().push(('r', port, bytes, v));
        v
    }

    fn ioport_write(&self, port: u16, bytes: u8, value: u32) {
        self.io_log.borrow_mut().push(('w', port, bytes, value));
    }

    fn cpuid(&self, leaf: u32, subleaf: u32) -> [u32; 4] {
        qemu_max_cpuid(leaf, subleaf)
    }
}

/// What QEMU 7.2's `-cpu max` (TCG) answers to `cpuid` natively, as XTF's
/// `test-pv64-cpuid` printed it on Xen 4.17 (leaf, subleaf or !0 for "any",
/// EAX, EBX, ECX, EDX). The host platform answers with it, so the policy
/// can be checked against what Xen 4.17 made of the same processor.
pub const QEMU_MAX_CPUID: &[(u32, u32, [u32; 4])] = &[
    (0x0, !0, [0x0000000d, 0x68747541, 0x444d4163, 0x69746e65]),
    (0x1, !0, [0x00060fb1, 0x00000800, 0xfed8320b, 0x0fcbfbfd]),
    (0x5, !0, [0x00000000, 0x00000000, 0x00000003, 0x00000000]),
    (0x6, !0, [0x00000004, 0x00000000, 0x00000000, 0x00000000]),
    (0x7, 0, [0x00000000, 0x01d843a9, 0x8001020c, 0x00000000]),
    (0xb, !0, [0x00000000, 0x00000000, 0x000000ff, 0x00000000]),
    (0xd, 0, [0x0000021f, 0x00000240, 0x00000a88, 0x00000000]),
    (0xd, 1, [0x00000005, 0x000003c8, 0x00000000, 0x00000000]),
    (0xd, 2, [0x00000100, 0x00000240, 0x00000000, 0x00000000]),
    (0xd, 3, [0x00000040, 0x000003c0, 0x00000000, 0x00000000]),
    (0xd, 4, [0x00000040, 0x00000400, 0x00000000, 0x00000000]),
    (0xd, 9, [0x00000008, 0x00000a80, 0x00000000, 0x00000000]),
    (0x40000000, !0, [0x40000001, 0x54474354, 0x43544743, 0x47435447]),
    (0x80000000, !0, [0x8000000a, 0x68747541, 0x444d4163, 0x69746e65]),
    (0x80000001, !0, [0x00060fb1, 0x00000000, 0x00000075, 0xedd3fbfd]),
    (0x80000002, !0, [0x554d4551, 0x47435420, 0x55504320, 0x72657620]),
    (0x80000003, !0, [0x6e6f6973, 0x352e3220, 0x0000002b, 0x00000000]),
    (0x80000005, !0, [0x01ff01ff, 0x01ff01ff, 0x40020140, 0x40020140]),
    (0x80000006, !0, [0x00000000, 0x42004200, 0x02008140, 0x00808140]),
    (0x80000008, !0, [0x00003928, 0x00000000, 0x00000000, 0x00000000]),
    (0x8000000a, !0, [0x00000001, 0x00000010, 0x00000000, 0x10010001]),
];

pub fn qemu_max_cpuid(leaf: u32, subleaf: u32) -> [u32; 4] {
    QEMU_MAX_CPUID.iter().find(|(l, s, _)| *l == leaf && (*s == !0 || *s == subleaf)).map_or([0; 4], |e| e.2)
}

impl HostPlatform {
    /// What a simulated device port reads as: recognisable, never all-ones.
    pub fn port_value(port: u16, bytes: u8) -> u32 {
        let v = 0x1234_0000 | port as u32;
        match bytes {
            1 => v & 0xff,
            2 => v & 0xffff,
            _ => v,
        }
    }

    /// Let simulated time pass.
    pub fn advance(&self, ns: u64) {
        self.clock.set(self.clock.get() + ns);
    }
}

// ---------------------------------------------------------------------------
// Support for the hypercall fuzzer (`xen-fuzz`) and the host tests: building
// a machine of several domains, entering it as one of them, and the audits
// the fuzzer's oracles are made of. Everything the fuzzer needs from the
// core's insides goes through here, so that the core's fields can change
// without touching the fuzzer.
// ---------------------------------------------------------------------------

use alloc::collections::BTreeMap;
use alloc::format;

use crate::build::{build_pv_domain, BuildRequest};
use crate::domain::DomId;
use crate::mm::pte::{entry_mfn, _PAGE_GLOBAL, _PAGE_PCD, _PAGE_PRESENT, _PAGE_PSE, _PAGE_PWT, _PAGE_RW};
use crate::mm::validate::level_of;
use crate::mm::{FrameTable, Owner, PageType};
use crate::regs::GuestRegs;
use crate::xen::Xen;

/// Where the test kernel's hypercall page is (the same in every domain
/// built from [`test_kernel_image`]).
pub const HYPERCALL_PAGE: u64 = 0x101000;

/// A tiny PV kernel ELF: 64 NOPs at 0x100000, the hypercall page at
/// 0x101000, 12 KiB of image.
pub fn test_kernel_image() -> Vec<u8> {
    use crate::build::elf::test_image::{build, Note};
    use hypercall_abi::elfnote::*;
    build(
        0x100000,
        &[0x90; 64],
        0x3000,
        0x100000,
        &[
            Note { ty: XEN_ELFNOTE_HYPERCALL_PAGE, desc: &HYPERCALL_PAGE.to_le_bytes() },
            Note { ty: XEN_ELFNOTE_XEN_VERSION, desc: b"xen-3.0\0" },
            Note { ty: XEN_ELFNOTE_LOADER, desc: b"generic\0" },
        ],
    )
}

/// A domain to build.
#[derive(Clone, Copy, Debug)]
pub struct DomSpec {
    pub id: u16,
    pub privileged: bool,
    pub pages: u64,
    pub vcpus: u32,
}

/// What a built domain looks like from the guest's side.
#[derive(Clone, Copy, Debug)]
pub struct BuiltDomain {
    pub id: u16,
    /// A writable 64 KiB area in the initial mapping's padding.
    pub scratch: u64,
    /// The first pseudo-physical frame outside the initial mapping.
    pub first_spare_pfn: u64,
    pub nr_pfns: u64,
}

/// A machine of `frames` frames (the first 16 unusable) with no domains.
pub fn empty_machine(frames: u64) -> Xen<HostPlatform> {
    let p = HostPlatform::new(frames as usize);
    let mut ft = FrameTable::new(frames);
    ft.add_free(Mfn(16), frames - 16);
    Xen::new(p, ft, "")
}

/// Build a domain from [`test_kernel_image`]: vCPU 0 up, the others down
/// until the guest brings them up (`VCPUOP_initialise`, `VCPUOP_up`).
pub fn build_domain(xen: &mut Xen<HostPlatform>, spec: DomSpec) -> Result<BuiltDomain, String> {
    let k = test_kernel_image();
    let req = BuildRequest {
        domid: DomId(spec.id),
        name: "fuzz",
        privileged: spec.privileged,
        kernel: &k,
        module: None,
        cmdline: "",
        nr_pages: spec.pages,
        max_vcpus: spec.vcpus,
        max_pages: 0,
    };
    let built = build_pv_domain(&xen.platform, &mut xen.frames, &req).map_err(|e| format!("build: {e:?}"))?;
    let l = built.layout;
    let d = built.domain;
    xen.domains.insert(DomId(spec.id), d);
    if xen.current.is_none() {
        xen.current = Some((DomId(spec.id), 0));
    }
    Ok(BuiltDomain { id: spec.id, scratch: l.v_end - 0x10000, first_spare_pfn: l.pages(), nr_pfns: spec.pages })
}

/// Whether the machine stopped: Dom0 shut down or gone, or nothing runs.
pub fn machine_halted(xen: &Xen<HostPlatform>) -> bool {
    xen.domains.get(&DomId::DOM0).is_none_or(|d| d.shutdown.is_some())
}

/// Domain ids that exist, in order.
pub fn domain_ids(xen: &Xen<HostPlatform>) -> Vec<u16> {
    xen.domains.keys().map(|d| d.0).collect()
}

/// A domain's state as the fuzzer needs it.
#[derive(Clone, Copy, Debug)]
pub struct DomState {
    pub privileged: bool,
    /// Not shut down or crashed.
    pub running: bool,
    pub vcpus: usize,
    pub shared_info: u64,
    pub nr_pfns: u64,
}

pub fn domain_state(xen: &Xen<HostPlatform>, id: u16) -> Option<DomState> {
    let d = xen.domains.get(&DomId(id))?;
    Some(DomState {
        privileged: d.privileged,
        running: d.shutdown.is_none(),
        vcpus: d.vcpus.len(),
        shared_info: d.shared_info.mfn().0,
        nr_pfns: d.p2m.len() as u64,
    })
}

pub fn pfn_to_mfn(xen: &Xen<HostPlatform>, id: u16, pfn: u64) -> Option<u64> {
    xen.domains.get(&DomId(id))?.p2m.get(pfn as usize).map(|m| m.0)
}

/// The frames of a domain's grant table.
pub fn grant_frames(xen: &Xen<HostPlatform>, id: u16) -> Vec<u64> {
    xen.domains.get(&DomId(id)).map(|d| d.gnttab.frames.iter().map(|m| m.mfn().0).collect()).unwrap_or_default()
}

/// A vCPU's kernel root table, if it is up.
pub fn vcpu_root(xen: &Xen<HostPlatform>, id: u16, vcpu: usize) -> Option<u64> {
    let v = xen.domains.get(&DomId(id))?.vcpus.get(vcpu)?;
    v.initialised.then_some(v.cr3.0)
}

/// The table of `level` (4 = the root) that vCPU 0 of `id` walks through
/// for `va`, if every entry above it is present.
pub fn table_on_path(xen: &Xen<HostPlatform>, id: u16, va: u64, level: u8) -> Option<u64> {
    let mut t = vcpu_root(xen, id, 0)?;
    let idx = [(va >> 39) & 511, (va >> 30) & 511, (va >> 21) & 511];
    for l in (level + 1..=4).rev() {
        let e = xen.platform.read_u64(Mfn(t), idx[(4 - l) as usize] as usize);
        if e & _PAGE_PRESENT == 0 || e & _PAGE_PSE != 0 {
            return None;
        }
        t = entry_mfn(e);
        if t >= xen.frames.len() {
            return None;
        }
    }
    Some(t)
}

/// Frames `id` owns, in order.
pub fn frames_of(xen: &Xen<HostPlatform>, id: u16) -> Vec<u64> {
    xen.frames.owned_by(DomId(id)).map(|m| m.0).collect()
}

/// The number of frames on the free list.
pub fn free_frames(xen: &Xen<HostPlatform>) -> u64 {
    xen.frames.free_count()
}

/// What one hypercall did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// `%rax` on return; `None` when the call switched to another vCPU
    /// (yield, block, shutdown) and its result is not visible yet.
    pub ret: Option<i64>,
    /// Times the call was entered (1 + continuations resumed).
    pub rounds: u32,
    /// Still continuing after `max_rounds`.
    pub unfinished: bool,
}

/// Make `id`'s vCPU `vcpu` the current one, in kernel mode: `None` if it
/// cannot run (no such domain or vCPU, shut down, not up).
fn enter(xen: &mut Xen<HostPlatform>, id: u16, vcpu: usize) -> Option<()> {
    let d = xen.domains.get_mut(&DomId(id))?;
    if d.shutdown.is_some() {
        return None;
    }
    let v = d.vcpus.get_mut(vcpu)?;
    if !v.initialised {
        return None;
    }
    if !v.kernel_mode {
        // As if the guest had come back to its kernel (a syscall bounce).
        xen.current = Some((DomId(id), vcpu));
        xen.toggle_guest_mode();
    }
    xen.current = Some((DomId(id), vcpu));
    Some(())
}

/// Enter hypercall `nr` from `id`'s vCPU `vcpu` in kernel mode with `%rsp`
/// at `rsp`, and re-enter it while it continues, as the CPU would re-run
/// the rewound `syscall` (at most `max_rounds` times).
pub fn run_hypercall(xen: &mut Xen<HostPlatform>, id: u16, vcpu: usize, nr: u64, args: [u64; 5], rsp: u64, max_rounds: u32) -> Option<Outcome> {
    enter(xen, id, vcpu)?;
    let rip = HYPERCALL_PAGE + 32 * (nr & 127) + 9;
    let mut regs = GuestRegs {
        rax: nr,
        rdi: args[0],
        rsi: args[1],
        rdx: args[2],
        r10: args[3],
        r8: args[4],
        rip,
        rsp,
        cs: 0xe033,
        ss: 0xe02b,
        rflags: 0x202,
        ..GuestRegs::default()
    };
    let mut rounds = 0;
    loop {
        rounds += 1;
        xen.hypercall(&mut regs);
        if xen.current != Some((DomId(id), vcpu)) {
            return Some(Outcome { ret: None, rounds, unfinished: false });
        }
        if regs.rax == nr && regs.rip == rip - 2 {
            if rounds >= max_rounds {
                return Some(Outcome { ret: None, rounds, unfinished: true });
            }
            regs.rip = rip;
            continue;
        }
        return Some(Outcome { ret: Some(regs.rax as i64), rounds, unfinished: false });
    }
}

/// A CPU exception (`vector`, `error_code`, `cr2` for #PF) taken by `id`'s
/// vCPU `vcpu` at a kernel address with `%rsp` at `rsp`.
pub fn raise_exception(xen: &mut Xen<HostPlatform>, id: u16, vcpu: usize, vector: u8, error_code: u64, cr2: u64, rsp: u64) -> bool {
    if enter(xen, id, vcpu).is_none() {
        return false;
    }
    let mut regs = GuestRegs {
        entry_vector: vector as u64,
        error_code,
        rip: 0x100010,
        rsp,
        cs: 0xe033,
        ss: 0xe02b,
        rflags: 0x202,
        ..GuestRegs::default()
    };
    xen.guest_exception(&mut regs, cr2);
    true
}

/// Write into `id`'s memory through vCPU 0's tables, as its kernel would.
pub fn write_guest(xen: &Xen<HostPlatform>, id: u16, va: u64, data: &[u8]) -> bool {
    let Some(cr3) = vcpu_root(xen, id, 0) else { return false };
    crate::guest_access::GuestMem::new(&xen.platform, Mfn(cr3), xen.frames.len()).copy_to_guest(va, data).is_ok()
}

/// Drop the machine's console output from now on.
pub fn discard_console(xen: &Xen<HostPlatform>) {
    xen.platform.discard_console.set(true);
}

/// Quiet the core's log (the fuzzer makes millions of bad calls).
pub fn set_log_level(level: u8) {
    crate::log::set_threshold(level);
    crate::log::set_guest_threshold(level);
}

/// Forget console output and the record of `invlpg`s (long fuzzing runs
/// make a lot of both).
pub fn clear_console(xen: &Xen<HostPlatform>) {
    xen.platform.console_out.borrow_mut().clear();
    xen.platform.invlpgs.borrow_mut().clear();
}

/// The whole machine's state at one moment, to return to cheaply (only the
/// frames written since are copied back).
pub struct Snapshot {
    memory: Vec<[u8; 4096]>,
    frames: FrameTable,
    domains: BTreeMap<DomId, crate::domain::Domain>,
    current: Option<(DomId, usize)>,
    yield_pending: bool,
    sched: crate::sched::SchedState,
    next_domid: u16,
    clock: u64,
}

pub fn snapshot(xen: &Xen<HostPlatform>) -> Snapshot {
    Snapshot {
        memory: xen.platform.mem.snapshot(),
        frames: xen.frames.clone(),
        domains: xen.domains.clone(),
        current: xen.current,
        yield_pending: xen.yield_pending,
        sched: xen.sched,
        next_domid: xen.next_domid,
        clock: xen.platform.clock.get(),
    }
}

/// Return to `snap` (taken of this machine).
pub fn restore(xen: &mut Xen<HostPlatform>, snap: &Snapshot) {
    xen.platform.mem.restore(&snap.memory);
    xen.frames.clone_from(&snap.frames);
    xen.domains.clone_from(&snap.domains);
    xen.current = snap.current;
    xen.yield_pending = snap.yield_pending;
    xen.sched = snap.sched;
    xen.next_domid = snap.next_domid;
    xen.platform.clock.set(snap.clock);
    xen.tcache.set(Default::default());
    let p = &xen.platform;
    *p.fpu.borrow_mut() = [0; 512];
    p.ts.set(false);
    p.segs.set((0, 0, 0));
    p.gdt.borrow_mut().clear();
    p.debugregs.set([0; 8]);
    clear_console(xen);
    p.console_in.borrow_mut().clear();
    p.mem.written.borrow_mut().clear();
}

/// Let simulated time pass and run the timers that fell due.
pub fn advance_time(xen: &mut Xen<HostPlatform>, ns: u64) {
    xen.platform.advance(ns);
    xen.run_timers();
}

#[derive(Default, Clone, Copy)]
struct Expect {
    count: u32,
    type_count: u32,
}

/// A leaf beyond the frame table (device memory, firmware tables): only
/// Dom0's, below the machine's address width, never the hypervisor's own
/// APICs (`mm::types::hypervisor_iomem`).
fn non_ram_leaf_allowed(level: u8, privileged: bool, t: Mfn) -> bool {
    level == 1 && privileged && t.0 < 1 << 28 && !crate::mm::types::hypervisor_iomem(t)
}

/// The frame-table audit (invariants 1-4 and 6): every reference count
/// and type count recomputed from scratch (CR3s, GDT frames, pins, shared
/// frames, partial validations, deferred teardown, table entries) and
/// compared with the frame table, then [`audit_address_spaces`]. `Err`
/// names the first broken invariant.
pub fn audit_frame_table(xen: &Xen<HostPlatform>) -> Result<(), String> {
    // One slot per frame of the table (a vector, not a map: the audit runs
    // every few thousand fuzzer steps). A reference to a frame past the
    // table is never compared, as no frame there has counts.
    let mut want: Vec<Expect> = alloc::vec![Expect::default(); xen.frames.len() as usize];
    let mut add = |m: Mfn, general: u32, typed: u32| {
        if let Some(e) = usize::try_from(m.0).ok().and_then(|i| want.get_mut(i)) {
            e.count += general;
            e.type_count += typed;
        }
    };
    for d in xen.domains.values() {
        // Invariant 6: every frame the hypervisor writes for the domain is
        // one it shares for good.
        let written = core::iter::once(d.shared_info).chain(d.gnttab.frames.iter().copied());
        for f in written {
            if !xen.frames.get(f.mfn()).is_some_and(|pg| pg.shared && pg.owner == Owner::Dom(d.id)) {
                return Err(alloc::format!("d{}: hypervisor-written frame {:?} is not a shared writable frame", d.id.0, f.mfn()));
            }
        }
        for v in d.vcpus.iter().filter(|v| v.initialised) {
            add(v.cr3, 1, 1);
            if let Some(u) = v.user_cr3 {
                add(u, 1, 1);
            }
            for f in &v.gdt_frames {
                add(*f, 1, 1);
            }
        }
        // Invariant 6 for a registered vcpu_info: the hypervisor writes it,
        // so the frame is the domain's and typed writable for as long as it
        // is registered (one general and one type reference each).
        for loc in d.vcpus.iter().filter_map(|v| v.vcpu_info) {
            let m = loc.page().mfn();
            if !xen.frames.get(m).is_some_and(|pg| pg.ty == PageType::Writable && pg.owner == Owner::Dom(d.id)) {
                return Err(alloc::format!("d{}: registered vcpu_info frame {m:?} is not a writable frame of the domain", d.id.0));
            }
            add(m, 1, 1);
        }
        // The same for the guest frames held for the PIRQ EOI bitmap and the
        // FIFO event ABI (control blocks, event array).
        let fifo = d.fifo.iter().flat_map(|f| f.vcpus.iter().filter_map(|v| v.control.map(|(p, _)| p)).chain(f.array.iter().copied()));
        for page in d.pirq_eoi_map.into_iter().chain(fifo) {
            let m = page.mfn();
            if !xen.frames.get(m).is_some_and(|pg| pg.ty == PageType::Writable && pg.owner == Owner::Dom(d.id)) {
                return Err(alloc::format!("d{}: held frame {m:?} is not a writable frame of the domain", d.id.0));
            }
            add(m, 1, 1);
        }
    }
    for (mfn, pg) in xen.frames.iter() {
        if pg.allocated {
            add(mfn, 1, 0);
        }
        if pg.pinned {
            add(mfn, 1, 1);
        }
        if pg.shared {
            // Invariant 6: a frame the hypervisor writes for its owner holds
            // a permanent writable type reference, so it is never a table
            // or descriptor page.
            if pg.ty != PageType::Writable || !pg.allocated || !matches!(pg.owner, Owner::Dom(_)) {
                return Err(alloc::format!("shared frame {mfn:?} is {:?} ({:?}), not a writable page of its domain", pg.ty, pg.owner));
            }
            add(mfn, 0, 1);
        }
        if pg.partial {
            // The type reference left for whoever resumes the validation,
            // and the general reference the partial state holds.
            add(mfn, 1, 1);
        }
        let Some(level) = level_of(pg.ty).filter(|_| pg.type_count > 0) else { continue };
        let Owner::Dom(owner) = pg.owner else { return Err(alloc::format!("table {mfn:?} not owned by a domain")) };
        // A table whose validation was preempted holds references for its
        // first entries only.
        let validated = if pg.partial { pg.nr_validated as usize } else { 512 };
        let privileged = xen.domains.get(&owner).is_some_and(|d| d.privileged);
        for i in 0..validated {
            if level == 4 && (256..272).contains(&i) {
                continue;
            }
            let e = xen.platform.read_u64(mfn, i);
            if e & _PAGE_PRESENT == 0 {
                continue;
            }
            let t = Mfn(entry_mfn(e));
            let Some(tp) = xen.frames.get(t) else {
                if non_ram_leaf_allowed(level, privileged, t) {
                    continue;
                }
                return Err(alloc::format!("L{level} {mfn:?}[{i}] names no frame"));
            };
            if tp.owner == Owner::Io {
                if level != 1 || !privileged || e & (_PAGE_PCD | _PAGE_PWT) != _PAGE_PCD | _PAGE_PWT {
                    return Err(alloc::format!("L{level} {mfn:?}[{i}] maps I/O memory {t:?} wrongly"));
                }
                continue;
            }
            // Invariant 3: only own frames (Dom0 may hold foreign mappings,
            // which outlive the foreign domain: its frame is then Dead).
            let granted = level == 1 && e & crate::gnttab::PTE_GRANT_MAPPING != 0;
            if tp.owner != Owner::Dom(owner) && !((privileged || granted) && level == 1 && matches!(tp.owner, Owner::Dom(_) | Owner::Dead)) {
                return Err(alloc::format!("L{level} {mfn:?}[{i}] maps {t:?} owned by {:?}", tp.owner));
            }
            let needed = match level {
                1 if e & _PAGE_RW != 0 => Some(PageType::Writable),
                1 => None,
                l => Some(PageType::table_level(l - 1)),
            };
            if level > 1 && e & _PAGE_PSE != 0 {
                return Err(alloc::format!("superpage in L{level} {mfn:?}[{i}]"));
            }
            if let Some(ty) = needed {
                // Invariant 2 (and its upper-level form): the target has the
                // one type this entry requires.
                if tp.ty != ty {
                    return Err(alloc::format!("L{level} {mfn:?}[{i}] needs {ty:?}, target {t:?} is {:?}", tp.ty));
                }
                add(t, 1, 1);
            } else {
                add(t, 1, 0);
            }
        }
    }
    // Entries of former tables whose references are still to be dropped.
    for q in xen.frames.deferred.values() {
        for &(e, level) in q {
            let t = Mfn(entry_mfn(e));
            let io = xen.frames.get(t).is_some_and(|pg| pg.owner == Owner::Io);
            if level == 1 && io {
                continue;
            }
            let typed = level > 1 || e & _PAGE_RW != 0;
            add(t, 1, typed as u32);
        }
    }
    for (mfn, pg) in xen.frames.iter() {
        let e = usize::try_from(mfn.0).ok().and_then(|i| want.get(i)).copied().unwrap_or_default();
        if pg.count != e.count || pg.type_count != e.type_count {
            return Err(alloc::format!(
                "{mfn:?} ({:?}, {:?}): count {} type_count {}, expected {} and {}",
                pg.owner,
                pg.ty,
                pg.count,
                pg.type_count,
                e.count,
                e.type_count
            ));
        }
        if pg.owner == Owner::Free && (pg.count != 0 || pg.allocated) {
            return Err(alloc::format!("free frame {mfn:?} still referenced"));
        }
    }
    // Frames a domain gave back that are still held count against it until
    // freed (`FrameTable::lingering`, Xen's tot_pages).
    let mut lingering: BTreeMap<u16, u64> = BTreeMap::new();
    for (_, pg) in xen.frames.iter() {
        if let (Owner::Dom(d), false) = (pg.owner, pg.allocated) {
            *lingering.entry(d.0).or_default() += 1;
        }
    }
    for d in xen.domains.keys() {
        let n = lingering.get(&d.0).copied().unwrap_or(0);
        if xen.frames.lingering(*d) != n {
            return Err(alloc::format!("d{}: {} frames given back but held, counted {}", d.0, n, xen.frames.lingering(*d)));
        }
    }
    audit_address_spaces(xen)
}

/// Invariants 2, 3 and 6 seen the way the CPU sees them, without trusting
/// the frame table's types: walk every domain's address spaces from each
/// vCPU's roots, as the MMU would, and collect which frames are used as
/// page tables and which are reachable writable. No frame may be both; no
/// writable leaf may reach a descriptor frame, a frame the hypervisor owns
/// or no one owns, or another domain's frame (except through a grant, or
/// Dom0's foreign mappings); every L4 carries exactly the hypervisor's
/// slots; global leaves (`_PAGE_GLOBAL`) only in L1s and only to frames the
/// domain may map at all.
pub fn audit_address_spaces(xen: &Xen<HostPlatform>) -> Result<(), String> {
    use alloc::collections::BTreeSet;
    let hv = xen.platform.hypervisor_slots;
    let mut tables: BTreeSet<u64> = BTreeSet::new();
    let mut writable: BTreeMap<u64, (DomId, u64)> = BTreeMap::new();
    for d in xen.domains.values() {
        let mut seen: BTreeSet<(u64, u8, bool)> = BTreeSet::new();
        let mut stack: alloc::vec::Vec<(Mfn, u8, bool)> = alloc::vec::Vec::new();
        for v in d.vcpus.iter().filter(|v| v.initialised) {
            stack.push((v.cr3, 4, true));
            if let Some(u) = v.user_cr3 {
                stack.push((u, 4, true));
            }
        }
        while let Some((t, level, rw_above)) = stack.pop() {
            if !seen.insert((t.0, level, rw_above)) {
                continue;
            }
            tables.insert(t.0);
            for i in 0..512usize {
                let e = xen.platform.read_u64(t, i);
                if level == 4 && (256..272).contains(&i) {
                    if e != hv[i - 256] {
                        return Err(alloc::format!("d{} L4 {t:?} slot {i} is {e:#x}, not the hypervisor's", d.id.0));
                    }
                    continue;
                }
                if e & _PAGE_PRESENT == 0 {
                    continue;
                }
                let target = Mfn(entry_mfn(e));
                let rw = rw_above && e & _PAGE_RW != 0;
                if level > 1 {
                    if e & (_PAGE_PSE | _PAGE_GLOBAL) != 0 {
                        return Err(alloc::format!("d{} L{level} {t:?}[{i}] = {e:#x}: superpage or global", d.id.0));
                    }
                    stack.push((target, level - 1, rw));
                    continue;
                }
                let Some(pg) = xen.frames.get(target) else {
                    if non_ram_leaf_allowed(level, d.privileged, target) {
                        continue;
                    }
                    return Err(alloc::format!("d{} maps {target:?}, beyond memory", d.id.0));
                };
                let granted = e & crate::gnttab::PTE_GRANT_MAPPING != 0;
                let may_map = match pg.owner {
                    Owner::Dom(o) => o == d.id || granted || d.privileged,
                    Owner::Dead => granted || d.privileged,
                    Owner::Io => d.privileged,
                    Owner::None | Owner::Free | Owner::Xen => false,
                };
                if !may_map {
                    return Err(alloc::format!("d{} L1 {t:?}[{i}] maps {target:?} owned by {:?}", d.id.0, pg.owner));
                }
                if rw && pg.owner != Owner::Io {
                    if pg.ty != PageType::Writable {
                        return Err(alloc::format!("d{} has a writable mapping of {target:?}, a {:?} frame", d.id.0, pg.ty));
                    }
                    writable.insert(target.0, (d.id, t.0 << 12 | (i as u64) << 3));
                }
            }
        }
        for v in &d.vcpus {
            for f in &v.gdt_frames {
                if let Some((who, at)) = writable.get(&f.0) {
                    return Err(alloc::format!("GDT frame {f:?} of d{} is writable by d{} (entry at {at:#x})", d.id.0, who.0));
                }
            }
        }
    }
    for t in &tables {
        if let Some((who, at)) = writable.get(t) {
            return Err(alloc::format!("page table {t:#x} is writable by d{} (entry at {at:#x})", who.0));
        }
        if xen.frames.get(Mfn(*t)).is_some_and(|pg| pg.shared) {
            return Err(alloc::format!("shared frame {t:#x} is walked as a page table"));
        }
    }
    Ok(())
}

/// Drop every pin and CR3 reference of `dom` (what destroying it does to

/// One present entry `e` at index `i` of `owner`'s level-`level` table
/// `table`: `Ok(None)` for a not-present entry or an I/O mapping,
/// `Ok(Some((target, typed)))` for a good one (`typed`: it holds a type
/// reference). `rw_path` says whether every entry above allows writes.
/// `Err` is a mapping no guest may have: DESIGN.md invariants 2, 3 and 6.
#[allow(clippy::too_many_arguments)]
fn check_entry(
    xen: &Xen<HostPlatform>,
    owner: DomId,
    privileged: bool,
    level: u8,
    table: Mfn,
    i: usize,
    e: u64,
    rw_path: bool,
) -> Result<Option<(Mfn, bool)>, String> {
    if e & _PAGE_PRESENT == 0 {
        return Ok(None);
    }
    let t = Mfn(entry_mfn(e));
    let Some(tp) = xen.frames.get(t) else {
        if non_ram_leaf_allowed(level, privileged, t) {
            return Ok(None);
        }
        return Err(format!("L{level} {table:?}[{i}] of d{} names no frame ({e:#x})", owner.0));
    };
    if tp.owner == Owner::Io {
        if level != 1 || !privileged || e & (_PAGE_PCD | _PAGE_PWT) != _PAGE_PCD | _PAGE_PWT {
            return Err(format!("L{level} {table:?}[{i}] of d{} maps I/O memory {t:?} wrongly", owner.0));
        }
        return Ok(None);
    }
    if level > 1 && e & _PAGE_PSE != 0 {
        return Err(format!("superpage in L{level} {table:?}[{i}] of d{}", owner.0));
    }
    // Invariant 3: own frames only; Dom0 may map other domains' frames,
    // anyone may map what was granted to it.
    let granted = level == 1 && e & crate::gnttab::PTE_GRANT_MAPPING != 0;
    if tp.owner != Owner::Dom(owner) && !((privileged || granted) && level == 1 && matches!(tp.owner, Owner::Dom(_) | Owner::Dead)) {
        return Err(format!("foreign mapping: L{level} {table:?}[{i}] of d{} maps {t:?} owned by {:?}", owner.0, tp.owner));
    }
    if level == 1 {
        if e & _PAGE_RW != 0 {
            // Invariants 2 and 6: a writable mapping only of a frame typed
            // writable, never of a page table, descriptor page or a page
            // the hypervisor writes.
            if tp.ty != PageType::Writable || tp.type_count == 0 {
                let what = if tp.ty.is_page_table() { "page table" } else if tp.ty == PageType::SegDesc { "descriptor page" } else { "untyped frame" };
                return Err(format!(
                    "guest-writable mapping of a {what}: L1 {table:?}[{i}] of d{} = {e:#x} maps {t:?} ({:?}){}",
                    owner.0,
                    tp.ty,
                    if rw_path { "" } else { " (read-only above)" }
                ));
            }
            return Ok(Some((t, true)));
        }
        return Ok(Some((t, false)));
    }
    let ty = PageType::table_level(level - 1);
    if tp.ty != ty {
        return Err(format!("L{level} {table:?}[{i}] of d{} = {e:#x} needs {ty:?}, target {t:?} is {:?}", owner.0, tp.ty));
    }
    Ok(Some((t, true)))
}

/// The mapping audit: walk every vCPU's kernel and user root of every
/// domain, and refuse any reachable entry that gives the guest a
/// writable mapping of a page-table, descriptor or hypervisor-shared
/// frame, a mapping of a frame neither its own nor granted, or a table
/// that is not typed as one.
pub fn audit_guest_mappings(xen: &Xen<HostPlatform>) -> Result<(), String> {
    let mut seen: alloc::collections::BTreeSet<(u64, bool)> = alloc::collections::BTreeSet::new();
    for (id, d) in &xen.domains {
        let roots = d.vcpus.iter().filter(|v| v.initialised).flat_map(|v| core::iter::once(v.cr3).chain(v.user_cr3));
        let mut stack: Vec<(Mfn, u8, bool)> = roots.map(|r| (r, 4u8, true)).collect();
        seen.clear();
        while let Some((t, level, rw)) = stack.pop() {
            if !seen.insert((t.0 | (level as u64) << 60, rw)) {
                continue;
            }
            for i in 0..512usize {
                if level == 4 && (256..272).contains(&i) {
                    continue;
                }
                let e = xen.platform.read_u64(t, i);
                let rw_here = rw && e & _PAGE_RW != 0;
                // Read-only above makes a writable L1 entry harmless for the
                // guest, but the type rule still holds: check with rw_path.
                if let Some((next, _)) = check_entry(xen, *id, d.privileged, level, t, i, e, rw_here)? {
                    if level > 1 {
                        stack.push((next, level - 1, rw_here));
                    }
                }
            }
        }
    }
    Ok(())
}

/// The incremental form of the mapping audit: check every entry of those
/// of `mfns` that are page tables in use (the frames a call wrote).
pub fn audit_tables(xen: &Xen<HostPlatform>, mfns: &[u32]) -> Result<(), String> {
    for &m in mfns {
        let mfn = Mfn(m as u64);
        let Some(pg) = xen.frames.get(mfn) else { continue };
        let Some(level) = level_of(pg.ty).filter(|_| pg.type_count > 0) else { continue };
        let Owner::Dom(owner) = pg.owner else { return Err(format!("table {mfn:?} not owned by a domain")) };
        let privileged = xen.domains.get(&owner).is_some_and(|d| d.privileged);
        // A table whose validation was preempted is no table yet (nothing
        // can link or load it): only its validated entries are its own.
        let validated = if pg.partial { pg.nr_validated as usize } else { 512 };
        for i in 0..validated {
            if level == 4 && (256..272).contains(&i) {
                continue;
            }
            check_entry(xen, owner, privileged, level, mfn, i, xen.platform.read_u64(mfn, i), true)?;
        }
    }
    Ok(())
}

/// The owner of a frame, as a domain id (`None`: not a domain's).
pub fn frame_owner(xen: &Xen<HostPlatform>, mfn: u64) -> Option<u16> {
    match xen.frames.get(Mfn(mfn))?.owner {
        Owner::Dom(d) => Some(d.0),
        _ => None,
    }
}

/// Keep a domain paused (a canary the scheduler must never run: only what
/// other domains do may reach its memory).
pub fn hold_paused(xen: &mut Xen<HostPlatform>, id: u16) {
    if let Some(d) = xen.domains.get_mut(&DomId(id)) {
        d.pause_count = d.pause_count.max(1);
    }
}

/// Write a frame's bytes directly (what a guest does through its own
/// mapping of a frame it owns, e.g. its grant-table entries).
pub fn write_frame(xen: &Xen<HostPlatform>, mfn: u64, offset: usize, data: &[u8]) -> bool {
    if mfn >= xen.frames.len() || offset + data.len() > 4096 {
        return false;
    }
    xen.platform.write(Mfn(mfn), offset, data);
    true
}

/// A frame's contents, for checksums.
pub fn read_frame(xen: &Xen<HostPlatform>, mfn: u64) -> Option<[u8; 4096]> {
    (mfn < xen.frames.len()).then(|| xen.platform.mem.frame(mfn))
}

/// Start or stop recording the frames written, and take the record.
pub fn track_writes(xen: &Xen<HostPlatform>, on: bool) {
    xen.platform.mem.track_writes(on);
}

pub fn drain_written(xen: &Xen<HostPlatform>, out: &mut Vec<u32>) {
    xen.platform.mem.drain_written(out);
}

/// Whether some domain's shared_info frame is in use as a page table or
/// descriptor page: the state of the open shared_info escape (a frame the
/// hypervisor writes, typed as something only `mm` may write). Always
/// false once shared_info holds a permanent writable type.
pub fn shared_info_misused(xen: &Xen<HostPlatform>) -> bool {
    xen.domains.values().any(|d| xen.frames.get(d.shared_info.mfn()).is_some_and(|pg| pg.type_count > 0 && pg.ty != PageType::Writable))
}
