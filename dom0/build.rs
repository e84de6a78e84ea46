//! Links the kernel freestanding at its PV layout: pv-rt's linker script,
//! no C runtime, a static non-PIE ELF that Xen's domain builder loads as is.
include!("../bare-rt/link.rs");

fn main() {
    link_pv_kernel();
}
