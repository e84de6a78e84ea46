//! The privileged PV kernel: the boot banner, then the toolstack. With
//! `xl="cmd; cmd; ..."` on its command line it runs those commands and
//! powers off, stopping at the first command that fails (`xl_keep_going`
//! runs them all); otherwise it offers an `xl>` prompt on Xen's console,
//! until `poweroff` or the end of input (^D).
#![no_std]
#![no_main]

use core::ptr::addr_of_mut;

use dom0::cmdline;
use dom0::xl::Toolstack;
use pv_rt::mm::Mm;
use pv_rt::{println, StartInfo};

pv_rt::entry!(main);

/// The toolstack's state: large (it holds the builder's P2M), so static.
static mut TOOLSTACK: Toolstack = Toolstack::new();

fn main(si: &'static StartInfo) {
    pv_rt::banner::print(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"), si);
    // SAFETY: `main` runs once, on one vCPU, and is the only code that
    // names TOOLSTACK, so this is the only reference ever made.
    let ts = unsafe { &mut *addr_of_mut!(TOOLSTACK) };
    // SAFETY: the only Mm; pv-rt's entry left the bootstrap stack.
    let mut mm = match unsafe { Mm::new(si) } {
        Ok(mm) => mm,
        Err(e) => {
            println!("dom0: memory manager: {}", e);
            return;
        }
    };
    match dom0::heap::init(&mut mm) {
        Ok(bytes) => println!("dom0: heap of {} MiB in Dom0's RAM", bytes >> 20),
        Err(e) => {
            println!("dom0: no free RAM for a heap ({}): give Dom0 more memory (dom0_mem=)", e);
            return;
        }
    }
    if let Err(e) = ts.init(si, &mut mm) {
        println!("dom0: toolstack set-up failed: {}", e);
        return;
    }
    match cmdline::xl_option(si.cmd_line_str()) {
        Some(cmds) => {
            ts.run_script(cmds, cmdline::has_flag(si.cmd_line_str(), "xl_keep_going"));
        }
        None => ts.interact(),
    }
    ts.shutdown_all();
    println!("dom0: powering off");
}
