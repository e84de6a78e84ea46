//! Publishes the path of the shared linker script to the kernels that depend
//! on this crate: cargo hands it to their build scripts as
//! `DEP_PV_RT_LINKER_SCRIPT` (a dependency cannot add link arguments to its
//! dependents' binaries itself).
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let script = std::path::Path::new(&dir).join("link.ld");
    println!("cargo::rerun-if-changed=link.ld");
    println!("cargo::metadata=linker_script={}", script.display());
}
