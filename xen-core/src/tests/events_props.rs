//! Event channels and the scheduler, through the hypercall entry: named
//! behaviours, then property tests with several hostile domains.

use alloc::vec::Vec;

use proptest::prelude::*;

use super::World;
use crate::domain::DomId;
use crate::evtchn::State;
use crate::mm::MachineMemory;
use crate::platform::Platform;
use crate::regs::GuestRegs;
use crate::vcpu::RunState;
use hypercall_abi::errno::Errno;
use hypercall_abi::evtchn::*;
use hypercall_abi::nr;

impl World {
    /// event_channel_op with an argument block; returns (rc, the block after).
    pub(super) fn evtchn(&mut self, cmd: u32, arg: &[u8]) -> (i64, Vec<u8>) {
        let s = self.scratch + 0x3000;
        if self.xen.guest_mem().unwrap().copy_to_guest(s, arg).is_err() {
            return (i64::MIN, Vec::new());
        }
        let rc = self.hypercall(nr::EVENT_CHANNEL_OP, [cmd as u64, s, 0, 0, 0]);
        let mut out = alloc::vec![0u8; arg.len()];
        self.xen.guest_mem().unwrap().copy_from_guest(s, &mut out).unwrap();
        (rc, out)
    }

    pub(super) fn as_dom(&mut self, d: u16) {
        self.xen.current = Some((DomId(d), 0));
        self.scratch = self.layout.v_end - 0x10000;
    }

    fn alloc_unbound(&mut self, remote: u16) -> (i64, u32) {
        let mut a = [0u8; 8];
        a[0..2].copy_from_slice(&0x7ff0u16.to_le_bytes());
        a[2..4].copy_from_slice(&remote.to_le_bytes());
        let (rc, out) = self.evtchn(EVTCHNOP_alloc_unbound, &a);
        (rc, u32::from_le_bytes(out[4..8].try_into().unwrap_or([0; 4])))
    }

    fn bind_interdomain(&mut self, remote: u16, port: u32) -> (i64, u32) {
        let mut a = [0u8; 12];
        a[0..2].copy_from_slice(&remote.to_le_bytes());
        a[4..8].copy_from_slice(&port.to_le_bytes());
        let (rc, out) = self.evtchn(EVTCHNOP_bind_interdomain, &a);
        (rc, u32::from_le_bytes(out[8..12].try_into().unwrap_or([0; 4])))
    }

    pub(super) fn port_op(&mut self, cmd: u32, port: u32) -> i64 {
        self.evtchn(cmd, &port.to_le_bytes()).0
    }

    fn pending(&self, d: u16, port: u32) -> bool {
        self.xen.port_pending(DomId(d), port)
    }
}

/// Two unprivileged domains, 1 and 2, with the same layout.
fn two_domains() -> World {
    let mut w = World::with_domain(DomId(1), false);
    w.add_domain(DomId(2), false);
    w
}

#[test]
fn an_interdomain_channel_carries_events_both_ways() {
    let mut w = two_domains();
    w.as_dom(1);
    let (rc, p1) = w.alloc_unbound(2);
    assert_eq!((rc, p1), (0, 1), "the lowest free port; 0 is reserved");
    w.as_dom(2);
    let (rc, p2) = w.bind_interdomain(1, p1);
    assert_eq!(rc, 0);
    assert!(w.pending(2, p2), "a fresh bind starts pending, as on Xen");
    w.xen.clear_pending(DomId(2), p2);
    assert_eq!(w.port_op(EVTCHNOP_send, p2), 0);
    assert!(w.pending(1, p1));
    let si = w.xen.domains[&DomId(1)].shared_info.mfn();
    let mut upcall = [0u8; 1];
    w.xen.platform.read(si, 0, &mut upcall);
    assert_eq!(upcall[0], 1, "vcpu_info.evtchn_upcall_pending set");
    w.as_dom(1);
    assert_eq!(w.port_op(EVTCHNOP_send, p1), 0);
    assert!(w.pending(2, p2));
    // Closing one end leaves the other waiting for a new partner.
    assert_eq!(w.port_op(EVTCHNOP_close, p1), 0);
    assert_eq!(w.xen.domains[&DomId(2)].evtchn.get(p2).unwrap().state, State::Unbound { remote: DomId(1) });
    assert_eq!(w.port_op(EVTCHNOP_send, p1), Errno::EINVAL.to_ret());
}

