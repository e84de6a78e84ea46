//! The hypervisor's state and the decisions taken on every entry: which
//! hypercall, which fault, and what runs next.

use alloc::collections::BTreeMap;
use alloc::string::String;

use crate::cmdline::Options;
use crate::domain::{DomId, Domain, RunState, ShutdownReason};
use crate::guest_access::GuestMem;
use crate::mm::{FrameTable, Mfn};
use crate::platform::Platform;
use crate::regs::GuestRegs;

/// The periodic timer every PV vCPU starts with.
pub const DEFAULT_PERIOD_NS: u64 = 10_000_000;

/// What the architecture layer does after the core has handled an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Return to the guest in the frame, on page table `cr3`; with
    /// `flush_global`, drop global TLB entries too (another vCPU's tables
    /// ran last: see `return_path`).
    Resume { cr3: Mfn, flush_global: bool },
    /// Nothing is runnable: wait for an interrupt.
    Idle,
    /// The machine stops: Dom0 has shut down or died.
    Halt(Halt),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Halt {
    PowerOff,
    Reboot,
    Crash,
}

/// The hypervisor's state. Its fields are the core's own: the arch layer
/// and other crates reach it through the narrow methods below, so every
/// invariant has one owner (the frame table through `mm`, domains through
/// the hypercall handlers and `domctl`).
pub struct Xen<P: Platform> {
    pub(crate) platform: P,
    pub(crate) frames: FrameTable,
    pub(crate) domains: BTreeMap<DomId, Domain>,
    /// The running vCPU: (domain, vcpu index).
    pub(crate) current: Option<(DomId, usize)>,
    pub(crate) cmdline: String,
    pub(crate) options: Options,
    /// The running vCPU asked to give way (`SCHEDOP_yield`), or the
    /// scheduler wants it to.
    pub(crate) yield_pending: bool,
    /// Guests that shut down and were not yet looked at. Their log line
    /// waits until the toolstack asks about domains (getdomaininfo, after
    /// VIRQ_DOM_EXC) or destroys one: by then Dom0 has relayed what they
    /// wrote to their consoles, so the guest's own last lines come first.
    pub(crate) shutdown_notes: alloc::vec::Vec<(DomId, ShutdownReason)>,
    pub(crate) sched: crate::sched::SchedState,
    /// TSC to system time, for `vcpu_time_info` (the TSC rate is fixed at boot).
    pub(crate) time_scale: crate::time::TimeScale,
    /// The wallclock at system time zero as Dom0 set it
    /// (`XENPF_settime*`); `None`: the firmware's, read at boot.
    pub(crate) wallclock: Option<(u64, u32)>,
    /// The last domain id handed out.
    pub(crate) next_domid: u16,
    /// The last guest translation (see `guest_access::TranslationCache`).
    pub(crate) tcache: core::cell::Cell<crate::guest_access::TranslationCache>,
    /// The vCPU whose page tables the CPU last ran (idle keeps them loaded,
    /// as Xen's lazy context switch): another one needs a global flush.
    pub(crate) tlb_vcpu: Option<(DomId, usize)>,
    /// The first frame above the machine's physical address width: no
    /// I/O mapping reaches it (read once at boot; see `paddr_bits`).
    pub(crate) iomem_end: crate::mm::Mfn,
}

/// The machine's physical address width, CPUID 0x80000008.EAX[7:0]
/// where the leaf exists, else 36 as Xen assumes; at most 52.
fn paddr_bits<P: Platform>(p: &P) -> u32 {
    let bits = if p.cpuid(0x8000_0000, 0)[0] >= 0x8000_0008 { p.cpuid(0x8000_0008, 0)[0] & 0xff } else { 0 };
    match bits {
        0 => 36,
        b => b.min(52),
    }
}

impl<P: Platform> Xen<P> {
    pub fn new(platform: P, frames: FrameTable, cmdline: &str) -> Self {
        let time_scale = crate::time::TimeScale::for_khz(platform.tsc_khz());
        let iomem_end = crate::mm::Mfn(1 << (paddr_bits(&platform) - 12));
        Xen {
            platform,
            frames,
            domains: BTreeMap::new(),
            current: None,
            cmdline: String::from(cmdline),
            options: Options::parse(cmdline),
            yield_pending: false,
            wallclock: None,
            shutdown_notes: alloc::vec::Vec::new(),
            sched: crate::sched::SchedState::default(),
            time_scale,
            next_domid: 0,
            tcache: core::cell::Cell::new(crate::guest_access::TranslationCache::default()),
            tlb_vcpu: None,
            iomem_end,
        }
    }

    /// The machine this core runs on.
    pub fn platform(&self) -> &P {
        &self.platform
    }

