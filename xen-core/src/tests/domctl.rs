//! `domctl` through the hypercall entry: only the control domain, only
//! Xen 4.17's interface version, and the calls a builder makes.

use super::World;
use crate::domain::DomId;
use crate::vcpu::RunState;
use hypercall_abi::domctl::*;
use hypercall_abi::errno::Errno;
use hypercall_abi::nr;

impl World {
    fn domctl(&mut self, cmd: u32, dom: u16, u: &[u8]) -> (i64, [u8; 144]) {
        let mut b = [0u8; 144];
        b[0..4].copy_from_slice(&cmd.to_le_bytes());
        b[4..8].copy_from_slice(&XEN_DOMCTL_INTERFACE_VERSION.to_le_bytes());
        b[8..10].copy_from_slice(&dom.to_le_bytes());
        b[16..16 + u.len()].copy_from_slice(u);
        let s = self.scratch + 0x6000;
        self.write(s, &b);
        let rc = self.hypercall(nr::DOMCTL, [s, 0, 0, 0, 0]);
        let mut out = [0u8; 144];
        self.xen.guest_mem().unwrap().copy_from_guest(s, &mut out).unwrap();
        (rc, out)
    }
}

fn create(w: &mut World, vcpus: u32) -> u16 {
    let mut c = [0u8; 64];
    c[28..32].copy_from_slice(&vcpus.to_le_bytes());
    c[32..36].copy_from_slice(&1023u32.to_le_bytes());
    let (rc, out) = w.domctl(XEN_DOMCTL_createdomain, 0, &c);
    assert_eq!(rc, 0);
    u16::from_le_bytes([out[8], out[9]])
}

#[test]
fn only_the_control_domain_may_use_domctl() {
    let mut w = World::with_domain(DomId(1), false);
    assert_eq!(w.domctl(XEN_DOMCTL_getdomaininfo, 0, &[]).0, Errno::EPERM.to_ret());
    let mut w = World::new();
    let mut b = [0u8; 144];
    b[0..4].copy_from_slice(&XEN_DOMCTL_getdomaininfo.to_le_bytes());
    b[4..8].copy_from_slice(&0x10u32.to_le_bytes());
    let s = w.scratch;
    w.write(s, &b);
    assert_eq!(w.hypercall(nr::DOMCTL, [s, 0, 0, 0, 0]), Errno::EACCES.to_ret(), "another interface version");
    assert_eq!(w.hypercall(nr::DOMCTL, [0xffff_8300_0000_0000, 0, 0, 0, 0]), Errno::EFAULT.to_ret());
}

#[test]
fn a_domain_is_created_given_memory_and_a_vcpu_and_started() {
    let mut w = World::new();
    let d = create(&mut w, 2);
    assert!(d > 0);
    let (rc, out) = w.domctl(XEN_DOMCTL_getdomaininfo, d, &[]);
    assert_eq!(rc, 0);
    let flags = u32::from_le_bytes(out[20..24].try_into().unwrap());
    assert_ne!(flags & XEN_DOMINF_paused, 0, "created paused");
    assert_eq!(w.domctl(XEN_DOMCTL_max_mem, d, &(64u64 * 4).to_le_bytes()).0, 0);
    let mfns = w.xen.populate_physmap(DomId(d), &(0..64).collect::<alloc::vec::Vec<u64>>());
    assert_eq!(mfns.len(), 64);
    assert_eq!(w.xen.populate_physmap(DomId(d), &[64]).len(), 0, "max_mem holds");
    // Page tables and a vCPU context built by hand, as Dom0's builder would.
    let p = &w.xen.platform;
    let t = crate::mm::pte::_PAGE_PRESENT | crate::mm::pte::_PAGE_RW | crate::mm::pte::_PAGE_USER;
    crate::mm::MachineMemory::write_u64(p, mfns[3], 0, mfns[2].maddr() | t);
    crate::mm::MachineMemory::write_u64(p, mfns[2], 0, mfns[1].maddr() | t);
    crate::mm::MachineMemory::write_u64(p, mfns[1], 0, mfns[0].maddr() | t);
    crate::mm::MachineMemory::write_u64(p, mfns[0], 16, mfns[16].maddr() | t);
    assert_eq!(w.domctl(XEN_DOMCTL_hypercall_init, d, &mfns[16].0.to_le_bytes()).0, 0);
    let mut ctx = super::vcpu_hostile_context_for(&w, 0x10000);
    let off = core::mem::offset_of!(hypercall_abi::arch::VcpuGuestContext, ctrlreg) + 24;
    ctx[off..off + 8].copy_from_slice(&mfns[3].maddr().to_le_bytes());
    let cs = w.scratch + 0x7000;
    w.write(cs, &ctx);
    let mut vc = [0u8; 16];
    vc[8..16].copy_from_slice(&cs.to_le_bytes());
    assert_eq!(w.domctl(XEN_DOMCTL_setvcpucontext, d, &vc).0, 0);
    assert_eq!(w.domctl(XEN_DOMCTL_setvcpucontext, d, &vc).0, Errno::EEXIST.to_ret());
    assert_eq!(w.domctl(XEN_DOMCTL_unpausedomain, d, &[]).0, 0);
    assert_eq!(w.xen.domains[&DomId(d)].vcpus[0].state, RunState::Runnable);
    // Scheduler parameters.
    let mut s = [0u8; 24];
    s[0..4].copy_from_slice(&XEN_SCHEDULER_CREDIT.to_le_bytes());
    s[8..10].copy_from_slice(&512u16.to_le_bytes());
    s[10..12].copy_from_slice(&50u16.to_le_bytes());
    assert_eq!(w.domctl(XEN_DOMCTL_scheduler_op, d, &s).0, 0);
    assert_eq!((w.xen.domains[&DomId(d)].weight, w.xen.domains[&DomId(d)].cap), (512, 50));
    // The list walk: getdomaininfo answers with the next id at or above.
    let (_, out) = w.domctl(XEN_DOMCTL_getdomaininfo, 1, &[]);
    assert_eq!(u16::from_le_bytes([out[8], out[9]]), d);
    assert_eq!(w.domctl(XEN_DOMCTL_getdomaininfo, d + 1, &[]).0, Errno::ESRCH.to_ret());
    assert_eq!(w.domctl(XEN_DOMCTL_pausedomain, 0, &[]).0, Errno::EINVAL.to_ret(), "not itself");
    assert_eq!(w.domctl(XEN_DOMCTL_destroydomain, d, &[]).0, 0);
    assert_eq!(w.domctl(XEN_DOMCTL_destroydomain, d, &[]).0, Errno::ESRCH.to_ret());
    super::invariants::check(&w.xen).unwrap();
}

