//! `xl console <Domain>`: Dom0's terminal becomes the guest's console, as
//! xl's (xenconsole) does: what is typed goes into the `in` half of the
//! guest's console ring, what the guest writes is shown as it comes, and
//! Ctrl-] (0x1d) detaches. The guest owns `in_cons`, so it is not trusted:
//! a ring it claims to be over-full takes no more input.

use core::ptr::{self, addr_of, addr_of_mut};
use core::sync::atomic::{fence, Ordering};

use hypercall_abi::console::{mask_in_idx, XenconsInterface};
use pv_rt::println;

use crate::xl::Toolstack;

/// The key that detaches, as xenconsole's.
pub const DETACH: u8 = 0x1d;

/// Puts `bytes` into the `in` ring of the console page at `intf`; returns
/// how many fit.
///
/// # Safety
/// `intf` maps a guest's console page for as long as the call runs.
pub unsafe fn put_input(intf: *mut XenconsInterface, bytes: &[u8]) -> usize {
    // SAFETY: the caller vouches for the mapping; the guest writes in_cons
    // concurrently, so the indices are read volatile.
    let (cons, mut prod) = unsafe { (ptr::read_volatile(addr_of!((*intf).in_cons)), ptr::read_volatile(addr_of!((*intf).in_prod))) };
    // The consumer index before reusing the space it frees (mb).
    fence(Ordering::SeqCst);
    let used = prod.wrapping_sub(cons) as usize;
    if used > 1024 {
        return 0;
    }
    let n = (1024 - used).min(bytes.len());
    for &b in &bytes[..n] {
        // SAFETY: as above; the index is masked into the ring.
        unsafe { ptr::write_volatile(addr_of_mut!((*intf).r#in[mask_in_idx(prod)]), b) };
        prod = prod.wrapping_add(1);
    }
    // The bytes before the index that publishes them (wmb).
    fence(Ordering::Release);
    // SAFETY: as above.
    unsafe { ptr::write_volatile(addr_of_mut!((*intf).in_prod), prod) };
    n
}

impl Toolstack {
    pub(crate) fn cmd_console(&mut self, args: &[&str]) -> Result<(), ()> {
        let [dom] = args else {
            println!("usage: xl console <Domain>");
            return Err(());
        };
        let d = self.resolve(dom)?;
        if !self.attach_console(d) {
            println!("xl: console: domain {} is not one of this toolstack's guests", dom);
            return Err(());
        }
        println!("xl: connected to {}'s console; Ctrl-] detaches", dom);
        while self.console_attached() {
            let now = self.now_ns();
            self.serve_until(now + 1_000_000_000);
        }
        println!();
        println!("xl: console of {} detached", dom);
        Ok(())
    }
}