    /// Frames on the free list.
    /// Hand RAM the boot code borrowed (the room Dom0's kernel was unpacked
    /// in) to the frame allocator.
    pub fn add_free_ram(&mut self, first: Mfn, count: u64) {
        self.frames.add_free(first, count);
    }

    pub fn free_frames(&self) -> u64 {
        self.frames.free_count()
    }

    /// A domain, read-only (for diagnostics and tests outside the core).
    pub fn domain(&self, id: DomId) -> Option<&Domain> {
        self.domains.get(&id)
    }

    /// The running vCPU: (domain, vcpu index).
    pub fn current(&self) -> Option<(DomId, usize)> {
        self.current
    }

    /// Make `(d, v)` the running vCPU, for test harnesses and fuzzers that
    /// drive the core through `hypercall` and `guest_exception` as a given
    /// domain (the arch layer never needs it: the scheduler decides).
    pub fn set_current(&mut self, d: DomId, v: usize) -> bool {
        let ok = self.domains.get(&d).is_some_and(|dd| v < dd.vcpus.len());
        if ok {
            self.current = Some((d, v));
        }
        ok
    }

    /// Build a PV domain from a kernel image with the core's own builder
    /// (Dom0 at boot) and add it; it runs once `start` is called.
    pub fn build_domain(&mut self, req: &crate::build::BuildRequest) -> Result<(), crate::build::pv::BuildError> {
        let built = crate::build::build_pv_domain(&self.platform, &mut self.frames, req)?;
        self.domains.insert(req.domid, built.domain);
        Ok(())
    }

    pub fn current_domain(&self) -> Option<&Domain> {
        self.current.and_then(|(d, _)| self.domains.get(&d))
    }

    pub fn current_domain_mut(&mut self) -> Option<&mut Domain> {
        let (d, _) = self.current?;
        self.domains.get_mut(&d)
    }

