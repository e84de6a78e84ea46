//! The toolstack's side of the store: the nodes libxl writes for each
//! domain it creates (`libxl__domain_make`, `libxl__build_post`, the
//! console's frontend), its `XS_INTRODUCE`, and their removal when the
//! domain goes. Permissions as libxl sets them: the domain's home and most
//! directories in it are Dom0's, readable by the domain (`roperm`); the
//! ones a guest must write (`control/shutdown`, `data`, `drivers`,
//! `feature`, `attr`, `error`, `messages`) are the domain's (`rwperm`); the
//! console frontend is the domain's, readable by its back end (Dom0).

use alloc::format;
use alloc::string::String;

use hypercall_abi::{DomId, EvtchnPort};

use crate::config::DomainConfig;
use crate::xenstore::daemon::Xenstored;
use crate::xenstore::perms::{Access, Perm};
use crate::xenstore::Error;

/// What the store is told about a new domain.
pub struct NewDomain<'a> {
    pub domid: DomId,
    pub cfg: &'a DomainConfig,
    pub store_mfn: u64,
    pub store_port: EvtchnPort,
    pub console_mfn: u64,
    pub console_port: EvtchnPort,
}

/// libxl makes the domain's `/vm` entry from its UUID; ours has none of
/// its own, so the UUID is made from the domain id and a counter.
fn uuid(domid: DomId, serial: u64) -> String {
    format!("00000000-0000-4000-8000-{:04x}{:08x}", domid, serial as u32)
}

/// Dom0's own entry, at start of day (as `xen-init-dom0` writes it).
pub fn init_dom0(xs: &mut Xenstored) -> Result<(), Error> {
    xs.write(0, "/local/domain/0/name", b"Domain-0")?;
    xs.write(0, "/local/domain/0/domid", b"0")?;
    Ok(())
}

/// Writes the domain's nodes in one transaction, retried on `EAGAIN`, then
/// introduces the domain to the store.
pub fn create(xs: &mut Xenstored, d: &NewDomain, serial: u64) -> Result<(), Error> {
    loop {
        let tx = xs.transaction_start()?;
        match write_tree(xs, tx, d, serial) {
            Ok(()) => {}
            Err(e) => {
                let _ = xs.transaction_end(tx, false);
                return Err(e);
            }
        }
        match xs.transaction_end(tx, true) {
            Ok(()) => break,
            Err(Error::EAGAIN) => continue,
            Err(e) => return Err(e),
        }
    }
    xs.introduce(d.domid, d.store_mfn, d.store_port)
}

fn write_tree(xs: &mut Xenstored, tx: u32, d: &NewDomain, serial: u64) -> Result<(), Error> {
    let id = d.domid;
    let home = format!("/local/domain/{}", id);
    let vm = format!("/vm/{}", uuid(id, serial));
    let roperm = [Perm::new(0, Access::None), Perm::new(id, Access::Read)];
    let rwperm = [Perm::new(id, Access::None)];
    let frontend = [Perm::new(id, Access::None), Perm::new(0, Access::Read)];

    let _ = xs.rm(tx, &home);
    xs.mkdir(tx, &home)?;
    xs.set_perms(tx, &home, &roperm)?;
    xs.mkdir(tx, &vm)?;
    xs.set_perms(tx, &vm, &roperm)?;
    for dir in ["cpu", "memory", "device", "control"] {
        let p = format!("{}/{}", home, dir);
        xs.mkdir(tx, &p)?;
        xs.set_perms(tx, &p, &roperm)?;
    }
    for dir in ["control/shutdown", "control/feature-poweroff", "control/feature-reboot", "control/feature-suspend", "control/feature-s3", "control/feature-s4", "control/sysrq", "data", "drivers", "feature", "attr", "error", "messages"] {
        let p = format!("{}/{}", home, dir);
        xs.mkdir(tx, &p)?;
        xs.set_perms(tx, &p, &rwperm)?;
    }
    let put = |xs: &mut Xenstored, k: &str, v: &str| xs.write(tx, &format!("{}/{}", home, k), v.as_bytes());
    put(xs, "vm", &vm)?;
    put(xs, "name", &d.cfg.name)?;
    put(xs, "domid", &format!("{}", id))?;
    put(xs, "memory/static-max", &format!("{}", d.cfg.maxmem * 1024))?;
    put(xs, "memory/target", &format!("{}", d.cfg.memory * 1024))?;
    put(xs, "store/port", &format!("{}", d.store_port))?;
    put(xs, "store/ring-ref", &format!("{}", d.store_mfn))?;
    for v in 0..d.cfg.vcpus {
        put(xs, &format!("cpu/{}/availability", v), "online")?;
    }
    let con = format!("{}/console", home);
    xs.mkdir(tx, &con)?;
    xs.set_perms(tx, &con, &frontend)?;
    put(xs, "console/ring-ref", &format!("{}", d.console_mfn))?;
    put(xs, "console/port", &format!("{}", d.console_port))?;
    put(xs, "console/limit", "1048576")?;
    put(xs, "console/type", "xenconsoled")?;
    put(xs, "console/output", "pty")?;
    let vmput = |xs: &mut Xenstored, k: &str, v: &str| xs.write(tx, &format!("{}/{}", vm, k), v.as_bytes());
    vmput(xs, "name", &d.cfg.name)?;
    vmput(xs, "uuid", &uuid(id, serial))?;
    Ok(())
}

/// The domain went: the store forgets it (`XS_RELEASE`, `@releaseDomain`)
/// and its nodes are removed (libxl's `libxl__domain_destroy` does both).
pub fn remove(xs: &mut Xenstored, domid: DomId) {
    let home = format!("/local/domain/{}", domid);
    let vm = xs.read(0, &format!("{}/vm", home)).ok().and_then(|v| String::from_utf8(v).ok());
    let _ = xs.release(domid);
    let _ = xs.rm(0, &home);
    if let Some(vm) = vm.filter(|v| v.starts_with("/vm/")) {
        let _ = xs.rm(0, &vm);
    }
}
