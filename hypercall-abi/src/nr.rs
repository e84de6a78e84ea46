//! Hypercall numbers: `__HYPERVISOR_*` of `xen.h` (and `arch-x86/xen.h`),
//! without the prefix. The guest puts the number in `%rax` and calls
//! `hypercall_page + 32 * nr`.

pub const SET_TRAP_TABLE: u64 = 0;
pub const MMU_UPDATE: u64 = 1;
pub const SET_GDT: u64 = 2;
pub const STACK_SWITCH: u64 = 3;
pub const SET_CALLBACKS: u64 = 4;
pub const FPU_TASKSWITCH: u64 = 5;
/// Superseded by [`SCHED_OP`] since interface 0x00030101.
pub const SCHED_OP_COMPAT: u64 = 6;
pub const PLATFORM_OP: u64 = 7;
pub const SET_DEBUGREG: u64 = 8;
pub const GET_DEBUGREG: u64 = 9;
pub const UPDATE_DESCRIPTOR: u64 = 10;
// 11 is unassigned (it was the long-removed `dom_mem_op`).
pub const MEMORY_OP: u64 = 12;
pub const MULTICALL: u64 = 13;
pub const UPDATE_VA_MAPPING: u64 = 14;
pub const SET_TIMER_OP: u64 = 15;
/// Superseded by [`EVENT_CHANNEL_OP`] since interface 0x00030202.
pub const EVENT_CHANNEL_OP_COMPAT: u64 = 16;
pub const XEN_VERSION: u64 = 17;
pub const CONSOLE_IO: u64 = 18;
/// Superseded by [`PHYSDEV_OP`] since interface 0x00030202.
pub const PHYSDEV_OP_COMPAT: u64 = 19;
pub const GRANT_TABLE_OP: u64 = 20;
pub const VM_ASSIST: u64 = 21;
pub const UPDATE_VA_MAPPING_OTHERDOMAIN: u64 = 22;
/// x86 only; entered with `jmp`, never returns (see [`crate::arch::IretContext`]).
pub const IRET: u64 = 23;
pub const VCPU_OP: u64 = 24;
/// x86-64 only.
pub const SET_SEGMENT_BASE: u64 = 25;
pub const MMUEXT_OP: u64 = 26;
pub const XSM_OP: u64 = 27;
pub const NMI_OP: u64 = 28;
pub const SCHED_OP: u64 = 29;
pub const CALLBACK_OP: u64 = 30;
pub const XENOPROF_OP: u64 = 31;
pub const EVENT_CHANNEL_OP: u64 = 32;
pub const PHYSDEV_OP: u64 = 33;
pub const HVM_OP: u64 = 34;
pub const SYSCTL: u64 = 35;
pub const DOMCTL: u64 = 36;
pub const KEXEC_OP: u64 = 37;
pub const TMEM_OP: u64 = 38;
pub const ARGO_OP: u64 = 39;
pub const XENPMU_OP: u64 = 40;
pub const DM_OP: u64 = 41;
pub const HYPFS_OP: u64 = 42;

/// Architecture-specific hypercalls.
pub const ARCH_0: u64 = 48;
pub const ARCH_1: u64 = 49;
pub const ARCH_2: u64 = 50;
pub const ARCH_3: u64 = 51;
pub const ARCH_4: u64 = 52;
pub const ARCH_5: u64 = 53;
pub const ARCH_6: u64 = 54;
pub const ARCH_7: u64 = 55;
/// x86: `__HYPERVISOR_mca`.
pub const MCA: u64 = ARCH_0;
/// x86: `__HYPERVISOR_paging_domctl_cont`.
pub const PAGING_DOMCTL_CONT: u64 = ARCH_1;

/// Xen's own dispatch table size (`NR_hypercalls`): numbers at or above it are
/// `-ENOSYS` without a table lookup.
pub const NR_HYPERCALLS: u64 = 64;

/// Entries in a 4 KiB hypercall page at 32 bytes each: the largest number a
/// guest can reach by `call hypercall_page + 32 * nr`.
pub const HYPERCALL_PAGE_ENTRIES: usize = 4096 / 32;

/// Xen's name for a hypercall number (`"mmu_update"`), for traces and logs.
pub fn name(nr: u64) -> Option<&'static str> {
    Some(match nr {
        SET_TRAP_TABLE => "set_trap_table",
        MMU_UPDATE => "mmu_update",
        SET_GDT => "set_gdt",
        STACK_SWITCH => "stack_switch",
        SET_CALLBACKS => "set_callbacks",
        FPU_TASKSWITCH => "fpu_taskswitch",
        SCHED_OP_COMPAT => "sched_op_compat",
        PLATFORM_OP => "platform_op",
        SET_DEBUGREG => "set_debugreg",
        GET_DEBUGREG => "get_debugreg",
        UPDATE_DESCRIPTOR => "update_descriptor",
        MEMORY_OP => "memory_op",
        MULTICALL => "multicall",
        UPDATE_VA_MAPPING => "update_va_mapping",
        SET_TIMER_OP => "set_timer_op",
        EVENT_CHANNEL_OP_COMPAT => "event_channel_op_compat",
        XEN_VERSION => "xen_version",
        CONSOLE_IO => "console_io",
        PHYSDEV_OP_COMPAT => "physdev_op_compat",
        GRANT_TABLE_OP => "grant_table_op",
        VM_ASSIST => "vm_assist",
        UPDATE_VA_MAPPING_OTHERDOMAIN => "update_va_mapping_otherdomain",
        IRET => "iret",
        VCPU_OP => "vcpu_op",
        SET_SEGMENT_BASE => "set_segment_base",
        MMUEXT_OP => "mmuext_op",
        XSM_OP => "xsm_op",
        NMI_OP => "nmi_op",
        SCHED_OP => "sched_op",
        CALLBACK_OP => "callback_op",
        XENOPROF_OP => "xenoprof_op",
        EVENT_CHANNEL_OP => "event_channel_op",
        PHYSDEV_OP => "physdev_op",
        HVM_OP => "hvm_op",
        SYSCTL => "sysctl",
        DOMCTL => "domctl",
        KEXEC_OP => "kexec_op",
        TMEM_OP => "tmem_op",
        ARGO_OP => "argo_op",
        XENPMU_OP => "xenpmu_op",
        DM_OP => "dm_op",
        HYPFS_OP => "hypfs_op",
        MCA => "mca",
        PAGING_DOMCTL_CONT => "paging_domctl_cont",
        ARCH_2 => "arch_2",
        ARCH_3 => "arch_3",
        ARCH_4 => "arch_4",
        ARCH_5 => "arch_5",
        ARCH_6 => "arch_6",
        ARCH_7 => "arch_7",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_xen_h() {
        assert_eq!(name(MMU_UPDATE), Some("mmu_update"));
        assert_eq!(name(SCHED_OP), Some("sched_op"));
        assert_eq!(name(11), None);
        assert_eq!(name(127), None);
    }

    #[test]
    fn every_number_fits_the_hypercall_page() {
        assert_eq!(HYPERCALL_PAGE_ENTRIES, 128);
        assert!(NR_HYPERCALLS as usize <= HYPERCALL_PAGE_ENTRIES);
    }
}
