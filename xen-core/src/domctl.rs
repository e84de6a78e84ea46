//! Domain lifecycle, for the control domain (Xen's `common/domain.c` and
//! the portable half of `domctl`): create an empty domain, give it memory
//! (`populate_physmap`), pause and unpause it, report on it, and destroy it
//! returning every frame (invariant 4 of docs/architecture.md).

use alloc::string::String;
use alloc::vec::Vec;

use crate::domain::{DomId, Domain};
use crate::evtchn::{Ports, DEFAULT_MAX_PORTS_DOMU};
use crate::gnttab::GrantTable;
use crate::mm::{Mfn, Owner};
use crate::platform::Platform;
use crate::vcpu::{RunState, Vcpu};
use crate::xen::Xen;
use hypercall_abi::errno::Errno;

/// The most vCPUs a domain may have (the legacy `vcpu_info` array).
pub const MAX_VCPUS: u32 = 32;

/// What `getdomaininfo` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainInfo {
    pub id: DomId,
    pub tot_pages: u64,
    pub max_pages: u64,
    pub shared_info: Mfn,
    pub cpu_time_ns: u64,
    pub nr_online_vcpus: u32,
    pub max_vcpu_id: u32,
    pub paused: bool,
    pub blocked: bool,
    pub running: bool,
    pub shutdown: Option<u32>,
    pub dying: bool,
}

impl<P: Platform> Xen<P> {
    /// A new, empty, paused domain: no memory yet, vCPUs down. `want` 0
    /// picks a fresh id; ids are not reused while this hypervisor runs
    /// (until they wrap at the reserved range), so nothing of a destroyed
    /// domain can ever be reached under its old id.
    pub fn create_domain(&mut self, want: u16, max_vcpus: u32, name: &str) -> Result<DomId, Errno> {
        if max_vcpus == 0 || max_vcpus > MAX_VCPUS {
            return Err(Errno::EINVAL);
        }
        let id = if want != 0 {
            if want >= hypercall_abi::mm::DOMID_FIRST_RESERVED || self.domains.contains_key(&DomId(want)) {
                return Err(Errno::EEXIST);
            }
            DomId(want)
        } else {
            self.fresh_domid()?
        };
        let shared_info = self.frames.alloc_shared(&self.platform, id).ok_or(Errno::ENOMEM)?;
        shared_info.shared_info(&self.platform).mask_all_upcalls();
        let d = Domain {
            id,
            name: String::from(name),
            privileged: false,
            max_pages: 0,
            tot_pages: 0,
            shared_info,
            p2m: Vec::new(),
            vcpus: (0..max_vcpus).map(Vcpu::new).collect(),
            shutdown: None,
            shutdown_code: None,
            vm_assist: 0,
            evtchn: Ports::new(DEFAULT_MAX_PORTS_DOMU),
            gnttab: GrantTable::default(),
            weight: 256,
            cap: 0,
            // Created paused, as Xen does: the builder unpauses it.
            pause_count: 1,
            created_ns: self.platform.now_ns(),
            io: Default::default(),
        pirq_eoi_map: None,
        fifo: None,
        };
        self.domains.insert(id, d);
        self.update_wallclock(id);
        crate::info!("Created domain {} ({})", id.0, name);
        Ok(id)
    }

    fn fresh_domid(&mut self) -> Result<DomId, Errno> {
        for _ in 0..hypercall_abi::mm::DOMID_FIRST_RESERVED {
            self.next_domid = if self.next_domid == 0 || self.next_domid >= hypercall_abi::mm::DOMID_FIRST_RESERVED - 1 {
                1
            } else {
                self.next_domid + 1
            };
            let id = DomId(self.next_domid);
            // Skip ids whose frames are still referenced (Owner::Dead keeps
            // no id, so only live domains block an id).
            if !self.domains.contains_key(&id) {
                return Ok(id);
            }
        }
        Err(Errno::ENOSPC)
    }

    /// `XENMEM_populate_physmap` for a PV domain: allocate a frame for each
    /// pseudo-physical frame number in `gpfns`, record it in the M2P, and
    /// return the MFNs. Stops at the memory limit.
    pub fn populate_physmap(&mut self, d: DomId, gpfns: &[u64]) -> Vec<Mfn> {
        let mut out = Vec::new();
        for &gpfn in gpfns {
            let Some(dom) = self.domains.get(&d) else { break };
            // Frames given back but still in use count too (see
            // `FrameTable::lingering`).
            if dom.tot_pages.saturating_add(self.frames.lingering(d)) >= dom.max_pages {
                break;
            }
            let Some(mfn) = self.frames.alloc(&self.platform, Owner::Dom(d)) else { break };
            self.frames.set_m2p(mfn, gpfn);
            if let Some(dom) = self.domains.get_mut(&d) {
                dom.tot_pages += 1;
            }
            out.push(mfn);
        }
        out
    }

    pub fn pause_domain(&mut self, d: DomId) -> Result<(), Errno> {
        let dom = self.domains.get_mut(&d).ok_or(Errno::ESRCH)?;
        dom.pause_count = dom.pause_count.checked_add(1).ok_or(Errno::EOVERFLOW)?;
        Ok(())
    }

