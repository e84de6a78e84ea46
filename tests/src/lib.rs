//! QEMU harness for the integration tests.
//!
//! A test describes one boot: which hypervisor (xen-core, or real Xen 4.17 as the
//! differential oracle), which Dom0 kernel with which command line, further
//! modules, hypervisor options. [`Boot::run`] builds the images once per test
//! process (if missing or older than their sources), boots QEMU with the serial
//! console on a pipe, and returns an [`Outcome`]: how the machine ended
//! ([`Status`]) and the whole serial log.
//!
//! ```no_run
//! use tests::{Boot, Status};
//! let out = Boot::xen_core()
//!     .dom0_image("pv-guest-kernel")
//!     .dom0_cmdline("workload=enosys")
//!     .run();
//! out.assert_status(Status::PoweredOff);
//! out.assert_guest_line("Test result: SUCCESS");
//! ```
//!
//! How a run ends (the exit-status contract):
//! - xen-core ends QEMU itself: ACPI S5 (Dom0 powered off) makes QEMU exit 0,
//!   `isa-debug-exit` value 1/2/3 makes it exit 3 (Dom0 reboot), 5 (Dom0 crashed),
//!   7 (hypervisor panic). A triple fault also makes QEMU exit 0 under
//!   `-no-reboot`; QEMU's `-d cpu_reset` log tells it apart ([`Status::TripleFault`]).
//! - Real Xen never ends QEMU on halt or crash (`noreboot`): the harness watches
//!   the serial log for Xen's own lines (see [`Status::from_xen_line`]) and ends
//!   QEMU itself.
//!
//! Every run has a timeout (default 60 s, `XEN_CORE_TEST_TIMEOUT=<secs>` changes
//! the default and scales a test's own longer timeout alike) and QEMU is killed when the run ends, also when a test panics.
//! `run` prints the command and the serial log on the test's stdout, which
//! `cargo test` shows for every failing test.

use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

pub mod run_sh;

/// The images that `scripts/build.sh` puts into `target/images/`.
pub const IMAGES: [&str; 3] = ["xen-core", "dom0", "pv-guest-kernel"];

/// Hypervisor options every xen-core boot gets (before [`Boot::append`]).
pub const XEN_CORE_BASE_OPTS: &str = "console=com1 loglvl=all guest_loglvl=all";
/// Options every Xen 4.17 boot gets (before [`Boot::append`]): `noreboot` keeps
/// the crash report on screen instead of resetting the machine.
pub const XEN_BASE_OPTS: &str = "console=com1 dom0=pv loglvl=all guest_loglvl=all noreboot";

/// How long the harness keeps reading after Xen's final line before it ends QEMU,
/// so that the rest of a crash or panic report is in the log.
const XEN_GRACE: Duration = Duration::from_millis(300);

/// The workspace root (the parent of this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Path of a bare-metal image in `target/images/`, built first if needed.
pub fn image(name: &str) -> PathBuf {
    ensure_images();
    repo_root().join("target/images").join(name)
}

/// Build the images once per process when any is missing or older than the
/// sources that go into it. Panics (failing the test) when the build fails.
pub fn ensure_images() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let result = BUILT.get_or_init(|| {
        let root = repo_root();
        if std::env::var_os("XEN_CORE_SKIP_BUILD").is_some() || !images_stale(&root) {
            return Ok(());
        }
        eprintln!("harness: images missing or stale: running scripts/build.sh");
        let status = Command::new("bash")
            .arg(root.join("scripts/build.sh"))
            .current_dir(&root)
            .stdin(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run scripts/build.sh: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("scripts/build.sh failed: {status}"))
        }
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Whether some image is missing or older than a source file of the image crates.
fn images_stale(root: &Path) -> bool {
    let mut oldest_image = None::<SystemTime>;
    for name in IMAGES {
        match mtime(&root.join("target/images").join(name)) {
            Some(t) => oldest_image = Some(oldest_image.map_or(t, |o| o.min(t))),
            None => return true,
        }
    }
    let oldest_image = oldest_image.expect("IMAGES is not empty");
    let mut newest_source = SystemTime::UNIX_EPOCH;
    for dir in ["xen-core", "bare-rt", "hypercall-abi", "pv-rt", "dom0", "pv-guest-kernel"] {
        newest_in(&root.join(dir), &mut newest_source);
    }
    for file in ["Cargo.toml", "Cargo.lock", "scripts/build.sh"] {
        if let Some(t) = mtime(&root.join(file)) {
            newest_source = newest_source.max(t);
        }
    }
    newest_source > oldest_image
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn newest_in(dir: &Path, newest: &mut SystemTime) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            if entry.file_name() != "target" {
                newest_in(&path, newest);
            }
        } else if let Ok(t) = meta.modified() {
            *newest = (*newest).max(t);
        }
    }
}

