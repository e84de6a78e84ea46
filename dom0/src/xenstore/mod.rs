//! XenStore, served by Dom0 as Xen's `xenstored` serves it: a tree of
//! nodes with permissions, transactions and watches, reached by each domain
//! over its store ring (`io/xs_wire.h`), and by Dom0's own toolstack
//! directly (as xl reaches xenstored through its socket).
//!
//! - [`path`] holds node names, relative paths;
//! - [`perms`] permissions;
//! - [`tree`] nodes and transactions;
//! - [`store`] the operations with their checks and quotas, watches,
//!   introduced domains;
//! - [`request`] one wire message in, one reply out;
//! - [`ring`] a connection's bytes over the shared ring page;
//! - `daemon` the rings of the introduced domains, their event channels.
//!
//! All but the daemon are plain Rust, tested on the host.

pub mod path;
pub mod perms;
pub mod request;
pub mod ring;
pub mod store;
pub mod tree;

#[cfg(not(test))]
pub mod daemon;

#[cfg(test)]
mod tests;

pub use store::Store;

/// The errors a store operation answers, sent as their names
/// (`xsd_errors` in `xs_wire.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(clippy::upper_case_acronyms)]
pub enum Error {
    EINVAL,
    EACCES,
    EEXIST,
    EISDIR,
    ENOENT,
    ENOMEM,
    ENOSPC,
    EIO,
    ENOTEMPTY,
    ENOSYS,
    EROFS,
    EBUSY,
    EAGAIN,
    EISCONN,
    E2BIG,
    EPERM,
}

impl Error {
    pub fn name(self) -> &'static str {
        hypercall_abi::xs_wire::XSD_ERRORS[self as usize]
    }

    pub fn from_name(s: &str) -> Option<Error> {
        use Error::*;
        [EINVAL, EACCES, EEXIST, EISDIR, ENOENT, ENOMEM, ENOSPC, EIO, ENOTEMPTY, ENOSYS, EROFS, EBUSY, EAGAIN, EISCONN, E2BIG, EPERM]
            .into_iter()
            .find(|e| e.name() == s)
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}
