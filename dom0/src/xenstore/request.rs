//! One `xs_wire.h` message in, one reply out: the payload's strings taken
//! apart and checked (every argument NUL-terminated, as many as the type
//! takes), the store operation, the reply's payload. A bad message gets an
//! `XS_ERROR` reply, never more.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use hypercall_abi::xs_wire::*;
use hypercall_abi::DomId;

use super::perms::{self, Perm};
use super::store::{Introduced, Store};
use super::Error;

/// Exactly `N` NUL-terminated strings, nothing after them.
fn args<const N: usize>(payload: &[u8]) -> Result<[&str; N], Error> {
    let mut out = [""; N];
    let mut rest = payload;
    for slot in out.iter_mut() {
        let end = rest.iter().position(|&b| b == 0).ok_or(Error::EINVAL)?;
        *slot = core::str::from_utf8(&rest[..end]).map_err(|_| Error::EINVAL)?;
        rest = &rest[end + 1..];
    }
    if !rest.is_empty() {
        return Err(Error::EINVAL);
    }
    Ok(out)
}

/// The first NUL-terminated string and what follows it.
fn first(payload: &[u8]) -> Result<(&str, &[u8]), Error> {
    let end = payload.iter().position(|&b| b == 0).ok_or(Error::EINVAL)?;
    let s = core::str::from_utf8(&payload[..end]).map_err(|_| Error::EINVAL)?;
    Ok((s, &payload[end + 1..]))
}

fn domid(s: &str) -> Result<DomId, Error> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::EINVAL);
    }
    s.parse().map_err(|_| Error::EINVAL)
}

fn ok_reply() -> Vec<u8> {
    b"OK\0".to_vec()
}

fn text(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// Serves one request of connection `conn`; the reply's type and payload.
pub fn handle(store: &mut Store, conn: DomId, hdr: &XsdSockmsg, payload: &[u8]) -> (u32, Vec<u8>) {
    match dispatch(store, conn, hdr, payload) {
        Ok(reply) if reply.len() > XENSTORE_PAYLOAD_MAX => (XS_ERROR, text(Error::E2BIG.name())),
        Ok(reply) => (hdr.r#type, reply),
        Err(e) => (XS_ERROR, text(e.name())),
    }
}

fn dispatch(store: &mut Store, conn: DomId, hdr: &XsdSockmsg, payload: &[u8]) -> Result<Vec<u8>, Error> {
    let tx = hdr.tx_id;
    match hdr.r#type {
        XS_READ => {
            let [p] = args::<1>(payload)?;
            store.read(conn, tx, p)
        }
        XS_DIRECTORY => {
            let [p] = args::<1>(payload)?;
            let mut out = Vec::new();
            for name in store.directory(conn, tx, p)? {
                out.extend_from_slice(name.as_bytes());
                out.push(0);
            }
            Ok(out)
        }
        XS_GET_PERMS => {
            let [p] = args::<1>(payload)?;
            Ok(perms::to_wire(&store.get_perms(conn, tx, p)?))
        }
        XS_WRITE => {
            let (p, value) = first(payload)?;
            store.write(conn, tx, p, Some(value)).map(|_| ok_reply())
        }
        XS_MKDIR => {
            let [p] = args::<1>(payload)?;
            store.write(conn, tx, p, None).map(|_| ok_reply())
        }
        XS_RM => {
            let [p] = args::<1>(payload)?;
            store.rm(conn, tx, p).map(|_| ok_reply())
        }
        XS_SET_PERMS => {
            let (p, mut rest) = first(payload)?;
            let mut list: Vec<Perm> = Vec::new();
            while !rest.is_empty() {
                let (s, r) = first(rest)?;
                list.push(Perm::parse(s).ok_or(Error::EINVAL)?);
                rest = r;
            }
            store.set_perms(conn, tx, p, list).map(|_| ok_reply())
        }
        XS_WATCH => {
            let [p, token] = args::<2>(payload)?;
            store.watch(conn, p, token).map(|_| ok_reply())
        }
        XS_UNWATCH => {
            let [p, token] = args::<2>(payload)?;
            store.unwatch(conn, p, token).map(|_| ok_reply())
        }
        XS_RESET_WATCHES => {
            store.reset_watches(conn);
            Ok(ok_reply())
        }
        XS_TRANSACTION_START => {
            // Clients send one empty string; some send nothing at all.
            if !payload.is_empty() {
                let [_] = args::<1>(payload)?;
            }
            let id = store.transaction_start(conn, tx)?;
            Ok(text(&format!("{}", id)))
        }
        XS_TRANSACTION_END => {
            let [how] = args::<1>(payload)?;
            let commit = match how {
                "T" => true,
                "F" => false,
                _ => return Err(Error::EINVAL),
            };
            store.transaction_end(conn, tx, commit).map(|_| ok_reply())
        }
        XS_GET_DOMAIN_PATH => {
            let [d] = args::<1>(payload)?;
            Ok(text(&Store::domain_path(domid(d)?)))
        }
        XS_IS_DOMAIN_INTRODUCED => {
            let [d] = args::<1>(payload)?;
            Ok(text(if store.is_introduced(domid(d)?) { "T" } else { "F" }))
        }
        XS_INTRODUCE => {
            let [d, mfn, port] = args::<3>(payload)?;
            let mfn: u64 = mfn.parse().map_err(|_| Error::EINVAL)?;
            let port: u32 = port.parse().map_err(|_| Error::EINVAL)?;
            store.introduce(conn, domid(d)?, Introduced { mfn, port }).map(|_| ok_reply())
        }
        XS_RELEASE => {
            let [d] = args::<1>(payload)?;
            store.release(conn, domid(d)?).map(|_| ok_reply())
        }
        _ => Err(Error::EINVAL),
    }
}

/// A watch event's payload: path and token, each NUL-terminated.
pub fn watch_event(path: &str, token: &str) -> Vec<u8> {
    let mut v = text(path);
    v.extend_from_slice(&text(token));
    v
}

/// Splits a reply payload of NUL-terminated strings (for Dom0's commands).
pub fn strings(payload: &[u8]) -> Vec<String> {
    let body = payload.strip_suffix(&[0]).unwrap_or(payload);
    if body.is_empty() {
        return Vec::new();
    }
    body.split(|&b| b == 0).map(|s| String::from_utf8_lossy(s).into_owned()).collect()
}