    pub fn unpause_domain(&mut self, d: DomId) -> Result<(), Errno> {
        let dom = self.domains.get_mut(&d).ok_or(Errno::ESRCH)?;
        if dom.pause_count == 0 {
            return Err(Errno::EINVAL);
        }
        dom.pause_count -= 1;
        // The first unpause starts vCPU 0 if the builder gave it a context.
        if dom.pause_count == 0 {
            let start = dom.vcpus.first().is_some_and(|v| v.initialised && v.state == RunState::Down) && dom.shutdown.is_none();
            if start {
                self.set_runstate(d, 0, RunState::Runnable);
            }
        }
        Ok(())
    }

    pub fn domain_info(&self, d: DomId) -> Option<DomainInfo> {
        let dom = self.domains.get(&d)?;
        let cpu: u64 = (0..dom.vcpus.len()).map(|v| self.runstate_now(d, v).time[0]).sum();
        // A domain that shut down keeps its vCPUs (stopped, not offline),
        // as Xen counts them.
        let online = if dom.shutdown.is_some() {
            dom.vcpus.iter().filter(|v| v.initialised).count() as u32
        } else {
            dom.vcpus.iter().filter(|v| v.state != RunState::Down).count() as u32
        };
        Some(DomainInfo {
            id: d,
            tot_pages: dom.tot_pages,
            max_pages: dom.max_pages,
            shared_info: dom.shared_info.mfn(),
            cpu_time_ns: cpu,
            nr_online_vcpus: online,
            max_vcpu_id: dom.vcpus.len() as u32 - 1,
            paused: dom.pause_count > 0,
            blocked: online > 0 && dom.vcpus.iter().all(|v| v.state != RunState::Runnable),
            running: self.current.is_some_and(|(cd, _)| cd == d),
            shutdown: dom.shutdown.map(|r| r as u32),
            dying: false,
        })
    }

    /// Destroy a domain and give back everything it held (Xen's
    /// `domain_kill` + `relinquish_memory`): its channels, the grant
    /// mappings it made, its vCPUs' page-table, GDT and CR3 references,
    /// every pin (which makes every table fall back to a plain page), then
    /// all its memory. Frames someone else still maps stay alive, ownerless,
    /// until that last mapping goes. Dom0 is told through VIRQ_DOM_EXC.
    pub fn destroy_domain(&mut self, d: DomId) -> Result<(), Errno> {
        if !self.domains.contains_key(&d) || self.domains[&d].privileged {
            return Err(if self.domains.contains_key(&d) { Errno::EPERM } else { Errno::ESRCH });
        }
        if self.current.is_some_and(|(cd, _)| cd == d) {
            return Err(Errno::EBUSY);
        }
        // Destruction is Dom0's and runs to the end (Xen continues it as a
        // hypercall continuation; here it costs up to the domain's size).
        let budget = self.frames.budget.take();
        self.evtchn_reset(d);
        let handles: Vec<(u32, crate::gnttab::MapTrack)> = self.domains[&d]
            .gnttab
            .maptrack
            .iter()
            .enumerate()
            .filter_map(|(h, t)| t.map(|t| (h as u32, t)))
            .collect();
        for (h, t) in handles {
            self.release_mapping(d, h, t);
        }
        self.forget_granter(d);
        let vcpus: Vec<(Mfn, Option<Mfn>, Vec<Mfn>, bool, Option<crate::mm::SharedPage>)> = self.domains[&d]
            .vcpus
            .iter()
            .map(|v| (v.cr3, v.user_cr3, v.gdt_frames.clone(), v.initialised, v.vcpu_info.map(|l| l.page())))
            .collect();
        let eoi_map = self.domains.get_mut(&d).and_then(|dd| dd.pirq_eoi_map.take());
        let pinned: Vec<Mfn> =
            self.frames.iter().filter(|(_, pg)| pg.pinned && pg.owner == Owner::Dom(d)).map(|(m, _)| m).collect();
        {
            let mut mm = self.mm();
            for (cr3, user, gdt, initialised, vinfo) in vcpus {
                if initialised {
                    mm.put_page_and_type(cr3);
                }
                if let Some(u) = user {
                    mm.put_page_and_type(u);
                }
                for f in gdt {
                    mm.put_page_and_type(f);
                }
                if let Some(page) = vinfo {
                    mm.unshare_guest_frame(page);
                }
            }
            if let Some(page) = eoi_map {
                mm.unshare_guest_frame(page);
            }
            for m in pinned {
                let _ = mm.unpin(m, d);
            }
            // Validations it left half done, and teardown it left queued.
            let partial: Vec<Mfn> =
                mm.ft.iter().filter(|(_, pg)| pg.partial && pg.owner == Owner::Dom(d)).map(|(m, _)| m).collect();
            for m in partial {
                mm.abandon_partial(m);
            }
            let _ = mm.drain_deferred(d);
        }
        let owned: Vec<Mfn> = self.frames.owned_by(d).collect();
        for m in owned {
            self.frames.release(m);
        }
        let orphans = self.frames.orphan(d);
        if orphans > 0 {
            crate::info!("Domain {}: {} frames still mapped elsewhere; freed when unmapped", d.0, orphans);
        }
        self.domains.remove(&d);
        self.log_shutdown_notes();
        self.frames.budget = budget;
        crate::info!("Destroyed domain {}", d.0);
        self.send_global_virq(hypercall_abi::evtchn::VIRQ_DOM_EXC);
        Ok(())
    }
}
