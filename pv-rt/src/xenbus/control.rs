//! The guest's half of the toolstack's shutdown protocol, as Linux's
//! `drivers/xen/manage.c`: the guest says it listens
//! (`control/feature-poweroff`, `feature-reboot` = "1") and watches
//! `control/shutdown`; when the toolstack writes a request there, the guest
//! takes it in a transaction (reads it, writes "" back, retries on
//! `EAGAIN`) and then does it.

use heapless::String;

use super::{Xenbus, XsError};

/// What the toolstack asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Poweroff,
    Reboot,
    /// Something this guest does not do (`suspend`, ...), as written.
    Other(String<32>),
}

const TOKEN: &str = "control/shutdown";

/// Announces the features and sets the watch.
pub fn listen(xs: &mut Xenbus) -> Result<(), XsError> {
    xs.write(0, "control/feature-poweroff", b"1")?;
    xs.write(0, "control/feature-reboot", b"1")?;
    xs.watch("control/shutdown", TOKEN)
}

/// Takes a request from `control/shutdown`, if one is there (Linux's
/// `shutdown_handler`).
pub fn take(xs: &mut Xenbus) -> Result<Option<Request>, XsError> {
    loop {
        let tx = xs.transaction_start()?;
        let v = match xs.read(tx, "control/shutdown") {
            Ok(v) => v,
            Err(e) => {
                let _ = xs.transaction_end(tx, false);
                return match e {
                    XsError::Store(ref s) if s == "ENOENT" => Ok(None),
                    e => Err(e),
                };
            }
        };
        if v.is_empty() {
            let _ = xs.transaction_end(tx, false);
            return Ok(None);
        }
        xs.write(tx, "control/shutdown", b"")?;
        match xs.transaction_end(tx, true) {
            Ok(()) => {}
            Err(XsError::Store(ref s)) if s == "EAGAIN" => continue,
            Err(e) => return Err(e),
        }
        let text = core::str::from_utf8(&v).unwrap_or("?");
        return Ok(Some(match text {
            "poweroff" | "halt" => Request::Poweroff,
            "reboot" => Request::Reboot,
            other => Request::Other(String::try_from(other).unwrap_or_default()),
        }));
    }
}

/// Sleeps on the watch until a request comes (or system time `deadline`,
/// 0 for none), and returns it.
pub fn wait(xs: &mut Xenbus, deadline: u64) -> Result<Option<Request>, XsError> {
    loop {
        let until = if deadline == 0 { crate::time::system_time() + 1_000_000_000 } else { deadline };
        let ev = xs.wait_watch(until);
        if ev.as_ref().is_some_and(|(_, t)| t.as_str() == TOKEN) {
            if let Some(r) = take(xs)? {
                return Ok(Some(r));
            }
        }
        if deadline != 0 && crate::time::system_time() >= deadline {
            return Ok(None);
        }
    }
}
