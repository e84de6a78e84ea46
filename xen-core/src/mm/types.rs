//! Xen's frame-number vocabulary, kept apart by the type system.

pub const PAGE_SHIFT: u32 = 12;
pub const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;

/// A machine frame number: the host-physical page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mfn(pub u64);

/// A pseudo-physical frame number: the page as a PV guest numbers its memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pfn(pub u64);

impl Mfn {
    pub const fn maddr(self) -> u64 {
        self.0 << PAGE_SHIFT
    }

    pub const fn from_maddr(maddr: u64) -> Mfn {
        Mfn(maddr >> PAGE_SHIFT)
    }
}

pub const fn round_pgup(x: u64) -> u64 {
    (x + PAGE_SIZE - 1) & !(PAGE_SIZE - 1)
}

pub const fn round_pgdown(x: u64) -> u64 {
    x & !(PAGE_SIZE - 1)
}

/// Machine frames of I/O memory no guest may map, Dom0 included: the local
/// APIC and the MSI window (0xfee00000-0xfeefffff) and the first I/O APIC
/// (0xfec00000), as Xen's `dom0_setup_permissions` denies them.
pub fn hypervisor_iomem(mfn: crate::mm::Mfn) -> bool {
    (0xfee00..=0xfeeff).contains(&mfn.0) || mfn.0 == 0xfec00
}
