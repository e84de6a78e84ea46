//! `domctl` and `sysctl`: the control domain's interface (Xen 4.17's
//! layouts, `XEN_DOMCTL_INTERFACE_VERSION` 0x15). Anyone else gets
//! `-EPERM`; a caller built for another interface version gets `-EACCES`.

use alloc::vec;

use super::{ret, HcResult};
use crate::domain::DomId;
use crate::mm::{Mfn, Owner, PageType};
use crate::platform::Platform;
use crate::xen::Xen;
use hypercall_abi::domctl::*;
use hypercall_abi::errno::Errno;

const DOMCTL_SIZE: usize = core::mem::size_of::<XenDomctl>();
const SYSCTL_SIZE: usize = core::mem::size_of::<XenSysctl>();

/// Byte offset of a field of `struct xen_domctl` / `xen_sysctl`, or of a
/// field of one of the structures in their union: the layouts are
/// `hypercall-abi`'s, never counted by hand.
macro_rules! domctl {
    ($f:ident) => {
        core::mem::offset_of!(XenDomctl, $f)
    };
    ($ty:ty, $f:ident) => {
        core::mem::offset_of!(XenDomctl, u) + core::mem::offset_of!($ty, $f)
    };
}
macro_rules! sysctl {
    ($f:ident) => {
        core::mem::offset_of!(XenSysctl, $f)
    };
    ($ty:ty, $f:ident) => {
        core::mem::offset_of!(XenSysctl, u) + core::mem::offset_of!($ty, $f)
    };
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap_or([0; 4]))
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]))
}
fn put(b: &mut [u8], o: usize, v: &[u8]) {
    b[o..o + v.len()].copy_from_slice(v);
}

impl<P: Platform> Xen<P> {
    /// The machine's CPUID feature words as Xen's `physinfo.hw_cap` lists
    /// them (its featureset order: 1.edx, 1.ecx, 0x80000001.edx/.ecx,
    /// 0xd[1].eax, 7[0].ebx/.ecx, 0x80000007.edx); a leaf the CPU does not
    /// have reads as zeros.
    fn hw_cap(&self) -> [u32; 8] {
        let p = &self.platform;
        let (max, max_ext) = (p.cpuid(0, 0)[0], p.cpuid(0x8000_0000, 0)[0]);
        let leaf = |l: u32, s: u32| {
            let have = if l >= 0x8000_0000 { l <= max_ext } else { l <= max };
            if have { p.cpuid(l, s) } else { [0; 4] }
        };
        let (l1, e1, d1, l7, e7) = (leaf(1, 0), leaf(0x8000_0001, 0), leaf(0xd, 1), leaf(7, 0), leaf(0x8000_0007, 0));
        [l1[3], l1[2], e1[3], e1[2], d1[0], l7[1], l7[2], e7[3]]
    }

    fn control_domain_only(&self) -> Result<(), Errno> {
        if self.current_domain().is_some_and(|d| d.privileged) {
            Ok(())
        } else {
            Err(Errno::EPERM)
        }
    }

