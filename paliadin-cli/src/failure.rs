//! The one failure type of paliadin-cli: what went wrong (a stable code:
//! those of PROTOCOL section 6 and the client's own), why, on which turn,
//! and what the reader can type next. The library and every command return
//! it; `main` prints it once and exits with [`Failure::exit_status`] (`chat`
//! shows a turn's failure through the same [`Failure::line`] and goes on).
//! Never prints, and never decides which code a call's result gets (that is
//! `transport.rs` and `outcome.rs`).
//!
//! A new error code of PROTOCOL section 6 is one line in
//! `paliadin_core::error_code` and one in [`crate::exit::of`]; the compiler
//! points at both.

use paliadin_core::error_code::ErrorCode;
use paliadin_core::text;
use serde::Serialize;

use crate::store::{StoreError, Turn};

/// What kind of failure: a call's code (PROTOCOL section 6), or one of the
/// client's own that no call produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// A call to the shim (or the turn it ran) failed so.
    Call(ErrorCode),
    /// Wrong usage: a bad flag value, session name, turn id (`invalid_input`).
    Usage,
    /// The configuration is broken or missing (`config_error`).
    Config,
    /// The turn log could not be read or written (`log_error`).
    Log,
    /// Something asked for is not there, such as a turn id (`not_found`).
    NotFound,
    /// Anything else: the terminal, a file (`failure`).
    Other,
}

impl Code {
    /// The stable string of `error_code` in JSON and in the record.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Call(c) => c.as_str(),
            Code::Usage => "invalid_input",
            Code::Config => "config_error",
            Code::Log => "log_error",
            Code::NotFound => "not_found",
            Code::Other => "failure",
        }
    }

    /// The exit status the README's table promises for it.
    pub fn exit_status(self) -> u8 {
        match self {
            Code::Call(c) => crate::exit::of(c),
            Code::Usage => crate::exit::USAGE,
            Code::Config | Code::Log | Code::NotFound | Code::Other => crate::exit::FAILURE,
        }
    }

    /// Whether `paliadin-cli doctor` checks what this failure is about (the
    /// configuration, the key and known_hosts, the host, the shim, the
    /// agent), so that the failure says to run it.
    fn doctor_explains(self) -> bool {
        matches!(
            self,
            Code::Config
                | Code::Call(
                    ErrorCode::Unreachable | ErrorCode::AuthFailed | ErrorCode::AgentUnavailable
                )
        )
    }
}

/// A failure, printed once: `paliadin-cli: <what>: <code>: <detail>; <hint>`.
#[derive(Debug)]
pub struct Failure {
    pub code: Code,
    /// What was being done, for the line ("turn 3f2a…", "reset me").
    pub what: Option<String>,
    /// Why, in one line.
    pub detail: String,
    /// What to type next: a command the reader can run, or a fix.
    pub hint: Option<String>,
    /// The turn's record, when the failure is a turn's: its id and how it
    /// ended are there (and in the JSON error object under `turn`).
    pub turn: Option<Box<Turn>>,
    /// Stdout went away under us: not worth a word, and exit 0.
    broken_pipe: bool,
}

/// The JSON error object of every `--json` failure.
#[derive(Serialize)]
struct ErrorObject<'a> {
    error_code: &'static str,
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    turn_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    turn: Option<&'a Turn>,
}

impl Failure {
    /// A failure of `code` with `detail` (made one line).
    pub fn new(code: Code, detail: impl AsRef<str>) -> Failure {
        Failure {
            code,
            what: None,
            detail: text::one_line(detail.as_ref(), None),
            hint: None,
            turn: None,
            broken_pipe: false,
        }
    }

    /// A call that failed with `code`.
    pub fn call(code: ErrorCode, detail: impl AsRef<str>) -> Failure {
        Failure::new(Code::Call(code), detail)
    }

    /// Wrong usage (exit 2).
    pub fn usage(detail: impl AsRef<str>) -> Failure {
        Failure::new(Code::Usage, detail)
    }

    /// A broken or missing configuration (exit 1).
    pub fn config(detail: impl AsRef<str>) -> Failure {
        Failure::new(Code::Config, detail)
    }

    /// Something asked for that is not there (exit 1).
    pub fn not_found(detail: impl AsRef<str>) -> Failure {
        Failure::new(Code::NotFound, detail)
    }

    /// The failure of a turn, carrying its record.
    pub fn of_turn(code: ErrorCode, turn: Turn, hint: Option<String>) -> Failure {
        let detail = turn.row.outcome.error_detail.clone().unwrap_or_default();
        let mut f = Failure::call(code, detail)
            .what(format!("turn {}", turn.row.turn.turn_id))
            .hint_opt(hint);
        f.turn = Some(Box::new(turn));
        f
    }

    /// Says what was being done.
    pub fn what(mut self, what: impl Into<String>) -> Failure {
        self.what = Some(what.into());
        self
    }

