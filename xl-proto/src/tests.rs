use super::*;
use alloc::vec;

fn frames(stream: &[u8]) -> Vec<Frame> {
    let mut d = Deframer::new();
    stream.iter().filter_map(|&b| d.push(b)).collect()
}

fn run(id: u32, args: &[&str]) -> Request {
    Request::Run { id, args: args.iter().map(|a| String::from(*a)).collect(), files: vec![] }
}

#[test]
fn a_request_goes_through_a_frame_and_back() {
    let req = Request::Run {
        id: 7,
        args: vec!["create".into(), "my.cfg".into()],
        files: vec![File { name: "my.cfg".into(), data: b"name=\"a\"\n\0\0\xff".to_vec() }],
    };
    let wire = encode(&req);
    assert_eq!(wire.last(), Some(&0));
    assert_eq!(wire.iter().filter(|&&b| b == 0).count(), 1, "COBS leaves one zero: the end");
    let mut got = frames(&wire);
    assert_eq!(got.len(), 1);
    let Frame::Bytes(ref mut f) = got[0] else { panic!("{got:?}") };
    assert_eq!(decode::<Request>(f), Ok(req));
}

#[test]
fn garbage_costs_only_its_own_frame() {
    let mut wire = b"\x05garbage\xff\xff".to_vec();
    wire.push(0);
    wire.push(0); // an empty frame: skipped
    wire.extend(encode(&run(1, &["list"])));
    let mut got = frames(&wire);
    assert_eq!(got.len(), 2);
    let Frame::Bytes(ref mut bad) = got[0] else { panic!() };
    assert_eq!(decode::<Request>(bad), Err(DecodeError::Malformed));
    let Frame::Bytes(ref mut good) = got[1] else { panic!() };
    assert_eq!(decode::<Request>(good), Ok(run(1, &["list"])));
}

#[test]
fn hostile_frames_are_errors_never_panics() {
    // Every short byte string, and truncations and bit flips of a real one.
    let real = encode(&Request::Run { id: 3, args: vec!["list".into(), "-l".into()], files: vec![File { name: "x".into(), data: vec![1; 300] }] });
    let body = &real[..real.len() - 1];
    for cut in 0..body.len() {
        let mut f = body[..cut].to_vec();
        let _ = decode::<Request>(&mut f);
    }
    for i in 0..body.len() {
        for bit in 0..8 {
            let mut f = body.to_vec();
            f[i] ^= 1 << bit;
            let _ = decode::<Request>(&mut f);
        }
    }
    for a in 0..=255u8 {
        for b in 0..=255u8 {
            let _ = decode::<Request>(&mut [a, b]);
            let _ = decode::<Request>(&mut [0x03, a, b]);
        }
    }
    // A huge length prefix for `args` must not allocate it up front or panic.
    let mut f = encode(&run(1, &[]));
    f.pop();
    let _ = decode::<Request>(&mut f);
    let mut raw = vec![0u8, 1, 0xff, 0xff, 0xff, 0xff, 0x0f];
    let mut wire = vec![0u8; raw.len() + 2];
    let n = cobs::encode(&raw, &mut wire);
    assert_eq!(decode::<Request>(&mut wire[..n]), Err(DecodeError::Malformed));
    raw.clear();
}

#[test]
fn trailing_bytes_after_a_message_are_refused() {
    let mut raw = postcard::to_allocvec(&run(2, &["list"])).unwrap();
    raw.push(9);
    let mut wire = vec![0u8; raw.len() + 4];
    let n = cobs::encode(&raw, &mut wire);
    assert_eq!(decode::<Request>(&mut wire[..n]), Err(DecodeError::Malformed));
}

#[test]
fn an_over_long_frame_is_dropped_and_reported_and_the_next_one_reads() {
    let mut d = Deframer::new();
    for _ in 0..FRAME_MAX + 10 {
        assert_eq!(d.push(1), None);
    }
    assert!(d.buf.capacity() <= FRAME_MAX, "no more than FRAME_MAX kept");
    assert_eq!(d.push(0), Some(Frame::TooLong(FRAME_MAX + 10)));
    let wire = encode(&run(5, &["info"]));
    let mut got: Vec<Frame> = wire.iter().filter_map(|&b| d.push(b)).collect();
    let Frame::Bytes(ref mut f) = got[0] else { panic!() };
    assert_eq!(decode::<Request>(f), Ok(run(5, &["info"])));
}

#[test]
fn replies_round_trip() {
    for r in [
        Reply::Output { id: 1, stream: Stream::Stderr, data: b"xl: no\n".to_vec() },
        Reply::Exit { id: 1, status: 1 },
        Reply::Accepted { id: 9 },
        Reply::Rejected { frame_len: 12, why: "the frame is not a valid message".into() },
    ] {
        let mut w = encode(&r);
        w.pop();
        assert_eq!(decode::<Reply>(&mut w), Ok(r));
    }
}
