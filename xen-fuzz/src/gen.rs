//! Turning bytes into steps: a structure-aware decoder over `arbitrary`'s
//! `Unstructured`. The same decoder reads libFuzzer's mutated inputs and
//! the seeded generator's random bytes. It knows each hypercall family's
//! argument shapes (arrays of requests in the scratch area, sub-op numbers,
//! small structures of packed 16/32-bit fields) and draws values from the
//! classes of Xen's security advisories: stray PTE bits, self-referencing
//! and linear tables, superpages, unaligned and non-canonical addresses,
//! counts past the array, iret and nested calls inside a multicall, grant
//! flag combinations, system domain ids, pointers into hypervisor space and
//! boundary values.

use arbitrary::Unstructured;
use hypercall_abi::nr;

use crate::step::{Act, FrameSel, Step, Val, VaSel, SPECIALS};

/// An infallible reader: past the end of the input every draw is its
/// lowest value, as `arbitrary` does.
pub struct Draw<'a>(pub Unstructured<'a>);

impl<'a> Draw<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Draw(Unstructured::new(data))
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// A number below `n` from one byte (two when `n` > 256): scaled, not
    /// reduced modulo, so every byte value maps to a nearby choice.
    fn below(&mut self, n: u32) -> u32 {
        if n <= 1 {
            return 0;
        }
        if n <= 256 {
            let b: u8 = self.0.arbitrary().unwrap_or(0);
            return (b as u32 * n) >> 8;
        }
        let b: u16 = self.0.arbitrary().unwrap_or(0);
        ((b as u64 * n as u64) >> 16) as u32
    }
    fn u8(&mut self) -> u8 {
        self.0.arbitrary().unwrap_or(0)
    }
    fn u16(&mut self) -> u16 {
        self.0.arbitrary().unwrap_or(0)
    }
    fn u64(&mut self) -> u64 {
        self.0.arbitrary().unwrap_or(0)
    }
    /// One in `n`.
    fn one_in(&mut self, n: u32) -> bool {
        self.below(n) == 0
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u32) as usize]
    }
}

/// PTE flag sets worth trying: the ordinary ones, and stray bits (PSE in an
/// L1, PAT, global, the available bits Xen uses for grant mappings).
const PTE_FLAGS: &[u16] = &[
    0x067, // present rw user accessed dirty
    0x065, // read-only
    0x007,
    0x005,
    0x001,
    0x003,
    0x000,
    0x0e7, // + PSE: a superpage at L2/L3
    0x167, // + global
    0x867, // + available bit 11
    0x467,
    0x267,
    0x07f, // + PWT PCD
    0x0a7, // PAT in an L1
    0xfff,
];

/// High PTE bits: none, NX, the available bits 52-62.
const PTE_HIGH: &[u16] = &[0, 0, 0, 0x8000, 0x4000, 0x7ff0, 0xffff, 0x0010];

/// Which domain a value names: mostly the actor, often another.
fn dom_ix(d: &mut Draw, me: u8) -> u8 {
    if d.one_in(2) {
        me
    } else {
        d.below(6) as u8
    }
}

fn frame_sel(d: &mut Draw) -> FrameSel {
    match d.below(10) {
        0..=2 => FrameSel::Pfn(d.below(40) as u16),
        3 => FrameSel::Pfn(d.u16()),
        4 => FrameSel::Spare(d.below(8) as u8),
        5 => FrameSel::SharedInfo,
        6 => FrameSel::Grant(d.below(4) as u8),
        7 | 8 => FrameSel::Table(1 + d.below(4) as u8),
        _ => FrameSel::Raw(if d.one_in(2) { d.below(64) } else { d.u16() as u32 | (d.u8() as u32) << 16 }),
    }
}

fn va_sel(d: &mut Draw) -> VaSel {
    d.pick(&[
        VaSel::Scratch,
        VaSel::Scratch,
        VaSel::Spare,
        VaSel::Spare,
        VaSel::Kernel,
        VaSel::Unmapped,
        VaSel::Hypervisor,
        VaSel::M2p,
        VaSel::NonCanonical,
        VaSel::Top,
    ])
}

/// A page-aligned offset mostly, sometimes unaligned.
fn va_off(d: &mut Draw) -> u16 {
    match d.below(4) {
        0 | 1 => (d.below(16) * 4096) as u16,
        2 => d.below(4096) as u16,
        _ => (d.below(16) * 4096 + d.pick(&[1, 8, 4095, 2048])) as u16,
    }
}

