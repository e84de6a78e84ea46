//! The privileged PV kernel's toolstack: a domain builder and an `xl`
//! command line, in the spirit of Xen's libxc/libxl/xl, for Xen's x86-64 PV
//! ABI (it runs on Xen 4.17 and on xen-core alike).
//!
//! - [`cpio`]: guest images and configs arrive in Dom0's initrd, a `newc`
//!   archive;
//! - [`config`]: `xl.cfg` files;
//! - [`kernel`] (bzImage, ELF and notes, through the `pv-image` crate the
//!   hypervisor's builder shares), [`layout`], `builder`: libxc's PV
//!   builder, from Dom0;
//! - `hv`: the domctl/sysctl/memory/event-channel hypercalls it uses;
//! - `xl`: the commands, the guests' console back end, the event loop;
//!   [`listing`]: `xl list`'s rows;
//! - [`cmdline`]: splitting typed lines and Dom0's `xl=` option.
//! - [`lineedit`]: the prompt's line editor (history, editing keys);
//! - [`disk`]: Dom0's own disk (virtio-blk), its FAT image store, raw
//!   and qcow2 images;
//! - `com2`, `host_channel`, `xl_host`, [`host_files`]: xl commands from
//!   the host (`scripts/xl.sh`) over the second serial port;
//!
//! The pure parts are unit-tested on the host (`cargo test -p dom0`); the
//! parts that make hypercalls use pv-rt, whose panic handler and entry
//! point cannot link into a host test, so they are left out of tests.
#![cfg_attr(not(test), no_std)]
// Xen's constant names (`SHUTDOWN_poweroff`) in match patterns.
#![allow(non_upper_case_globals)]

extern crate alloc;

#[cfg(not(test))]
pub mod builder;
pub mod blkback;
pub mod cmdline;
#[cfg(not(test))]
mod com2;
pub mod config;
pub mod cpio;
pub mod disk;
#[cfg(not(test))]
pub mod domain_tree;
#[cfg(not(test))]
pub mod heap;
pub mod kernel;
#[cfg(not(test))]
mod host_channel;
pub mod host_files;
#[cfg(not(test))]
pub mod hv;
pub mod layout;
pub mod lineedit;
pub mod listing;
#[cfg(not(test))]
pub mod xl;
#[cfg(not(test))]
mod xl_block;
#[cfg(not(test))]
mod xl_console;
#[cfg(not(test))]
mod xl_image;
#[cfg(not(test))]
mod xl_host;
mod xl_mem;
#[cfg(not(test))]
mod xl_shutdown;
#[cfg(not(test))]
mod xs_commands;
pub mod xenstore;
