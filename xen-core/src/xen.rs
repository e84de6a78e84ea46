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

/// What the architecture layer does after the core has handled an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Return to the guest in the frame, on page table `cr3`.
    Resume { cr3: Mfn },
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

pub struct Xen<P: Platform> {
    pub platform: P,
    pub frames: FrameTable,
    pub domains: BTreeMap<DomId, Domain>,
    /// The running vCPU: (domain, vcpu index).
    pub current: Option<(DomId, usize)>,
    pub cmdline: String,
    pub options: Options,
}

impl<P: Platform> Xen<P> {
    pub fn new(platform: P, frames: FrameTable, cmdline: &str) -> Self {
        Xen {
            platform,
            frames,
            domains: BTreeMap::new(),
            current: None,
            cmdline: String::from(cmdline),
            options: Options::parse(cmdline),
        }
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
        let cr3 = self.domains.get(&d)?.vcpus.get(v)?.cr3;
        Some(GuestMem::new(&self.platform, cr3, self.frames.len()))
    }

    /// Run a freshly built domain's first vCPU next; returns its frame.
    pub fn start(&mut self, dom: DomId) -> Option<(GuestRegs, Mfn)> {
        let d = self.domains.get(&dom)?;
        let v = d.vcpus.first()?;
        let out = (v.regs, v.active_cr3());
        self.current = Some((dom, 0));
        self.load_vcpu_state(dom, 0);
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

    /// Shut a domain down. Dom0's shutdown is the machine's (Xen's
    /// `hwdom_shutdown`).
    pub fn domain_shutdown(&mut self, dom: DomId, reason: ShutdownReason) {
        let Some(d) = self.domains.get_mut(&dom) else { return };
        if d.shutdown.is_some() {
            return;
        }
        d.shutdown = Some(reason);
        for v in &mut d.vcpus {
            v.state = RunState::Down;
        }
        if dom != DomId::DOM0 {
            crate::info!("Domain {} shut down: reason {:?}", dom.0, reason);
        }
    }

    /// A guest did something it had no handler for: it dies, alone.
    pub fn domain_crash(&mut self, dom: DomId) {
        let code = self.domains.get(&dom).and_then(|d| d.shutdown_code);
        crate::error!("Domain {} crashed{}", dom.0, code.map_or(String::new(), |c| alloc::format!(" (shutdown code {c})")));
        self.domain_shutdown(dom, ShutdownReason::Crash);
    }

    /// After an entry: keep running the current vCPU if it can run,
    /// otherwise pick another, otherwise idle, or stop the machine when Dom0
    /// is gone. `frame` holds the current vCPU's live registers.
    pub fn schedule(&mut self, frame: &mut GuestRegs) -> Next {
        // Fast path, taken after nearly every hypercall: the current vCPU can
        // go on. (A shut-down domain's vCPUs are all Down, so Dom0's own
        // shutdown always leaves this path.)
        let Some((dom, v)) = self.current else { return Next::Idle };
        if let Some(vc) = self.domains.get(&dom).and_then(|d| d.vcpus.get(v)) {
            if vc.state == RunState::Runnable {
                frame.sanitize_for_guest();
                return Next::Resume { cr3: vc.active_cr3() };
            }
        }
        if let Some(halt) = self.dom0_halt() {
            return Next::Halt(halt);
        }
        // Save the descheduled vCPU, then look for anyone else in domain order.
        if let Some(vc) = self.domains.get_mut(&dom).and_then(|d| d.vcpus.get_mut(v)) {
            vc.regs = *frame;
        }
        self.save_vcpu_state(dom, v);
        let next = self.domains.values().find_map(|d| {
            d.vcpus.iter().position(|vc| vc.state == RunState::Runnable).map(|i| (d.id, i))
        });
        match next {
            Some((nd, nv)) => {
                let vc = &self.domains[&nd].vcpus[nv];
                *frame = vc.regs;
                let cr3 = vc.active_cr3();
                self.current = Some((nd, nv));
                self.load_vcpu_state(nd, nv);
                frame.sanitize_for_guest();
                Next::Resume { cr3 }
            }
            None => Next::Idle,
        }
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
