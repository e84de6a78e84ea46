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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_key_value_words() {
        let cmd = "workload=bench-null iters=1000 quiet";
        assert_eq!(get(cmd, "workload"), Some("bench-null"));
        assert_eq!(get(cmd, "iters"), Some("1000"));
        assert_eq!(get(cmd, "quiet"), Some(""));
        assert_eq!(get(cmd, "work"), None);
        assert_eq!(get("", "workload"), None);
    }

    #[test]
    fn later_words_override_earlier_ones() {
        assert_eq!(get("iters=1 iters=2", "iters"), Some("2"));
        assert_eq!(get("a=b=c", "a"), Some("b=c"));
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u64("100000"), Some(100000));
        assert_eq!(parse_u64("0x10"), Some(16));
        assert_eq!(parse_u64("ten"), None);
        assert_eq!(parse_u64(""), None);
    }
}
