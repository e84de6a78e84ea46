//! CPUID for PV guests: Xen's forced-emulation prefix and Xen 4.17's PV
//! CPUID policy (Xen's `pv/emul-inv-op.c`, `cpu-policy.c`, `cpuid.c`).
//!
//! A PV kernel runs in ring 3, where `cpuid` executes natively and shows
//! the real processor. Kernels that want the hypervisor's view write
//! `ud2; .ascii "xen"; cpuid` (bytes `0f 0b 78 65 6e 0f a2`): the `ud2`
//! raises #UD, the hypervisor recognises the signature, answers the CPUID
//! with the guest's policy and resumes after the seven bytes.
//!
//! The policy is the host's CPUID filtered as Xen 4.17 filters it for PV
//! guests: per feature word, the bits marked `A` (all guests, on by
//! default) in Xen's `public/arch-x86/cpufeatureset.h`; `S`/`H` bits (HVM
//! only: VME, PSE, PGE, PSE36, VMX, SVM, SMEP, SMAP, UMIP, PCID, INVPCID,
//! PKU, 1 GiB pages, TSC_ADJUST, ...) and unmarked ones (MONITOR, DS, the
//! thermal and performance-monitoring bits, ...) are hidden. On top of that,
//! as Xen 4.17 was seen to do under QEMU (`-cpu max`, XTF's `test-pv64-cpuid`
//! as Dom0, every leaf compared in this module's tests): MTRR only for the
//! hardware domain, SEP hidden on AMD (no `sysenter` in long mode), the
//! hypervisor bit set, the APIC id cleared, leaves 5, 6, 0xa, 0xb and
//! 0x8000000a zeroed, the virtual-address width capped at 48 bits, XSAVE's
//! leaf limited to the x87, SSE and AVX components.
//!
//! Deliberate difference: FSGSBASE (an `A` feature Xen 4.17 shows) is
//! hidden, because xen-core does not let PV guests turn CR4.FSGSBASE on:
//! a kernel seeing it would execute `rdfsbase` and take #UD.
//!
//! Leaves 0x40000000.. are Xen's (`public/arch-x86/cpuid.h`): the
//! "XenVMMXenVMM" signature with the highest leaf, the version, the
//! hypercall-page MSR, the time leaf.

use crate::platform::Platform;

/// The forced-emulation signature and the one instruction emulated.
pub const FORCED_EMULATION: [u8; 7] = [0x0f, 0x0b, b'x', b'e', b'n', 0x0f, 0xa2];

/// Xen's hypervisor leaves: base and the highest one (Xen 4.17: 0x40000005).
pub const XEN_CPUID_BASE: u32 = 0x4000_0000;
pub const XEN_CPUID_MAX: u32 = 0x4000_0005;
/// The MSR a guest writes to have a hypercall page filled (leaf 0x40000002).
pub const XEN_HYPERCALL_PAGE_MSR: u32 = 0x4000_0000;
/// `XEN_CPUID_FEAT1_MMU_PT_UPDATE_PRESERVE_AD`, in leaf 0x40000002 ECX.
const XEN_CPUID_FEAT1_MMU_PT_UPDATE_PRESERVE_AD: u32 = 1 << 0;
/// Leaf 0x40000003 subleaf 0 EAX as Xen 4.17 reports it to PV guests
/// (bit 2: `XEN_CPUID_TSC_STABLE`... as observed: 4).
const XEN_TSC_LEAF_FLAGS: u32 = 4;

/// Which guest asks: the hardware domain sees MTRR (Xen keeps it for
/// Dom0's `XENPF_*_memtype` users).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Guest {
    pub hardware_domain: bool,
}

const fn bits(list: &[u32]) -> u32 {
    let mut m = 0;
    let mut i = 0;
    while i < list.len() {
        m |= 1 << list[i];
        i += 1;
    }
    m
}

