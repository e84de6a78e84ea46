//! `XENMEM_memory_map` and `XENMEM_machine_memory_map` (Xen's
//! `arch_memory_op`): the E820 map a PV kernel lays its memory out by.
//!
//! A PV domain has no pseudo-physical map unless a toolstack set one
//! (`XENMEM_set_memory_map`, not offered): `memory_map` is `-ENOSYS`, as in
//! Xen, and Linux then takes one RAM range of its size. Dom0 asks for the
//! machine's map instead, to find ACPI tables and device holes: it gets the
//! firmware's, as Multiboot handed it over.

use super::{ret, HcResult};
use crate::mm::pte::guest_range_ok;
use crate::platform::Platform;
use crate::xen::Xen;
use hypercall_abi::errno::Errno;
use hypercall_abi::memory::*;

/// `sizeof(struct e820entry)`: u64 addr, u64 size, u32 type, packed.
const E820_ENTRY_BYTES: u64 = 20;

impl<P: Platform> Xen<P> {
    pub(super) fn memory_map(&mut self, op: u32, arg: u64) -> HcResult {
        let g = self.guest_mem().ok_or(Errno::ESRCH)?;
        let nr_entries = g.read_u32(arg)? as u64;
        let buffer = g.read_u64(arg.wrapping_add(8))?;
        if op == XENMEM_memory_map {
            return Err(Errno::ENOSYS);
        }
        if !self.current_domain().is_some_and(|d| d.privileged) {
            return Err(Errno::EPERM);
        }
        let map = self.platform.machine_memory_map();
        let store = buffer != 0;
        // Xen wants room for one more entry than the map holds.
        if store && nr_entries < map.len() as u64 + 1 {
            return Err(Errno::EINVAL);
        }
        if store && !guest_range_ok(buffer, nr_entries * E820_ENTRY_BYTES) {
            return Err(Errno::EFAULT);
        }
        let g = self.guest_mem().ok_or(Errno::ESRCH)?;
        if store {
            for (i, (base, len, ty)) in map.iter().enumerate() {
                let mut e = [0u8; E820_ENTRY_BYTES as usize];
                e[0..8].copy_from_slice(&base.to_le_bytes());
                e[8..16].copy_from_slice(&len.to_le_bytes());
                e[16..20].copy_from_slice(&ty.to_le_bytes());
                g.copy_to_guest(buffer + i as u64 * E820_ENTRY_BYTES, &e)?;
            }
        }
        g.write_u32(arg, map.len() as u32)?;
        ret(0)
    }
}
