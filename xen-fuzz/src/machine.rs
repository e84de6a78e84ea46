//! The machine under test: the portable core over simulated memory with
//! Dom0, two unprivileged fuzzing domains and two canaries, entered step
//! by step, with the oracles checked after each step.
//!
//! Everything about the core's insides goes through `xen_core::testing`.

use std::collections::BTreeMap;

use xen_core::testing::{self as t, HostPlatform};
use xen_core::Xen;

use crate::step::{Act, FrameSel, Step, Val, VaSel, SPECIALS};

/// Word index in the scratch area of the stack pointer (the iret frame).
pub const STACK_WORD: u16 = 0x600;
const STACK_OFF: u64 = 8 * STACK_WORD as u64;
/// Where the trap table is written at set-up.
const TRAPS_OFF: u64 = 0x4000;
/// Kernel stack for bounces from user mode.
const KSTACK_OFF: u64 = 0x8000;
/// Where every handler points (inside the kernel image).
const HANDLER: u64 = 0x100020;

/// Continuation rounds after which a call counts as hung.
pub const MAX_ROUNDS: u32 = 1 << 16;

/// The machine's domains, in "roster" order: `Val`s name a domain by its
/// place here; steps act as one of the first three.
const ROSTER: &[(u16, bool, u64, u32)] = &[
    // id, privileged, pages, vCPUs
    // (4 MiB is the least the builder's layout takes.)
    (1, false, 1024, 2),
    (2, false, 1024, 1),
    (0, true, 1024, 2),
    (3, false, 1024, 1), // canary
    (4, false, 1024, 1), // canary
];
const FUZZERS: usize = 3;
const CANARIES: &[u16] = &[3, 4];
const FRAMES: u64 = 6144;

/// What an oracle found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// The core panicked (on the machine: a hypervisor crash).
    Panic(String),
    /// A guest mapping no guest may have: a writable page table,
    /// descriptor or hypervisor-shared frame, a foreign frame.
    Mapping(String),
    /// A frame's reference or type count is wrong.
    FrameTable(String),
    /// A canary domain's memory changed through another domain.
    Canary(String),
    /// A continuation that never finishes.
    Hang(String),
}

impl Finding {
    pub fn kind(&self) -> &'static str {
        match self {
            Finding::Panic(_) => "panic",
            Finding::Mapping(_) => "mapping",
            Finding::FrameTable(_) => "frame-table",
            Finding::Canary(_) => "canary",
            Finding::Hang(_) => "hang",
        }
    }
    pub fn message(&self) -> &str {
        match self {
            Finding::Panic(m) | Finding::Mapping(m) | Finding::FrameTable(m) | Finding::Canary(m) | Finding::Hang(m) => m,
        }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind(), self.message())
    }
}

#[derive(Clone, Copy, Debug)]
struct Member {
    id: u16,
    scratch: u64,
    spare_pfn: u64,
}

/// Counters a run reports.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub steps: u64,
    /// Hypercalls entered (a multicall counts once), continuation rounds
    /// not included.
    pub calls: u64,
    pub rounds: u64,
    pub faults: u64,
    pub ok: u64,
    pub skipped: u64,
    pub audits: u64,
    pub resets: u64,
}

pub struct Machine {
    pub xen: Xen<HostPlatform>,
    roster: Vec<Member>,
    /// Canary frame -> checksum of its contents.
    canary_sums: BTreeMap<u64, u64>,
    written: Vec<u32>,
    /// Full audits every this many steps (1: after every step).
    pub audit_every: u64,
    pub since_audit: u64,
    /// A privileged step ran since the last full canary check (Dom0 may
    /// change a canary: balloon it, map and write it, destroy it).
    privileged_since_audit: bool,
    pub stats: Stats,
    /// Distinct (hypercall, sub-op, result) outcomes seen: a cheap measure
    /// of how much behaviour a run reached, without instrumentation.
    pub outcomes: std::collections::HashSet<(u16, u64, i64)>,
    /// Some shared_info frame has been in use as a page table since the
    /// machine was built (see `shared_info_misused`).
    shared_info_was_misused: bool,
    /// The machine as built, to go back to.
    pristine: Option<(t::Snapshot, BTreeMap<u64, u64>)>,
}

