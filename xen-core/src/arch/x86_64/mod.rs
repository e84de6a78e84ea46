//! x86-64: everything that touches registers, descriptors or assembly.

pub mod boot;
pub mod cpu;
pub mod descriptors;
pub mod entry;
pub mod heap;
pub mod machine;
pub mod machine_check;
pub mod multiboot;
pub mod paging;
pub mod platform;
pub mod serial;
pub mod setup;
pub mod stack;
pub mod time;
pub mod traps;

extern "C" {
    static __image_start_phys: u8;
    static __bss_end_phys: u8;
}

/// Physical extent of the loaded image, `.bss` included.
pub fn image_phys_range() -> (u64, u64) {
    // Linker-defined absolute symbols: only their addresses mean anything.
    (core::ptr::addr_of!(__image_start_phys) as u64, core::ptr::addr_of!(__bss_end_phys) as u64)
}