#[test]
fn only_the_named_domain_may_bind_an_unbound_port() {
    let mut w = two_domains();
    w.add_domain(DomId(3), false);
    w.as_dom(1);
    let (_, p1) = w.alloc_unbound(2);
    w.as_dom(3);
    assert_eq!(w.bind_interdomain(1, p1).0, Errno::EINVAL.to_ret());
    assert_eq!(w.bind_interdomain(9, 1).0, Errno::ESRCH.to_ret());
    // Nor may it allocate ports in someone else's table.
    let mut a = [0u8; 8];
    a[0..2].copy_from_slice(&1u16.to_le_bytes());
    a[2..4].copy_from_slice(&3u16.to_le_bytes());
    assert_eq!(w.evtchn(EVTCHNOP_alloc_unbound, &a).0, Errno::EPERM.to_ret());
}

#[test]
fn masked_events_wait_for_unmask() {
    let mut w = World::new();
    let mut a = [0u8; 8];
    let (rc, out) = w.evtchn(EVTCHNOP_bind_ipi, &a);
    assert_eq!(rc, 0);
    let port = u32::from_le_bytes(out[4..8].try_into().unwrap());
    let si = w.xen.domains[&DomId(0)].shared_info.mfn();
    w.xen.platform.write_u64(si, (2560 + 8 * (port as usize / 64)) / 8, 1 << (port % 64));
    w.xen.platform.write(si, 0, &[0, 0]);
    assert_eq!(w.port_op(EVTCHNOP_send, port), 0);
    assert!(w.pending(0, port));
    let mut b = [0u8; 1];
    w.xen.platform.read(si, 0, &mut b);
    assert_eq!(b[0], 0, "masked: no upcall yet");
    assert_eq!(w.port_op(EVTCHNOP_unmask, port), 0);
    w.xen.platform.read(si, 0, &mut b);
    assert_eq!(b[0], 1, "unmask announces it");
    a[0..4].copy_from_slice(&5u32.to_le_bytes());
    assert_eq!(w.evtchn(EVTCHNOP_bind_ipi, &a).0, Errno::ENOENT.to_ret(), "no vCPU 5");
}

#[test]
fn virqs_bind_once_and_global_ones_only_on_vcpu_0() {
    let mut w = World::new();
    let bind = |w: &mut World, virq: u32, vcpu: u32| {
        let mut a = [0u8; 12];
        a[0..4].copy_from_slice(&virq.to_le_bytes());
        a[4..8].copy_from_slice(&vcpu.to_le_bytes());
        w.evtchn(EVTCHNOP_bind_virq, &a).0
    };
    assert_eq!(bind(&mut w, VIRQ_TIMER, 0), 0);
    assert_eq!(bind(&mut w, VIRQ_TIMER, 0), Errno::EEXIST.to_ret());
    assert_eq!(bind(&mut w, VIRQ_TIMER, 1), 0, "per-vCPU");
    assert_eq!(bind(&mut w, VIRQ_DOM_EXC, 1), Errno::EINVAL.to_ret());
    assert_eq!(bind(&mut w, VIRQ_DOM_EXC, 0), 0);
    assert_eq!(bind(&mut w, 99, 0), Errno::EINVAL.to_ret());
    // The timer fires through it.
    let now = w.xen.platform.now_ns();
    assert_eq!(w.hypercall(nr::SET_TIMER_OP, [now + 5_000_000, 0, 0, 0, 0]), 0);
    let port = w.xen.domains[&DomId(0)].vcpus[0].virq_to_evtchn[VIRQ_TIMER as usize];
    w.xen.platform.advance(4_000_000);
    w.xen.run_timers();
    assert!(!w.pending(0, port));
    w.xen.platform.advance(2_000_000);
    w.xen.run_timers();
    assert!(w.pending(0, port));
}

