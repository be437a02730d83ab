//! Text that came from someone else (the agent, a user, another program's
//! stderr) made fit to show: on a terminal, in one line, or inside JSON that
//! a script may print raw (`jq -r`). Owns the one rule of what a terminal must
//! never receive from such text; never decides what is shown or where.
//!
//! What a terminal must never receive raw, because it acts instead of being
//! shown: every C0 control but tab and newline (ESC starts CSI, OSC and DCS
//! sequences: a title, the clipboard through OSC 52, a link, a cleared
//! screen, tmux passthrough), DEL, every C1 control (U+0080 to U+009F: CSI and
//! OSC in one character for terminals that take 8-bit controls), the BiDi
//! embeddings, overrides and isolates (which reorder what is shown, "Trojan
//! Source"), and invisible format characters (zero-width space and joiners,
//! word joiner, BOM, soft hyphen, the tag characters), which make two texts
//! look the same.

use std::borrow::Cow;

/// How a character is treated when shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Shown as it is.
    Plain,
    /// A C0 control or DEL: shown as its control picture (`␛` for ESC).
    C0,
    /// A C1 control, a BiDi control or an invisible character: shown as
    /// `⟨U+XXXX⟩`.
    Hidden,
}

fn class(c: char) -> Class {
    match c {
        '\t' | '\n' => Class::Plain,
        '\0'..='\u{1f}' | '\u{7f}' => Class::C0,
        '\u{80}'..='\u{9f}'
        // soft hyphen, Arabic letter mark, Mongolian vowel separator
        | '\u{ad}' | '\u{61c}' | '\u{180e}'
        // zero-width space, non-joiner, joiner, LRM, RLM
        | '\u{200b}'..='\u{200f}'
        // line and paragraph separators, embeddings and overrides
        | '\u{2028}'..='\u{202e}'
        // word joiner, invisible operators, isolates, deprecated format controls
        | '\u{2060}'..='\u{206f}'
        | '\u{feff}'
        // interlinear annotation controls
        | '\u{fff9}'..='\u{fffb}'
        // tag characters
        | '\u{e0000}'..='\u{e007f}' => Class::Hidden,
        _ => Class::Plain,
    }
}

/// Whether `c` must not reach a terminal as it is (see the module doc).
/// Tab and newline are fine.
pub fn is_unsafe(c: char) -> bool {
    class(c) != Class::Plain
}

/// `s` made safe for a terminal: tab and newline stay, every character of
/// the module doc's list is made visible (C0 and DEL as their control
/// pictures, `␛` for ESC; the others as `⟨U+XXXX⟩`), so that the text shows
/// what it holds and does nothing else. Borrowed when nothing changed.
pub fn for_terminal(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        push_visible(&mut out, c);
    }
    Cow::Owned(out)
}

fn push_visible(out: &mut String, c: char) {
    match class(c) {
        Class::Plain => out.push(c),
        Class::C0 if c == '\u{7f}' => out.push('\u{2421}'),
        Class::C0 => out.push(char::from_u32(0x2400 + c as u32).unwrap_or('?')),
        Class::Hidden => out.push_str(&format!("⟨U+{:04X}⟩", c as u32)),
    }
}

/// `s` as one line of a terminal: every line break, tab and other control
/// character (C0, DEL, C1) becomes a space, runs of white space become one space, the ends are
/// trimmed, BiDi and invisible characters are made visible as in
/// [`for_terminal`], and with `max` at most that many characters are kept,
/// the cut marked with `…`.
pub fn one_line(s: &str, max: Option<usize>) -> String {
    let mut flat = String::with_capacity(s.len());
    for word in s
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
    {
        if !flat.is_empty() {
            flat.push(' ');
        }
        for c in word.chars() {
            push_visible(&mut flat, c);
        }
    }
    match max {
        Some(max) => cut(&flat, max),
        None => flat,
    }
}

/// At most `max` characters of `s`, the last of them `…` when cut.
pub fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_owned(),
        Some(_) if max == 0 => String::new(),
        Some(_) => {
            let keep = s.char_indices().nth(max - 1).map_or(s.len(), |(i, _)| i);
            format!("{}…", &s[..keep])
        }
    }
}

