//! The privileged instructions other than port I/O that Xen emulates for a
//! PV kernel: `rdmsr`/`wrmsr` (policy in `msr`), `mov` to and from CR0, CR2,
//! CR3 and CR4, to and from debug registers (checks in `debugreg`), `clts`, `cli`/`sti` under the virtual IOPL, `wbinvd`, `hlt`.
//! All of them only from guest kernel mode (virtual ring 1), except
//! `cli`/`sti`, which follow the IOPL as on hardware (and do nothing).

use iced_x86::{Code, Instruction, Register};

use super::msr::*;
use super::{io, Emul};
use crate::domain::RunState;
use crate::mm::pte::is_canonical;
use crate::mm::Mfn;
use crate::platform::Platform;
use crate::regs::GuestRegs;
use crate::xen::Xen;

/// CR0 as a PV kernel reads it: PE, MP, ET, NE, WP, AM, PG, with its own
/// virtual TS.
const GUEST_CR0: u64 = 0x8005_0033;
const CR0_TS: u64 = 1 << 3;
/// CR4 bits the guest chooses (Xen's `PV_CR4_GUEST_MASK`: TSD, DE, FSGSBASE,
/// OSXSAVE) and those of Xen's it sees (`PV_CR4_GUEST_VISIBLE_MASK`: PAE,
/// MCE, OSFXSR, OSXMMEXCPT, set by the hypervisor).
const CR4_GUEST_MASK: u64 = (1 << 2) | (1 << 3) | (1 << 16) | (1 << 18);
const CR4_VISIBLE: u64 = (1 << 5) | (1 << 6) | (1 << 9) | (1 << 10);
/// Of the guest's bits, those xen-core honours: DE only (TSD, FSGSBASE and
/// OSXSAVE need CPU features PV guests are not offered).
const CR4_GUEST_ALLOWED: u64 = 1 << 3;

/// The 64-bit general-purpose register `r` in the frame (`mov` to and from
/// control and debug registers always names 64-bit registers in long mode).
fn gpr(regs: &mut GuestRegs, r: Register) -> Option<&mut u64> {
    super::reg_index(r, Register::RAX).map(|i| regs.gpr_mut(i))
}

impl<P: Platform> Xen<P> {
    pub(super) fn emulate_priv_op(&mut self, regs: &mut GuestRegs, insn: &Instruction) -> Emul {
        let Some((d, v)) = self.current else { return Emul::Refused };
        let Some(vc) = self.domains.get(&d).and_then(|dd| dd.vcpus.get(v)) else { return Emul::Refused };
        let (kernel, iopl_ok) = (vc.kernel_mode, io::iopl_ok(&vc.io, vc.kernel_mode));
        let ok = match insn.code() {
            // No-ops under a sufficient virtual IOPL, as Xen's
            // priv_op_validate: turning them into the event mask would
            // leave events masked for good after the usual `pushf; cli; ...
            // popf`, since `popf` cannot be trapped in ring 3.
            Code::Cli | Code::Sti if iopl_ok => true,
            _ if !kernel => false,
            Code::Mov_r64_dr | Code::Mov_dr_r64 => return self.emulate_mov_dr(regs, insn, d, v),
            Code::Rdmsr => self.rdmsr(regs, d, v),
            Code::Wrmsr => self.wrmsr(regs, d, v),
            Code::Mov_r64_cr => self.read_cr(regs, insn, d, v),
            Code::Mov_cr_r64 if insn.op0_register() == Register::CR3 => return self.write_cr3(regs, insn, d),
            Code::Mov_cr_r64 => self.write_cr(regs, insn, d, v),
            Code::Clts => {
                self.set_fpu_ts(d, v, false);
                true
            }
            Code::Wbinvd => {
                // Only a domain with devices may flush the caches (Xen's
                // cache_flush_permitted); for others it does nothing.
                if self.domains.get(&d).is_some_and(|dd| dd.privileged) {
                    self.platform.flush_cache();
                }
                true
            }
            Code::Hlt => {
                if !self.events_need_delivery_for(d, v) {
                    self.set_runstate(d, v, RunState::Blocked);
                }
                true
            }
            _ => false,
        };
        if ok {
            Emul::Done
        } else {
            Emul::Refused
        }
    }

    /// Whether the PV CPUID policy offers RDTSCP or RDPID (which own TSC_AUX).
    fn offers_tsc_aux(&self, d: crate::domain::DomId) -> bool {
        let guest = crate::cpuid::Guest { hardware_domain: d == crate::domain::DomId::DOM0 };
        let p = &self.platform;
        let cpuid = |l, s| crate::cpuid::pv_cpuid(l, s, guest, p.tsc_khz(), |a, b| p.cpuid(a, b));
        cpuid(0x8000_0001, 0)[3] & (1 << 27) != 0 || cpuid(7, 0)[2] & (1 << 22) != 0
    }

    fn set_fpu_ts(&mut self, d: crate::domain::DomId, v: usize, ts: bool) {
        if let Some(vc) = self.domains.get_mut(&d).and_then(|dd| dd.vcpus.get_mut(v)) {
            vc.fpu_ts = ts;
            self.platform.set_guest_ts(ts);
        }
    }

