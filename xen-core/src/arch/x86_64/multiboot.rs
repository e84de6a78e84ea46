//! The Multiboot (v1) information QEMU or GRUB hands over: command line,
//! memory map, modules. Read through the direct map; the loader is trusted,
//! but lengths are still bounded so a bad table cannot run us off a cliff.

use heapless::Vec;

pub const BOOTLOADER_MAGIC: u64 = 0x2BAD_B002;

#[derive(Clone, Copy, Debug)]
pub struct MemRegion {
    pub base: u64,
    pub len: u64,
    pub usable: bool,
    /// The E820 type (1 RAM, 2 reserved, 3 ACPI, 4 ACPI NVS, 5 bad).
    pub ty: u32,
}

#[derive(Clone, Copy, Debug)]
pub struct Module {
    pub start: u64,
    pub end: u64,
    /// Physical address of the NUL-terminated string ("path args").
    pub string: u64,
}

/// Parsed without a heap (it runs before there is one): fixed capacities.
pub struct Info {
    pub cmdline: &'static str,
    pub cmdline_pa: u64,
    pub mmap_pa: u64,
    pub mods_pa: u64,
    pub memory: Vec<MemRegion, 128>,
    pub modules: Vec<Module, 64>,
}

fn phys<T>(pa: u64) -> *const T {
    super::paging::phys_to_virt(pa) as *const T
}

/// A C string at a physical address, at most `max` bytes, invalid UTF-8 cut.
pub fn cstr(pa: u64, max: usize) -> &'static str {
    if pa == 0 {
        return "";
    }
    let p = phys::<u8>(pa);
    let mut n = 0;
    // SAFETY: the loader's strings lie in RAM below 4 GiB, which the direct
    // map covers; we stop at the NUL or at `max` bytes.
    unsafe {
        while n < max && *p.add(n) != 0 {
            n += 1;
        }
        let bytes = core::slice::from_raw_parts(p, n);
        match core::str::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8_unchecked(&bytes[..e.valid_up_to()]),
        }
    }
}

pub fn parse(info_pa: u64) -> Info {
    let w = |i: usize| -> u32 {
        // SAFETY: the Multiboot info structure is 116 bytes of RAM the loader
        // wrote; index i < 29.
        unsafe { core::ptr::read_unaligned(phys::<u32>(info_pa + 4 * i as u64)) }
    };
    let flags = w(0);
    let cmdline_pa = if flags & (1 << 2) != 0 { w(4) as u64 } else { 0 };
    let cmdline = cstr(cmdline_pa, 4096);
    let mut memory = Vec::new();
    let mut mmap_pa = 0;
    if flags & (1 << 6) != 0 {
        let (len, addr) = (w(11) as u64, w(12) as u64);
        mmap_pa = addr;
        let mut off = 0;
        while off + 24 <= len && !memory.is_full() {
            let e = addr + off;
            // SAFETY: each entry is `u32 size; u64 base; u64 len; u32 type` within the map.
            let (size, base, length, ty) = unsafe {
                (
                    core::ptr::read_unaligned(phys::<u32>(e)),
                    core::ptr::read_unaligned(phys::<u64>(e + 4)),
                    core::ptr::read_unaligned(phys::<u64>(e + 12)),
                    core::ptr::read_unaligned(phys::<u32>(e + 20)),
                )
            };
            let _ = memory.push(MemRegion { base, len: length, usable: ty == 1, ty });
            off += size as u64 + 4;
        }
    } else if flags & 1 != 0 {
        let _ = memory.push(MemRegion { base: 0, len: (w(1) as u64) << 10, usable: true, ty: 1 });
        let _ = memory.push(MemRegion { base: 1 << 20, len: (w(2) as u64) << 10, usable: true, ty: 1 });
    }
    let mut modules = Vec::new();
    let mut mods_pa = 0;
    if flags & (1 << 3) != 0 {
        let (count, addr) = (w(5).min(64) as u64, w(6) as u64);
        mods_pa = addr;
        for i in 0..count {
            let m = addr + 16 * i;
            // SAFETY: module entries are `u32 start, end, string, reserved`.
            let f = |o: u64| unsafe { core::ptr::read_unaligned(phys::<u32>(m + o)) } as u64;
            let _ = modules.push(Module { start: f(0), end: f(4).max(f(0)), string: f(8) });
        }
    }
    Info { cmdline, cmdline_pa, mmap_pa, mods_pa, memory, modules }
}
