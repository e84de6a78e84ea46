//! `vcpu_op`: bring further vCPUs up and down, and report their run state.

use alloc::vec;
use core::mem::offset_of;

use super::{ret, HcResult};
use crate::domain::DomId;
use crate::mm::pte::{guest_range_ok, is_canonical};
use crate::mm::{Mfn, PageType};
use crate::platform::Platform;
use crate::regs::{GuestRegs, RFLAGS_IF};
use crate::vcpu::{FpuState, RunState};
use crate::xen::Xen;
use hypercall_abi::arch::*;
use hypercall_abi::errno::Errno;
use hypercall_abi::vcpu::*;

/// Little-endian fields of a guest structure copied in as bytes.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u64(&self, off: usize) -> u64 {
        u64::from_le_bytes(self.0[off..off + 8].try_into().unwrap_or([0; 8]))
    }
    fn u16(&self, off: usize) -> u16 {
        u16::from_le_bytes([self.0[off], self.0[off + 1]])
    }
}

impl<P: Platform> Xen<P> {
    pub(super) fn do_vcpu_op(&mut self, [cmd, vcpuid, arg, ..]: [u64; 5]) -> HcResult {
        let d = self.current_id()?;
        let nr = self.domains[&d].vcpus.len() as u64;
        if vcpuid >= nr {
            return Err(Errno::ENOENT);
        }
        let v = vcpuid as usize;
        match cmd as u32 {
            VCPUOP_initialise => {
                if self.domains[&d].vcpus[v].initialised {
                    return Err(Errno::EEXIST);
                }
                let mut raw = vec![0u8; core::mem::size_of::<VcpuGuestContext>()];
                self.guest_mem().ok_or(Errno::ESRCH)?.copy_from_guest(arg, &mut raw)?;
                self.initialise_vcpu(d, v, &raw)?;
                ret(0)
            }
            VCPUOP_up => {
                let vc = &mut self.domains.get_mut(&d).ok_or(Errno::ESRCH)?.vcpus[v];
                if !vc.initialised {
                    return Err(Errno::EINVAL);
                }
                if vc.state == RunState::Down {
                    self.set_runstate(d, v, RunState::Runnable);
                }
                ret(0)
            }
            VCPUOP_down => {
                self.set_runstate(d, v, RunState::Down);
                ret(0)
            }
            VCPUOP_is_up => ret((self.domains[&d].vcpus[v].state != RunState::Down) as i64),
            VCPUOP_register_vcpu_info => {
                let g = self.guest_mem().ok_or(Errno::ESRCH)?;
                let mfn = g.read_u64(arg)?;
                let offset = g.read_u32(arg.wrapping_add(8))? as u64;
                self.register_vcpu_info(d, v, mfn, offset)?;
                ret(0)
            }
            VCPUOP_register_runstate_memory_area => {
                let addr = self.guest_mem().ok_or(Errno::ESRCH)?.read_u64(arg)?;
                self.register_runstate_area(d, v, addr)?;
                ret(0)
            }
            VCPUOP_get_runstate_info => {
                let r = self.runstate_now(d, v);
                let mut b = [0u8; 48];
                b[0..4].copy_from_slice(&r.state.to_le_bytes());
                b[8..16].copy_from_slice(&r.entry_time.to_le_bytes());
                for (i, t) in r.time.iter().enumerate() {
                    b[16 + 8 * i..24 + 8 * i].copy_from_slice(&t.to_le_bytes());
                }
                self.guest_mem().ok_or(Errno::ESRCH)?.copy_to_guest(arg, &b)?;
                ret(0)
            }
            VCPUOP_set_singleshot_timer => {
                if self.current != Some((d, v)) {
                    return Err(Errno::EINVAL);
                }
                let g = self.guest_mem().ok_or(Errno::ESRCH)?;
                let deadline = g.read_u64(arg)?;
                // The flags word must be readable; VCPU_SSHOTTMR_future in
                // it is, as in Xen 4.17, ignored: a past deadline fires at once.
                g.read_u32(arg.wrapping_add(8))?;
                self.set_vcpu_timer(d, v, deadline.max(1));
                ret(0)
            }
            VCPUOP_stop_singleshot_timer => {
                if self.current != Some((d, v)) {
                    return Err(Errno::EINVAL);
                }
                self.set_vcpu_timer(d, v, 0);
                ret(0)
            }
            VCPUOP_set_periodic_timer => {
                let period = self.guest_mem().ok_or(Errno::ESRCH)?.read_u64(arg)?;
                // As Xen: at least 1 ms, at most STIME_DELTA_MAX (so the
                // next deadline cannot wrap).
                if period < 1_000_000 || period > i64::MAX as u64 {
                    return Err(Errno::EINVAL);
                }
                let now = self.platform.now_ns();
                self.domains.get_mut(&d).ok_or(Errno::ESRCH)?.vcpus[v].periodic = Some((period, now.saturating_add(period)));
                ret(0)
            }
            VCPUOP_stop_periodic_timer => {
                self.domains.get_mut(&d).ok_or(Errno::ESRCH)?.vcpus[v].periodic = None;
                ret(0)
            }
            _ => Err(Errno::ENOSYS),
        }
    }

