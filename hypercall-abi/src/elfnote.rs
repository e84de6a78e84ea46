//! Xen ELF notes (`elfnote.h`): how a PV kernel tells the domain builder
//! where to enter it and what it supports. The notes live in a `PT_NOTE`
//! segment, named "Xen"; numeric values are 4 or 8 bytes, strings are ASCIZ.

/// The note name, without its NUL.
pub const XEN_ELFNOTE_NAME: &[u8] = b"Xen";

/// NAME=VALUE pair (string).
pub const XEN_ELFNOTE_INFO: u32 = 0;
/// Virtual address of the entry point (numeric).
pub const XEN_ELFNOTE_ENTRY: u32 = 1;
/// Virtual address of the hypercall page (numeric).
pub const XEN_ELFNOTE_HYPERCALL_PAGE: u32 = 2;
/// Virtual address where the image is mapped (numeric, default 0).
pub const XEN_ELFNOTE_VIRT_BASE: u32 = 3;
/// Offset of ELF paddr from the pseudo-physical address (numeric, default 0).
pub const XEN_ELFNOTE_PADDR_OFFSET: u32 = 4;
/// Xen version the kernel works with (string, "xen-3.0").
pub const XEN_ELFNOTE_XEN_VERSION: u32 = 5;
/// Guest OS name (string).
pub const XEN_ELFNOTE_GUEST_OS: u32 = 6;
/// Guest OS version (string).
pub const XEN_ELFNOTE_GUEST_VERSION: u32 = 7;
/// Loader type (string, "generic").
pub const XEN_ELFNOTE_LOADER: u32 = 8;
/// PAE support (x86-32 only, string).
pub const XEN_ELFNOTE_PAE_MODE: u32 = 9;
/// Supported/required features, '|'-separated XENFEAT names, '!' = required (string).
pub const XEN_ELFNOTE_FEATURES: u32 = 10;
/// Load the symbol table? (string "yes"/"no").
pub const XEN_ELFNOTE_BSD_SYMTAB: u32 = 11;
/// Lowest address the hypervisor hole may start at (numeric).
pub const XEN_ELFNOTE_HV_START_LOW: u32 = 12;
/// Mask/value pairs recognising L1 entries with valid MFNs (numeric).
pub const XEN_ELFNOTE_L1_MFN_VALID: u32 = 13;
/// Cooperative suspend cancellation supported (numeric).
pub const XEN_ELFNOTE_SUSPEND_CANCEL: u32 = 14;
/// Virtual address for the initial P2M (numeric).
pub const XEN_ELFNOTE_INIT_P2M: u32 = 15;
/// The kernel copes with an initrd not mapped by the initial tables (numeric).
pub const XEN_ELFNOTE_MOD_START_PFN: u32 = 16;
/// XENFEAT bitmap of supported features (numeric, 32 bits).
pub const XEN_ELFNOTE_SUPPORTED_FEATURES: u32 = 17;
/// 32-bit physical entry point for PVH (numeric).
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
/// The highest note number Xen 4.17 defines.
pub const XEN_ELFNOTE_MAX: u32 = XEN_ELFNOTE_PHYS32_ENTRY;

/// Xen's name for a note type, as its libelf logs print it.
pub fn name(ty: u32) -> Option<&'static str> {
    Some(match ty {
        XEN_ELFNOTE_INFO => "INFO",
        XEN_ELFNOTE_ENTRY => "ENTRY",
        XEN_ELFNOTE_HYPERCALL_PAGE => "HYPERCALL_PAGE",
        XEN_ELFNOTE_VIRT_BASE => "VIRT_BASE",
        XEN_ELFNOTE_PADDR_OFFSET => "PADDR_OFFSET",
        XEN_ELFNOTE_XEN_VERSION => "XEN_VERSION",
        XEN_ELFNOTE_GUEST_OS => "GUEST_OS",
        XEN_ELFNOTE_GUEST_VERSION => "GUEST_VERSION",
        XEN_ELFNOTE_LOADER => "LOADER",
        XEN_ELFNOTE_PAE_MODE => "PAE_MODE",
        XEN_ELFNOTE_FEATURES => "FEATURES",
        XEN_ELFNOTE_BSD_SYMTAB => "BSD_SYMTAB",
        XEN_ELFNOTE_HV_START_LOW => "HV_START_LOW",
        XEN_ELFNOTE_L1_MFN_VALID => "L1_MFN_VALID",
        XEN_ELFNOTE_SUSPEND_CANCEL => "SUSPEND_CANCEL",
        XEN_ELFNOTE_INIT_P2M => "INIT_P2M",
        XEN_ELFNOTE_MOD_START_PFN => "MOD_START_PFN",
        XEN_ELFNOTE_SUPPORTED_FEATURES => "SUPPORTED_FEATURES",
        XEN_ELFNOTE_PHYS32_ENTRY => "PHYS32_ENTRY",
        _ => return None,
    })
}
