//! `platform_op` (Xen's `xen/arch/x86/platform_hypercall.c`): what the
//! hardware domain asks about the physical platform. Linux as Dom0 calls it
//! at boot for its wallclock (`settime`), the physical CPUs (`get_cpuinfo`,
//! thousands of times, through its APIC-id reads; `get_cpu_version`) and the
//! firmware's disk and EFI information (`firmware_info`).
//!
//! The checks and errors are Xen 4.17's, in its order: the op is copied in
//! (`-EFAULT`), the interface version checked (`-EACCES`), then the caller's
//! privilege (`-EPERM`). Commands xen-core does not offer (memory types,
//! microcode, power and frequency management, CPU and memory hot-plug, EFI
//! runtime calls, `enter_acpi_sleep`) are `-ENOSYS`, Xen's answer for an
//! unknown command and for frequency control left to Xen.

use core::mem::{offset_of, size_of};

use super::{ret, HcResult};
use crate::platform::Platform;
use crate::xen::Xen;
use hypercall_abi::errno::Errno;
use hypercall_abi::platform::*;

/// Physical CPUs xen-core runs on: the boot CPU (as physinfo's `nr_cpus`).
const NR_PCPUS: u32 = 1;

/// Where field `f` of the union member `T` lies in the op.
macro_rules! at {
    ($arg:expr, $ty:ty, $f:ident) => {
        $arg.wrapping_add((offset_of!(XenPlatformOp, u) + offset_of!($ty, $f)) as u64)
    };
}

impl<P: Platform> Xen<P> {
    pub(super) fn do_platform_op(&mut self, [arg, ..]: [u64; 5]) -> HcResult {
        let g = self.guest_mem().ok_or(Errno::ESRCH)?;
        let mut op = [0u8; size_of::<XenPlatformOp>()];
        g.copy_from_guest(arg, &mut op)?;
        let word = |o: usize| u32::from_le_bytes([op[o], op[o + 1], op[o + 2], op[o + 3]]);
        let (cmd, version) = (word(offset_of!(XenPlatformOp, cmd)), word(offset_of!(XenPlatformOp, interface_version)));
        if version != XENPF_INTERFACE_VERSION {
            return Err(Errno::EACCES);
        }
        if !self.current_domain().is_some_and(|d| d.privileged) {
            return Err(Errno::EPERM);
        }
        let u = offset_of!(XenPlatformOp, u);
        let u32_at = |o: usize| word(u + o);
        let u64_at = |o: usize| u64::from(word(u + o)) | u64::from(word(u + o + 4)) << 32;
        match cmd {
            XENPF_settime32 => {
                let secs = u32_at(offset_of!(XenpfSettime32, secs)) as u64;
                let nsecs = u32_at(offset_of!(XenpfSettime32, nsecs));
                self.settime(secs, nsecs, u64_at(offset_of!(XenpfSettime32, system_time)));
                ret(0)
            }
            XENPF_settime64 => {
                if u32_at(offset_of!(XenpfSettime64, mbz)) != 0 {
                    return Err(Errno::EINVAL);
                }
                let secs = u64_at(offset_of!(XenpfSettime64, secs));
                let nsecs = u32_at(offset_of!(XenpfSettime64, nsecs));
                self.settime(secs, nsecs, u64_at(offset_of!(XenpfSettime64, system_time)));
                ret(0)
            }
            XENPF_get_cpuinfo => {
                let cpu = u32_at(offset_of!(XenpfPcpuinfo, xen_cpuid));
                let mut out = XenpfPcpuinfo { xen_cpuid: cpu, max_present: NR_PCPUS - 1, ..Default::default() };
                if cpu < NR_PCPUS {
                    // The initial APIC id, CPUID leaf 1 EBX[31:24]; QEMU's
                    // MADT numbers ACPI processors as the CPUs.
                    out.apic_id = self.platform.cpuid(1, 0)[1] >> 24;
                    out.acpi_id = cpu;
                    out.flags = XEN_PCPU_FLAGS_ONLINE;
                } else {
                    // Xen leaves apic_id and acpi_id as the caller gave them.
                    out.apic_id = u32_at(offset_of!(XenpfPcpuinfo, apic_id));
                    out.acpi_id = u32_at(offset_of!(XenpfPcpuinfo, acpi_id));
                    out.flags = XEN_PCPU_FLAGS_INVALID;
                }
                let mut b = [0u8; size_of::<XenpfPcpuinfo>()];
                for (i, v) in [out.xen_cpuid, out.max_present, out.flags, out.apic_id, out.acpi_id].iter().enumerate() {
                    b[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes());
                }
                g.copy_to_guest(at!(arg, XenpfPcpuinfo, xen_cpuid), &b)?;
                ret(0)
            }
            XENPF_get_cpu_version => {
                let cpu = u32_at(offset_of!(XenpfPcpuVersion, xen_cpuid));
                let (mut vendor, mut fms) = ([0u8; 12], [0u32; 3]);
                if cpu < NR_PCPUS {
                    let [_, b, c, d] = self.platform.cpuid(0, 0);
                    for (i, r) in [b, d, c].iter().enumerate() {
                        vendor[4 * i..4 * i + 4].copy_from_slice(&r.to_le_bytes());
                    }
                    fms = family_model_stepping(self.platform.cpuid(1, 0)[0]);
                }
                g.write_u32(at!(arg, XenpfPcpuVersion, max_present), NR_PCPUS - 1)?;
                g.copy_to_guest(at!(arg, XenpfPcpuVersion, vendor_id), &vendor)?;
                g.write_u32(at!(arg, XenpfPcpuVersion, family), fms[0])?;
                g.write_u32(at!(arg, XenpfPcpuVersion, model), fms[1])?;
                g.write_u32(at!(arg, XenpfPcpuVersion, stepping), fms[2])?;
                ret(0)
            }
            XENPF_firmware_info => {
                let index = u32_at(offset_of!(XenpfFirmwareInfo, index));
                match u32_at(offset_of!(XenpfFirmwareInfo, ty)) {
                    // xen-core is booted by Multiboot, not through a real-mode
                    // stub that asks the BIOS: it has no EDD, MBR-signature
                    // or VBE EDID records, which Xen says with -ESRCH.
                    XEN_FW_DISK_INFO | XEN_FW_DISK_MBR_SIGNATURE | XEN_FW_VBEDDC_INFO => Err(Errno::ESRCH),
                    // As Xen built without EFI support: not booted from EFI.
                    XEN_FW_EFI_INFO => Err(Errno::ENOSYS),
                    XEN_FW_KBD_SHIFT_FLAGS if index == 0 => {
                        // The BIOS keyboard flags, which nobody read: none set.
                        g.copy_to_guest(at!(arg, XenpfFirmwareInfo, u), &[0])?;
                        ret(0)
                    }
                    XEN_FW_KBD_SHIFT_FLAGS => Err(Errno::ESRCH),
                    _ => Err(Errno::EINVAL),
                }
            }
            XENPF_platform_quirk => match u32_at(0) {
                // QUIRK_NOIRQBALANCING, QUIRK_IOAPIC_BAD_REGSEL, _GOOD_REGSEL:
                // nothing for xen-core to balance or program.
                1..=3 => ret(0),
                _ => Err(Errno::EINVAL),
            },
            _ => {
                let (d, v) = self.current.map_or((0, 0), |(d, v)| (d.0, v));
                crate::gdprintk!("d{}v{} platform_op {} not implemented", d, v, cmd);
                Err(Errno::ENOSYS)
            }
        }
    }

