//! Port I/O for PV guests (Xen's `guest_io_okay`, `admin_io_okay`,
//! `guest_io_read`/`guest_io_write` in `emul-priv-op.c`).
//!
//! A PV kernel runs in ring 3 with IOPL 0, so every `in`/`out` raises #GP and
//! comes here. Two questions are asked, as Xen asks them:
//! 1. May this vCPU execute the instruction at all? Its virtual IOPL
//!    (`PHYSDEVOP_set_iopl`; the kernel counts as CPL 1, user space as 3)
//!    or, in kernel mode, its I/O bitmap (`PHYSDEVOP_set_iobitmap`) must
//!    allow it; otherwise the guest gets the #GP.
//! 2. May the domain touch the real port? Dom0 reaches every port except
//!    those the hypervisor drives itself; any other domain reaches none. A
//!    refused read returns all-ones and a refused write is dropped, so a
//!    probing driver sees "no device" rather than a fault.
//!
//! PCI configuration space goes through the `0xcf8` address latch, which is
//! kept per domain and never written to the machine until Dom0 touches the
//! data ports `0xcfc-0xcff`; the RTC/CMOS index port `0x70` is latched the
//! same way. On one CPU with interrupts off the address-then-data pair
//! cannot be torn.

use crate::platform::Platform;

/// Ports Dom0 may not reach directly (Xen's `dom0_setup_permissions` plus
/// the ports xen-core itself drives). Inclusive ranges.
pub const HYPERVISOR_PORTS: [(u16, u16, &str); 10] = [
    (0x20, 0x21, "PIC (master)"),
    (0x40, 0x43, "PIT"),
    (0x61, 0x61, "PIT channel 2 / speaker"),
    (0x70, 0x71, "RTC/CMOS (emulated: index latched)"),
    (0x92, 0x92, "INIT# / A20M#"),
    (0xa0, 0xa1, "PIC (slave)"),
    (0xf0, 0xf0, "IGNNE#"),
    (
        0xf4,
        0xf4,
        "QEMU isa-debug-exit (the hypervisor's exit status)",
    ),
    (0x3f8, 0x3ff, "COM1 (the hypervisor's console)"),
    (
        0xcfc,
        0xcff,
        "PCI configuration data (emulated through the 0xcf8 latch)",
    ),
];

const PCI_CONFIG_ADDRESS: u16 = 0xcf8;
const PCI_CONFIG_DATA: u16 = 0xcfc;
const RTC_INDEX: u16 = 0x70;
const RTC_DATA: u16 = 0x71;
/// Bit 7 of the RTC index port masks NMIs on the machine: the guest's latched
/// index never carries it to the hardware (Xen's `cmos_idx & 0x7f`).
const RTC_INDEX_MASK: u32 = 0x7f;

/// A vCPU's I/O privilege (Xen's `arch.pv.iopl`, `iobmp`, `iobmp_limit`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuIo {
    /// Virtual IOPL, 0-3.
    pub iopl: u8,
    /// Guest-virtual address of its I/O bitmap, and how many ports it covers.
    pub iobmp: u64,
    pub iobmp_limit: u32,
    /// The CR4 bits the guest chose (`mov %cr4`); see `priv_op`.
    pub cr4: u64,
    /// `wrmsr TSC_AUX` (kept, not loaded: `rdtscp` sees the hypervisor's 0).
    pub tsc_aux: u32,
}

/// A domain's latched I/O state (Xen's `arch.pci_cf8`, `arch.cmos_idx`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DomainIo {
    pub pci_cf8: u32,
    pub cmos_idx: u8,
}

/// Xen's `iopl_ok`: the guest kernel runs at virtual CPL 1, user space at 3.
pub fn iopl_ok(io: &VcpuIo, kernel: bool) -> bool {
    let cpl = if kernel { 1 } else { 3 };
    io.iopl >= cpl
}

