//! Host stand-ins for the platform, for unit and property tests.

use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;

use crate::mm::{MachineMemory, Mfn};
use crate::platform::Platform;

/// Simulated machine memory: `n` zeroed 4 KiB frames.
pub struct HostMemory {
    frames: RefCell<Vec<[u8; 4096]>>,
}

impl HostMemory {
    pub fn new(n: usize) -> HostMemory {
        HostMemory { frames: RefCell::new(alloc::vec![[0u8; 4096]; n]) }
    }
}

impl MachineMemory for HostMemory {
    fn read(&self, mfn: Mfn, offset: usize, buf: &mut [u8]) {
        let f = self.frames.borrow();
        buf.copy_from_slice(&f[mfn.0 as usize][offset..offset + buf.len()]);
    }

    fn write(&self, mfn: Mfn, offset: usize, data: &[u8]) {
        let mut f = self.frames.borrow_mut();
        f[mfn.0 as usize][offset..offset + data.len()].copy_from_slice(data);
    }

    fn fill(&self, mfn: Mfn, offset: usize, len: usize, byte: u8) {
        let mut f = self.frames.borrow_mut();
        f[mfn.0 as usize][offset..offset + len].fill(byte);
    }
}

/// A whole host platform: memory, a console that records, a counting clock.
pub struct HostPlatform {
    pub mem: HostMemory,
    pub console_out: RefCell<String>,
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
