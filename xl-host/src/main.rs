//! `xl` on the host (`scripts/xl.sh`): runs one xl command in Dom0 over the
//! host channel (a Unix socket that QEMU connects to Dom0's second serial
//! port, see `docs/host-xl.md`), prints its output and exits with its status.
//!
//! `xl create FILE` sends FILE's contents when FILE exists on the host, and
//! the kernel (and ramdisk) the config names when those exist on the host,
//! so a guest need not be in Dom0's initrd; otherwise Dom0 looks the names
//! up in its initrd.
//!
//! Exit status: the command's own (0 success, 1 failure, as xl's); 2 for a
//! usage error or a request Dom0 refused; 3 when Dom0 cannot be reached;
//! 130 after ^C (which stops the command in Dom0, as ^C at its prompt).

use std::io::{self, ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::exit;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use xl_proto::{decode, encode, Deframer, File, Frame, Reply, Request, Stream, FRAME_MAX};

const USAGE: &str = "\
Usage: xl [--socket PATH] <subcommand> [args...]

Runs an xl subcommand in Dom0 (started by scripts/run.sh) over the host
channel: its output and exit status are the command's. 'xl help' lists the
subcommands.

  --socket PATH   the channel's Unix socket (default: $XL_SOCKET, which
                  scripts/xl.sh sets to run.sh's default, target/xl.sock)
  -h, --help      this text (xl help: Dom0's list of subcommands)

xl create FILE sends FILE (and the kernel and ramdisk it names, if they are
host files) to Dom0; names that are not host files are looked up in Dom0's
initrd.

^C stops the command in Dom0 (as at its prompt); a second ^C leaves at once.

Exit status: the command's (0 success, 1 failure); 2 bad usage or a request
Dom0 refused; 3 Dom0 not reachable (no run, or QEMU ended); 130 after ^C.";

/// How long Dom0 may take to acknowledge a request before we say that we
/// wait (it may still be booting: QEMU keeps the bytes until it reads).
const ACK_WAIT: Duration = Duration::from_secs(10);
/// Files larger than this take noticeably long to send: say so.
const SLOW_BYTES: usize = 64 << 10;

fn die(status: i32, msg: impl std::fmt::Display) -> ! {
    eprintln!("xl: {msg}");
    exit(status)
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut socket = std::env::var_os("XL_SOCKET").map(PathBuf::from);
    while let Some(a) = args.first() {
        match a.as_str() {
            "--socket" => {
                let Some(p) = args.get(1) else { die(2, "--socket needs a path") };
                socket = Some(PathBuf::from(p));
                args.drain(..2);
            }
            s if s.starts_with("--socket=") => {
                socket = Some(PathBuf::from(&s["--socket=".len()..]));
                args.remove(0);
            }
            "-h" | "--help" if args.len() == 1 => {
                println!("{USAGE}");
                return;
            }
            _ => break,
        }
    }
    if args.is_empty() {
        eprintln!("{USAGE}");
        exit(2);
    }
    let Some(socket) = socket else { die(2, "no socket: give --socket PATH or set XL_SOCKET") };
    let files = match files_for(&args) {
        Ok(f) => f,
        Err(e) => die(2, e),
    };
    exit(run(&socket, args, files))
}

/// The host files a command names: for `create`, the config file and the
/// kernel/ramdisk it names, each when it exists on the host.
fn files_for(args: &[String]) -> Result<Vec<File>, String> {
    let mut files = Vec::new();
    if args.first().map(String::as_str) != Some("create") {
        return Ok(files);
    }
    let Some(cfg) = args[1..].iter().find(|a| !a.starts_with('-') && !a.contains('=')) else { return Ok(files) };
    let Ok(text) = std::fs::read(cfg) else { return Ok(files) };
    // The config as Dom0 will read it: its keys, then key=value overrides.
    let text_str = String::from_utf8_lossy(&text).into_owned();
    files.push(File { name: cfg.clone(), data: text });
    let dir = cfg.rsplit_once('/').map_or("", |(d, _)| d);
    for key in ["kernel", "ramdisk"] {
        let from_args = args.iter().rev().find_map(|a| a.strip_prefix(key).and_then(|r| r.strip_prefix('=')).map(unquote));
        let Some(name) = from_args.or_else(|| value_of(&text_str, key)) else { continue };
        // Dom0 looks for the name as written, then beside the config file:
        // send it under the name it will look for.
        let beside = format!("{dir}/{name}");
        for candidate in [name.clone(), beside] {
            if Path::new(&candidate).is_file() {
                let data = std::fs::read(&candidate).map_err(|e| format!("{candidate}: {e}"))?;
                let sent: usize = files.iter().map(|f: &File| f.data.len()).sum();
                if sent + data.len() > FRAME_MAX - (64 << 10) {
                    return Err(format!("{candidate}: {} bytes: more than the channel takes ({} MiB in all); put it in Dom0's initrd (run.sh --module)", data.len(), FRAME_MAX >> 20));
                }
                files.push(File { name: candidate, data });
                break;
            }
        }
    }
    Ok(files)
}

/// `key = "value"` in an xl.cfg (the last one wins, as in xl).
fn value_of(text: &str, key: &str) -> Option<String> {
    text.lines().rev().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == key).then(|| unquote(v.split('#').next().unwrap_or("").trim()))
    })
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    for q in ['"', '\''] {
        if let Some(inner) = v.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner.to_string();
        }
    }
    v.to_string()
}

