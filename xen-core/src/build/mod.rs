//! Building a PV domain from an ELF image, as Xen's PV builder does.

pub mod elf;
pub mod layout;
pub mod pv;

pub use pv::{build_pv_domain, BuildRequest, Built};
