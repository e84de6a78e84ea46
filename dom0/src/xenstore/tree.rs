//! The store's nodes and its transactions.
//!
//! Nodes live in one ordered map keyed by absolute path; a node's children
//! are the keys just below it, and every node's parent exists. Each change
//! stamps the node, and the parent of a node created or removed, with a new
//! generation. A transaction keeps its own changes apart (an overlay over
//! the tree) and the generation of every node it looked at or changed, as
//! found in the tree; it commits only if none of those changed meanwhile,
//! else the client gets `EAGAIN` and starts over, as with xenstored.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use hypercall_abi::DomId;

use super::path;
use super::perms::Perm;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub value: Vec<u8>,
    pub perms: Vec<Perm>,
    pub generation: u64,
}

impl Node {
    pub fn owner(&self) -> DomId {
        self.perms.first().map_or(0, |p| p.id)
    }
    /// What the node costs its owner's memory quota.
    pub fn cost(&self, path: &str) -> usize {
        path.len() + self.value.len() + 8 * self.perms.len() + 32
    }
}

/// Nodes and bytes a domain owns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub nodes: usize,
    pub bytes: usize,
}

#[derive(Default)]
pub struct Tree {
    nodes: BTreeMap<String, Node>,
    generation: u64,
    usage: BTreeMap<DomId, Usage>,
}

/// The key range of the nodes strictly below `p`.
fn below(p: &str) -> (String, String) {
    let mut lo = String::from(p);
    if p != "/" {
        lo.push('/');
    }
    let mut hi = lo.clone();
    hi.pop();
    hi.push('0'); // the character after '/'
    (lo, hi)
}

/// The name of `key`'s component right below `dir`, if `key` is a child.
fn child_name<'a>(dir: &str, key: &'a str) -> Option<&'a str> {
    let rest = if dir == "/" { key.strip_prefix('/')? } else { key.strip_prefix(dir)?.strip_prefix('/')? };
    (!rest.is_empty() && !rest.contains('/')).then_some(rest)
}

impl Tree {
    pub const fn empty() -> Tree {
        Tree { nodes: BTreeMap::new(), generation: 0, usage: BTreeMap::new() }
    }

    pub fn new(root_perms: Vec<Perm>) -> Tree {
        let mut t = Tree::empty();
        t.insert("/", Node { value: Vec::new(), perms: root_perms, generation: 0 });
        t
    }

    pub fn get(&self, p: &str) -> Option<&Node> {
        self.nodes.get(p)
    }

    pub fn generation_of(&self, p: &str) -> Option<u64> {
        self.nodes.get(p).map(|n| n.generation)
    }

