// The link arguments of every freestanding image, shared by the build
// scripts of xen-core, dom0 and pv-guest-kernel with
// `include!("../bare-rt/link.rs")` (a build script cannot depend on a
// workspace crate's library without making it a build-dependency crate of
// its own; one small file is enough).
//
// Only the crate's binaries get them (`rustc-link-arg-bins`): its library
// and host tests link normally.

/// Link this crate's binaries freestanding with `script`: no C runtime, a
/// static non-PIE ELF with no build-id and 4 KiB segment alignment, laid out
/// by the script; `extra` arguments follow.
#[allow(dead_code)]
fn link_freestanding(script: &str, extra: &[&str]) {
    println!("cargo::rerun-if-changed={script}");
    let script_arg = format!("-Wl,-T{script}");
    let common = ["-nostartfiles", "-nostdlib", "-static", "-no-pie", "-Wl,--build-id=none", "-Wl,-z,max-page-size=4096"];
    for arg in common.iter().chain(extra).chain([&script_arg.as_str()]) {
        println!("cargo::rustc-link-arg-bins={arg}");
    }
}

/// A PV kernel: pv-rt's linker script (published by pv-rt's build script as
/// `DEP_PV_RT_LINKER_SCRIPT`, since the crate is `links = "pv-rt"`).
#[allow(dead_code)]
fn link_pv_kernel() {
    let script = std::env::var("DEP_PV_RT_LINKER_SCRIPT").expect("pv-rt publishes its linker script (links = \"pv-rt\")");
    link_freestanding(&script, &[]);
}
