//! What a turn's progress looks like on the wire (PROTOCOL section 7): one
//! JSON object per line, recorded by the shim's hooks as the agent works and
//! streamed by `run-turn-events`, the reply last. Owns the event vocabulary
//! and the rule for a tool's summary; never reads a file or a hook's stdin.
//!
//! A summary names a tool's target in a few words (a file's name, a
//! command's first word, a URL's host) and never carries the tool's whole
//! input, a pattern or query, or anything the tool read or printed.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The agent took the turn's prompt.
    Submitted,
    /// A tool call begins.
    ToolStarted,
    /// A tool call ended well.
    ToolFinished,
    /// A tool call failed (or was denied).
    ToolFailed,
    /// The agent compacts its context.
    Compacting,
    /// The pane waits on a person.
    Blocked,
    /// The agent reported a failed turn.
    Failed,
    /// The agent ended the turn with its final message.
    Replied,
    /// The agent went idle.
    Idle,
    /// What the turn's model requests used, in `usage` (just before the
    /// reply, or after `failed`).
    Usage,
    /// The last line of a stream: the reply itself, in `text`.
    Reply,
    /// A tool call waits for a person's yes (the shim's approve mode):
    /// `id` names the request for `approve`, `tool` and `target` say what.
    PermissionRequest,
    /// The session's agent was asleep and started again for this turn
    /// (`detail`: on its conversation, or a new one).
    Woke,
    /// A kind this version does not know (a newer shim).
    #[serde(other)]
    Other,
}

impl Kind {
    /// Every kind this version knows, in the order of PROTOCOL section 7
    /// (`Other` last: it stands for any name not in this list).
    pub const ALL: [Kind; 14] = [
        Kind::Submitted,
        Kind::ToolStarted,
        Kind::ToolFinished,
        Kind::ToolFailed,
        Kind::Compacting,
        Kind::Blocked,
        Kind::Failed,
        Kind::Replied,
        Kind::Idle,
        Kind::Usage,
        Kind::Reply,
        Kind::PermissionRequest,
        Kind::Woke,
        Kind::Other,
    ];

    /// The name on the wire and in the client's log (`tool_started`);
    /// `other` for a kind this version does not know.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Submitted => "submitted",
            Kind::ToolStarted => "tool_started",
            Kind::ToolFinished => "tool_finished",
            Kind::ToolFailed => "tool_failed",
            Kind::Compacting => "compacting",
            Kind::Blocked => "blocked",
            Kind::Failed => "failed",
            Kind::Replied => "replied",
            Kind::Idle => "idle",
            Kind::Usage => "usage",
            Kind::Reply => "reply",
            Kind::PermissionRequest => "permission_request",
            Kind::Woke => "woke",
            Kind::Other => "other",
        }
    }

    /// The kind a name stands for; [`Kind::Other`] for any other name, as
    /// serde reads it.
    pub fn parse(name: &str) -> Kind {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == name)
            .unwrap_or(Kind::Other)
    }
}

/// One line of a turn's progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub kind: Kind,
    /// When, as RFC 3339 UTC with milliseconds.
    pub at: String,
    /// The tool's name, for tool events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// A short, safe summary of the tool's target (see the module doc).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// A few words more (why a turn failed or is blocked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The error code of a `failed` event that has one of its own
    /// (`cancelled`: stopped by a `cancel` request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// A permission request's id (for `approve`), on its event only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The reply, on the last line of a stream only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// For a `failed` turn at the subscription's usage limit: when the
    /// limit resets, RFC 3339 UTC (PROTOCOL section 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resets_at: Option<String>,
    /// ... and which window it is (`five_hour`, `seven_day`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// What the turn's model requests used, on a `usage` event only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

impl Event {
    /// An event of `kind` at `at` with nothing else: the fields a kind
    /// carries are set over it (`Event { tool, ..Event::new(kind, at) }`).
    pub fn new(kind: Kind, at: impl Into<String>) -> Event {
        Event {
            kind,
            at: at.into(),
            tool: None,
            target: None,
            detail: None,
            code: None,
            id: None,
            text: None,
            resets_at: None,
            window: None,
            usage: None,
        }
    }
}

/// What a turn's own model requests used, as the agent's transcript
/// records them (Claude Code: each request's `message.usage`, counted once
/// per request however many lines repeat it). Tokens are the API's counts,
/// not an estimate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub cache_creation_input_tokens: u64,
    /// The model that answered (the last request's, if they differ).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// How many model requests the turn made (its subagents' included).
    pub requests: u64,
}

