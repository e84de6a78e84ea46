//! `workload=ioport`: a guest other than Dom0 asks for I/O privilege
//! (`PHYSDEVOP_set_iopl`, which any PV guest may set: it is virtual) and
//! then tries the machine's devices: PCI configuration space through
//! `0xcf8`/`0xcfc` (every function on bus 0) and the I/O ports where the
//! firmware places PCI BARs (`0xc000`-`0xcfff`: Dom0's virtio disk lives
//! there), reading and then writing the virtio status register of every
//! possible BAR (a write of 0 would reset Dom0's disk). The hypervisor must
//! give it nothing: reads all-ones, writes dropped. A later guest using
//! Dom0's disk shows the writes did no harm.

use core::arch::asm;

use hypercall_abi::guest::hypercall2;
use hypercall_abi::nr::PHYSDEV_OP;
use hypercall_abi::physdev::{PhysdevSetIopl, PHYSDEVOP_set_iopl};
use pv_rt::println;

fn inl(port: u16) -> u32 {
    let v: u32;
    // SAFETY: a port read; the hypervisor emulates it (or refuses it).
    unsafe { asm!("in eax, dx", in("dx") port, out("eax") v, options(nomem, nostack, preserves_flags)) };
    v
}

fn outl(port: u16, v: u32) {
    // SAFETY: a port write the hypervisor emulates or drops; no memory.
    unsafe { asm!("out dx, eax", in("dx") port, in("eax") v, options(nomem, nostack, preserves_flags)) };
}

fn outb(port: u16, v: u8) {
    // SAFETY: as `outl`.
    unsafe { asm!("out dx, al", in("dx") port, in("al") v, options(nomem, nostack, preserves_flags)) };
}

pub fn run(_cmd: &str) {
    let mut arg = PhysdevSetIopl { iopl: 1 };
    // SAFETY: the argument is a live physdev_set_iopl.
    let ret = unsafe { hypercall2(PHYSDEV_OP, PHYSDEVOP_set_iopl as u64, &mut arg as *mut _ as u64) };
    println!("ioport: PHYSDEVOP_set_iopl(1) = {}", ret);
    if ret != 0 {
        println!("Test result: FAILURE");
        return;
    }
    let mut answered = 0;
    for dev in 0..32u32 {
        outl(0xcf8, 0x8000_0000 | dev << 11);
        if inl(0xcfc) != 0xffff_ffff {
            answered += 1;
        }
    }
    println!("ioport: PCI configuration: {} of 32 functions on bus 0 answered", answered);
    let mut ports = 0;
    for port in (0xc000..0xd000u16).step_by(4) {
        if inl(port) != 0xffff_ffff {
            ports += 1;
        }
    }
    println!("ioport: ports 0xc000-0xcfff: {} of 1024 answered", ports);
    // The legacy virtio status register of each 64-byte-aligned BAR.
    for base in (0xc000..0xd000u16).step_by(0x40) {
        outb(base + 0x12, 0);
    }
    println!("ioport: wrote 0 to the virtio status register of every BAR slot");
    println!("Test result: {}", if answered == 0 && ports == 0 { "SUCCESS" } else { "FAILURE" });
}
