//! `paliadin-shim status-line` (local only, hidden like `hook`): Claude
//! Code's status line command, which the shim's settings file registers
//! (PROTOCOL section 8). Claude Code hands it one JSON object on stdin, the
//! only place the plan's windows show (`rate_limits.five_hour` and
//! `.seven_day`: `used_percentage`, `resets_at`). It keeps the latest in the
//! session's state (`windows.json`, written atomically; windows a call does
//! not carry are kept from the last one) and prints one short line, which
//! replaces the user's own status line in the attached pane. Like a hook it
//! reads stdin with a bound and exits 0 at once, whatever it got.

use paliadin_core::subscription::{WindowUse, Windows};
use serde_json::{json, Value};

use crate::state::SessionDir;

/// The windows in a status line's input, each when it is there and sane.
pub fn windows_of(v: &Value) -> Windows {
    let one = |name: &str| {
        let w = &v["rate_limits"][name];
        let used = w["used_percentage"].as_f64()?;
        let resets = w["resets_at"]
            .as_i64()
            .or_else(|| w["resets_at"].as_f64().map(|f| f as i64))?;
        (used.is_finite() && (0.0..=1000.0).contains(&used)).then_some(WindowUse {
            used_percentage: used,
            resets_at: resets,
        })
    };
    Windows {
        five_hour: one("five_hour"),
        seven_day: one("seven_day"),
    }
}

/// The session's windows as last recorded, and when (ms), if ever.
pub fn recorded(s: &SessionDir) -> Option<(Windows, i64)> {
    let v: Value = serde_json::from_str(&s.windows_record()?).ok()?;
    let w: Windows = serde_json::from_value(v["windows"].clone()).ok()?;
    Some((w, v["at_ms"].as_i64()?))
}

/// The line the attached pane shows: `paliadin · 5h 20% · 7d 10%`.
pub fn line(w: &Windows) -> String {
    if w.is_empty() {
        "paliadin".to_owned()
    } else {
        format!("paliadin · {}", w.short())
    }
}

/// Records what this call saw and returns the line to print.
fn record(v: &Value) -> Windows {
    let mut seen = windows_of(v);
    // Only the session's own agent's status line is kept.
    let Some(dir) = crate::hooks::own_session("status-line") else {
        return seen;
    };
    let last = recorded(&dir).map(|(w, _)| w).unwrap_or_default();
    seen.five_hour = seen.five_hour.or(last.five_hour);
    seen.seven_day = seen.seven_day.or(last.seven_day);
    // Every call, with or without windows: `at` says when claude last
    // reported (an API key's claude never has any).
    let text = json!({ "at_ms": paliadin_core::timefmt::now_ms(), "windows": seen });
    let _ = dir.set_windows_record(&text.to_string());
    seen
}

/// The handler: always returns normally.
pub fn run() {
    let input = crate::hooks::read_bounded_stdin();
    let v: Value = serde_json::from_slice(&input).unwrap_or(Value::Null);
    let w = record(&v);
    let _ = crate::output::print(format!("{}\n", line(&w)).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_windows_come_from_rate_limits_and_make_a_short_line() {
        // Claude Code 2.1.328's status line input (abridged).
        let v: Value = serde_json::from_str(r#"{"cwd":"/w","rate_limits":{"five_hour":{"resets_at":1796234534,"used_percentage":20},"seven_day":{"resets_at":1796821334,"used_percentage":10}},"session_id":"s"}"#).unwrap();
        let w = windows_of(&v);
        assert_eq!(w.five_hour.unwrap().resets_at, 1_796_234_534);
        assert_eq!(line(&w), "paliadin · 5h 20% · 7d 10%");
        // Before the first answer there are none; junk is none too.
        assert!(windows_of(&serde_json::json!({"cwd": "/w"})).is_empty());
        let junk = serde_json::json!({"rate_limits": {"five_hour": {"used_percentage": "x", "resets_at": 1}}});
        assert!(windows_of(&junk).is_empty());
        assert_eq!(line(&Windows::default()), "paliadin");
    }
}
