//! The host channel: how `scripts/xl.sh` (the `xl` host tool) asks Dom0 to
//! run an xl command and gets its output and exit status back, over a byte
//! stream (Dom0's second serial port, a Unix socket on the host).
//!
//! A frame is one message serialized with `postcard`, COBS-encoded (so it
//! holds no zero byte), then a single `0x00` that ends it. A reader that
//! joins a stream in the middle, or meets garbage, loses at most the frame
//! it is in: the next zero starts afresh. Empty frames (a lone `0x00`) are
//! ignored; the host tool sends one first, to end whatever a client before
//! it left half-sent. The format is written down in `docs/host-xl.md`.
#![no_std]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// The longest frame either end accepts (COBS-encoded, without its final
/// zero): a small guest kernel and its config fit, and Dom0's heap holds
/// a frame while it decodes it. A longer one is dropped and answered with
/// [`Reply::Rejected`].
pub const FRAME_MAX: usize = 2 << 20;

/// Host to Dom0.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Run one xl command, `args` as xl's own argv after `xl` (for example
    /// `["create", "my.cfg", "memory=32"]`). `files` are host files the
    /// command names (a config file, the kernel it names), sent by content:
    /// Dom0 looks them up by `name` before its initrd.
    Run { id: u32, args: Vec<String>, files: Vec<File> },
    /// Stop request `id`'s command, as ^C at the prompt does.
    Interrupt { id: u32 },
}

/// A host file, by the name the command uses for it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub name: String,
    pub data: Vec<u8>,
}

/// Which of the host tool's outputs a piece of text goes to.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Dom0 to host.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Request `id` arrived and waits its turn (Dom0 runs one command at a
    /// time: a command typed at the console may be running). Dom0 runs a
    /// repeated id once.
    Accepted { id: u32 },
    /// Some of request `id`'s output, as it is produced.
    Output { id: u32, stream: Stream, data: Vec<u8> },
    /// Request `id`'s command ended with this exit status (0 success, 1
    /// failure, as xl's).
    Exit { id: u32, status: u8 },
    /// A frame Dom0 could not read (not a request, or too long): its
    /// length, so that a client can tell its own frame from a stale one.
    Rejected { frame_len: u32, why: String },
}

/// `msg` as one frame: COBS bytes, then the zero that ends it.
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    // postcard's COBS flavor appends the terminating zero itself; it can
    // only fail when the buffer cannot grow, which Vec always can.
    postcard::to_allocvec_cobs(msg).unwrap_or_default()
}

/// Why a frame was not a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Longer than [`FRAME_MAX`].
    TooLong,
    /// Not COBS, or not a postcard message of the expected type.
    Malformed,
}

impl DecodeError {
    pub fn as_str(self) -> &'static str {
        match self {
            DecodeError::TooLong => "the frame is too long",
            DecodeError::Malformed => "the frame is not a valid message",
        }
    }
}

/// One frame's bytes (without its final zero) as a message; decoded in place.
pub fn decode<T: for<'de> Deserialize<'de>>(frame: &mut [u8]) -> Result<T, DecodeError> {
    if frame.len() > FRAME_MAX {
        return Err(DecodeError::TooLong);
    }
    // COBS decoded in place (the crate postcard uses), then the message;
    // bytes after the message are refused: a request is exact.
    let n = cobs::decode_in_place(frame).map_err(|_| DecodeError::Malformed)?;
    let bytes = frame.get(..n).ok_or(DecodeError::Malformed)?;
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((msg, [])) => Ok(msg),
        _ => Err(DecodeError::Malformed),
    }
}

/// Cuts a byte stream into frames: give it bytes as they come, take each
/// frame it completes. Bounded: a frame over [`FRAME_MAX`] is not kept (its
/// bytes are counted and dropped), and is reported as too long.
#[derive(Default)]
pub struct Deframer {
    buf: Vec<u8>,
    /// Bytes of the current frame beyond what `buf` kept.
    dropped: usize,
}

/// What [`Deframer::push`] completed.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A whole frame's bytes, without the final zero (never empty).
    Bytes(Vec<u8>),
    /// A frame longer than [`FRAME_MAX`] ended: its length.
    TooLong(usize),
}

impl Deframer {
    pub const fn new() -> Self {
        Deframer { buf: Vec::new(), dropped: 0 }
    }

    /// Takes one byte; a frame when `b` ended one (empty frames are skipped).
    pub fn push(&mut self, b: u8) -> Option<Frame> {
        if b != 0 {
            if self.dropped > 0 || self.buf.len() >= FRAME_MAX {
                // Drop what is kept now: a long frame must not hold memory.
                self.dropped = self.dropped.saturating_add(self.buf.len()).saturating_add(1);
                self.buf = Vec::new();
            } else {
                self.buf.push(b);
            }
            return None;
        }
        if self.dropped > 0 {
            let n = core::mem::take(&mut self.dropped);
            return Some(Frame::TooLong(n));
        }
        if self.buf.is_empty() {
            return None;
        }
        Some(Frame::Bytes(core::mem::take(&mut self.buf)))
    }

    /// Whether part of a frame has arrived.
    pub fn in_frame(&self) -> bool {
        !self.buf.is_empty() || self.dropped > 0
    }
}

#[cfg(test)]
mod tests;
