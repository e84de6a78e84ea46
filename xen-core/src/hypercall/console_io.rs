//! `console_io`: the hypervisor console for guests.

use super::{ret, Done, HcResult};
use crate::platform::Platform;
use crate::xen::Xen;
use hypercall_abi::console::{CONSOLEIO_read, CONSOLEIO_write};
use hypercall_abi::errno::Errno;

/// Bytes handled per entry before a continuation, so one huge write cannot
/// hold the CPU (Xen preempts `console_io` the same way).
const CHUNK: u64 = 16 * 1024;

impl<P: Platform> Xen<P> {
    pub(super) fn do_console_io(&mut self, [cmd, count, buf, ..]: [u64; 5]) -> HcResult {
        // Xen 4.17 as Debian builds it (no VERBOSE_DEBUG, the dummy XSM
        // policy) lets only the control domain use the hypervisor console;
        // other guests get -EPERM for every command and use their PV
        // console ring instead. Not logged: kernels that run both as Dom0
        // and as a DomU (XTF's) try it for every line they print.
        if !self.current_domain().is_some_and(|d| d.privileged) {
            return Err(Errno::EPERM);
        }
        match cmd as u32 {
            CONSOLEIO_write => self.console_write(count, buf),
            CONSOLEIO_read => self.console_read(count, buf),
            _ => Err(Errno::ENOSYS),
        }
    }

    fn console_write(&mut self, count: u64, buf: u64) -> HcResult {
        let count = count as u32 as u64; // `unsigned int count` in Xen's prototype
        let now = count.min(CHUNK);
        let mut kbuf = [0u8; 256];
        let id = self.current.map_or(0, |(d, _)| d.0);
        let g = self.guest_mem().ok_or(Errno::ESRCH)?;
        let mut done = 0u64;
        while done < now {
            let n = (now - done).min(kbuf.len() as u64) as usize;
            g.copy_from_guest(buf.wrapping_add(done), &mut kbuf[..n]).inspect_err(|_| {
                crate::gdprintk!("d{}: console_io write from bad buffer {:#x}", id, buf.wrapping_add(done));
            })?;
            self.platform.console_write(&kbuf[..n]);
            done += n as u64;
        }
        if count > now {
            return Ok(Done::Continue([0, count - now, buf.wrapping_add(now), 0, 0]));
        }
        ret(0)
    }

    fn console_read(&mut self, count: u64, buf: u64) -> HcResult {
        let mut kbuf = [0u8; 256];
        let want = (count as u32 as usize).min(kbuf.len());
        let n = self.platform.console_read(&mut kbuf[..want]);
        let g = self.guest_mem().ok_or(Errno::ESRCH)?;
        g.copy_to_guest(buf, &kbuf[..n])?;
        ret(n as i64)
    }
}