/// Hypercalls whose first argument is a sub-op number.
fn has_subop(nr: u16) -> bool {
    matches!(nr as u64, 12 | 20 | 24 | 29 | 30 | 32 | 33 | 17 | 18 | 21 | 28)
}

fn hash(page: &[u8; 4096]) -> u64 {
    // FNV-1a over words: quick, and any change shows.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for c in page.chunks_exact(8) {
        h ^= u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Machine {
    /// A fresh machine: every domain built, fuzzers with a trap table and
    /// a kernel stack, canaries paused and checksummed.
    pub fn new() -> Machine {
        t::set_log_level(0);
        let mut xen = t::empty_machine(FRAMES);
        t::discard_console(&xen);
        let mut roster = Vec::new();
        // Dom0 first: domain ids are handed out after it.
        let mut order: Vec<&(u16, bool, u64, u32)> = ROSTER.iter().collect();
        order.sort_by_key(|r| r.0);
        let mut built = BTreeMap::new();
        for &&(id, privileged, pages, vcpus) in &order {
            let b = t::build_domain(&mut xen, t::DomSpec { id, privileged, pages, vcpus }).expect("fuzz machine: domain build");
            built.insert(id, b);
        }
        for &(id, ..) in ROSTER {
            let b = built[&id];
            roster.push(Member { id, scratch: b.scratch, spare_pfn: b.first_spare_pfn });
        }
        let mut m = Machine {
            xen,
            roster,
            canary_sums: BTreeMap::new(),
            written: Vec::new(),
            audit_every: 1,
            since_audit: 0,
            privileged_since_audit: false,
            stats: Stats::default(),
            outcomes: Default::default(),
            pristine: None,
            shared_info_was_misused: false,
        };
        for f in 0..FUZZERS {
            let mb = m.roster[f];
            let mut traps = Vec::new();
            for v in 0u8..32 {
                // struct trap_info: vector, flags (DPL 0), cs, address.
                traps.extend_from_slice(&[v, 0]);
                traps.extend_from_slice(&0xe033u16.to_le_bytes());
                traps.extend_from_slice(&[0; 4]);
                traps.extend_from_slice(&HANDLER.to_le_bytes());
            }
            traps.extend_from_slice(&[0; 16]);
            t::write_guest(&m.xen, mb.id, mb.scratch + TRAPS_OFF, &traps);
            let rsp = mb.scratch + STACK_OFF;
            t::run_hypercall(&mut m.xen, mb.id, 0, hypercall_abi::nr::SET_TRAP_TABLE, [mb.scratch + TRAPS_OFF, 0, 0, 0, 0], rsp, 4);
            t::run_hypercall(&mut m.xen, mb.id, 0, hypercall_abi::nr::STACK_SWITCH, [0xe02b, mb.scratch + KSTACK_OFF, 0, 0, 0], rsp, 4);
        }
        for &c in CANARIES {
            t::hold_paused(&mut m.xen, c);
        }
        m.rebaseline_canaries();
        m.pristine = Some((t::snapshot(&m.xen), m.canary_sums.clone()));
        t::track_writes(&m.xen, true);
        m
    }

    /// Back to the machine as built (what a fresh `Machine::new()` gives,
    /// much faster): the frames written since are copied back, the core's
    /// state cloned from the snapshot. Counters are kept.
    pub fn reset(&mut self) {
        if let Some((snap, sums)) = &self.pristine {
            t::restore(&mut self.xen, snap);
            self.canary_sums.clone_from(sums);
        }
        self.privileged_since_audit = false;
        self.shared_info_was_misused = false;
        self.stats.resets += 1;
    }

    fn rebaseline_canaries(&mut self) {
        self.canary_sums.clear();
        for &c in CANARIES {
            for f in t::frames_of(&self.xen, c) {
                if let Some(p) = t::read_frame(&self.xen, f) {
                    self.canary_sums.insert(f, hash(&p));
                }
            }
        }
    }

    /// Whether the open shared_info escape's state (a shared_info frame in
    /// use as a page table) arose since the machine was built: what follows
    /// may be its consequence (see `Options::known_open`).
    pub fn shared_info_misused(&self) -> bool {
        self.shared_info_was_misused || t::shared_info_misused(&self.xen)
    }

    /// Whether the machine is done: Dom0 shut down (the machine stopped),
    /// or no unprivileged fuzzing domain runs any more. The run goes back
    /// to a fresh machine.
    pub fn halted(&self) -> bool {
        t::machine_halted(&self.xen)
            || !self.roster[..FUZZERS].iter().any(|mb| t::domain_state(&self.xen, mb.id).is_some_and(|s| s.running && !s.privileged))
    }

    fn member(&self, n: u8) -> Member {
        if (n as usize) < self.roster.len() {
            return self.roster[n as usize];
        }
        let ids = t::domain_ids(&self.xen);
        let extra: Vec<u16> = ids.into_iter().filter(|i| !ROSTER.iter().any(|r| r.0 == *i)).collect();
        let n = n as usize % (self.roster.len() + extra.len());
        if n < self.roster.len() {
            self.roster[n]
        } else {
            Member { id: extra[n - self.roster.len()], scratch: self.roster[0].scratch, spare_pfn: 0 }
        }
    }

    fn frame(&self, dom: u8, sel: FrameSel) -> u64 {
        let m = self.member(dom);
        let Some(st) = t::domain_state(&self.xen, m.id) else {
            return if let FrameSel::Raw(r) = sel { r as u64 } else { 0 };
        };
        match sel {
            FrameSel::Pfn(k) => t::pfn_to_mfn(&self.xen, m.id, k as u64 % st.nr_pfns.max(1)).unwrap_or(0),
            FrameSel::Spare(k) => t::pfn_to_mfn(&self.xen, m.id, (m.spare_pfn + k as u64) % st.nr_pfns.max(1)).unwrap_or(0),
            FrameSel::SharedInfo => st.shared_info,
            FrameSel::Grant(k) => {
                let g = t::grant_frames(&self.xen, m.id);
                if g.is_empty() {
                    0
                } else {
                    g[k as usize % g.len()]
                }
            }
            FrameSel::Table(l) => t::table_on_path(&self.xen, m.id, m.scratch, l.clamp(1, 4)).unwrap_or(0),
            FrameSel::Raw(r) => r as u64,
        }
    }

    /// The number a value stands for, for domain `me` acting.
    fn resolve(&self, v: &Val, me: Member) -> u64 {
        match *v {
            Val::Lit(x) => x,
            Val::Special(i) => SPECIALS[i as usize % SPECIALS.len()],
            Val::Buf(off) => me.scratch + off as u64,
            Val::Va(sel, off) => {
                let off = off as u64;
                match sel {
                    VaSel::Scratch => me.scratch + off,
                    VaSel::Kernel => 0x100000 + off,
                    VaSel::Spare => me.scratch + 0x10000 + off,
                    VaSel::Unmapped => 0x40_0000_0000 + off,
                    VaSel::Hypervisor => 0xffff_8300_0000_0000 + off,
                    VaSel::M2p => 0xffff_8000_0000_0000 + off,
                    VaSel::NonCanonical => 0x0000_8000_0000_0000 + off,
                    VaSel::Top => 0xffff_ffff_ffff_f000 + (off & 0xfff),
                }
            }
            Val::Pte { dom, frame, flags, high } => {
                (self.frame(dom, frame) << 12) & 0x000f_ffff_ffff_f000 | (flags as u64 & 0xfff) | ((high as u64) << 48 & 0xfff0_0000_0000_0000)
            }
            Val::Mfn { dom, frame } => self.frame(dom, frame),
            Val::Entry { dom, level, idx, cmd } => {
                let m = self.member(dom);
                let level = level.clamp(1, 4);
                let Some(tb) = t::table_on_path(&self.xen, m.id, m.scratch, level) else { return cmd as u64 & 3 };
                let own = (m.scratch >> (12 + 9 * (level as u64 - 1))) & 511;
                let i = if idx >= 512 { (own + (idx as u64 - 512) % 4) & 511 } else { idx as u64 };
                (tb << 12) + 8 * i + (cmd as u64 & 3)
            }
            Val::Dom(n) => self.member(n).id as u64,
            Val::Pack { dom, w } => {
                let w0 = dom.map_or(w[0], |n| self.member(n).id);
                w0 as u64 | (w[1] as u64) << 16 | (w[2] as u64) << 32 | (w[3] as u64) << 48
            }
        }
    }

    /// Run one step and check the oracles. `Ok(false)`: the step could not
    /// run (its domain is down).
    pub fn step(&mut self, s: &Step) -> Result<bool, Finding> {
        self.stats.steps += 1;
        let me = self.roster[s.dom as usize % FUZZERS];
        let Some(st) = t::domain_state(&self.xen, me.id).filter(|st| st.running) else {
            self.stats.skipped += 1;
            return Ok(false);
        };
        let vcpu = if t::vcpu_root(&self.xen, me.id, s.vcpu as usize).is_some() { s.vcpu as usize } else { 0 };
        let rsp = me.scratch + STACK_OFF;
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.act(s, me, vcpu, rsp)));
        match ran {
            Err(p) => {
                let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
                return Err(Finding::Panic(msg));
            }
            Ok(Err(f)) => return Err(f),
            Ok(Ok(())) => {}
        }
        if !self.shared_info_was_misused && t::shared_info_misused(&self.xen) {
            self.shared_info_was_misused = true;
        }
        self.check_written(st.privileged)?;
        if st.privileged {
            // Dom0 may legitimately change a canary's frame set (balloon
            // it, destroy it): the final checksum accepts a change then.
            self.privileged_since_audit = true;
            // Canaries never run, even when Dom0 unpauses them: only what
            // other domains do may reach their memory.
            for &c in CANARIES {
                t::hold_paused(&mut self.xen, c);
            }
        }
        self.since_audit += 1;
        if self.since_audit >= self.audit_every {
            self.audit()?;
        }
        Ok(true)
    }

    fn act(&mut self, s: &Step, me: Member, vcpu: usize, rsp: u64) -> Result<(), Finding> {
        match &s.act {
            Act::Call { nr, args, mem } => {
                for (w, v) in mem {
                    let x = self.resolve(v, me);
                    t::write_guest(&self.xen, me.id, me.scratch + 8 * (*w as u64 % 0x2000), &x.to_le_bytes());
                }
                let a = [0, 1, 2, 3, 4].map(|i| self.resolve(&args[i], me));
                self.stats.calls += 1;
                if let Some(o) = t::run_hypercall(&mut self.xen, me.id, vcpu, *nr as u64, a, rsp, MAX_ROUNDS) {
                    self.stats.rounds += o.rounds as u64;
                    if o.ret == Some(0) {
                        self.stats.ok += 1;
                    }
                    let sub = if has_subop(*nr) { a[0].min(64) } else { 0 };
                    self.outcomes.insert((*nr, sub, o.ret.unwrap_or(i64::MIN)));
                    if o.unfinished {
                        return Err(Finding::Hang(format!("hypercall {nr} {a:x?} from d{} still continuing after {MAX_ROUNDS} rounds", me.id)));
                    }
                }
            }
            Act::Fault { vector, error_code, cr2 } => {
                let cr2 = self.resolve(cr2, me);
                self.stats.faults += 1;
                t::raise_exception(&mut self.xen, me.id, vcpu, *vector, *error_code as u64, cr2, rsp);
            }
            Act::Grant { gref, flags, dom, frame } => {
                let g = t::grant_frames(&self.xen, me.id);
                let gref = *gref as usize;
                if let Some(&f) = g.get(gref / 512) {
                    let mut e = [0u8; 8];
                    e[..2].copy_from_slice(&flags.to_le_bytes());
                    e[2..4].copy_from_slice(&self.member(*dom).id.to_le_bytes());
                    e[4..].copy_from_slice(&(self.resolve(frame, me) as u32).to_le_bytes());
                    t::write_frame(&self.xen, f, (gref % 512) * 8, &e);
                }
            }
            Act::Tick(ns) => t::advance_time(&mut self.xen, *ns as u64),
        }
        Ok(())
    }

    /// The incremental oracles: the page tables among the frames the step
    /// wrote keep no forbidden entry, and no unprivileged step wrote a
    /// canary's frame.
    fn check_written(&mut self, privileged: bool) -> Result<(), Finding> {
        t::drain_written(&self.xen, &mut self.written);
        t::audit_tables(&self.xen, &self.written).map_err(Finding::Mapping)?;
        for &f in &self.written {
            let f = f as u64;
            if !self.canary_sums.contains_key(&f) {
                continue;
            }
            let now = t::read_frame(&self.xen, f).map(|p| hash(&p)).unwrap_or(0);
            if self.canary_sums[&f] != now {
                if privileged {
                    self.canary_sums.insert(f, now);
                } else {
                    return Err(Finding::Canary(format!("canary frame {f:#x} (d{:?}) written by an unprivileged domain", t::frame_owner(&self.xen, f))));
                }
            }
        }
        Ok(())
    }

    /// The periodic audits: every reachable mapping of every domain, every
    /// frame's counts. (Canary frames are checked as they are written.)
    pub fn audit(&mut self) -> Result<(), Finding> {
        self.since_audit = 0;
        self.stats.audits += 1;
        t::audit_guest_mappings(&self.xen).map_err(Finding::Mapping)?;
        t::audit_frame_table(&self.xen).map_err(Finding::FrameTable)?;
        t::clear_console(&self.xen);
        Ok(())
    }

    /// The audits at the end of a run or replay, with every canary frame
    /// checksummed again (a write the tracking missed would show here).
    pub fn final_audit(&mut self) -> Result<(), Finding> {
        self.audit()?;
        let mut now = BTreeMap::new();
        for &c in CANARIES {
            for f in t::frames_of(&self.xen, c) {
                if let Some(p) = t::read_frame(&self.xen, f) {
                    now.insert(f, hash(&p));
                }
            }
        }
        if now != self.canary_sums {
            if !self.privileged_since_audit {
                let diff = now.iter().find(|(f, h)| self.canary_sums.get(f) != Some(h)).map(|(f, _)| *f);
                return Err(Finding::Canary(format!("canary memory changed with no privileged step (frame {diff:x?})")));
            }
            self.canary_sums = now;
        }
        Ok(())
    }
}

