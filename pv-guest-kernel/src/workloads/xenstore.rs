//! `workload=xenstore`: the store through the ring, as a guest uses it
//! (pv-rt's `xenbus` client): its own nodes by relative path, what it may
//! not read or write, a watch, transactions (one that conflicts and gets
//! `EAGAIN`, one that commits), a quota, and hostile messages that must
//! get error replies. The expected answers are xenstored's.

use core::fmt::Write as _;

use heapless::String;
use hypercall_abi::xs_wire::*;
use pv_rt::xenbus::{Xenbus, XsError};
use pv_rt::{println, start_info};

use super::grant::{whoami, Env};
use crate::check::Checks;

fn text(r: &Result<pv_rt::xenbus::Payload, XsError>) -> String<128> {
    let mut s = String::new();
    match r {
        Ok(p) => {
            let _ = s.push_str(core::str::from_utf8(p).unwrap_or("<bytes>"));
        }
        Err(e) => {
            let _ = write!(s, "error {}", e.name());
        }
    }
    s
}

fn err<T>(r: Result<T, XsError>) -> String<32> {
    let mut s = String::new();
    let _ = s.push_str(match &r {
        Ok(_) => "OK",
        Err(e) => e.name(),
    });
    s
}

pub fn run(_cmd: &str) {
    let mut c = Checks::default();
    let env = match Env::new() {
        Ok(e) => e,
        Err(e) => {
            println!("xenstore: setting up shared_info failed: {}", e);
            c.eq("xenstore set-up", false, true);
            return c.verdict();
        }
    };
    let Some(mut xs) = Xenbus::new(start_info()) else {
        println!("xenstore: start_info names no store ring");
        c.eq("xenstore ring in start_info", false, true);
        return c.verdict();
    };
    let me = whoami().unwrap_or(0);
    let mut id: String<8> = String::new();
    let _ = write!(id, "{}", me);
    c.eq("xs read domid", text(&xs.read(0, "domid")).as_str(), id.as_str());
    let mut home: String<32> = String::new();
    let _ = write!(home, "/local/domain/{}", me);
    let mut dp = heapless::Vec::<u8, 16>::new();
    let _ = dp.extend_from_slice(id.as_bytes());
    let _ = dp.push(0);
    let got = xs.request(XS_GET_DOMAIN_PATH, 0, &[&dp]);
    c.eq("xs get_domain_path", text(&got).trim_end_matches('\0'), home.as_str());

    c.eq("xs write data/test", err(xs.write(0, "data/test", b"hello")).as_str(), "OK");
    c.eq("xs read data/test", text(&xs.read(0, "data/test")).as_str(), "hello");
    c.eq("xs directory data", text(&xs.directory(0, "data")).as_str(), "test\0");
    c.eq("xs read missing", err(xs.read(0, "data/nope")).as_str(), "ENOENT");
    c.eq("xs read Dom0's name", err(xs.read(0, "/local/domain/0/name")).as_str(), "EACCES");
    c.eq("xs write memory/target", err(xs.write(0, "memory/target", b"999999")).as_str(), "EACCES");
    c.eq("xs write /tool", err(xs.write(0, "/tool/x", b"1")).as_str(), "EACCES");
    c.eq("xs rm data/test", err(xs.rm(0, "data/test")).as_str(), "OK");

    // A watch fires once when set, then on each change below it.
    c.eq("xs watch data/w", err(xs.watch("data/w", "tok")).as_str(), "OK");
    let deadline = env.now_ns() + 5_000_000_000;
    let first = xs.wait_watch(deadline);
    c.eq("xs watch first event", first.as_ref().map_or("none", |(p, _)| p.as_str()), "data/w");
    let _ = xs.write(0, "data/w/x", b"1");
    let second = xs.wait_watch(deadline);
    c.eq("xs watch event path", second.as_ref().map_or("none", |(p, _)| p.as_str()), "data/w/x");
    c.eq("xs watch event token", second.as_ref().map_or("none", |(_, t)| t.as_str()), "tok");
    c.eq("xs unwatch", err(xs.unwatch("data/w", "tok")).as_str(), "OK");

    // A transaction whose node changed under it gets EAGAIN; a retry commits.
    let _ = xs.write(0, "data/t", b"0");
    let t1 = xs.transaction_start().unwrap_or(0);
    c.eq("xs transaction id is not 0", t1 != 0, true);
    let _ = xs.read(t1, "data/t");
    let _ = xs.write(0, "data/t", b"outside");
    let _ = xs.write(t1, "data/t", b"inside");
    c.eq("xs conflicting commit", err(xs.transaction_end(t1, true)).as_str(), "EAGAIN");
    c.eq("xs value after conflict", text(&xs.read(0, "data/t")).as_str(), "outside");
    let t2 = xs.transaction_start().unwrap_or(0);
    let _ = xs.write(t2, "data/t", b"committed");
    c.eq("xs commit", err(xs.transaction_end(t2, true)).as_str(), "OK");
    c.eq("xs value after commit", text(&xs.read(0, "data/t")).as_str(), "committed");

    // Quota: a value larger than an entry may be.
    let big = [b'x'; 3000];
    c.eq("xs write past the entry quota", err(xs.write(0, "data/big", &big)).as_str(), "ENOSPC");

    // Hostile messages get error replies, and the store keeps serving.
    c.eq("xs unterminated path", err(xs.request(XS_READ, 0, &[b"data/t"])).as_str(), "EINVAL");
    c.eq("xs unknown type", err(xs.request(999, 0, &[b"x\0"])).as_str(), "EINVAL");
    c.eq("xs introduce from a guest", err(xs.request(XS_INTRODUCE, 0, &[b"5\x001\x001\0"])).as_str(), "EACCES");
    c.eq("xs unknown transaction", err(xs.read(4242, "data/t")).as_str(), "ENOENT");
    c.eq("xs bad path", err(xs.read(0, "/a//b")).as_str(), "EINVAL");
    c.eq("xs still serving", text(&xs.read(0, "data/t")).as_str(), "committed");
    c.verdict();
}

