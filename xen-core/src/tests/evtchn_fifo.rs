//! The FIFO event-channel ABI as Linux uses it: a control block per vCPU,
//! the event array grown page by page, events linked on priority queues;
//! hostile frames and values get Xen's codes.

use super::World;
use crate::domain::DomId;
use crate::mm::{MachineMemory, Mfn};
use hypercall_abi::errno::Errno;
use hypercall_abi::evtchn::*;
use hypercall_abi::nr;

const P: u32 = 1 << EVTCHN_FIFO_PENDING;
const M: u32 = 1 << EVTCHN_FIFO_MASKED;
const L: u32 = 1 << EVTCHN_FIFO_LINKED;

fn op(w: &mut World, cmd: u32, arg: &[u8]) -> i64 {
    let s = w.scratch + 0x100;
    w.write(s, arg);
    w.hypercall(nr::EVENT_CHANNEL_OP, [cmd as u64, s, 0, 0, 0])
}

fn init_control(w: &mut World, gfn: u64, offset: u32, vcpu: u32) -> i64 {
    let mut b = [0u8; 24];
    b[0..8].copy_from_slice(&gfn.to_le_bytes());
    b[8..12].copy_from_slice(&offset.to_le_bytes());
    b[12..16].copy_from_slice(&vcpu.to_le_bytes());
    op(w, EVTCHNOP_init_control, &b)
}

fn bind_ipi(w: &mut World) -> u32 {
    assert_eq!(op(w, EVTCHNOP_bind_ipi, &[0; 8]), 0);
    (w.read_u64(w.scratch + 0x100) >> 32) as u32
}

fn word(w: &World, array: Mfn, port: u32) -> u32 {
    let mut b = [0u8; 4];
    w.xen.platform.read(array, 4 * port as usize, &mut b);
    u32::from_le_bytes(b)
}

fn set_word(w: &World, array: Mfn, port: u32, v: u32) {
    w.xen.platform.write(array, 4 * port as usize, &v.to_le_bytes());
}

fn cb_u32(w: &World, cb: Mfn, off: usize) -> u32 {
    let mut b = [0u8; 4];
    w.xen.platform.read(cb, off, &mut b);
    u32::from_le_bytes(b)
}

#[test]
fn events_are_linked_on_their_queue_in_order_and_the_vcpu_told() {
    let mut w = World::new();
    let (cb, array) = (w.pfn(w.spare_pfn(1)), w.pfn(w.spare_pfn(2)));
    // Before the ABI is chosen: Xen's codes.
    assert_eq!(op(&mut w, EVTCHNOP_set_priority, &[1, 0, 0, 0, 3, 0, 0, 0]), Errno::ENOSYS.to_ret());
    assert_eq!(op(&mut w, EVTCHNOP_expand_array, &array.0.to_le_bytes()), Errno::EOPNOTSUPP.to_ret());
    // An IPI pending in the 2-level bitmap before the switch.
    let p = bind_ipi(&mut w);
    assert_eq!(op(&mut w, EVTCHNOP_send, &p.to_le_bytes()), 0);
    assert_eq!(init_control(&mut w, cb.0, 64, 0), 0);
    assert_eq!(w.read_u64(w.scratch + 0x100 + 16) & 0xff, EVTCHN_FIFO_LINK_BITS as u64, "link_bits out");
    assert_eq!(init_control(&mut w, cb.0, 64, 0), Errno::EINVAL.to_ret(), "once per vCPU");
    // The page comes: the early event is delivered at once, on queue 7.
    let vi = w.xen.vcpu_info_of(DomId(0), 0).unwrap();
    let mut raw = vi.read_all();
    raw[0] = 0;
    vi.write_all(&raw);
    assert_eq!(op(&mut w, EVTCHNOP_expand_array, &array.0.to_le_bytes()), 0);
    assert_eq!(word(&w, array, p), P | L);
    assert_eq!(cb_u32(&w, cb, 64), 1 << EVTCHN_FIFO_PRIORITY_DEFAULT, "READY for queue 7");
    assert_eq!(cb_u32(&w, cb, 64 + 8 + 4 * 7), p, "head of queue 7");
    // evtchn_upcall_pending, byte 0 of vCPU 0's vcpu_info.
    assert_eq!(w.xen.vcpu_info_of(DomId(0), 0).unwrap().read_all()[0], 1, "the vCPU is told");
    // A second event goes behind it: the first word's LINK names it.
    let q = bind_ipi(&mut w);
    assert_eq!(op(&mut w, EVTCHNOP_send, &q.to_le_bytes()), 0);
    assert_eq!(word(&w, array, q), P | L);
    assert_eq!(word(&w, array, p), P | L | q);
    // The guest takes both; the next event starts the queue again.
    set_word(&w, array, p, 0);
    set_word(&w, array, q, 0);
    w.xen.platform.write(cb, 64, &0u32.to_le_bytes());
    assert_eq!(op(&mut w, EVTCHNOP_send, &q.to_le_bytes()), 0);
    assert_eq!(cb_u32(&w, cb, 64 + 8 + 4 * 7), q, "a new head, not a link on a consumed tail");
    assert_eq!(word(&w, array, q), P | L);
}

