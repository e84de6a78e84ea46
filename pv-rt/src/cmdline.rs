//! `key=value` words of the kernel command line (`start_info.cmd_line`).

/// The value of the last `key=value` word (a later word overrides an earlier
/// one, as on Linux); `Some("")` for a bare `key`.
pub fn get<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    let mut found = None;
    for word in cmdline.split_ascii_whitespace() {
        match word.split_once('=') {
            Some((k, v)) if k == key => found = Some(v),
            None if word == key => found = Some(""),
            _ => {}
        }
    }
    found
}

/// A decimal or `0x` hexadecimal number.
pub fn parse_u64(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}
