//! The store's operations, with xenstored's rules: permissions checked on
//! every node touched, quotas for unprivileged domains, transactions,
//! watches and the domains introduced to the store.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use hypercall_abi::DomId;

use super::path::{self, INTRODUCE_DOMAIN, RELEASE_DOMAIN};
use super::perms::{access, Access, Perm};
use super::tree::{Node, Tree, Tx, Usage};
use super::Error;

/// Per-domain limits (xenstored's `-N`, `-S`, `-W`, `-t` defaults of Xen
/// 4.17), plus a byte budget of our own: nodes, paths, values and watches
/// a domain makes must fit in it, so no guest can exhaust Dom0's heap.
#[derive(Clone, Copy, Debug)]
pub struct Quota {
    pub nodes: usize,
    pub entry_size: usize,
    pub watches: usize,
    pub transactions: usize,
    pub memory: usize,
}

pub const DEFAULT_QUOTA: Quota = Quota { nodes: 1000, entry_size: 2048, watches: 128, transactions: 10, memory: 128 << 10 };

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watch {
    pub conn: DomId,
    /// Absolute, or `@introduceDomain`/`@releaseDomain`.
    pub path: String,
    pub token: String,
    /// Registered relative to the domain's home: events say it so too.
    pub relative: bool,
}

/// A watch that fired: to connection `conn`, `path` and `token`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub conn: DomId,
    pub path: String,
    pub token: String,
}

/// A domain's store ring, as `XS_INTRODUCE` named it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Introduced {
    pub mfn: u64,
    pub port: u32,
}

pub struct Store {
    tree: Tree,
    txs: Vec<Tx>,
    next_tx: u32,
    watches: Vec<Watch>,
    introduced: BTreeMap<DomId, Introduced>,
    events: Vec<Event>,
    pub quota: Quota,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    /// The tree xenstored starts with: `/`, `/local`, `/local/domain`,
    /// `/tool`, `/vm`, owned by Dom0, nobody else may read them by default.
    pub fn new() -> Store {
        let mut s = Store::empty();
        s.add_roots();
        s
    }

    /// A store without even `/`, for a static; [`Store::add_roots`] makes
    /// it usable.
    pub const fn empty() -> Store {
        Store {
            tree: Tree::empty(),
            txs: Vec::new(),
            next_tx: 1,
            watches: Vec::new(),
            introduced: BTreeMap::new(),
            events: Vec::new(),
            quota: DEFAULT_QUOTA,
        }
    }

    pub fn add_roots(&mut self) {
        let dom0_only = vec![Perm::new(0, Access::None)];
        for p in ["/", "/local", "/local/domain", "/tool", "/vm"] {
            if self.tree.get(p).is_none() {
                self.tree.insert(p, Node { value: Vec::new(), perms: dom0_only.clone(), generation: 0 });
            }
        }
    }

    /// The watch events fired since the last call.
    pub fn take_events(&mut self) -> Vec<Event> {
        core::mem::take(&mut self.events)
    }

    pub fn is_introduced(&self, domid: DomId) -> bool {
        domid == 0 || self.introduced.contains_key(&domid)
    }