    fn rdmsr(&mut self, regs: &mut GuestRegs, d: crate::domain::DomId, v: usize) -> bool {
        let msr = regs.rcx as u32;
        let (fs, gs, shadow) = self.platform.read_segment_bases();
        let val = match msr {
            MSR_FS_BASE => fs,
            MSR_GS_BASE => gs,
            MSR_SHADOW_GS_BASE => shadow,
            MSR_IA32_TSC => self.platform.tsc_and_now().0,
            MSR_TSC_AUX if self.offers_tsc_aux(d) => self.domains[&d].vcpus[v].io.tsc_aux as u64,
            _ => match read_fixed(msr, v as u32) {
                Some(x) => x,
                None => {
                    crate::gdprintk!("d{}v{} RDMSR {:#010x} unimplemented", d.0, v, msr);
                    return false;
                }
            },
        };
        regs.rax = val & 0xffff_ffff;
        regs.rdx = val >> 32;
        true
    }

    fn wrmsr(&mut self, regs: &mut GuestRegs, d: crate::domain::DomId, v: usize) -> bool {
        let msr = regs.rcx as u32;
        let val = (regs.rdx << 32) | (regs.rax & 0xffff_ffff);
        match msr {
            MSR_FS_BASE | MSR_GS_BASE | MSR_SHADOW_GS_BASE => {
                if !is_canonical(val) {
                    return false;
                }
                let (mut fs, mut gs, mut shadow) = self.platform.read_segment_bases();
                match msr {
                    MSR_FS_BASE => fs = val,
                    MSR_GS_BASE => gs = val,
                    _ => shadow = val,
                }
                self.platform.load_segment_bases(fs, gs, shadow);
                // Kernel mode: GS is the kernel's, the shadow the user's.
                if let Some(vc) = self.domains.get_mut(&d).and_then(|dd| dd.vcpus.get_mut(v)) {
                    vc.segs.fs = fs;
                    vc.segs.gs_kernel = gs;
                    vc.segs.gs_user = shadow;
                }
                true
            }
            // Xen: only with RDTSCP or RDPID offered, and 32 bits.
            MSR_TSC_AUX if self.offers_tsc_aux(d) && val >> 32 == 0 => {
                if let Some(vc) = self.domains.get_mut(&d).and_then(|dd| dd.vcpus.get_mut(v)) {
                    vc.io.tsc_aux = val as u32;
                }
                true
            }
            _ if write_fixed(msr, val) => true,
            _ => {
                crate::gdprintk!("d{}v{} WRMSR {:#010x} val {:#018x} unimplemented", d.0, v, msr, val);
                false
            }
        }
    }

    fn read_cr(&mut self, regs: &mut GuestRegs, insn: &Instruction, d: crate::domain::DomId, v: usize) -> bool {
        let Some(vc) = self.domains.get(&d).and_then(|dd| dd.vcpus.get(v)) else { return false };
        let val = match insn.op1_register() {
            Register::CR0 => GUEST_CR0 | if vc.fpu_ts { CR0_TS } else { 0 },
            Register::CR2 => {
                self.vcpu_info_of(d, v).map_or(0, |vi| vi.cr2())
            }
            // An unmodified PV guest's CR3 holds a machine frame number.
            Register::CR3 => vc.cr3.0 << 12,
            Register::CR4 => CR4_VISIBLE | (vc.io.cr4 & CR4_GUEST_MASK),
            _ => return false,
        };
        match gpr(regs, insn.op0_register()) {
            Some(r) => {
                *r = val;
                true
            }
            None => false,
        }
    }

    /// `mov` to CR3: a new top-level table, validated and referenced as
    /// `MMUEXT_NEW_BASEPTR` does; a bad one is the guest's #GP. Validation
    /// gets the work budget of one entry into the hypervisor, as in a
    /// hypercall (XSA-45); when it runs out the instruction runs again
    /// (Xen's `write_cr`: `-ERESTART` from `new_guest_cr3` is
    /// `X86EMUL_RETRY`), and the validation goes on from the progress kept
    /// in the frames. Table entries the domain left to drop go first, as
    /// on a hypercall.
    fn write_cr3(&mut self, regs: &mut GuestRegs, insn: &Instruction, d: crate::domain::DomId) -> Emul {
        let Some(val) = gpr(regs, insn.op1_register()).map(|r| *r) else { return Emul::Refused };
        self.frames.budget = Some(crate::hypercall::PT_WORK_BUDGET);
        let rc = if self.frames.has_deferred(d) { self.mm().drain_deferred(d) } else { Ok(()) };
        let rc = rc.and_then(|()| self.new_guest_cr3(Mfn((val & 0x000f_ffff_ffff_f000) >> 12), false));
        self.frames.budget = None;
        match rc {
            Ok(()) => Emul::Done,
            Err(hypercall_abi::errno::Errno::ERESTART) => Emul::Again,
            Err(_) => Emul::Refused,
        }
    }

    fn write_cr(&mut self, regs: &mut GuestRegs, insn: &Instruction, d: crate::domain::DomId, v: usize) -> bool {
        let Some(val) = gpr(regs, insn.op1_register()).map(|r| *r) else { return false };
        match insn.op0_register() {
            Register::CR0 => {
                // Only TS may change (Xen: "Attempt to change unmodifiable CR0 flags").
                if (val ^ GUEST_CR0) & !CR0_TS != 0 {
                    crate::gdprintk!("d{}v{} attempt to change unmodifiable CR0 flags", d.0, v);
                    return false;
                }
                self.set_fpu_ts(d, v, val & CR0_TS != 0);
                true
            }
            Register::CR2 => {
                if let Some(vi) = self.vcpu_info_of(d, v) {
                    vi.set_cr2(val);
                }
                true
            }
            Register::CR4 => {
                if let Some(vc) = self.domains.get_mut(&d).and_then(|dd| dd.vcpus.get_mut(v)) {
                    vc.io.cr4 = val & CR4_GUEST_ALLOWED;
                }
                true
            }
            _ => false,
        }
    }
}