/// `workload=xenstore-hostile how=length|index`: breaks the ring protocol
/// (a header longer than `XENSTORE_PAYLOAD_MAX`, or a producer index far
/// past the consumer), then waits a little and stops. Dom0 must drop this
/// domain's connection, and only it.
pub fn hostile(cmd: &str) {
    let env = match Env::new() {
        Ok(e) => e,
        Err(_) => return,
    };
    let Some(mut xs) = Xenbus::new(start_info()) else { return };
    match pv_rt::cmdline::get(cmd, "how") {
        Some("index") => {
            let intf = xs.interface();
            // SAFETY: our own store page, mapped for good; the index is
            // garbage on purpose.
            unsafe { core::ptr::write_volatile(core::ptr::addr_of_mut!((*intf).req_prod), 0x8000_0000) };
            let _ = pv_rt::events::send(xs.port);
            println!("xenstore-hostile: req_prod set past the ring");
        }
        _ => {
            let hdr = XsdSockmsg { r#type: XS_READ, req_id: 1, tx_id: 0, len: XENSTORE_PAYLOAD_MAX as u32 + 1 };
            let deadline = env.now_ns() + 1_000_000_000;
            let _ = xs.put_raw(&hdr.to_bytes(), deadline);
            println!("xenstore-hostile: sent a header of {} bytes", hdr.len);
        }
    }
    env.sleep(200_000_000);
    xs.timeout_ns = 500_000_000;
    let after = xs.read(0, "domid");
    println!("xenstore-hostile: a read afterwards: {}", text(&after));
}

/// `workload=control`: a guest that answers the toolstack's shutdown
/// requests (`xl shutdown`, `xl reboot`) through the store, as Linux does,
/// and otherwise sleeps.
pub fn control(_cmd: &str) {
    use pv_rt::xenbus::control::{self, Request};
    let Ok(_env) = Env::new() else { return };
    let Some(mut xs) = Xenbus::new(start_info()) else {
        println!("control: start_info names no store ring");
        return;
    };
    if let Err(e) = control::listen(&mut xs) {
        println!("control: cannot watch control/shutdown: {}", e.name());
        return;
    }
    println!("control: listening on control/shutdown");
    loop {
        match control::wait(&mut xs, 0) {
            Ok(Some(Request::Poweroff)) => {
                println!("control: shutdown request 'poweroff': powering off");
                pv_rt::poweroff();
            }
            Ok(Some(Request::Reboot)) => {
                println!("control: shutdown request 'reboot': rebooting");
                pv_rt::reboot();
            }
            Ok(Some(Request::Other(what))) => println!("control: shutdown request '{}' is not supported", what),
            Ok(None) => {}
            Err(e) => {
                println!("control: store error {}", e.name());
                return;
            }
        }
    }
}
