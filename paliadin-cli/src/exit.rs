//! The exit statuses of `paliadin-cli`, one per error code of PROTOCOL
//! section 6, so a script can tell failures apart without parsing text. The
//! README's table is written from this file.

use paliadin_core::error_code::ErrorCode;

/// Done.
pub const OK: u8 = 0;
/// Anything else: configuration, the log, the terminal.
pub const FAILURE: u8 = 1;
/// Wrong usage, or the shim said the request was invalid.
pub const USAGE: u8 = 2;
/// `health` found the shim not healthy (the Nagios convention: CRITICAL).
pub const CRITICAL: u8 = 2;
/// `health`: the shim answers, but a usage limit holds (Nagios WARNING).
pub const WARNING: u8 = 1;
/// `health` could not even try (no host, a broken config): Nagios UNKNOWN.
pub const UNKNOWN: u8 = 3;

/// The exit status for a turn or call that failed with `code`.
pub fn of(code: ErrorCode) -> u8 {
    match code {
        ErrorCode::InvalidInput => USAGE,
        ErrorCode::Unreachable => 68,
        ErrorCode::AuthFailed => 77,
        ErrorCode::ConnectionLost => 71,
        ErrorCode::AgentUnavailable => 69,
        ErrorCode::ShimError => 70,
        ErrorCode::Blocked => 75,
        ErrorCode::AgentError => 76,
        ErrorCode::UsageLimit => 78,
        ErrorCode::Timeout => 124,
        // Both stopped by a person: the SIGINT convention.
        ErrorCode::Interrupted | ErrorCode::Cancelled => 130,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_own_status() {
        let mut seen = std::collections::HashSet::new();
        for c in ErrorCode::ALL {
            if c == ErrorCode::Cancelled {
                assert_eq!(of(c), of(ErrorCode::Interrupted), "both are 130");
                continue;
            }
            assert!(seen.insert(of(c)), "{c} shares its status");
            assert_ne!(of(c), FAILURE);
        }
    }
}
