//! `callback_op` (`callback.h`): registering the guest's entry points.

use crate::assert_layout;

pub const CALLBACKTYPE_event: u16 = 0;
pub const CALLBACKTYPE_failsafe: u16 = 1;
/// x86-64: 64-bit `syscall` from guest user mode.
pub const CALLBACKTYPE_syscall: u16 = 2;
/// Retired: x86-32 `sysenter` with a ring-0 kernel.
pub const CALLBACKTYPE_sysenter_deprecated: u16 = 3;
pub const CALLBACKTYPE_nmi: u16 = 4;
/// x86-64: `sysenter` from a 32-bit guest application (Intel).
pub const CALLBACKTYPE_sysenter: u16 = 5;
/// x86-64: `syscall` from a 32-bit guest application (AMD).
pub const CALLBACKTYPE_syscall32: u16 = 7;

/// Mask events while in the callback (ignored for event and NMI callbacks,
/// which always mask).
pub const CALLBACKF_mask_events: u16 = 1 << 0;

pub const CALLBACKOP_register: u32 = 0;
pub const CALLBACKOP_unregister: u32 = 1;

/// `struct callback_register`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallbackRegister {
    pub r#type: u16,
    pub flags: u16,
    pub _pad: u32,
    /// `xen_callback_t`: a plain address on x86-64.
    pub address: u64,
}
assert_layout!(CallbackRegister, size = 16, r#type = 0, flags = 2, address = 8);

/// `struct callback_unregister`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallbackUnregister {
    pub r#type: u16,
    pub _unused: u16,
}
assert_layout!(CallbackUnregister, size = 4, r#type = 0);