pub fn pte(d: &mut Draw, me: u8) -> Val {
    Val::Pte { dom: dom_ix(d, me), frame: frame_sel(d), flags: d.pick(PTE_FLAGS), high: d.pick(PTE_HIGH) }
}

fn entry(d: &mut Draw, me: u8) -> Val {
    let idx = if d.one_in(3) { d.below(512) as u16 } else { 512 + d.below(4) as u16 };
    Val::Entry { dom: dom_ix(d, me), level: 1 + d.below(4) as u8, idx, cmd: if d.one_in(4) { d.below(4) as u8 } else { 0 } }
}

fn mfn(d: &mut Draw, me: u8) -> Val {
    Val::Mfn { dom: dom_ix(d, me), frame: frame_sel(d) }
}

fn lit_small(d: &mut Draw, n: u32) -> Val {
    Val::Lit(d.below(n) as u64)
}

fn special(d: &mut Draw) -> Val {
    Val::Special(d.below(SPECIALS.len() as u32) as u8)
}

/// A value of any class.
pub fn any_val(d: &mut Draw, me: u8, base: u16) -> Val {
    match d.below(12) {
        0 | 1 => lit_small(d, 16),
        2 => special(d),
        3 | 4 => Val::Buf(base + 8 * d.below(32) as u16),
        5 => Val::Va(va_sel(d), va_off(d)),
        6 => pte(d, me),
        7 => mfn(d, me),
        8 => entry(d, me),
        9 => Val::Dom(dom_ix(d, me)),
        10 => pack(d, me),
        _ => Val::Lit(d.u64()),
    }
}

fn pack(d: &mut Draw, me: u8) -> Val {
    let dom = if d.one_in(3) { None } else { Some(dom_ix(d, me)) };
    let mut w = [0u16; 4];
    for x in &mut w {
        *x = match d.below(4) {
            0 => 0,
            1 => d.below(16) as u16,
            2 => d.pick(&[0x7ff0, 0x7ff1, 0x7ff2, 0x7ff4, 0xffff, 4095, 4096, 1023, 1024]),
            _ => d.u16(),
        };
    }
    Val::Pack { dom, w }
}

/// A count: small, the array's size, just past it, huge.
fn count(d: &mut Draw, n: u32) -> Val {
    match d.below(8) {
        0..=4 => Val::Lit(n as u64),
        5 => Val::Lit(n as u64 + 1 + d.below(4) as u64),
        6 => Val::Lit(0),
        _ => special(d),
    }
}

/// A domain id argument: mostly DOMID_SELF or a real domain.
fn domid(d: &mut Draw, me: u8) -> Val {
    match d.below(6) {
        0 | 1 => Val::Lit(0x7ff0),
        2 | 3 => Val::Dom(dom_ix(d, me)),
        4 => special(d),
        _ => Val::Lit(d.below(16) as u64),
    }
}

/// Hypercall numbers, weighted toward the families with state.
const FAMILIES: &[u64] = &[
    nr::MMU_UPDATE,
    nr::MMU_UPDATE,
    nr::MMUEXT_OP,
    nr::MMUEXT_OP,
    nr::MMUEXT_OP,
    nr::UPDATE_VA_MAPPING,
    nr::UPDATE_VA_MAPPING,
    nr::UPDATE_VA_MAPPING_OTHERDOMAIN,
    nr::MULTICALL,
    nr::GRANT_TABLE_OP,
    nr::GRANT_TABLE_OP,
    nr::GRANT_TABLE_OP,
    nr::EVENT_CHANNEL_OP,
    nr::EVENT_CHANNEL_OP,
    nr::VCPU_OP,
    nr::MEMORY_OP,
    nr::MEMORY_OP,
    nr::SCHED_OP,
    nr::DOMCTL,
    nr::SYSCTL,
    nr::SET_TRAP_TABLE,
    nr::SET_GDT,
    nr::UPDATE_DESCRIPTOR,
    nr::STACK_SWITCH,
    nr::SET_CALLBACKS,
    nr::CALLBACK_OP,
    nr::FPU_TASKSWITCH,
    nr::SET_SEGMENT_BASE,
    nr::SET_TIMER_OP,
    nr::XEN_VERSION,
    nr::CONSOLE_IO,
    nr::VM_ASSIST,
    nr::IRET,
    nr::PHYSDEV_OP,
    nr::NMI_OP,
    nr::SET_DEBUGREG,
    nr::GET_DEBUGREG,
];

