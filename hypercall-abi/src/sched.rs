//! `sched_op` sub-commands (`sched.h`).

use crate::assert_layout;

pub const SCHEDOP_yield: u32 = 0;
/// Block until an event arrives; unmasks events atomically.
pub const SCHEDOP_block: u32 = 1;
/// `arg` = [`SchedShutdown`].
pub const SCHEDOP_shutdown: u32 = 2;
/// `arg` = [`SchedPoll`].
pub const SCHEDOP_poll: u32 = 3;
/// `arg` = [`SchedRemoteShutdown`].
pub const SCHEDOP_remote_shutdown: u32 = 4;
/// `arg` = [`SchedShutdown`]: latch the code reported at a later shutdown.
pub const SCHEDOP_shutdown_code: u32 = 5;
/// `arg` = [`SchedWatchdog`].
pub const SCHEDOP_watchdog: u32 = 6;
/// `arg` = [`SchedPinOverride`]; hardware domain only.
pub const SCHEDOP_pin_override: u32 = 7;

/// Domain exited normally: clean up and kill.
pub const SHUTDOWN_poweroff: u32 = 0;
/// Clean up, kill, then restart.
pub const SHUTDOWN_reboot: u32 = 1;
/// Clean up, save suspend info, kill.
pub const SHUTDOWN_suspend: u32 = 2;
/// The guest reports it crashed.
pub const SHUTDOWN_crash: u32 = 3;
/// Restart because the watchdog expired.
pub const SHUTDOWN_watchdog: u32 = 4;
/// Keep the memory, reset the rest (for kexec).
pub const SHUTDOWN_soft_reset: u32 = 5;
pub const SHUTDOWN_MAX: u32 = 5;

/// Xen's name of a shutdown reason, as its logs print it.
pub fn shutdown_reason_name(reason: u32) -> Option<&'static str> {
    Some(match reason {
        SHUTDOWN_poweroff => "poweroff",
        SHUTDOWN_reboot => "reboot",
        SHUTDOWN_suspend => "suspend",
        SHUTDOWN_crash => "crash",
        SHUTDOWN_watchdog => "watchdog",
        SHUTDOWN_soft_reset => "soft_reset",
        _ => return None,
    })
}

/// `struct sched_shutdown`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedShutdown {
    /// `SHUTDOWN_*`.
    pub reason: u32,
}
assert_layout!(SchedShutdown, size = 4, reason = 0);

/// `struct sched_poll`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedPoll {
    /// Guest handle: array of `evtchn_port_t`.
    pub ports: u64,
    pub nr_ports: u32,
    pub _pad: u32,
    /// Absolute system time in ns; 0 waits forever.
    pub timeout: u64,
}
assert_layout!(SchedPoll, size = 24, ports = 0, nr_ports = 8, timeout = 16);

/// `struct sched_remote_shutdown`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedRemoteShutdown {
    pub domain_id: u16,
    pub _pad: u16,
    pub reason: u32,
}
assert_layout!(SchedRemoteShutdown, size = 8, domain_id = 0, reason = 4);

/// `struct sched_watchdog`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedWatchdog {
    pub id: u32,
    pub timeout: u32,
}
assert_layout!(SchedWatchdog, size = 8, id = 0, timeout = 4);

/// `struct sched_pin_override`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedPinOverride {
    /// Negative undoes a previous override.
    pub pcpu: i32,
}
assert_layout!(SchedPinOverride, size = 4, pcpu = 0);
