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
}
