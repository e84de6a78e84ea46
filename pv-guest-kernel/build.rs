//! Links the kernel freestanding at its PV layout: pv-rt's linker script,
//! no C runtime, a static non-PIE ELF that Xen's domain builder loads as is.
fn main() {
    let script = std::env::var("DEP_PV_RT_LINKER_SCRIPT")
        .expect("pv-rt publishes its linker script (links = \"pv-rt\")");
    println!("cargo::rerun-if-changed={script}");
    for arg in [
        "-nostartfiles",
        "-nostdlib",
        "-static",
        "-no-pie",
        "-Wl,--build-id=none",
        "-Wl,-z,max-page-size=4096",
    ] {
        println!("cargo::rustc-link-arg-bins={arg}");
    }
    println!("cargo::rustc-link-arg-bins=-Wl,-T{script}");
}
