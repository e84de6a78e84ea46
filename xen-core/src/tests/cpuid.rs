//! Forced-emulation CPUID against what Xen 4.17 answered on the same
//! (QEMU `-cpu max`) processor, and the prefix through the #UD path.

use super::World;
use crate::cpuid::{pv_cpuid, Guest, FORCED_EMULATION};
use crate::domain::DomId;
use crate::regs::GuestRegs;
use crate::testing::qemu_max_cpuid;
use crate::xen::Next;

/// XTF's `test-pv64-cpuid` "Emulated cpuid" lines on Xen 4.17 as Dom0
/// (leaf, subleaf, EAX, EBX, ECX, EDX).
const XEN_4_17_DOM0: &[(u32, u32, [u32; 4])] = &[
    (0x0, 0, [0x0000000d, 0x68747541, 0x444d4163, 0x69746e65]),
    (0x1, 0, [0x00060fb1, 0x00000800, 0xfed83203, 0x0fc9d3f5]),
    (0x2, 0, [0; 4]),
    (0x4, 0, [0; 4]),
    (0x5, 0, [0; 4]),
    (0x6, 0, [0; 4]),
    (0x7, 0, [0x00000000, 0x01880329 & !1, 0x00000200, 0x00000000]),
    (0xb, 0, [0; 4]),
    (0xd, 0, [0x00000007, 0x00000240, 0x00000340, 0x00000000]),
    (0xd, 1, [0x00000005, 0x00000000, 0x00000000, 0x00000000]),
    (0xd, 2, [0x00000100, 0x00000240, 0x00000000, 0x00000000]),
    (0xd, 3, [0; 4]),
    (0x40000000, 0, [0x40000005, 0x566e6558, 0x65584d4d, 0x4d4d566e]),
    (0x40000001, 0, [0x00040011, 0, 0, 0]),
    (0x40000002, 0, [0x00000001, 0x40000000, 0x00000001, 0x00000000]),
    (0x40000003, 0, [0x00000004, 0, 0, 0]),
    (0x40000003, 1, [0; 4]),
    (0x40000004, 0, [0; 4]),
    (0x40000005, 0, [0; 4]),
    (0x40000100, 0, [0; 4]),
    (0x80000000, 0, [0x80000021, 0x68747541, 0x444d4163, 0x69746e65]),
    (0x80000001, 0, [0x00060fb1, 0x00000000, 0x00000061, 0xe9d1dbf5]),
    (0x80000002, 0, [0x554d4551, 0x47435420, 0x55504320, 0x72657620]),
    (0x80000005, 0, [0x01ff01ff, 0x01ff01ff, 0x40020140, 0x40020140]),
    (0x80000006, 0, [0x00000000, 0x42004200, 0x02008140, 0x00808140]),
    (0x80000007, 0, [0; 4]),
    (0x80000008, 0, [0x00003028, 0, 0, 0]),
    (0x8000000a, 0, [0; 4]),
    (0x8000000e, 0, [0; 4]),
];

#[test]
fn the_pv_policy_matches_xen_4_17_on_the_same_processor() {
    // FSGSBASE (leaf 7 EBX bit 0) is the one deliberate difference, taken
    // out of the expected value above.
    for &(leaf, sub, want) in XEN_4_17_DOM0 {
        let got = pv_cpuid(leaf, sub, Guest { hardware_domain: true }, 2_100_000, qemu_max_cpuid);
        assert_eq!(got, want, "leaf {leaf:#x}:{sub}: {got:08x?} vs Xen {want:08x?}");
    }
    assert_eq!(pv_cpuid(0x40000003, 2, Guest { hardware_domain: true }, 2_100_000, qemu_max_cpuid)[0], 0x00200b20);
}