/// Longest summary or detail, in characters (made one line by
/// [`crate::text::one_line`]).
pub const MAX_SUMMARY: usize = 60;

/// [`crate::text::one_line`] cut at [`MAX_SUMMARY`].
fn one_line(s: &str) -> String {
    crate::text::one_line(s, Some(MAX_SUMMARY))
}

fn last_component(path: &str) -> Option<String> {
    let name = path.trim_end_matches('/').rsplit('/').next()?;
    (!name.is_empty()).then(|| one_line(name))
}

fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split(['/', '?', '#']).next()?;
    // Never credentials: user:password@host.
    let host = authority.rsplit('@').next()?;
    (!host.is_empty()).then(|| one_line(host))
}

/// A short, safe summary of a tool call's target (see the module doc).
pub fn summarise(tool: &str, input: &Value) -> Option<String> {
    let s = |k: &str| input.get(k).and_then(Value::as_str);
    match tool {
        "Bash" => {
            let cmd = s("command")?;
            // Skip leading VAR=value assignments: their values may be secrets.
            let word = cmd
                .split_whitespace()
                .find(|w| !w.contains('=') || w.starts_with('='))?;
            last_component(word)
        }
        "WebFetch" => host_of(s("url")?),
        // A search's query, a pattern or a glob may say more than a name.
        "WebSearch" | "Grep" | "Glob" => s("path").and_then(last_component),
        _ => ["file_path", "notebook_path", "path"]
            .iter()
            .find_map(|k| s(k))
            .and_then(last_component),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn summaries_name_the_target_and_nothing_more() {
        let cases = [
            (
                "Read",
                json!({"file_path": "/home/m/data/invoices.csv"}),
                Some("invoices.csv"),
            ),
            (
                "Edit",
                json!({"file_path": "src/a.rs", "old_string": "secret", "new_string": "x"}),
                Some("a.rs"),
            ),
            (
                "Bash",
                json!({"command": "TOKEN=abc /usr/bin/psql -c 'select *'"}),
                Some("psql"),
            ),
            ("Bash", json!({"command": "ls -la\nrm -rf /"}), Some("ls")),
            (
                "WebFetch",
                json!({"url": "https://user:pw@example.com/a?b=c"}),
                Some("example.com"),
            ),
            ("WebSearch", json!({"query": "my private question"}), None),
            (
                "Grep",
                json!({"pattern": "password=.*", "path": "/etc"}),
                Some("etc"),
            ),
            ("Task", json!({"prompt": "do everything"}), None),
            (
                "Read",
                json!({"file_path": "/x/\u{1b}[31mevil\nname"}),
                Some("[31mevil name"),
            ),
        ];
        for (tool, input, want) in cases {
            assert_eq!(summarise(tool, &input).as_deref(), want, "{tool} {input}");
        }
        let long = "a".repeat(200);
        assert_eq!(
            summarise("Read", &json!({ "file_path": long }))
                .unwrap()
                .chars()
                .count(),
            MAX_SUMMARY
        );
    }

    #[test]
    fn kind_names_are_the_wire_names() {
        for k in Kind::ALL {
            let wire = serde_json::to_value(k).unwrap();
            assert_eq!(wire, k.as_str(), "{k:?}");
            assert_eq!(Kind::parse(k.as_str()), k);
        }
        assert_eq!(Kind::parse("thinking_hard"), Kind::Other);
    }

    #[test]
    fn events_round_trip_and_unknown_kinds_are_tolerated() {
        let e = Event {
            tool: Some("Read".into()),
            target: Some("a.csv".into()),
            ..Event::new(Kind::ToolStarted, "2026-11-30T12:00:00.000Z")
        };
        let line = serde_json::to_string(&e).unwrap();
        assert_eq!(
            line,
            r#"{"kind":"tool_started","at":"2026-11-30T12:00:00.000Z","tool":"Read","target":"a.csv"}"#
        );
        assert_eq!(serde_json::from_str::<Event>(&line).unwrap(), e);
        let newer: Event =
            serde_json::from_str(r#"{"kind":"thinking_hard","at":"x","extra":1}"#).unwrap();
        assert_eq!(newer.kind, Kind::Other);
    }
}
