//! Workloads, chosen by `workload=<name>` on the command line. Each gets the
//! whole command line for its own options.

mod balloon;
mod bench;
mod blk;
mod bench_mmu;
mod bench_grant; mod grant; mod grant_accept; mod grant_offer;
mod echo;
mod fuzz;
mod canary;
mod efault;
mod enosys;
mod events;
mod hostile;
mod ioport;
mod mmu;
mod privop;
mod shutdown;
mod xenstore;

pub type Workload = fn(cmdline: &str);

const WORKLOADS: &[(&str, Workload)] = &[
    ("banner", |_| {}),
    ("privop", privop::run),
    ("enosys", enosys::run),
    ("efault", efault::run),
    ("reboot", shutdown::reboot),
    ("crash", shutdown::crash),
    ("mmu", mmu::run),
    ("bench-null", bench::null_hypercall),
    ("bench-mmu", bench_mmu::run),
    ("grant-offer", grant_offer::run), ("grant-accept", grant_accept::run), ("bench-grant", bench_grant::run),
    ("events", events::run), ("timer", events::timer::run), ("bench-events", events::bench::run),
    ("hostile", hostile::run),
    ("vcpu", crate::vcpu::run),
    ("hostile-cpu", crate::vcpu::hostile_cpu::run),
    ("badstack", crate::vcpu::badstack::run),
    ("bench-vcpu", crate::vcpu::bench::run),
    ("xenstore", xenstore::run), ("xenstore-hostile", xenstore::hostile), ("control", xenstore::control),
    ("echo", echo::run),
    ("ioport", ioport::run),
    ("balloon", balloon::run),
    ("fuzz", fuzz::run), ("replay", fuzz::replay), ("canary", canary::run),
    ("blk-write", blk::write), ("blk-read", blk::read), ("blk-hostile", blk::hostile),
    ("blk-bench", blk::bench),
];

pub fn find(name: &str) -> Option<Workload> {
    WORKLOADS.iter().find(|(n, _)| *n == name).map(|(_, w)| *w)
}
