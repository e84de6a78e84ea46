//! Hypercall numbers nobody implements must return -ENOSYS, never crash and
//! never succeed.

use core::fmt::Write;

use hypercall_abi::guest;
use hypercall_abi::Errno;

use crate::check::Checks;

/// 11 is a hole in xen.h's numbering; 50 is an unassigned arch slot; 63 is the
/// last entry of Xen's table; 127 the last entry of the hypercall page.
const UNUSED: [u64; 4] = [11, 50, 63, 127];

pub fn run(_cmdline: &str) {
    let mut checks = Checks::default();
    for nr in UNUSED {
        // SAFETY: an unimplemented hypercall has no effect to guard against.
        let ret = unsafe { guest::hypercall0(nr) };
        let mut name = heapless::String::<32>::new();
        let _ = write!(name, "hypercall_{}", nr);
        checks.eq(&name, ret, Errno::ENOSYS.to_ret());
    }
    checks.verdict();
}