    /// Says what to type next.
    pub fn hint(mut self, hint: impl Into<String>) -> Failure {
        self.hint = Some(hint.into());
        self
    }

    fn hint_opt(mut self, hint: Option<String>) -> Failure {
        self.hint = hint.or(self.hint);
        self
    }

    /// Whether it is only stdout gone away (a closed pipe): exit 0, silent.
    pub fn is_broken_pipe(&self) -> bool {
        self.broken_pipe
    }

    /// The exit status.
    pub fn exit_status(&self) -> u8 {
        self.code.exit_status()
    }

    /// The hint as shown: the failure's own, then `run paliadin-cli doctor`
    /// when doctor checks what it is about.
    pub fn full_hint(&self) -> Option<String> {
        let doctor = self
            .code
            .doctor_explains()
            .then_some("run paliadin-cli doctor");
        match (&self.hint, doctor) {
            (Some(h), Some(d)) => Some(format!("{h}; {d}")),
            (Some(h), None) => Some(h.clone()),
            (None, d) => d.map(str::to_owned),
        }
    }

    /// The one line: `<what>: <code>: <detail>; <hint>` (the code for a
    /// call's failure only; the rest say what they are in words).
    pub fn line(&self) -> String {
        match &self.what {
            Some(w) => text::one_line(&format!("{w}: {}", self.reason()), None),
            None => self.reason(),
        }
    }

    /// [`Failure::line`] without what was being done: `<code>: <detail>; <hint>`.
    pub fn reason(&self) -> String {
        let mut l = String::new();
        if let Code::Call(c) = self.code {
            l.push_str(c.as_str());
            l.push_str(": ");
        }
        l.push_str(&self.detail);
        if let Some(h) = self.full_hint() {
            l.push_str("; ");
            l.push_str(&h);
        }
        text::one_line(&l, None)
    }

    /// The JSON error object: `error_code`, `error` (the detail), and when
    /// known `hint`, `turn_id` and the turn's record as `turn`.
    pub fn json(&self) -> serde_json::Value {
        let turn = self.turn.as_deref();
        serde_json::to_value(ErrorObject {
            error_code: self.code.as_str(),
            error: &self.detail,
            hint: self.full_hint(),
            turn_id: turn.map(|t| t.row.turn.turn_id.to_string()),
            turn,
        })
        .unwrap_or_default()
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.line())
    }
}

impl std::error::Error for Failure {}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        match e {
            StoreError::UnknownTurn(_) => Failure::not_found(e.to_string()),
            StoreError::EmptyQuery => Failure::usage(e.to_string()),
            _ => Failure::new(Code::Log, e.to_string()),
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        let mut f = Failure::new(Code::Other, e.to_string());
        f.broken_pipe = e.kind() == std::io::ErrorKind::BrokenPipe;
        f
    }
}

/// Context added with anyhow at the edge: the code from what it wraps (a
/// failure, the log's error), the text from the whole chain.
impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Failure {
        let e = match e.downcast::<Failure>() {
            Ok(f) => return f,
            Err(e) => e,
        };
        let code = if e.chain().any(|c| c.downcast_ref::<StoreError>().is_some()) {
            Code::Log
        } else {
            Code::Other
        };
        let mut f = Failure::new(code, format!("{e:#}"));
        f.broken_pipe = e.chain().any(|c| {
            c.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        });
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_with_the_code_of_a_call_and_the_doctor_where_it_helps() {
        let f = Failure::call(ErrorCode::AuthFailed, "Permission denied\n(publickey)")
            .what("reset me")
            .hint("chmod 600 /k");
        assert_eq!(
            f.line(),
            "reset me: auth_failed: Permission denied (publickey); chmod 600 /k; run paliadin-cli doctor"
        );
        assert_eq!(f.exit_status(), 77);
        let f = Failure::usage("invalid session name \"a/b\"");
        assert_eq!(f.line(), "invalid session name \"a/b\"");
        assert_eq!(f.exit_status(), 2);
        let v = f.json();
        assert_eq!(v["error_code"], "invalid_input");
        assert_eq!(v["error"], "invalid session name \"a/b\"");
        assert!(v.get("hint").is_none() && v.get("turn").is_none());
        let v = Failure::config("no host").json();
        assert_eq!(v["hint"], "run paliadin-cli doctor");
    }

    #[test]
    fn a_broken_pipe_is_known_through_context() {
        let io = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        let f: Failure = anyhow::Error::from(io).context("cannot write").into();
        assert!(f.is_broken_pipe());
        let f: Failure = anyhow::anyhow!("x").into();
        assert!(!f.is_broken_pipe());
        let inner = Failure::not_found("no turn 0000");
        let f: Failure = anyhow::Error::from(inner).into();
        assert_eq!(f.code, Code::NotFound);
    }
}
