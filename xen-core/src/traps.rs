//! Exceptions raised by guests, and how they reach the guest kernel.
//!
//! A PV kernel owns no IDT: it registers a virtual one (`set_trap_table`)
//! and the hypervisor delivers each exception by building the frame the
//! kernel's handler expects on the kernel's stack (Xen's
//! `create_bounce_frame`): from low to high addresses
//! `RCX, R11, [error code,] RIP, CS, RFLAGS, RSP, SS`, 16-byte aligned. CS
//! carries the event mask the vCPU had in bits 32-39, and RPL 0 if the vCPU
//! was in kernel mode (RPL 3: it came from user mode, and `iret` returns
//! there); RFLAGS.IF reflects the event mask. An exception with no handler,
//! or a frame that cannot be written, crashes the domain, alone.

use crate::guest_access::GuestMem;
use crate::mm::pte::guest_range_ok;
use crate::platform::Platform;
use crate::regs::*;
use crate::xen::{Next, Xen};
use hypercall_abi::arch::{FLAT_KERNEL_CS64, FLAT_KERNEL_SS64};

pub const EXCEPTION_NAMES: [&str; 22] = [
    "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "#CSO", "#TS", "#NP", "#SS", "#GP", "#PF", "#15",
    "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
];

pub const TRAP_DEBUG: u64 = 1;
pub const TRAP_INVALID_OP: u64 = 6;
pub const TRAP_NO_DEVICE: u64 = 7;
pub const TRAP_GP_FAULT: u64 = 13;
pub const TRAP_PAGE_FAULT: u64 = 14;
/// Page-fault error code bit: the access came from user mode.
const PFEC_USER: u64 = 1 << 2;

pub fn exception_name(vector: u64) -> &'static str {
    EXCEPTION_NAMES.get(vector as usize).copied().unwrap_or("#??")
}

/// Exceptions that push an error code.
fn has_error_code(vector: u64) -> bool {
    matches!(vector, 8 | 10..=14 | 17 | 21 | 29 | 30)
}

/// What to deliver (Xen's `struct trap_bounce`).
#[derive(Clone, Copy, Debug)]
pub struct Bounce {
    pub rip: u64,
    pub error_code: Option<u64>,
    /// Mask events on entry (a trap entry with `TI_SET_IF`, or a callback
    /// registered with `CALLBACKF_mask_events`).
    pub mask_events: bool,
}

/// How far below the stack pointer a not-present kernel #PF still counts
/// as running off the stack: one page (a call or push, or the probes Rust
/// emits page by page for a large frame).
const STACK_GUARD_REACH: u64 = 4096 + 64;
/// Bit 0 of a #PF error code: the page was present (a protection fault).
const PFEC_PRESENT: u64 = 1;

