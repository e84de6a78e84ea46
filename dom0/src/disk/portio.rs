//! Port I/O from Dom0. Dom0 runs in ring 3 with IOPL 0, so each `in`/`out`
//! traps and the hypervisor emulates it (Xen's `emul-priv-op.c`): it checks
//! the virtual IOPL set with `PHYSDEVOP_set_iopl` and the domain's port
//! permissions (Dom0 reaches all ports but the hypervisor's own; any other
//! domain reaches none), then does the access on the machine.

use core::arch::asm;

use hypercall_abi::guest::hypercall2;
use hypercall_abi::nr::PHYSDEV_OP;
use hypercall_abi::physdev::{PhysdevSetIopl, PHYSDEVOP_set_iopl};

/// Asks for virtual IOPL 1: the kernel (virtual CPL 1) may use `in`/`out`.
pub fn enable() -> Result<(), i64> {
    let mut arg = PhysdevSetIopl { iopl: 1 };
    // SAFETY: the argument is a live, correctly laid out physdev_set_iopl.
    let ret = unsafe { hypercall2(PHYSDEV_OP, PHYSDEVOP_set_iopl as u64, &mut arg as *mut _ as u64) };
    if ret < 0 { Err(ret) } else { Ok(()) }
}

pub fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: a port read; callers name only ports of devices Dom0 drives.
    unsafe { asm!("in al, dx", in("dx") port, out("al") v, options(nomem, nostack, preserves_flags)) };
    v
}

pub fn inw(port: u16) -> u16 {
    let v: u16;
    // SAFETY: as `inb`.
    unsafe { asm!("in ax, dx", in("dx") port, out("ax") v, options(nomem, nostack, preserves_flags)) };
    v
}

pub fn inl(port: u16) -> u32 {
    let v: u32;
    // SAFETY: as `inb`.
    unsafe { asm!("in eax, dx", in("dx") port, out("eax") v, options(nomem, nostack, preserves_flags)) };
    v
}

pub fn outb(port: u16, v: u8) {
    // SAFETY: a port write to a device Dom0 drives; memory is untouched.
    unsafe { asm!("out dx, al", in("dx") port, in("al") v, options(nomem, nostack, preserves_flags)) };
}

pub fn outw(port: u16, v: u16) {
    // SAFETY: as `outb`.
    unsafe { asm!("out dx, ax", in("dx") port, in("ax") v, options(nomem, nostack, preserves_flags)) };
}

pub fn outl(port: u16, v: u32) {
    // SAFETY: as `outb`.
    unsafe { asm!("out dx, eax", in("dx") port, in("eax") v, options(nomem, nostack, preserves_flags)) };
}
