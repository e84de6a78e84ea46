//! The `xl>` prompt's line editor: typed bytes in, terminal output and
//! finished lines out, with history and the usual Emacs-style keys.
//!
//! Hand-written rather than taken from `noline` (the no_std line editor on
//! crates.io): noline's editor blocks in `readline` on a byte reader and
//! first asks the terminal for its size (`ESC [6n`), waiting for the reply.
//! Dom0 must keep serving guest consoles between keystrokes, and its input
//! is often a pipe or a socket that never answers (`run.sh < script`), so
//! the editor here is a state machine fed one byte at a time: nothing
//! blocks, and nothing is asked of the terminal.
//!
//! Keys: printable ASCII inserts; Backspace (DEL or ^H) and ^D (on a
//! non-empty line) delete; Left/Right, ^B/^F move; Home/End, ^A/^E jump;
//! ^U and ^K cut before and after the cursor; ^W cuts the word before it;
//! Up/Down, ^P/^N walk the history; ^L redraws; ^C drops the line; ^D on an
//! empty line is the end of input. A line longer than [`LINE_MAX`] is
//! refused as a whole when Enter is typed, never cut.

use heapless::{Deque, Vec};

/// The longest line accepted.
pub const LINE_MAX: usize = 4096;
/// Lines remembered for Up/Down.
pub const HISTORY: usize = 32;

pub type Line = Vec<u8, LINE_MAX>;

/// What a byte did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Still editing.
    None,
    /// Enter: [`Editor::take_line`] has the line.
    Line,
    /// Enter on a line that grew past [`LINE_MAX`]: dropped.
    TooLong,
    /// ^C: the line was dropped.
    Interrupt,
    /// ^D on an empty line.
    Eof,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Esc {
    None,
    /// After ESC.
    Start,
    /// After `ESC [` (CSI) or `ESC O` (SS3), with a numeric parameter.
    Csi(u16),
    Ss3,
}

pub struct Editor {
    prompt: &'static str,
    buf: Line,
    cursor: usize,
    /// Characters were refused for lack of room since the line began.
    overflow: bool,
    esc: Esc,
    /// The last byte was `\r` (a following `\n` is the same Enter).
    after_cr: bool,
    history: Deque<Line, HISTORY>,
    /// Which history entry is shown (0: the newest), if any.
    browsing: Option<usize>,
    /// The line being typed before Up was pressed.
    draft: Line,
    done: Line,
}

impl Editor {
    pub const fn new(prompt: &'static str) -> Self {
        Editor {
            prompt,
            buf: Vec::new(),
            cursor: 0,
            overflow: false,
            esc: Esc::None,
            after_cr: false,
            history: Deque::new(),
            browsing: None,
            draft: Vec::new(),
            done: Vec::new(),
        }
    }

    /// What has been typed of the current line.
    pub fn text(&self) -> &[u8] {
        &self.buf
    }

    /// The line that ended with [`Event::Line`].
    pub fn take_line(&mut self) -> Line {
        core::mem::take(&mut self.done)
    }

    /// Prints the prompt for a new line.
    pub fn start(&mut self, out: &mut impl FnMut(&[u8])) {
        self.reset();
        out(self.prompt.as_bytes());
    }

    fn reset(&mut self) {
        self.buf.clear();
        self.cursor = 0;
        self.overflow = false;
        self.esc = Esc::None;
        self.browsing = None;
    }

    /// Prints the prompt and the line again, the cursor where it was (after
    /// other output, or when the line changed other than at its end).
    pub fn redraw(&self, out: &mut impl FnMut(&[u8])) {
        out(b"\r");
        out(self.prompt.as_bytes());
        out(&self.buf);
        out(b"\x1b[K");
        self.cursor_back(self.buf.len() - self.cursor, out);
    }

    /// Prints the prompt and the line on a fresh line (after other output
    /// that ended with a newline): no escape sequence unless the cursor is
    /// not at the end, so a log of the console stays plain text.
    pub fn reprint(&self, out: &mut impl FnMut(&[u8])) {
        out(self.prompt.as_bytes());
        out(&self.buf);
        self.cursor_back(self.buf.len() - self.cursor, out);
    }

