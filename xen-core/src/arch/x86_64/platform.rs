//! The machine as the portable core sees it: memory through the direct map,
//! Dom0's console on COM1.

use xen_core::mm::{MachineMemory, Mfn};
use xen_core::platform::Platform;

use x86_64::registers::control::{Cr4, Cr4Flags};

use super::paging::phys_to_virt;

pub struct Machine {
    /// Frames that exist (the frame table's length); anything else is a bug.
    pub nr_frames: u64,
    pub hypervisor_slots: [u64; 16],
    /// Machine address and length of the M2P table's storage.
    pub m2p: (u64, u64),
}

impl Machine {
    fn ptr(&self, mfn: Mfn, offset: usize, len: usize) -> *mut u8 {
        // The core only passes frames from the frame table and in-page
        // ranges; a violation is a hypervisor bug, not guest input.
        assert!(mfn.0 < self.nr_frames && offset + len <= 4096, "bad frame access {mfn:?}+{offset}");
        (phys_to_virt(mfn.maddr()) + offset as u64) as *mut u8
    }
}

impl MachineMemory for Machine {
    fn read(&self, mfn: Mfn, offset: usize, buf: &mut [u8]) {
        let src = self.ptr(mfn, offset, buf.len());
        // SAFETY: `src` is a direct-mapped RAM range of buf.len() bytes (checked
        // above); a guest may change it concurrently, which a byte copy tolerates.
        unsafe { core::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), buf.len()) }
    }

    fn write(&self, mfn: Mfn, offset: usize, data: &[u8]) {
        let dst = self.ptr(mfn, offset, data.len());
        // SAFETY: as in `read`; the core decided this frame may be written.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) }
    }

    fn fill(&self, mfn: Mfn, offset: usize, len: usize, byte: u8) {
        let dst = self.ptr(mfn, offset, len);
        // SAFETY: as in `write`.
        unsafe { core::ptr::write_bytes(dst, byte, len) }
    }
}

impl Platform for Machine {
    fn console_write(&self, bytes: &[u8]) {
        super::serial::write_bytes(bytes);
    }

    fn console_read(&self, buf: &mut [u8]) -> usize {
        super::serial::read_bytes(buf)
    }

    fn hypervisor_l4_slots(&self) -> [u64; 16] {
        self.hypervisor_slots
    }

    fn flush_tlb(&self) {
        // Toggling CR4.PGE drops global entries too: a guest may have set G
        // on its own mappings, and those must not outlive a type change.
        let cr4 = Cr4::read();
        // SAFETY: clearing and restoring PGE only flushes the TLB.
        unsafe {
            Cr4::write(cr4 - Cr4Flags::PAGE_GLOBAL);
            Cr4::write(cr4);
        }
    }

    fn invlpg(&self, va: u64) {
        x86_64::instructions::tlb::flush(x86_64::VirtAddr::new_truncate(va));
    }

    fn flush_cache(&self) {
        // SAFETY: wbinvd writes back and invalidates caches; no memory effects.
        unsafe { core::arch::asm!("wbinvd", options(nostack, preserves_flags)) };
    }

    fn m2p_maddr(&self) -> (u64, u64) {
        self.m2p
    }
}

/// The log goes to COM1.
pub struct SerialLog;

impl xen_core::log::LogSink for SerialLog {
    fn write_str(&self, s: &str) {
        super::serial::write_bytes(s.as_bytes());
    }
}