    pub fn usage(&self, domid: DomId) -> Usage {
        self.usage.get(&domid).copied().unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    fn charge(&mut self, owner: DomId, nodes: isize, bytes: isize) {
        let u = self.usage.entry(owner).or_default();
        u.nodes = u.nodes.saturating_add_signed(nodes);
        u.bytes = u.bytes.saturating_add_signed(bytes);
    }

    /// Creates or replaces a node (its parent must exist), with a new
    /// generation; a new node's parent gets the generation too.
    pub fn insert(&mut self, p: &str, mut node: Node) {
        self.generation += 1;
        node.generation = self.generation;
        let cost = node.cost(p) as isize;
        self.charge(node.owner(), 1, cost);
        match self.nodes.insert(String::from(p), node) {
            Some(old) => self.charge(old.owner(), -1, -(old.cost(p) as isize)),
            None if p != "/" => {
                if let Some(parent) = self.nodes.get_mut(path::parent(p)) {
                    parent.generation = self.generation;
                }
            }
            None => {}
        }
    }

    /// Removes `p` and everything below it; returns the removed nodes'
    /// paths, `p` first.
    pub fn remove(&mut self, p: &str) -> Vec<(String, Node)> {
        let mut gone = Vec::new();
        let Some(node) = self.nodes.remove(p) else { return gone };
        self.generation += 1;
        let (lo, hi) = below(p);
        let keys: Vec<String> = self.nodes.range(lo..hi).map(|(k, _)| k.clone()).collect();
        gone.push((String::from(p), node));
        for k in keys {
            if let Some(n) = self.nodes.remove(&k) {
                gone.push((k, n));
            }
        }
        for (k, n) in &gone {
            self.charge(n.owner(), -1, -(n.cost(k) as isize));
        }
        if let Some(parent) = self.nodes.get_mut(path::parent(p)) {
            parent.generation = self.generation;
        }
        gone
    }

    /// The names of `p`'s children, in order.
    pub fn children(&self, p: &str) -> Vec<String> {
        let (lo, hi) = below(p);
        self.nodes.range(lo..hi).filter_map(|(k, _)| child_name(p, k)).map(String::from).collect()
    }

    /// Every path at or below `p`, in order (for `xenstore-ls`).
    pub fn subtree(&self, p: &str) -> Vec<String> {
        let (lo, hi) = below(p);
        let mut v: Vec<String> = self.nodes.get(p).map(|_| String::from(p)).into_iter().collect();
        v.extend(self.nodes.range(lo..hi).map(|(k, _)| k.clone()));
        v
    }
}

/// A transaction: its changes (`None`: removed) over the tree, and the
/// generations it saw there (`None`: absent).
pub struct Tx {
    pub id: u32,
    pub conn: DomId,
    changes: BTreeMap<String, Option<Node>>,
    seen: BTreeMap<String, Option<u64>>,
    /// What the changes add to the connection's usage.
    pub added: Usage,
}

impl Tx {
    pub fn new(id: u32, conn: DomId) -> Tx {
        Tx { id, conn, changes: BTreeMap::new(), seen: BTreeMap::new(), added: Usage::default() }
    }

    fn see(&mut self, tree: &Tree, p: &str) {
        if !self.seen.contains_key(p) {
            self.seen.insert(String::from(p), tree.generation_of(p));
        }
    }

    pub fn get<'a>(&'a mut self, tree: &'a Tree, p: &str) -> Option<&'a Node> {
        if self.changes.contains_key(p) {
            return self.changes.get(p).and_then(|n| n.as_ref());
        }
        self.see(tree, p);
        tree.get(p)
    }

    pub fn children(&mut self, tree: &Tree, p: &str) -> Vec<String> {
        self.see(tree, p);
        let mut names: BTreeMap<String, bool> = tree.children(p).into_iter().map(|n| (n, true)).collect();
        let (lo, hi) = below(p);
        for (k, n) in self.changes.range(lo..hi) {
            if let Some(name) = child_name(p, k) {
                names.insert(String::from(name), n.is_some());
            }
        }
        names.into_iter().filter(|(_, there)| *there).map(|(n, _)| n).collect()
    }

    pub fn insert(&mut self, tree: &Tree, p: &str, node: Node) {
        self.see(tree, p);
        if p != "/" {
            self.see(tree, path::parent(p));
        }
        if self.conn == node.owner() {
            self.added.nodes += 1;
            self.added.bytes += node.cost(p);
        }
        self.changes.insert(String::from(p), Some(node));
    }

    /// Removes `p` and what lies below it, in the tree or in the changes.
    pub fn remove(&mut self, tree: &Tree, p: &str) -> Vec<(String, Node)> {
        let mut gone = Vec::new();
        let Some(node) = self.get(tree, p).cloned() else { return gone };
        gone.push((String::from(p), node));
        let (lo, hi) = below(p);
        let mut keys: Vec<String> = tree.nodes.range(lo.clone()..hi.clone()).map(|(k, _)| k.clone()).collect();
        keys.extend(self.changes.range(lo..hi).map(|(k, _)| k.clone()));
        keys.sort();
        keys.dedup();
        for k in keys {
            if let Some(n) = self.get(tree, &k).cloned() {
                gone.push((k.clone(), n));
            }
        }
        for (k, _) in &gone {
            self.see(tree, k);
            self.changes.insert(k.clone(), None);
        }
        if p != "/" {
            self.see(tree, path::parent(p));
        }
        gone
    }