    fn cursor_back(&self, n: usize, out: &mut impl FnMut(&[u8])) {
        if n > 0 {
            let mut s: heapless::String<16> = heapless::String::new();
            let _ = core::fmt::write(&mut s, format_args!("\x1b[{}D", n));
            out(s.as_bytes());
        }
    }

    pub fn feed(&mut self, c: u8, out: &mut impl FnMut(&[u8])) -> Event {
        let after_cr = core::mem::replace(&mut self.after_cr, c == b'\r');
        match self.esc {
            Esc::None => {}
            Esc::Start => {
                self.esc = match c {
                    b'[' => Esc::Csi(0),
                    b'O' => Esc::Ss3,
                    _ => Esc::None,
                };
                return Event::None;
            }
            Esc::Csi(n) => {
                if c.is_ascii_digit() {
                    self.esc = Esc::Csi(n.saturating_mul(10).saturating_add((c - b'0') as u16));
                    return Event::None;
                }
                if c == b';' {
                    return Event::None;
                }
                self.esc = Esc::None;
                self.csi(c, n, out);
                return Event::None;
            }
            Esc::Ss3 => {
                self.esc = Esc::None;
                self.csi(c, 0, out);
                return Event::None;
            }
        }
        match c {
            b'\n' if after_cr => Event::None,
            b'\r' | b'\n' => self.enter(out),
            0x1b => {
                self.esc = Esc::Start;
                Event::None
            }
            0x03 => {
                out(b"^C\n");
                self.reset();
                Event::Interrupt
            }
            0x04 if self.buf.is_empty() => {
                out(b"\n");
                Event::Eof
            }
            0x04 => {
                self.delete_at_cursor(out);
                Event::None
            }
            0x7f | 0x08 => {
                if self.cursor > 0 {
                    self.cursor -= 1;
                    self.buf.remove(self.cursor);
                    if self.cursor == self.buf.len() {
                        out(b"\x08 \x08");
                    } else {
                        self.redraw(out);
                    }
                }
                Event::None
            }
            0x01 => self.moved(0, out),
            0x05 => self.moved(self.buf.len(), out),
            0x02 => self.moved(self.cursor.saturating_sub(1), out),
            0x06 => self.moved((self.cursor + 1).min(self.buf.len()), out),
            0x15 => {
                self.cut(0, self.cursor, out);
                Event::None
            }
            0x0b => {
                self.cut(self.cursor, self.buf.len(), out);
                Event::None
            }
            0x17 => {
                let mut from = self.cursor;
                while from > 0 && self.buf[from - 1] == b' ' {
                    from -= 1;
                }
                while from > 0 && self.buf[from - 1] != b' ' {
                    from -= 1;
                }
                self.cut(from, self.cursor, out);
                Event::None
            }
            0x10 => {
                self.history_step(true, out);
                Event::None
            }
            0x0e => {
                self.history_step(false, out);
                Event::None
            }
            0x0c => {
                self.redraw(out);
                Event::None
            }
            0x20..=0x7e => {
                self.insert(c, out);
                Event::None
            }
            // Tab and other control bytes: nothing.
            _ => Event::None,
        }
    }

    fn csi(&mut self, c: u8, n: u16, out: &mut impl FnMut(&[u8])) {
        match (c, n) {
            (b'A', _) => self.history_step(true, out),
            (b'B', _) => self.history_step(false, out),
            (b'C', _) => {
                self.moved((self.cursor + 1).min(self.buf.len()), out);
            }
            (b'D', _) => {
                self.moved(self.cursor.saturating_sub(1), out);
            }
            (b'H', _) | (b'~', 1 | 7) => {
                self.moved(0, out);
            }
            (b'F', _) | (b'~', 4 | 8) => {
                self.moved(self.buf.len(), out);
            }
            (b'~', 3) => self.delete_at_cursor(out),
            _ => {}
        }
    }