    /// The current vCPU's view of its own address space.
    pub fn guest_mem(&self) -> Option<GuestMem<'_, P>> {
        let (d, v) = self.current?;
        let cr3 = self.domains.get(&d)?.vcpus.get(v)?.active_cr3();
        Some(GuestMem::new(&self.platform, cr3, self.frames.len()).with_cache(&self.tcache, self.frames.pt_gen))
    }

    /// Run a freshly built domain's first vCPU next; returns its frame.
    pub fn start(&mut self, dom: DomId) -> Option<(GuestRegs, Mfn)> {
        let d = self.domains.get(&dom)?;
        let v = d.vcpus.first()?;
        let out = (v.regs, v.active_cr3());
        self.current = Some((dom, 0));
        self.tlb_vcpu = Some((dom, 0));
        self.load_vcpu_state(dom, 0);
        self.update_wallclock(dom);
        self.update_vcpu_time(dom, 0);
        let now = self.platform.now_ns();
        self.sched = crate::sched::SchedState { last_account: now, slice_start: now, last_charge: now };
        if let Some(vc) = self.domains.get_mut(&dom).and_then(|d| d.vcpus.get_mut(0)) {
            vc.periodic.get_or_insert((DEFAULT_PERIOD_NS, now + DEFAULT_PERIOD_NS));
        }
        Some(out)
    }

    /// Put a vCPU's CPU-resident state (FPU, TS, segment bases, debug
    /// registers) into the CPU before it runs.
    fn load_vcpu_state(&mut self, dom: DomId, v: usize) {
        let Some(vc) = self.domains.get(&dom).and_then(|d| d.vcpus.get(v)) else { return };
        let p = &self.platform;
        p.load_fpu(&vc.fpu.0);
        p.set_guest_ts(vc.fpu_ts);
        let (fs, gs, shadow) = vc.hw_segment_bases();
        p.load_segment_bases(fs, gs, shadow);
        p.load_debugregs(&vc.debugreg);
        let gdt = self.gdt_entries(dom, v);
        self.platform.load_guest_gdt(&gdt);
    }

    /// Take the CPU-resident state of a vCPU that stops running.
    fn save_vcpu_state(&mut self, dom: DomId, v: usize) {
        let p = &self.platform;
        let Some(vc) = self.domains.get_mut(&dom).and_then(|d| d.vcpus.get_mut(v)) else { return };
        p.save_fpu(&mut vc.fpu.0);
        // The guest may have loaded %fs or %gs itself, which changes a base.
        let (fs, gs, shadow) = p.read_segment_bases();
        vc.segs.fs = fs;
        if vc.kernel_mode {
            (vc.segs.gs_kernel, vc.segs.gs_user) = (gs, shadow);
        } else {
            (vc.segs.gs_user, vc.segs.gs_kernel) = (gs, shadow);
        }
    }

    /// Logs the shutdowns that waited for Dom0 (see `shutdown_notes`).
    pub fn log_shutdown_notes(&mut self) {
        for (dom, reason) in core::mem::take(&mut self.shutdown_notes) {
            crate::info!("Domain {} shut down: reason {}", dom.0, reason.name());
        }
    }

    /// Shut a domain down. Dom0's shutdown is the machine's (Xen's
    /// `hwdom_shutdown`).
    pub fn domain_shutdown(&mut self, dom: DomId, reason: ShutdownReason) {
        let Some(d) = self.domains.get_mut(&dom) else { return };
        if d.shutdown.is_some() {
            return;
        }
        d.shutdown = Some(reason);
        for v in 0..d.vcpus.len() {
            self.set_runstate(dom, v, RunState::Down);
        }
        if dom != DomId::DOM0 {
            self.shutdown_notes.push((dom, reason));
            // Tell the control domain (Xen's VIRQ_DOM_EXC).
            self.send_global_virq(hypercall_abi::evtchn::VIRQ_DOM_EXC);
        }
    }

    /// A guest did something it had no handler for: it dies, alone.
    pub fn domain_crash(&mut self, dom: DomId) {
        let code = self.domains.get(&dom).and_then(|d| d.shutdown_code);
        crate::error!("Domain {} crashed{}", dom.0, code.map_or(String::new(), |c| alloc::format!(" (shutdown code {c})")));
        self.domain_shutdown(dom, ShutdownReason::Crash);
    }

    /// After an entry: keep running the current vCPU if it can run (and did
    /// not yield), otherwise the next runnable vCPU in round-robin order,
    /// otherwise idle, or stop the machine when Dom0 is gone. `frame` holds
    /// the current vCPU's live registers.
    pub fn schedule(&mut self, frame: &mut GuestRegs) -> Next {
        let Some((dom, v)) = self.current else { return self.pick_next(frame, None) };
        let yielded = core::mem::take(&mut self.yield_pending);
        // Fast path, taken after nearly every hypercall: the same vCPU goes
        // on, on Xen's flat selectors, with no event to deliver.
        if let Some(dd) = self.domains.get(&dom) {
            if let Some(vc) = dd.vcpus.get(v) {
                let runs =
                    vc.state == RunState::Runnable && !yielded && dd.pause_count == 0 && !(dd.cap > 0 && vc.credit < 0);
                let flat = frame.cs | 3 == hypercall_abi::arch::FLAT_RING3_CS64 as u64
                    && frame.ss | 3 == hypercall_abi::arch::FLAT_RING3_SS64 as u64;
                // A non-canonical RIP takes the slow path, which gives
                // the guest #GP instead of faulting on `iretq`.
                if runs && flat && crate::return_path::iret_fault(frame).is_none() {
                    if !dd.vcpu_info(v).is_some_and(|vi| vi.on(&self.platform).events_need_delivery()) {
                        frame.sanitize_for_guest();
                        // See `resume`: a retyped or freed frame flushes.
                        let flush_global = core::mem::take(&mut self.frames.need_tlb_flush);
                        return Next::Resume { cr3: vc.active_cr3(), flush_global };
                    }
                }
                if runs {
                    return self.resume(frame);
                }
            }
        }
        if let Some(halt) = self.dom0_halt() {
            return Next::Halt(halt);
        }
        self.pick_next(frame, Some((dom, v)))
    }

    fn pick_next(&mut self, frame: &mut GuestRegs, cur: Option<(DomId, usize)>) -> Next {
        self.charge_current();
        let Some((nd, nv)) = self.next_runnable(cur) else {
            if let Some((d, v)) = cur {
                self.switch_out(frame, d, v);
                self.current = None;
                // No longer running: a parked (capped) vCPU is runnable, so
                // its run-state time (and `xl list`'s Time) stops counting.
                if let Some(state) = self.domains.get(&d).and_then(|dd| dd.vcpus.get(v)).map(|vc| vc.state) {
                    self.set_runstate(d, v, state);
                }
            }
            return Next::Idle;
        };
        if cur != Some((nd, nv)) {
            if let Some((d, v)) = cur {
                self.switch_out(frame, d, v);
            }
            *frame = self.domains[&nd].vcpus[nv].regs;
            self.current = Some((nd, nv));
            self.sched.slice_start = self.platform.now_ns();
            self.load_vcpu_state(nd, nv);
            self.update_vcpu_time(nd, nv);
            self.periodic_catch_up(nd, nv);
            self.set_runstate(nd, nv, RunState::Runnable);
            self.update_runstate_area(nd, nv);
            // The one switched out is now merely runnable (or stays blocked/down).
            if let Some((d, v)) = cur {
                if let Some(state) = self.domains.get(&d).and_then(|dd| dd.vcpus.get(v)).map(|vc| vc.state) {
                    self.set_runstate(d, v, state);
                }
            }
        }
        self.resume(frame)
    }

    fn switch_out(&mut self, frame: &GuestRegs, d: DomId, v: usize) {
        if let Some(vc) = self.domains.get_mut(&d).and_then(|dd| dd.vcpus.get_mut(v)) {
            vc.regs = *frame;
        }
        self.save_vcpu_state(d, v);
    }

    /// Return to the current vCPU, after making sure `iretq` can: selectors
    /// other than Xen's flat ones are looked up in the vCPU's GDT (which the
    /// guest may have changed since it loaded them); one that would fault
    /// crashes the domain instead of the hypervisor.
    fn resume(&mut self, frame: &mut GuestRegs) -> Next {
        let Some((d, v)) = self.current else { return Next::Idle };
        let flat_cs = frame.cs | 3 == hypercall_abi::arch::FLAT_RING3_CS64 as u64;
        let flat_ss = frame.ss | 3 == hypercall_abi::arch::FLAT_RING3_SS64 as u64;
        if !(flat_cs && flat_ss) {
            if let Some(next) = self.return_selector_fault(frame) {
                return next;
            }
        }
        if !self.deliver_pending_upcall(frame) {
            crate::error!("d{}v{}: cannot deliver an event upcall", d.0, v);
            self.domain_crash(d);
            return self.schedule(frame);
        }
        if let Some(next) = self.return_fault(frame) {
            return next;
        }
        frame.sanitize_for_guest();
        // A frame stopped being writable or was freed outside a hypercall
        // (a `mov %cr3` emulated on #GP validates a new tree; ptwr drops
        // entries): stale writable TLB entries, global ones included, must
        // go before the guest runs again, as Xen flushes in _get_page_type.
        let retyped = core::mem::take(&mut self.frames.need_tlb_flush);
        let flush_global = self.switching_tlb_to(d, v) | retyped;
        Next::Resume { cr3: self.domains[&d].vcpus[v].active_cr3(), flush_global }
    }

    /// Move a vCPU to another run state, accounting the time spent in the
    /// old one (`vcpu_runstate_info`).
    pub fn set_runstate(&mut self, d: DomId, v: usize, state: RunState) {
        let now = self.platform.now_ns();
        let running = self.current == Some((d, v));
        let Some(vc) = self.domains.get_mut(&d).and_then(|dd| dd.vcpus.get_mut(v)) else { return };
        if vc.state == RunState::Down && state == RunState::Runnable && vc.periodic.is_none() {
            // A PV vCPU comes up with a 10 ms periodic timer, as on Xen;
            // VCPUOP_stop_periodic_timer turns it off.
            vc.periodic = Some((DEFAULT_PERIOD_NS, now + DEFAULT_PERIOD_NS));
        }
        vc.state = state;
        let abi = match state {
            RunState::Runnable if running => hypercall_abi::vcpu::RUNSTATE_running,
            RunState::Runnable => hypercall_abi::vcpu::RUNSTATE_runnable,
            RunState::Blocked => hypercall_abi::vcpu::RUNSTATE_blocked,
            RunState::Down => hypercall_abi::vcpu::RUNSTATE_offline,
        };
        let r = &mut vc.runstate;
        if r.state != abi {
            r.time[r.state as usize & 3] += now.saturating_sub(r.entry_time);
            r.state = abi;
            r.entry_time = now;
        }
    }

    /// A vCPU's run-state figures including the time in its current state.
    pub fn runstate_now(&self, d: DomId, v: usize) -> crate::vcpu::Runstate {
        let now = self.platform.now_ns();
        let mut r = self.domains[&d].vcpus[v].runstate;
        r.time[r.state as usize & 3] += now.saturating_sub(r.entry_time);
        r
    }

    fn dom0_halt(&self) -> Option<Halt> {
        let reason = self.domains.get(&DomId::DOM0)?.shutdown?;
        Some(match reason {
            ShutdownReason::Poweroff => {
                crate::info!("Hardware Dom0 halted: halting machine");
                Halt::PowerOff
            }
            ShutdownReason::Crash | ShutdownReason::Watchdog => {
                crate::error!("Hardware Dom0 crashed: {}", if self.options.noreboot { "halting machine" } else { "rebooting machine" });
                Halt::Crash
            }
            _ => {
                crate::info!("Hardware Dom0 shutdown: rebooting machine");
                Halt::Reboot
            }
        })
    }
}