// The `A` bits of each feature word (cpufeatureset.h).
/// Word 0, leaf 1 EDX: FPU DE TSC MSR PAE MCE CX8 APIC SEP MCA CMOV PAT
/// CLFLUSH ACPI MMX FXSR SSE SSE2 SS HTT.
const L1_EDX: u32 = bits(&[0, 2, 4, 5, 6, 7, 8, 9, 11, 14, 15, 16, 19, 22, 23, 24, 25, 26, 27, 28]);
const L1_EDX_MTRR: u32 = 1 << 12;
const L1_EDX_SEP: u32 = 1 << 11;
/// Word 1, leaf 1 ECX: SSE3 PCLMULQDQ SSSE3 FMA CX16 SSE4.1 SSE4.2 MOVBE
/// POPCNT TSC_DEADLINE (shown by 4.17, seen) AESNI XSAVE OSXSAVE AVX F16C
/// RDRAND HYPERVISOR. Not x2APIC: PV guests have no local APIC of their own.
const L1_ECX: u32 = bits(&[0, 1, 9, 12, 13, 19, 20, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31]);
const L1_ECX_HYPERVISOR: u32 = 1 << 31;
/// Word 2, leaf 0x80000001 EDX: SYSCALL NX MMXEXT FFXSR RDTSCP LM 3DNOWEXT
/// 3DNOW, and on AMD the bits it shares with leaf 1 EDX.
const E1_EDX: u32 = bits(&[11, 20, 22, 25, 27, 29, 30, 31]);
const E1_EDX_SHARED_WITH_L1: u32 = bits(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 14, 15, 16, 17, 23, 24]);
/// Word 3, leaf 0x80000001 ECX: LAHF_LM CMP_LEGACY ABM SSE4A MISALIGNSSE
/// 3DNOWPREFETCH XOP FMA4 TBM DBEXT.
const E1_ECX: u32 = bits(&[0, 1, 5, 6, 7, 8, 11, 16, 21, 26]);
/// Word 4, leaf 0xd subleaf 1 EAX: XSAVEOPT XSAVEC XGETBV1.
const XSAVE1_EAX: u32 = bits(&[0, 1, 2]);
/// Word 5, leaf 7 EBX: BMI1 AVX2 BMI2 ERMS RTM AVX512F/DQ RDSEED ADX
/// AVX512_IFMA CLFLUSHOPT CLWB AVX512PF/ER/CD SHA AVX512BW/VL (FSGSBASE,
/// bit 0: see the module comment).
const L7_EBX: u32 = bits(&[3, 5, 8, 9, 11, 16, 17, 18, 19, 21, 23, 24, 26, 27, 28, 29, 30, 31]);
/// Word 6, leaf 7 ECX: PREFETCHWT1 AVX512_VBMI AVX512_VBMI2 GFNI VAES
/// VPCLMULQDQ AVX512_VNNI AVX512_BITALG AVX512_VPOPCNTDQ RDPID CLDEMOTE.
const L7_ECX: u32 = bits(&[0, 1, 6, 8, 9, 10, 11, 12, 14, 22, 25]);
/// Word 9, leaf 7 EDX: AVX512_4VNNIW AVX512_4FMAPS FSRM MD_CLEAR SERIALIZE
/// IBRSB STIBP SSBD.
const L7_EDX: u32 = bits(&[2, 3, 4, 10, 14, 26, 27, 31]);
/// Word 8, leaf 0x80000008 EBX: CLZERO RSTR_FP_ERR_PTRS IBPB SSB_NO BTC_NO
/// IBPB_RET.
const E8_EBX: u32 = bits(&[0, 2, 12, 26, 29, 30]);
/// XSAVE components a PV guest may enable: x87, SSE, AVX.
const XSAVE_COMPONENTS: u32 = 0x7;
/// Xen 4.17 reports extended leaves up to 0x80000021 on AMD.
const AMD_EXTD_MAX: u32 = 0x8000_0021;

/// Leaf 0 EBX/EDX/ECX of AMD processors: "AuthenticAMD".
fn is_amd(leaf0: [u32; 4]) -> bool {
    leaf0[1] == 0x6874_7541 && leaf0[3] == 0x6974_6e65 && leaf0[2] == 0x444d_4163
}

