//! CPU feature set-up: SMEP/SMAP, global pages, and the `syscall` MSRs.

use core::arch::x86_64::__cpuid_count;
use x86_64::registers::control::{Cr4, Cr4Flags};
use x86_64::registers::model_specific::{LStar, Msr, SFMask, Star};
use x86_64::registers::rflags::RFlags;
use x86_64::structures::gdt::SegmentSelector;
use x86_64::VirtAddr;

use super::descriptors::{FLAT_RING3_CS64, FLAT_RING3_DS, HYPERVISOR_CS, HYPERVISOR_DS};

/// The `syscall` entry for compatibility mode. The `x86_64` crate has no
/// type for this AMD-defined MSR, so it stays a number.
const MSR_CSTAR: u32 = 0xC000_0083;

/// RFLAGS bits cleared on `syscall`: TF, IF, DF, IOPL, NT, AC. With IF
/// clear the hypervisor runs with interrupts off, which is what lets the
/// prebuilt `core` keep its red zone.
const SFMASK: RFlags = RFlags::from_bits_truncate(
    RFlags::TRAP_FLAG.bits()
        | RFlags::INTERRUPT_FLAG.bits()
        | RFlags::DIRECTION_FLAG.bits()
        | RFlags::IOPL_LOW.bits()
        | RFlags::IOPL_HIGH.bits()
        | RFlags::NESTED_TASK.bits()
        | RFlags::ALIGNMENT_CHECK.bits(),
);
const _: () = assert!(SFMASK.bits() == 0x0004_7700);

pub struct Features {
    pub smep: bool,
    pub smap: bool,
}

/// `allow_smep`/`allow_smap`: the `smep=`/`smap=` options.
pub fn init(syscall64: u64, syscall32: u64, allow_smep: bool, allow_smap: bool) -> Features {
    let leaf7 = __cpuid_count(7, 0);
    let f = Features { smep: allow_smep && leaf7.ebx & (1 << 7) != 0, smap: allow_smap && leaf7.ebx & (1 << 20) != 0 };
    let mut cr4 = Cr4::read() | Cr4Flags::PAGE_GLOBAL;
    // SMEP: ring 0 never executes guest (user) pages. SMAP: ring 0 never
    // reads or writes them by accident: every guest access goes through the
    // checked accessor and the direct map instead.
    if f.smep {
        cr4 |= Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION;
    }
    if f.smap {
        cr4 |= Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION;
    }
    // SAFETY: the bits set only add protection; the hypervisor never touches
    // user pages directly.
    unsafe {
        Cr4::write(cr4);
        Msr::new(MSR_CSTAR).write(syscall32);
    }
    // STAR: syscall enters on 0xe008/0xe010; sysret would return to
    // 0xe033 (FLAT_RING3_CS64) and 0xe02b, Xen's selectors. The crate checks
    // the layout the instructions need (SS = CS + 8, sysret CS = base + 16).
    let star = Star::write(
        SegmentSelector(FLAT_RING3_CS64),
        SegmentSelector(FLAT_RING3_DS),
        SegmentSelector(HYPERVISOR_CS),
        SegmentSelector(HYPERVISOR_DS),
    );
    if star.is_err() {
        super::traps::fatal("GDT layout unusable for syscall/sysret");
    }
    LStar::write(VirtAddr::new_truncate(syscall64));
    SFMask::write(SFMASK);
    f
}
