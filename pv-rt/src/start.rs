//! Entry point, hypercall page and Xen ELF notes.

use core::arch::global_asm;
use core::sync::atomic::Ordering;

use hypercall_abi::elfnote::{
    XEN_ELFNOTE_ENTRY, XEN_ELFNOTE_GUEST_OS, XEN_ELFNOTE_GUEST_VERSION,
    XEN_ELFNOTE_HYPERCALL_PAGE, XEN_ELFNOTE_LOADER, XEN_ELFNOTE_SUPPORTED_FEATURES,
    XEN_ELFNOTE_XEN_VERSION,
};
use hypercall_abi::version::XENFEAT_dom0;

use crate::StartInfo;

// _start: Xen enters here in ring 3 with %rsi = start_info and %rsp on a boot
// stack inside the initial mapping; everything else is unspecified.
// Clear .bss while still on Xen's stack (ours lives in .bss), then switch.
//
// hypercall_page: 4 KiB, page-aligned, in .text so it is executable. int3
// until the hypervisor overwrites it with the entries (it must be filled
// before _start runs, since XEN_ELFNOTE_HYPERCALL_PAGE names it).
global_asm!(
    r#"
    .section .text.pv_rt_start, "ax", @progbits
    .globl _start
    .type _start, @function
_start:
    cld
    mov %rsi, %r12                  # start_info survives the clear in a callee-saved reg
    lea __bss_start(%rip), %rdi
    lea __bss_end(%rip), %rcx
    sub %rdi, %rcx
    xor %eax, %eax
    rep stosb
    lea pv_rt_stack_top(%rip), %rsp # 16-byte aligned, as the SysV ABI wants at a call
    xor %ebp, %ebp                  # ends frame-pointer walks here
    mov %r12, %rdi
    call pv_rt_start
    ud2
    .size _start, . - _start

    .section .text.hypercall_page, "ax", @progbits
    .balign 4096
    .globl hypercall_page
    .type hypercall_page, @object
hypercall_page:
    .fill 4096, 1, 0xcc
    .size hypercall_page, 4096

    .section .bss.pv_rt_stack, "aw", @nobits
    .balign 4096
    .globl pv_rt_stack_guard
pv_rt_stack_guard:                  # unmapped by pv_rt_start: see GUARD below
    .skip 4096
pv_rt_stack:
    .skip {stack_size}
pv_rt_stack_top:
    "#,
    stack_size = const STACK_SIZE,
    options(att_syntax)
);

const STACK_SIZE: usize = 64 * 1024;

extern "C" {
    static pv_rt_stack_guard: u8;
}

/// Guard pages: the page below each of our stacks (this one and the trap
/// stack of [`crate::traps`]) is unmapped at start, so running off the
/// bottom of a stack faults at once instead of overwriting what lies below.
/// The fault cannot be delivered on a stack that has no room left, so the
/// hypervisor crashes the domain; xen-core names it a stack overflow.
fn unmap_guard_pages() {
    for va in [&raw const pv_rt_stack_guard as u64, crate::traps::kernel_stack_guard()] {
        // SAFETY: the guard pages are .bss pages nothing uses (4 KiB-aligned,
        // below the stacks); dropping their mapping only makes them fault.
        let rc = unsafe { hypercall_abi::guest::update_va_mapping(va, 0, hypercall_abi::mm::UVMF_INVLPG) };
        if rc != 0 {
            crate::println!("pv-rt: guard page at {:#x} stays mapped (update_va_mapping: {})", va, rc);
        }
    }
}


// Xen notes: namesz, descsz, type, "Xen\0", desc, each part 4-byte aligned.
// Numbers are 8 bytes (Xen reads 4- or 8-byte numeric notes by descsz).
// LOADER "generic" and XEN_VERSION "xen-3.0" are what Xen's libelf insists on
// for a non-Linux kernel. SUPPORTED_FEATURES declares XENFEAT_dom0: when the
// note is present Xen 4.17 refuses Dom0 duty to kernels without that bit.
// No MOD_START_PFN note: we want the module mapped and mod_start virtual.
global_asm!(
    r#"
    .section .note.Xen, "a", @note
    .balign 4
    .long 4, 2f - 1f, {guest_os}
    .asciz "Xen"
1:  .asciz "xen-core-pv"
2:  .balign 4

    .long 4, 2f - 1f, {guest_version}
    .asciz "Xen"
1:  "#,
    concat!(".asciz \"", env!("CARGO_PKG_VERSION"), "\""),
    r#"
2:  .balign 4

    .long 4, 2f - 1f, {loader}
    .asciz "Xen"
1:  .asciz "generic"
2:  .balign 4

    .long 4, 2f - 1f, {xen_version}
    .asciz "Xen"
1:  .asciz "xen-3.0"
2:  .balign 4

    .long 4, 2f - 1f, {entry}
    .asciz "Xen"
1:  .quad _start
2:  .balign 4

    .long 4, 2f - 1f, {hypercall_page}
    .asciz "Xen"
1:  .quad hypercall_page
2:  .balign 4

    .long 4, 2f - 1f, {supported_features}
    .asciz "Xen"
1:  .long {features}
2:  .balign 4
    "#,
    guest_os = const XEN_ELFNOTE_GUEST_OS,
    guest_version = const XEN_ELFNOTE_GUEST_VERSION,
    loader = const XEN_ELFNOTE_LOADER,
    xen_version = const XEN_ELFNOTE_XEN_VERSION,
    entry = const XEN_ELFNOTE_ENTRY,
    hypercall_page = const XEN_ELFNOTE_HYPERCALL_PAGE,
    supported_features = const XEN_ELFNOTE_SUPPORTED_FEATURES,
    features = const 1u32 << XENFEAT_dom0,
    options(att_syntax)
);

/// Called by `_start` on our own stack.
#[no_mangle]
extern "C" fn pv_rt_start(start_info: *mut StartInfo) -> ! {
    crate::START_INFO.store(start_info, Ordering::Relaxed);
    let si = crate::start_info();
    unmap_guard_pages();
    extern "Rust" {
        // Defined by the kernel through `pv_rt::entry!`.
        fn __pv_rt_main(start_info: &'static StartInfo);
    }
    // SAFETY: `entry!` defines this symbol with exactly this signature; a
    // kernel without `entry!` fails to link instead of reaching here.
    unsafe { __pv_rt_main(si) };
    crate::poweroff()
}