impl<P: Platform> Xen<P> {
    /// A CPU exception from ring 3. `cr2` is the faulting address for #PF.
    pub fn guest_exception(&mut self, regs: &mut GuestRegs, cr2: u64) -> Next {
        let Some((dom, v)) = self.current else { return Next::Idle };
        let vector = regs.entry_vector;
        if matches!(vector, crate::machine_traps::TRAP_NMI | crate::machine_traps::TRAP_MACHINE_CHECK) {
            // The machine's, not the guest's: see `machine_traps`.
            return self.machine_trap(regs);
        }
        // Privileged instructions (port I/O, MSRs, control and debug registers) fault
        // with #GP(0) in ring 3: emulate those Xen emulates.
        if vector == TRAP_GP_FAULT && regs.error_code == 0 {
            if let Some(next) = self.emulate_privileged_op(regs) {
                return next;
            }
        }
        // A write to a present read-only page (not a fetch): perhaps one of
        // the guest's own L1 tables (Xen's ptwr).
        if vector == TRAP_PAGE_FAULT && regs.error_code & 0x13 == 0x3 {
            if let Some(next) = self.ptwr_emulate(regs, cr2) {
                return next;
            }
        }
        let Some(vc) = self.domains.get_mut(&dom).and_then(|d| d.vcpus.get_mut(v)) else { return Next::Idle };
        let kernel = vc.kernel_mode;
        let mut error_code = has_error_code(vector).then_some(regs.error_code);

        // `int N` against a gate of the wrong privilege arrives as #GP with
        // the vector in the error code: deliver it as that software
        // interrupt if the guest's trap table allows it (Xen's
        // permit_softint: DPL >= 1 from the kernel, 3 from user mode).
        if vector == TRAP_GP_FAULT && regs.error_code & 3 == 2 {
            let ti = vc.traps[(regs.error_code >> 3) as usize & 255];
            let needed = if kernel { 1 } else { 3 };
            if ti.address != 0 && ti.dpl() >= needed {
                regs.rip = regs.rip.wrapping_add(2);
                let b = Bounce { rip: ti.address, error_code: None, mask_events: ti.disables_events() };
                return self.deliver(regs, b);
            }
        }
        if vector == TRAP_INVALID_OP && self.forced_emulation(regs) {
            return self.schedule(regs);
        }
        let Some(vc) = self.domains.get_mut(&dom).and_then(|d| d.vcpus.get_mut(v)) else { return Next::Idle };
        match vector {
            TRAP_NO_DEVICE if !vc.fpu_ts => {
                // Our own CR0.TS with no virtual TS behind it cannot happen;
                // clear it and carry on rather than bother the guest.
                vc.fpu_ts = false;
                self.platform.set_guest_ts(false);
                return self.schedule(regs);
            }
            TRAP_NO_DEVICE => {
                // Delivering #NM clears the virtual TS, as Xen does.
                vc.fpu_ts = false;
                self.platform.set_guest_ts(false);
            }
            TRAP_DEBUG => {
                vc.debugreg[6] = crate::machine_traps::merge_dr6(vc.debugreg[6], self.platform.take_dr6());
            }
            TRAP_PAGE_FAULT => {
                // The guest kernel reads the address from vcpu_info.arch.cr2,
                // and learns from the error code which mode faulted (both run
                // in ring 3, so the CPU's U/S bit says nothing).
                error_code = Some(if kernel { regs.error_code & !PFEC_USER } else { regs.error_code | PFEC_USER });
                if let Some(vi) = self.vcpu_info_of(dom, v) {
                    vi.set_cr2(cr2);
                }
            }
            _ => {}
        }
        let vc = &self.domains[&dom].vcpus[v];
        let ti = vc.traps[vector as usize & 255];
        // A kernel-mode #PF on a page that is not present, close below the
        // stack pointer: the stack ran into the unmapped guard page below it
        // (pv-rt keeps one under each stack). Its frame cannot be pushed
        // there either; say what happened rather than only that the frame
        // could not be written.
        let overflow = vector == TRAP_PAGE_FAULT
            && kernel
            && regs.error_code & PFEC_PRESENT == 0
            && cr2 < regs.rsp.wrapping_add(64)
            && regs.rsp.wrapping_add(64) - cr2 <= STACK_GUARD_REACH;
        if vector < 32 && ti.address != 0 {
            let b = Bounce { rip: ti.address, error_code, mask_events: ti.disables_events() };
            if overflow {
                if !self.create_bounce_frame(regs, b) {
                    crate::error!(
                        "d{}v{} stack overflow: page fault at {:#x} just below the stack pointer {:#x} (rip {:#x}); no room for the exception frame",
                        dom.0, v, cr2, regs.rsp, regs.rip
                    );
                    return self.crash_current(regs);
                }
                return self.schedule(regs);
            }
            return self.deliver(regs, b);
        }
        if overflow {
            crate::error!("d{}v{} stack overflow: page fault at {:#x} just below the stack pointer {:#x}", dom.0, v, cr2, regs.rsp);
        }
        crate::error!(
            "d{}v{} unhandled exception: vector {} ({}) error code {:#06x} at rip {:#018x}{}",
            dom.0,
            v,
            vector,
            exception_name(vector),
            regs.error_code,
            regs.rip,
            if vector == TRAP_PAGE_FAULT { alloc::format!(" cr2 {cr2:#018x}") } else { alloc::string::String::new() }
        );
        self.crash_current(regs)
    }

