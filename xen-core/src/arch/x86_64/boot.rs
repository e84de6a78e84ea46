//! Multiboot entry: 32-bit protected mode to 64-bit long mode.
//!
//! QEMU (or GRUB) enters `_start32` in 32-bit protected mode, paging off, with
//! `%eax` = the Multiboot magic and `%ebx` = the physical address of the
//! Multiboot information. The stub maps the first 4 GiB twice with 2 MiB pages
//! (identity, to survive turning paging on, and at the direct map in PML4 slot
//! 262, where the image is linked), enters long mode and jumps high. The Rust
//! side then builds the real page tables, in which the identity map is gone:
//! the lower half belongs to guests.

use core::arch::global_asm;

/// Multiboot flags: page-aligned modules (0), memory map (1), and the
/// address fields (16), without which QEMU refuses an ELF64 kernel.
pub const MULTIBOOT_HEADER_FLAGS: u32 = (1 << 0) | (1 << 1) | (1 << 16);

global_asm!(
    r#"
    .set MB_MAGIC, 0x1BADB002
    .set MB_FLAGS, {flags}

    .section .multiboot, "a"
    .balign 4
mb_header:
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)
    .long mb_header             /* header_addr */
    .long __image_start_phys    /* load_addr */
    .long __load_end_phys       /* load_end_addr */
    .long __bss_end_phys        /* bss_end_addr */
    .long _start32              /* entry_addr */

    .section .boot.text, "ax"
    .code32
    .global _start32
_start32:
    cli
    cld
    mov %eax, %edi              /* Multiboot magic, kept for Rust */
    mov %ebx, %esi              /* Multiboot info (physical) */
    mov $boot_stack_top, %esp

    /* 2048 2 MiB pages: the first 4 GiB, present, writable, PS. */
    xor %ecx, %ecx
1:  mov %ecx, %eax
    shl $21, %eax
    or $0x83, %eax
    mov %eax, boot_pd(,%ecx,8)
    movl $0, boot_pd+4(,%ecx,8)
    inc %ecx
    cmp $2048, %ecx
    jb 1b

    mov $boot_pd + 3, %eax
    mov %eax, boot_pdpt
    add $4096, %eax
    mov %eax, boot_pdpt + 8
    add $4096, %eax
    mov %eax, boot_pdpt + 16
    add $4096, %eax
    mov %eax, boot_pdpt + 24

    mov $boot_pdpt + 3, %eax
    mov %eax, boot_pml4             /* slot 0: identity, for the jump */
    mov %eax, boot_pml4 + 262 * 8   /* slot 262: the direct map */

    mov $boot_pml4, %eax
    mov %eax, %cr3
    mov %cr4, %eax
    or $0x20, %eax              /* CR4.PAE */
    mov %eax, %cr4

    /* EFER: LME and SCE always; NXE when the CPU has NX (CPUID 80000001h EDX.20). */
    mov $0x80000001, %eax
    cpuid
    xor %ebx, %ebx
    bt $20, %edx
    jnc 2f
    mov $0x800, %ebx
2:  mov $0xC0000080, %ecx
    rdmsr
    or $0x101, %eax
    or %ebx, %eax
    wrmsr

    mov %cr0, %eax
    or $0x80010001, %eax        /* PG | WP | PE */
    mov %eax, %cr0

    lgdt boot_gdtr
    ljmp $0x08, $start64_low

    .code64
start64_low:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    movabs $start64, %rax
    jmp *%rax

    .section .boot.data, "aw"
    .balign 8
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff    /* 0x08: ring 0 code, 64-bit */
    .quad 0x00cf92000000ffff    /* 0x10: ring 0 data */
boot_gdtr:
    .word 3 * 8 - 1
    .long boot_gdt
    .balign 4096
boot_pml4:
    .fill 512, 8, 0
boot_pdpt:
    .fill 512, 8, 0
boot_pd:
    .fill 2048, 8, 0
    .fill 1024, 1, 0
boot_stack_top:

    .section .text.entry, "ax"
    .code64
start64:
    mov %edi, %r12d             /* zero-extends: the upper halves are undefined */
    mov %esi, %r13d
    /* .bss is zero when QEMU loads us, but a boot loader need not do it. */
    movabs $__bss_start, %rdi
    movabs $__bss_end, %rcx
    sub %rdi, %rcx
    xor %eax, %eax
    rep stosb
    /* SSE on before any Rust runs: the prebuilt core uses it. CR0: MP set,
       EM clear; CR4: OSFXSR | OSXMMEXCPT. */
    mov %cr0, %rax
    and $~0x4, %rax
    or $0x2, %rax
    mov %rax, %cr0
    mov %cr4, %rax
    or $0x600, %rax
    mov %rax, %cr4
    lea cpu0_stack_top(%rip), %rsp
    xor %ebp, %ebp
    mov %r12, %rdi
    mov %r13, %rsi
    call {start}
    ud2
    "#,
    flags = const MULTIBOOT_HEADER_FLAGS,
    start = sym super::setup::xen_start,
    options(att_syntax)
);
