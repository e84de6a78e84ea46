//! `xl block-attach`, `block-detach`, `block-list`, as xl has them, over
//! blkback's images in Dom0's memory.
//!
//! - `block-attach <Domain> <disk-spec>`: the spec as in `disk=` (its words
//!   are joined with commas, so `format=raw, vdev=xvdb, target=img` may be
//!   given as one quoted word or several); the guest's frontend finds the
//!   new device under `device/vbd` (a watch) and connects.
//! - `block-detach [-f] <Domain> <DevId|vdev>`: the back end goes to
//!   Closing and waits up to 5 s for the frontend to close; a frontend that
//!   does not is left attached unless `-f` (then removed anyway, as xl's
//!   `--force`).
//! - `block-list <Domain>`: xl's columns `Vdev BE handle state evt-ch
//!   ring-ref BE-path`.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use hypercall_abi::xs_wire::xenbus_state::*;
use pv_rt::println;

use crate::blkback::spec;
use crate::xl::Toolstack;

fn num(v: Result<Vec<u8>, crate::xenstore::Error>) -> i64 {
    v.ok().and_then(|v| String::from_utf8(v).ok()).and_then(|s| s.trim().parse().ok()).unwrap_or(-1)
}

impl Toolstack {
    pub(crate) fn cmd_block(&mut self, cmd: &str, args: &[&str]) -> Result<(), ()> {
        match cmd {
            "block-attach" => self.block_attach(args),
            "block-detach" => self.block_detach(args),
            _ => self.block_list(args),
        }
    }

    fn our_domain(&mut self, cmd: &str, dom: &str) -> Result<u16, ()> {
        let d = self.resolve(dom)?;
        if d == 0 || !self.is_ours(d) {
            println!("xl: {}: domain {} is not one of this toolstack's guests", cmd, dom);
            return Err(());
        }
        Ok(d)
    }

    fn block_attach(&mut self, args: &[&str]) -> Result<(), ()> {
        let [dom, words @ ..] = args else {
            println!("usage: xl block-attach <Domain> <disk-spec>");
            return Err(());
        };
        if words.is_empty() {
            println!("usage: xl block-attach <Domain> <disk-spec>");
            return Err(());
        }
        let d = self.our_domain("block-attach", dom)?;
        // Quotes keep a spec with spaces in one word; they are not part of it.
        let unquoted: Vec<&str> = words.iter().map(|w| w.trim_matches(|c| c == '\'' || c == '"')).collect();
        let text = unquoted.join(",");
        let s = match spec::parse(&text) {
            Ok(s) => s,
            Err(why) => {
                println!("xl: block-attach: '{}': {}", text, why);
                return Err(());
            }
        };
        let (blk, xs) = self.blkback();
        if let Err(why) = blk.attach(xs, d, &s) {
            println!("xl: block-attach: {}", why);
            return Err(());
        }
        Ok(())
    }

    fn block_detach(&mut self, args: &[&str]) -> Result<(), ()> {
        let (force, rest) = match args {
            ["-f" | "--force", rest @ ..] => (true, rest),
            _ => (false, args),
        };
        let [dom, dev] = rest else {
            println!("usage: xl block-detach [-f] <Domain> <DevId|vdev>");
            return Err(());
        };
        let d = self.our_domain("block-detach", dom)?;
        let Some(devid) = dev.parse::<u32>().ok().or_else(|| spec::vdev_number(dev)) else {
            println!("xl: block-detach: '{}' is not a device id or vdev name", dev);
            return Err(());
        };
        let b = format!("/local/domain/0/backend/vbd/{}/{}", d, devid);
        let f = format!("/local/domain/{}/device/vbd/{}", d, devid);
        let (_, xs) = self.blkback();
        if xs.read(0, &b).is_err() {
            println!("xl: block-detach: domain {} has no device {}", dom, dev);
            return Err(());
        }
        let _ = xs.write(0, &format!("{}/online", b), b"0");
        let _ = xs.write(0, &format!("{}/state", b), format!("{}", XenbusStateClosing).as_bytes());
        let deadline = self.now_ns() + 5_000_000_000;
        loop {
            let state = num(self.blkback().1.read(0, &format!("{}/state", f)));
            if state == XenbusStateClosed as i64 || state < 0 || self.now_ns() >= deadline {
                let closed = state == XenbusStateClosed as i64 || state < 0;
                if !closed && !force {
                    println!("xl: block-detach: the frontend of {} did not close within 5 s; 'xl block-detach -f' removes it anyway", dev);
                    return Err(());
                }
                break;
            }
            self.serve_until(deadline);
        }
        let (blk, xs) = self.blkback();
        blk.detach(xs, d, Some(devid));
        Ok(())
    }

    fn block_list(&mut self, args: &[&str]) -> Result<(), ()> {
        let [dom] = args else {
            println!("usage: xl block-list <Domain>");
            return Err(());
        };
        let d = self.our_domain("block-list", dom)?;
        println!("{:<5} {:<3} {:<6} {:<5} {:<6} {:<8} {:<30}", "Vdev", "BE", "handle", "state", "evt-ch", "ring-ref", "BE-path");
        let (blk, xs) = self.blkback();
        let devs: Vec<u32> = blk.list(d).into_iter().map(|(devid, ..)| devid).collect();
        for devid in devs {
            let f = format!("/local/domain/{}/device/vbd/{}", d, devid);
            let state = num(xs.read(0, &format!("{}/state", f)));
            let evtch = num(xs.read(0, &format!("{}/event-channel", f)));
            let rref = num(xs.read(0, &format!("{}/ring-ref", f)));
            let be = format!("/local/domain/0/backend/vbd/{}/{}", d, devid);
            println!("{:<5} {:<3} {:<6} {:<5} {:<6} {:<8} {:<30}", devid, 0, devid, state, evtch, rref, be);
        }
        Ok(())
    }
}
