//! The narrow interface between the portable core and the machine under it.

use crate::mm::MachineMemory;

/// What the core needs from the machine. `arch/x86_64` implements it over
/// the direct map and COM1; `testing::HostPlatform` over vectors, so the
/// whole core runs in host tests.
pub trait Platform: MachineMemory {
    /// Dom0's console output (unprefixed, as Xen prints the hardware domain).
    fn console_write(&self, bytes: &[u8]);
    /// Console input waiting for Dom0, without blocking.
    fn console_read(&self, buf: &mut [u8]) -> usize;
    /// The hypervisor's PML4 entries (slots 256..=271), copied into every
    /// guest's top-level table.
    fn hypervisor_l4_slots(&self) -> [u64; 16];
    /// Flush this CPU's TLB, global entries included.
    fn flush_tlb(&self);
    /// Flush one virtual address from this CPU's TLB.
    fn invlpg(&self, va: u64);
    /// Write back and invalidate the caches (`wbinvd`).
    fn flush_cache(&self);
    /// Machine address and size in bytes of the M2P table's storage, which
    /// guests see read-only at `MACH2PHYS_VIRT_START`.
    fn m2p_maddr(&self) -> (u64, u64);

    // The running vCPU's processor state that lives in the CPU, not in the
    // register frame. The core calls these when it switches vCPUs or modes.

    /// Copy out / put back the running guest's FXSAVE image.
    fn save_fpu(&self, out: &mut [u8; 512]);
    fn load_fpu(&self, image: &[u8; 512]);
    /// Run the guest with CR0.TS set (its virtual `fpu_taskswitch`).
    fn set_guest_ts(&self, ts: bool);
    /// FS base, GS base, shadow GS base.
    fn load_segment_bases(&self, fs: u64, gs: u64, gs_shadow: u64);
    fn read_segment_bases(&self) -> (u64, u64, u64);
    /// Exchange the GS base with the shadow GS base (`swapgs`).
    fn swap_gs(&self);
    /// Load a selector into %gs for guest user mode, keeping the kernel's
    /// GS base (`SEGBASE_GS_USER_SEL`). The core has checked the selector.
    /// Returns the user GS base that loading produced.
    fn load_user_gs_selector(&self, sel: u16) -> u64;
    /// The guest's descriptors (entries below 0xe000 of the GDT).
    fn load_guest_gdt(&self, entries: &[u64]);
    /// DR0-DR3, DR6, DR7 for the running vCPU.
    fn load_debugregs(&self, dr: &[u64; 8]);
    /// DR6 after a #DB (and clear it for the next one).
    fn take_dr6(&self) -> u64;
    /// Nanoseconds since boot: system time.
    fn now_ns(&self) -> u64;
    /// The TSC and system time read together.
    fn tsc_and_now(&self) -> (u64, u64);
    fn tsc_khz(&self) -> u64;
    /// Seconds and nanoseconds since the epoch at system time zero.
    fn wallclock_at_boot(&self) -> (u64, u32);
    /// Console input waits (for VIRQ_CONSOLE).
    fn console_input_ready(&self) -> bool;
    /// Port I/O of `bytes` (1, 2 or 4) on Dom0's behalf; the core has
    /// checked the port against the hypervisor's own (`emulate::io`).
    fn ioport_read(&self, port: u16, bytes: u8) -> u32;
    /// The firmware's memory map: (base, length, E820 type) in order.
    fn machine_memory_map(&self) -> alloc::vec::Vec<(u64, u64, u32)>;
    fn ioport_write(&self, port: u16, bytes: u8, value: u32);

    /// The processor's own `cpuid` (EAX, EBX, ECX, EDX), which
    /// `cpuid::pv_cpuid` filters into what a PV guest sees.
    fn cpuid(&self, leaf: u32, subleaf: u32) -> [u32; 4];
}