    /// Xen's `do_settime`: the wallclock was `secs`.`nsecs` at system time
    /// `system_time`; every domain's shared_info gets the new base. Xen's
    /// arithmetic, wrapping as its unsigned 64-bit one does.
    fn settime(&mut self, secs: u64, nsecs: u32, system_time: u64) {
        let x = secs.wrapping_mul(1_000_000_000).wrapping_add(nsecs as u64).wrapping_sub(system_time);
        self.wallclock = Some((x / 1_000_000_000, (x % 1_000_000_000) as u32));
        let ids: alloc::vec::Vec<_> = self.domains.keys().copied().collect();
        for d in ids {
            self.update_wallclock(d);
        }
    }
}

/// Xen's `get_cpu_family`: family (with the extended family for 0xf),
/// model (with the extended model from family 6 on) and stepping.
fn family_model_stepping(eax: u32) -> [u32; 3] {
    let mut family = (eax >> 8) & 0xf;
    if family == 0xf {
        family += (eax >> 20) & 0xff;
    }
    let mut model = (eax >> 4) & 0xf;
    if family >= 6 {
        model |= (eax >> 12) & 0xf0;
    }
    [family, model, eax & 0xf]
}

#[cfg(test)]
mod tests {
    use super::family_model_stepping;

    #[test]
    fn family_and_model_fold_in_their_extensions_as_xen_does() {
        // An AMD family 0x17 model 0x31 stepping 0 (Zen 2): base family 0xf.
        assert_eq!(family_model_stepping(0x0083_0f10), [0x17, 0x31, 0]);
        // Intel family 6 model 0x55 stepping 4: extended model counts.
        assert_eq!(family_model_stepping(0x0005_0654), [6, 0x55, 4]);
        // Family 5: no extensions.
        assert_eq!(family_model_stepping(0x0000_0552), [5, 5, 2]);
    }
}