    fn enter(&mut self, out: &mut impl FnMut(&[u8])) -> Event {
        out(b"\n");
        let too_long = self.overflow;
        self.done = core::mem::take(&mut self.buf);
        self.reset();
        if too_long {
            self.done.clear();
            return Event::TooLong;
        }
        let is_new = self.history.front().is_none_or(|last| *last != self.done);
        if !self.done.iter().all(|&b| b == b' ') && is_new {
            if self.history.is_full() {
                self.history.pop_back();
            }
            let _ = self.history.push_front(self.done.clone());
        }
        Event::Line
    }

    fn insert(&mut self, c: u8, out: &mut impl FnMut(&[u8])) {
        if self.buf.insert(self.cursor, c).is_err() {
            if !self.overflow {
                // Say so once; the line is refused at Enter.
                self.overflow = true;
                out(b"\x07");
            }
            return;
        }
        self.cursor += 1;
        if self.cursor == self.buf.len() {
            out(&[c]);
        } else {
            self.redraw(out);
        }
    }

    fn delete_at_cursor(&mut self, out: &mut impl FnMut(&[u8])) {
        if self.cursor < self.buf.len() {
            self.buf.remove(self.cursor);
            self.redraw(out);
        }
    }

    fn cut(&mut self, from: usize, to: usize, out: &mut impl FnMut(&[u8])) {
        if from >= to {
            return;
        }
        let tail: Line = self.buf[to..].iter().copied().collect();
        self.buf.truncate(from);
        let _ = self.buf.extend_from_slice(&tail);
        self.cursor = from;
        self.redraw(out);
    }

    fn moved(&mut self, to: usize, out: &mut impl FnMut(&[u8])) -> Event {
        if to < self.cursor {
            self.cursor_back(self.cursor - to, out);
        } else if to > self.cursor {
            out(&self.buf[self.cursor..to]);
        }
        self.cursor = to;
        Event::None
    }