#[test]
fn a_masked_event_waits_for_unmask_and_priorities_choose_the_queue() {
    let mut w = World::new();
    let (cb, array) = (w.pfn(w.spare_pfn(1)), w.pfn(w.spare_pfn(2)));
    assert_eq!(init_control(&mut w, cb.0, 0, 0), 0);
    assert_eq!(op(&mut w, EVTCHNOP_expand_array, &array.0.to_le_bytes()), 0);
    let p = bind_ipi(&mut w);
    set_word(&w, array, p, M);
    assert_eq!(op(&mut w, EVTCHNOP_send, &p.to_le_bytes()), 0);
    assert_eq!(word(&w, array, p), M | P, "pending, not linked");
    assert_eq!(cb_u32(&w, cb, 0), 0, "no queue ready");
    // The guest clears MASKED, then asks Xen to look.
    set_word(&w, array, p, P);
    assert_eq!(op(&mut w, EVTCHNOP_unmask, &p.to_le_bytes()), 0);
    assert_eq!(word(&w, array, p), P | L);
    // Priorities: 0..=15, on a bound port.
    let q = bind_ipi(&mut w);
    let prio = |port: u32, pr: u32| {
        let mut b = [0u8; 8];
        b[0..4].copy_from_slice(&port.to_le_bytes());
        b[4..8].copy_from_slice(&pr.to_le_bytes());
        b
    };
    assert_eq!(op(&mut w, EVTCHNOP_set_priority, &prio(q, 16)), Errno::EINVAL.to_ret());
    assert_eq!(op(&mut w, EVTCHNOP_set_priority, &prio(4000, 3)), Errno::EINVAL.to_ret());
    assert_eq!(op(&mut w, EVTCHNOP_set_priority, &prio(q, 3)), 0);
    assert_eq!(op(&mut w, EVTCHNOP_send, &q.to_le_bytes()), 0);
    assert_eq!(cb_u32(&w, cb, 8 + 4 * 3), q, "head of queue 3");
    assert_eq!(cb_u32(&w, cb, 0), (1 << 3) | (1 << EVTCHN_FIFO_PRIORITY_DEFAULT));
    // The status and poll paths see the FIFO bits.
    assert!(w.xen.port_pending(DomId(0), q));
    assert!(!w.xen.port_masked(DomId(0), q));
}

#[test]
fn hostile_frames_and_values_get_xens_codes_and_reset_gives_the_pages_back() {
    let mut w = World::new();
    let (cb, array) = (w.pfn(w.spare_pfn(1)), w.pfn(w.spare_pfn(2)));
    assert_eq!(init_control(&mut w, cb.0, 4, 0), Errno::EINVAL.to_ret(), "not 8-byte aligned");
    assert_eq!(init_control(&mut w, cb.0, 4096 - 64, 0), Errno::EINVAL.to_ret(), "runs off the page");
    assert_eq!(init_control(&mut w, cb.0, 0, 9), Errno::ENOENT.to_ret(), "no such vCPU");
    let l4 = w.xen.domains[&DomId(0)].vcpus[0].cr3;
    assert_eq!(init_control(&mut w, l4.0, 0, 0), Errno::EINVAL.to_ret(), "a page table");
    w.add_domain(DomId(4), false);
    let theirs = w.xen.domains[&DomId(4)].p2m[900];
    assert_eq!(init_control(&mut w, theirs.0, 0, 0), Errno::EINVAL.to_ret(), "another domain's frame");
    assert!(w.xen.domains[&DomId(0)].fifo.is_none(), "still 2-level");
    assert_eq!(init_control(&mut w, cb.0, 0, 0), 0);
    assert_eq!(op(&mut w, EVTCHNOP_expand_array, &theirs.0.to_le_bytes()), Errno::EINVAL.to_ret());
    assert_eq!(op(&mut w, EVTCHNOP_expand_array, &array.0.to_le_bytes()), 0);
    // The pages are held writable: they cannot become page tables.
    assert_eq!(w.mmuext(hypercall_abi::mm::MMUEXT_PIN_L1_TABLE, array.0, 0), Errno::EINVAL.to_ret());
    // A word the guest filled with garbage links nowhere it should not.
    let p = bind_ipi(&mut w);
    set_word(&w, array, p, 0x0fff_ffff);
    assert_eq!(op(&mut w, EVTCHNOP_send, &p.to_le_bytes()), 0);
    // reset: back to 2-level, both pages free of Xen's references.
    let self_dom = 0x7ff0u16.to_le_bytes();
    assert_eq!(op(&mut w, EVTCHNOP_reset, &self_dom), 0);
    assert!(w.xen.domains[&DomId(0)].fifo.is_none());
    for m in [cb, array] {
        assert_eq!(w.xen.frames.get(m).unwrap().type_count, 0, "{m:?}");
    }
    assert_eq!(op(&mut w, EVTCHNOP_expand_array, &array.0.to_le_bytes()), Errno::EOPNOTSUPP.to_ret());
}
