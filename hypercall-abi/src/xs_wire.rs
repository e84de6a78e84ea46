//! The XenStore wire protocol (`io/xs_wire.h`): message types, the message
//! header, the error strings, and the shared ring page between a domain and
//! the store daemon (`struct xenstore_domain_interface`).

use crate::assert_layout;

/// `enum xsd_sockmsg_type`.
pub const XS_CONTROL: u32 = 0; // XS_DEBUG in older headers
pub const XS_DIRECTORY: u32 = 1;
pub const XS_READ: u32 = 2;
pub const XS_GET_PERMS: u32 = 3;
pub const XS_WATCH: u32 = 4;
pub const XS_UNWATCH: u32 = 5;
pub const XS_TRANSACTION_START: u32 = 6;
pub const XS_TRANSACTION_END: u32 = 7;
pub const XS_INTRODUCE: u32 = 8;
pub const XS_RELEASE: u32 = 9;
pub const XS_GET_DOMAIN_PATH: u32 = 10;
pub const XS_WRITE: u32 = 11;
pub const XS_MKDIR: u32 = 12;
pub const XS_RM: u32 = 13;
pub const XS_SET_PERMS: u32 = 14;
pub const XS_WATCH_EVENT: u32 = 15;
pub const XS_ERROR: u32 = 16;
pub const XS_IS_DOMAIN_INTRODUCED: u32 = 17;
pub const XS_RESUME: u32 = 18;
pub const XS_SET_TARGET: u32 = 19;
pub const XS_RESTRICT: u32 = 20;
pub const XS_RESET_WATCHES: u32 = 21;
pub const XS_DIRECTORY_PART: u32 = 22;
/// Guaranteed to remain an invalid type.
pub const XS_INVALID: u32 = 0xffff;

/// `struct xsd_sockmsg`: the header before every request and reply.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XsdSockmsg {
    /// `XS_*`.
    pub r#type: u32,
    /// Echoed in the daemon's reply.
    pub req_id: u32,
    /// Transaction id, 0 outside a transaction.
    pub tx_id: u32,
    /// Length of the payload that follows.
    pub len: u32,
}
assert_layout!(XsdSockmsg, size = 16, r#type = 0, req_id = 4, tx_id = 8, len = 12);

impl XsdSockmsg {
    pub const SIZE: usize = 16;

    pub fn to_bytes(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        for (i, v) in [self.r#type, self.req_id, self.tx_id, self.len].iter().enumerate() {
            b[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes());
        }
        b
    }

    pub fn from_bytes(b: &[u8; 16]) -> Self {
        let w = |i: usize| u32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]);
        XsdSockmsg { r#type: w(0), req_id: w(1), tx_id: w(2), len: w(3) }
    }
}

/// `enum xs_watch_type`: the fields of a `XS_WATCH_EVENT` payload.
pub const XS_WATCH_PATH: usize = 0;
pub const XS_WATCH_TOKEN: usize = 1;

/// `xsd_errors`: errors travel as these strings in an `XS_ERROR` reply.
pub const XSD_ERRORS: &[&str] = &[
    "EINVAL", "EACCES", "EEXIST", "EISDIR", "ENOENT", "ENOMEM", "ENOSPC", "EIO", "ENOTEMPTY", "ENOSYS", "EROFS",
    "EBUSY", "EAGAIN", "EISCONN", "E2BIG", "EPERM",
];

pub const XENSTORE_RING_SIZE: usize = 1024;
pub type XenstoreRingIdx = u32;

/// `MASK_XENSTORE_IDX`.
pub const fn mask_xenstore_idx(idx: XenstoreRingIdx) -> usize {
    (idx as usize) & (XENSTORE_RING_SIZE - 1)
}

/// `struct xenstore_domain_interface`: the store page of a domain. The
/// domain produces `req` and consumes `rsp`; the daemon the other way round.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenstoreDomainInterface {
    pub req: [u8; XENSTORE_RING_SIZE],
    pub rsp: [u8; XENSTORE_RING_SIZE],
    pub req_cons: XenstoreRingIdx,
    pub req_prod: XenstoreRingIdx,
    pub rsp_cons: XenstoreRingIdx,
    pub rsp_prod: XenstoreRingIdx,
    /// Bitmap of `XENSTORE_SERVER_FEATURE_*`.
    pub server_features: u32,
    /// `XENSTORE_CONNECTED` / `XENSTORE_RECONNECT`.
    pub connection: u32,
    /// `XENSTORE_ERROR_*` (with `XENSTORE_SERVER_FEATURE_ERROR`).
    pub error: u32,
}
assert_layout!(XenstoreDomainInterface, size = 2076, req = 0, rsp = 1024, req_cons = 2048, req_prod = 2052,
               rsp_cons = 2056, rsp_prod = 2060, server_features = 2064, connection = 2068, error = 2072);

/// Violating this is very bad (`docs/misc/xenstore.txt`): the daemon drops
/// the connection.
pub const XENSTORE_PAYLOAD_MAX: usize = 4096;
/// Violating these just gets you an error back.
pub const XENSTORE_ABS_PATH_MAX: usize = 3072;
pub const XENSTORE_REL_PATH_MAX: usize = 2048;

pub const XENSTORE_SERVER_FEATURE_RECONNECTION: u32 = 1;
pub const XENSTORE_SERVER_FEATURE_ERROR: u32 = 2;
pub const XENSTORE_CONNECTED: u32 = 0;
pub const XENSTORE_RECONNECT: u32 = 1;
/// Values of `error`: none, a message header with a bad length, an index
/// out of range.
pub const XENSTORE_ERROR_NONE: u32 = 0;
pub const XENSTORE_ERROR_COMM: u32 = 1;
pub const XENSTORE_ERROR_RINGIDX: u32 = 2;
pub const XENSTORE_ERROR_PROTO: u32 = 3;


/// `xenbus.h`'s `enum xenbus_state`, the device handshake's states.
pub mod xenbus_state {
    pub const XenbusStateUnknown: u32 = 0;
    pub const XenbusStateInitialising: u32 = 1;
    pub const XenbusStateInitWait: u32 = 2;
    pub const XenbusStateInitialised: u32 = 3;
    pub const XenbusStateConnected: u32 = 4;
    pub const XenbusStateClosing: u32 = 5;
    pub const XenbusStateClosed: u32 = 6;
    pub const XenbusStateReconfiguring: u32 = 7;
    pub const XenbusStateReconfigured: u32 = 8;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_little_endian() {
        let h = XsdSockmsg { r#type: XS_READ, req_id: 7, tx_id: 0x01020304, len: 5 };
        let b = h.to_bytes();
        assert_eq!(&b[8..12], &[4, 3, 2, 1]);
        assert_eq!(XsdSockmsg::from_bytes(&b), h);
    }
}