/// The arguments and argument memory of hypercall `nr`, its structures
/// placed from byte `base` of the scratch area.
pub fn call(d: &mut Draw, me: u8, nr: u64, base: u16, depth: u32) -> ([Val; 5], Vec<(u16, Val)>) {
    let w = |off: u16| (base + off) / 8;
    let mut mem = Vec::new();
    let mut args = [Val::Lit(0), Val::Lit(0), Val::Lit(0), Val::Lit(0), Val::Lit(0)];
    match nr {
        nr::MMU_UPDATE => {
            let n = 1 + d.below(4);
            for i in 0..n as u16 {
                mem.push((w(16 * i), if d.one_in(8) { any_val(d, me, base) } else { entry(d, me) }));
                mem.push((w(16 * i + 8), if d.one_in(8) { any_val(d, me, base) } else { pte(d, me) }));
            }
            args = [Val::Buf(base), count(d, n), if d.one_in(2) { Val::Buf(base + 0x1f8) } else { Val::Lit(0) }, domid(d, me), Val::Lit(0)];
        }
        nr::MMUEXT_OP => {
            let n = 1 + d.below(3);
            for i in 0..n as u16 {
                let cmd = if d.one_in(10) { d.below(64) } else { d.below(18) };
                mem.push((w(24 * i), Val::Lit(cmd as u64)));
                let a1 = match cmd {
                    0..=5 | 15..=17 => {
                        if d.one_in(6) {
                            any_val(d, me, base)
                        } else {
                            mfn(d, me)
                        }
                    }
                    7 | 9 | 11 | 13 => Val::Va(va_sel(d), va_off(d)),
                    _ => any_val(d, me, base),
                };
                mem.push((w(24 * i + 8), a1));
                let a2 = match cmd {
                    17 => mfn(d, me),
                    8 | 9 => Val::Buf(base + 0x1f0),
                    13 => lit_small(d, 16),
                    _ => any_val(d, me, base),
                };
                mem.push((w(24 * i + 16), a2));
            }
            args = [Val::Buf(base), count(d, n), if d.one_in(2) { Val::Buf(base + 0x1f8) } else { Val::Lit(0) }, domid(d, me), Val::Lit(0)];
        }
        nr::UPDATE_VA_MAPPING | nr::UPDATE_VA_MAPPING_OTHERDOMAIN => {
            let flags = if d.one_in(4) { Val::Buf(base + 0x1f0) } else { lit_small(d, 8) };
            args = [Val::Va(va_sel(d), va_off(d)), pte(d, me), flags, domid(d, me), Val::Lit(0)];
            mem.push((w(0x1f0), Val::Lit(d.below(4) as u64)));
        }
        nr::MULTICALL if depth == 0 => {
            let n = 1 + d.below(4);
            for i in 0..n as u16 {
                let sub = if d.one_in(8) { d.pick(&[nr::IRET, nr::MULTICALL, 99]) } else { d.pick(FAMILIES) };
                let (sa, sm) = call(d, me, sub, base + 0x200 + 0x200 * i, 1);
                mem.push((w(64 * i), Val::Lit(sub)));
                mem.push((w(64 * i + 8), Val::Lit(0)));
                for (j, a) in sa.into_iter().enumerate() {
                    mem.push((w(64 * i + 16 + 8 * j as u16), a));
                }
                mem.extend(sm);
            }
            args = [Val::Buf(base), count(d, n), Val::Lit(0), Val::Lit(0), Val::Lit(0)];
        }
        nr::GRANT_TABLE_OP => {
            let cmd = if d.one_in(10) { d.below(32) } else { d.below(13) };
            let n = 1 + d.below(2);
            for i in 0..n as u16 {
                // map: host_addr, flags|ref<<32, dom|handle<<32, dev_bus_addr;
                // unmap: host_addr, dev_bus_addr, handle; copy: two
                // (ref/gmfn, dom|offset) halves, len|flags; setup_table:
                // dom|nr_frames, status, frame_list.
                let words: [Val; 5] = match cmd {
                    0 | 1 | 7 => [
                        Val::Va(va_sel(d), va_off(d)),
                        Val::Pack { dom: None, w: [d.pick(&[2, 6, 3, 18, 1, 0x22, 0x1e, 0xffff]), 0, d.below(16) as u16, 0] },
                        if cmd == 0 { Val::Pack { dom: Some(dom_ix(d, me)), w: [0, 0, 0, 0] } } else { lit_small(d, 8) },
                        if cmd == 1 { lit_small(d, 8) } else { any_val(d, me, base) },
                        any_val(d, me, base),
                    ],
                    5 => [
                        if d.one_in(2) { lit_small(d, 16) } else { mfn(d, me) },
                        Val::Pack { dom: Some(dom_ix(d, me)), w: [0, d.pick(&[0, 8, 4000, 4096]), 0, 0] },
                        if d.one_in(2) { lit_small(d, 16) } else { mfn(d, me) },
                        Val::Pack { dom: Some(dom_ix(d, me)), w: [0, d.pick(&[0, 8, 4000, 4096]), 0, 0] },
                        Val::Pack { dom: None, w: [d.pick(&[8, 96, 4096, 4097, 0, 0xffff]), d.below(4) as u16, 0, 0] },
                    ],
                    _ => [
                        Val::Pack { dom: Some(dom_ix(d, me)), w: [0, d.pick(&[1, 2, 4, 0, 64, 0xffff]), 0, 0] },
                        Val::Buf(base + 0x1c0),
                        lit_small(d, 4),
                        any_val(d, me, base),
                        any_val(d, me, base),
                    ],
                };
                for (j, v) in words.into_iter().enumerate() {
                    mem.push((w(40 * i + 8 * j as u16), v));
                }
            }
            args = [Val::Lit(cmd as u64), Val::Buf(base), count(d, n), Val::Lit(0), Val::Lit(0)];
        }
        nr::EVENT_CHANNEL_OP => {
            let cmd = if d.one_in(10) { d.below(32) } else { d.below(16) };
            for j in 0..3u16 {
                mem.push((w(8 * j), if d.one_in(3) { any_val(d, me, base) } else { pack(d, me) }));
            }
            args = [Val::Lit(cmd as u64), Val::Buf(base), Val::Lit(0), Val::Lit(0), Val::Lit(0)];
        }
        nr::VCPU_OP => {
            let cmd = if d.one_in(10) { d.below(32) } else { d.below(15) };
            for j in 0..4u16 {
                mem.push((w(8 * j), any_val(d, me, base)));
            }
            args = [Val::Lit(cmd as u64), if d.one_in(4) { special(d) } else { lit_small(d, 3) }, Val::Buf(base), Val::Lit(0), Val::Lit(0)];
        }
        nr::MEMORY_OP => {
            let cmd = if d.one_in(10) { d.below(40) } else { d.pick(&[0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 12, 13, 15, 16, 21]) };
            // xen_memory_reservation: extent_start, nr_extents,
            // extent_order, mem_flags, domid; add_to_physmap: domid|size|
            // space, idx, gpfn.
            mem.push((w(0), if d.one_in(3) { any_val(d, me, base) } else { Val::Buf(base + 0x100) }));
            let n = 1 + d.below(3);
            mem.push((w(8), count(d, n)));
            mem.push((w(16), Val::Pack { dom: None, w: [d.pick(&[0, 0, 1, 9, 18, 0xffff]), 0, d.below(4) as u16, 0] }));
            mem.push((w(24), Val::Pack { dom: Some(dom_ix(d, me)), w: [0, 0, 0, 0] }));
            for j in 0..3u16 {
                mem.push((w(0x100 + 8 * j), if d.one_in(2) { mfn(d, me) } else { any_val(d, me, base) }));
            }
            args = [Val::Lit(cmd as u64), Val::Buf(base), Val::Lit(0), Val::Lit(0), Val::Lit(0)];
        }
        nr::SCHED_OP => {
            let cmd = if d.one_in(10) { d.below(16) } else { d.below(6) };
            mem.push((w(0), if d.one_in(4) { any_val(d, me, base) } else { lit_small(d, 6) }));
            mem.push((w(8), any_val(d, me, base)));
            args = [Val::Lit(cmd as u64), Val::Buf(base), Val::Lit(0), Val::Lit(0), Val::Lit(0)];
        }
        nr::DOMCTL | nr::SYSCTL => {
            let cmd = if d.one_in(6) { d.below(100) } else { d.pick(&[1, 2, 3, 4, 5, 6, 7, 11, 12, 13, 14, 15, 17, 24, 29, 36, 37]) };
            let version = if d.one_in(10) { d.u16() as u32 } else { 0x15 };
            mem.push((w(0), Val::Lit(cmd as u64 | (version as u64) << 32)));
            mem.push((w(8), Val::Pack { dom: Some(dom_ix(d, me)), w: [0, 0, 0, 0] }));
            for j in 2..10u16 {
                mem.push((w(8 * j), any_val(d, me, base)));
            }
            args = [Val::Buf(base), Val::Lit(0), Val::Lit(0), Val::Lit(0), Val::Lit(0)];
        }
        nr::CONSOLE_IO => {
            // (cmd, count, buffer): hostile buffers and counts, mostly short
            // text (a bulk write only costs time).
            let cnt = match d.below(4) {
                0 => special(d),
                _ => Val::Lit(d.below(96) as u64),
            };
            let buf = if d.one_in(2) { Val::Buf(base) } else { any_val(d, me, base) };
            args = [lit_small(d, 3), cnt, buf, Val::Lit(0), Val::Lit(0)];
            for j in 0..4u16 {
                mem.push((w(8 * j), any_val(d, me, base)));
            }
        }
        nr::IRET => {
            // struct iret_context at %rsp: rax r11 rcx flags rip cs rflags
            // rsp ss. Three in four frames are plausible (a bad one
            // crashes the domain, as on Xen, and ends its part in the run).
            let sane = !d.one_in(4);
            for j in 0..9u16 {
                let v = match j {
                    4 if sane => Val::Va(VaSel::Kernel, 0x10),
                    // RPL 0: back to the guest kernel (RPL 3: to user mode).
                    5 if sane => Val::Lit(d.pick(&[0xe030u64, 0xe030, 0xe030, 0xe033])),
                    6 if sane => Val::Lit(d.pick(&[0x202u64, 0x3202, 0x200, 0x246])),
                    7 if sane => Val::Buf(0x2000),
                    8 if sane => Val::Lit(d.pick(&[0xe02bu64, 0xe028])),
                    3 if sane => Val::Lit(d.pick(&[0u64, 0x100])),
                    4 => Val::Va(va_sel(d), va_off(d)),
                    5 => Val::Lit(d.pick(&[0xe033u64, 0xe02b, 0xe023, 0x10, 0xe030, 0])),
                    6 => Val::Lit(d.pick(&[0x202u64, 0x3202, 0x200, 0x40202, 0])),
                    8 => Val::Lit(d.pick(&[0xe02bu64, 0xe033, 0, 0x18])),
                    3 => Val::Lit(d.pick(&[0u64, 0x100, 0x8000_0000])),
                    _ => any_val(d, me, base),
                };
                mem.push((crate::machine::STACK_WORD + j, v));
            }
        }
        _ => {
            for a in &mut args {
                *a = any_val(d, me, base);
            }
            for j in 0..8u16 {
                mem.push((w(8 * j), any_val(d, me, base)));
            }
        }
    }
    (args, mem)
}

