//! CPU feature set-up: SMEP/SMAP, global pages, and the `syscall` MSRs.

use core::arch::x86_64::__cpuid_count;
use x86_64::registers::control::{Cr4, Cr4Flags};
use x86_64::registers::model_specific::Msr;

use super::descriptors::{FLAT_RING3_CS32, HYPERVISOR_CS};

const MSR_STAR: u32 = 0xC000_0081;
const MSR_LSTAR: u32 = 0xC000_0082;
const MSR_CSTAR: u32 = 0xC000_0083;
const MSR_SFMASK: u32 = 0xC000_0084;

/// RFLAGS bits cleared on `syscall`: TF, IF, DF, IOPL, NT, AC. With IF
/// clear the hypervisor runs with interrupts off, which is what lets the
/// prebuilt `core` keep its red zone.
const SFMASK: u64 = 0x0004_7700;

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
        // STAR: syscall enters on 0xe008/0xe010; sysret would return to
        // 0xe023+16 = 0xe033 (FLAT_RING3_CS64) and 0xe02b, Xen's selectors.
        Msr::new(MSR_STAR).write(((FLAT_RING3_CS32 as u64) << 48) | ((HYPERVISOR_CS as u64) << 32));
        Msr::new(MSR_LSTAR).write(syscall64);
        Msr::new(MSR_CSTAR).write(syscall32);
        Msr::new(MSR_SFMASK).write(SFMASK);
    }
    f
}
