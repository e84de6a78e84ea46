//! Files the host sent with a request (`xl create` from `scripts/xl.sh`
//! sends the config file and the kernel it names): kept by name, looked up
//! before the initrd's, so guests need not be baked into the initrd.
//!
//! Bounded: at most [`TOTAL_MAX`] bytes. A file sent again under the same
//! name replaces the old one; to make room, the files sent longest ago go
//! first, except those a running guest may need again (its kernel, for a
//! restart).

use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::ops::Deref;

/// What Dom0 keeps of the host's files (its heap is 16 MiB, and a request
/// being read takes up to twice `xl_proto::FRAME_MAX` more).
pub const TOTAL_MAX: usize = 4 << 20;

/// A file's bytes: from the initrd (for good) or from the host (shared
/// with the store, so a command may hold it while the store changes).
#[derive(Clone)]
pub enum FileData {
    Initrd(&'static [u8]),
    Host(Rc<Vec<u8>>),
}

impl Deref for FileData {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            FileData::Initrd(d) => d,
            FileData::Host(d) => d,
        }
    }
}

#[derive(Default)]
pub struct HostFiles {
    /// Oldest first.
    files: Vec<(String, Rc<Vec<u8>>)>,
}

impl HostFiles {
    pub const fn new() -> Self {
        HostFiles { files: Vec::new() }
    }

    pub fn get(&self, name: &str) -> Option<Rc<Vec<u8>>> {
        self.files.iter().find(|(n, _)| n == name).map(|(_, d)| d.clone())
    }

    fn total(&self) -> usize {
        self.files.iter().map(|(_, d)| d.len()).sum()
    }

    /// Keeps `data` as `name`; `in_use(name)` protects a file from being
    /// dropped to make room. `Err` when it cannot fit.
    #[allow(clippy::result_unit_err)]
    pub fn put(&mut self, name: String, data: Vec<u8>, in_use: impl Fn(&str) -> bool) -> Result<(), ()> {
        if data.len() > TOTAL_MAX {
            return Err(());
        }
        self.files.retain(|(n, _)| *n != name);
        let mut i = 0;
        while self.total() + data.len() > TOTAL_MAX && i < self.files.len() {
            if in_use(&self.files[i].0) {
                i += 1;
            } else {
                self.files.remove(i);
            }
        }
        if self.total() + data.len() > TOTAL_MAX {
            return Err(());
        }
        // Moved, not copied: the request's bytes become the store's.
        self.files.push((name, Rc::new(data)));
        Ok(())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, usize)> {
        self.files.iter().map(|(n, d)| (n.as_str(), d.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn newest_copy_wins_and_old_files_make_room_unless_in_use() {
        let mut h = HostFiles::new();
        h.put("a.cfg".into(), b"one".to_vec(), |_| false).unwrap();
        h.put("a.cfg".into(), b"two".to_vec(), |_| false).unwrap();
        assert_eq!(&*h.get("a.cfg").unwrap(), b"two");
        let big = TOTAL_MAX / 2;
        h.put("k1".into(), vec![1; big], |_| false).unwrap();
        h.put("k2".into(), vec![2; big - 3], |_| false).unwrap();
        // Full: k3 needs room; k1 is a running guest's kernel, a.cfg is not.
        h.put("k3".into(), vec![3; 3], |n| n == "k1").unwrap();
        assert!(h.get("a.cfg").is_none());
        assert!(h.get("k1").is_some());
        // Nothing can go: refused, nothing lost.
        assert!(h.put("k4".into(), vec![4; big], |_| true).is_err());
        assert!(h.get("k2").is_some() && h.get("k3").is_some());
        assert!(h.put("huge".into(), vec![0; TOTAL_MAX + 1], |_| false).is_err());
    }

    #[test]
    fn a_file_held_by_a_command_survives_its_replacement() {
        let mut h = HostFiles::new();
        h.put("k".into(), b"old".to_vec(), |_| false).unwrap();
        let held = FileData::Host(h.get("k").unwrap());
        h.put("k".into(), b"new".to_vec(), |_| false).unwrap();
        assert_eq!(&*held, b"old");
    }
}