/// One step from the bytes.
pub fn step(d: &mut Draw) -> Step {
    // Fuzzing domains 0 and 1 are unprivileged, 2 is Dom0 (see
    // `machine::Machine`): Dom0 acts in one step of four.
    let dom = (d.below(4) % 3) as u8;
    let vcpu = if d.one_in(4) { 1 } else { 0 };
    // Dom0 is the well-behaved control domain of the scenario: its kernel
    // takes no stray faults and makes no hostile iret (either would crash
    // it, and the machine with it); its hypercalls are still arbitrary.
    let pick = d.below(40);
    let pick = if dom == 2 && pick < 2 { 2 } else { pick };
    let act = match pick {
        0 => Act::Fault { vector: d.pick(&[14, 14, 14, 13, 6, 3, 0, 7]), error_code: d.below(32) as u16, cr2: if d.one_in(2) { pte(d, dom) } else { any_val(d, dom, 0) } },
        1 => Act::Grant { gref: d.below(16) as u16, flags: d.pick(&[1, 5, 0, 0x19, 1 | 1 << 8, 3]), dom: d.below(6) as u8, frame: if d.one_in(2) { mfn(d, dom) } else { any_val(d, dom, 0) } },
        2 => Act::Tick(d.pick(&[1_000, 1_000_000, 10_000_000, 1_000_000_000])),
        _ => {
            let mut nr = if d.one_in(50) { d.below(64) as u64 } else { d.pick(FAMILIES) };
            if dom == 2 && nr == nr::IRET {
                nr = nr::XEN_VERSION;
            }
            let (args, mem) = call(d, dom, nr, 0, 0);
            Act::Call { nr: nr as u16, args, mem }
        }
    };
    Step { dom, vcpu, act }
}

/// Every step the bytes hold (at most `max`).
pub fn steps(data: &[u8], max: usize) -> Vec<Step> {
    let mut d = Draw::new(data);
    let mut out = Vec::new();
    while !d.is_empty() && out.len() < max {
        out.push(step(&mut d));
    }
    out
}