/// Sends the request, prints what comes back; the exit status.
fn run(socket: &Path, args: Vec<String>, files: Vec<File>) -> i32 {
    let mut s = match UnixStream::connect(socket) {
        Ok(s) => s,
        Err(e) => die(3, format!("cannot reach Dom0 at {}: {e} (is scripts/run.sh running?)", socket.display())),
    };
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let id = (std::process::id() << 12 ^ nanos) | 1;
    let bytes: usize = files.iter().map(|f| f.data.len()).sum();
    if bytes > SLOW_BYTES {
        // About 10 KB/s under QEMU's TCG: a serial port, polled.
        eprintln!("xl: sending {} KiB of files to Dom0 over its serial channel (about {} s)", bytes >> 10, bytes / 10_000);
    }
    let frame = encode(&Request::Run { id, args, files });
    let frame_len = frame.len() as u32 - 1;
    // A lone zero first ends whatever a client before us left half-sent.
    let mut wire = vec![0u8];
    wire.extend_from_slice(&frame);
    // Written by a thread: a large request takes a while to go through
    // the UART, and Dom0's replies must be read meanwhile. One writer at a
    // time, so that an interrupt never lands inside the request's frame.
    let w = match s.try_clone() {
        Ok(w) => Arc::new(Mutex::new(w)),
        Err(e) => die(3, format!("the socket: {e}")),
    };
    let writer = w.clone();
    std::thread::spawn(move || {
        let mut w = writer.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = w.write_all(&wire) {
            die(3, format!("sending to Dom0: {e}"));
        }
    });
    // ^C asks Dom0 to stop the command (its output and status still come
    // back; we then exit 130); a second ^C leaves at once.
    let interrupted = Arc::new(AtomicU32::new(0));
    let hits = interrupted.clone();
    let _ = ctrlc::set_handler(move || {
        if hits.fetch_add(1, Ordering::SeqCst) > 0 {
            exit(130);
        }
        let mut w = w.lock().unwrap_or_else(|p| p.into_inner());
        let _ = w.write_all(&encode(&Request::Interrupt { id }));
    });
    let mut accepted = false;
    let mut told = false;
    let _ = s.set_read_timeout(Some(ACK_WAIT));
    let mut de = Deframer::new();
    let mut buf = vec![0u8; 64 << 10];
    let (mut out, mut err) = (io::stdout(), io::stderr());
    loop {
        let n = match s.read(&mut buf) {
            Ok(0) => die(3, "Dom0's channel closed (QEMU ended?)"),
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if !accepted && !told && bytes <= SLOW_BYTES {
                    eprintln!("xl: waiting for Dom0 to take the request (still booting?)");
                    told = true;
                }
                continue;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => die(3, format!("reading from Dom0: {e}")),
        };
        for &b in &buf[..n] {
            let Some(Frame::Bytes(mut f)) = de.push(b) else { continue };
            // Replies to other ids are a dead client's leftovers.
            match decode::<Reply>(&mut f) {
                Ok(Reply::Accepted { id: i }) if i == id => {
                    accepted = true;
                    let _ = s.set_read_timeout(None);
                }
                Ok(Reply::Output { id: i, stream, data }) if i == id => {
                    let w: &mut dyn Write = if stream == Stream::Stdout { &mut out } else { &mut err };
                    let _ = w.write_all(&data);
                    let _ = w.flush();
                }
                Ok(Reply::Exit { id: i, status }) if i == id => {
                    let _ = out.flush();
                    if interrupted.load(Ordering::SeqCst) > 0 {
                        return 130;
                    }
                    return status as i32;
                }
                Ok(Reply::Rejected { frame_len: l, why }) if l == frame_len => die(2, format!("Dom0 refused the request: {why}")),
                _ => {}
            }
        }
    }
}
