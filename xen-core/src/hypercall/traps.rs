//! `set_trap_table` and `iret`: the guest kernel's virtual IDT, and the way
//! back from its handlers.

use super::{ret, Done, HcResult};
use crate::platform::Platform;
use crate::regs::*;
use crate::xen::{Next, Xen};
use hypercall_abi::arch::{IretContext, TrapInfo, VGCF_in_syscall};
use hypercall_abi::errno::Errno;

/// Trap-table entries read per entry into the hypervisor.
const BUDGET: u64 = 256;

impl<P: Platform> Xen<P> {
    /// `set_trap_table(traps)`: entries until one with address 0; a null
    /// pointer clears the table.
    pub(super) fn do_set_trap_table(&mut self, [traps, ..]: [u64; 5]) -> HcResult {
        let (d, v) = self.current.ok_or(Errno::ESRCH)?;
        if traps == 0 {
            if let Some(vc) = self.domains.get_mut(&d).and_then(|d| d.vcpus.get_mut(v)) {
                *vc.traps = [TrapInfo::default(); 256];
            }
            return ret(0);
        }
        for i in 0..BUDGET {
            let at = traps.wrapping_add(16 * i);
            let mut b = [0u8; 16];
            self.guest_mem().ok_or(Errno::ESRCH)?.copy_from_guest(at, &mut b)?;
            let address = u64::from_le_bytes(b[8..16].try_into().unwrap_or([0; 8]));
            if address == 0 {
                return ret(0);
            }
            if !Self::entry_point_ok(address) {
                crate::gdprintk!("d{}: trap {} handler {:#x} refused", d.0, b[0], address);
                return Err(Errno::EINVAL);
            }
            let ti = TrapInfo { vector: b[0], flags: b[1], cs: u16::from_le_bytes([b[2], b[3]]), _pad: 0, address };
            if let Some(vc) = self.domains.get_mut(&d).and_then(|d| d.vcpus.get_mut(v)) {
                vc.traps[ti.vector as usize] = ti;
            }
        }
        Ok(Done::Continue([traps.wrapping_add(16 * BUDGET), 0, 0, 0, 0]))
    }

    /// `iret`: the guest left `struct iret_context` {rax, r11, rcx, flags,
    /// rip, cs, rflags, rsp, ss} on its stack and jumped to the hypercall
    /// page, which pushed rcx, r11 and rax on top. Everything in it is
    /// checked before the CPU sees it: an unloadable selector would make
    /// `iretq` fault in ring 0 (a non-canonical RIP too: see `return_path`).
    pub(crate) fn do_iret(&mut self, regs: &mut GuestRegs) -> Next {
        let Some((d, v)) = self.current else { return Next::Idle };
        let mut raw = [0u8; IretContext::SIZE];
        let read = self.guest_mem().map(|g| g.copy_from_guest(regs.rsp, &mut raw));
        if read != Some(Ok(())) {
            crate::error!("d{}v{}: fault reading the iret context at {:#x}", d.0, v, regs.rsp);
            return self.crash_domain_at(regs);
        }
        let IretContext { rax, r11, rcx, flags, rip, cs, rflags, rsp, ss } = IretContext::from_bytes(&raw);
        let to_user = cs & 3 == 3;
        // Neither a non-canonical RIP nor an unloadable selector is refused
        // here: as on Xen, where `iretq` itself faults, the return path
        // gives the guest #GP for them (`return_path`).
        if to_user {
            let vc = &self.domains[&d].vcpus[v];
            if vc.user_cr3.is_none() {
                crate::error!("d{}v{}: switching to user mode with no user page tables", d.0, v);
                return self.crash_domain_at(regs);
            }
            if vc.kernel_mode {
                self.toggle_guest_mode();
            }
        }
        regs.rax = rax;
        if flags & VGCF_in_syscall != 0 {
            // The sysret-style return: rcx and r11 are clobbered, as sysret
            // itself would leave them.
            regs.rcx = rip;
            regs.r11 = rflags;
        } else {
            regs.rcx = rcx;
            regs.r11 = r11;
        }
        regs.rip = rip;
        regs.cs = cs | 3;
        regs.rflags = (rflags & !(RFLAGS_IOPL | RFLAGS_VM)) | RFLAGS_IF;
        regs.rsp = rsp;
        regs.ss = ss | 3;
        // The event mask follows the IF the guest returned with.
        if let Some(vi) = self.vcpu_info_of(d, v) {
            vi.set_upcall_mask(rflags & RFLAGS_IF == 0);
        }
        self.schedule(regs)
    }

    fn crash_domain_at(&mut self, regs: &mut GuestRegs) -> Next {
        let Some((d, v)) = self.current else { return Next::Idle };
        crate::error!("Domain {} (vcpu#{}) crashed on cpu#0:", d.0, v);
        crate::traps::dump_guest_regs(regs);
        self.domain_crash(d);
        self.schedule(regs)
    }
}