    /// Whether the tree still holds what the transaction saw.
    pub fn conflicts(&self, tree: &Tree) -> bool {
        self.seen.iter().any(|(p, g)| tree.generation_of(p) != *g)
    }

    /// Applies the changes to the tree; returns each changed path with the
    /// node as it is now (or as it was, if removed) and whether it went.
    pub fn commit(self, tree: &mut Tree) -> Vec<(String, Node, bool)> {
        let mut out = Vec::new();
        for (p, change) in self.changes {
            match change {
                Some(n) => {
                    tree.insert(&p, n.clone());
                    out.push((p, n, false));
                }
                None => {
                    for (k, n) in tree.remove(&p) {
                        out.push((k, n, true));
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xenstore::perms::Access;

    fn node(v: &str) -> Node {
        Node { value: v.as_bytes().to_vec(), perms: alloc::vec![Perm::new(0, Access::None)], generation: 0 }
    }

    fn tree() -> Tree {
        let mut t = Tree::new(alloc::vec![Perm::new(0, Access::None)]);
        t.insert("/a", node("1"));
        t.insert("/a/b", node("2"));
        t.insert("/a/b-c", node("3"));
        t.insert("/a/b/d", node("4"));
        t.insert("/ab", node("5"));
        t
    }

    #[test]
    fn children_are_direct_and_stop_at_component_boundaries() {
        let t = tree();
        assert_eq!(t.children("/a"), ["b", "b-c"]);
        assert_eq!(t.children("/"), ["a", "ab"]);
        assert_eq!(t.subtree("/a/b"), ["/a/b", "/a/b/d"]);
    }

    #[test]
    fn remove_takes_the_subtree_and_keeps_usage_exact() {
        let mut t = tree();
        let before = t.usage(0);
        let gone = t.remove("/a/b");
        assert_eq!(gone.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(), ["/a/b", "/a/b/d"]);
        assert!(t.get("/a/b-c").is_some());
        assert_eq!(t.usage(0).nodes, before.nodes - 2);
        t.remove("/");
        assert_eq!(t.usage(0), Usage::default());
    }

    #[test]
    fn a_transaction_sees_its_own_changes_and_conflicts_on_others() {
        let mut t = tree();
        let mut tx = Tx::new(1, 0);
        assert_eq!(tx.get(&t, "/a").unwrap().value, b"1");
        tx.insert(&t, "/a/new", node("n"));
        assert_eq!(tx.children(&t, "/a"), ["b", "b-c", "new"]);
        assert!(t.get("/a/new").is_none(), "invisible outside before commit");
        assert!(!tx.conflicts(&t));
        t.insert("/a", node("changed"));
        assert!(tx.conflicts(&t), "a node it read changed");
    }

    #[test]
    fn a_child_created_elsewhere_conflicts_with_a_directory_listing() {
        let mut t = tree();
        let mut tx = Tx::new(1, 0);
        tx.children(&t, "/a");
        t.insert("/a/x", node(""));
        assert!(tx.conflicts(&t));
    }

    #[test]
    fn commit_applies_creations_and_removals() {
        let mut t = tree();
        let mut tx = Tx::new(1, 0);
        tx.insert(&t, "/z", node("z"));
        tx.remove(&t, "/a");
        assert!(tx.children(&t, "/").contains(&String::from("z")));
        assert!(!tx.children(&t, "/").contains(&String::from("a")));
        let changed = tx.commit(&mut t);
        assert!(changed.iter().any(|(p, _, gone)| p == "/a/b/d" && *gone));
        assert!(t.get("/z").is_some() && t.get("/a/b").is_none());
    }
}