#[test]
fn what_xen_hides_from_pv_guests_stays_hidden() {
    let g = Guest { hardware_domain: false };
    let all = |_: u32, _: u32| [u32::MAX; 4];
    let amd = |l: u32, _: u32| if l == 0 { qemu_max_cpuid(0, 0) } else { [u32::MAX; 4] };
    let l1 = pv_cpuid(1, 0, g, 0, all);
    for (bit, name) in [(3, "PSE"), (12, "MTRR (not Dom0)"), (13, "PGE"), (17, "PSE36"), (1, "VME")] {
        assert_eq!(l1[3] & (1 << bit), 0, "{name}");
    }
    for (bit, name) in [(3, "MONITOR"), (5, "VMX"), (17, "PCID"), (21, "x2APIC")] {
        assert_eq!(l1[2] & (1 << bit), 0, "{name}");
    }
    assert_ne!(l1[2] & (1 << 31), 0, "hypervisor bit");
    let l7 = pv_cpuid(7, 0, g, 0, all);
    for (bit, name) in [(0, "FSGSBASE"), (7, "SMEP"), (10, "INVPCID"), (20, "SMAP"), (1, "TSC_ADJUST")] {
        assert_eq!(l7[1] & (1 << bit), 0, "{name}");
    }
    assert_eq!(l7[2] & 0b1100, 0, "UMIP, PKU");
    let e1 = pv_cpuid(0x80000001, 0, g, 0, amd);
    assert_eq!(e1[3] & (1 << 26), 0, "1 GiB pages");
    assert_eq!(e1[2] & (1 << 2), 0, "SVM");
    assert_eq!(pv_cpuid(1, 0, g, 0, amd)[3] & (1 << 11), 0, "no sysenter on AMD long mode");
}

fn forced_cpuid(w: &mut World, at: u64, leaf: u64, bytes: &[u8]) -> (Next, GuestRegs) {
    w.write(at, bytes);
    let mut regs = GuestRegs { entry_vector: 6, rip: at, rax: leaf, cs: 0xe033, ss: 0xe02b, rsp: w.layout.vstack_end - 0x80, rflags: 0x202, ..GuestRegs::default() };
    let next = w.xen.guest_exception(&mut regs, 0);
    (next, regs)
}

#[test]
fn the_forced_emulation_prefix_answers_cpuid_and_steps_over_it() {
    let mut w = World::new();
    let at = w.scratch + 0x800;
    let (next, regs) = forced_cpuid(&mut w, at, 0x40000000, &FORCED_EMULATION);
    assert!(matches!(next, Next::Resume { .. }), "{next:?}");
    assert_eq!(regs.rip, at + 7);
    let sig: alloc::vec::Vec<u8> = [regs.rbx, regs.rcx, regs.rdx].iter().flat_map(|r| (*r as u32).to_le_bytes()).collect();
    assert_eq!(&sig, b"XenVMMXenVMM");
    assert_eq!(regs.rax, 0x40000005);
    let (_, regs) = forced_cpuid(&mut w, at, 0x40000001, &FORCED_EMULATION);
    assert_eq!(regs.rax, 0x0004_0011, "4.17");
    assert_eq!(w.xen.domains[&DomId(0)].shutdown, None);
}

#[test]
fn a_plain_ud2_is_still_an_invalid_opcode() {
    let mut w = World::new();
    w.add_domain(DomId(1), false);
    w.xen.current = Some((DomId(1), 0));
    // ud2; "xen" but no cpuid after it: not emulated, no handler: crash.
    let at = 0x100000 + 0x40;
    let _ = forced_cpuid(&mut w, at, 0, &[0x0f, 0x0b, b'x', b'e', b'n', 0x90, 0x90]);
    assert_eq!(w.xen.domains[&DomId(1)].shutdown, Some(crate::domain::ShutdownReason::Crash));
    // A RIP the guest cannot read is no emulation either, never a fault in
    // the hypervisor.
    let mut w = World::new();
    let mut regs = GuestRegs { entry_vector: 6, rip: 0xffff_8300_0000_0000, cs: 0xe033, ss: 0xe02b, ..GuestRegs::default() };
    assert!(matches!(w.xen.guest_exception(&mut regs, 0), Next::Halt(_)));
}
