//! Typed access to a domain's `shared_info` page, over the `hypercall-abi`
//! layouts (`struct shared_info`, `struct vcpu_info` in `xen.h`): the one
//! place that knows where the fields the hypervisor writes live. Every
//! write goes through a [`SharedPage`], a frame typed writable for good
//! (see `mm::shared`), so none of them can land in a page table.

use core::mem::{offset_of, size_of};

use crate::mm::{MachineMemory, SharedPage};
use hypercall_abi::arch::ArchVcpuInfo;
use hypercall_abi::shared_info::{SharedInfo, VcpuInfo, VcpuTimeInfo, XEN_LEGACY_MAX_VCPUS};

/// `shared_info` of one domain, on the machine's memory.
pub struct SharedInfoPage<'a, M: MachineMemory> {
    mem: &'a M,
    page: SharedPage,
}

/// Where `vcpu_info[v]` starts in `shared_info`; only the first 32 vCPUs
/// have one there (the legacy array; the others must register one with
/// `VCPUOP_register_vcpu_info`).
const fn vcpu_info(v: usize) -> Option<usize> {
    if v < XEN_LEGACY_MAX_VCPUS {
        Some(offset_of!(SharedInfo, vcpu_info) + v * size_of::<VcpuInfo>())
    } else {
        None
    }
}

/// The 2-level event bitmaps: word `w` of 64.
const fn bitmap_word(base: usize, w: usize) -> Option<usize> {
    if w < 64 {
        Some(base + 8 * w)
    } else {
        None
    }
}

/// Where one vCPU's `vcpu_info` lives: its slot in `shared_info`, or the
/// place the guest registered (`VCPUOP_register_vcpu_info`). Either way a
/// [`SharedPage`]: a frame that holds a `Writable` type reference for as
/// long as the hypervisor writes into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VcpuInfoLoc {
    page: SharedPage,
    base: usize,
}

impl VcpuInfoLoc {
    /// vCPU `v`'s slot in the domain's `shared_info` (none past 32).
    pub fn in_shared_info(shared_info: SharedPage, v: usize) -> Option<VcpuInfoLoc> {
        vcpu_info(v).map(|base| VcpuInfoLoc { page: shared_info, base })
    }

    /// A registered `vcpu_info` at `offset` of `page`, if it fits whole.
    pub fn registered(page: SharedPage, offset: usize) -> Option<VcpuInfoLoc> {
        (offset <= 4096 - size_of::<VcpuInfo>()).then_some(VcpuInfoLoc { page, base: offset })
    }

    pub fn page(self) -> SharedPage {
        self.page
    }

    pub fn offset(self) -> usize {
        self.base
    }

    pub fn on<M: MachineMemory>(self, mem: &M) -> VcpuInfoPage<'_, M> {
        VcpuInfoPage { mem, page: self.page, base: self.base }
    }
}

/// One vCPU's `vcpu_info`, on the machine's memory.
pub struct VcpuInfoPage<'a, M: MachineMemory> {
    mem: &'a M,
    page: SharedPage,
    base: usize,
}

impl<M: MachineMemory> VcpuInfoPage<'_, M> {
    fn read_u8(&self, field: usize) -> u8 {
        let mut b = [0u8];
        self.page.read(self.mem, self.base + field, &mut b);
        b[0]
    }

    fn read_u32(&self, field: usize) -> u32 {
        let mut b = [0u8; 4];
        self.page.read(self.mem, self.base + field, &mut b);
        u32::from_le_bytes(b)
    }

    fn read_u64(&self, field: usize) -> u64 {
        let mut b = [0u8; 8];
        self.page.read(self.mem, self.base + field, &mut b);
        u64::from_le_bytes(b)
    }

    fn write(&self, field: usize, data: &[u8]) {
        self.page.write(self.mem, self.base + field, data);
    }

    /// `evtchn_upcall_mask`.
    pub fn upcall_mask(&self) -> u8 {
        self.read_u8(offset_of!(VcpuInfo, evtchn_upcall_mask))
    }

    pub fn set_upcall_mask(&self, mask: bool) {
        self.write(offset_of!(VcpuInfo, evtchn_upcall_mask), &[mask as u8]);
    }

    pub fn set_upcall_pending(&self) {
        self.write(offset_of!(VcpuInfo, evtchn_upcall_pending), &[1]);
    }

    /// `evtchn_upcall_pending && !evtchn_upcall_mask` (Xen's
    /// `local_events_need_delivery`).
    pub fn events_need_delivery(&self) -> bool {
        self.read_u8(offset_of!(VcpuInfo, evtchn_upcall_pending)) != 0 && self.upcall_mask() == 0
    }

    pub fn pending_sel(&self) -> u64 {
        self.read_u64(offset_of!(VcpuInfo, evtchn_pending_sel))
    }

    pub fn set_pending_sel(&self, sel: u64) {
        self.write(offset_of!(VcpuInfo, evtchn_pending_sel), &sel.to_le_bytes());
    }

    /// `arch.cr2`: where a PV kernel reads a #PF's address.
    pub fn cr2(&self) -> u64 {
        self.read_u64(offset_of!(VcpuInfo, arch) + offset_of!(ArchVcpuInfo, cr2))
    }

    pub fn set_cr2(&self, cr2: u64) {
        self.write(offset_of!(VcpuInfo, arch) + offset_of!(ArchVcpuInfo, cr2), &cr2.to_le_bytes());
    }

    /// The whole structure, to move it when the guest registers a new place.
    pub fn read_all(&self) -> [u8; size_of::<VcpuInfo>()] {
        let mut b = [0u8; size_of::<VcpuInfo>()];
        self.page.read(self.mem, self.base, &mut b);
        b
    }

    pub fn write_all(&self, b: &[u8; size_of::<VcpuInfo>()]) {
        self.page.write(self.mem, self.base, b);
    }

    /// Publish `time` with the version protocol: odd while the fields
    /// change, even when they are consistent.
    pub fn publish_time(&self, tsc: u64, system_time: u64, mul: u32, shift: i8) {
        let t = offset_of!(VcpuInfo, time);
        let at = |f: usize| t + f;
        let ver = self.read_u32(at(offset_of!(VcpuTimeInfo, version))).wrapping_add(1) | 1;
        self.write(at(offset_of!(VcpuTimeInfo, version)), &ver.to_le_bytes());
        self.write(at(offset_of!(VcpuTimeInfo, tsc_timestamp)), &tsc.to_le_bytes());
        self.write(at(offset_of!(VcpuTimeInfo, system_time)), &system_time.to_le_bytes());
        self.write(at(offset_of!(VcpuTimeInfo, tsc_to_system_mul)), &mul.to_le_bytes());
        self.write(at(offset_of!(VcpuTimeInfo, tsc_shift)), &shift.to_le_bytes());
        self.write(at(offset_of!(VcpuTimeInfo, flags)), &[0]);
        self.write(at(offset_of!(VcpuTimeInfo, version)), &ver.wrapping_add(1).to_le_bytes());
    }
}

