//! Text a plugin wrote, as Sigil passes it on: one rule for every tier, the hooks and the
//! audit log.
//!
//! A tool's error, a hook's reason, an MCP server's message reach people (API and MCP
//! responses, the command line, approval listings) and the audit log. A plugin could make them
//! huge, or put terminal escapes and carriage returns in them to hide or forge what an operator
//! sees. So every such text passes through [`clean`] (a message, which may span lines) or
//! [`line()`] (a reason shown on one line) before Sigil shows or records it:
//!
//! - control characters are written as Rust escapes (`\u{1b}`, `\r`, `\0`), so they are seen
//!   and never act; [`clean`] keeps newlines and tabs, [`line()`] escapes them too;
//! - the text is cut once what is shown reaches a number of characters (escapes counted as
//!   shown), with the whole length noted (`… (70000 bytes in all)`), so what is passed on is
//!   at most that many characters and the note.

/// The most characters of a plugin's message Sigil passes on.
pub const MAX_GUEST_TEXT_CHARS: usize = 4096;

/// `text` as Sigil passes on a plugin's message: control characters but newline and tab
/// escaped, at most [`MAX_GUEST_TEXT_CHARS`] characters.
#[must_use]
pub fn clean(text: &str) -> String {
    shown(text, MAX_GUEST_TEXT_CHARS, |c| {
        c.is_control() && c != '\n' && c != '\t'
    })
}

/// `text` as Sigil shows a plugin's reason on one line: every control character escaped, at
/// most `max_chars` characters.
#[must_use]
pub fn line(text: &str, max_chars: usize) -> String {
    shown(text, max_chars, char::is_control)
}

fn shown(text: &str, max_chars: usize, escape: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars) + 24);
    let mut count = 0;
    for c in text.chars() {
        let escaped = escape(c).then(|| c.escape_default());
        let width = escaped.clone().map_or(1, Iterator::count);
        if count + width > max_chars {
            out.push_str(&format!("… ({} bytes in all)", text.len()));
            break;
        }
        count += width;
        match escaped {
            Some(escaped) => out.extend(escaped),
            None => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn control_characters_are_shown_and_never_act() {
        assert_eq!(
            clean("ok\u{1b}[2J\rforged\nnext\tcol\0"),
            "ok\\u{1b}[2J\\rforged\nnext\tcol\\u{0}"
        );
        assert_eq!(line("a\nb\tc", 100), "a\\nb\\tc");
    }

    #[test]
    fn escapes_count_towards_the_cap() {
        let bells = "\u{7}".repeat(MAX_GUEST_TEXT_CHARS);
        let cut = clean(&bells);
        let (shown, note) = cut.split_once('…').unwrap();
        assert!(
            shown.chars().count() <= MAX_GUEST_TEXT_CHARS,
            "{}",
            shown.len()
        );
        assert_eq!(note, format!(" ({} bytes in all)", bells.len()));
    }

    #[test]
    fn long_text_is_cut_with_its_length_noted() {
        let long = "é".repeat(MAX_GUEST_TEXT_CHARS + 10);
        let cut = clean(&long);
        assert!(cut.starts_with(&"é".repeat(MAX_GUEST_TEXT_CHARS)));
        assert!(cut.ends_with(&format!("… ({} bytes in all)", long.len())));
        assert_eq!(clean("short"), "short");
        assert_eq!(line("abcdef", 3), "abc… (6 bytes in all)");
    }
}
