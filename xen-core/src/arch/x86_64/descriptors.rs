//! GDT, TSS and IDT.
//!
//! The GDT has Xen's layout (xen/arch/x86/include/asm/desc.h): the
//! hypervisor's descriptors live from selector 0xe000 up, so the flat ring-3
//! selectors that 64-bit PV kernels hard-code (`FLAT_KERNEL_CS64` = 0xe033,
//! `FLAT_KERNEL_SS64` = 0xe02b, from `arch-x86/xen-x86_64.h`) mean the same
//! thing here as on Xen. Entries below 0xe000 are the guest's (set_gdt).

use core::ptr::addr_of_mut;
use x86_64::structures::tss::TaskStateSegment;
use x86_64::VirtAddr;

pub const HYPERVISOR_CS: u16 = 0xe008;
pub const HYPERVISOR_DS: u16 = 0xe010;
pub const FLAT_RING3_CS32: u16 = 0xe023;
pub const FLAT_RING3_DS: u16 = 0xe02b;
pub const FLAT_RING3_CS64: u16 = 0xe033;
pub const TSS_SELECTOR: u16 = 0xe040;

const GDT_ENTRIES: usize = 8192;
const FIRST_RESERVED: usize = 0xe000 / 8;

#[repr(C, align(4096))]
struct Gdt([u64; GDT_ENTRIES]);

#[repr(C, align(16))]
struct Idt([u64; 512]);

static mut GDT: Gdt = Gdt([0; GDT_ENTRIES]);
static mut IDT: Idt = Idt([0; 512]);
static mut TSS: TaskStateSegment = TaskStateSegment::new();

/// IST slots (1-based in the gate, 0-based in the TSS).
const IST_DOUBLE_FAULT: u8 = 1;
const IST_NMI: u8 = 2;
const IST_MACHINE_CHECK: u8 = 3;
/// #DB may arrive in ring 0 before `syscall_entry` has left the guest's
/// stack (`mov ss; syscall`, XSA-260), so it never trusts the current one.
const IST_DEBUG: u8 = 4;

#[repr(C, packed)]
struct DescriptorPointer {
    limit: u16,
    base: u64,
}

/// Load the GDT, TSS and IDT of the boot CPU. `rsp0` is where guest frames land.
pub fn init(rsp0: u64, ist: [u64; 4], entry_stubs: u64, stub_size: u64) {
    // SAFETY: called once at boot, before any other code uses these tables and
    // with interrupts off; the statics live as long as the hypervisor.
    unsafe {
        let gdt = &mut *addr_of_mut!(GDT);
        let tss = &mut *addr_of_mut!(TSS);
        let idt = &mut *addr_of_mut!(IDT);

        let g = &mut gdt.0[FIRST_RESERVED..];
        g[1] = 0x00af9a000000ffff; // 0xe008 ring 0 code, 64-bit
        g[2] = 0x00cf92000000ffff; // 0xe010 ring 0 data
        g[4] = 0x00cffa000000ffff; // 0xe023 ring 3 code, compatibility
        g[5] = 0x00cff2000000ffff; // 0xe02b ring 3 data
        g[6] = 0x00affa000000ffff; // 0xe033 ring 3 code, 64-bit
        g[7] = 0x00cf9a000000ffff; // 0xe038 ring 0 code, compatibility

        tss.privilege_stack_table[0] = VirtAddr::new(rsp0);
        for (i, top) in ist.iter().enumerate() {
            tss.interrupt_stack_table[i] = VirtAddr::new(*top);
        }
        // No I/O bitmap: every port access from ring 3 faults.
        tss.iomap_base = core::mem::size_of::<TaskStateSegment>() as u16;
        let base = tss as *const _ as u64;
        let limit = core::mem::size_of::<TaskStateSegment>() as u64 - 1;
        g[8] = (limit & 0xffff)
            | ((base & 0xff_ffff) << 16)
            | (0x89 << 40) // present, 64-bit TSS (available)
            | (((limit >> 16) & 0xf) << 48)
            | (((base >> 24) & 0xff) << 56);
        g[9] = base >> 32;

        for vector in 0..256u64 {
            let handler = entry_stubs + vector * stub_size;
            let ist = match vector {
                1 => IST_DEBUG,
                2 => IST_NMI,
                8 => IST_DOUBLE_FAULT,
                18 => IST_MACHINE_CHECK,
                _ => 0,
            };
            // int3, into and int $0x80 may be raised by the guest itself
            // (DPL 3), as on Xen.
            let dpl: u64 = if vector == 3 || vector == 4 || vector == 0x80 { 3 } else { 0 };
            idt.0[2 * vector as usize] = (handler & 0xffff)
                | ((HYPERVISOR_CS as u64) << 16)
                | ((ist as u64) << 32)
                | (0xe << 40) // interrupt gate: IF cleared on entry
                | (dpl << 45)
                | (1 << 47)
                | (((handler >> 16) & 0xffff) << 48);
            idt.0[2 * vector as usize + 1] = handler >> 32;
        }

        let gdtr = DescriptorPointer { limit: (GDT_ENTRIES * 8 - 1) as u16, base: gdt.0.as_ptr() as u64 };
        let idtr = DescriptorPointer { limit: (512 * 8 - 1) as u16, base: idt.0.as_ptr() as u64 };
        core::arch::asm!(
            "lgdt [{gdtr}]",
            "push {cs}",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "retfq",
            "2:",
            "mov {tmp:e}, {ds}",
            "mov ss, {tmp:e}",
            "xor {tmp:e}, {tmp:e}",
            "mov ds, {tmp:e}",
            "mov es, {tmp:e}",
            "mov fs, {tmp:e}",
            "mov gs, {tmp:e}",
            "ltr {tss:x}",
            "lidt [{idtr}]",
            gdtr = in(reg) &gdtr,
            idtr = in(reg) &idtr,
            cs = const HYPERVISOR_CS as u64,
            ds = const HYPERVISOR_DS as u32,
            tss = in(reg) TSS_SELECTOR,
            tmp = out(reg) _,
        );
    }
}

/// How many guest entries the hardware GDT holds now (to clear on the next load).
static mut GUEST_ENTRIES: usize = 0;

/// Put the running vCPU's descriptors (its `set_gdt` frames, checked by the
/// core) into the GDT below the hypervisor's reserved entries.
pub fn load_guest_entries(entries: &[u64]) {
    let n = entries.len().min(FIRST_RESERVED);
    // SAFETY: one CPU, interrupts off; only guest entries (below 0xe000) are
    // written, never the hypervisor's, and the CPU reads descriptors only
    // on segment loads, none of which use guest entries in ring 0.
    unsafe {
        let gdt = &mut *addr_of_mut!(GDT);
        let old = *core::ptr::addr_of!(GUEST_ENTRIES);
        gdt.0[..n].copy_from_slice(&entries[..n]);
        if old > n {
            gdt.0[n..old].fill(0);
        }
        *addr_of_mut!(GUEST_ENTRIES) = n;
    }
}
