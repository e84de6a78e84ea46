//! Divergences from Xen 4.17 found by the differential fuzzer
//! (`scripts/fuzz.sh diff`, docs/fuzzing.md), each pinned once fixed.

use hypercall_abi::callback::{CALLBACKOP_unregister, CALLBACKTYPE_event, CALLBACKTYPE_nmi};
use hypercall_abi::errno::Errno;
use hypercall_abi::sched::SCHEDOP_shutdown_code;
use hypercall_abi::nr;

use crate::domain::DomId;

use super::World;

/// `scripts/fuzz.sh diff --seed 1`: `SCHEDOP_shutdown_code` with a reason
/// past `SHUTDOWN_MAX` was -EINVAL here and 0 on Xen 4.17, which keeps any
/// value as a byte, and only the first one a domain gives.
#[test]
fn shutdown_code_takes_any_reason_as_a_byte_and_keeps_the_first() {
    let mut w = World::with_domain(DomId(3), false);
    let s = w.scratch;
    w.write(s, &0x1_2345u32.to_le_bytes());
    assert_eq!(w.hypercall(nr::SCHED_OP, [SCHEDOP_shutdown_code as u64, s, 0, 0, 0]), 0);
    assert_eq!(w.xen.domains[&DomId(3)].shutdown_code, Some(0x45));
    w.write(s, &1u32.to_le_bytes());
    assert_eq!(w.hypercall(nr::SCHED_OP, [SCHEDOP_shutdown_code as u64, s, 0, 0, 0]), 0);
    assert_eq!(w.xen.domains[&DomId(3)].shutdown_code, Some(0x45), "the first code stays");
    assert!(w.xen.domains[&DomId(3)].shutdown.is_none(), "a code is no shutdown");
}

/// `scripts/fuzz.sh diff --seed 1`, call 113: `CALLBACKOP_unregister` of a
/// type Xen does not know was -EINVAL here and -ENOSYS on Xen 4.17 (its
/// switch's default); the known types other than NMI stay -EINVAL.
#[test]
fn unregistering_an_unknown_callback_type_is_enosys() {
    let mut w = World::with_domain(DomId(3), false);
    let s = w.scratch;
    for (ty, want) in [(3u16, Errno::ENOSYS.to_ret()), (6, Errno::ENOSYS.to_ret()), (0x2a31, Errno::ENOSYS.to_ret()), (CALLBACKTYPE_event, Errno::EINVAL.to_ret()), (CALLBACKTYPE_nmi, 0)] {
        w.write(s, &ty.to_le_bytes());
        assert_eq!(w.hypercall(nr::CALLBACK_OP, [CALLBACKOP_unregister as u64, s, 0, 0, 0]), want, "type {ty}");
    }
}

/// `scripts/fuzz.sh diff --seed 1`, calls 647 and 895: `get_debugreg(5)`
/// and `get_debugreg(4)` were -ENODEV here; on Xen 4.17 they read DR7 and
/// DR6 (the aliases of a CPU with CR4.DE clear, as a PV guest's is), and
/// `set_debugreg(4|5)` writes DR6 and DR7 with their checks.
#[test]
fn debug_registers_4_and_5_alias_6_and_7() {
    let mut w = World::with_domain(DomId(3), false);
    let dr7 = w.hypercall(nr::GET_DEBUGREG, [7, 0, 0, 0, 0]);
    let dr6 = w.hypercall(nr::GET_DEBUGREG, [6, 0, 0, 0, 0]);
    assert_eq!(w.hypercall(nr::GET_DEBUGREG, [5, 0, 0, 0, 0]), dr7);
    assert_eq!(w.hypercall(nr::GET_DEBUGREG, [4, 0, 0, 0, 0]), dr6);
    assert_eq!(w.hypercall(nr::SET_DEBUGREG, [5, 1 << 40, 0, 0, 0]), Errno::EINVAL.to_ret(), "DR7's checks");
    assert_eq!(w.hypercall(nr::SET_DEBUGREG, [4, 0xf, 0, 0, 0]), 0);
    assert_eq!(w.hypercall(nr::GET_DEBUGREG, [6, 0, 0, 0, 0]) & 0xf, 0xf, "written through DR4");
    assert_eq!(w.hypercall(nr::GET_DEBUGREG, [8, 0, 0, 0, 0]), Errno::ENODEV.to_ret());
}

/// `scripts/fuzz.sh diff --seed 1`, calls 1166 and 1832: a breakpoint
/// address of `u64::MAX` was -EPERM here (the 8 bytes from it wrap) and 0
/// on Xen 4.17, whose `access_ok` checks where the range starts: below the
/// canonical hole or past the hypervisor's slots.
#[test]
fn breakpoint_addresses_are_checked_where_they_start() {
    let mut w = World::with_domain(DomId(3), false);
    assert_eq!(w.hypercall(nr::SET_DEBUGREG, [2, u64::MAX, 0, 0, 0]), 0);
    assert_eq!(w.hypercall(nr::SET_DEBUGREG, [1, (1 << 47) - 1, 0, 0, 0]), 0);
    assert_eq!(w.hypercall(nr::SET_DEBUGREG, [1, 1 << 47, 0, 0, 0]), Errno::EPERM.to_ret());
    assert_eq!(w.hypercall(nr::SET_DEBUGREG, [0, 0xffff_8000_0000_0000, 0, 0, 0]), Errno::EPERM.to_ret());
    assert_eq!(w.hypercall(nr::SET_DEBUGREG, [0, 0xffff_8800_0000_0000, 0, 0, 0]), 0);
}
