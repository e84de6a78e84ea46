//! `scripts/run.sh` as a user runs it, for the tests: on a pseudo-terminal
//! (util-linux `script`) or with piped input, its output collected as it
//! comes, keys typed one at a time.

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::{ensure_images, repo_root};

/// How long a boot to the prompt may take under TCG on a loaded machine.
pub fn patience() -> Duration {
    let secs = std::env::var("XEN_CORE_TEST_TIMEOUT").ok().and_then(|s| s.parse().ok()).unwrap_or(120);
    Duration::from_secs(secs)
}

/// A running `scripts/run.sh`: its stdin to type into, everything it
/// printed so far.
pub struct Run {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    out: Arc<Mutex<Vec<u8>>>,
}

impl Run {
    /// `scripts/run.sh --no-build ARGS`, on a pseudo-terminal when `tty`.
    pub fn start(args: &[&str], tty: bool) -> Run {
        ensure_images();
        let root = repo_root();
        let mut cmd = if tty {
            let line = std::iter::once("scripts/run.sh --no-build".to_string())
                .chain(args.iter().map(|a| format!("'{a}'")))
                .collect::<Vec<_>>()
                .join(" ");
            let mut c = Command::new("script");
            // -e: script's status is run.sh's; -f: flush at once.
            c.args(["-qefc", &line, "/dev/null"]);
            c
        } else {
            let mut c = Command::new("bash");
            c.arg("scripts/run.sh").arg("--no-build").args(args);
            c
        };
        let mut child = cmd
            .current_dir(&root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start scripts/run.sh");
        let out = Arc::new(Mutex::new(Vec::new()));
        for mut pipe in [Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>, Box::new(child.stderr.take().unwrap())] {
            let out = out.clone();
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    out.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
        }
        let stdin = child.stdin.take();
        Run { child, stdin, out }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }

    /// Waits until the output holds `n` copies of `what`.
    pub fn wait_for_n(&self, what: &str, n: usize) {
        let deadline = Instant::now() + patience();
        while self.text().matches(what).count() < n {
            assert!(Instant::now() < deadline, "no {n}x {what:?} in time; output:\n{}", self.text());
            thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn wait_for(&self, what: &str) {
        self.wait_for_n(what, 1);
    }

    pub fn type_keys(&mut self, keys: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        // One key at a time, as typed: the UART takes 16 bytes at once.
        for k in keys {
            stdin.write_all(&[*k]).unwrap();
            stdin.flush().unwrap();
            thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn finish(mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + patience();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                thread::sleep(Duration::from_millis(200));
                return (st, self.text());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("run.sh did not end; output:\n{}", self.text());
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill").args([sig, &pid.to_string()]).status().unwrap().success();
    assert!(ok, "kill {sig} {pid}");
}

