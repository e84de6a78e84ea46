//! Dom0's own disk and the virtual disk images on it:
//! - `portio`, `pci`, `virtio_blk`: the device QEMU gives the machine
//!   (`scripts/run.sh --disk PATH`), a legacy virtio-blk driven through
//!   its I/O ports;
//! - [`fs`]: the FAT filesystem on it, holding the images as files;
//! - [`qcow2`], [`image`]: raw and qcow2 images as blkback disks;
//! - `store`: all of it put together for the toolstack.
//!
//! The pure parts (filesystem use, qcow2, images) are tested on the host
//! over memory; the device needs a machine.

pub mod fs;
pub mod image;
pub mod qcow2;
#[cfg(not(test))]
pub mod pci;
#[cfg(not(test))]
pub mod portio;
#[cfg(not(test))]
pub mod store;
#[cfg(not(test))]
pub mod virtio_blk;
#[cfg(test)]
mod tests;
