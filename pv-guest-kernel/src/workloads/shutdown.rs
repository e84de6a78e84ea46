//! Shutting down for reasons other than poweroff.

use hypercall_abi::guest;
use hypercall_abi::sched::{SHUTDOWN_crash, SHUTDOWN_reboot};
use pv_rt::println;

fn shutdown(name: &str, reason: u32) {
    println!("shutdown: SCHEDOP_shutdown reason={} ({})", reason, name);
    let ret = guest::sched_shutdown(reason);
    println!("shutdown: SCHEDOP_shutdown returned {}", ret);
    println!("Test result: FAILURE");
}

pub fn reboot(_cmdline: &str) {
    shutdown("reboot", SHUTDOWN_reboot);
}

pub fn crash(_cmdline: &str) {
    shutdown("crash", SHUTDOWN_crash);
}
