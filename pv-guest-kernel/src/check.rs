//! Check lines and the verdict line.

use core::fmt::Display;

use pv_rt::println;

/// Counts failed checks of one workload.
#[derive(Default)]
pub struct Checks {
    failed: u32,
}

impl Checks {
    /// Prints `check <name>: got <got> expected <expected> ok|FAIL`.
    pub fn eq<T: PartialEq + Display>(&mut self, name: &str, got: T, expected: T) -> bool {
        let ok = got == expected;
        println!("check {}: got {} expected {} {}", name, got, expected, if ok { "ok" } else { "FAIL" });
        if !ok {
            self.failed += 1;
        }
        ok
    }

    /// Prints `Test result: SUCCESS` or `Test result: FAILURE`.
    pub fn verdict(&self) {
        println!("Test result: {}", if self.failed == 0 { "SUCCESS" } else { "FAILURE" });
    }
}
