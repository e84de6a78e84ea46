//! `physdev_op` (`physdev.h`): I/O privilege, interrupts and PCI devices of
//! the physical machine, for the hardware domain.

use crate::assert_layout;

pub const PHYSDEVOP_irq_status_query: u32 = 5;
/// `arg` = [`PhysdevSetIopl`].
pub const PHYSDEVOP_set_iopl: u32 = 6;
/// `arg` = [`PhysdevSetIobitmap`].
pub const PHYSDEVOP_set_iobitmap: u32 = 7;
pub const PHYSDEVOP_apic_read: u32 = 8;
pub const PHYSDEVOP_apic_write: u32 = 9;
pub const PHYSDEVOP_alloc_irq_vector: u32 = 10;
pub const PHYSDEVOP_free_irq_vector: u32 = 11;
pub const PHYSDEVOP_eoi: u32 = 12;
pub const PHYSDEVOP_map_pirq: u32 = 13;
pub const PHYSDEVOP_unmap_pirq: u32 = 14;
pub const PHYSDEVOP_manage_pci_add: u32 = 15;
pub const PHYSDEVOP_manage_pci_remove: u32 = 16;
pub const PHYSDEVOP_pirq_eoi_gmfn_v1: u32 = 17;
pub const PHYSDEVOP_restore_msi: u32 = 19;
pub const PHYSDEVOP_manage_pci_add_ext: u32 = 20;
pub const PHYSDEVOP_setup_gsi: u32 = 21;
pub const PHYSDEVOP_get_free_pirq: u32 = 23;
pub const PHYSDEVOP_pci_mmcfg_reserved: u32 = 24;
pub const PHYSDEVOP_pci_device_add: u32 = 25;
pub const PHYSDEVOP_pci_device_remove: u32 = 26;
pub const PHYSDEVOP_restore_msi_ext: u32 = 27;
pub const PHYSDEVOP_pirq_eoi_gmfn_v2: u32 = 28;
pub const PHYSDEVOP_dbgp_op: u32 = 29;
pub const PHYSDEVOP_prepare_msix: u32 = 30;
pub const PHYSDEVOP_release_msix: u32 = 31;
pub const PHYSDEVOP_pci_device_reset: u32 = 32;

/// `struct physdev_pirq_eoi_gmfn` (`PHYSDEVOP_pirq_eoi_gmfn_v1`/`_v2`): the
/// guest frame Xen keeps the "this PIRQ needs an EOI" bitmap in.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysdevPirqEoiGmfn {
    pub gmfn: u64,
}
assert_layout!(PhysdevPirqEoiGmfn, size = 8, gmfn = 0);

/// The size of a full I/O permission bitmap (one bit per port, 65536 ports).
pub const IOBMP_BYTES: u64 = 8192;

/// `struct physdev_set_iopl`: the vCPU's virtual I/O privilege level (0-3).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysdevSetIopl {
    pub iopl: u32,
}
assert_layout!(PhysdevSetIopl, size = 4, iopl = 0);

/// `struct physdev_set_iobitmap`: a guest-virtual I/O bitmap (a set bit
/// denies the port, as the TSS's) covering the first `nr_ports` ports.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysdevSetIobitmap {
    pub bitmap: u64,
    pub nr_ports: u32,
    pub _pad: u32,
}
assert_layout!(PhysdevSetIobitmap, size = 16, bitmap = 0, nr_ports = 8);