    pub(super) fn do_domctl(&mut self, [arg, ..]: [u64; 5]) -> HcResult {
        let mut b = [0u8; DOMCTL_SIZE];
        self.guest_mem().ok_or(Errno::ESRCH)?.copy_from_guest(arg, &mut b)?;
        // As Xen: the interface version is checked before the privilege.
        if u32_at(&b, domctl!(interface_version)) != XEN_DOMCTL_INTERFACE_VERSION {
            return Err(Errno::EACCES);
        }
        self.control_domain_only()?;
        let cmd = u32_at(&b, domctl!(cmd));
        let dom = u16_at(&b, domctl!(domain));
        let target = |x: &Self| -> Result<DomId, Errno> {
            if x.domains.contains_key(&DomId(dom)) {
                Ok(DomId(dom))
            } else {
                Err(Errno::ESRCH)
            }
        };
        let mut write_back = false;
        match cmd {
            XEN_DOMCTL_createdomain => {
                let flags = u32_at(&b, domctl!(XenDomctlCreatedomain, flags));
                let max_vcpus = u32_at(&b, domctl!(XenDomctlCreatedomain, max_vcpus));
                let max_evtchn_port = u32_at(&b, domctl!(XenDomctlCreatedomain, max_evtchn_port));
                // PV guests only: no HVM, HAP, IOMMU or nested virtualisation.
                if flags != 0 {
                    return Err(Errno::EINVAL);
                }
                let id = self.create_domain(dom, max_vcpus, "domU")?;
                if let Some(d) = self.domains.get_mut(&id) {
                    d.evtchn.max = max_evtchn_port.saturating_add(1).clamp(1, crate::evtchn::EVTCHN_2L_NR_CHANNELS);
                }
                put(&mut b, domctl!(domain), &id.0.to_le_bytes());
                write_back = true;
            }
            XEN_DOMCTL_destroydomain => {
                let d = target(self)?;
                self.destroy_domain(d)?;
            }
            XEN_DOMCTL_pausedomain | XEN_DOMCTL_unpausedomain => {
                let d = target(self)?;
                if Some(d) == self.current.map(|(c, _)| c) {
                    return Err(Errno::EINVAL);
                }
                if cmd == XEN_DOMCTL_pausedomain {
                    self.pause_domain(d)?;
                } else {
                    self.unpause_domain(d)?;
                }
            }
            XEN_DOMCTL_getdomaininfo => {
                // The toolstack looks at a domain: it has handled what it was
                // woken for (the guests' consoles included).
                self.log_shutdown_notes();
                if dom >= hypercall_abi::mm::DOMID_FIRST_RESERVED {
                    return Err(Errno::EINVAL);
                }
                // Xen answers with the first domain whose id is at least the
                // one asked for, which is how toolstacks walk the list.
                let d = self.domains.keys().copied().find(|d| d.0 >= dom).ok_or(Errno::ESRCH)?;
                let info = self.domaininfo_bytes(d);
                put(&mut b, domctl!(u), &info);
                put(&mut b, domctl!(domain), &d.0.to_le_bytes());
                write_back = true;
            }
            XEN_DOMCTL_max_mem => {
                let d = target(self)?;
                let kb = u64_at(&b, domctl!(XenDomctlMaxMem, max_memkb));
                self.domains.get_mut(&d).ok_or(Errno::ESRCH)?.max_pages = kb / 4;
            }
            XEN_DOMCTL_setvcpucontext => {
                let d = target(self)?;
                let vcpu = u32_at(&b, domctl!(XenDomctlVcpucontext, vcpu)) as usize;
                let ctxt = u64_at(&b, domctl!(XenDomctlVcpucontext, ctxt));
                if vcpu >= self.domains[&d].vcpus.len() {
                    return Err(Errno::EINVAL);
                }
                if self.domains[&d].vcpus[vcpu].initialised {
                    return Err(Errno::EEXIST);
                }
                let mut raw = vec![0u8; core::mem::size_of::<hypercall_abi::arch::VcpuGuestContext>()];
                self.guest_mem().ok_or(Errno::ESRCH)?.copy_from_guest(ctxt, &mut raw)?;
                self.initialise_vcpu(d, vcpu, &raw)?;
            }
            XEN_DOMCTL_getvcpuinfo => {
                let d = target(self)?;
                let vcpu = u32_at(&b, domctl!(XenDomctlGetvcpuinfo, vcpu)) as usize;
                let vc = self.domains[&d].vcpus.get(vcpu).ok_or(Errno::EINVAL)?;
                let online = vc.state != crate::vcpu::RunState::Down;
                let blocked = vc.state == crate::vcpu::RunState::Blocked;
                let running = self.current == Some((d, vcpu));
                let time = self.runstate_now(d, vcpu).time[0];
                put(&mut b, domctl!(XenDomctlGetvcpuinfo, online), &[online as u8]);
                put(&mut b, domctl!(XenDomctlGetvcpuinfo, blocked), &[blocked as u8]);
                put(&mut b, domctl!(XenDomctlGetvcpuinfo, running), &[running as u8]);
                put(&mut b, domctl!(XenDomctlGetvcpuinfo, cpu_time), &time.to_le_bytes());
                put(&mut b, domctl!(XenDomctlGetvcpuinfo, cpu), &0u32.to_le_bytes());
                write_back = true;
            }
            XEN_DOMCTL_max_vcpus => {
                // The vCPU count is fixed at creation (as in Xen 4.17).
                let d = target(self)?;
                if u32_at(&b, domctl!(XenDomctlMaxVcpus, max)) as usize != self.domains[&d].vcpus.len() {
                    return Err(Errno::EINVAL);
                }
            }
            XEN_DOMCTL_scheduler_op => {
                let d = target(self)?;
                if u32_at(&b, domctl!(XenDomctlSchedulerOp, sched_id)) != XEN_SCHEDULER_CREDIT {
                    return Err(Errno::EINVAL);
                }
                let dd = self.domains.get_mut(&d).ok_or(Errno::ESRCH)?;
                // The credit parameters sit at the start of the op's union.
                let credit = domctl!(XenDomctlSchedulerOp, u);
                let weight_at = credit + core::mem::offset_of!(XenDomctlSchedCredit, weight);
                let cap_at = credit + core::mem::offset_of!(XenDomctlSchedCredit, cap);
                match u32_at(&b, domctl!(XenDomctlSchedulerOp, cmd)) {
                    XEN_DOMCTL_SCHEDOP_putinfo => {
                        let (weight, cap) = (u16_at(&b, weight_at), u16_at(&b, cap_at));
                        // As Xen's credit scheduler: weight 0 leaves it be,
                        // a cap above 100% per vCPU is refused.
                        if cap as usize > 100 * dd.vcpus.len() {
                            return Err(Errno::EINVAL);
                        }
                        if weight != 0 {
                            dd.weight = weight as u32;
                        }
                        dd.cap = cap as u32;
                    }
                    XEN_DOMCTL_SCHEDOP_getinfo => {
                        put(&mut b, weight_at, &(dd.weight as u16).to_le_bytes());
                        put(&mut b, cap_at, &(dd.cap as u16).to_le_bytes());
                        write_back = true;
                    }
                    _ => return Err(Errno::EINVAL),
                }
            }
            XEN_DOMCTL_hypercall_init => {
                let d = target(self)?;
                let mfn = Mfn(u64_at(&b, domctl!(XenDomctlHypercallInit, gmfn)));
                if self.frames.get(mfn).map(|pg| pg.owner) != Some(Owner::Dom(d)) {
                    return Err(Errno::EINVAL);
                }
                let mut page = [0u8; 4096];
                hypercall_abi::hypercall_page::fill(&mut page);
                let mut mm = self.mm();
                mm.get_page_type(mfn, PageType::Writable)?;
                mm.mem.write(mfn, 0, &page);
                mm.put_page_type(mfn);
            }
            _ => return Err(Errno::ENOSYS),
        }
        if write_back {
            self.guest_mem().ok_or(Errno::ESRCH)?.copy_to_guest(arg, &b)?;
        }
        ret(0)
    }

