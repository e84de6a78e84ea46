//! Xen's x86-64 PV guest ABI as Rust.
//!
//! Every number, flag and structure here is taken from Xen's public headers
//! (`xen/include/public/` in xen-project/xen, as of Xen 4.17), with the header
//! names kept: constants are spelt exactly as in the header (`SCHEDOP_shutdown`,
//! `GNTTABOP_map_grant_ref`), except hypercall numbers, which drop the prefix
//! (`__HYPERVISOR_mmu_update` is [`nr::MMU_UPDATE`]); structures take the
//! CamelCase of their C name (`start_info` is [`start_info::StartInfo`]);
//! `XEN_EFAULT` is [`errno::Errno::EFAULT`]. Each
//! `#[repr(C)]` structure is checked at compile time against the size and
//! field offsets the header gives on x86-64, so a layout slip fails the build
//! instead of corrupting a guest.
//!
//! Padding that C leaves implicit is spelt out as `_pad*` fields: the hypervisor
//! copies these structures into guest memory, and an uninitialised padding
//! byte would leak hypervisor stack contents.
//!
//! The crate is `no_std`; host unit tests run under `cargo test`.
#![cfg_attr(not(test), no_std)]
// Constants keep the header's spelling (`SCHEDOP_shutdown`, `XENVER_version`)
// so that code and headers can be grepped for the same names.
#![allow(non_upper_case_globals)]

pub mod arch;
pub mod blkif;
pub mod callback;
pub mod console;
pub mod domctl;
pub mod elfnote;
pub mod errno;
pub mod evtchn;
pub mod grant;
pub mod guest;
pub mod hypercall_page;
pub mod memory;
pub mod mm;
pub mod nr;
pub mod physdev;
pub mod platform;
pub mod sched;
pub mod shared_info;
pub mod start_info;
pub mod vcpu;
pub mod version;
pub mod xs_wire;

pub use errno::Errno;

/// `domid_t`.
pub type DomId = u16;
/// `evtchn_port_t`.
pub type EvtchnPort = u32;
/// `grant_ref_t`.
pub type GrantRef = u32;
/// `grant_handle_t`.
pub type GrantHandle = u32;
/// `xen_pfn_t` (a frame number: an MFN for PV guests).
pub type XenPfn = u64;
/// `xen_ulong_t`.
pub type XenUlong = u64;

/// Asserts a `#[repr(C)]` type's size and the offset of each named field,
/// with the numbers read off the public header for x86-64.
macro_rules! assert_layout {
    ($ty:ty, size = $size:expr $(, $field:ident = $off:expr)* $(,)?) => {
        const _: () = assert!(core::mem::size_of::<$ty>() == $size);
        $(const _: () = assert!(core::mem::offset_of!($ty, $field) == $off);)*
    };
}
pub(crate) use assert_layout;

/// Marks a type as plain integers without implicit padding: every byte image
/// is a valid value, so it converts to and from bytes safely.
macro_rules! plain_bytes {
    ($ty:ty) => {
        impl $ty {
            pub const SIZE: usize = core::mem::size_of::<$ty>();

            /// The structure as the guest sees it in memory.
            pub fn to_bytes(&self) -> [u8; core::mem::size_of::<$ty>()] {
                // SAFETY: the type is `#[repr(C)]` integers with its padding
                // spelt out as fields (its `assert_layout!` sums them), so all
                // SIZE bytes are initialised.
                unsafe { core::mem::transmute_copy(self) }
            }

            /// The structure from the bytes a guest passed.
            pub fn from_bytes(b: &[u8; core::mem::size_of::<$ty>()]) -> Self {
                // SAFETY: as in `to_bytes`, every bit pattern of every field
                // is a valid value; `read_unaligned` needs no alignment.
                unsafe { core::ptr::read_unaligned(b.as_ptr() as *const $ty) }
            }
        }
    };
}
pub(crate) use plain_bytes;