    /// Xen's `arch_set_info_guest` for a 64-bit PV vCPU that is down: every
    /// value is checked before any is taken.
    pub(crate) fn initialise_vcpu(&mut self, d: DomId, v: usize, raw: &[u8]) -> Result<(), Errno> {
        let c = Bytes(raw);
        let ur = offset_of!(VcpuGuestContext, user_regs);
        let reg = |f: usize| c.u64(ur + f);
        let flags = c.u64(offset_of!(VcpuGuestContext, flags));
        let rip = reg(offset_of!(CpuUserRegs, rip));
        let cs = c.u16(ur + offset_of!(CpuUserRegs, cs));
        let ss = c.u16(ur + offset_of!(CpuUserRegs, ss));
        let kernel_sp = c.u64(offset_of!(VcpuGuestContext, kernel_sp));
        let kernel_ss = c.u64(offset_of!(VcpuGuestContext, kernel_ss)) as u16;
        let cb = |f: usize| c.u64(f);
        let event = cb(offset_of!(VcpuGuestContext, event_callback_eip));
        let failsafe = cb(offset_of!(VcpuGuestContext, failsafe_callback_eip));
        let syscall = cb(offset_of!(VcpuGuestContext, syscall_callback_eip));
        let fs = c.u64(offset_of!(VcpuGuestContext, fs_base));
        let gs_kernel = c.u64(offset_of!(VcpuGuestContext, gs_base_kernel));
        let gs_user = c.u64(offset_of!(VcpuGuestContext, gs_base_user));
        let cr3 = c.u64(offset_of!(VcpuGuestContext, ctrlreg) + 3 * 8);
        let user_cr3 = c.u64(offset_of!(VcpuGuestContext, ctrlreg) + 8);
        let in_kernel = flags & VGCF_in_kernel != 0;
        let gdt_ents = c.u64(offset_of!(VcpuGuestContext, gdt_ents));
        let gdt_frames: [u64; 16] = core::array::from_fn(|i| c.u64(offset_of!(VcpuGuestContext, gdt_frames) + 8 * i));

        let entry_ok = |a: u64| a == 0 || Self::entry_point_ok(a);
        let traps_ok = (0..256).all(|i| entry_ok(c.u64(offset_of!(VcpuGuestContext, trap_ctxt) + 16 * i + 8)));
        // Xen's arch_set_info_guest: RIP and RSP canonical (an `iretq` to a
        // non-canonical RIP would fault in ring 0).
        if !is_canonical(rip)
            || !is_canonical(reg(offset_of!(CpuUserRegs, rsp)))
            || ![event, failsafe, syscall].into_iter().all(entry_ok)
            || !traps_ok
            || ![fs, gs_kernel, gs_user].into_iter().all(is_canonical)
            || (kernel_sp != 0 && !guest_range_ok(kernel_sp.wrapping_sub(8), 8))
            || (!in_kernel && user_cr3 == 0)
        {
            return Err(Errno::EINVAL);
        }
        // Page tables (xen_cr3_to_pfn: on x86-64 the frame is cr3 >> 12).
        let l4 = Mfn(xen_cr3_to_pfn(cr3));
        self.mm().get_page_and_type(l4, d, PageType::L4)?;
        let user = if user_cr3 != 0 {
            let u = Mfn(xen_cr3_to_pfn(user_cr3));
            if let Err(e) = self.mm().get_page_and_type(u, d, PageType::L4) {
                self.mm().put_page_and_type(l4);
                return Err(e);
            }
            Some(u)
        } else {
            None
        };
        let undo = |x: &mut Self| {
            x.mm().put_page_and_type(l4);
            if let Some(u) = user {
                x.mm().put_page_and_type(u);
            }
        };
        if let Err(e) = self.set_gdt(d, v, &gdt_frames, gdt_ents) {
            undo(self);
            return Err(e);
        }
        // Selectors are not checked here: Xen only forces their RPL (as
        // below) and a null or unloadable one makes the vCPU's first return
        // to the guest fault, which `resume` turns into the guest's #GP
        // (XTF's XSA-296 test initialises a vCPU with all selectors zero and
        // expects success).

        let vc = &mut self.domains.get_mut(&d).ok_or(Errno::ESRCH)?.vcpus[v];
        vc.regs = GuestRegs {
            r15: reg(0),
            r14: reg(8),
            r13: reg(16),
            r12: reg(24),
            rbp: reg(32),
            rbx: reg(40),
            r11: reg(48),
            r10: reg(56),
            r9: reg(64),
            r8: reg(72),
            rax: reg(80),
            rcx: reg(88),
            rdx: reg(96),
            rsi: reg(104),
            rdi: reg(112),
            entry_vector: 0,
            error_code: 0,
            rip,
            cs: cs as u64 | 3,
            rflags: reg(offset_of!(CpuUserRegs, rflags)) | RFLAGS_IF,
            rsp: reg(offset_of!(CpuUserRegs, rsp)),
            ss: ss as u64 | 3,
        };
        for i in 0..256 {
            let o = offset_of!(VcpuGuestContext, trap_ctxt) + 16 * i;
            vc.traps[i] = TrapInfo { vector: raw[o], flags: raw[o + 1], cs: c.u16(o + 2), _pad: 0, address: c.u64(o + 8) };
        }
        vc.callbacks.event = event;
        vc.callbacks.failsafe = failsafe;
        vc.callbacks.syscall = syscall;
        vc.callbacks.syscall_masks_events = flags & VGCF_syscall_disables_events != 0;
        vc.callbacks.failsafe_masks_events = flags & VGCF_failsafe_disables_events != 0;
        vc.kernel_sp = kernel_sp;
        vc.kernel_ss = kernel_ss | 3;
        vc.segs.fs = fs;
        vc.segs.gs_kernel = gs_kernel;
        vc.segs.gs_user = gs_user;
        vc.kernel_mode = in_kernel;
        vc.cr3 = l4;
        vc.user_cr3 = user;
        if flags & VGCF_i387_valid != 0 {
            vc.fpu.0.copy_from_slice(&raw[..512]);
            // A guest-supplied MXCSR with reserved bits would make fxrstor
            // fault in ring 0: keep only the architectural bits.
            use crate::vcpu::FXSAVE_MXCSR as M;
            let mx = u32::from_le_bytes([raw[M], raw[M + 1], raw[M + 2], raw[M + 3]]) & 0xffff;
            vc.fpu.0[M..M + 4].copy_from_slice(&mx.to_le_bytes());
        } else {
            *vc.fpu = FpuState::default();
        }
        vc.initialised = true;
        Ok(())
    }
}
