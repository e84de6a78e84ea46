//! xl commands from the host (`scripts/xl.sh`, see `host_channel`): run
//! one at a time, between the prompt's commands, never inside one (a
//! command typed at the console waits for the host's and the other way
//! round). While a host request runs, what is typed at the console is kept
//! for the prompt and ^C there interrupts it, as for a typed command.

use alloc::string::String;
use heapless::Vec;

use crate::cmdline::MAX_WORDS;
use crate::host_channel;
use crate::xl::Toolstack;

/// How often COM2 is looked at while nothing else wakes Dom0: every 20 ms,
/// and every 100 µs while a frame comes in (QEMU refills the 16-byte FIFO
/// while we sleep).
pub fn poll_ns() -> u64 {
    if host_channel::in_frame() {
        100_000
    } else {
        20_000_000
    }
}

impl Toolstack {
    /// Reads what the host sent (acknowledging requests); an interrupt from
    /// the host stops the command it ran.
    pub(crate) fn host_poll(&mut self) {
        if self.host && host_channel::poll() {
            self.interrupt_command();
        }
    }

    /// Runs the requests that wait, each with its output and status sent back.
    pub(crate) fn serve_host(&mut self) {
        if !self.host {
            return;
        }
        while let Some(req) = host_channel::next() {
            host_channel::begin(req.id);
            let ok = self.run_host(req.args, req.files);
            host_channel::finish(req.id, if ok { 0 } else { 1 });
            if self.powering_off() {
                return;
            }
        }
    }

    fn run_host(&mut self, args: alloc::vec::Vec<String>, files: alloc::vec::Vec<xl_proto::File>) -> bool {
        let kernels = self.kernels_in_use();
        for f in files {
            let name = f.name.clone();
            if self.host_files.put(f.name, f.data, |n| kernels.iter().any(|k| k == n)).is_err() {
                crate::host_channel::as_error(|| {
                    pv_rt::println!("xl: {}: Dom0 keeps at most {} MiB of files from the host", name, crate::host_files::TOTAL_MAX >> 20)
                });
                return false;
            }
        }
        let mut words: Vec<&str, MAX_WORDS> = Vec::new();
        for a in &args {
            if words.push(a.as_str()).is_err() {
                host_channel::as_error(|| pv_rt::println!("xl: more than {} words", MAX_WORDS));
                return false;
            }
        }
        let cmd = words.iter().copied().find(|w| *w != "xl");
        if cmd == Some("console") {
            host_channel::as_error(|| pv_rt::println!("xl: console: attach at Dom0's serial console (scripts/run.sh's terminal)"));
            return false;
        }
        self.begin_command();
        let r = if cmd == Some("repeat") {
            // `repeat` takes the rest of its line as commands of its own.
            let line = args.join(" ");
            self.run(&line)
        } else {
            self.run_words(&words)
        };
        self.end_command();
        r.is_ok()
    }
}