    /// One debug key (Xen's keyhandlers); unknown keys are ignored, as Xen
    /// does.
    pub fn debug_key(&mut self, key: u8) {
        if key != b'q' {
            return;
        }
        let ids: alloc::vec::Vec<(DomId, usize)> =
            self.domains.values().flat_map(|d| (0..d.vcpus.len()).map(move |v| (d.id, v))).collect();
        for (d, v) in &ids {
            if *v == 0 {
                if let Some(i) = self.domain_info(*d) {
                    crate::info!(
                        "'q' pressed -> dumping domain info: d{} pages {}/{} vCPUs {} paused {} shutdown {}",
                        d.0,
                        i.tot_pages,
                        i.max_pages,
                        i.nr_online_vcpus,
                        i.paused,
                        i.shutdown.map_or(alloc::string::String::from("no"), |r| alloc::format!("{}", r))
                    );
                }
            }
            self.send_virq(*d, *v, hypercall_abi::evtchn::VIRQ_DEBUG);
        }
    }

    /// `struct xen_domctl_getdomaininfo` for `d`.
    fn domaininfo_bytes(&self, d: DomId) -> [u8; XenDomctlGetdomaininfo::SIZE] {
        let Some(i) = self.domain_info(d) else { return [0; XenDomctlGetdomaininfo::SIZE] };
        let mut flags = 0u32;
        if i.paused {
            flags |= XEN_DOMINF_paused;
        }
        if i.blocked {
            flags |= XEN_DOMINF_blocked;
        }
        if i.running {
            flags |= XEN_DOMINF_running;
        }
        if let Some(r) = i.shutdown {
            flags |= XEN_DOMINF_shutdown | (r & XEN_DOMINF_shutdownmask) << XEN_DOMINF_shutdownshift;
        }
        XenDomctlGetdomaininfo {
            domain: d.0,
            flags,
            tot_pages: i.tot_pages,
            max_pages: i.max_pages,
            shared_info_frame: i.shared_info.0,
            cpu_time: i.cpu_time_ns,
            nr_online_vcpus: i.nr_online_vcpus,
            max_vcpu_id: i.max_vcpu_id,
            gpaddr_bits: 52,
            ..Default::default()
        }
        .to_bytes()
    }

