//! Splitting what the user typed (or Dom0's `xl=` option) into commands and
//! words. Double or single quotes group words (`extra="a b"` stays one word,
//! quotes kept, for the config parser); `;` separates commands outside quotes.

use heapless::Vec;

pub const MAX_WORDS: usize = 16;

/// The value of Dom0's `xl=` option: the text inside the quotes for
/// `xl="..."`, else up to the next space. `None` without the option.
pub fn xl_option(cmdline: &str) -> Option<&str> {
    let mut rest = cmdline;
    loop {
        let at = rest.find("xl=")?;
        let before_ok = at == 0 || rest.as_bytes()[at - 1].is_ascii_whitespace();
        let value = &rest[at + 3..];
        if before_ok {
            for q in ['"', '\''] {
                if let Some(v) = value.strip_prefix(q) {
                    return Some(v.find(q).map_or(v, |end| &v[..end]));
                }
            }
            return Some(value.split_ascii_whitespace().next().unwrap_or(""));
        }
        rest = value;
    }
}

/// Whether Dom0's command line holds the bare word `flag` (outside quotes,
/// so not inside `xl="..."`).
pub fn has_flag(cmdline: &str, flag: &str) -> bool {
    let mut quote = None;
    let mut start = 0;
    let mut found = false;
    for (i, c) in cmdline.char_indices().chain(core::iter::once((cmdline.len(), ' '))) {
        match (c, quote) {
            (c, Some(q)) if c == q => quote = None,
            (_, Some(_)) => {}
            ('"' | '\'', None) => quote = Some(c),
            (c, None) if c.is_ascii_whitespace() => {
                found |= &cmdline[start..i] == flag;
                start = i + 1;
            }
            _ => {}
        }
    }
    found
}

/// Splits at `;` outside quotes; empty commands are dropped.
pub fn commands(s: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    core::iter::from_fn(move || loop {
        let s = rest?;
        let mut quote = None;
        let mut end = None;
        for (i, c) in s.char_indices() {
            match (c, quote) {
                (c, Some(q)) if c == q => quote = None,
                (_, Some(_)) => {}
                ('"' | '\'', None) => quote = Some(c),
                (';', None) => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let (cmd, next) = match end {
            Some(i) => (&s[..i], Some(&s[i + 1..])),
            None => (s, None),
        };
        rest = next;
        let cmd = cmd.trim();
        if !cmd.is_empty() {
            return Some(cmd);
        }
    })
}

/// Splits a command into words at whitespace outside quotes. `Err` when
/// there are more than [`MAX_WORDS`] words or a quote is not closed.
pub fn words(cmd: &str) -> Result<Vec<&str, MAX_WORDS>, &'static str> {
    let mut out = Vec::new();
    let mut start = None;
    let mut quote = None;
    for (i, c) in cmd.char_indices() {
        match (c, quote) {
            (c, Some(q)) if c == q => quote = None,
            (_, Some(_)) => {}
            ('"' | '\'', None) => {
                quote = Some(c);
                start.get_or_insert(i);
            }
            (c, None) if c.is_whitespace() => {
                if let Some(s) = start.take() {
                    out.push(&cmd[s..i]).map_err(|_| "too many words")?;
                }
            }
            _ => {
                start.get_or_insert(i);
            }
        }
    }
    if quote.is_some() {
        return Err("a quote is not closed");
    }
    if let Some(s) = start {
        out.push(&cmd[s..]).map_err(|_| "too many words")?;
    }
    Ok(out)
}

/// `repeat [-q] N <commands>`: Dom0's loop. The commands are the rest of
/// the line as typed; when that is one quoted string (`'create g; destroy
/// g'`, the way to put a `;` inside `xl="..."`), its quotes are taken off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repeat<'a> {
    pub count: u64,
    /// `-q`: no output from the commands, only errors and progress.
    pub quiet: bool,
    pub body: &'a str,
}

