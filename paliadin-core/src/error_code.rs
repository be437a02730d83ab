//! The stable error codes of the client's record of a turn (PROTOCOL
//! section 6), below both the ssh and the transport layers of the client,
//! and their mapping from the shim's exit codes ([`crate::ExitCode`]). Owns
//! the vocabulary only; never decides which code a situation gets.

use std::fmt;

use crate::ExitCode;

/// The stable error codes of a turn's record (PROTOCOL section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// ssh could not connect: refused, timed out, no route, name unknown.
    Unreachable,
    /// ssh was refused the key, or the host key did not match.
    AuthFailed,
    /// The connection went away after the request was sent (ssh exited 255
    /// without the shim's status): the turn may go on on the laptop.
    ConnectionLost,
    /// The shim said 2.
    InvalidInput,
    /// The shim said 69 (or a local shim could not be started).
    AgentUnavailable,
    /// The shim said 75.
    Blocked,
    /// The shim said 76.
    AgentError,
    /// The shim said 78: the subscription's usage limit is reached.
    UsageLimit,
    /// The shim said 124, or the client's own deadline passed.
    Timeout,
    /// The client was stopped mid-turn.
    Interrupted,
    /// The agent's turn was stopped by a `cancel` (the shim said 130).
    Cancelled,
    /// Anything else.
    ShimError,
}

impl ErrorCode {
    /// Every code, in the order of PROTOCOL section 6.
    pub const ALL: [ErrorCode; 12] = [
        ErrorCode::Unreachable,
        ErrorCode::AuthFailed,
        ErrorCode::ConnectionLost,
        ErrorCode::InvalidInput,
        ErrorCode::AgentUnavailable,
        ErrorCode::Blocked,
        ErrorCode::AgentError,
        ErrorCode::UsageLimit,
        ErrorCode::Timeout,
        ErrorCode::Interrupted,
        ErrorCode::Cancelled,
        ErrorCode::ShimError,
    ];

    /// The stable string stored in the record.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unreachable => "unreachable",
            ErrorCode::AuthFailed => "auth_failed",
            ErrorCode::ConnectionLost => "connection_lost",
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::AgentUnavailable => "agent_unavailable",
            ErrorCode::Blocked => "blocked",
            ErrorCode::AgentError => "agent_error",
            ErrorCode::UsageLimit => "usage_limit",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Interrupted => "interrupted",
            ErrorCode::Cancelled => "cancelled",
            ErrorCode::ShimError => "shim_error",
        }
    }

    /// The code for a stored string, `None` for anything else.
    pub fn parse(s: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The code for the shim's exit status: `None` for 0, otherwise the
    /// code of the same name (1 and unknown statuses are `shim_error`).
    pub fn from_shim_exit(code: ExitCode) -> Option<ErrorCode> {
        Some(match code {
            ExitCode::Ok => return None,
            ExitCode::Failure => ErrorCode::ShimError,
            ExitCode::Invalid => ErrorCode::InvalidInput,
            ExitCode::Unavailable => ErrorCode::AgentUnavailable,
            ExitCode::Blocked => ErrorCode::Blocked,
            ExitCode::AgentError => ErrorCode::AgentError,
            ExitCode::UsageLimit => ErrorCode::UsageLimit,
            ExitCode::Timeout => ErrorCode::Timeout,
            ExitCode::Cancelled => ErrorCode::Cancelled,
        })
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_stable_strings() {
        let want = [
            "unreachable",
            "auth_failed",
            "connection_lost",
            "invalid_input",
            "agent_unavailable",
            "blocked",
            "agent_error",
            "usage_limit",
            "timeout",
            "interrupted",
            "cancelled",
            "shim_error",
        ];
        for (c, w) in ErrorCode::ALL.into_iter().zip(want) {
            assert_eq!(c.as_str(), w);
            assert_eq!(c.to_string(), w);
            assert_eq!(serde_json::to_string(&c).unwrap(), format!("\"{w}\""));
            assert_eq!(
                serde_json::from_str::<ErrorCode>(&format!("\"{w}\"")).unwrap(),
                c
            );
            assert_eq!(ErrorCode::parse(w), Some(c));
        }
        assert_eq!(ErrorCode::parse("ok"), None);
    }

    #[test]
    fn shim_exits_map_by_name() {
        for e in ExitCode::ALL {
            match ErrorCode::from_shim_exit(e) {
                None => assert_eq!(e, ExitCode::Ok),
                Some(c) => assert_eq!(c.as_str(), e.name()),
            }
        }
    }
}
