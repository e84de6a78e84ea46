//! GDT, TSS and IDT.
//!
//! The GDT has Xen's layout (xen/arch/x86/include/asm/desc.h): the
//! hypervisor's descriptors live from selector 0xe000 up, so the flat ring-3
//! selectors that 64-bit PV kernels hard-code (`FLAT_KERNEL_CS64` = 0xe033,
//! `FLAT_KERNEL_SS64` = 0xe02b, from `arch-x86/xen-x86_64.h`) mean the same
//! thing here as on Xen. Entries below 0xe000 are the guest's (set_gdt).
//!
//! The descriptors come from the `x86_64` crate (`DescriptorFlags`'s flat
//! segments, `Descriptor::tss_segment`), and so do the instructions that
//! load the tables. The tables themselves stay plain arrays:
//! - the crate's `GlobalDescriptorTable` appends entries from index 1 and
//!   keeps them to itself, while Xen's layout needs the hypervisor's at
//!   0xe000 (index 7168) and the running vCPU's raw descriptors below,
//!   rewritten at every switch (`load_guest_entries`);
//! - its `InterruptDescriptorTable` sets a gate only from a handler of the
//!   `x86-interrupt` ABI (`set_handler_addr` needs the nightly-only
//!   `abi_x86_interrupt` feature), while ours are assembly stubs; so each
//!   gate is encoded here, the layout being the SDM's 64-bit interrupt gate.

use core::ptr::addr_of_mut;
use x86_64::instructions::segmentation::{Segment, CS, DS, ES, FS, GS, SS};
use x86_64::instructions::tables::{lgdt, lidt, load_tss};
use x86_64::structures::gdt::{Descriptor, DescriptorFlags, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;
use x86_64::structures::DescriptorTablePointer;
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

/// A 64-bit interrupt gate (SDM vol. 3, 6.14.1): handler address split
/// over both words, the hypervisor's code selector, an IST slot, type 0xe
/// (interrupt gate: IF cleared on entry), a DPL, present.
fn interrupt_gate(handler: u64, ist: u8, dpl: u64) -> [u64; 2] {
    [
        (handler & 0xffff)
            | ((HYPERVISOR_CS as u64) << 16)
            | ((ist as u64) << 32)
            | (0xe << 40)
            | (dpl << 45)
            | (1 << 47)
            | (((handler >> 16) & 0xffff) << 48),
        handler >> 32,
    ]
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
        g[1] = DescriptorFlags::KERNEL_CODE64.bits(); // 0xe008
        g[2] = DescriptorFlags::KERNEL_DATA.bits(); // 0xe010
        g[4] = DescriptorFlags::USER_CODE32.bits(); // 0xe023
        g[5] = DescriptorFlags::USER_DATA.bits(); // 0xe02b
        g[6] = DescriptorFlags::USER_CODE64.bits(); // 0xe033
        g[7] = DescriptorFlags::KERNEL_CODE32.bits(); // 0xe038

        tss.privilege_stack_table[0] = VirtAddr::new(rsp0);
        for (i, top) in ist.iter().enumerate() {
            tss.interrupt_stack_table[i] = VirtAddr::new(*top);
        }
        // No I/O bitmap: every port access from ring 3 faults.
        tss.iomap_base = core::mem::size_of::<TaskStateSegment>() as u16;
        if let Descriptor::SystemSegment(low, high) = Descriptor::tss_segment(&*core::ptr::addr_of!(TSS)) {
            (g[8], g[9]) = (low, high); // 0xe040
        }

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
            let v = 2 * vector as usize;
            idt.0[v..v + 2].copy_from_slice(&interrupt_gate(handler, ist, dpl));
        }

        let gdtr = DescriptorTablePointer { limit: (GDT_ENTRIES * 8 - 1) as u16, base: VirtAddr::new(gdt.0.as_ptr() as u64) };
        let idtr = DescriptorTablePointer { limit: (512 * 8 - 1) as u16, base: VirtAddr::new(idt.0.as_ptr() as u64) };
        lgdt(&gdtr);
        CS::set_reg(SegmentSelector(HYPERVISOR_CS));
        SS::set_reg(SegmentSelector(HYPERVISOR_DS));
        for null in [DS::set_reg, ES::set_reg, FS::set_reg, GS::set_reg] {
            null(SegmentSelector(0));
        }
        load_tss(SegmentSelector(TSS_SELECTOR));
        lidt(&idtr);
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
