//! Hypercall ABI fuzzing of xen-core's portable core on the host.
//!
//! A run is a sequence of [`step::Step`]s — one domain's vCPU makes a
//! hypercall, takes a fault, writes its grant table, or time passes —
//! executed on a [`machine::Machine`] (Dom0, two unprivileged domains, two
//! paused canaries over simulated memory) with oracles after every step:
//! no panic, no forbidden mapping among the tables the step wrote, no
//! unprivileged write to a canary, and every `audit_every` steps the full
//! mapping walk, the frame-table audit and the canary checksums.
//!
//! Steps come from bytes through [`gen`], so the same decoder serves the
//! seeded generator ([`run`]) and libFuzzer (`xen-fuzz/libfuzzer`).
//! Findings are recorded as postcard files ([`corpus`]) and shrunk by
//! [`minimize`].
//!
//! [`guest`] drives the in-guest fuzzer (`pv-guest-kernel`'s
//! `workload=fuzz`) under QEMU: as DomUs beside canaries, and as Dom0 on
//! xen-core and Xen 4.17 side by side (the differential mode).

pub mod corpus;
pub mod gen;
pub mod guest;
pub mod machine;
pub mod minimize;
pub mod run;
pub mod step;

pub use machine::{replay, Finding, Machine, Stats};
pub use step::{Act, Step, Val};