#[test]
fn a_dying_domain_is_reported_to_dom0_and_its_channels_tidied() {
    let mut w = World::new();
    w.add_domain(DomId(1), false);
    let mut a = [0u8; 12];
    a[0..4].copy_from_slice(&VIRQ_DOM_EXC.to_le_bytes());
    let (_, out) = w.evtchn(EVTCHNOP_bind_virq, &a);
    let exc = u32::from_le_bytes(out[8..12].try_into().unwrap());
    let (_, p0) = w.alloc_unbound(1);
    w.as_dom(1);
    let (_, p1) = w.bind_interdomain(0, p0);
    w.xen.domain_crash(DomId(1));
    assert!(w.pending(0, exc), "VIRQ_DOM_EXC");
    w.xen.evtchn_reset(DomId(1));
    assert_eq!(w.xen.domains[&DomId(0)].evtchn.get(p0).unwrap().state, State::Unbound { remote: DomId(1) });
    assert!(w.xen.domains[&DomId(1)].evtchn.get(p1).unwrap().state == State::Free);
}

#[test]
fn block_sleeps_until_an_event_and_poll_until_its_port() {
    let mut w = World::new();
    let (_, out) = w.evtchn(EVTCHNOP_bind_ipi, &[0u8; 8]);
    let port = u32::from_le_bytes(out[4..8].try_into().unwrap());
    let si = w.xen.domains[&DomId(0)].shared_info.mfn();
    w.xen.platform.write(si, 0, &[0, 0]); // events unmasked, none pending
    let mut regs = GuestRegs { rax: nr::SCHED_OP, rdi: 1, cs: 0xe033, ss: 0xe02b, ..GuestRegs::default() };
    assert_eq!(w.xen.hypercall(&mut regs), crate::xen::Next::Idle);
    assert_eq!(w.xen.domains[&DomId(0)].vcpus[0].state, RunState::Blocked);
    w.xen.evtchn_set_pending(DomId(0), port);
    assert_eq!(w.xen.domains[&DomId(0)].vcpus[0].state, RunState::Runnable, "the event woke it");
    // Poll on the (masked) port with a timeout.
    w.xen.clear_pending(DomId(0), port);
    w.xen.current = Some((DomId(0), 0));
    w.xen.platform.write(si, 1, &[1]);
    let s = w.scratch;
    w.write(s, &port.to_le_bytes());
    let now = w.xen.platform.now_ns();
    let mut poll = [0u8; 24];
    poll[0..8].copy_from_slice(&s.to_le_bytes());
    poll[8..12].copy_from_slice(&1u32.to_le_bytes());
    poll[16..24].copy_from_slice(&(now + 1_000_000).to_le_bytes());
    w.write(s + 0x100, &poll);
    let mut regs = GuestRegs { rax: nr::SCHED_OP, rdi: 3, rsi: s + 0x100, cs: 0xe033, ss: 0xe02b, ..GuestRegs::default() };
    assert_eq!(w.xen.hypercall(&mut regs), crate::xen::Next::Idle);
    w.xen.platform.advance(2_000_000);
    w.xen.run_timers();
    assert_eq!(w.xen.domains[&DomId(0)].vcpus[0].state, RunState::Runnable, "the timeout woke it");
}

/// Two domains, one always-runnable vCPU each (the second only if
/// `b_runs`); run `ms` ticks of 1 ms. Returns each domain's running time (ns).
fn run_for(weights: (u32, u32), cap_a: u32, b_runs: bool, ms: u64) -> (u64, u64) {
    let mut w = World::new();
    w.add_domain(DomId(1), false);
    w.xen.domains.get_mut(&DomId(0)).unwrap().weight = weights.0;
    w.xen.domains.get_mut(&DomId(0)).unwrap().cap = cap_a;
    w.xen.domains.get_mut(&DomId(1)).unwrap().weight = weights.1;
    w.xen.set_runstate(DomId(1), 0, if b_runs { RunState::Runnable } else { RunState::Blocked });
    let mut frame = w.xen.domains[&DomId(0)].vcpus[0].regs;
    for _ in 0..ms {
        w.xen.platform.advance(1_000_000);
        w.xen.timer_interrupt(&mut frame);
    }
    let run = |d: u16| w.xen.runstate_now(DomId(d), 0).time[0];
    (run(0), run(1))
}

fn share_of_cpu(weights: (u32, u32), cap_a: u32, ms: u64) -> (u64, u64) {
    run_for(weights, cap_a, true, ms)
}

