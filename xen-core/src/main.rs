//! The xen-core hypervisor image: the portable core plus `arch/x86_64`.
#![no_std]
#![no_main]

extern crate alloc;
extern crate bare_rt;

mod arch;