impl Default for Machine {
    fn default() -> Self {
        Machine::new()
    }
}

/// Replay `steps` on a fresh machine with every oracle after every step;
/// `Err((index, finding))` at the first finding. A halted machine ends the
/// replay (what follows would run on a new machine).
pub fn replay(steps: &[Step]) -> Result<Stats, (usize, Finding)> {
    replay_noting_known(steps).map_err(|(i, f, _)| (i, f))
}

/// [`replay`], also telling whether the open shared_info escape's state
/// arose on the way (`Machine::shared_info_misused`).
pub fn replay_noting_known(steps: &[Step]) -> Result<Stats, (usize, Finding, bool)> {
    thread_local! {
        static MACHINE: std::cell::RefCell<Option<Machine>> = const { std::cell::RefCell::new(None) };
    }
    MACHINE.with(|c| {
        let mut c = c.borrow_mut();
        let m = c.get_or_insert_with(Machine::new);
        m.reset();
        m.stats = Stats::default();
        replay_on(m, steps)
    })
}

fn replay_on(m: &mut Machine, steps: &[Step]) -> Result<Stats, (usize, Finding, bool)> {
    m.audit_every = 1;
    for (i, s) in steps.iter().enumerate() {
        m.step(s).map_err(|f| (i, f, m.shared_info_misused()))?;
        if m.halted() {
            break;
        }
    }
    m.final_audit().map_err(|f| (steps.len(), f, m.shared_info_misused()))?;
    Ok(m.stats)
}