#[test]
fn weight_2_gets_about_twice_the_cpu_of_weight_1() {
    let (a, b) = share_of_cpu((512, 256), 0, 3000);
    let ratio = a as f64 / b as f64;
    assert!((1.9..2.1).contains(&ratio), "{a} vs {b}: ratio {ratio:.2}");
    let (a, b) = share_of_cpu((256, 256), 0, 3000);
    let ratio = a as f64 / b as f64;
    assert!((0.95..1.05).contains(&ratio), "equal weights: {ratio:.2}");
}

/// The window: 6 s of 1 ms ticks, 200 accounting periods of 30 ms, so one
/// period's rounding is at most 0.5 % of the total.
const CAP_WINDOW_MS: u64 = 6000;
/// A cap of N gives N % of the CPU within this many percentage points.
const CAP_TOLERANCE_PCT: f64 = 1.0;

/// `xl sched-credit -c N`: a capped domain gets N % of the wall-clock time,
/// not more, even when nothing else wants the CPU (the CPU idles instead),
/// and not much less.
#[test]
fn a_cap_of_n_gives_n_percent_of_the_cpu_even_with_the_cpu_otherwise_free() {
    for cap in [10u32, 20, 50, 80] {
        let (a, b) = run_for((256, 256), cap, false, CAP_WINDOW_MS);
        assert_eq!(b, 0, "the other domain never ran");
        let pct = 100.0 * a as f64 / (CAP_WINDOW_MS * 1_000_000) as f64;
        assert!((pct - cap as f64).abs() <= CAP_TOLERANCE_PCT, "cap {cap}: alone it got {pct:.2} % of the CPU");
    }
}

/// A cap below the weight's fair share holds against a competitor, which
/// gets the rest; without a cap the same domain takes its half.
#[test]
fn a_cap_of_20_gives_20_percent_next_to_a_busy_domain_which_gets_the_rest() {
    let (a, b) = share_of_cpu((256, 256), 20, CAP_WINDOW_MS);
    let total = (CAP_WINDOW_MS * 1_000_000) as f64;
    let (pa, pb) = (100.0 * a as f64 / total, 100.0 * b as f64 / total);
    assert!((pa - 20.0).abs() <= CAP_TOLERANCE_PCT, "capped at 20: got {pa:.2} %");
    assert!((pb - 80.0).abs() <= CAP_TOLERANCE_PCT, "the uncapped domain gets the rest: {pb:.2} %");
    let (a, _) = share_of_cpu((256, 256), 0, CAP_WINDOW_MS);
    let pa = 100.0 * a as f64 / total;
    assert!((pa - 50.0).abs() <= CAP_TOLERANCE_PCT, "uncapped, equal weights: {pa:.2} %");
}

#[derive(Clone, Debug)]
enum EvOp {
    Alloc { by: u16, remote: u16 },
    Bind { by: u16, remote: u16, port: u32 },
    Send { by: u16, port: u32 },
    Close { by: u16, port: u32 },
    Unmask { by: u16, port: u32 },
    Ipi { by: u16, vcpu: u32 },
    Crash { d: u16 },
    BindVirq { by: u16, virq: u32, vcpu: u32 },
    BindVcpu { by: u16, port: u32, vcpu: u32 },
}

fn ev_op() -> impl Strategy<Value = EvOp> {
    let dom = 1u16..4;
    prop_oneof![
        1 => (dom.clone(), 0u16..5).prop_map(|(by, remote)| EvOp::Alloc { by, remote }),
        1 => (dom.clone(), 0u16..5, 0u32..12).prop_map(|(by, remote, port)| EvOp::Bind { by, remote, port }),
        1 => (dom.clone(), 0u32..12).prop_map(|(by, port)| EvOp::Send { by, port }),
        2 => (dom.clone(), 0u32..8).prop_map(|(by, port)| EvOp::Close { by, port }),
        1 => (dom.clone(), 0u32..12).prop_map(|(by, port)| EvOp::Unmask { by, port }),
        1 => (dom.clone(), 0u32..3).prop_map(|(by, vcpu)| EvOp::Ipi { by, vcpu }),
        1 => (2u16..4).prop_map(|d| EvOp::Crash { d }),
        3 => (dom.clone(), 1u32..4, 0u32..2).prop_map(|(by, virq, vcpu)| EvOp::BindVirq { by, virq, vcpu }),
        3 => (dom.clone(), 0u32..4, 0u32..3).prop_map(|(by, port, vcpu)| EvOp::BindVcpu { by, port, vcpu }),
    ]
}

