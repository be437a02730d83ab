//! The envelope of PROTOCOL section 3: how a turn's text is cleaned and
//! framed before it is pasted, and how a hook recognises it again. Never
//! talks to tmux; the shim pastes what [`render`] returns, unchanged.

use std::path::Path;
use uuid::Uuid;

/// The envelope's opening tag.
pub const TAG: &str = "[PALIADIN:";

/// Removes every control character but newline and tab: C0 (CR, ESC, NUL,
/// ...), DEL and C1. Nothing left can end a bracketed paste early, press a
/// key, or start a line of its own.
pub fn sanitise(message: &str) -> String {
    message
        .chars()
        .filter(|&c| c == '\n' || c == '\t' || !c.is_control())
        .collect()
}

/// The text typed into the pane for a turn: the shim's own first line, then
/// the sanitised message.
pub fn render(turn: &Uuid, reply_to: &Path, message: &str) -> String {
    let reply_to = sanitise(&reply_to.to_string_lossy()).replace('\n', "");
    format!("{TAG}{turn}] reply-to: {reply_to}\n{}", sanitise(message))
}

/// The turn id of a prompt that starts with the envelope, if it does.
pub fn turn_of_prompt(prompt: &str) -> Option<Uuid> {
    let rest = prompt.trim_start().strip_prefix(TAG)?;
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
        let raw = "a\r\nb\tc\x1b[201~d\x00e\x7ff\u{85}g\u{9b}h ü 日本 🎉";
        assert_eq!(sanitise(raw), "a\nb\tc[201~defgh ü 日本 🎉");
    }

    #[test]
    fn envelope_round_trips_through_a_prompt() {
        let id = Uuid::new_v4();
        let text = render(&id, Path::new("/s/turns/x/reply.md"), "hi\x1b\nthere");
        assert!(text.starts_with(&format!("[PALIADIN:{id}] reply-to: /s/turns/x/reply.md\n")));
        assert!(text.ends_with("hi\nthere"));
        assert_eq!(turn_of_prompt(&text), Some(id));
        assert_eq!(turn_of_prompt("hello"), None);
        assert_eq!(turn_of_prompt(&format!("[PALIADIN:{id}x")), None);
    }
}
