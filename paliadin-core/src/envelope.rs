//! The envelope of PROTOCOL section 3: how a turn's text is cleaned and
//! framed before it is typed, and how a hook recognises it again in what the
//! agent reports as the submitted prompt. Never talks to tmux; the shim types
//! what [`head`] and [`body`] return, unchanged.

use std::path::Path;
use uuid::Uuid;

/// The envelope's opening tag.
pub const TAG: &str = "[PALIADIN:";

/// What the head says after the tag when the reply is the agent's final
/// message. Claude Code marks a long paste as pasted content, which its
/// system prompt treats as a request only where words outside the mark
/// direct the agent to act on it: these are those words.
pub const DIRECTIVE: &str = "Answer the person's message below.";

/// How Claude Code wraps a long paste in the prompt it submits (seen with
/// 2.1.328: `<pasted_content id="xxxx">` ... `</pasted_content id="xxxx">`).
const PASTE_OPEN: &str = "<pasted_content";

/// Characters that break a line without being ASCII newline: vertical tab,
/// form feed, NEL, and Unicode's line and paragraph separators. They become
/// `\n`, so the text a model reads has the same lines a terminal shows.
fn is_line_break(c: char) -> bool {
    matches!(c, '\u{0B}' | '\u{0C}' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// What every `@` of a message becomes: U+FF20 FULLWIDTH COMMERCIAL AT,
/// which reads the same to a person and a model but names no file. Claude
/// Code 2.1.328 reads a file named by `@path` anywhere in a prompt, pasted
/// or typed, and sends its content to the model whatever its permission
/// rules say; it drops invisible characters (a zero-width joiner after the
/// `@` does not stop it).
pub const MENTION_AT: char = '\u{FF20}';

/// Cleans a message for typing: every line break becomes `\n` (see
/// [`is_line_break`]); every other control character but tab (CR, ESC, NUL,
/// DEL, the rest of C0 and C1) is removed; every `@` becomes
/// [`MENTION_AT`]. Nothing left can end a bracketed paste early, press a
/// key, hide a line break from the shim, or name a file for the agent to
/// read.
pub fn sanitise(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for c in message.chars() {
        match c {
            '\n' | '\t' => out.push(c),
            c if is_line_break(c) => out.push('\n'),
            c if c.is_control() => {}
            '@' => out.push(MENTION_AT),
            c => out.push(c),
        }
    }
    out
}

/// The envelope's first line: the tag with the turn id and, for an agent
/// that answers through a reply file (no hooks), the file's path. It comes
/// from the shim alone and is typed as keys, not pasted, so that an agent
/// that marks pasted text as such never marks this line.
pub fn head(turn: &Uuid, reply_to: Option<&Path>) -> String {
    match reply_to {
        Some(p) => {
            let p = sanitise(&p.to_string_lossy()).replace('\n', "");
            format!("{TAG}{turn}] reply-to: {p}")
        }
        None => format!("{TAG}{turn}] {DIRECTIVE}"),
    }
}

/// What is pasted after [`head`] and a newline: the sanitised message.
pub fn body(message: &str) -> String {
    sanitise(message)
}

/// The whole envelope as one text (what an agent receives when head and
/// body arrive unwrapped).
pub fn render(turn: &Uuid, reply_to: Option<&Path>, message: &str) -> String {
    format!("{}\n{}", head(turn, reply_to), body(message))
}

/// The turn id of a prompt that starts with the envelope, if it does. The
/// envelope may sit inside Claude Code's paste wrapper
/// (`<pasted_content id="…">` on a line of its own before it), and leading
/// whitespace is ignored.
pub fn turn_of_prompt(prompt: &str) -> Option<Uuid> {
    let mut rest = prompt.trim_start();
    if let Some(after) = rest.strip_prefix(PASTE_OPEN) {
        rest = after.get(after.find('>')? + 1..)?.trim_start();
    }
    let rest = rest.strip_prefix(TAG)?;
    let id = rest.get(..36)?;
    if !rest[36..].starts_with(']') {
        return None;
    }
    crate::request::parse_turn_id(id).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitise_keeps_text_and_drops_controls() {
        let raw = "a\r\nb\tc\x1b[201~d\x00e\x7ff\u{9b}h ü 日本 🎉";
        assert_eq!(sanitise(raw), "a\nb\tc[201~defh ü 日本 🎉");
    }

    #[test]
    fn no_at_sign_names_a_file() {
        assert_eq!(
            sanitise("see @/etc/passwd and a@b.c"),
            "see ＠/etc/passwd and a＠b.c"
        );
        // Idempotent: the shim sanitises once more before typing.
        let once = sanitise("@x");
        assert_eq!(sanitise(&once), once);
    }

    #[test]
    fn every_line_break_becomes_a_newline() {
        let raw = "1\u{2028}2\u{2029}3\u{85}4\u{0B}5\u{0C}6";
        assert_eq!(sanitise(raw), "1\n2\n3\n4\n5\n6");
        // A separator cannot smuggle a second line into the head either.
        let id = Uuid::new_v4();
        let h = head(&id, Some(Path::new("/s/a\u{2028}b")));
        assert_eq!(h.lines().count(), 1, "{h:?}");
    }

    #[test]
    fn envelope_round_trips_through_a_prompt() {
        let id = Uuid::new_v4();
        let text = render(&id, Some(Path::new("/s/turns/x/reply.md")), "hi\x1b\nthere");
        assert!(text.starts_with(&format!("[PALIADIN:{id}] reply-to: /s/turns/x/reply.md\n")));
        assert!(text.ends_with("hi\nthere"));
        assert_eq!(turn_of_prompt(&text), Some(id));
        let hooked = render(&id, None, "hello");
        assert_eq!(
            hooked,
            format!("[PALIADIN:{id}] Answer the person's message below.\nhello")
        );
        assert_eq!(turn_of_prompt(&hooked), Some(id));
        assert_eq!(turn_of_prompt("hello"), None);
        assert_eq!(turn_of_prompt(&format!("[PALIADIN:{id}x")), None);
    }

    #[test]
    fn envelope_is_found_inside_the_paste_wrapper() {
        let id = Uuid::new_v4();
        let wrapped = format!(
            "\n\n<pasted_content id=\"a1b2\">\n[PALIADIN:{id}]\nline\n</pasted_content id=\"a1b2\">"
        );
        assert_eq!(turn_of_prompt(&wrapped), Some(id));
        assert_eq!(
            turn_of_prompt("<pasted_content id=\"x\">\nhello</pasted_content>"),
            None
        );
        assert_eq!(turn_of_prompt("<pasted_content"), None);
    }
}
