//! The small per-vCPU hypercalls: `stack_switch`, `fpu_taskswitch`,
//! `set_segment_base`, `set_debugreg`/`get_debugreg`, `vm_assist`.

use super::{ret, HcResult};
use crate::descriptor::SegKind;
use crate::mm::pte::{guest_range_ok, is_canonical};
use crate::platform::Platform;
use crate::vcpu::Vcpu;
use crate::xen::Xen;
use hypercall_abi::arch::*;
use hypercall_abi::errno::Errno;

/// `vm_assist` types accepted. On 64-bit PV the segment and PAE assists have
/// nothing to do; `writable_pagetables` turns on the emulation of writes to
/// the guest's own L1 tables (`emulate::ptwr`); `m2p_strict` is not
/// implemented and is refused rather than pretended.
const VM_ASSIST_VALID: u64 = (1 << VMASST_TYPE_4gb_segments)
    | (1 << VMASST_TYPE_writable_pagetables)
    | (1 << VMASST_TYPE_4gb_segments_notify)
    | (1 << VMASST_TYPE_pae_extended_cr3)
    | (1 << VMASST_TYPE_architectural_iopl)
    | (1 << VMASST_TYPE_runstate_update_flag);

const DR7_RESERVED_ZERO: u64 = (1 << 11) | (1 << 12) | (1 << 14) | (1 << 15);
const DR7_RESERVED_ONE: u64 = 1 << 10;
const DR7_GENERAL_DETECT: u64 = 1 << 13;
const DR6_RESERVED_ONE: u64 = 0xffff_0ff0;

impl<P: Platform> Xen<P> {
    pub(crate) fn current_vcpu_mut(&mut self) -> Result<&mut Vcpu, Errno> {
        let (d, v) = self.current.ok_or(Errno::ESRCH)?;
        self.domains.get_mut(&d).and_then(|d| d.vcpus.get_mut(v)).ok_or(Errno::ESRCH)
    }

    /// `stack_switch(ss, sp)`: the kernel stack used when an exception or a
    /// system call arrives from user mode. Xen accepts any value and crashes
    /// the guest when it later proves unusable; xen-core refuses a stack in
    /// the hypervisor's range or a non-canonical one at once (`-EINVAL`).
    pub(super) fn do_stack_switch(&mut self, [ss, sp, ..]: [u64; 5]) -> HcResult {
        let (d, v) = self.current.ok_or(Errno::ESRCH)?;
        if !self.selector_ok_for(d, v, ss as u16, SegKind::Stack) || !guest_range_ok(sp.wrapping_sub(8), 8) {
            return Err(Errno::EINVAL);
        }
        let vc = self.current_vcpu_mut()?;
        vc.kernel_ss = ss as u16 | 3;
        vc.kernel_sp = sp;
        ret(0)
    }

    /// `fpu_taskswitch(set)`: the guest's CR0.TS. While set, its next FPU or
    /// SSE instruction raises #NM, delivered to its handler.
    pub(super) fn do_fpu_taskswitch(&mut self, [set, ..]: [u64; 5]) -> HcResult {
        let ts = set != 0;
        self.current_vcpu_mut()?.fpu_ts = ts;
        self.platform.set_guest_ts(ts);
        ret(0)
    }

    pub(super) fn do_set_segment_base(&mut self, [which, base, ..]: [u64; 5]) -> HcResult {
        let (d, v) = self.current.ok_or(Errno::ESRCH)?;
        // Hypercalls come from kernel mode: GS is the kernel's, the shadow
        // GS the user's.
        let (mut fs, mut gs, mut shadow) = self.platform.read_segment_bases();
        match which as u32 {
            SEGBASE_FS | SEGBASE_GS_USER | SEGBASE_GS_KERNEL => {
                if !is_canonical(base) {
                    return Err(Errno::EINVAL);
                }
                match which as u32 {
                    SEGBASE_FS => fs = base,
                    SEGBASE_GS_USER => shadow = base,
                    _ => gs = base,
                }
                self.platform.load_segment_bases(fs, gs, shadow);
            }
            SEGBASE_GS_USER_SEL => {
                let sel = base as u16;
                if base > 0xffff || !self.selector_ok_for(d, v, sel, SegKind::Data) {
                    return Err(Errno::EINVAL);
                }
                shadow = self.platform.load_user_gs_selector(sel);
            }
            _ => return Err(Errno::EINVAL),
        }
        let vc = self.current_vcpu_mut()?;
        vc.segs.fs = fs;
        vc.segs.gs_kernel = gs;
        vc.segs.gs_user = shadow;
        ret(0)
    }

    /// `set_debugreg(reg, value)`, with Xen's checks: breakpoint addresses in
    /// the guest's own range (`-EPERM` otherwise), no reserved bits, no
    /// general-detect, no I/O breakpoints.
    /// DR4 and DR5 are DR6 and DR7 (a PV guest's CR4.DE is clear), as in
    /// Xen's `set_debugreg`/`x86emul_read_dr` and our `mov %drN` emulation.
    pub(crate) fn do_set_debugreg(&mut self, [reg, value, ..]: [u64; 5]) -> HcResult {
        let reg = match reg {
            4 => 6,
            5 => 7,
            r => r,
        };
        let value = match reg {
            0..=3 => {
                // Xen's access_ok() on the start only: below the canonical
                // hole or above its own slots (the top page included).
                if !(value < 1 << 47 || value >= HYPERVISOR_VIRT_END) {
                    return Err(Errno::EPERM);
                }
                value
            }
            6 => {
                if value >> 32 != 0 {
                    return Err(Errno::EINVAL);
                }
                value | DR6_RESERVED_ONE
            }
            7 => {
                if value >> 32 != 0 {
                    return Err(Errno::EINVAL);
                }
                if value & DR7_GENERAL_DETECT != 0 {
                    return Err(Errno::EPERM);
                }
                for bp in 0..4 {
                    let enabled = (value >> (2 * bp)) & 3 != 0;
                    let rw = (value >> (16 + 4 * bp)) & 3;
                    if enabled && rw == 2 {
                        return Err(Errno::EPERM);
                    }
                }
                (value & !DR7_RESERVED_ZERO) | DR7_RESERVED_ONE
            }
            // Anything past DR7: Xen's -ENODEV.
            _ => return Err(Errno::ENODEV),
        };
        let vc = self.current_vcpu_mut()?;
        vc.debugreg[reg as usize] = value;
        let dr = vc.debugreg;
        self.platform.load_debugregs(&dr);
        ret(0)
    }

    pub(super) fn do_get_debugreg(&mut self, [reg, ..]: [u64; 5]) -> HcResult {
        let reg = match reg {
            4 => 6,
            5 => 7,
            r => r,
        };
        match reg {
            0..=3 | 6 | 7 => ret(self.current_vcpu_mut()?.debugreg[reg as usize] as i64),
            _ => Err(Errno::ENODEV),
        }
    }

    pub(super) fn do_vm_assist(&mut self, [cmd, ty, ..]: [u64; 5]) -> HcResult {
        if ty >= 64 || VM_ASSIST_VALID & (1 << ty) == 0 {
            return Err(Errno::EINVAL);
        }
        let d = self.current_domain_mut().ok_or(Errno::ESRCH)?;
        match cmd as u32 {
            VMASST_CMD_enable => d.vm_assist |= 1 << ty,
            VMASST_CMD_disable => d.vm_assist &= !(1 << ty),
            _ => return Err(Errno::ENOSYS),
        }
        ret(0)
    }
}
