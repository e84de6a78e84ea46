//! libFuzzer target: the input's bytes decode into at most 64 steps, run on
//! a machine restored to its built state, with the incremental oracles
//! after every step and the full audits every 16 steps and after every
//! 32nd input (a full audit costs as much as hundreds of steps; replaying
//! a crash input audits after every step).
//! Any finding panics, which libFuzzer records as a crash input;
//! `xen-fuzz from-bytes` turns that into a minimized corpus record.
#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use xen_fuzz::{gen, Machine};

thread_local! {
    static MACHINE: RefCell<Option<Machine>> = const { RefCell::new(None) };
    static INPUTS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

fuzz_target!(|data: &[u8]| {
    let steps = gen::steps(data, 64);
    MACHINE.with(|c| {
        let mut c = c.borrow_mut();
        let m = c.get_or_insert_with(Machine::new);
        m.reset();
        m.audit_every = 16;
        for s in &steps {
            if let Err(f) = m.step(s) {
                if std::env::var_os("XEN_FUZZ_KNOWN_OPEN").is_some() && m.shared_info_misused() {
                    return;
                }
                panic!("xen-fuzz finding: {f}");
            }
            if m.halted() {
                break;
            }
        }
        let n = INPUTS.with(|i| {
            i.set(i.get() + 1);
            i.get()
        });
        if !n.is_multiple_of(32) {
            return;
        }
        if let Err(f) = m.audit() {
            panic!("xen-fuzz finding: {f}");
        }
    });
});
