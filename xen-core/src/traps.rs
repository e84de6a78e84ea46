//! Exceptions raised by guests.
//!
//! Until a guest registers a trap table (the vCPU issue brings
//! `set_trap_table` and bounce frames), no exception has a guest handler, so
//! each one crashes the domain that raised it, and only that domain.

use crate::platform::Platform;
use crate::regs::GuestRegs;
use crate::xen::{Next, Xen};

pub const EXCEPTION_NAMES: [&str; 22] = [
    "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "#CSO", "#TS", "#NP", "#SS", "#GP", "#PF", "#15",
    "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
];

pub fn exception_name(vector: u64) -> &'static str {
    EXCEPTION_NAMES.get(vector as usize).copied().unwrap_or("#??")
}

impl<P: Platform> Xen<P> {
    /// A CPU exception from ring 3. `cr2` is the faulting address for #PF.
    pub fn guest_exception(&mut self, regs: &mut GuestRegs, cr2: u64) -> Next {
        let Some((dom, v)) = self.current else { return Next::Idle };
        let vector = regs.entry_vector;
        crate::error!(
            "d{}v{} unhandled exception: vector {} ({}) error code {:#06x} at rip {:#018x}{}",
            dom.0,
            v,
            vector,
            exception_name(vector),
            regs.error_code,
            regs.rip,
            if vector == 14 { alloc::format!(" cr2 {cr2:#018x}") } else { alloc::string::String::new() }
        );
        crate::error!("Domain {} (vcpu#{}) crashed on cpu#0:", dom.0, v);
        dump_guest_regs(regs);
        self.domain_crash(dom);
        self.schedule(regs)
    }

    /// `syscall` from 32-bit compatibility code: 32-bit PV guests are not
    /// supported, so this is as fatal as an unhandled exception.
    pub fn guest_syscall32(&mut self, regs: &mut GuestRegs) -> Next {
        let Some((dom, _)) = self.current else { return Next::Idle };
        crate::error!("d{} used syscall from 32-bit code at rip {:#x}: 32-bit PV is not supported", dom.0, regs.rip);
        self.domain_crash(dom);
        self.schedule(regs)
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
