//! The host channel, Dom0's end: requests from `scripts/xl.sh` arrive on
//! COM2 ([`crate::com2`]) as frames ([`xl_proto`], `docs/host-xl.md`); each
//! is acknowledged at once, queued, and run by the toolstack when no other
//! command runs (`xl_host`). While one runs, everything it prints goes back
//! to the host, in `Output` frames as it comes, then its exit status.
//!
//! Frames are hostile input: one that is not a request, is too long or
//! asks too much is answered with `Rejected` or an error exit, never a panic.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

use spin::Mutex;
use xl_proto::{decode, encode, Deframer, File, Frame, Reply, Request, Stream};

use crate::com2::Uart;

/// Requests waiting for their turn; more are refused.
const QUEUE_MAX: usize = 8;
/// Output is sent back in pieces of about this size (and when the command
/// ends): a long command's output arrives while it runs.
const OUTPUT_CHUNK: usize = 1024;
/// Bytes read per look: a flood cannot starve the consoles.
const READ_BUDGET: usize = 64 << 10;
/// Ids recently taken: a request sent again (no acknowledgement seen yet)
/// runs once.
const SEEN: usize = 16;

pub struct Run {
    pub id: u32,
    pub args: Vec<String>,
    pub files: Vec<File>,
}

struct Channel {
    uart: Option<Uart>,
    de: Deframer,
    queue: VecDeque<Run>,
    seen: [u32; SEEN],
    seen_next: usize,
    /// The request being run, and what it printed not yet sent.
    current: Option<u32>,
    out: Vec<u8>,
    out_stream: Stream,
    /// `xl:` error lines go to the host's stderr.
    err: bool,
    interrupt: bool,
}

static CHANNEL: Mutex<Channel> = Mutex::new(Channel {
    uart: None,
    de: Deframer::new(),
    queue: VecDeque::new(),
    seen: [0; SEEN],
    seen_next: 0,
    current: None,
    out: Vec::new(),
    out_stream: Stream::Stdout,
    err: false,
    interrupt: false,
});

/// Opens the channel if COM2 exists; whether it does.
pub fn init() -> bool {
    if crate::hv::set_iopl(1).is_err() {
        return false;
    }
    let uart = Uart::probe();
    let present = uart.is_some();
    CHANNEL.lock().uart = uart;
    present
}

impl Channel {
    fn send(&mut self, reply: &Reply) {
        let frame = encode(reply);
        if let Some(u) = self.uart.as_mut() {
            u.write(&frame);
        }
    }

    fn flush(&mut self) {
        let Some(id) = self.current else { return };
        if self.out.is_empty() {
            return;
        }
        let data = core::mem::take(&mut self.out);
        self.send(&Reply::Output { id, stream: self.out_stream, data });
    }

    fn take(&mut self, mut bytes: Vec<u8>) {
        let frame_len = bytes.len() as u32;
        let req = match decode::<Request>(&mut bytes) {
            Ok(r) => r,
            Err(e) => {
                self.send(&Reply::Rejected { frame_len, why: String::from(e.as_str()) });
                return;
            }
        };
        match req {
            Request::Interrupt { id } => {
                if self.current == Some(id) {
                    self.interrupt = true;
                }
            }
            Request::Run { id, args, files } => {
                if self.seen.contains(&id) {
                    // Sent again before it saw our acknowledgement.
                    self.send(&Reply::Accepted { id });
                    return;
                }
                self.seen[self.seen_next] = id;
                self.seen_next = (self.seen_next + 1) % SEEN;
                let queued: usize = self.queue.iter().flat_map(|r| r.files.iter()).map(|f| f.data.len()).sum();
                if self.queue.len() >= QUEUE_MAX || queued > xl_proto::FRAME_MAX {
                    let data = alloc::format!("xl: Dom0 has {} requests from the host waiting already; try again\n", QUEUE_MAX).into_bytes();
                    self.send(&Reply::Output { id, stream: Stream::Stderr, data });
                    self.send(&Reply::Exit { id, status: 2 });
                    return;
                }
                self.send(&Reply::Accepted { id });
                self.queue.push_back(Run { id, args, files });
            }
        }
    }
}

/// Reads what the host sent and acknowledges each request; whether the
/// host asked to interrupt the request now running.
pub fn poll() -> bool {
    let mut ch = CHANNEL.lock();
    let mut budget = READ_BUDGET;
    while budget > 0 {
        // An empty FIFO ends the look, even inside a frame: spinning on the
        // line status halves the rate (each `in` takes QEMU's big lock,
        // which its main loop needs to refill the FIFO); the toolstack
        // sleeps briefly instead (`in_frame`).
        let Some(b) = ch.uart.as_mut().and_then(Uart::read) else { break };
        budget -= 1;
        match ch.de.push(b) {
            Some(Frame::Bytes(f)) => ch.take(f),
            Some(Frame::TooLong(n)) => {
                let why = String::from(xl_proto::DecodeError::TooLong.as_str());
                ch.send(&Reply::Rejected { frame_len: n as u32, why });
            }
            None => {}
        }
    }
    core::mem::take(&mut ch.interrupt)
}

/// Whether part of a frame has arrived: the rest follows at once, so the
/// toolstack looks again soon.
pub fn in_frame() -> bool {
    CHANNEL.lock().de.in_frame()
}

/// The next request to run, if any.
pub fn next() -> Option<Run> {
    CHANNEL.lock().queue.pop_front()
}

/// From now on, what is printed goes to request `id`.
pub fn begin(id: u32) {
    {
        let mut ch = CHANNEL.lock();
        ch.current = Some(id);
        ch.out.clear();
        ch.out_stream = Stream::Stdout;
        ch.err = false;
        ch.interrupt = false;
    }
    pv_rt::console::set_sink(Some(sink));
}

/// Request `id` ended with `status`: its last output, then the status.
pub fn finish(id: u32, status: u8) {
    pv_rt::console::set_sink(None);
    let mut ch = CHANNEL.lock();
    ch.flush();
    ch.send(&Reply::Exit { id, status });
    ch.current = None;
}

/// Runs `f` with its output marked as errors (the host's stderr).
pub fn as_error(f: impl FnOnce()) {
    CHANNEL.lock().err = true;
    f();
    CHANNEL.lock().err = false;
}

/// The console sink while a request runs: its output, in chunks.
fn sink(bytes: &[u8]) {
    let mut ch = CHANNEL.lock();
    let stream = if ch.err { Stream::Stderr } else { Stream::Stdout };
    if stream != ch.out_stream {
        ch.flush();
        ch.out_stream = stream;
    }
    ch.out.extend_from_slice(bytes);
    if ch.out.len() >= OUTPUT_CHUNK {
        ch.flush();
    }
}
