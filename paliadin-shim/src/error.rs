//! The shim's one error type: an exit code of PROTOCOL section 1, a one-line
//! detail, and for 75 and 124 the pane's last lines. Owns how a failure is
//! printed; never decides which failure happened.

use paliadin_core::text::one_line;
use paliadin_core::ExitCode;
use std::fmt;

/// A failure the shim reports with a documented exit code.
#[derive(Debug)]
pub struct ShimError {
    pub code: ExitCode,
    pub detail: String,
    /// The pane's last lines, shown after the error line.
    pub pane: Option<String>,
}

impl ShimError {
    pub fn new(code: ExitCode, detail: impl Into<String>) -> ShimError {
        ShimError {
            code,
            detail: one_line(&detail.into(), None),
            pane: None,
        }
    }
    pub fn invalid(detail: impl Into<String>) -> ShimError {
        ShimError::new(ExitCode::Invalid, detail)
    }
    pub fn unavailable(detail: impl Into<String>) -> ShimError {
        ShimError::new(ExitCode::Unavailable, detail)
    }
    pub fn failure(detail: impl Into<String>) -> ShimError {
        ShimError::new(ExitCode::Failure, detail)
    }
    /// Adds the pane's last lines (shown only for codes that show the pane).
    pub fn with_pane(mut self, pane: Option<String>) -> ShimError {
        self.pane = pane.filter(|p| !p.trim().is_empty());
        self
    }

    /// Writes the error line and, where the protocol says so, the pane.
    pub fn report(&self, err: &mut dyn std::io::Write) {
        let _ = writeln!(err, "paliadin-shim: {}: {}", self.code, self.detail);
        if let (true, Some(pane)) = (self.code.shows_pane(), &self.pane) {
            let _ = writeln!(err, "--- last lines of the pane ---");
            // The agent's screen: its text, never its controls.
            let pane = paliadin_core::text::for_terminal(pane.trim_end());
            let _ = writeln!(err, "{pane}");
        }
    }
}

impl fmt::Display for ShimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

impl std::error::Error for ShimError {}

impl From<std::io::Error> for ShimError {
    fn from(e: std::io::Error) -> ShimError {
        ShimError::failure(e.to_string())
    }
}

/// An I/O failure with what was being done (and so where to look).
pub fn io_error(what: &str, e: std::io::Error) -> ShimError {
    ShimError::failure(format!("{what}: {e}"))
}

/// The result of every verb.
pub type Result<T, E = ShimError> = std::result::Result<T, E>;