    /// `int $0x80` through the IDT's DPL-3 gate (Xen's `int80_direct_trap`):
    /// straight to the guest's 0x80 handler, whatever that entry's DPL; with
    /// none, it becomes the #GP the instruction would raise through a DPL-0
    /// gate.
    pub fn guest_int80(&mut self, regs: &mut GuestRegs) -> Next {
        let Some((dom, v)) = self.current else { return Next::Idle };
        let ti = self.domains[&dom].vcpus[v].traps[0x80];
        if ti.address != 0 {
            return self.deliver(regs, Bounce { rip: ti.address, error_code: None, mask_events: ti.disables_events() });
        }
        regs.rip = regs.rip.wrapping_sub(2);
        regs.entry_vector = TRAP_GP_FAULT;
        regs.error_code = (0x80 << 3) | 2;
        self.guest_exception(regs, 0)
    }

    /// `syscall` from 32-bit compatibility code: 32-bit PV is not supported;
    /// the guest kernel sees #UD, as for a syscall it has no callback for.
    pub fn guest_syscall32(&mut self, regs: &mut GuestRegs) -> Next {
        regs.rip = regs.rip.wrapping_sub(2);
        self.deliver_trap(regs, TRAP_INVALID_OP)
    }

    /// Deliver vector `vector` without an error code, or crash the domain if
    /// the guest has no handler for it.
    pub(crate) fn deliver_trap(&mut self, regs: &mut GuestRegs, vector: u64) -> Next {
        let Some((dom, v)) = self.current else { return Next::Idle };
        let ti = self.domains[&dom].vcpus[v].traps[vector as usize];
        if ti.address == 0 {
            crate::error!("d{}v{} unhandled exception: vector {} ({}) at rip {:#018x}", dom.0, v, vector, exception_name(vector), regs.rip);
            return self.crash_current(regs);
        }
        self.deliver(regs, Bounce { rip: ti.address, error_code: None, mask_events: ti.disables_events() })
    }

    pub(crate) fn deliver(&mut self, regs: &mut GuestRegs, b: Bounce) -> Next {
        if !self.create_bounce_frame(regs, b) {
            return self.crash_current(regs);
        }
        self.schedule(regs)
    }

    fn crash_current(&mut self, regs: &mut GuestRegs) -> Next {
        let Some((dom, v)) = self.current else { return Next::Idle };
        crate::error!("Domain {} (vcpu#{}) crashed on cpu#0:", dom.0, v);
        dump_guest_regs(regs);
        self.dump_guest_stack(regs.rsp);
        self.domain_crash(dom);
        self.schedule(regs)
    }

    /// Switch the current vCPU between guest kernel and guest user mode
    /// (Xen's `toggle_guest_mode`): the other top-level table becomes
    /// active at the next return, and the kernel's and the user's GS bases
    /// trade places.
    pub(crate) fn toggle_guest_mode(&mut self) {
        let Some((dom, v)) = self.current else { return };
        let Some(vc) = self.domains.get_mut(&dom).and_then(|d| d.vcpus.get_mut(v)) else { return };
        vc.kernel_mode = !vc.kernel_mode;
        self.platform.swap_gs();
    }