/// May `bytes` bytes at `port` be reached directly by this domain? (Xen's
/// `admin_io_okay`: a dword at 0xcf8 is always the latch.)
pub fn admin_io_okay(privileged: bool, port: u16, bytes: u8) -> bool {
    if !privileged || (port == PCI_CONFIG_ADDRESS && bytes == 4) {
        return false;
    }
    let last = port as u32 + bytes as u32 - 1;
    if last > 0xffff {
        return false;
    }
    !HYPERVISOR_PORTS
        .iter()
        .any(|&(lo, hi, _)| port as u32 <= hi as u32 && last >= lo as u32)
}

fn mask(size: u8) -> u32 {
    if size >= 4 {
        u32::MAX
    } else {
        (1u32 << (size * 8)) - 1
    }
}

/// The PCI data-port access at `port` that `bytes` allows: up to the end of
/// the dword, a 3-byte access becomes 2 (Xen's `pci_cfg_ok` sizes).
fn pci_size(port: u16, bytes: u8) -> u8 {
    let s = bytes.min(4 - (port & 3) as u8);
    if s == 3 {
        2
    } else {
        s
    }
}

/// `in` of `bytes` (1, 2 or 4) at `port`, after `guest_io_okay` allowed it.
pub fn guest_io_read<P: Platform>(
    p: &P,
    io: &mut DomainIo,
    privileged: bool,
    port: u16,
    bytes: u8,
) -> u32 {
    if admin_io_okay(privileged, port, bytes) {
        return p.ioport_read(port, bytes) & mask(bytes);
    }
    let (mut data, mut shift, mut port, mut left) = (0u32, 0u32, port, bytes);
    while left != 0 {
        let mut size = 1;
        let mut sub = u32::MAX;
        if port == PCI_CONFIG_ADDRESS && left == 4 {
            size = 4;
            sub = io.pci_cf8;
        } else if port == RTC_INDEX {
            sub = io.cmos_idx as u32;
        } else if port == RTC_DATA && privileged {
            p.ioport_write(RTC_INDEX, 1, io.cmos_idx as u32 & RTC_INDEX_MASK);
            sub = p.ioport_read(RTC_DATA, 1);
        } else if port & !3 == PCI_CONFIG_DATA && privileged {
            size = pci_size(port, left);
            p.ioport_write(PCI_CONFIG_ADDRESS, 4, io.pci_cf8);
            sub = p.ioport_read(port, size);
        }
        if size == 4 {
            return sub;
        }
        data |= (sub & mask(size)) << shift;
        shift += 8 * size as u32;
        port = port.wrapping_add(size as u16);
        left -= size;
    }
    data
}

/// `out` of `bytes` (1, 2 or 4) of `data` at `port`.
pub fn guest_io_write<P: Platform>(
    p: &P,
    io: &mut DomainIo,
    privileged: bool,
    port: u16,
    bytes: u8,
    data: u32,
) {
    if admin_io_okay(privileged, port, bytes) {
        p.ioport_write(port, bytes, data & mask(bytes));
        return;
    }
    let (mut data, mut port, mut left) = (data, port, bytes);
    while left != 0 {
        let mut size = 1;
        if port == PCI_CONFIG_ADDRESS && left == 4 {
            size = 4;
            io.pci_cf8 = data;
        } else if port == RTC_INDEX {
            io.cmos_idx = data as u8;
        } else if port == RTC_DATA && privileged {
            p.ioport_write(RTC_INDEX, 1, io.cmos_idx as u32 & RTC_INDEX_MASK);
            p.ioport_write(RTC_DATA, 1, data & 0xff);
        } else if port & !3 == PCI_CONFIG_DATA && privileged {
            size = pci_size(port, left);
            p.ioport_write(PCI_CONFIG_ADDRESS, 4, io.pci_cf8);
            p.ioport_write(port, size, data & mask(size));
        }
        if size == 4 {
            return;
        }
        data = data.checked_shr(8 * size as u32).unwrap_or(0);
        port = port.wrapping_add(size as u16);
        left -= size;
    }
}
