//! The console: `console_io` commands (`xen.h`) and the PV console ring
//! (`io/console.h`).

use crate::assert_layout;

/// `console_io(CONSOLEIO_write, len, buf)`: write to Xen's console.
pub const CONSOLEIO_write: u32 = 0;
/// `console_io(CONSOLEIO_read, len, buf)`: read from Xen's console (Dom0).
pub const CONSOLEIO_read: u32 = 1;

/// `XENCONS_RING_IDX`: free-running indices, masked with the ring size.
pub type XenconsRingIdx = u32;

/// `struct xencons_interface`: the shared console page of a guest.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenconsInterface {
    pub r#in: [u8; 1024],
    pub out: [u8; 2048],
    pub in_cons: XenconsRingIdx,
    pub in_prod: XenconsRingIdx,
    pub out_cons: XenconsRingIdx,
    pub out_prod: XenconsRingIdx,
}
assert_layout!(XenconsInterface, size = 3088, r#in = 0, out = 1024, in_cons = 3072,
               in_prod = 3076, out_cons = 3080, out_prod = 3084);

impl XenconsInterface {
    pub const fn zeroed() -> Self {
        XenconsInterface {
            r#in: [0; 1024], out: [0; 2048], in_cons: 0, in_prod: 0, out_cons: 0, out_prod: 0,
        }
    }
}

/// `MASK_XENCONS_IDX` for the `in` ring.
pub const fn mask_in_idx(idx: XenconsRingIdx) -> usize {
    (idx as usize) & (1024 - 1)
}

/// `MASK_XENCONS_IDX` for the `out` ring.
pub const fn mask_out_idx(idx: XenconsRingIdx) -> usize {
    (idx as usize) & (2048 - 1)
}
