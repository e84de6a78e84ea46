//! `platform_op` as Linux's Dom0 uses it at boot, with Xen 4.17's checks
//! and error codes for everything else.

use core::mem::offset_of;

use super::World;
use crate::domain::DomId;
use crate::mm::MachineMemory;
use hypercall_abi::errno::Errno;
use hypercall_abi::nr;
use hypercall_abi::platform::*;
use hypercall_abi::shared_info::SharedInfo;

/// The op at the scratch buffer: `cmd`, `version`, then `u`.
fn op(w: &mut World, cmd: u32, version: u32, u: &[u8]) -> i64 {
    let mut b = [0u8; 136];
    b[0..4].copy_from_slice(&cmd.to_le_bytes());
    b[4..8].copy_from_slice(&version.to_le_bytes());
    b[8..8 + u.len()].copy_from_slice(u);
    w.write(w.scratch, &b);
    w.hypercall(nr::PLATFORM_OP, [w.scratch, 0, 0, 0, 0])
}

fn u_word(w: &World, off: usize) -> u32 {
    let mut b = [0u8; 4];
    w.xen.guest_mem().unwrap().copy_from_guest(w.scratch + 8 + off as u64, &mut b).unwrap();
    u32::from_le_bytes(b)
}

/// (wc_sec, wc_nsec) in domain `d`'s shared_info.
fn wallclock(w: &World, d: DomId) -> (u64, u32) {
    let mfn = w.xen.domains[&d].shared_info.mfn();
    let rd = |off| {
        let mut b = [0u8; 4];
        w.xen.platform.read(mfn, off, &mut b);
        u32::from_le_bytes(b)
    };
    let sec = rd(offset_of!(SharedInfo, wc_sec)) as u64 | (rd(offset_of!(SharedInfo, wc_sec_hi)) as u64) << 32;
    (sec, rd(offset_of!(SharedInfo, wc_nsec)))
}

fn settime64(secs: u64, nsecs: u32, mbz: u32, system_time: u64) -> [u8; 24] {
    let mut u = [0u8; 24];
    u[0..8].copy_from_slice(&secs.to_le_bytes());
    u[8..12].copy_from_slice(&nsecs.to_le_bytes());
    u[12..16].copy_from_slice(&mbz.to_le_bytes());
    u[16..24].copy_from_slice(&system_time.to_le_bytes());
    u
}

#[test]
fn settime_moves_every_domains_wallclock_to_dom0s_time() {
    let mut w = World::new();
    w.add_domain(DomId(3), false);
    let before = wallclock(&w, DomId(3));
    // The wallclock is 2_000_000_000.25 s at system time 1.5 s: at system
    // time zero it was 1_999_999_998.75 s.
    assert_eq!(op(&mut w, XENPF_settime64, XENPF_INTERFACE_VERSION, &settime64(2_000_000_000, 250_000_000, 0, 1_500_000_000)), 0);
    for d in [DomId(0), DomId(3)] {
        assert_eq!(wallclock(&w, d), (1_999_999_998, 750_000_000), "{d:?}");
    }
    assert_ne!(before, wallclock(&w, DomId(3)));
    // settime32: the same with 32-bit seconds.
    let mut u = [0u8; 16];
    u[0..4].copy_from_slice(&1_800_000_000u32.to_le_bytes());
    u[8..16].copy_from_slice(&2_000_000_000u64.to_le_bytes());
    assert_eq!(op(&mut w, XENPF_settime32, XENPF_INTERFACE_VERSION, &u), 0);
    assert_eq!(wallclock(&w, DomId(0)), (1_799_999_998, 0));
    // A non-zero mbz is refused and changes nothing.
    assert_eq!(op(&mut w, XENPF_settime64, XENPF_INTERFACE_VERSION, &settime64(5, 0, 1, 0)), Errno::EINVAL.to_ret());
    assert_eq!(wallclock(&w, DomId(0)), (1_799_999_998, 0));
    // A domain built later gets the new base too.
    w.add_domain(DomId(4), false);
    w.xen.update_wallclock(DomId(4));
    assert_eq!(wallclock(&w, DomId(4)), (1_799_999_998, 0));
}