impl SharedPage {
    pub fn shared_info<M: MachineMemory>(self, mem: &M) -> SharedInfoPage<'_, M> {
        SharedInfoPage { mem, page: self }
    }
}

impl<M: MachineMemory> SharedInfoPage<'_, M> {
    fn read_u64_at(&self, off: usize) -> u64 {
        let mut b = [0u8; 8];
        self.page.read(self.mem, off, &mut b);
        u64::from_le_bytes(b)
    }

    fn read_u32_at(&self, off: usize) -> u32 {
        let mut b = [0u8; 4];
        self.page.read(self.mem, off, &mut b);
        u32::from_le_bytes(b)
    }

    /// Every legacy `vcpu_info` starts with events masked until the guest
    /// is ready (as Xen's domain builder leaves them).
    pub fn mask_all_upcalls(&self) {
        for v in 0..XEN_LEGACY_MAX_VCPUS {
            if let Some(loc) = VcpuInfoLoc::in_shared_info(self.page, v) {
                loc.on(self.mem).set_upcall_mask(true);
            }
        }
    }

    /// `arch.nmi_reason`: set `bits` (`_XEN_NMIREASON_*`) for the guest's
    /// NMI callback to read.
    pub fn raise_nmi_reason(&self, bits: u64) {
        let at = offset_of!(SharedInfo, arch) + offset_of!(hypercall_abi::arch::ArchSharedInfo, nmi_reason);
        let reason = self.read_u64_at(at) | bits;
        self.page.write(self.mem, at, &reason.to_le_bytes());
    }

    pub fn evtchn_pending(&self, w: usize) -> u64 {
        bitmap_word(offset_of!(SharedInfo, evtchn_pending), w).map_or(0, |o| self.read_u64_at(o))
    }

    pub fn set_evtchn_pending(&self, w: usize, bits: u64) {
        if let Some(o) = bitmap_word(offset_of!(SharedInfo, evtchn_pending), w) {
            self.page.write(self.mem, o, &bits.to_le_bytes());
        }
    }

    pub fn evtchn_mask(&self, w: usize) -> u64 {
        bitmap_word(offset_of!(SharedInfo, evtchn_mask), w).map_or(0, |o| self.read_u64_at(o))
    }

    pub fn set_evtchn_mask(&self, w: usize, bits: u64) {
        if let Some(o) = bitmap_word(offset_of!(SharedInfo, evtchn_mask), w) {
            self.page.write(self.mem, o, &bits.to_le_bytes());
        }
    }

    /// Publish the wallclock at system time zero, with the same protocol.
    pub fn publish_wallclock(&self, sec: u64, nsec: u32) {
        let ver = self.read_u32_at(offset_of!(SharedInfo, wc_version)).wrapping_add(1) | 1;
        self.page.write(self.mem, offset_of!(SharedInfo, wc_version), &ver.to_le_bytes());
        self.page.write(self.mem, offset_of!(SharedInfo, wc_sec), &(sec as u32).to_le_bytes());
        self.page.write(self.mem, offset_of!(SharedInfo, wc_nsec), &nsec.to_le_bytes());
        self.page.write(self.mem, offset_of!(SharedInfo, wc_sec_hi), &((sec >> 32) as u32).to_le_bytes());
        self.page.write(self.mem, offset_of!(SharedInfo, wc_version), &ver.wrapping_add(1).to_le_bytes());
    }
}