    pub fn introduced(&self) -> impl Iterator<Item = (DomId, Introduced)> + '_ {
        self.introduced.iter().map(|(d, i)| (*d, *i))
    }

    pub fn usage(&self, domid: DomId) -> Usage {
        self.tree.usage(domid)
    }

    pub fn node_count(&self) -> usize {
        self.tree.len()
    }

    /// Every path at or below `p` (Dom0's `xenstore-ls`).
    pub fn subtree(&self, p: &str) -> Vec<String> {
        self.tree.subtree(p)
    }

    pub fn watches_of(&self, conn: DomId) -> usize {
        self.watches.iter().filter(|w| w.conn == conn).count()
    }

    fn memory_of(&self, conn: DomId) -> usize {
        let w: usize = self.watches.iter().filter(|w| w.conn == conn).map(|w| w.path.len() + w.token.len() + 32).sum();
        self.tree.usage(conn).bytes + w
    }

    // ---- transactions ----------------------------------------------------

    fn tx_index(&self, conn: DomId, tx: u32) -> Result<Option<usize>, Error> {
        if tx == 0 {
            return Ok(None);
        }
        match self.txs.iter().position(|t| t.id == tx && t.conn == conn) {
            Some(i) => Ok(Some(i)),
            None => Err(Error::ENOENT),
        }
    }

    pub fn transaction_start(&mut self, conn: DomId, tx: u32) -> Result<u32, Error> {
        if tx != 0 {
            return Err(Error::EBUSY);
        }
        if conn != 0 && self.txs.iter().filter(|t| t.conn == conn).count() >= self.quota.transactions {
            return Err(Error::ENOSPC);
        }
        let mut id = self.next_tx;
        while id == 0 || self.txs.iter().any(|t| t.id == id) {
            id = id.wrapping_add(1);
        }
        self.next_tx = id.wrapping_add(1);
        self.txs.push(Tx::new(id, conn));
        Ok(id)
    }

    /// Ends transaction `tx`: commits it (`EAGAIN` if what it read changed
    /// meanwhile) or drops it.
    pub fn transaction_end(&mut self, conn: DomId, tx: u32, commit: bool) -> Result<(), Error> {
        let Some(i) = self.tx_index(conn, tx)? else { return Err(Error::ENOENT) };
        let t = self.txs.swap_remove(i);
        if !commit {
            return Ok(());
        }
        if t.conflicts(&self.tree) {
            return Err(Error::EAGAIN);
        }
        for (p, node, gone) in t.commit(&mut self.tree) {
            self.fire(&p, &node.perms, gone);
        }
        Ok(())
    }

    // ---- nodes through a transaction or not --------------------------------

    fn get(&mut self, tx: Option<usize>, p: &str) -> Option<Node> {
        match tx {
            Some(i) => self.txs[i].get(&self.tree, p).cloned(),
            None => self.tree.get(p).cloned(),
        }
    }

    fn put(&mut self, tx: Option<usize>, p: &str, node: Node) {
        self.put_quietly(tx, p, node, false)
    }

    /// `put`; `quiet` fires no watch (a parent a write creates on its way:
    /// xenstored fires once, for the node written).
    fn put_quietly(&mut self, tx: Option<usize>, p: &str, node: Node, quiet: bool) {
        match tx {
            Some(i) => self.txs[i].insert(&self.tree, p, node),
            None => {
                let perms = node.perms.clone();
                self.tree.insert(p, node);
                if !quiet {
                    self.fire(p, &perms, false);
                }
            }
        }
    }

    /// The node at `p` if `conn` may use it as asked; else `EACCES`, or
    /// `ENOENT` if it does not exist and `conn` may see that (xenstored's
    /// `errno_from_parents`: a missing node under an unreadable one is
    /// `EACCES`, so a guest cannot probe other domains' trees).
    fn checked(&mut self, conn: DomId, tx: Option<usize>, p: &str, write: bool) -> Result<Node, Error> {
        match self.get(tx, p) {
            Some(n) => {
                let a = access(&n.perms, conn);
                if (write && !a.can_write()) || (!write && !a.can_read()) {
                    return Err(Error::EACCES);
                }
                Ok(n)
            }
            None => Err(self.missing(conn, tx, p)),
        }
    }

    fn missing(&mut self, conn: DomId, tx: Option<usize>, p: &str) -> Error {
        let mut q = p;
        while q != "/" {
            q = path::parent(q);
            if let Some(n) = self.get(tx, q) {
                return if access(&n.perms, conn).can_read() { Error::ENOENT } else { Error::EACCES };
            }
        }
        Error::ENOENT
    }

    pub fn read(&mut self, conn: DomId, tx: u32, p: &str) -> Result<Vec<u8>, Error> {
        let tx = self.tx_index(conn, tx)?;
        let p = path::canonical(conn, p)?;
        Ok(self.checked(conn, tx, &p, false)?.value)
    }

    pub fn directory(&mut self, conn: DomId, tx: u32, p: &str) -> Result<Vec<String>, Error> {
        let t = self.tx_index(conn, tx)?;
        let p = path::canonical(conn, p)?;
        self.checked(conn, t, &p, false)?;
        Ok(match t {
            Some(i) => self.txs[i].children(&self.tree, &p),
            None => self.tree.children(&p),
        })
    }

    pub fn get_perms(&mut self, conn: DomId, tx: u32, p: &str) -> Result<Vec<Perm>, Error> {
        let tx = self.tx_index(conn, tx)?;
        let p = path::canonical(conn, p)?;
        Ok(self.checked(conn, tx, &p, false)?.perms)
    }

    /// `XS_WRITE` (`value: Some`) and `XS_MKDIR` (`None`: an existing node
    /// is left as it is). Missing parents are created; every new node
    /// inherits its parent's permissions, but belongs to the unprivileged
    /// domain that made it (xenstored's rule, which also charges it).
    pub fn write(&mut self, conn: DomId, tx: u32, p: &str, value: Option<&[u8]>) -> Result<(), Error> {
        let t = self.tx_index(conn, tx)?;
        let p = path::canonical(conn, p)?;
        let len = value.map_or(0, |v| v.len());
        if conn != 0 && len > self.quota.entry_size {
            return Err(Error::ENOSPC);
        }
        if let Some(mut n) = self.get(t, &p) {
            if !access(&n.perms, conn).can_write() {
                return Err(Error::EACCES);
            }
            let Some(v) = value else { return Ok(()) };
            if conn != 0 && n.owner() == conn && self.over_memory(conn, t, v.len().saturating_sub(n.value.len())) {
                return Err(Error::ENOSPC);
            }
            n.value = v.to_vec();
            self.put(t, &p, n);
            return Ok(());
        }
        // The nearest node that exists must be writable; then the missing
        // ones are made from the top down.
        let mut missing: Vec<&str> = vec![p.as_str()];
        let mut q = p.as_str();
        let parent = loop {
            q = path::parent(q);
            if let Some(n) = self.get(t, q) {
                break n;
            }
            missing.push(q);
        };
        if !access(&parent.perms, conn).can_write() {
            return Err(Error::EACCES);
        }
        if conn != 0 {
            let used = self.usage(conn).nodes + t.map_or(0, |i| self.txs[i].added.nodes);
            let bytes: usize = missing.iter().map(|m| m.len() + 64).sum::<usize>() + len;
            if used + missing.len() > self.quota.nodes || self.over_memory(conn, t, bytes) {
                return Err(Error::ENOSPC);
            }
        }
        let mut perms = parent.perms;
        if conn != 0 {
            if let Some(owner) = perms.first_mut() {
                owner.id = conn;
            }
        }
        for (i, m) in missing.iter().rev().enumerate() {
            let last = i + 1 == missing.len();
            let v = if last { value.unwrap_or(&[]).to_vec() } else { Vec::new() };
            self.put_quietly(t, m, Node { value: v, perms: perms.clone(), generation: 0 }, !last);
        }
        Ok(())
    }

    fn over_memory(&self, conn: DomId, tx: Option<usize>, more: usize) -> bool {
        let pending = tx.map_or(0, |i| self.txs[i].added.bytes);
        self.memory_of(conn) + pending + more > self.quota.memory
    }

    /// `XS_RM`: the node and all below it. A node already gone is fine if
    /// its parent exists (xenstored's rule); `/` cannot go.
    pub fn rm(&mut self, conn: DomId, tx: u32, p: &str) -> Result<(), Error> {
        let t = self.tx_index(conn, tx)?;
        let p = path::canonical(conn, p)?;
        if p == "/" {
            return Err(Error::EINVAL);
        }
        match self.checked(conn, t, &p, true) {
            Ok(_) => {}
            Err(Error::ENOENT) if self.get(t, path::parent(&p)).is_some() => return Ok(()),
            Err(e) => return Err(e),
        }
        match t {
            Some(i) => {
                self.txs[i].remove(&self.tree, &p);
            }
            None => {
                let gone = self.tree.remove(&p);
                if let Some((_, n)) = gone.first() {
                    let perms = n.perms.clone();
                    self.fire(&p, &perms, true);
                }
            }
        }
        Ok(())
    }

    /// `XS_SET_PERMS`: needs write access; only Dom0 may give a node away.
    pub fn set_perms(&mut self, conn: DomId, tx: u32, p: &str, perms: Vec<Perm>) -> Result<(), Error> {
        let t = self.tx_index(conn, tx)?;
        let p = path::canonical(conn, p)?;
        let Some(first) = perms.first() else { return Err(Error::EINVAL) };
        let mut n = self.checked(conn, t, &p, true)?;
        if conn != 0 && first.id != n.owner() {
            return Err(Error::EPERM);
        }
        if conn != 0 && self.over_memory(conn, t, 8 * perms.len()) {
            return Err(Error::ENOSPC);
        }
        n.perms = perms;
        self.put(t, &p, n);
        Ok(())
    }

    // ---- watches -------------------------------------------------------------

    pub fn watch(&mut self, conn: DomId, p: &str, token: &str) -> Result<(), Error> {
        let abs = path::canonical_watch(conn, p)?;
        let relative = !p.starts_with('/') && !p.starts_with('@');
        if self.watches.iter().any(|w| w.conn == conn && w.path == abs && w.token == token) {
            return Err(Error::EEXIST);
        }
        if conn != 0 && (self.watches_of(conn) >= self.quota.watches || self.memory_of(conn) + abs.len() + token.len() + 32 > self.quota.memory) {
            return Err(Error::E2BIG);
        }
        let w = Watch { conn, path: abs, token: String::from(token), relative };
        // xenstored fires a new watch once at once, with the path as given.
        self.events.push(Event { conn, path: String::from(p), token: w.token.clone() });
        self.watches.push(w);
        Ok(())
    }

    pub fn unwatch(&mut self, conn: DomId, p: &str, token: &str) -> Result<(), Error> {
        let abs = path::canonical_watch(conn, p)?;
        match self.watches.iter().position(|w| w.conn == conn && w.path == abs && w.token == token) {
            Some(i) => {
                self.watches.remove(i);
                Ok(())
            }
            None => Err(Error::ENOENT),
        }
    }

    pub fn reset_watches(&mut self, conn: DomId) {
        self.watches.retain(|w| w.conn != conn);
    }

    /// Fires the watches that `p`'s change concerns: those on `p` or above
    /// it, and with `recurse` (a removal) those below it. Only connections
    /// that may read the node hear of it.
    fn fire(&mut self, p: &str, perms: &[Perm], recurse: bool) {
        for w in &self.watches {
            let at = if path::is_at_or_below(p, &w.path) {
                p
            } else if recurse && path::is_at_or_below(&w.path, p) {
                w.path.as_str()
            } else {
                continue;
            };
            if !access(perms, w.conn).can_read() {
                continue;
            }
            let shown = if w.relative { path::relative_to(&path::domain_path(w.conn), at) } else { at };
            self.events.push(Event { conn: w.conn, path: String::from(shown), token: w.token.clone() });
        }
    }

    fn fire_special(&mut self, name: &str) {
        for w in self.watches.iter().filter(|w| w.path == name) {
            self.events.push(Event { conn: w.conn, path: String::from(name), token: w.token.clone() });
        }
    }

    // ---- domains ----------------------------------------------------------------

    /// `XS_INTRODUCE`, from Dom0 only.
    pub fn introduce(&mut self, conn: DomId, domid: DomId, intro: Introduced) -> Result<(), Error> {
        if conn != 0 {
            return Err(Error::EACCES);
        }
        if domid == 0 {
            return Err(Error::EINVAL);
        }
        match self.introduced.get(&domid) {
            Some(i) if *i == intro => return Ok(()),
            Some(_) => return Err(Error::EEXIST),
            None => {}
        }
        self.introduced.insert(domid, intro);
        self.fire_special(INTRODUCE_DOMAIN);
        Ok(())
    }

    /// `XS_RELEASE`, from Dom0 only: the domain's watches and transactions
    /// go with it; `@releaseDomain` fires.
    pub fn release(&mut self, conn: DomId, domid: DomId) -> Result<(), Error> {
        if conn != 0 {
            return Err(Error::EACCES);
        }
        if self.introduced.remove(&domid).is_none() {
            return Err(Error::ENOENT);
        }
        self.watches.retain(|w| w.conn != domid);
        self.txs.retain(|t| t.conn != domid);
        self.events.retain(|e| e.conn != domid);
        self.fire_special(RELEASE_DOMAIN);
        Ok(())
    }

    /// The path Dom0 names in `GET_DOMAIN_PATH`.
    pub fn domain_path(domid: DomId) -> String {
        format!("/local/domain/{}", domid)
    }
}
