//! What a 64-bit PV kernel needs to boot on Xen, or on xen-core, which speaks
//! the same ABI.
//!
//! - [`entry!`] names the kernel's main function. Xen enters `_start` in ring 3
//!   with `%rsi` = the start_info page; `_start` clears `.bss`, moves to a
//!   stack of our own and calls main with `&'static StartInfo`. When main
//!   returns, the domain powers off.
//! - The Xen ELF notes (entry, hypercall page, loader, versions, features) and
//!   the page-aligned `hypercall_page` in `.text` that the hypervisor fills.
//! - [`println!`]/[`print!`] over `console_io`, line-buffered.
//! - A panic handler that prints the panic and shuts down with `SHUTDOWN_crash`.
//! - [`mm`]: frames, page-table walks, map/unmap over Xen's PV MMU.
//! - [`traps`]: the virtual IDT, exception entry stubs and the `iret` path,
//!   the event/failsafe/syscall callbacks, guest user mode; [`shared`]: the
//!   shared_info page (`vcpu_info`, the page-fault address).
//! - Small helpers both kernels share: the boot banner, command-line lookup,
//!   shutdown, a fenced TSC read.
//!
//! Each kernel links with `link.ld` from this crate; its build.rs finds the
//! file through `DEP_PV_RT_LINKER_SCRIPT` (see [`build_support`] for the
//! arguments).
// Host unit tests (`cargo test`) cover the pure parts; the entry code, panic
// handler and bare-rt's symbols would clash with the host's std and C runtime.
#![cfg_attr(not(test), no_std)]

// The mem functions and personality symbol `core` expects.
#[cfg(not(test))]
extern crate bare_rt;

pub mod banner;
pub mod blkfront;
pub mod cmdline;
pub mod console;
pub mod events;
pub mod gnttab;
pub mod mm;
#[cfg(not(test))]
mod panic;
pub mod shared;
#[cfg(not(test))]
mod start;
// Entry stubs in assembly that jump to the hypercall page, which only the
// bare-metal image has.
#[cfg(not(test))]
pub mod traps;
pub mod time;
pub mod tsc;
pub mod xencons;
pub mod xenbus;

pub use hypercall_abi;
pub use hypercall_abi::start_info::StartInfo;

use core::sync::atomic::{AtomicPtr, Ordering};
use hypercall_abi::guest;
use hypercall_abi::sched::{SHUTDOWN_crash, SHUTDOWN_poweroff, SHUTDOWN_reboot};

/// Set once by the entry code, before the kernel's main runs.
static START_INFO: AtomicPtr<StartInfo> = AtomicPtr::new(core::ptr::null_mut());

/// The start_info page the hypervisor passed at entry.
pub fn start_info() -> &'static StartInfo {
    let si = START_INFO.load(Ordering::Relaxed);
    assert!(!si.is_null(), "start_info read before entry");
    // SAFETY: `start` stored a pointer to the start_info page, which the
    // hypervisor maps for the life of the domain; we never write through it.
    unsafe { &*si }
}

/// `SCHEDOP_shutdown` with `reason`. Returns only if the hypervisor refuses,
/// in which case we ask for a crash, then park the vCPU.
pub fn shutdown(reason: u32) -> ! {
    let ret = guest::sched_shutdown(reason);
    println!("pv-rt: SCHEDOP_shutdown({}) returned {}", reason, ret);
    if reason != SHUTDOWN_crash {
        guest::sched_shutdown(SHUTDOWN_crash);
    }
    loop {
        guest::sched_yield();
    }
}

pub fn poweroff() -> ! {
    shutdown(SHUTDOWN_poweroff)
}

pub fn reboot() -> ! {
    shutdown(SHUTDOWN_reboot)
}

pub fn crash() -> ! {
    shutdown(SHUTDOWN_crash)
}

/// Names the kernel's main function, `fn(&'static StartInfo)`. The domain
/// powers off when it returns.
///
/// ```ignore
/// pv_rt::entry!(main);
/// fn main(si: &'static pv_rt::StartInfo) { pv_rt::println!("hello"); }
/// ```
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[no_mangle]
        fn __pv_rt_main(start_info: &'static $crate::StartInfo) {
            // The coercion makes a wrong signature a compile error here.
            let main: fn(&'static $crate::StartInfo) = $main;
            main(start_info)
        }
    };
}

/// The link arguments a kernel's build.rs emits, for reference:
///
/// ```text
/// cargo:rustc-link-arg-bins=-nostartfiles -nostdlib -static -no-pie
///     -Wl,-T<DEP_PV_RT_LINKER_SCRIPT> -Wl,--build-id=none -Wl,-z,max-page-size=4096
/// ```
pub mod build_support {
    pub const LINK_ARGS: &[&str] = &[
        "-nostartfiles",
        "-nostdlib",
        "-static",
        "-no-pie",
        "-Wl,--build-id=none",
        "-Wl,-z,max-page-size=4096",
    ];
}