/// Parses a `repeat` line (`None` when the line is not one).
pub fn repeat(line: &str) -> Option<Result<Repeat<'_>, &'static str>> {
    const USAGE: &str = "usage: repeat [-q] <count> <command...> (several commands: one quoted string, 'cmd; cmd')";
    let mut rest = line.trim_start();
    rest = rest.strip_prefix("xl ").map_or(rest, str::trim_start);
    rest = rest.strip_prefix("repeat")?;
    if !rest.is_empty() && !rest.starts_with(char::is_whitespace) {
        return None;
    }
    let mut next_word = || -> Option<&str> {
        let r = rest.trim_start();
        let end = r.find(char::is_whitespace).unwrap_or(r.len());
        rest = &r[end..];
        (end > 0).then(|| &r[..end])
    };
    let mut word = next_word();
    let quiet = word == Some("-q");
    if quiet {
        word = next_word();
    }
    let Some(count) = word.and_then(|w| w.parse::<u64>().ok()) else { return Some(Err(USAGE)) };
    let mut body = rest.trim();
    for q in ['\'', '"'] {
        if body.len() >= 2 && body.starts_with(q) && body.ends_with(q) && !body[1..body.len() - 1].contains(q) {
            body = &body[1..body.len() - 1];
        }
    }
    if body.trim().is_empty() {
        return Some(Err(USAGE));
    }
    Some(Ok(Repeat { count, quiet, body }))
}

/// Seconds as `N` or `N.F` (up to milliseconds), in nanoseconds.
pub fn parse_seconds(s: &str) -> Option<u64> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() && frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let int: u64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut ns = 0u64;
    for (i, c) in frac.bytes().enumerate() {
        ns += (c - b'0') as u64 * 10u64.pow(8 - i as u32);
    }
    int.checked_mul(1_000_000_000)?.checked_add(ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_counts_only_outside_quotes() {
        assert!(has_flag("xl=\"list\" xl_keep_going", "xl_keep_going"));
        assert!(!has_flag("xl=\"list xl_keep_going\"", "xl_keep_going"));
        assert!(!has_flag("xl_keep_going=0", "xl_keep_going"));
    }

    #[test]
    fn finds_the_xl_option() {
        assert_eq!(xl_option("a=1 xl=\"create g1; list\" b=2"), Some("create g1; list"));
        assert_eq!(xl_option("xl=list"), Some("list"));
        assert_eq!(xl_option("noxl=list"), None);
        assert_eq!(xl_option("loglvl=all"), None);
        assert_eq!(xl_option("xl='info'"), Some("info"));
    }

    #[test]
    fn splits_commands_and_words() {
        let c: std::vec::Vec<_> = commands("create g1.cfg extra=\"a;b\"; ; list ").collect();
        assert_eq!(c, ["create g1.cfg extra=\"a;b\"", "list"]);
        assert_eq!(words("create  g1.cfg extra=\"a b\" x").unwrap().as_slice(), ["create", "g1.cfg", "extra=\"a b\"", "x"]);
        assert!(words("create \"oops").is_err());
        assert_eq!(words("").unwrap().len(), 0);
    }

    #[test]
    fn repeat_lines() {
        let r = |l| repeat(l).unwrap().unwrap();
        assert_eq!(r("repeat 3 list"), Repeat { count: 3, quiet: false, body: "list" });
        assert_eq!(r("xl repeat -q 1000 'create hello; destroy hello'").body, "create hello; destroy hello");
        assert!(r("repeat -q 2 info").quiet);
        assert_eq!(r("repeat 2 create g extra='a b'").body, "create g extra='a b'");
        assert!(repeat("repeater 3 list").is_none());
        assert!(repeat("list").is_none());
        assert!(repeat("repeat x list").unwrap().is_err());
        assert!(repeat("repeat 3").unwrap().is_err());
        assert!(repeat("repeat 3 ''").unwrap().is_err());
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_seconds("2"), Some(2_000_000_000));
        assert_eq!(parse_seconds("0.25"), Some(250_000_000));
        assert_eq!(parse_seconds(".5"), Some(500_000_000));
        assert_eq!(parse_seconds("x"), None);
        assert_eq!(parse_seconds(""), None);
    }
}