/// The answer to CPUID (`leaf`, `subleaf`) for a PV guest, from the host's
/// answers (`host`). Returns EAX, EBX, ECX, EDX.
pub fn pv_cpuid(leaf: u32, subleaf: u32, guest: Guest, tsc_khz: u64, host: impl Fn(u32, u32) -> [u32; 4]) -> [u32; 4] {
    let l0 = host(0, 0);
    let amd = is_amd(l0);
    let max_basic = l0[0].min(0xd);
    if (XEN_CPUID_BASE..=XEN_CPUID_BASE + 0xff).contains(&leaf) {
        return xen_leaf(leaf, subleaf, tsc_khz);
    }
    let extd_max = if amd { AMD_EXTD_MAX } else { host(0x8000_0000, 0)[0] };
    let in_range = if leaf & 0x8000_0000 != 0 { leaf <= extd_max } else { leaf <= max_basic };
    if !in_range {
        return [0; 4];
    }
    let [a, b, c, d] = host(leaf, subleaf);
    match leaf {
        0 => [max_basic, b, c, d],
        1 => {
            let mut edx = L1_EDX;
            if guest.hardware_domain {
                edx |= L1_EDX_MTRR;
            }
            if amd {
                edx &= !L1_EDX_SEP;
            }
            [a, b & 0x00ff_ffff, (c & L1_ECX) | L1_ECX_HYPERVISOR, d & edx]
        }
        2 | 3 | 4 => [a, b, c, d],
        7 if subleaf == 0 => [0, b & L7_EBX, c & L7_ECX, d & L7_EDX],
        0xd => match subleaf {
            0 => {
                let xcr0 = a & XSAVE_COMPONENTS;
                // The area for x87+SSE (legacy 512 + header 64) and AVX.
                let size = if xcr0 & 4 != 0 { 0x340 } else { 0x240 };
                [xcr0, b, size, 0]
            }
            1 => [a & XSAVE1_EAX, 0, 0, 0],
            2 if a != 0 => [a, b, 0, 0],
            _ => [0; 4],
        },
        0x8000_0000 => [extd_max, b, c, d],
        0x8000_0001 => {
            let mut edx = E1_EDX;
            if amd {
                let mut shared = L1_EDX & E1_EDX_SHARED_WITH_L1;
                if guest.hardware_domain {
                    shared |= L1_EDX_MTRR;
                }
                edx |= shared;
            }
            [a, b, c & E1_ECX, d & edx]
        }
        0x8000_0002..=0x8000_0006 => [a, b, c, d],
        0x8000_0008 => {
            // Physical-address bits as the host; linear ones at most 48.
            let va = ((a >> 8) & 0xff).min(48);
            [(a & 0xff) | (va << 8), b & E8_EBX, 0, 0]
        }
        _ => [0; 4],
    }
}

fn xen_leaf(leaf: u32, subleaf: u32, tsc_khz: u64) -> [u32; 4] {
    let sig = |s: &[u8; 4]| u32::from_le_bytes(*s);
    match leaf - XEN_CPUID_BASE {
        0 => [XEN_CPUID_MAX, sig(b"XenV"), sig(b"MMXe"), sig(b"nVMM")],
        1 => {
            let (major, minor) = (crate::hypercall::xen_version::XEN_MAJOR as u32, crate::hypercall::xen_version::XEN_MINOR as u32);
            [(major << 16) | minor, 0, 0, 0]
        }
        // One hypercall page, filled by writing its address to the MSR.
        2 => [1, XEN_HYPERCALL_PAGE_MSR, XEN_CPUID_FEAT1_MMU_PT_UPDATE_PRESERVE_AD, 0],
        3 => match subleaf {
            0 => [XEN_TSC_LEAF_FLAGS, 0, 0, 0],
            2 => [tsc_khz as u32, 0, 0, 0],
            _ => [0; 4],
        },
        _ => [0; 4],
    }
}

impl<P: Platform> crate::xen::Xen<P> {
    /// #UD from the guest: if RIP points at the forced-emulation prefix,
    /// answer the CPUID and step over it. `false`: not ours, deliver #UD.
    /// The bytes are read through the checked accessor (RIP is the guest's).
    pub(crate) fn forced_emulation(&mut self, regs: &mut crate::regs::GuestRegs) -> bool {
        let Some((d, _)) = self.current else { return false };
        let mut insn = [0u8; 7];
        let Some(g) = self.guest_mem() else { return false };
        if g.copy_from_guest(regs.rip, &mut insn).is_err() || insn != FORCED_EMULATION {
            return false;
        }
        let guest = Guest { hardware_domain: d == crate::domain::DomId::DOM0 };
        let p = &self.platform;
        let [a, b, c, dx] = pv_cpuid(regs.rax as u32, regs.rcx as u32, guest, p.tsc_khz(), |l, s| p.cpuid(l, s));
        (regs.rax, regs.rbx, regs.rcx, regs.rdx) = (a as u64, b as u64, c as u64, dx as u64);
        regs.rip = regs.rip.wrapping_add(FORCED_EMULATION.len() as u64);
        // An emulated instruction completes: no pending resume flag.
        regs.rflags &= !crate::regs::RFLAGS_RF;
        true
    }
}