/// Every interdomain channel is connected at both ends, consistently, and
/// each VIRQ binding names exactly the port bound to it (a stale
/// `virq_to_evtchn` entry would refuse every later bind with -EEXIST, or
/// raise the VIRQ on a port reused for something else).
pub(super) fn channels_consistent(w: &World) -> Result<(), alloc::string::String> {
    for d in w.xen.domains.values() {
        for (v, vc) in d.vcpus.iter().enumerate() {
            for (virq, &p) in vc.virq_to_evtchn.iter().enumerate().filter(|(_, p)| **p != 0) {
                let st = d.evtchn.get(p).map(|c| c.state);
                if st != Some(State::Virq(virq as u32)) {
                    return Err(alloc::format!("d{}v{} VIRQ {} names port {} which is {:?}", d.id.0, v, virq, p, st));
                }
            }
        }
        for (p, c) in d.evtchn.in_use() {
            if let State::Virq(virq) = c.state {
                let n = d.vcpus.iter().filter(|vc| vc.virq_to_evtchn.get(virq as usize) == Some(&p)).count();
                if n != 1 {
                    return Err(alloc::format!("d{} port {} bound to VIRQ {} is named by {} vCPUs", d.id.0, p, virq, n));
                }
            }
        }
        for (p, c) in d.evtchn.in_use() {
            if let State::Interdomain { remote, remote_port } = c.state {
                let back = w.xen.domains.get(&remote).and_then(|r| r.evtchn.get(remote_port)).map(|c| c.state);
                if back != Some(State::Interdomain { remote: d.id, remote_port: p }) {
                    return Err(alloc::format!("d{} port {} -> d{}:{} is half-connected ({:?})", d.id.0, p, remote.0, remote_port, back));
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(super::prop_config())]

    #[test]
    fn props_hostile_event_channel_sequences_stay_consistent(ops in proptest::collection::vec(ev_op(), 1..50)) {
        let mut w = World::with_domain(DomId(1), false);
        w.add_domain(DomId(2), false);
        w.add_domain(DomId(3), false);
        for op in &ops {
            // Pending bits of everyone before the op: only the ends a sender
            // is connected to may change.
            let before: Vec<(u16, u32, bool)> = w.xen.domains.values()
                .flat_map(|d| (0..16u32).map(move |p| (d.id.0, p)))
                .map(|(d, p)| (d, p, w.pending(d, p))).collect();
            let alive = |w: &World, d: u16| w.xen.domains.get(&DomId(d)).is_some_and(|x| x.is_running());
            match *op {
                EvOp::Alloc { by, remote } if alive(&w, by) => { w.as_dom(by); w.alloc_unbound(remote); }
                EvOp::Bind { by, remote, port } if alive(&w, by) => { w.as_dom(by); w.bind_interdomain(remote, port); }
                EvOp::Send { by, port } if alive(&w, by) => {
                    w.as_dom(by);
                    let target = w.xen.domains[&DomId(by)].evtchn.get(port).map(|c| c.state);
                    w.port_op(EVTCHNOP_send, port);
                    for (d, p, was) in &before {
                        let now = w.pending(*d, *p);
                        if now != *was {
                            let allowed = match target {
                                Some(State::Interdomain { remote, remote_port }) => remote.0 == *d && remote_port == *p,
                                Some(State::Ipi) => *d == by && *p == port,
                                _ => false,
                            };
                            prop_assert!(allowed, "send on d{}:{} ({:?}) changed d{}:{}", by, port, target, d, p);
                        }
                    }
                }
                EvOp::Close { by, port } if alive(&w, by) => { w.as_dom(by); w.port_op(EVTCHNOP_close, port); }
                EvOp::Unmask { by, port } if alive(&w, by) => { w.as_dom(by); w.port_op(EVTCHNOP_unmask, port); }
                EvOp::BindVirq { by, virq, vcpu } if alive(&w, by) => {
                    w.as_dom(by);
                    let mut a = [0u8; 12];
                    a[0..4].copy_from_slice(&virq.to_le_bytes());
                    a[4..8].copy_from_slice(&vcpu.to_le_bytes());
                    w.evtchn(EVTCHNOP_bind_virq, &a);
                }
                EvOp::BindVcpu { by, port, vcpu } if alive(&w, by) => {
                    w.as_dom(by);
                    let mut a = [0u8; 8];
                    a[0..4].copy_from_slice(&port.to_le_bytes());
                    a[4..8].copy_from_slice(&vcpu.to_le_bytes());
                    w.evtchn(EVTCHNOP_bind_vcpu, &a);
                }
                EvOp::Ipi { by, vcpu } if alive(&w, by) => { w.as_dom(by); w.evtchn(EVTCHNOP_bind_ipi, &[vcpu as u8, 0, 0, 0, 0, 0, 0, 0]); }
                EvOp::Crash { d } if alive(&w, d) => {
                    // Destruction's part for event channels: close them all.
                    w.xen.domain_crash(DomId(d));
                    w.xen.evtchn_reset(DomId(d));
                    for (p, c) in w.xen.domains[&DomId(d)].evtchn.in_use() {
                        prop_assert!(false, "d{} port {} left open: {:?}", d, p, c);
                    }
                }
                _ => {}
            }
            if let Err(e) = channels_consistent(&w) {
                prop_assert!(false, "after {:?}: {}", op, e);
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum VirqOp {
    Bind { virq: u32, vcpu: u32 },
    BindVcpu { port: u32, vcpu: u32 },
    Close { port: u32 },
    Raise { virq: u32, vcpu: u32 },
}

fn virq_op() -> impl Strategy<Value = VirqOp> {
    // Two global VIRQs and a per-vCPU one, over the few ports they get.
    let virq = prop_oneof![Just(VIRQ_CONSOLE), Just(VIRQ_CON_RING), Just(VIRQ_DEBUG)];
    prop_oneof![
        (virq.clone(), 0u32..3).prop_map(|(virq, vcpu)| VirqOp::Bind { virq, vcpu }),
        (1u32..4, 0u32..3).prop_map(|(port, vcpu)| VirqOp::BindVcpu { port, vcpu }),
        (1u32..4).prop_map(|port| VirqOp::Close { port }),
        (virq, 0u32..2).prop_map(|(virq, vcpu)| VirqOp::Raise { virq, vcpu }),
    ]
}

proptest! {
    #![proptest_config(super::prop_config())]

    /// bind_virq / bind_vcpu / close from an unprivileged domain keep every
    /// VIRQ binding pointing at its own port, and a raised VIRQ only ever
    /// marks the port bound to it.
    #[test]
    fn props_virq_bind_vcpu_close_sequences_stay_consistent(ops in proptest::collection::vec(virq_op(), 1..30)) {
        let mut w = World::with_domain(DomId(1), false);
        for op in &ops {
            match *op {
                VirqOp::Bind { virq, vcpu } => {
                    let mut a = [0u8; 12];
                    a[0..4].copy_from_slice(&virq.to_le_bytes());
                    a[4..8].copy_from_slice(&vcpu.to_le_bytes());
                    w.evtchn(EVTCHNOP_bind_virq, &a);
                }
                VirqOp::BindVcpu { port, vcpu } => {
                    let mut a = [0u8; 8];
                    a[0..4].copy_from_slice(&port.to_le_bytes());
                    a[4..8].copy_from_slice(&vcpu.to_le_bytes());
                    w.evtchn(EVTCHNOP_bind_vcpu, &a);
                }
                VirqOp::Close { port } => { w.port_op(EVTCHNOP_close, port); }
                VirqOp::Raise { virq, vcpu } => {
                    let before: Vec<bool> = (0..8).map(|p| w.pending(1, p)).collect();
                    w.xen.send_virq(DomId(1), vcpu as usize, virq);
                    for p in 0..8u32 {
                        if w.pending(1, p) != before[p as usize] {
                            let st = w.xen.domains[&DomId(1)].evtchn.get(p).map(|c| c.state);
                            prop_assert_eq!(st, Some(State::Virq(virq)), "VIRQ {} raised port {}", virq, p);
                        }
                    }
                }
            }
            if let Err(e) = channels_consistent(&w) {
                prop_assert!(false, "after {:?}: {}", op, e);
            }
        }
    }
}
