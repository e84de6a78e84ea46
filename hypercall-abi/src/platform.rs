//! `platform_op` (`platform.h`): the hardware domain's view of the physical
//! platform (wallclock, CPUs, firmware tables, power states).

use crate::assert_layout;

/// `XENPF_INTERFACE_VERSION`: any other value in an op is `-EACCES`.
pub const XENPF_INTERFACE_VERSION: u32 = 0x0300_0001;

pub const XENPF_settime32: u32 = 17;
pub const XENPF_add_memtype: u32 = 31;
pub const XENPF_del_memtype: u32 = 32;
pub const XENPF_read_memtype: u32 = 33;
pub const XENPF_microcode_update: u32 = 35;
pub const XENPF_platform_quirk: u32 = 39;
pub const XENPF_get_cpu_version: u32 = 48;
pub const XENPF_efi_runtime_call: u32 = 49;
pub const XENPF_firmware_info: u32 = 50;
pub const XENPF_enter_acpi_sleep: u32 = 51;
pub const XENPF_change_freq: u32 = 52;
pub const XENPF_getidletime: u32 = 53;
pub const XENPF_set_processor_pminfo: u32 = 54;
pub const XENPF_get_cpuinfo: u32 = 55;
pub const XENPF_cpu_online: u32 = 56;
pub const XENPF_cpu_offline: u32 = 57;
pub const XENPF_cpu_hotadd: u32 = 58;
pub const XENPF_mem_hotadd: u32 = 59;
pub const XENPF_core_parking: u32 = 60;
pub const XENPF_resource_op: u32 = 61;
pub const XENPF_settime64: u32 = 62;
pub const XENPF_get_symbol: u32 = 63;

/// `struct xen_platform_op`: the command, the interface version, then a
/// 128-byte union of the commands' arguments.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenPlatformOp {
    pub cmd: u32,
    pub interface_version: u32,
    pub u: [u8; 128],
}
assert_layout!(XenPlatformOp, size = 136, cmd = 0, interface_version = 4, u = 8);

/// `struct xenpf_settime32` (`XENPF_settime32`): the wallclock was
/// `secs`.`nsecs` at system time `system_time`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenpfSettime32 {
    pub secs: u32,
    pub nsecs: u32,
    pub system_time: u64,
}
assert_layout!(XenpfSettime32, size = 16, secs = 0, nsecs = 4, system_time = 8);

/// `struct xenpf_settime64` (`XENPF_settime64`); `mbz` must be zero.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenpfSettime64 {
    pub secs: u64,
    pub nsecs: u32,
    pub mbz: u32,
    pub system_time: u64,
}
assert_layout!(XenpfSettime64, size = 24, secs = 0, nsecs = 8, mbz = 12, system_time = 16);

pub const XEN_PCPU_FLAGS_ONLINE: u32 = 1;
pub const XEN_PCPU_FLAGS_INVALID: u32 = 2;

/// `struct xenpf_pcpuinfo` (`XENPF_get_cpuinfo`): in `xen_cpuid`, out the
/// rest.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenpfPcpuinfo {
    pub xen_cpuid: u32,
    pub max_present: u32,
    pub flags: u32,
    pub apic_id: u32,
    pub acpi_id: u32,
}
assert_layout!(XenpfPcpuinfo, size = 20, xen_cpuid = 0, max_present = 4, flags = 8, apic_id = 12, acpi_id = 16);

/// `struct xenpf_pcpu_version` (`XENPF_get_cpu_version`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenpfPcpuVersion {
    pub xen_cpuid: u32,
    pub max_present: u32,
    pub vendor_id: [u8; 12],
    pub family: u32,
    pub model: u32,
    pub stepping: u32,
}
assert_layout!(XenpfPcpuVersion, size = 32, xen_cpuid = 0, max_present = 4, vendor_id = 8, family = 20, model = 24, stepping = 28);

pub const XEN_FW_DISK_INFO: u32 = 1;
pub const XEN_FW_DISK_MBR_SIGNATURE: u32 = 2;
pub const XEN_FW_VBEDDC_INFO: u32 = 3;
pub const XEN_FW_EFI_INFO: u32 = 4;
pub const XEN_FW_KBD_SHIFT_FLAGS: u32 = 5;

/// `struct xenpf_firmware_info` (`XENPF_firmware_info`): `type` and `index`
/// in, then a union whose first member starts 8-byte aligned (`u`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenpfFirmwareInfo {
    pub ty: u32,
    pub index: u32,
    /// `u.kbd_shift_flags` is its first byte.
    pub u: [u8; 120],
}
assert_layout!(XenpfFirmwareInfo, size = 128, ty = 0, index = 4, u = 8);
