//! `event_channel_op`: create, connect, signal and close event channels
//! (Xen's `do_event_channel_op`), with the 2-level ABI or, once the guest
//! asks (`init_control`), the FIFO one (`evtchn_fifo`).

use super::{ret, HcResult};
use crate::domain::DomId;
use crate::evtchn::{virq_is_global, State};
use crate::platform::Platform;
use crate::xen::Xen;
use hypercall_abi::errno::Errno;
use hypercall_abi::evtchn::*;
use hypercall_abi::mm::DOMID_SELF;

impl<P: Platform> Xen<P> {
    pub(super) fn do_event_channel_op(&mut self, [cmd, arg, ..]: [u64; 5]) -> HcResult {
        let me = self.current_id()?;
        let g = self.guest_mem().ok_or(Errno::ESRCH)?;
        let mut b = [0u8; 24];
        let size = match cmd as u32 {
            EVTCHNOP_alloc_unbound => 8,
            EVTCHNOP_bind_interdomain | EVTCHNOP_bind_virq => 12,
            EVTCHNOP_bind_ipi | EVTCHNOP_bind_vcpu => 8,
            EVTCHNOP_close | EVTCHNOP_send | EVTCHNOP_unmask => 4,
            EVTCHNOP_status => 24,
            EVTCHNOP_reset => 2,
            EVTCHNOP_init_control => 16,
            EVTCHNOP_expand_array | EVTCHNOP_set_priority => 8,
            // No physical interrupts to bind.
            _ => return Err(Errno::ENOSYS),
        };
        g.copy_from_guest(arg, &mut b[..size])?;
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap_or([0; 4]));
        let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
        match cmd as u32 {
            EVTCHNOP_alloc_unbound => {
                let dom = self.target_domain(u16_at(0))?;
                // The remote end is only a name until it binds (Xen does
                // not look it up either).
                let remote = match u16_at(2) {
                    DOMID_SELF => me,
                    r => DomId(r),
                };
                let port = self.alloc_port(dom, State::Unbound { remote }, 0)?;
                self.put_out(arg.wrapping_add(4), port)
            }
            EVTCHNOP_bind_interdomain => {
                let remote = match u16_at(0) {
                    DOMID_SELF => me,
                    r => DomId(r),
                };
                let rport = u32_at(4);
                let rchan = self.domains.get(&remote).ok_or(Errno::ESRCH)?.evtchn.get(rport).copied().ok_or(Errno::EINVAL)?;
                if rchan.state != (State::Unbound { remote: me }) {
                    return Err(Errno::EINVAL);
                }
                let v = self.current.map_or(0, |(_, v)| v as u32);
                let lport = self.alloc_port(me, State::Interdomain { remote, remote_port: rport }, v)?;
                if let Some(c) = self.domains.get_mut(&remote).and_then(|d| d.evtchn.get_mut(rport)) {
                    c.state = State::Interdomain { remote: me, remote_port: lport };
                }
                // As Xen: the new local end starts pending, so a
                // notification sent before the bind is not lost.
                self.evtchn_set_pending(me, lport);
                self.put_out(arg.wrapping_add(8), lport)
            }
            EVTCHNOP_bind_virq => {
                let (virq, vcpu) = (u32_at(0), u32_at(4));
                if virq >= NR_VIRQS || (virq_is_global(virq) && vcpu != 0) {
                    return Err(Errno::EINVAL);
                }
                let v = self.domains[&me].vcpus.get(vcpu as usize).ok_or(Errno::ENOENT)?;
                if v.virq_to_evtchn[virq as usize] != 0 {
                    return Err(Errno::EEXIST);
                }
                let port = self.alloc_port(me, State::Virq(virq), vcpu)?;
                if let Some(vc) = self.current_domain_mut().and_then(|d| d.vcpus.get_mut(vcpu as usize)) {
                    vc.virq_to_evtchn[virq as usize] = port;
                }
                self.put_out(arg.wrapping_add(8), port)
            }
            EVTCHNOP_bind_ipi => {
                let vcpu = u32_at(0);
                if vcpu as usize >= self.domains[&me].vcpus.len() {
                    return Err(Errno::ENOENT);
                }
                let port = self.alloc_port(me, State::Ipi, vcpu)?;
                self.put_out(arg.wrapping_add(4), port)
            }
            EVTCHNOP_bind_vcpu => {
                let (port, vcpu) = (u32_at(0), u32_at(4));
                if vcpu as usize >= self.domains[&me].vcpus.len() {
                    return Err(Errno::ENOENT);
                }
                let chan = self.domains.get_mut(&me).and_then(|d| d.evtchn.get_mut(port)).ok_or(Errno::EINVAL)?;
                match chan.state {
                    State::Unbound { .. } | State::Interdomain { .. } => chan.notify_vcpu = vcpu,
                    State::Virq(virq) if virq_is_global(virq) => chan.notify_vcpu = vcpu,
                    _ => return Err(Errno::EINVAL),
                }
                ret(0)
            }
            EVTCHNOP_close => {
                self.evtchn_close(me, u32_at(0))?;
                ret(0)
            }
            EVTCHNOP_send => self.evtchn_send(me, u32_at(0)),
            EVTCHNOP_status => self.evtchn_status(arg, &b),
            EVTCHNOP_unmask => {
                self.evtchn_unmask(me, u32_at(0))?;
                ret(0)
            }
            EVTCHNOP_reset => {
                let d = self.target_domain(u16_at(0))?;
                self.evtchn_reset(d);
                ret(0)
            }
            EVTCHNOP_init_control => {
                let gfn = u64::from(u32_at(0)) | u64::from(u32_at(4)) << 32;
                self.fifo_init_control(me, gfn, u32_at(8), u32_at(12))?;
                // OUT: link_bits.
                let g = self.guest_mem().ok_or(Errno::ESRCH)?;
                g.copy_to_guest(arg.wrapping_add(core::mem::offset_of!(EvtchnInitControl, link_bits) as u64), &[EVTCHN_FIFO_LINK_BITS as u8])?;
                ret(0)
            }
            EVTCHNOP_expand_array => {
                let gfn = u64::from(u32_at(0)) | u64::from(u32_at(4)) << 32;
                self.fifo_expand_array(me, gfn)?;
                ret(0)
            }
            EVTCHNOP_set_priority => {
                self.fifo_set_priority(me, u32_at(0), u32_at(4))?;
                ret(0)
            }
            _ => Err(Errno::ENOSYS),
        }
    }

    fn put_out(&self, at: u64, port: u32) -> HcResult {
        self.guest_mem().ok_or(Errno::ESRCH)?.write_u32(at, port)?;
        ret(0)
    }

    fn alloc_port(&mut self, d: DomId, state: State, vcpu: u32) -> Result<u32, Errno> {
        let dom = self.domains.get_mut(&d).ok_or(Errno::ESRCH)?;
        dom.evtchn.alloc(state, vcpu).ok_or(Errno::ENOSPC)
    }

    pub(crate) fn evtchn_send(&mut self, me: DomId, port: u32) -> HcResult {
        let chan = self.domains[&me].evtchn.get(port).copied().ok_or(Errno::EINVAL)?;
        match chan.state {
            State::Interdomain { remote, remote_port } => self.evtchn_set_pending(remote, remote_port),
            State::Ipi => self.evtchn_set_pending(me, port),
            // Nobody listens yet: dropped, as on Xen.
            State::Unbound { .. } => {}
            _ => return Err(Errno::EINVAL),
        }
        ret(0)
    }

    /// Close a port; the other end of an interdomain channel goes back to
    /// waiting for this domain (Xen's `evtchn_close`).
    pub(crate) fn evtchn_close(&mut self, d: DomId, port: u32) -> Result<(), Errno> {
        let chan = self.domains.get(&d).and_then(|dd| dd.evtchn.get(port)).copied().ok_or(Errno::EINVAL)?;
        match chan.state {
            State::Free | State::Reserved => return Err(Errno::EINVAL),
            State::Virq(virq) => {
                // The binding lives on the vCPU it was bound on, which
                // `bind_vcpu` does not change (it moves notify_vcpu only):
                // clear it wherever it is, as Xen's evtchn_close does.
                for vc in self.domains.get_mut(&d).map_or(&mut [][..], |dd| &mut dd.vcpus[..]) {
                    if let Some(slot) = vc.virq_to_evtchn.get_mut(virq as usize).filter(|s| **s == port) {
                        *slot = 0;
                    }
                }
            }
            State::Interdomain { remote, remote_port } => {
                if let Some(rc) = self.domains.get_mut(&remote).and_then(|rd| rd.evtchn.get_mut(remote_port)) {
                    if rc.state == (State::Interdomain { remote: d, remote_port: port }) {
                        rc.state = State::Unbound { remote: d };
                    }
                }
            }
            State::Unbound { .. } | State::Ipi => {}
        }
        self.clear_pending(d, port);
        if let Some(c) = self.domains.get_mut(&d).and_then(|dd| dd.evtchn.get_mut(port)) {
            c.state = State::Free;
            c.notify_vcpu = 0;
        }
        Ok(())
    }

    /// Close every port (EVTCHNOP_reset, and domain destruction).
    pub fn evtchn_reset(&mut self, d: DomId) {
        let ports: alloc::vec::Vec<u32> = self.domains.get(&d).map_or(alloc::vec::Vec::new(), |dd| dd.evtchn.in_use().map(|(p, _)| p).collect());
        for p in ports {
            let _ = self.evtchn_close(d, p);
        }
        // Back to the 2-level ABI, as Xen's evtchn_reset.
        self.fifo_destroy(d);
    }

    fn evtchn_unmask(&mut self, d: DomId, port: u32) -> Result<(), Errno> {
        let chan = self.domains[&d].evtchn.get(port).copied().ok_or(Errno::EINVAL)?;
        if self.domains[&d].fifo.is_some() {
            self.fifo_unmask(d, port);
            return Ok(());
        }
        let (w, bit) = ((port / 64) as usize, 1u64 << (port % 64));
        let si = self.domains[&d].shared_info.shared_info(&self.platform);
        let mask = si.evtchn_mask(w);
        si.set_evtchn_mask(w, mask & !bit);
        // An event that arrived while masked is announced now.
        if mask & bit != 0 && self.port_pending(d, port) {
            self.mark_events_pending(d, chan.notify_vcpu, w);
        }
        Ok(())
    }

    fn evtchn_status(&mut self, arg: u64, b: &[u8; 24]) -> HcResult {
        let dom = self.target_domain(u16::from_le_bytes([b[0], b[1]]))?;
        let port = u32::from_le_bytes(b[4..8].try_into().unwrap_or([0; 4]));
        let chan = self.domains[&dom].evtchn.get(port).copied().ok_or(Errno::EINVAL)?;
        let (status, u0, u1) = match chan.state {
            State::Free | State::Reserved => (EVTCHNSTAT_closed, 0, 0),
            State::Unbound { remote } => (EVTCHNSTAT_unbound, remote.0 as u32, 0),
            State::Interdomain { remote, remote_port } => (EVTCHNSTAT_interdomain, remote.0 as u32, remote_port),
            State::Virq(v) => (EVTCHNSTAT_virq, v, 0),
            State::Ipi => (EVTCHNSTAT_ipi, 0, 0),
        };
        let g = self.guest_mem().ok_or(Errno::ESRCH)?;
        let mut out = [0u8; 16];
        out[0..4].copy_from_slice(&status.to_le_bytes());
        out[4..8].copy_from_slice(&chan.notify_vcpu.to_le_bytes());
        out[8..12].copy_from_slice(&u0.to_le_bytes());
        out[12..16].copy_from_slice(&u1.to_le_bytes());
        g.copy_to_guest(arg.wrapping_add(8), &out)?;
        ret(0)
    }
}
