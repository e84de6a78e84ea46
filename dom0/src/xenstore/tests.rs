//! The store's behaviour as a guest and the toolstack see it, through the
//! same wire messages the rings carry.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use hypercall_abi::xs_wire::*;
use hypercall_abi::DomId;

use super::request::{self, strings};
use super::ring::{Broken, Conn, OUT_LIMIT};
use super::store::{Event, Store};

/// One request; the reply's payload, or the error's name.
fn req(s: &mut Store, conn: DomId, ty: u32, tx: u32, payload: &[u8]) -> Result<Vec<u8>, String> {
    let hdr = XsdSockmsg { r#type: ty, req_id: 9, tx_id: tx, len: payload.len() as u32 };
    let (t, reply) = request::handle(s, conn, &hdr, payload);
    if t == XS_ERROR {
        return Err(strings(&reply).remove(0));
    }
    assert_eq!(t, ty, "a reply has its request's type");
    Ok(reply)
}

fn z(parts: &[&str]) -> Vec<u8> {
    let mut v = Vec::new();
    for p in parts {
        v.extend_from_slice(p.as_bytes());
        v.push(0);
    }
    v
}

fn write(s: &mut Store, conn: DomId, tx: u32, p: &str, v: &str) -> Result<(), String> {
    let mut pl = z(&[p]);
    pl.extend_from_slice(v.as_bytes());
    req(s, conn, XS_WRITE, tx, &pl).map(drop)
}

fn read(s: &mut Store, conn: DomId, tx: u32, p: &str) -> Result<String, String> {
    req(s, conn, XS_READ, tx, &z(&[p])).map(|v| String::from_utf8(v).unwrap())
}

fn err<T: core::fmt::Debug>(r: Result<T, String>) -> String {
    r.expect_err("an error")
}

/// The toolstack's part of a domain: its home, readable by it, with a
/// `data` directory it may write (libxl's roperm/rwperm).
fn store_with_domains(ids: &[DomId]) -> Store {
    let mut s = Store::new();
    for &d in ids {
        let home = alloc::format!("/local/domain/{d}");
        write(&mut s, 0, 0, &home, "").unwrap();
        req(&mut s, 0, XS_SET_PERMS, 0, &z(&[&home, "n0", &alloc::format!("r{d}")])).unwrap();
        write(&mut s, 0, 0, &alloc::format!("{home}/name"), &alloc::format!("guest{d}")).unwrap();
        write(&mut s, 0, 0, &alloc::format!("{home}/data"), "").unwrap();
        req(&mut s, 0, XS_SET_PERMS, 0, &z(&[&alloc::format!("{home}/data"), &alloc::format!("n{d}")])).unwrap();
        req(&mut s, 0, XS_INTRODUCE, 0, &z(&[&alloc::format!("{d}"), "1234", "5"])).unwrap();
    }
    s.take_events();
    s
}

#[test]
fn a_guest_reads_its_home_by_relative_path_and_writes_where_allowed() {
    let mut s = store_with_domains(&[1]);
    assert_eq!(read(&mut s, 1, 0, "name").unwrap(), "guest1");
    assert_eq!(err(write(&mut s, 1, 0, "name", "evil")), "EACCES", "roperm: read only");
    write(&mut s, 1, 0, "data/a/b", "x").unwrap();
    assert_eq!(read(&mut s, 1, 0, "/local/domain/1/data/a/b").unwrap(), "x");
    assert_eq!(strings(&req(&mut s, 1, XS_DIRECTORY, 0, &z(&["data"])).unwrap()), ["a"]);
    assert_eq!(strings(&req(&mut s, 1, XS_GET_PERMS, 0, &z(&["data/a"])).unwrap()), ["n1"], "made by the guest: its own");
    assert_eq!(s.usage(1).nodes, 3, "data, a, b are charged to the guest");
    assert_eq!(req(&mut s, 1, XS_GET_DOMAIN_PATH, 0, &z(&["1"])).unwrap(), z(&["/local/domain/1"]));
}

#[test]
fn a_guest_cannot_see_or_probe_another_domains_tree() {
    let mut s = store_with_domains(&[1, 2]);
    write(&mut s, 2, 0, "data/secret", "s").unwrap();
    assert_eq!(err(read(&mut s, 1, 0, "/local/domain/2/data/secret")), "EACCES");
    assert_eq!(err(read(&mut s, 1, 0, "/local/domain/2/data/nothing")), "EACCES", "no ENOENT under an unreadable node");
    assert_eq!(err(read(&mut s, 1, 0, "/local/domain/2/name")), "EACCES");
    assert_eq!(err(read(&mut s, 1, 0, "data/nothing")), "ENOENT");
    assert_eq!(err(write(&mut s, 1, 0, "/local/domain/2/data/x", "y")), "EACCES");
    assert_eq!(err(req(&mut s, 1, XS_DIRECTORY, 0, &z(&["/local/domain"]))), "EACCES");
    assert_eq!(err(write(&mut s, 1, 0, "/tool/x", "y")), "EACCES");
    assert_eq!(err(req(&mut s, 1, XS_RM, 0, &z(&["/local/domain/2"]))), "EACCES");
}

#[test]
fn dom0_grants_access_and_only_dom0_gives_nodes_away() {
    let mut s = store_with_domains(&[1, 2]);
    write(&mut s, 0, 0, "/local/domain/2/shared", "hi").unwrap();
    req(&mut s, 0, XS_SET_PERMS, 0, &z(&["/local/domain/2/shared", "n2", "r1"])).unwrap();
    assert_eq!(read(&mut s, 1, 0, "/local/domain/2/shared").unwrap(), "hi");
    assert_eq!(err(write(&mut s, 1, 0, "/local/domain/2/shared", "no")), "EACCES");
    write(&mut s, 1, 0, "data/mine", "").unwrap();
    assert_eq!(err(req(&mut s, 1, XS_SET_PERMS, 0, &z(&["data/mine", "n2"]))), "EPERM");
    req(&mut s, 1, XS_SET_PERMS, 0, &z(&["data/mine", "n1", "r2"])).unwrap();
    assert_eq!(read(&mut s, 2, 0, "/local/domain/1/data/mine").unwrap(), "");
    assert_eq!(err(req(&mut s, 1, XS_SET_PERMS, 0, &z(&["data/mine", "x1"]))), "EINVAL");
}

#[test]
fn rm_takes_subtrees_and_accepts_a_node_already_gone() {
    let mut s = store_with_domains(&[1]);
    write(&mut s, 1, 0, "data/a/b/c", "1").unwrap();
    req(&mut s, 1, XS_RM, 0, &z(&["data/a"])).unwrap();
    assert_eq!(err(read(&mut s, 1, 0, "data/a/b/c")), "ENOENT");
    req(&mut s, 1, XS_RM, 0, &z(&["data/a"])).expect("gone already, parent exists: OK");
    assert_eq!(err(req(&mut s, 1, XS_RM, 0, &z(&["data/x/y"]))), "ENOENT");
    assert_eq!(err(req(&mut s, 0, XS_RM, 0, &z(&["/"]))), "EINVAL");
    assert_eq!(s.usage(1).nodes, 1, "only data is left charged");
}

#[test]
fn transactions_commit_abort_and_conflict_with_eagain() {
    let mut s = store_with_domains(&[1]);
    write(&mut s, 1, 0, "data/n", "0").unwrap();
    let t = |v: Vec<u8>| strings(&v)[0].parse::<u32>().unwrap();
    let t1 = t(req(&mut s, 1, XS_TRANSACTION_START, 0, b"\0").unwrap());
    assert_eq!(read(&mut s, 1, t1, "data/n").unwrap(), "0");
    write(&mut s, 1, t1, "data/n", "1").unwrap();
    assert_eq!(read(&mut s, 1, 0, "data/n").unwrap(), "0", "invisible outside before commit");
    write(&mut s, 1, 0, "data/n", "other").unwrap();
    assert_eq!(err(req(&mut s, 1, XS_TRANSACTION_END, t1, &z(&["T"]))), "EAGAIN");
    assert_eq!(read(&mut s, 1, 0, "data/n").unwrap(), "other", "the conflicting transaction changed nothing");
    assert_eq!(err(req(&mut s, 1, XS_TRANSACTION_END, t1, &z(&["T"]))), "ENOENT", "it is gone");

    let t2 = t(req(&mut s, 1, XS_TRANSACTION_START, 0, b"\0").unwrap());
    write(&mut s, 1, t2, "data/n", "2").unwrap();
    write(&mut s, 1, t2, "data/m/deep", "3").unwrap();
    req(&mut s, 1, XS_TRANSACTION_END, t2, &z(&["T"])).unwrap();
    assert_eq!(read(&mut s, 1, 0, "data/n").unwrap(), "2");
    assert_eq!(read(&mut s, 1, 0, "data/m/deep").unwrap(), "3");

    let t3 = t(req(&mut s, 1, XS_TRANSACTION_START, 0, b"").unwrap());
    req(&mut s, 1, XS_RM, t3, &z(&["data/m"])).unwrap();
    req(&mut s, 1, XS_TRANSACTION_END, t3, &z(&["F"])).unwrap();
    assert_eq!(read(&mut s, 1, 0, "data/m/deep").unwrap(), "3", "aborted");
    assert_eq!(err(req(&mut s, 1, XS_TRANSACTION_END, 0, &z(&["T"]))), "ENOENT");
    assert_eq!(err(req(&mut s, 1, XS_TRANSACTION_END, t3, &z(&["maybe"]))), "EINVAL");
}

#[test]
fn transactions_are_private_to_their_connection_and_limited() {
    let mut s = store_with_domains(&[1, 2]);
    let id = strings(&req(&mut s, 1, XS_TRANSACTION_START, 0, b"\0").unwrap())[0].parse::<u32>().unwrap();
    assert_eq!(err(read(&mut s, 2, id, "name")), "ENOENT", "another domain's transaction id");
    assert_eq!(err(req(&mut s, 1, XS_TRANSACTION_START, id, b"\0")), "EBUSY", "no nesting");
    for _ in 1..s.quota.transactions {
        req(&mut s, 1, XS_TRANSACTION_START, 0, b"\0").unwrap();
    }
    assert_eq!(err(req(&mut s, 1, XS_TRANSACTION_START, 0, b"\0")), "ENOSPC");
    req(&mut s, 2, XS_TRANSACTION_START, 0, b"\0").expect("other domains are not affected");
}

#[test]
fn watches_fire_on_changes_at_or_below_with_relative_paths() {
    let mut s = store_with_domains(&[1]);
    req(&mut s, 1, XS_WATCH, 0, &z(&["data", "tok"])).unwrap();
    assert_eq!(s.take_events(), [Event { conn: 1, path: "data".into(), token: "tok".into() }], "fired once at registration");
    write(&mut s, 0, 0, "/local/domain/1/data/x", "1").unwrap();
    assert_eq!(s.take_events(), [Event { conn: 1, path: "data/x".into(), token: "tok".into() }]);
    write(&mut s, 0, 0, "/local/domain/1/name", "renamed").unwrap();
    assert!(s.take_events().is_empty(), "not below the watch");
    assert_eq!(err(req(&mut s, 1, XS_WATCH, 0, &z(&["data", "tok"]))), "EEXIST");
    req(&mut s, 1, XS_UNWATCH, 0, &z(&["data", "tok"])).unwrap();
    assert_eq!(err(req(&mut s, 1, XS_UNWATCH, 0, &z(&["data", "tok"]))), "ENOENT");
    write(&mut s, 0, 0, "/local/domain/1/data/y", "1").unwrap();
    assert!(s.take_events().is_empty());
    req(&mut s, 1, XS_WATCH, 0, &z(&["data", "p"])).unwrap();
    s.take_events();
    write(&mut s, 1, 0, "data/new/deep/node", "1").unwrap();
    assert_eq!(s.take_events(), [Event { conn: 1, path: "data/new/deep/node".into(), token: "p".into() }], "one event for a write that makes parents");
}

#[test]
fn removing_a_node_fires_watches_below_it_and_transactions_fire_at_commit() {
    let mut s = store_with_domains(&[1]);
    write(&mut s, 1, 0, "data/a/b", "").unwrap();
    req(&mut s, 1, XS_WATCH, 0, &z(&["/local/domain/1/data/a/b", "t"])).unwrap();
    s.take_events();
    req(&mut s, 1, XS_RM, 0, &z(&["data/a"])).unwrap();
    assert_eq!(s.take_events(), [Event { conn: 1, path: "/local/domain/1/data/a/b".into(), token: "t".into() }]);
    req(&mut s, 1, XS_WATCH, 0, &z(&["data", "d"])).unwrap();
    s.take_events();
    let id = strings(&req(&mut s, 1, XS_TRANSACTION_START, 0, b"\0").unwrap())[0].parse::<u32>().unwrap();
    write(&mut s, 1, id, "data/q", "1").unwrap();
    assert!(s.take_events().is_empty(), "nothing before the commit");
    req(&mut s, 1, XS_TRANSACTION_END, id, &z(&["T"])).unwrap();
    assert_eq!(s.take_events(), [Event { conn: 1, path: "data/q".into(), token: "d".into() }]);
}

#[test]
fn watchers_hear_only_of_nodes_they_may_read() {
    let mut s = store_with_domains(&[1, 2]);
    req(&mut s, 1, XS_WATCH, 0, &z(&["/local/domain", "spy"])).unwrap();
    s.take_events();
    write(&mut s, 2, 0, "data/secret", "s").unwrap();
    assert!(s.take_events().is_empty(), "domain 1 cannot read domain 2's data");
}

#[test]
fn introduce_and_release_belong_to_dom0_and_fire_special_watches() {
    let mut s = store_with_domains(&[1]);
    req(&mut s, 0, XS_WATCH, 0, &z(&["@releaseDomain", "r"])).unwrap();
    req(&mut s, 0, XS_WATCH, 0, &z(&["@introduceDomain", "i"])).unwrap();
    s.take_events();
    assert_eq!(err(req(&mut s, 1, XS_INTRODUCE, 0, &z(&["7", "1", "2"]))), "EACCES");
    assert_eq!(err(req(&mut s, 1, XS_RELEASE, 0, &z(&["1"]))), "EACCES");
    req(&mut s, 0, XS_INTRODUCE, 0, &z(&["7", "99", "3"])).unwrap();
    assert_eq!(s.take_events(), [Event { conn: 0, path: "@introduceDomain".into(), token: "i".into() }]);
    assert_eq!(req(&mut s, 1, XS_IS_DOMAIN_INTRODUCED, 0, &z(&["7"])).unwrap(), z(&["T"]));
    req(&mut s, 1, XS_WATCH, 0, &z(&["data", "w"])).unwrap();
    req(&mut s, 0, XS_RELEASE, 0, &z(&["1"])).unwrap();
    let ev = s.take_events();
    assert_eq!(ev, [Event { conn: 0, path: "@releaseDomain".into(), token: "r".into() }], "domain 1's own events are gone");
    assert_eq!(s.watches_of(1), 0, "its watches went with it");
    assert_eq!(req(&mut s, 0, XS_IS_DOMAIN_INTRODUCED, 0, &z(&["1"])).unwrap(), z(&["F"]));
    assert_eq!(err(req(&mut s, 0, XS_RELEASE, 0, &z(&["1"]))), "ENOENT");
    assert_eq!(err(req(&mut s, 0, XS_INTRODUCE, 0, &z(&["0", "1", "1"]))), "EINVAL");
}

#[test]
fn quotas_stop_a_guest_with_clear_errors_and_spare_others() {
    let mut s = store_with_domains(&[1, 2]);
    s.quota.nodes = 20;
    let big = "x".repeat(s.quota.entry_size + 1);
    assert_eq!(err(write(&mut s, 1, 0, "data/big", &big)), "ENOSPC", "entry size");
    write(&mut s, 0, 0, "/local/domain/1/data/dom0big", &big).expect("Dom0 has no quota");
    let mut made = 0;
    let e = loop {
        match write(&mut s, 1, 0, &alloc::format!("data/n{made}"), "v") {
            Ok(()) => made += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(e, "ENOSPC");
    assert_eq!(s.usage(1).nodes, 20);
    write(&mut s, 2, 0, "data/fine", "v").expect("domain 2 is unaffected");
    for i in 0..s.quota.watches - s.watches_of(1) {
        req(&mut s, 1, XS_WATCH, 0, &z(&["data", &alloc::format!("t{i}")])).unwrap();
    }
    assert_eq!(err(req(&mut s, 1, XS_WATCH, 0, &z(&["data", "one-more"]))), "E2BIG");
    // The byte budget: long values in many nodes.
    let mut s = store_with_domains(&[3]);
    let val = "v".repeat(2000);
    let e = (0..1000).find_map(|i| write(&mut s, 3, 0, &alloc::format!("data/m{i}"), &val).err());
    assert_eq!(e.as_deref(), Some("ENOSPC"));
    assert!(s.usage(3).bytes <= s.quota.memory);
}

#[test]
fn hostile_payloads_get_einval_not_a_crash() {
    let mut s = store_with_domains(&[1]);
    for (ty, pl) in [
        (XS_READ, &b"data"[..]),            // unterminated
        (XS_READ, b"data\0extra\0"),        // too many strings
        (XS_READ, b"\xff\xfe\0"),           // not UTF-8
        (XS_READ, b"\0"),                   // empty path
        (XS_READ, b"/a//b\0"),
        (XS_WATCH, b"data\0"),              // token missing
        (XS_WRITE, b"no terminator"),
        (XS_GET_DOMAIN_PATH, b"x1\0"),
        (XS_GET_DOMAIN_PATH, b"99999999\0"),
        (XS_INTRODUCE, b"\0\0\0"),
        (XS_SET_PERMS, b"data\0"),         // no permission at all
        (XS_SET_PERMS, b"data\0r1"),       // unterminated permission
        (XS_WATCH_EVENT, b"x\0y\0"),       // not a request
        (XS_ERROR, b""),
        (XS_CONTROL, b"print\0x\0"),
        (12345, b""),
    ] {
        assert_eq!(err(req(&mut s, 1, ty, 0, pl)), "EINVAL", "type {ty} payload {pl:?}");
    }
    assert_eq!(err(read(&mut s, 1, 77, "name")), "ENOENT", "unknown transaction");
    assert_eq!(read(&mut s, 1, 0, "name").unwrap(), "guest1", "the store still works");
}

#[test]
fn a_directory_too_large_for_one_reply_is_e2big() {
    let mut s = Store::new();
    for i in 0..200 {
        write(&mut s, 0, 0, &alloc::format!("/tool/long-name-number-{i:04}-padding-padding"), "").unwrap();
    }
    assert_eq!(err(req(&mut s, 0, XS_DIRECTORY, 0, &z(&["/tool"]))), "E2BIG");
}

// ---- the ring ----------------------------------------------------------------

fn page() -> Box<XenstoreDomainInterface> {
    Box::new(XenstoreDomainInterface {
        req: [0; 1024],
        rsp: [0; 1024],
        req_cons: 0,
        req_prod: 0,
        rsp_cons: 0,
        rsp_prod: 0,
        server_features: 0,
        connection: 0,
        error: 0,
    })
}

/// What a guest does: bytes into `req` at `req_prod`.
fn guest_put(p: &mut XenstoreDomainInterface, bytes: &[u8]) {
    for &b in bytes {
        p.req[mask_xenstore_idx(p.req_prod)] = b;
        p.req_prod = p.req_prod.wrapping_add(1);
    }
}

fn guest_take(p: &mut XenstoreDomainInterface) -> Vec<u8> {
    let mut v = Vec::new();
    while p.rsp_cons != p.rsp_prod {
        v.push(p.rsp[mask_xenstore_idx(p.rsp_cons)]);
        p.rsp_cons = p.rsp_cons.wrapping_add(1);
    }
    v
}

fn msg(ty: u32, id: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = XsdSockmsg { r#type: ty, req_id: id, tx_id: 0, len: payload.len() as u32 }.to_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

#[test]
fn ring_messages_cross_the_wrap_and_arrive_in_pieces() {
    let mut p = page();
    p.req_cons = u32::MAX - 5; // indices wrap as u32 and across the ring
    p.req_prod = p.req_cons;
    p.rsp_cons = 1020;
    p.rsp_prod = 1020;
    // SAFETY: the page outlives the connection.
    let mut c = unsafe { Conn::new(1, &mut *p) };
    assert_eq!(p.server_features, XENSTORE_SERVER_FEATURE_ERROR);
    let m = msg(XS_READ, 42, b"name\0");
    guest_put(&mut p, &m[..10]);
    let (msgs, moved) = c.read();
    assert!(msgs.is_empty() && moved, "half a header waits");
    guest_put(&mut p, &m[10..]);
    let (msgs, _) = c.read();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].0.req_id, 42);
    assert_eq!(msgs[0].1, b"name\0");
    assert_eq!(p.req_cons, p.req_prod);
    c.send(XsdSockmsg { r#type: XS_READ, req_id: 42, tx_id: 0, len: 3 }, b"abc", false);
    assert!(c.flush());
    assert_eq!(guest_take(&mut p), msg(XS_READ, 42, b"abc"));
}

#[test]
fn a_header_past_payload_max_or_garbage_indices_break_only_that_connection() {
    let mut p = page();
    // SAFETY: the page outlives the connection.
    let mut c = unsafe { Conn::new(1, &mut *p) };
    let mut h = msg(XS_READ, 1, b"");
    h[12..16].copy_from_slice(&(XENSTORE_PAYLOAD_MAX as u32 + 1).to_le_bytes());
    guest_put(&mut p, &h);
    let (msgs, _) = c.read();
    assert!(msgs.is_empty());
    assert_eq!(c.broken, Some(Broken::Length(XENSTORE_PAYLOAD_MAX as u32 + 1)));
    assert_eq!(p.error, XENSTORE_ERROR_COMM);
    guest_put(&mut p, &msg(XS_READ, 2, b"name\0"));
    assert!(c.read().0.is_empty(), "ignored from then on");

    let mut p = page();
    // SAFETY: as above.
    let mut c = unsafe { Conn::new(2, &mut *p) };
    p.req_prod = 5000;
    assert!(c.read().0.is_empty());
    assert_eq!(c.broken, Some(Broken::RingIndex));
    assert_eq!(p.error, XENSTORE_ERROR_RINGIDX);

    let mut p = page();
    // SAFETY: as above.
    let mut c = unsafe { Conn::new(3, &mut *p) };
    p.rsp_prod = 7;
    p.rsp_cons = 2000;
    c.send(XsdSockmsg::default(), b"", false);
    assert!(!c.flush());
    assert_eq!(c.broken, Some(Broken::RingIndex));
}

#[test]
fn a_guest_that_never_reads_loses_watch_events_not_replies() {
    let mut p = page();
    // SAFETY: the page outlives the connection.
    let mut c = unsafe { Conn::new(1, &mut *p) };
    let ev = request::watch_event("data", "tok");
    while c.pending_out() <= OUT_LIMIT {
        c.send(XsdSockmsg { r#type: XS_WATCH_EVENT, ..Default::default() }, &ev, true);
        c.flush();
    }
    c.send(XsdSockmsg { r#type: XS_WATCH_EVENT, ..Default::default() }, &ev, true);
    assert_eq!(c.dropped, 1);
    let before = c.pending_out();
    c.send(XsdSockmsg { r#type: XS_READ, ..Default::default() }, b"x", false);
    assert!(c.pending_out() > before, "a reply is kept");
    guest_put(&mut p, &msg(XS_READ, 1, b"name\0"));
    assert!(c.read().0.is_empty(), "requests wait while the guest leaves replies unread");
}