/// Serialised JSON made safe to print raw: every character of the module
/// doc's list that serde_json leaves as it is (C1, DEL, BiDi, invisible) is
/// written as a `\uXXXX` escape (a surrogate pair above the BMP). Such
/// characters can only stand inside JSON strings, so the JSON means the same;
/// `jq -r` of it on a terminal then prints the escapes' characters, which a
/// script asked for, while the JSON text itself is inert.
pub fn json_safe(json: String) -> String {
    if !json.chars().any(is_unsafe_in_json) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 32);
    for c in json.chars() {
        if is_unsafe_in_json(c) {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{:04x}", u));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// serde_json escapes C0 itself; newline and tab inside JSON are structure.
fn is_unsafe_in_json(c: char) -> bool {
    c > '\u{1f}' && is_unsafe(c)
}

/// The payloads an agent's reply was seen to carry to an operator's
/// terminal (issue 17), each named: what every output path is tested with
/// (here and in the suite's real terminals).
pub const PAYLOADS: [(&str, &str); 14] = [
    ("OSC 0 title", "\x1b]0;PWNED-TITLE\x07"),
    ("OSC 52 clipboard", "\x1b]52;c;UFdORUQtQ0xJUEJPQVJE\x07"),
    (
        "OSC 8 link",
        "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\",
    ),
    ("CSI clear screen", "\x1b[2J\x1b[H"),
    ("CSI cursor up", "line\x1b[1A\x1b[2Kfake"),
    (
        "DCS tmux passthrough",
        "\x1bPtmux;\x1b\x1b]0;PWNED\x07\x1b\\",
    ),
    ("C1 CSI", "\u{9b}2J"),
    ("C1 OSC", "\u{9d}0;PWNED-TITLE\u{9c}"),
    ("BiDi override", "abc\u{202e}fed"),
    ("zero-width", "pay\u{200b}pal"),
    ("backspace", "safe\x08\x08\x08\x08evil"),
    ("carriage return", "ok\rEVIL"),
    ("DEL", "a\x7fb"),
    ("bell", "\x07ding"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_payload_reaches_a_terminal_raw() {
        for (what, p) in PAYLOADS {
            let shown = for_terminal(p);
            assert!(!shown.chars().any(is_unsafe), "{what}: {shown:?}");
            assert!(
                !shown.contains('\x1b')
                    && !shown.chars().any(|c| ('\u{80}'..='\u{9f}').contains(&c)),
                "{what}: {shown:?}"
            );
            let line = one_line(p, None);
            assert!(!line.chars().any(is_unsafe), "{what}: {line:?}");
            assert!(!line.contains('\n'), "{what}");
        }
    }

    #[test]
    fn controls_are_shown_not_dropped() {
        assert_eq!(for_terminal("\x1b[2J"), "␛[2J");
        assert_eq!(for_terminal("a\x7fb"), "a␡b");
        assert_eq!(for_terminal("\u{9b}x"), "⟨U+009B⟩x");
        assert_eq!(for_terminal("abc\u{202e}fed"), "abc⟨U+202E⟩fed");
        assert_eq!(for_terminal("tab\there\nnext"), "tab\there\nnext");
        assert!(matches!(
            for_terminal("plain ünïcode ＠ 🙂"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn one_line_flattens_and_cuts() {
        assert_eq!(one_line("  a\n\n b\t c \r\n", None), "a b c");
        assert_eq!(one_line("a\x1b[2Jb\u{9b}c", None), "a [2Jb c");
        assert_eq!(one_line("abc\u{202e}fed", None), "abc⟨U+202E⟩fed");
        assert_eq!(one_line("abcdef", Some(4)), "abc…");
        assert_eq!(one_line("abcd", Some(4)), "abcd");
        assert_eq!(one_line("héllo wörld", Some(5)), "héll…");
        assert_eq!(cut("abc", 0), "");
    }

    #[test]
    fn json_stays_json_and_carries_no_raw_control() {
        for (what, p) in PAYLOADS {
            let j = json_safe(serde_json::to_string(&serde_json::json!({ "text": p })).unwrap());
            assert!(!j.chars().any(is_unsafe), "{what}: {j}");
            let back: serde_json::Value = serde_json::from_str(&j).unwrap();
            assert_eq!(back["text"], p, "{what}: the JSON means the same");
        }
        let tag = json_safe(serde_json::to_string("\u{e0041}").unwrap());
        assert_eq!(tag, r#""\udb40\udc41""#);
    }
}
