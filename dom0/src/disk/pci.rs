//! PCI configuration space through the legacy `0xcf8` address / `0xcfc`
//! data ports (configuration mechanism #1), as Linux's `pci_conf1_read`
//! uses it from a PV Dom0. The hypervisor latches the address per domain and
//! touches the machine only when Dom0 uses the data port.

use super::portio::{inl, outl};

const CONFIG_ADDRESS: u16 = 0xcf8;
const CONFIG_DATA: u16 = 0xcfc;

/// A function on bus 0 (QEMU's `pc` machine puts every device there).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Function {
    pub dev: u8,
    pub func: u8,
}

impl Function {
    fn address(self, reg: u8) -> u32 {
        0x8000_0000 | (u32::from(self.dev) << 11) | (u32::from(self.func) << 8) | u32::from(reg & 0xfc)
    }

    pub fn read32(self, reg: u8) -> u32 {
        outl(CONFIG_ADDRESS, self.address(reg));
        inl(CONFIG_DATA)
    }

    pub fn write32(self, reg: u8, v: u32) {
        outl(CONFIG_ADDRESS, self.address(reg));
        outl(CONFIG_DATA, v);
    }

    /// `0000:00:DD.F`, as `lspci` names it.
    pub fn bdf(self) -> heapless::String<16> {
        let mut s = heapless::String::new();
        let _ = core::fmt::write(&mut s, format_args!("0000:00:{:02x}.{}", self.dev, self.func));
        s
    }
}

/// The first function on bus 0 with this vendor and device id.
pub fn find(vendor: u16, device: u16) -> Option<Function> {
    (0..32u8).map(|dev| Function { dev, func: 0 }).find(|f| f.read32(0) == (u32::from(device) << 16 | u32::from(vendor)))
}

/// Command register bits: decode I/O space, and master the bus (DMA).
pub const COMMAND_IO: u32 = 1 << 0;
pub const COMMAND_MASTER: u32 = 1 << 2;