/// Path of real Xen 4.17 (`.cache/xen/xen.bin`), fetched once per process by
/// `scripts/fetch-xen.sh` if it is not there yet.
pub fn xen_binary() -> PathBuf {
    static FETCHED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let result = FETCHED.get_or_init(|| {
        let root = repo_root();
        let bin = root.join(".cache/xen/xen.bin");
        if bin.is_file() {
            return Ok(bin);
        }
        eprintln!("harness: .cache/xen/xen.bin missing: running scripts/fetch-xen.sh");
        let status = Command::new("bash")
            .arg(root.join("scripts/fetch-xen.sh"))
            .current_dir(&root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run scripts/fetch-xen.sh: {e}"))?;
        if status.success() && bin.is_file() {
            Ok(bin)
        } else {
            Err(format!("scripts/fetch-xen.sh failed ({status}): no {}", bin.display()))
        }
    });
    match result {
        Ok(p) => p.clone(),
        Err(e) => panic!("{e}"),
    }
}

/// Debian's Linux 6.1 bzImage and the busybox initramfs, as
/// `scripts/fetch-linux.sh` leaves them in `.cache/linux/` (run here if
/// missing, as `xen_binary` runs fetch-xen.sh).
pub fn linux_images() -> (PathBuf, PathBuf) {
    let root = repo_root();
    let (k, rd) = (root.join(".cache/linux/vmlinuz"), root.join(".cache/linux/initrd.cpio"));
    fetch_linux(&[&k, &rd]);
    (k, rd)
}

/// busybox and the modules a Linux initramfs needs for a disk
/// (xen-blkfront, ext4 and their dependencies), as fetch-linux.sh leaves
/// them in `.cache/linux/`: (busybox, [(module file name, contents)] in
/// load order).
pub fn linux_disk_modules() -> (Vec<u8>, Vec<(String, Vec<u8>)>) {
    let c = repo_root().join(".cache/linux");
    let (busybox, order) = (c.join("busybox"), c.join("modules/load-order"));
    fetch_linux(&[&busybox, &order]);
    let order = std::fs::read_to_string(&order).expect("modules/load-order");
    let modules = order
        .split_whitespace()
        .map(|m| (m.to_string(), std::fs::read(c.join("modules").join(m)).unwrap_or_else(|e| panic!("modules/{m}: {e}"))))
        .collect();
    (std::fs::read(busybox).expect("busybox"), modules)
}

/// Runs scripts/fetch-linux.sh (once per test binary) if one of `needed`
/// is missing; panics if they are still missing.
fn fetch_linux(needed: &[&Path]) {
    static FETCHED: OnceLock<Result<(), String>> = OnceLock::new();
    if needed.iter().all(|p| p.is_file()) {
        return;
    }
    let result = FETCHED.get_or_init(|| {
        let root = repo_root();
        eprintln!("harness: .cache/linux missing or incomplete: running scripts/fetch-linux.sh");
        let status = Command::new("bash")
            .arg(root.join("scripts/fetch-linux.sh"))
            .current_dir(&root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run scripts/fetch-linux.sh: {e}"))?;
        if status.success() { Ok(()) } else { Err(format!("scripts/fetch-linux.sh failed ({status})")) }
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    for p in needed {
        assert!(p.is_file(), "scripts/fetch-linux.sh left no {}", p.display());
    }
}

/// Which hypervisor a boot runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hypervisor {
    /// Ours: `target/images/xen-core`.
    XenCore,
    /// The oracle: Debian's Xen 4.17 (`.cache/xen/xen.bin`).
    Xen,
}

impl Hypervisor {
    pub fn name(self) -> &'static str {
        match self {
            Hypervisor::XenCore => "xen-core",
            Hypervisor::Xen => "Xen 4.17",
        }
    }
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Dom0 powered off (QEMU exit 0; Xen: "Hardware Dom0 halted").
    PoweredOff,
    /// Dom0 asked for a reboot (exit 3; Xen: "Hardware Dom0 shutdown: rebooting").
    Reboot,
    /// Dom0 crashed: `shutdown(crash)` or killed for an unhandled fault (exit 5;
    /// Xen: "Hardware Dom0 crashed").
    Crashed,
    /// The hypervisor stopped on a fatal error (exit 7; Xen: "Panic on CPU").
    HypervisorPanic,
    /// The CPU triple-faulted (QEMU exit 0 with "Triple fault" from `-d cpu_reset`).
    TripleFault,
    /// Nothing ended the run in time; the harness killed QEMU.
    Timeout,
    /// Any other QEMU exit status (-1: killed by a signal; -9: killed with
    /// SIGKILL by the harness, see [`Boot::kill_after`]).
    Other(i32),
}

impl Status {
    /// The status of a xen-core run from QEMU's exit code.
    pub fn from_qemu_exit(code: i32) -> Status {
        match code {
            0 => Status::PoweredOff,
            3 => Status::Reboot,
            5 => Status::Crashed,
            7 => Status::HypervisorPanic,
            c => Status::Other(c),
        }
    }

    /// The exit status `scripts/run.sh` returns for this status (the QEMU exit
    /// code under xen-core; 124 for a timeout, like timeout(1)).
    pub fn exit_code(self) -> i32 {
        match self {
            Status::PoweredOff => 0,
            Status::Reboot => 3,
            Status::Crashed => 5,
            Status::HypervisorPanic => 7,
            Status::TripleFault => 9,
            Status::Timeout => 124,
            Status::Other(c) => c,
        }
    }

    /// Recognise the line with which real Xen 4.17 ends a run (`noreboot` set).
    /// Seen on Debian's 4.17.7 (`xen/common/shutdown.c`, `drivers/char/console.c`):
    /// ```text
    /// (XEN) Hardware Dom0 halted: halting machine
    /// (XEN) Hardware Dom0 shutdown: rebooting machine
    /// (XEN) Hardware Dom0 crashed: 'noreboot' set - not rebooting.
    /// (XEN) Panic on CPU 0:
    /// ```
    /// (After the reboot line Xen resets the machine and QEMU exits 0 by itself
    /// under `-no-reboot`; the others leave the machine halted.)
    pub fn from_xen_line(line: &str) -> Option<Status> {
        let line = line.strip_prefix("(XEN)").unwrap_or(line).trim_start();
        if line.starts_with("Hardware Dom0 halted") {
            Some(Status::PoweredOff)
        } else if line.starts_with("Hardware Dom0 shutdown: ") {
            Some(Status::Reboot) // also "watchdog rebooting machine"
        } else if line.starts_with("Hardware Dom0 shutdown (unknown reason") {
            Some(Status::Other(1))
        } else if line.starts_with("Hardware Dom0 crashed") {
            Some(Status::Crashed)
        } else if line.starts_with("Panic on CPU") {
            Some(Status::HypervisorPanic)
        } else {
            None
        }
    }
}

/// One boot to run: a builder.
#[derive(Clone, Debug)]
pub struct Boot {
    hypervisor: Hypervisor,
    dom0: Option<PathBuf>,
    dom0_cmdline: String,
    modules: Vec<(PathBuf, String)>,
    append: Vec<String>,
    mem_mib: u32,
    dom0_mem: String,
    icount: bool,
    timeout: Option<Duration>,
    qemu_extra: Vec<String>,
    /// Bytes typed on the serial console once a line containing the text
    /// has been seen, in order.
    inputs: Vec<(String, Vec<u8>)>,
    kill_after: Option<String>,
}

impl Boot {
    /// Boot xen-core (`target/images/xen-core`) with `target/images/dom0` as Dom0.
    pub fn xen_core() -> Boot {
        Boot::new(Hypervisor::XenCore)
    }

    /// Boot real Xen 4.17 with `target/images/dom0` as Dom0.
    pub fn xen() -> Boot {
        Boot::new(Hypervisor::Xen)
    }

    /// Boot the given hypervisor (for tests that run on both).
    pub fn new(hypervisor: Hypervisor) -> Boot {
        Boot {
            hypervisor,
            dom0: None,
            dom0_cmdline: String::new(),
            modules: Vec::new(),
            append: Vec::new(),
            mem_mib: 512,
            dom0_mem: "64M".into(),
            icount: false,
            timeout: None,
            qemu_extra: Vec::new(),
            inputs: Vec::new(),
            kill_after: None,
        }
    }

    /// Types `bytes` on the serial console (QEMU's stdin) as soon as a
    /// serial line containing `trigger` appears (after the previous input's
    /// trigger, if any).
    pub fn input_after(mut self, trigger: &str, bytes: &[u8]) -> Boot {
        self.inputs.push((trigger.into(), bytes.to_vec()));
        self
    }

    /// The Dom0 kernel (a path; relative paths are taken from the repository root).
    pub fn dom0(mut self, path: impl AsRef<Path>) -> Boot {
        self.dom0 = Some(repo_root().join(path));
        self
    }

    /// The Dom0 kernel by image name (`"dom0"`, `"pv-guest-kernel"`).
    pub fn dom0_image(self, name: &str) -> Boot {
        let path = image(name);
        self.dom0(path)
    }

    /// Dom0's kernel command line.
    pub fn dom0_cmdline(mut self, cmdline: &str) -> Boot {
        self.dom0_cmdline = cmdline.into();
        self
    }

    /// A further module after Dom0 (handed on to Dom0), with its command line.
    pub fn module(mut self, path: impl AsRef<Path>, cmdline: &str) -> Boot {
        self.modules.push((repo_root().join(path), cmdline.into()));
        self
    }

    /// Extra hypervisor options, after the defaults.
    pub fn append(mut self, opts: &str) -> Boot {
        self.append.push(opts.into());
        self
    }

    /// Machine memory in MiB (QEMU `-m`, default 512).
    pub fn mem(mut self, mib: u32) -> Boot {
        self.mem_mib = mib;
        self
    }

    /// Dom0's memory (`dom0_mem=`, default `64M`).
    pub fn dom0_mem(mut self, size: &str) -> Boot {
        self.dom0_mem = size.into();
        self
    }

    /// Run with `-icount shift=0`: guest `rdtsc` counts instructions.
    pub fn icount(mut self) -> Boot {
        self.icount = true;
        self
    }

    /// How long the run may take (default 60 s, or `XEN_CORE_TEST_TIMEOUT`).
    pub fn timeout(mut self, timeout: Duration) -> Boot {
        self.timeout = Some(timeout);
        self
    }

    /// `kill -9` QEMU as soon as a console line contains `trigger` (a
    /// machine losing power): the run ends with `Status::Other(-9)`.
    pub fn kill_after(mut self, trigger: &str) -> Boot {
        self.kill_after = Some(trigger.into());
        self
    }

    /// Dom0's disk: a virtio-blk device backed by the host file `path`
    /// (made by `scripts/make-disk.sh` if missing), as `run.sh --disk`.
    pub fn disk(self, path: &Path) -> Boot {
        if !path.exists() {
            let script = repo_root().join("scripts/make-disk.sh");
            let st = Command::new("bash").arg(script).arg(path).status().expect("make-disk.sh runs");
            assert!(st.success(), "make-disk.sh {} failed", path.display());
        }
        self.qemu_arg("-drive")
            .qemu_arg(&format!("file={},if=none,id=disk0,format=raw,cache=writeback", path.display()))
            .qemu_arg("-device")
            .qemu_arg("virtio-blk-pci,drive=disk0,disable-modern=on")
    }

    /// Extra raw QEMU arguments.
    pub fn qemu_arg(mut self, arg: &str) -> Boot {
        self.qemu_extra.push(arg.into());
        self
    }

    /// The hypervisor command line this boot passes with `-append`.
    pub fn hypervisor_cmdline(&self) -> String {
        let base = match self.hypervisor {
            Hypervisor::XenCore => XEN_CORE_BASE_OPTS,
            Hypervisor::Xen => XEN_BASE_OPTS,
        };
        let mut opts = format!("{base} dom0_mem={}", self.dom0_mem);
        for extra in &self.append {
            opts.push(' ');
            opts.push_str(extra);
        }
        opts
    }

    /// The full QEMU argument list (without the program name). Builds the images
    /// (or fetches Xen) if needed.
    pub fn qemu_args(&self) -> Vec<String> {
        let kernel = match self.hypervisor {
            Hypervisor::XenCore => image("xen-core"),
            Hypervisor::Xen => xen_binary(),
        };
        let dom0 = match &self.dom0 {
            Some(p) => p.clone(),
            None => image("dom0"),
        };
        let mut modules = vec![(dom0, self.dom0_cmdline.clone())];
        modules.extend(self.modules.iter().cloned());

        let mut args: Vec<String> = [
            "-accel", "tcg", "-cpu", "max", "-display", "none", "-serial", "stdio",
            "-no-reboot", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
            // Logs "Triple fault" on stderr, which tells it apart from a poweroff.
            "-d", "cpu_reset",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push("-m".into());
        args.push(self.mem_mib.to_string());
        if self.icount {
            args.push("-icount".into());
            args.push("shift=0".into());
        }
        args.push("-kernel".into());
        args.push(kernel.display().to_string());
        args.push("-append".into());
        args.push(self.hypervisor_cmdline());
        args.push("-initrd".into());
        args.push(initrd_arg(&modules));
        args.extend(self.qemu_extra.iter().cloned());
        args
    }

    /// Boot and wait until the machine ends or the timeout passes.
    pub fn run(self) -> Outcome {
        let args = self.qemu_args();
        let qemu = std::env::var("QEMU").unwrap_or_else(|_| "qemu-system-x86_64".into());
        let timeout = self.timeout.map_or_else(default_timeout, scaled_timeout);
        let command = format!("{qemu} {}", shell_words(&args));
        let start = Instant::now();
        let child = Command::new(&qemu)
            .args(&args)
            .current_dir(repo_root())
            .stdin(if self.inputs.is_empty() { Stdio::null() } else { Stdio::piped() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {qemu} (scripts/ensure-qemu.sh installs it): {e}"));
        let mut qemu_proc = KillOnDrop(child);
        let (serial, status, stderr) = watch(&mut qemu_proc, self.hypervisor, start + timeout, self.inputs, self.kill_after);
        let outcome = Outcome {
            hypervisor: self.hypervisor,
            status,
            serial,
            qemu_stderr: stderr,
            command,
            elapsed: start.elapsed(),
        };
        // Captured by the test runner and shown when the test fails.
        println!("{outcome}");
        outcome
    }
}

/// A test's own long timeout (a minute or more) grows with
/// `XEN_CORE_TEST_TIMEOUT` as the default does (e.g. 240 gives four times
/// as long): on a loaded machine a long `-icount` run needs more wall time
/// too. Short ones (a test of the timeout itself) stay as they are.
fn scaled_timeout(t: Duration) -> Duration {
    let default = default_timeout();
    if t >= Duration::from_secs(60) && default > Duration::from_secs(60) {
        t.mul_f64(default.as_secs_f64() / 60.0)
    } else {
        t
    }
}

fn default_timeout() -> Duration {
    let secs = std::env::var("XEN_CORE_TEST_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    Duration::from_secs(secs)
}

/// QEMU's `-initrd` value for modules `(path, cmdline)`: commas separate modules,
/// a space after the path starts its command line, a comma inside a command line
/// is doubled.
pub fn initrd_arg(modules: &[(PathBuf, String)]) -> String {
    modules
        .iter()
        .map(|(path, cmdline)| {
            let path = path.display().to_string();
            assert!(
                !path.contains(' ') && !path.contains(','),
                "QEMU cannot pass a module path with a space or comma: {path}"
            );
            if cmdline.is_empty() {
                path
            } else {
                format!("{path} {}", cmdline.replace(',', ",,"))
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty() && a.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_=./,:".contains(&b)) {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The QEMU process, killed when the run is over or the test unwinds.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

enum Event {
    Line(String),
    Eof,
}

/// Read the serial log until QEMU ends (xen-core), Xen prints its final line, or
/// the deadline passes. Returns the log, the status, and QEMU's stderr.
fn watch(
    qemu: &mut KillOnDrop,
    hypervisor: Hypervisor,
    deadline: Instant,
    inputs: Vec<(String, Vec<u8>)>,
    kill_after: Option<String>,
) -> (String, Status, String) {
    let mut stdin = qemu.0.stdin.take();
    let mut inputs = inputs.into_iter().peekable();
    let stdout = qemu.0.stdout.take().expect("stdout is piped");
    let mut stderr = qemu.0.stderr.take().expect("stderr is piped");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf);
                    let line = line.trim_end_matches(['\n', '\r']).replace('\r', "");
                    if tx.send(Event::Line(line)).is_err() {
                        return;
                    }
                }
            }
        }
        let _ = tx.send(Event::Eof);
    });
    let stderr_reader = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });

    let mut serial = String::new();
    let mut xen_status = None;
    let mut end_by = deadline;
    let mut eof = false;
    let mut killed = false;
    loop {
        let now = Instant::now();
        if now >= end_by {
            break;
        }
        match rx.recv_timeout(end_by - now) {
            Ok(Event::Line(line)) => {
                if hypervisor == Hypervisor::Xen && xen_status.is_none() {
                    if let Some(s) = Status::from_xen_line(&line) {
                        xen_status = Some(s);
                        end_by = end_by.min(Instant::now() + XEN_GRACE);
                    }
                }
                if inputs.peek().is_some_and(|(t, _)| line.contains(t.as_str())) {
                    if let (Some((_, bytes)), Some(w)) = (inputs.next(), stdin.as_mut()) {
                        use std::io::Write as _;
                        let _ = w.write_all(&bytes).and_then(|_| w.flush());
                    }
                }
                serial.push_str(&line);
                serial.push('\n');
                if kill_after.as_deref().is_some_and(|t| line.contains(t)) {
                    // Child::kill is SIGKILL: QEMU gets no chance to flush.
                    let _ = qemu.0.kill();
                    killed = true;
                    break;
                }
            }
            Ok(Event::Eof) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                eof = true;
                break;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => break,
        }
    }

    // QEMU closed its stdout: it is exiting; give it until the deadline.
    let mut exit_code = None;
    if eof {
        loop {
            match qemu.0.try_wait() {
                Ok(Some(st)) => {
                    exit_code = Some(st.code().unwrap_or(-1));
                    break;
                }
                Ok(None) if Instant::now() < end_by => thread::sleep(Duration::from_millis(5)),
                _ => break,
            }
        }
    }
    let _ = qemu.0.kill();
    let _ = qemu.0.wait();
    let stderr = stderr_reader.join().unwrap_or_default();
    let triple_fault = stderr.contains("Triple fault");

    let status = match (hypervisor, xen_status, exit_code) {
        _ if killed => Status::Other(-9),
        (Hypervisor::Xen, Some(s), _) => s,
        (_, _, Some(0)) if triple_fault => Status::TripleFault,
        (Hypervisor::XenCore, _, Some(code)) => Status::from_qemu_exit(code),
        (Hypervisor::Xen, None, Some(code)) => Status::Other(code),
        (_, _, None) => Status::Timeout,
    };
    (serial, status, stderr)
}

/// Define each scenario once and run it on both hypervisors: for every
/// `fn name(hv) { .. }` this makes the tests `xen_core::name` and `xen::name`
/// (the second runs the same scenario on real Xen 4.17, which shows that the
/// expectation itself is right).
///
/// ```ignore
/// tests::on_both_hypervisors! {
///     fn enosys_returns_minus_enosys(hv) {
///         Boot::new(hv).dom0_image("pv-guest-kernel").run().assert_status(Status::PoweredOff);
///     }
/// }
/// ```
#[macro_export]
macro_rules! on_both_hypervisors {
    ($( $(#[$meta:meta])* fn $name:ident($hv:ident) $body:block )*) => {
        $( $(#[$meta])* fn $name($hv: $crate::Hypervisor) $body )*

        mod xen_core {
            $( #[test] fn $name() { super::$name($crate::Hypervisor::XenCore) } )*
        }

        mod xen {
            $( #[test] fn $name() { super::$name($crate::Hypervisor::Xen) } )*
        }
    };
}

/// What a run produced.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub hypervisor: Hypervisor,
    pub status: Status,
    /// The serial console, `\r` removed, one `\n` after each line.
    pub serial: String,
    /// QEMU's stderr (includes `-d cpu_reset` register dumps).
    pub qemu_stderr: String,
    /// The QEMU command line, for reproducing the run by hand.
    pub command: String,
    pub elapsed: Duration,
}

impl Outcome {
    /// All serial lines.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.serial.lines()
    }

    /// The hypervisor's log: lines prefixed `(XEN)`, prefix and one space removed.
    pub fn hypervisor_lines(&self) -> Vec<&str> {
        self.lines()
            .filter_map(|l| l.strip_prefix("(XEN)"))
            .map(|l| l.strip_prefix(' ').unwrap_or(l))
            .collect()
    }

    /// Dom0's console output: the lines not prefixed `(XEN)`, with a `(d0) `
    /// prefix removed.
    pub fn guest_lines(&self) -> Vec<&str> {
        self.lines()
            .filter(|l| !l.starts_with("(XEN)"))
            .map(|l| l.strip_prefix("(d0) ").unwrap_or(l))
            .collect()
    }

    /// The guest kernel's banner: `<name>: Xen PV kernel <version>`, `hypervisor:`
    /// and `start_info:` lines.
    pub fn banner_lines(&self) -> Vec<&str> {
        self.guest_lines()
            .into_iter()
            .filter(|l| {
                l.contains(": Xen PV kernel ") || l.starts_with("hypervisor:") || l.starts_with("start_info:")
            })
            .collect()
    }

    /// `check <name>: got <v> expected <v> ok|FAIL` lines.
    pub fn check_lines(&self) -> Vec<&str> {
        self.guest_lines().into_iter().filter(|l| l.starts_with("check ")).collect()
    }

    /// The verdict line's word: `Some("SUCCESS")`, `Some("FAILURE")`, or `None`.
    pub fn verdict(&self) -> Option<&str> {
        self.guest_lines()
            .into_iter()
            .rev()
            .find_map(|l| l.strip_prefix("Test result: "))
            .map(str::trim)
    }

    /// `bench <name> ... per_call_tsc=<P>` lines as `(name, per_call_tsc)`.
    pub fn bench_results(&self) -> Vec<(String, u64)> {
        self.guest_lines().into_iter().filter_map(parse_bench_line).collect()
    }

    /// Panic with the log unless the run ended with `status`.
    #[track_caller]
    pub fn assert_status(&self, status: Status) {
        if self.status != status {
            panic!(
                "{}: expected status {status:?}, got {:?} (serial log above)\n{}",
                self.hypervisor.name(),
                self.status,
                self.tail(40)
            );
        }
    }

    /// Panic with the log unless Dom0 printed exactly this line.
    #[track_caller]
    pub fn assert_guest_line(&self, line: &str) {
        if !self.guest_lines().contains(&line) {
            panic!(
                "{}: Dom0 did not print the line {line:?} (serial log above)\n{}",
                self.hypervisor.name(),
                self.tail(40)
            );
        }
    }

    /// Panic with the log unless some hypervisor line satisfies `pred`.
    #[track_caller]
    pub fn assert_hypervisor_line(&self, what: &str, pred: impl Fn(&str) -> bool) {
        if !self.hypervisor_lines().into_iter().any(pred) {
            panic!(
                "{}: no hypervisor line {what} (serial log above)\n{}",
                self.hypervisor.name(),
                self.tail(40)
            );
        }
    }

    /// The last `n` serial lines, for failure messages.
    pub fn tail(&self, n: usize) -> String {
        let lines: Vec<&str> = self.lines().collect();
        let from = lines.len().saturating_sub(n);
        let mut s = format!("--- last {} serial lines ---\n", lines.len() - from);
        for l in &lines[from..] {
            s.push_str(l);
            s.push('\n');
        }
        s
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "=== {} run: {}", self.hypervisor.name(), self.command)?;
        writeln!(f, "=== status {:?} after {:.2?}; serial log:", self.status, self.elapsed)?;
        f.write_str(&self.serial)?;
        // The register dumps of `-d cpu_reset` are noise; QEMU's own messages are not.
        let notes: Vec<&str> = self
            .qemu_stderr
            .lines()
            .filter(|l| l.contains("Triple fault") || l.starts_with("qemu"))
            .collect();
        if !notes.is_empty() {
            writeln!(f, "=== qemu stderr:")?;
            for l in notes {
                writeln!(f, "{l}")?;
            }
        }
        writeln!(f, "=== end of {} run ({:?})", self.hypervisor.name(), self.status)
    }
}

/// Parse `bench <name> ... per_call_tsc=<P>` into `(name, P)`.
pub fn parse_bench_line(line: &str) -> Option<(String, u64)> {
    let mut words = line.strip_prefix("bench ")?.split_whitespace();
    let name = words.next()?.to_string();
    let per_call = words.find_map(|w| w.strip_prefix("per_call_tsc="))?.parse().ok()?;
    Some((name, per_call))
}

/// Replace each `0x` hex number of 5 or more digits with `0x…`, so that logs
/// of runs with different memory layouts compare equal.
pub fn mask_addresses(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let mut copied = 0;
    while i + 1 < bytes.len() {
        if bytes[i] == b'0' && (bytes[i + 1] == b'x' || bytes[i + 1] == b'X') {
            let digits = bytes[i + 2..].iter().take_while(|b| b.is_ascii_hexdigit()).count();
            if digits >= 5 {
                out.push_str(&s[copied..i]);
                out.push_str("0x…");
                i += 2 + digits;
                copied = i;
                continue;
            }
            i += 2 + digits;
            continue;
        }
        i += 1;
    }
    out.push_str(&s[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_addresses_masks_long_hex_only() {
        assert_eq!(
            mask_addresses("pt_base=0xffff800000001000 nr=0x1234 flags=0x3 mfn=0x12345"),
            "pt_base=0x… nr=0x1234 flags=0x3 mfn=0x…"
        );
        assert_eq!(mask_addresses("0x"), "0x");
        assert_eq!(mask_addresses("x0xABCDEF,"), "x0x…,");
        assert_eq!(mask_addresses("no numbers — ünïcode"), "no numbers — ünïcode");
    }

    #[test]
    fn xen_lines_map_to_statuses() {
        let s = |l| Status::from_xen_line(l);
        assert_eq!(s("(XEN) Hardware Dom0 halted: halting machine"), Some(Status::PoweredOff));
        assert_eq!(s("(XEN) Hardware Dom0 shutdown: rebooting machine"), Some(Status::Reboot));
        assert_eq!(
            s("(XEN) Hardware Dom0 crashed: 'noreboot' set - not rebooting."),
            Some(Status::Crashed)
        );
        assert_eq!(s("(XEN) Panic on CPU 0:"), Some(Status::HypervisorPanic));
        assert_eq!(s("(XEN) Domain 0 (vcpu#0) crashed on cpu#0:"), None);
        assert_eq!(s("guest says Hardware Dom0 halted"), None);
    }

    #[test]
    fn qemu_exit_codes_follow_isa_debug_exit() {
        for st in [Status::PoweredOff, Status::Reboot, Status::Crashed, Status::HypervisorPanic] {
            assert_eq!(Status::from_qemu_exit(st.exit_code()), st);
        }
        assert_eq!(Status::from_qemu_exit(1), Status::Other(1));
    }

    #[test]
    fn initrd_arg_separates_modules_and_doubles_commas() {
        let m = vec![
            (PathBuf::from("/a/dom0"), "workload=x iters=3".to_string()),
            (PathBuf::from("/a/guest"), "list=1,2".to_string()),
            (PathBuf::from("/a/blob"), String::new()),
        ];
        assert_eq!(initrd_arg(&m), "/a/dom0 workload=x iters=3,/a/guest list=1,,2,/a/blob");
    }

    fn outcome(serial: &str) -> Outcome {
        Outcome {
            hypervisor: Hypervisor::Xen,
            status: Status::PoweredOff,
            serial: serial.into(),
            qemu_stderr: String::new(),
            command: String::new(),
            elapsed: Duration::ZERO,
        }
    }

    #[test]
    fn outcome_splits_hypervisor_and_guest_lines() {
        let o = outcome(
            "(XEN) Xen version 4.17\n(XEN) \npv-guest-kernel: Xen PV kernel 0.1.0\n(d0) hypervisor: Xen 4.17\n\
             check enosys: got -38 expected -38 ok\nTest result: SUCCESS\n\
             bench null_hypercall iterations=10 total_tsc=1000 per_call_tsc=100\n",
        );
        assert_eq!(o.hypervisor_lines(), vec!["Xen version 4.17", ""]);
        assert_eq!(o.guest_lines()[1], "hypervisor: Xen 4.17");
        assert_eq!(o.banner_lines().len(), 2);
        assert_eq!(o.check_lines(), vec!["check enosys: got -38 expected -38 ok"]);
        assert_eq!(o.verdict(), Some("SUCCESS"));
        assert_eq!(o.bench_results(), vec![("null_hypercall".to_string(), 100)]);
    }

    #[test]
    fn shell_words_quotes_what_needs_it() {
        let a = vec!["-append".to_string(), "a b".to_string(), "it's".to_string()];
        assert_eq!(shell_words(&a), r"-append 'a b' 'it'\''s'");
    }
}

/// A `cpio` "newc" archive (what Dom0 reads its guest kernels and configs
/// from) written to a fresh file under `target/test-archives/`; `files` are
/// (name in the archive, contents).
pub fn guest_archive(tag: &str, files: &[(&str, Vec<u8>)]) -> PathBuf {
    let entries: Vec<(&str, u32, &[u8])> = files.iter().map(|(n, d)| (*n, 0o100644, d.as_slice())).collect();
    let dir = repo_root().join("target/test-archives");
    std::fs::create_dir_all(&dir).expect("create target/test-archives");
    let path = dir.join(format!("{tag}-{}.cpio", std::process::id()));
    std::fs::write(&path, newc_archive(&entries)).expect("write the guest archive");
    path
}

/// The bytes of a `cpio` "newc" archive of `entries` (name, mode with its
/// file type, e.g. `0o100755` or `0o040755` for a directory, contents), as
/// Dom0 and Linux's initramfs read it.
pub fn newc_archive(entries: &[(&str, u32, &[u8])]) -> Vec<u8> {
    let mut a = Vec::new();
    let mut member = |name: &str, data: &[u8], mode: u32| {
        let header = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            0, mode, 0, 0, 1, 0, data.len(), 0, 0, 0, 0, name.len() + 1, 0
        );
        a.extend_from_slice(header.as_bytes());
        a.extend_from_slice(name.as_bytes());
        a.push(0);
        while a.len() % 4 != 0 {
            a.push(0);
        }
        a.extend_from_slice(data);
        while a.len() % 4 != 0 {
            a.push(0);
        }
    };
    for (name, mode, data) in entries {
        member(name, data, *mode);
    }
    member("TRAILER!!!", &[], 0);
    a
}

/// A guest config for the disk tests: pv-guest-kernel with `extra`, and
/// `disk` as the one entry of `disk = [ ... ]` (a `disk` starting with a
/// newline is put in as it is; an empty one gives no disk).
pub fn disk_guest_cfg(name: &str, extra: &str, disk: &str) -> Vec<u8> {
    let disk = match disk {
        "" => String::new(),
        d if d.starts_with('\n') => d.to_string(),
        d => format!("disk = [ '{d}' ]\n"),
    };
    format!("name=\"{name}\"\nkernel=\"pv-guest-kernel\"\nmemory=16\nextra=\"{extra}\"\n{disk}").into_bytes()
}

/// Boots `boot` with Dom0 running `script` over guests `cfgs` (name,
/// extra, disk: see [`disk_guest_cfg`]) as `guests/NAME.cfg`. Words after
/// a `|` in `script` go on Dom0's command line after it (`xl_keep_going`
/// runs the commands after a failing one).
pub fn run_disk_guests(boot: Boot, tag: &str, cfgs: &[(&str, &str, &str)], script: &str) -> Outcome {
    let kernel = std::fs::read(image("pv-guest-kernel")).expect("guest image");
    let mut files = vec![("pv-guest-kernel", kernel)];
    let names: Vec<String> = cfgs.iter().map(|(n, ..)| format!("guests/{n}.cfg")).collect();
    for ((name, extra, disk), path) in cfgs.iter().zip(&names) {
        files.push((path.as_str(), disk_guest_cfg(name, extra, disk)));
    }
    let archive = guest_archive(tag, &files);
    let (script, flags) = script.split_once('|').unwrap_or((script, ""));
    boot.dom0_image("dom0").module(&archive, "").dom0_cmdline(format!("xl=\"{script}\" {flags}").trim_end()).run()
}

/// The lines of guest `name`'s console (as Dom0 relays it, `[name] ...`)
/// from `marker` on, without a hypervisor line that broke into them.
pub fn guest_markers<'a>(out: &'a Outcome, name: &str, marker: &str) -> Vec<&'a str> {
    let prefix = format!("[{name}] ");
    out.lines()
        .filter_map(|l| l.find(&prefix).map(|i| &l[i + prefix.len()..]))
        .filter_map(|l| l.find(marker).map(|i| &l[i..]))
        .map(|l| l.split("(XEN)").next().unwrap_or(l).trim_end())
        .collect()
}
