//! Error codes returned by hypercalls, negated in `%rax` (`errno.h`:
//! `XEN_EFAULT` is 14, so a bad pointer returns -14).

use core::fmt;

/// A Xen error code: the positive value of `XEN_E*`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Errno(pub i32);

macro_rules! errnos {
    ($($(#[$doc:meta])* $name:ident = $val:expr,)*) => {
        impl Errno {
            $($(#[$doc])* pub const $name: Errno = Errno($val);)*

            /// The header's name for this code (`"EFAULT"`); `"E?"` for a value
            /// the header does not list.
            pub fn name(self) -> &'static str {
                match self.0 {
                    $($val => stringify!($name),)*
                    _ => "E?",
                }
            }
        }
    };
}

errnos! {
    EPERM = 1,
    ENOENT = 2,
    ESRCH = 3,
    /// Internal to Xen: never returned to a guest.
    EINTR = 4,
    EIO = 5,
    ENXIO = 6,
    E2BIG = 7,
    ENOEXEC = 8,
    EBADF = 9,
    ECHILD = 10,
    EAGAIN = 11,
    ENOMEM = 12,
    EACCES = 13,
    EFAULT = 14,
    EBUSY = 16,
    EEXIST = 17,
    EXDEV = 18,
    ENODEV = 19,
    EISDIR = 21,
    EINVAL = 22,
    ENFILE = 23,
    EMFILE = 24,
    ENOSPC = 28,
    EROFS = 30,
    EMLINK = 31,
    EDOM = 33,
    ERANGE = 34,
    EDEADLK = 35,
    ENAMETOOLONG = 36,
    ENOLCK = 37,
    ENOSYS = 38,
    ENOTEMPTY = 39,
    ENODATA = 61,
    ETIME = 62,
    EBADMSG = 74,
    EOVERFLOW = 75,
    EILSEQ = 84,
    /// Internal to Xen: a preempted hypercall is restarted, never failed with this.
    ERESTART = 85,
    ENOTSOCK = 88,
    EOPNOTSUPP = 95,
    EADDRINUSE = 98,
    EADDRNOTAVAIL = 99,
    ENOBUFS = 105,
    EISCONN = 106,
    ENOTCONN = 107,
    ETIMEDOUT = 110,
    ECONNREFUSED = 111,
}

impl Errno {
    /// `XEN_EWOULDBLOCK` aliases `XEN_EAGAIN`.
    pub const EWOULDBLOCK: Errno = Errno::EAGAIN;
    /// `XEN_EDEADLOCK` aliases `XEN_EDEADLK`.
    pub const EDEADLOCK: Errno = Errno::EDEADLK;

    /// The hypercall return value carrying this error: `-errno`.
    pub const fn to_ret(self) -> i64 {
        -(self.0 as i64)
    }

    /// The error a hypercall return value carries, if it is one. Only
    /// -1..=-4095 count (Linux's `IS_ERR_VALUE` rule): a few hypercalls, such
    /// as `get_debugreg`, return full 64-bit values that may look negative.
    pub fn from_ret(ret: i64) -> Option<Errno> {
        if (-4095..=-1).contains(&ret) {
            Some(Errno((-ret) as i32))
        } else {
            None
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            "E?" => write!(f, "E?({})", self.0),
            name => f.write_str(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_match_errno_h() {
        assert_eq!(Errno::EPERM.0, 1);
        assert_eq!(Errno::EFAULT.0, 14);
        assert_eq!(Errno::EINVAL.0, 22);
        assert_eq!(Errno::ENOSYS.0, 38);
        assert_eq!(Errno::ERESTART.0, 85);
        assert_eq!(Errno::ETIMEDOUT.0, 110);
        assert_eq!(Errno::ECONNREFUSED.0, 111);
        assert_eq!(Errno::EWOULDBLOCK, Errno::EAGAIN);
    }

    #[test]
    fn to_ret_negates() {
        assert_eq!(Errno::ENOSYS.to_ret(), -38);
        assert_eq!(Errno::EFAULT.to_ret(), -14);
    }

    #[test]
    fn from_ret_round_trips_errors_only() {
        assert_eq!(Errno::from_ret(-38), Some(Errno::ENOSYS));
        assert_eq!(Errno::from_ret(Errno::EFAULT.to_ret()), Some(Errno::EFAULT));
        assert_eq!(Errno::from_ret(0), None);
        assert_eq!(Errno::from_ret(5), None);
        assert_eq!(Errno::from_ret(0x0004_0011), None);
        assert_eq!(Errno::from_ret(-4096), None);
        assert_eq!(Errno::from_ret(i64::MIN), None);
    }

    #[test]
    fn names() {
        assert_eq!(Errno::EFAULT.name(), "EFAULT");
        assert_eq!(Errno::ENOSYS.name(), "ENOSYS");
        assert_eq!(Errno::EAGAIN.name(), "EAGAIN");
        assert_eq!(Errno::EWOULDBLOCK.name(), "EAGAIN");
        assert_eq!(Errno(1000).name(), "E?");
        assert_eq!(format!("{}", Errno::EINVAL), "EINVAL");
        assert_eq!(format!("{}", Errno(1000)), "E?(1000)");
    }
}