    /// Write the bounce frame and point the vCPU at the handler. `false`
    /// means the frame could not be written: the domain must die.
    pub(crate) fn create_bounce_frame(&mut self, regs: &mut GuestRegs, b: Bounce) -> bool {
        let Some((dom, v)) = self.current else { return false };
        let Some(d) = self.domains.get(&dom) else { return false };
        let vinfo = d.vcpu_info(v);
        let from_kernel = d.vcpus[v].kernel_mode;
        if b.rip == 0 {
            return false;
        }
        let mut sp = if from_kernel {
            // Tell the guest it interrupted kernel mode: RPL 0 in the saved CS.
            regs.cs &= !3;
            regs.rsp
        } else {
            self.toggle_guest_mode();
            self.domains[&dom].vcpus[v].kernel_sp
        };
        sp &= !15;
        let saved_mask = vinfo.map_or(1, |vi| vi.on(&self.platform).upcall_mask());
        let mut frame = [0u64; 8];
        let mut n = 0;
        let mut push = |x: u64| {
            frame[n] = x;
            n += 1;
        };
        let rflags = (regs.rflags & !(RFLAGS_IF | RFLAGS_IOPL)) | if saved_mask == 0 { RFLAGS_IF } else { 0 };
        push(regs.ss);
        push(regs.rsp);
        push(rflags);
        push((regs.cs & 0xffff) | (saved_mask as u64) << 32);
        push(regs.rip);
        if let Some(e) = b.error_code {
            push(e);
        }
        push(regs.r11);
        push(regs.rcx);
        let bytes = 8 * n as u64;
        let Some(new_sp) = sp.checked_sub(bytes).filter(|s| guest_range_ok(*s, bytes)) else {
            crate::error!("d{}v{}: kernel stack {:#x} unusable for an exception frame", dom.0, v, sp);
            return false;
        };
        let mut raw = [0u8; 64];
        for (i, w) in frame[..n].iter().rev().enumerate() {
            raw[8 * i..8 * i + 8].copy_from_slice(&w.to_le_bytes());
        }
        let cr3 = self.domains[&dom].vcpus[v].cr3;
        let g = GuestMem::new(&self.platform, cr3, self.frames.len()).with_cache(&self.tcache, self.frames.pt_gen);
        if g.copy_to_guest(new_sp, &raw[..bytes as usize]).is_err() {
            crate::error!("d{}v{}: fault writing an exception frame at {:#x}", dom.0, v, new_sp);
            return false;
        }
        if let Some(vi) = vinfo.filter(|_| b.mask_events) {
            vi.on(&self.platform).set_upcall_mask(true);
        }
        regs.rflags &= !(RFLAGS_AC | RFLAGS_VM | RFLAGS_RF | RFLAGS_NT | RFLAGS_TF);
        regs.ss = FLAT_KERNEL_SS64 as u64;
        regs.rsp = new_sp;
        regs.cs = FLAT_KERNEL_CS64 as u64;
        regs.rip = b.rip;
        true
    }
}

impl<P: Platform> Xen<P> {
    /// The words at the top of the guest's stack, as Xen's
    /// `show_guest_stack` prints them (return addresses show the caller).
    fn dump_guest_stack(&self, rsp: u64) {
        let Some(g) = self.guest_mem() else { return };
        crate::error!("Guest stack trace from rsp={:016x}:", rsp);
        let words: alloc::vec::Vec<u64> = (0..12).map_while(|i| g.read_u64(rsp.wrapping_add(8 * i)).ok()).collect();
        for row in words.chunks(4) {
            let line: alloc::vec::Vec<alloc::string::String> = row.iter().map(|w| alloc::format!("{w:016x}")).collect();
            crate::error!("   {}", line.join(" "));
        }
    }
}

pub fn dump_guest_regs(r: &GuestRegs) {
    crate::error!("RIP:    {:04x}:[<{:016x}>]   RFLAGS: {:016x}", r.cs, r.rip, r.rflags);
    crate::error!("rax: {:016x}   rbx: {:016x}   rcx: {:016x}", r.rax, r.rbx, r.rcx);
    crate::error!("rdx: {:016x}   rsi: {:016x}   rdi: {:016x}", r.rdx, r.rsi, r.rdi);
    crate::error!("rbp: {:016x}   rsp: {:016x}   r8:  {:016x}", r.rbp, r.rsp, r.r8);
    crate::error!("r9:  {:016x}   r10: {:016x}   r11: {:016x}", r.r9, r.r10, r.r11);
    crate::error!("r12: {:016x}   r13: {:016x}   r14: {:016x}", r.r12, r.r13, r.r14);
    crate::error!("r15: {:016x}   ss:  {:04x}", r.r15, r.ss);
}
