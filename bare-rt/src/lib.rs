//! What the precompiled `core` expects from a freestanding image.
//!
//! The host target's `core` calls `memcpy`, `memmove`, `memset`, `memcmp` and
//! `bcmp`, and (even with `panic = "abort"`) references `rust_eh_personality`.
//! Only the three bare-metal images link this crate; host builds get these
//! symbols from libc and std, so nothing here is compiled for tests.
//!
//! It also holds the one heap both images' allocators are ([`heap`]).
#![no_std]

pub mod heap;
#[cfg(not(test))]
mod mem;

/// Referenced by the precompiled `core`; never called with `panic = "abort"`.
#[cfg(not(test))]
#[no_mangle]
pub extern "C" fn rust_eh_personality() {}

/// Landing pads in the precompiled `alloc` name it; with `panic = "abort"`
/// no unwind ever starts, so nothing can reach it.
#[cfg(not(test))]
#[no_mangle]
pub extern "C" fn _Unwind_Resume() -> ! {
    loop {
        core::hint::spin_loop();
    }
}
