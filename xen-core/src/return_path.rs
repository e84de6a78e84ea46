//! The last decisions before a guest runs again (Xen's `restore_all_guest`
//! in `xen/arch/x86/x86_64/entry.S`).
//!
//! Every return to a guest ends in `iretq` (there is no `sysretq` fast
//! path), and `iretq` checks the return RIP *in ring 0*: a non-canonical
//! one raises #GP with the hypervisor's own frame (XSA-7's class; `sysretq`
//! is worse, it faults in ring 0 on the guest's stack). A guest reaches one
//! easily: a `syscall` in the last two bytes below 0x0000800000000000 leaves
//! RCX = 0x0000800000000000, and every entry that returns to "the next
//! instruction" returns there. So the frame is checked here, after the
//! event upcall (which would replace RIP) and before the CPU sees it.
//!
//! Unloadable CS or SS selectors (a guest's `iret` to a selector its GDT
//! does not hold, or a GDT changed under a loaded one) are the same story:
//! the guest gets #GP with the selector as the error code, as Xen's `iretq`
//! fault gives it.
//!
//! What the guest then gets is Xen's answer: Xen returns through `iretq`
//! when RIP is not canonical, and the `iretq` fault's fixup turns it into a
//! #GP (error code 0) for the guest, reported at the non-canonical RIP
//! (`.Lft0` and its pre-exception table entry). Here the #GP is delivered
//! without letting the CPU fault: with no #GP handler the domain dies,
//! alone, as for any unhandled exception.
//!
//! The same place decides the TLB flush a vCPU switch needs (invariant 7):
//! guest kernels may set `_PAGE_GLOBAL` while CR4.PGE is on (the hypervisor's
//! own mappings need it), and a CR3 load keeps global entries. Xen 4.17 runs
//! PV guests with PGE on (`pv_make_cr4`, no XPTI/PCID) and its context
//! switch loads the new page tables with `switch_cr3_cr4`, which clears
//! CR4.PGE first, so every vCPU switch drops every global entry; a switch
//! between a vCPU's kernel and user tables (`toggle_guest_pt`) keeps them.
//! xen-core does the same: [`Next::Resume`]'s `flush_global` is set when the
//! vCPU about to run is not the one whose tables the CPU last ran.

use crate::mm::pte::is_canonical;
use crate::platform::Platform;
use crate::regs::GuestRegs;
use crate::traps::TRAP_GP_FAULT;
use crate::xen::{Next, Xen};

/// The fault `iretq` would raise in ring 0 for this frame, as the error
/// code of a #GP: `Some(0)` for a non-canonical return RIP. Selectors are
/// checked separately against the vCPU's descriptor tables.
pub fn iret_fault(frame: &GuestRegs) -> Option<u64> {
    (!is_canonical(frame.rip)).then_some(0)
}

impl<P: Platform> Xen<P> {
    /// The current vCPU is about to run `frame`: a frame `iretq` would
    /// fault on becomes the #GP Xen gives the guest (delivered through its
    /// trap table, or the domain crashes). `None`: the frame is fine.
    pub(crate) fn return_fault(&mut self, frame: &mut GuestRegs) -> Option<Next> {
        let error_code = iret_fault(frame)?;
        let (d, v) = self.current?;
        crate::gdprintk!("d{}v{}: return to non-canonical rip {:#x}: #GP", d.0, v, frame.rip);
        frame.entry_vector = TRAP_GP_FAULT;
        frame.error_code = error_code;
        Some(self.guest_exception(frame, 0))
    }

    /// The frame's CS and SS are looked up in the vCPU's GDT (which the
    /// guest may have changed since it loaded them). One `iretq` would
    /// refuse becomes the #GP Xen's `iretq` fixup gives the guest: error
    /// code the selector with its RPL bits cleared, CS checked first (seen
    /// on Xen 4.17: CS 0x1230 gives #GP(0x1230)). `None`: both load.
    pub(crate) fn return_selector_fault(&mut self, frame: &mut GuestRegs) -> Option<Next> {
        use crate::descriptor::SegKind;
        let (d, v) = self.current?;
        let bad = if !self.selector_ok_for(d, v, frame.cs as u16, SegKind::Code) {
            frame.cs
        } else if !self.selector_ok_for(d, v, frame.ss as u16, SegKind::Stack) {
            frame.ss
        } else {
            return None;
        };
        crate::gdprintk!("d{}v{}: return to selectors {:#x}/{:#x}: #GP({:#x})", d.0, v, frame.cs, frame.ss, bad & 0xfffc);
        frame.entry_vector = TRAP_GP_FAULT;
        frame.error_code = bad & 0xfffc;
        Some(self.guest_exception(frame, 0))
    }

    /// Whether switching the CPU to (`d`, `v`)'s page tables must drop
    /// global TLB entries, and remember that they are now loaded.
    pub(crate) fn switching_tlb_to(&mut self, d: crate::domain::DomId, v: usize) -> bool {
        let other = self.tlb_vcpu != Some((d, v));
        self.tlb_vcpu = Some((d, v));
        other
    }
}