    /// Up (`older`) or Down through the history; Down past the newest entry
    /// gives back the line that was being typed.
    fn history_step(&mut self, older: bool, out: &mut impl FnMut(&[u8])) {
        let next = match (self.browsing, older) {
            (None, true) if !self.history.is_empty() => Some(0),
            (None, _) => return,
            (Some(i), true) if i + 1 < self.history.len() => Some(i + 1),
            (Some(_), true) => return,
            (Some(0), false) => None,
            (Some(i), false) => Some(i - 1),
        };
        if self.browsing.is_none() {
            self.draft = self.buf.clone();
        }
        self.browsing = next;
        self.buf = match next {
            Some(i) => self.history.iter().nth(i).cloned().unwrap_or_default(),
            None => self.draft.clone(),
        };
        self.cursor = self.buf.len();
        self.overflow = false;
        self.redraw(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::String;

    /// Feeds `keys`; returns the events other than `None`, the finished
    /// lines and what was printed.
    fn type_keys(ed: &mut Editor, keys: &[u8]) -> (std::vec::Vec<Event>, std::vec::Vec<String>, String) {
        let mut printed = std::vec::Vec::new();
        let mut events = std::vec::Vec::new();
        let mut lines = std::vec::Vec::new();
        for &k in keys {
            let e = ed.feed(k, &mut |b: &[u8]| printed.extend_from_slice(b));
            if e == Event::Line {
                lines.push(String::from_utf8(ed.take_line().to_vec()).unwrap());
            }
            if e != Event::None {
                events.push(e);
            }
        }
        (events, lines, String::from_utf8_lossy(&printed).into_owned())
    }

    #[test]
    fn plain_typing_echoes_and_ends_at_enter_cr_lf_counting_once() {
        let mut ed = Editor::new("xl> ");
        let (ev, lines, out) = type_keys(&mut ed, b"list\r\nlist\n");
        assert_eq!(lines, ["list", "list"]);
        assert_eq!(ev, [Event::Line, Event::Line]);
        assert_eq!(out, "list\nlist\n");
    }

    #[test]
    fn arrow_up_recalls_the_previous_line_instead_of_typing_bracket_a() {
        let mut ed = Editor::new("xl> ");
        let (_, lines, _) = type_keys(&mut ed, b"create hello\rlist\r\x1b[A\x1b[A\r\x1bOA\r");
        assert_eq!(lines, ["create hello", "list", "create hello", "create hello"]);
        // Down past the newest gives back what was being typed.
        let (_, lines, _) = type_keys(&mut ed, b"inf\x1b[A\x1b[B\x10\x0eo\r");
        assert_eq!(lines, ["info"]);
    }

    #[test]
    fn ctrl_keys_move_and_cut() {
        let mut ed = Editor::new("> ");
        // ^A to the start, insert; ^E to the end.
        let (_, lines, _) = type_keys(&mut ed, b"ist\x01l\x05 -l\r");
        assert_eq!(lines, ["list -l"]);
        // ^U cuts what is before the cursor, ^K what is after it.
        let (_, lines, _) = type_keys(&mut ed, b"garbage\x15info\r");
        assert_eq!(lines, ["info"]);
        let (_, lines, _) = type_keys(&mut ed, b"list junk\x1b[D\x1b[D\x1b[D\x1b[D\x0b\r");
        assert_eq!(lines, ["list "]);
        // ^W cuts one word (and the blanks after it).
        let (_, lines, _) = type_keys(&mut ed, b"destroy wrong  \x17right\r");
        assert_eq!(lines, ["destroy right"]);
        // Backspace and Delete in the middle; Left/Right, Home/End keys.
        let (_, lines, _) = type_keys(&mut ed, b"lisxt\x1b[D\x7f\x1b[H\x1b[3~l\x1b[F\r");
        assert_eq!(lines, ["list"]);
    }

    #[test]
    fn ctrl_c_drops_the_line_and_ctrl_d_ends_input_only_on_an_empty_line() {
        let mut ed = Editor::new("> ");
        let (ev, lines, out) = type_keys(&mut ed, b"destroy all\x03\x04");
        assert_eq!(ev, [Event::Interrupt, Event::Eof]);
        assert!(lines.is_empty());
        assert!(out.contains("^C"));
        let (ev, lines, _) = type_keys(&mut ed, b"lists\x1b[D\x04\r");
        assert_eq!(ev, [Event::Line]);
        assert_eq!(lines, ["list"]);
    }

    #[test]
    fn a_long_line_is_accepted_whole_and_a_too_long_one_refused_not_cut() {
        let mut ed = Editor::new("> ");
        let long: std::vec::Vec<u8> = std::iter::repeat_n(b'x', 1000).chain(*b"\r").collect();
        let (_, lines, _) = type_keys(&mut ed, &long);
        assert_eq!(lines[0].len(), 1000);
        let too_long: std::vec::Vec<u8> = std::iter::repeat_n(b'y', LINE_MAX + 5).chain(*b"\r").collect();
        let (ev, lines, out) = type_keys(&mut ed, &too_long);
        assert_eq!(ev, [Event::TooLong]);
        assert!(lines.is_empty());
        assert_eq!(out.matches('\x07').count(), 1, "one bell, not one per key");
        // The next line is fine again.
        let (_, lines, _) = type_keys(&mut ed, b"list\r");
        assert_eq!(lines, ["list"]);
    }

    #[test]
    fn history_keeps_the_newest_entries_without_repeats() {
        let mut ed = Editor::new("> ");
        for i in 0..HISTORY + 5 {
            type_keys(&mut ed, format!("cmd{i}\rcmd{i}\r").as_bytes());
        }
        let mut keys = std::vec::Vec::new();
        for _ in 0..HISTORY + 10 {
            keys.extend_from_slice(b"\x1b[A");
        }
        keys.push(b'\r');
        let (_, lines, _) = type_keys(&mut ed, &keys);
        assert_eq!(lines, [format!("cmd{}", 5)], "the oldest kept entry");
    }
}