#[test]
fn checks_come_in_xens_order_and_only_dom0_may_ask() {
    let mut w = World::new();
    assert_eq!(w.hypercall(nr::PLATFORM_OP, [0xffff_8300_0000_0000, 0, 0, 0, 0]), Errno::EFAULT.to_ret());
    assert_eq!(op(&mut w, XENPF_get_cpuinfo, 0x0300_0000, &[]), Errno::EACCES.to_ret());
    let mut du = World::with_domain(DomId(2), false);
    // The version is checked before the privilege, as in Xen.
    assert_eq!(op(&mut du, XENPF_get_cpuinfo, 0, &[]), Errno::EACCES.to_ret());
    let before = wallclock(&du, DomId(2));
    assert_eq!(op(&mut du, XENPF_settime64, XENPF_INTERFACE_VERSION, &settime64(1, 0, 0, 0)), Errno::EPERM.to_ret());
    assert_eq!(wallclock(&du, DomId(2)), before);
    // What xen-core does not offer is Xen's -ENOSYS.
    for cmd in [XENPF_enter_acpi_sleep, XENPF_microcode_update, XENPF_change_freq, XENPF_set_processor_pminfo, XENPF_cpu_hotadd, 999] {
        assert_eq!(op(&mut w, cmd, XENPF_INTERFACE_VERSION, &[]), Errno::ENOSYS.to_ret(), "cmd {cmd}");
    }
}

#[test]
fn get_cpuinfo_describes_the_boot_cpu_and_flags_absent_ones() {
    let mut w = World::new();
    assert_eq!(op(&mut w, XENPF_get_cpuinfo, XENPF_INTERFACE_VERSION, &[0; 20]), 0);
    let apic = crate::testing::qemu_max_cpuid(1, 0)[1] >> 24;
    assert_eq!(
        (0..5).map(|i| u_word(&w, 4 * i)).collect::<alloc::vec::Vec<_>>(),
        [0, 0, XEN_PCPU_FLAGS_ONLINE, apic, 0],
        "cpu, max_present, flags, apic_id, acpi_id"
    );
    // An absent CPU: INVALID, ids left as given.
    let mut u = [0u8; 20];
    u[0..4].copy_from_slice(&7u32.to_le_bytes());
    u[12..16].copy_from_slice(&0x55u32.to_le_bytes());
    assert_eq!(op(&mut w, XENPF_get_cpuinfo, XENPF_INTERFACE_VERSION, &u), 0);
    assert_eq!((u_word(&w, 4), u_word(&w, 8), u_word(&w, 12)), (0, XEN_PCPU_FLAGS_INVALID, 0x55));
}

#[test]
fn get_cpu_version_names_the_vendor_and_family() {
    let mut w = World::new();
    assert_eq!(op(&mut w, XENPF_get_cpu_version, XENPF_INTERFACE_VERSION, &[0; 32]), 0);
    let mut vendor = [0u8; 12];
    w.xen.guest_mem().unwrap().copy_from_guest(w.scratch + 8 + 8, &mut vendor).unwrap();
    let [_, b, c, d] = crate::testing::qemu_max_cpuid(0, 0);
    let mut want = [0u8; 12];
    for (i, r) in [b, d, c].iter().enumerate() {
        want[4 * i..4 * i + 4].copy_from_slice(&r.to_le_bytes());
    }
    assert_eq!(vendor, want);
    assert_ne!(u_word(&w, 12), 0, "a family");
    // An absent CPU: zeros.
    let mut u = [0u8; 32];
    u[0..4].copy_from_slice(&3u32.to_le_bytes());
    u[8..20].fill(0xaa);
    assert_eq!(op(&mut w, XENPF_get_cpu_version, XENPF_INTERFACE_VERSION, &u), 0);
    assert_eq!((u_word(&w, 8), u_word(&w, 12)), (0, 0));
}

#[test]
fn firmware_info_has_no_bios_records_and_refuses_unknown_types() {
    let mut w = World::new();
    let fw = |ty: u32, index: u32| {
        let mut u = [0u8; 16];
        u[0..4].copy_from_slice(&ty.to_le_bytes());
        u[4..8].copy_from_slice(&index.to_le_bytes());
        u
    };
    for ty in [XEN_FW_DISK_INFO, XEN_FW_DISK_MBR_SIGNATURE, XEN_FW_VBEDDC_INFO] {
        assert_eq!(op(&mut w, XENPF_firmware_info, XENPF_INTERFACE_VERSION, &fw(ty, 0)), Errno::ESRCH.to_ret(), "type {ty}");
    }
    assert_eq!(op(&mut w, XENPF_firmware_info, XENPF_INTERFACE_VERSION, &fw(XEN_FW_EFI_INFO, 0)), Errno::ENOSYS.to_ret());
    let mut u = fw(XEN_FW_KBD_SHIFT_FLAGS, 0);
    u[8] = 0xff;
    assert_eq!(op(&mut w, XENPF_firmware_info, XENPF_INTERFACE_VERSION, &u), 0);
    assert_eq!(u_word(&w, 8) & 0xff, 0, "no shift key held");
    assert_eq!(op(&mut w, XENPF_firmware_info, XENPF_INTERFACE_VERSION, &fw(XEN_FW_KBD_SHIFT_FLAGS, 1)), Errno::ESRCH.to_ret());
    assert_eq!(op(&mut w, XENPF_firmware_info, XENPF_INTERFACE_VERSION, &fw(77, 0)), Errno::EINVAL.to_ret());
}