#[test]
fn debug_key_q_raises_virq_debug_on_every_vcpu() {
    let mut w = World::new();
    let mut a = [0u8; 12];
    a[0..4].copy_from_slice(&VIRQ_DEBUG_NR.to_le_bytes());
    let s = w.scratch + 0x3000;
    w.write(s, &a);
    assert_eq!(w.hypercall(nr::EVENT_CHANNEL_OP, [1, s, 0, 0, 0]), 0);
    let port = w.xen.domains[&DomId(0)].vcpus[0].virq_to_evtchn[VIRQ_DEBUG_NR as usize];
    assert_ne!(port, 0);
    let mut b = [0u8; 136];
    b[0..4].copy_from_slice(&XEN_SYSCTL_debug_keys.to_le_bytes());
    b[4..8].copy_from_slice(&XEN_SYSCTL_INTERFACE_VERSION.to_le_bytes());
    let keys = w.scratch + 0x5000;
    w.write(keys, b"xq");
    b[8..16].copy_from_slice(&keys.to_le_bytes());
    b[16..20].copy_from_slice(&2u32.to_le_bytes());
    let at = w.scratch + 0x6000;
    w.write(at, &b);
    assert_eq!(w.hypercall(nr::SYSCTL, [at, 0, 0, 0, 0]), 0);
    assert!(w.xen.port_pending(DomId(0), port));
}

const VIRQ_DEBUG_NR: u32 = hypercall_abi::evtchn::VIRQ_DEBUG;

#[test]
fn physinfo_lists_the_machines_feature_words_as_xen() {
    let mut w = World::new();
    let at = w.scratch + 0x6000;
    w.write(at, &XenSysctl::new(XEN_SYSCTL_physinfo).to_bytes());
    assert_eq!(w.hypercall(nr::SYSCTL, [at, 0, 0, 0, 0]), 0);
    let mut b = [0u8; XenSysctl::SIZE];
    w.xen.guest_mem().unwrap().copy_from_guest(at, &mut b).unwrap();
    let hw = XenSysctl::from_bytes(&b).physinfo().hw_cap;
    let cpuid = crate::testing::qemu_max_cpuid;
    // Xen's featureset order: 1.edx, 1.ecx, 0x80000001.edx, .ecx, 0xd[1].eax, 7[0].ebx, .ecx, 0x80000007.edx.
    let want = [cpuid(1, 0)[3], cpuid(1, 0)[2], cpuid(0x8000_0001, 0)[3], cpuid(0x8000_0001, 0)[2], cpuid(0xd, 1)[0], cpuid(7, 0)[1], cpuid(7, 0)[2], cpuid(0x8000_0007, 0)[3]];
    assert_eq!(hw, want);
    assert_eq!(hw[0] & 1, 1, "the FPU bit");
}
