//! The machine under the portable core. Only x86-64 exists.
pub mod x86_64;
