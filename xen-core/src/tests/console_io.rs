//! `console_io` as Xen 4.17 (Debian's build: dummy XSM, no VERBOSE_DEBUG)
//! answers it: the control domain writes to and reads from the hypervisor
//! console; any other domain gets -EPERM and nothing reaches the console.

use super::World;
use crate::domain::DomId;
use hypercall_abi::console::{CONSOLEIO_read, CONSOLEIO_write};
use hypercall_abi::errno::Errno;
use hypercall_abi::nr;

fn console(w: &World) -> String {
    w.xen.platform.console_out.borrow().clone()
}

#[test]
fn the_control_domain_writes_to_the_hypervisor_console() {
    let mut w = World::new();
    w.write(w.scratch, b"dom0 says hi\n");
    assert_eq!(w.hypercall(nr::CONSOLE_IO, [CONSOLEIO_write as u64, 13, w.scratch, 0, 0]), 0);
    assert!(console(&w).contains("dom0 says hi\n"), "{}", console(&w));
    assert_eq!(w.hypercall(nr::CONSOLE_IO, [0xffff, 1, w.scratch, 0, 0]), Errno::ENOSYS.to_ret());
}

#[test]
fn an_unprivileged_guest_is_refused_every_console_command() {
    let mut w = World::with_domain(DomId(5), false);
    crate::testing::clear_console(&w.xen);
    w.write(w.scratch, b"domU says hi\n");
    for cmd in [CONSOLEIO_write, CONSOLEIO_read, 0xffff] {
        assert_eq!(w.hypercall(nr::CONSOLE_IO, [cmd as u64, 13, w.scratch, 0, 0]), Errno::EPERM.to_ret(), "cmd {cmd}");
    }
    assert!(!console(&w).contains("domU says hi"), "{}", console(&w));
}
