//! `xen_version`: who the hypervisor is and what it offers.
//!
//! This hypervisor implements Xen 4.17's PV ABI, so it says 4.17; the
//! extraversion tells the truth about what it is.

use super::{ret, HcResult};
use crate::platform::Platform;
use crate::xen::Xen;
use hypercall_abi::errno::Errno;
use hypercall_abi::version::*;

pub const XEN_MAJOR: u16 = 4;
pub const XEN_MINOR: u16 = 17;
pub const EXTRAVERSION: &str = "-xen-core";
const CAPABILITIES: &str = "xen-3.0-x86_64";

/// Copy a NUL-padded fixed-size string of `N` bytes.
fn fixed<const N: usize>(s: &str) -> [u8; N] {
    let mut b = [0u8; N];
    let n = s.len().min(N - 1);
    b[..n].copy_from_slice(&s.as_bytes()[..n]);
    b
}

impl<P: Platform> Xen<P> {
    pub(super) fn do_xen_version(&mut self, [cmd, arg, ..]: [u64; 5]) -> HcResult {
        // The commands that return a value and touch no memory come first:
        // XENVER_version is the cheapest hypercall there is, and the
        // null-hypercall benchmark measures exactly it.
        match cmd as u32 {
            XENVER_version => return ret(xen_version_encode(XEN_MAJOR, XEN_MINOR) as i64),
            XENVER_pagesize => return ret(4096),
            _ => {}
        }
        let privileged = self.current_domain().is_some_and(|d| d.privileged);
        let g = self.guest_mem().ok_or(Errno::ESRCH)?;
        match cmd as u32 {
            XENVER_extraversion => {
                g.copy_to_guest(arg, &fixed::<16>(EXTRAVERSION))?;
                ret(0)
            }
            XENVER_compile_info => {
                let mut b = [0u8; core::mem::size_of::<XenCompileInfo>()];
                b[..64].copy_from_slice(&fixed::<64>("rustc (stable)"));
                b[64..80].copy_from_slice(&fixed::<16>("xen-core"));
                b[80..112].copy_from_slice(&fixed::<32>("xen-core"));
                b[112..144].copy_from_slice(&fixed::<32>(env!("CARGO_PKG_VERSION")));
                g.copy_to_guest(arg, &b)?;
                ret(0)
            }
            XENVER_capabilities => {
                g.copy_to_guest(arg, &fixed::<1024>(CAPABILITIES))?;
                ret(0)
            }
            XENVER_changeset => {
                let cs = alloc::format!("xen-core {}", env!("CARGO_PKG_VERSION"));
                g.copy_to_guest(arg, &fixed::<64>(&cs))?;
                ret(0)
            }
            XENVER_platform_parameters => {
                g.write_u64(arg, crate::mm::pte::HYPERVISOR_VIRT_START)?;
                ret(0)
            }
            XENVER_get_features => {
                let idx = g.read_u32(arg)?;
                if idx != 0 {
                    return Err(Errno::EINVAL);
                }
                // Every feature Xen 4.17 reports to a PV guest (Linux
                // panics without preserve_ad and map_avail_bits).
                let mut submap = (1u32 << XENFEAT_pae_pgdir_above_4gb)
                    | (1 << XENFEAT_mmu_pt_update_preserve_ad)
                    | (1 << XENFEAT_highmem_assist)
                    | (1 << XENFEAT_gnttab_map_avail_bits)
                    | (1 << XENFEAT_memory_op_vnode_supported);
                if privileged {
                    submap |= 1 << XENFEAT_dom0;
                }
                g.write_u32(arg.wrapping_add(4), submap)?;
                ret(0)
            }
            XENVER_guest_handle => {
                g.copy_to_guest(arg, &[0u8; 16])?;
                ret(0)
            }
            XENVER_commandline => {
                // Xen shows its command line to the control domain only.
                let text: [u8; 1024] = if privileged { fixed(&self.cmdline) } else { fixed("<denied>") };
                g.copy_to_guest(arg, &text)?;
                ret(0)
            }
            XENVER_build_id => Err(Errno::ENODATA),
            _ => Err(Errno::ENOSYS),
        }
    }
}
