//! Node permissions as xenstored keeps them: a list whose first entry names
//! the owner and the access everybody else gets by default, each further
//! entry the access of one domain. Written `<letter><domid>`: `n` none,
//! `r` read, `w` write, `b` both. The privileged domain (Dom0) and a node's
//! owner may do everything.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use hypercall_abi::DomId;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    None,
    Read,
    Write,
    Both,
}

impl Access {
    pub fn can_read(self) -> bool {
        matches!(self, Access::Read | Access::Both)
    }
    pub fn can_write(self) -> bool {
        matches!(self, Access::Write | Access::Both)
    }
    fn letter(self) -> char {
        match self {
            Access::None => 'n',
            Access::Read => 'r',
            Access::Write => 'w',
            Access::Both => 'b',
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Perm {
    pub id: DomId,
    pub access: Access,
}

impl Perm {
    pub const fn new(id: DomId, access: Access) -> Perm {
        Perm { id, access }
    }

    /// `r5`, `n0`, ...; `None` for anything else.
    pub fn parse(s: &str) -> Option<Perm> {
        let mut c = s.chars();
        let access = match c.next()? {
            'n' => Access::None,
            'r' => Access::Read,
            'w' => Access::Write,
            'b' => Access::Both,
            _ => return None,
        };
        let id = c.as_str();
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Perm { id: id.parse().ok()?, access })
    }

    pub fn to_text(self) -> String {
        format!("{}{}", self.access.letter(), self.id)
    }
}

/// What `domid` may do with a node of `perms`.
pub fn access(perms: &[Perm], domid: DomId) -> Access {
    let Some(owner) = perms.first() else { return Access::None };
    if domid == 0 || owner.id == domid {
        return Access::Both;
    }
    perms[1..].iter().find(|p| p.id == domid).map_or(owner.access, |p| p.access)
}

/// The permissions text of a node: each entry NUL-terminated.
pub fn to_wire(perms: &[Perm]) -> Vec<u8> {
    let mut v = Vec::new();
    for p in perms {
        v.extend_from_slice(p.to_text().as_bytes());
        v.push(0);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_default_and_explicit_entries() {
        let perms = [Perm::new(3, Access::None), Perm::new(5, Access::Read)];
        assert_eq!(access(&perms, 0), Access::Both, "Dom0");
        assert_eq!(access(&perms, 3), Access::Both, "owner");
        assert_eq!(access(&perms, 5), Access::Read);
        assert_eq!(access(&perms, 7), Access::None, "default");
    }

    #[test]
    fn parsing_refuses_garbage() {
        assert_eq!(Perm::parse("b12"), Some(Perm::new(12, Access::Both)));
        for bad in ["", "x1", "r", "r-1", "r1a", "r99999"] {
            assert_eq!(Perm::parse(bad), None, "{bad:?}");
        }
        assert_eq!(to_wire(&[Perm::new(0, Access::None), Perm::new(2, Access::Read)]), b"n0\0r2\0");
    }
}
