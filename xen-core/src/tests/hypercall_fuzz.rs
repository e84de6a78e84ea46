//! Every hypercall, arbitrary arguments, arbitrary argument memory: the
//! hypervisor never panics, the frame table stays consistent, and a result is
//! either a value or a Xen error code. (The MMU, event and grant property
//! tests aim at the interesting corners; this one aims everywhere.)

use proptest::prelude::*;

use super::invariants::check;
use super::World;
use crate::regs::GuestRegs;

/// An argument: small numbers, pointers into the guest's scratch area (whose
/// contents are random), hostile addresses, or anything.
fn arg() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => 0u64..16,
        3 => (0u64..0x1000).prop_map(|o| 0x3f_0000 + o * 8),
        1 => Just(0xffff_8300_0000_0000u64),
        1 => Just(0x0000_8000_0000_0000u64),
        1 => Just(u64::MAX),
        2 => any::<u64>(),
    ]
}

proptest! {
    #![proptest_config(super::prop_config())]

    #[test]
    fn props_random_hypercalls_never_panic_or_corrupt(
        calls in proptest::collection::vec((0u64..48, proptest::array::uniform5(arg())), 1..40),
        junk in proptest::collection::vec(any::<u8>(), 4096),
    ) {
        let mut w = World::new();
        // Random bytes where the pointer arguments point (0x3f0000..0x3f8000
        // lies in the initial mapping's padding, writable).
        for page in 0..8u64 {
            let _ = w.xen.guest_mem().unwrap().copy_to_guest(0x3f_0000 + page * 0x1000, &junk);
        }
        for (nr, args) in &calls {
            // Shutting Dom0 down stops everything; skip those (tested elsewhere).
            if *nr == hypercall_abi::nr::SCHED_OP && args[0] == 2 {
                continue;
            }
            let mut regs = GuestRegs { rsp: 0x3f_8000, ..super::hypercall_frame(*nr, *args) };
            let _ = w.xen.hypercall(&mut regs);
            if w.xen.current.is_none() || w.xen.domains[&crate::domain::DomId(0)].shutdown.is_some() {
                break;
            }
            if let Err(e) = check(&w.xen) {
                prop_assert!(false, "after hypercall {} {:x?}: {}", nr, args, e);
            }
        }
    }
}
