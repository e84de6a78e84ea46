//! Link the hypervisor image freestanding with its own linker script.
//! Only the `xen-core` binary gets these arguments; the library and its host
//! tests link normally.
include!("../bare-rt/link.rs");

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    link_freestanding(&format!("{dir}/src/arch/x86_64/xen.ld"), &["-Wl,--no-dynamic-linker"]);
}