    pub(super) fn do_sysctl(&mut self, [arg, ..]: [u64; 5]) -> HcResult {
        let mut b = [0u8; SYSCTL_SIZE];
        self.guest_mem().ok_or(Errno::ESRCH)?.copy_from_guest(arg, &mut b)?;
        if u32_at(&b, sysctl!(interface_version)) != XEN_SYSCTL_INTERFACE_VERSION {
            return Err(Errno::EACCES);
        }
        self.control_domain_only()?;
        let u = sysctl!(u);
        match u32_at(&b, sysctl!(cmd)) {
            XEN_SYSCTL_physinfo => {
                let total = self.frames.iter().filter(|(_, pg)| pg.owner != Owner::None && pg.owner != Owner::Io).count() as u64;
                put(&mut b, sysctl!(XenSysctlPhysinfo, threads_per_core), &1u32.to_le_bytes());
                put(&mut b, sysctl!(XenSysctlPhysinfo, cores_per_socket), &1u32.to_le_bytes());
                put(&mut b, sysctl!(XenSysctlPhysinfo, nr_cpus), &1u32.to_le_bytes());
                put(&mut b, sysctl!(XenSysctlPhysinfo, max_cpu_id), &0u32.to_le_bytes());
                put(&mut b, sysctl!(XenSysctlPhysinfo, nr_nodes), &1u32.to_le_bytes());
                put(&mut b, sysctl!(XenSysctlPhysinfo, cpu_khz), &(self.platform.tsc_khz() as u32).to_le_bytes());
                let caps = XEN_SYSCTL_PHYSCAP_pv | XEN_SYSCTL_PHYSCAP_gnttab_v1;
                put(&mut b, sysctl!(XenSysctlPhysinfo, capabilities), &caps.to_le_bytes());
                put(&mut b, sysctl!(XenSysctlPhysinfo, total_pages), &total.to_le_bytes());
                put(&mut b, sysctl!(XenSysctlPhysinfo, free_pages), &self.frames.free_count().to_le_bytes());
                put(&mut b, sysctl!(XenSysctlPhysinfo, max_mfn), &self.frames.len().saturating_sub(1).to_le_bytes());
                for (i, w) in self.hw_cap().iter().enumerate() {
                    put(&mut b, sysctl!(XenSysctlPhysinfo, hw_cap) + 4 * i, &w.to_le_bytes());
                }
            }
            XEN_SYSCTL_getdomaininfolist => {
                self.log_shutdown_notes();
                let first = u16_at(&b, sysctl!(XenSysctlGetdomaininfolist, first_domain));
                let max = u32_at(&b, sysctl!(XenSysctlGetdomaininfolist, max_domains)) as usize;
                let buffer = u64_at(&b, sysctl!(XenSysctlGetdomaininfolist, buffer));
                let ids: alloc::vec::Vec<DomId> = self.domains.keys().copied().filter(|d| d.0 >= first).take(max).collect();
                for (i, d) in ids.iter().enumerate() {
                    let info = self.domaininfo_bytes(*d);
                    self.guest_mem().ok_or(Errno::ESRCH)?.copy_to_guest(buffer.wrapping_add((XenDomctlGetdomaininfo::SIZE * i) as u64), &info)?;
                }
                put(&mut b, sysctl!(XenSysctlGetdomaininfolist, num_domains), &(ids.len() as u32).to_le_bytes());
            }
            XEN_SYSCTL_sched_id => put(&mut b, sysctl!(XenSysctlSchedId, sched_id), &XEN_SCHEDULER_CREDIT.to_le_bytes()),
            XEN_SYSCTL_scheduler_op => {
                // One cpupool (0) running the credit scheduler: its time
                // slice, no rate limit, no migration delay (one CPU). The
                // parameters are fixed here: putinfo is not supported.
                let pool = u32_at(&b, sysctl!(XenSysctlSchedulerOp, cpupool_id));
                let sched = u32_at(&b, sysctl!(XenSysctlSchedulerOp, sched_id));
                let cmd = u32_at(&b, sysctl!(XenSysctlSchedulerOp, cmd));
                if pool != 0 {
                    return Err(Errno::ENOENT);
                }
                if sched != XEN_SCHEDULER_CREDIT {
                    return Err(Errno::EINVAL);
                }
                match cmd {
                    XEN_SYSCTL_SCHEDOP_getinfo => {
                        let tslice_ms = (crate::sched::TIMESLICE_NS / 1_000_000) as u32;
                        let params = sysctl!(XenSysctlSchedulerOp, params);
                        put(&mut b, params, &tslice_ms.to_le_bytes()); // tslice_ms
                        put(&mut b, params + 4, &0u32.to_le_bytes()); // ratelimit_us
                        put(&mut b, params + 8, &0u32.to_le_bytes()); // vcpu_migr_delay_us
                    }
                    XEN_SYSCTL_SCHEDOP_putinfo => return Err(Errno::EOPNOTSUPP),
                    _ => return Err(Errno::EINVAL),
                }
            }
            XEN_SYSCTL_debug_keys => {
                // `xl debug-keys`: as Xen's keyhandlers. 'q' dumps the
                // domains and raises VIRQ_DEBUG on every vCPU.
                // `struct xen_sysctl_debug_keys {XEN_GUEST_HANDLE keys; u32 nr_keys}`.
                let keys = u64_at(&b, u);
                let nr = (u32_at(&b, u + 8) as usize).min(64);
                let mut k = alloc::vec![0u8; nr];
                self.guest_mem().ok_or(Errno::ESRCH)?.copy_from_guest(keys, &mut k)?;
                for key in k {
                    self.debug_key(key);
                }
            }
            XEN_SYSCTL_readconsole => {
                // `xl dmesg`, as Xen's console ring: read from the oldest
                // byte kept, or (incremental) from `index`; `index` comes back
                // just past the last byte copied, so a short read means the
                // end was reached.
                let (clear, incremental) =
                    (b[sysctl!(XenSysctlReadconsole, clear)] != 0, b[sysctl!(XenSysctlReadconsole, incremental)] != 0);
                let index = u32_at(&b, sysctl!(XenSysctlReadconsole, index)) as usize;
                let buffer = u64_at(&b, sysctl!(XenSysctlReadconsole, buffer));
                let count = u32_at(&b, sysctl!(XenSysctlReadconsole, count)) as usize;
                let (text, next) = crate::log::read_from(if incremental { Some(index) } else { None }, count);
                self.guest_mem().ok_or(Errno::ESRCH)?.copy_to_guest(buffer, &text)?;
                put(&mut b, sysctl!(XenSysctlReadconsole, index), &(next as u32).to_le_bytes());
                put(&mut b, sysctl!(XenSysctlReadconsole, count), &(text.len() as u32).to_le_bytes());
                if clear {
                    crate::log::clear_recent();
                }
            }
            _ => return Err(Errno::ENOSYS),
        }
        self.guest_mem().ok_or(Errno::ESRCH)?.copy_to_guest(arg, &b)?;
        ret(0)
    }
}
