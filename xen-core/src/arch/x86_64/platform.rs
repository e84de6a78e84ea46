//! The machine as the portable core sees it: memory through the direct map,
//! Dom0's console on COM1.

use xen_core::mm::{MachineMemory, Mfn};
use xen_core::platform::Platform;

use x86_64::registers::control::{Cr4, Cr4Flags};
use x86_64::registers::model_specific::{FsBase, GsBase, KernelGsBase};
use x86_64::VirtAddr;

use super::paging::phys_to_virt;

pub struct Machine {
    /// Frames that exist (the frame table's length); anything else is a bug.
    pub nr_frames: u64,
    pub hypervisor_slots: [u64; 16],
    /// Machine address and length of the M2P table's storage.
    pub m2p: (u64, u64),
    /// The firmware's memory map (base, length, E820 type), for Dom0.
    pub e820: heapless::Vec<(u64, u64, u32), 128>,
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

    fn copy(&self, dst: Mfn, dst_off: usize, src: Mfn, src_off: usize, len: usize) {
        let (d, s) = (self.ptr(dst, dst_off, len), self.ptr(src, src_off, len));
        // SAFETY: both ranges are direct-mapped RAM of `len` bytes (checked by
        // `ptr`); `copy` tolerates overlap (the same frame as both ends).
        unsafe { core::ptr::copy(s, d, len) }
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

    fn save_fpu(&self, out: &mut [u8; 512]) {
        super::entry::save_guest_fpu(out);
    }

    fn load_fpu(&self, image: &[u8; 512]) {
        super::entry::load_guest_fpu(image);
    }

    fn set_guest_ts(&self, ts: bool) {
        super::entry::set_guest_ts(ts);
    }

    fn load_segment_bases(&self, fs: u64, gs: u64, gs_shadow: u64) {
        // The core checked each base is canonical (`new_truncate` changes
        // nothing then); the hypervisor itself never uses FS or GS.
        FsBase::write(VirtAddr::new_truncate(fs));
        GsBase::write(VirtAddr::new_truncate(gs));
        KernelGsBase::write(VirtAddr::new_truncate(gs_shadow));
    }

    fn read_segment_bases(&self) -> (u64, u64, u64) {
        (FsBase::read().as_u64(), GsBase::read().as_u64(), KernelGsBase::read().as_u64())
    }

    fn swap_gs(&self) {
        // SAFETY: exchanges GS_BASE and KERNEL_GS_BASE; the hypervisor never
        // uses GS itself.
        unsafe { core::arch::asm!("swapgs", options(nostack, preserves_flags)) };
    }

    fn load_user_gs_selector(&self, sel: u16) -> u64 {
        // In kernel mode the user's GS base is the shadow one: swap it in,
        // load the selector (which sets the base from the descriptor), read
        // the result, swap back.
        let base: u64;
        // SAFETY: the core checked the selector is null or a present ring-3
        // data descriptor, so the load cannot fault; interrupts are off, so
        // nothing runs between the two swapgs.
        unsafe {
            core::arch::asm!("swapgs", "mov gs, {sel:x}", "swapgs", sel = in(reg) sel, options(nostack, preserves_flags));
            base = KernelGsBase::read().as_u64();
        }
        base
    }

    fn load_guest_gdt(&self, entries: &[u64]) {
        super::descriptors::load_guest_entries(entries);
    }

    fn load_debugregs(&self, dr: &[u64; 8]) {
        // SAFETY: the core validated every value (addresses in the guest's
        // range, no reserved bits), so the moves cannot fault.
        unsafe {
            core::arch::asm!(
                "mov dr0, {0}", "mov dr1, {1}", "mov dr2, {2}", "mov dr3, {3}",
                in(reg) dr[0], in(reg) dr[1], in(reg) dr[2], in(reg) dr[3],
                options(nostack, preserves_flags)
            );
            core::arch::asm!("mov dr6, {0}", "mov dr7, {1}", in(reg) dr[6], in(reg) dr[7], options(nostack, preserves_flags));
        }
    }

    fn take_dr6(&self) -> u64 {
        let dr6: u64;
        // SAFETY: reading and resetting DR6 only affects debug status.
        unsafe {
            core::arch::asm!("mov {0}, dr6", out(reg) dr6, options(nostack, preserves_flags));
            core::arch::asm!("mov dr6, {0}", in(reg) 0xffff_0ff0u64, options(nostack, preserves_flags));
        }
        dr6
    }

    fn now_ns(&self) -> u64 {
        super::time::now_ns()
    }

    fn tsc_and_now(&self) -> (u64, u64) {
        super::time::tsc_and_now()
    }

    fn tsc_khz(&self) -> u64 {
        super::time::tsc_khz()
    }

    fn wallclock_at_boot(&self) -> (u64, u32) {
        (super::time::wallclock_at_boot(), 0)
    }

    fn console_input_ready(&self) -> bool {
        super::serial::input_ready()
    }

    fn machine_memory_map(&self) -> alloc::vec::Vec<(u64, u64, u32)> {
        self.e820.iter().copied().collect()
    }

    fn ioport_read(&self, port: u16, bytes: u8) -> u32 {
        use x86_64::instructions::port::Port;
        // SAFETY: the core lets only Dom0 reach a port, never one the
        // hypervisor drives (`emulate::io::HYPERVISOR_PORTS`); port I/O
        // touches no memory (Dom0 is trusted with DMA-capable devices, as
        // under Xen without an IOMMU).
        unsafe {
            match bytes {
                1 => Port::<u8>::new(port).read() as u32,
                2 => Port::<u16>::new(port).read() as u32,
                _ => Port::<u32>::new(port).read(),
            }
        }
    }

    fn ioport_write(&self, port: u16, bytes: u8, value: u32) {
        use x86_64::instructions::port::Port;
        // SAFETY: as for `ioport_read`.
        unsafe {
            match bytes {
                1 => Port::<u8>::new(port).write(value as u8),
                2 => Port::<u16>::new(port).write(value as u16),
                _ => Port::<u32>::new(port).write(value),
            }
        }
    }

    fn cpuid(&self, leaf: u32, subleaf: u32) -> [u32; 4] {
        // cpuid exists on every x86-64 processor and only fills registers.
        let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
        [r.eax, r.ebx, r.ecx, r.edx]
    }
}


/// The log goes to COM1.
pub struct SerialLog;

impl xen_core::log::LogSink for SerialLog {
    fn write_str(&self, s: &str) {
        super::serial::write_bytes(s.as_bytes());
    }
}
