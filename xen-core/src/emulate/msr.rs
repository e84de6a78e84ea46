//! `rdmsr`/`wrmsr` from a PV kernel: Xen 4.17's PV MSR policy
//! (`guest_rdmsr`/`guest_wrmsr` in `xen/arch/x86/msr.c` and
//! `read_msr`/`write_msr` in `emul-priv-op.c`).
//!
//! Since Xen 4.15 an MSR outside the policy raises #GP in the guest (without
//! `msr_relaxed`), for reads and writes alike; Linux reads optional MSRs with
//! `rdmsr_safe`, which expects exactly that. No guest value ever reaches a
//! real MSR except the segment bases, checked canonical first.

/// MSR numbers (Intel SDM vol. 4; Xen's `msr-index.h` names).
pub const MSR_IA32_TSC: u32 = 0x10;
pub const MSR_IA32_APICBASE: u32 = 0x1b;
/// Intel's microcode revision, AMD's patch level (the same MSR).
pub const MSR_IA32_UCODE_REV: u32 = 0x8b;
pub const MSR_IA32_PLATFORM_INFO: u32 = 0xce;
pub const MSR_INTEL_MISC_FEATURES_ENABLES: u32 = 0x140;
pub const MSR_IA32_MCG_CAP: u32 = 0x179;
pub const MSR_IA32_MCG_STATUS: u32 = 0x17a;
pub const MSR_IA32_MCG_CTL: u32 = 0x17b;
pub const MSR_IA32_MISC_ENABLE: u32 = 0x1a0;
pub const MSR_IA32_CR_PAT: u32 = 0x277;
pub const MSR_IA32_MC0_CTL: u32 = 0x400;
pub const MSR_EFER: u32 = 0xc000_0080;
pub const MSR_FS_BASE: u32 = 0xc000_0100;
pub const MSR_GS_BASE: u32 = 0xc000_0101;
pub const MSR_SHADOW_GS_BASE: u32 = 0xc000_0102;
pub const MSR_TSC_AUX: u32 = 0xc000_0103;

/// EFER as a 64-bit PV guest sees it: SCE, LME, LMA, NXE (Xen shows the
/// real EFER's known bits without SVME).
pub const GUEST_EFER: u64 = (1 << 0) | (1 << 8) | (1 << 10) | (1 << 11);
/// Xen's PAT layout, which PV guests must use (`XEN_MSR_PAT`): WB, WT, UC-,
/// UC, WC, WP, UC, UC.
pub const XEN_MSR_PAT: u64 = 0x0000_0501_0007_0406;
/// MISC_ENABLE as Xen's `guest_misc_enable` shows it: fast strings on,
/// performance monitoring and MONITOR hidden, BTS and PEBS unavailable,
/// xTPR disabled.
pub const GUEST_MISC_ENABLE: u64 = (1 << 0) | (1 << 11) | (1 << 12) | (1 << 23);
/// Machine-check banks the virtual MCA offers (Xen's `GUEST_MC_BANK_NUM`).
pub const GUEST_MC_BANK_NUM: u64 = 2;
/// The local APIC's default base, enabled (`APIC_BASE_ENABLE`).
const APIC_DEFAULT: u64 = 0xfee0_0000 | (1 << 11);
const APIC_BSP: u64 = 1 << 8;

/// What a read of `msr` gives, for the parts of the policy that need no
/// vCPU state. `None`: #GP.
pub fn read_fixed(msr: u32, vcpu_id: u32) -> Option<u64> {
    Some(match msr {
        MSR_EFER => GUEST_EFER,
        MSR_IA32_MISC_ENABLE => GUEST_MISC_ENABLE,
        MSR_IA32_CR_PAT => XEN_MSR_PAT,
        MSR_IA32_APICBASE => APIC_DEFAULT | if vcpu_id == 0 { APIC_BSP } else { 0 },
        // No CPUID faulting offered.
        MSR_IA32_PLATFORM_INFO | MSR_INTEL_MISC_FEATURES_ENABLES => 0,
        MSR_IA32_MCG_CAP => GUEST_MC_BANK_NUM,
        MSR_IA32_MCG_STATUS => 0,
        // No microcode revision to compare with: 0, as a guest that reads
        // it before CPUID.1 sees on Xen.
        MSR_IA32_UCODE_REV => 0,
        m if is_mc_bank(m) => 0,
        _ => return None,
    })
}

/// A write that changes nothing the guest may change: accepted and dropped
/// (Xen logs "Domain attempted WRMSR" and carries on for these), or `false`
/// for #GP.
pub fn write_fixed(msr: u32, val: u64) -> bool {
    match msr {
        // Writing the value it reads back is fine; anything else is dropped.
        MSR_IA32_MISC_ENABLE | MSR_IA32_CR_PAT | MSR_EFER => true,
        MSR_INTEL_MISC_FEATURES_ENABLES => val == 0,
        MSR_IA32_MCG_STATUS => true,
        // Intel's "write 0, cpuid, read" protocol for the revision.
        MSR_IA32_UCODE_REV => val == 0,
        // MCi_CTL may be set to all-ones or 0; status/addr/misc cleared.
        m if is_mc_bank(m) => (m - MSR_IA32_MC0_CTL) % 4 == 0 || val == 0,
        _ => false,
    }
}

fn is_mc_bank(msr: u32) -> bool {
    (MSR_IA32_MC0_CTL..MSR_IA32_MC0_CTL + 4 * GUEST_MC_BANK_NUM as u32).contains(&msr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_msrs_and_banks_past_the_last_are_refused() {
        for msr in [0u32, 0x3a, 0x48, 0x10a, 0x17b, 0x400 + 8, 0xc000_0081, 0x4000_0000, u32::MAX] {
            assert_eq!(read_fixed(msr, 0), None, "{msr:#x}");
            assert!(!write_fixed(msr, 0), "{msr:#x}");
        }
        assert_eq!(read_fixed(MSR_IA32_MCG_CAP, 0), Some(2));
        assert!(write_fixed(0x401, 0) && !write_fixed(0x401, 1));
    }

    #[test]
    fn only_the_boot_vcpu_is_the_bsp() {
        assert_ne!(read_fixed(MSR_IA32_APICBASE, 0).unwrap() & APIC_BSP, 0);
        assert_eq!(read_fixed(MSR_IA32_APICBASE, 1).unwrap() & APIC_BSP, 0);
    }
}
