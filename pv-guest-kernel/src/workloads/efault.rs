//! A hypercall handed a pointer the guest may not read must fail with -EFAULT,
//! and the hypervisor must survive it.

use hypercall_abi::console::CONSOLEIO_write;
use hypercall_abi::{guest, nr, Errno};

use crate::check::Checks;

const BAD_POINTERS: [(&str, u64); 3] = [
    // Inside the hypervisor's hole (Xen's direct map starts here).
    ("efault_hypervisor", 0xFFFF_8300_0000_0000),
    // Canonical, guest half, far above anything the domain builder maps.
    ("efault_unmapped", 0x0000_7000_0000_0000),
    // Not canonical: no page table can map it.
    ("efault_noncanonical", 0x8000_0000_0000_0000),
];

pub fn run(_cmdline: &str) {
    let mut checks = Checks::default();
    for (name, ptr) in BAD_POINTERS {
        // SAFETY: the guest never dereferences `ptr`; the hypervisor must
        // refuse it.
        let ret = unsafe { guest::hypercall3(nr::CONSOLE_IO, CONSOLEIO_write as u64, 16, ptr) };
        checks.eq(name, ret, Errno::EFAULT.to_ret());
    }
    checks.verdict();
}
