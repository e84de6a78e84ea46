//! The privileged PV kernel. For now it only proves it booted: the banner,
//! then power off. The domain builder and `xl` come later.
#![no_std]
#![no_main]

use pv_rt::StartInfo;

pv_rt::entry!(main);

fn main(si: &'static StartInfo) {
    pv_rt::banner::print(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"), si);
}
