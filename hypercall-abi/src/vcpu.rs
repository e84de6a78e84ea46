//! `vcpu_op` (`vcpu.h`): bringing vCPUs up and down, their timers and
//! where their shared state lives.

use crate::assert_layout;

/// `arg` = [`crate::arch::VcpuGuestContext`].
pub const VCPUOP_initialise: u32 = 0;
pub const VCPUOP_up: u32 = 1;
pub const VCPUOP_down: u32 = 2;
/// Returns 1 if the vCPU is up.
pub const VCPUOP_is_up: u32 = 3;
/// `arg` = [`VcpuRunstateInfo`].
pub const VCPUOP_get_runstate_info: u32 = 4;
/// `arg` = [`VcpuRegisterRunstateMemoryArea`].
pub const VCPUOP_register_runstate_memory_area: u32 = 5;
/// `arg` = [`VcpuSetPeriodicTimer`].
pub const VCPUOP_set_periodic_timer: u32 = 6;
pub const VCPUOP_stop_periodic_timer: u32 = 7;
/// `arg` = [`VcpuSetSingleshotTimer`].
pub const VCPUOP_set_singleshot_timer: u32 = 8;
pub const VCPUOP_stop_singleshot_timer: u32 = 9;
/// `arg` = [`VcpuRegisterVcpuInfo`].
pub const VCPUOP_register_vcpu_info: u32 = 10;
pub const VCPUOP_send_nmi: u32 = 11;
/// `arg` = `u64` (`vcpu_get_physid`).
pub const VCPUOP_get_physid: u32 = 12;
/// `arg` = [`VcpuRegisterRunstateMemoryArea`]-shaped (`vcpu_register_time_memory_area`).
pub const VCPUOP_register_vcpu_time_memory_area: u32 = 13;

// RUNSTATE_*.
pub const RUNSTATE_running: i32 = 0;
pub const RUNSTATE_runnable: i32 = 1;
pub const RUNSTATE_blocked: i32 = 2;
pub const RUNSTATE_offline: i32 = 3;

/// `VCPUOP_set_singleshot_timer` flag: fail with -ETIME if the time has passed.
pub const VCPU_SSHOTTMR_future: u32 = 1 << 0;

/// `struct vcpu_runstate_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuRunstateInfo {
    /// `RUNSTATE_*`.
    pub state: i32,
    pub _pad: u32,
    /// System time (ns) the current state was entered.
    pub state_entry_time: u64,
    /// Time spent in each `RUNSTATE_*` (ns).
    pub time: [u64; 4],
}
assert_layout!(VcpuRunstateInfo, size = 48, state = 0, state_entry_time = 8, time = 16);

/// `struct vcpu_register_runstate_memory_area` (and the identically laid
/// out `vcpu_register_time_memory_area`): a guest virtual address on x86.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuRegisterRunstateMemoryArea {
    pub addr: u64,
}
assert_layout!(VcpuRegisterRunstateMemoryArea, size = 8, addr = 0);

/// `struct vcpu_set_periodic_timer`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuSetPeriodicTimer {
    pub period_ns: u64,
}
assert_layout!(VcpuSetPeriodicTimer, size = 8, period_ns = 0);

/// `struct vcpu_set_singleshot_timer`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuSetSingleshotTimer {
    /// Absolute system time in ns.
    pub timeout_abs_ns: u64,
    /// `VCPU_SSHOTTMR_*`.
    pub flags: u32,
    pub _pad: u32,
}
assert_layout!(VcpuSetSingleshotTimer, size = 16, timeout_abs_ns = 0, flags = 8);

/// `struct vcpu_register_vcpu_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuRegisterVcpuInfo {
    pub mfn: u64,
    /// Offset in the page; the 64-byte `vcpu_info` must not cross it.
    pub offset: u32,
    pub rsvd: u32,
}
assert_layout!(VcpuRegisterVcpuInfo, size = 16, mfn = 0, offset = 8, rsvd = 12);
