//! Node names as xenstored checks them (`is_valid_nodename`): absolute
//! paths of `[A-Za-z0-9_@-]` components, or paths relative to the caller's
//! home `/local/domain/<domid>`; `@introduceDomain` and `@releaseDomain`
//! exist only for watches.

use alloc::format;
use alloc::string::String;

use hypercall_abi::xs_wire::{XENSTORE_ABS_PATH_MAX, XENSTORE_REL_PATH_MAX};
use hypercall_abi::DomId;

use super::Error;

pub const INTRODUCE_DOMAIN: &str = "@introduceDomain";
pub const RELEASE_DOMAIN: &str = "@releaseDomain";

/// A domain's home, where its relative paths point.
pub fn domain_path(domid: DomId) -> String {
    format!("/local/domain/{}", domid)
}

fn valid_chars(p: &str) -> bool {
    p.bytes().all(|c| c.is_ascii_alphanumeric() || b"/_@-".contains(&c))
}

/// The absolute, checked form of `path` as sent by `domid`.
pub fn canonical(domid: DomId, path: &str) -> Result<String, Error> {
    if path.starts_with('@') {
        return Err(Error::EINVAL);
    }
    let abs = if path.starts_with('/') {
        if path.len() > XENSTORE_ABS_PATH_MAX {
            return Err(Error::EINVAL);
        }
        String::from(path)
    } else {
        if path.is_empty() || path.len() > XENSTORE_REL_PATH_MAX {
            return Err(Error::EINVAL);
        }
        format!("{}/{}", domain_path(domid), path)
    };
    if !valid_chars(&abs) || abs.contains("//") || (abs.len() > 1 && abs.ends_with('/')) || abs.len() > XENSTORE_ABS_PATH_MAX {
        return Err(Error::EINVAL);
    }
    Ok(abs)
}

/// A watch's path: a node name, or one of the special `@` names.
pub fn canonical_watch(domid: DomId, path: &str) -> Result<String, Error> {
    if path.starts_with('@') {
        return if path == INTRODUCE_DOMAIN || path == RELEASE_DOMAIN { Ok(String::from(path)) } else { Err(Error::EINVAL) };
    }
    canonical(domid, path)
}

/// The parent of an absolute path other than `/`.
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// The last component.
pub fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or("")
}

/// `child` is `parent` or lies below it.
pub fn is_at_or_below(child: &str, parent: &str) -> bool {
    if parent == "/" {
        return child.starts_with('/');
    }
    child == parent || (child.starts_with(parent) && child.as_bytes().get(parent.len()) == Some(&b'/'))
}

/// The form a domain is told a path in: relative to its home when it
/// registered the watch relative.
pub fn relative_to<'a>(home: &str, path: &'a str) -> &'a str {
    match path.strip_prefix(home) {
        Some(rest) if rest.starts_with('/') => &rest[1..],
        _ => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_are_under_the_callers_home() {
        assert_eq!(canonical(3, "device/vbd").unwrap(), "/local/domain/3/device/vbd");
        assert_eq!(canonical(3, "/vm").unwrap(), "/vm");
        assert_eq!(canonical(0, "/").unwrap(), "/");
    }

    #[test]
    fn bad_names_are_einval() {
        for p in ["", "/a//b", "/a/", "/a b", "/a/\u{e9}", "@introduceDomain", "a/../b", "/x.y"] {
            assert_eq!(canonical(1, p), Err(Error::EINVAL), "{p:?}");
        }
        let long = alloc::format!("/{}", "a".repeat(XENSTORE_ABS_PATH_MAX));
        assert_eq!(canonical(1, &long), Err(Error::EINVAL));
        assert_eq!(canonical_watch(1, "@releaseDomain").unwrap(), "@releaseDomain");
        assert_eq!(canonical_watch(1, "@other"), Err(Error::EINVAL));
    }

    #[test]
    fn ancestry_respects_component_boundaries() {
        assert!(is_at_or_below("/a/b", "/a"));
        assert!(is_at_or_below("/a", "/a"));
        assert!(!is_at_or_below("/ab", "/a"));
        assert!(is_at_or_below("/ab", "/"));
        assert_eq!(parent("/a/b"), "/a");
        assert_eq!(parent("/a"), "/");
        assert_eq!(relative_to("/local/domain/1", "/local/domain/1/x/y"), "x/y");
        assert_eq!(relative_to("/local/domain/1", "/local/domain/10/x"), "/local/domain/10/x");
    }
}
