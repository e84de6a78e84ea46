//! A small PV guest kernel: prints the boot banner, runs the workload named by
//! `workload=` on its command line (default `banner`), then powers off.
//!
//! Output conventions (parsed by the tests): each check prints
//! `check <name>: got <value> expected <value> ok|FAIL`, and a workload that
//! checks things ends with `Test result: SUCCESS|FAILURE` (XTF's verdict line).
#![no_std]
#![no_main]

mod check;
mod vcpu;
mod workloads;

use pv_rt::{cmdline, println, StartInfo};

pv_rt::entry!(main);

fn main(si: &'static StartInfo) {
    pv_rt::banner::print(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"), si);
    let cmd = si.cmd_line_str();
    let name = cmdline::get(cmd, "workload").unwrap_or("banner");
    println!("workload: {}", name);
    match workloads::find(name) {
        Some(run) => run(cmd),
        None => {
            println!("workload: unknown workload '{}'", name);
            println!("Test result: FAILURE");
        }
    }
}
