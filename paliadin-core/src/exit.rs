//! Exit codes of `paliadin-shim` (PROTOCOL section 1) and the stable error
//! codes of the client's record (section 6). Owns the mapping between the two;
//! never decides which one applies to a situation.

use std::fmt;

/// The shim's documented exit status. Nothing else may leave the shim: never
/// 255 (ssh's own), 126 or 127 (the shell's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExitCode {
    /// 0: done.
    Ok,
    /// 1: anything else.
    Failure,
    /// 2: invalid request; nothing was typed into any pane.
    Invalid,
    /// 69: tmux missing, the agent would not start, or its pane died mid-turn.
    Unavailable,
    /// 75: the pane waits on a person, or another turn held the session past the deadline.
    Blocked,
    /// 76: the agent reported a failed turn.
    AgentError,
    /// 78: the subscription's usage limit is reached; the stderr line says
    /// when it resets.
    UsageLimit,
    /// 124: no reply within the wait; `poll` collects it later.
    Timeout,
    /// 130: the turn was stopped by a `cancel` request (issue 14).
    Cancelled,
}

impl ExitCode {
    /// Every code, for tables and tests.
    pub const ALL: [ExitCode; 9] = [
        ExitCode::Ok,
        ExitCode::Failure,
        ExitCode::Invalid,
        ExitCode::Unavailable,
        ExitCode::Blocked,
        ExitCode::AgentError,
        ExitCode::UsageLimit,
        ExitCode::Timeout,
        ExitCode::Cancelled,
    ];

    /// The numeric status.
    pub fn code(self) -> i32 {
        match self {
            ExitCode::Ok => 0,
            ExitCode::Failure => 1,
            ExitCode::Invalid => 2,
            ExitCode::Unavailable => 69,
            ExitCode::Blocked => 75,
            ExitCode::AgentError => 76,
            ExitCode::UsageLimit => 78,
            ExitCode::Timeout => 124,
            ExitCode::Cancelled => 130,
        }
    }

    /// The code for a numeric status; unknown statuses are `Failure`.
    pub fn from_code(code: i32) -> ExitCode {
        ExitCode::ALL
            .into_iter()
            .find(|c| c.code() == code)
            .unwrap_or(ExitCode::Failure)
    }

    /// The stable name used in the shim's stderr line and, for failures, the
    /// client's error code (PROTOCOL section 6).
    pub fn name(self) -> &'static str {
        match self {
            ExitCode::Ok => "ok",
            ExitCode::Failure => "shim_error",
            ExitCode::Invalid => "invalid_input",
            ExitCode::Unavailable => "agent_unavailable",
            ExitCode::Blocked => "blocked",
            ExitCode::AgentError => "agent_error",
            ExitCode::UsageLimit => "usage_limit",
            ExitCode::Timeout => "timeout",
            ExitCode::Cancelled => "cancelled",
        }
    }

    /// Whether the shim prints the pane's last lines after its error line.
    pub fn shows_pane(self) -> bool {
        matches!(self, ExitCode::Blocked | ExitCode::Timeout)
    }
}

impl fmt::Display for ExitCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(c: ExitCode) -> Self {
        std::process::ExitCode::from(c.code() as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_avoid_shell_and_ssh_statuses() {
        for c in ExitCode::ALL {
            assert_eq!(ExitCode::from_code(c.code()), c);
            assert!(![126, 127, 255].contains(&c.code()));
        }
        assert_eq!(ExitCode::from_code(255), ExitCode::Failure);
    }
}
