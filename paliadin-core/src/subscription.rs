//! The subscription's budget as both sides see it (PROTOCOL section 8): its
//! windows (five hour, seven day: used percentage and reset time, what
//! Claude Code hands its status line) and a usage limit reached (which
//! window, when it resets). Owns their wire form: the JSON of the shim's
//! `status` and the one stderr line of exit 78 `usage_limit`, written by
//! [`limit_detail`] and read back by [`resets_of_detail`]. Never reads a
//! file, a clock or a pane.

use serde::{Deserialize, Serialize};

/// One window of the plan, as the status line reports it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WindowUse {
    /// How much of it is used, in whole percent (100 at the limit).
    pub used_percentage: f64,
    /// When it resets, Unix seconds.
    pub resets_at: i64,
}

/// Both windows, each when known.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Windows {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub five_hour: Option<WindowUse>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seven_day: Option<WindowUse>,
}

impl Windows {
    /// Whether neither window is known.
    pub fn is_empty(&self) -> bool {
        self.five_hour.is_none() && self.seven_day.is_none()
    }

    /// The window named `name` (`five_hour`, `seven_day`).
    pub fn get(&self, name: &str) -> Option<WindowUse> {
        match name {
            "five_hour" => self.five_hour,
            "seven_day" => self.seven_day,
            _ => None,
        }
    }

    /// `5h 20% · 7d 10%`: the known windows, short.
    pub fn short(&self) -> String {
        let mut parts = Vec::new();
        if let Some(w) = self.five_hour {
            parts.push(format!("5h {}%", w.used_percentage.round()));
        }
        if let Some(w) = self.seven_day {
            parts.push(format!("7d {}%", w.used_percentage.round()));
        }
        parts.join(" · ")
    }
}

/// A usage limit the agent reported: which window (Claude Code's
/// `rateLimitType`: `five_hour`, `seven_day`, …) and when it resets (Unix
/// seconds), each when known.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Limit {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resets_at: Option<i64>,
}

/// A window's name for people: `five-hour`, `seven-day`, else `usage`.
pub fn window_words(window: Option<&str>) -> &'static str {
    match window {
        Some("five_hour") => "five-hour",
        Some("seven_day") => "seven-day",
        Some("seven_day_opus") => "seven-day Opus",
        Some("seven_day_sonnet") => "seven-day Sonnet",
        _ => "usage",
    }
}

/// Unix seconds as RFC 3339 UTC without fractions: `2026-12-02T18:00:00Z`.
pub fn rfc3339_s(secs: i64) -> String {
    let ms = crate::timefmt::rfc3339_ms(secs.saturating_mul(1000));
    ms.replace(".000Z", "Z")
}

/// What precedes the reset time in [`limit_detail`].
const RESETS_AT: &str = "; it resets at ";

/// The detail of exit 78's stderr line: `the subscription's five-hour
/// limit is reached; it resets at 2026-12-02T18:00:00Z`.
pub fn limit_detail(limit: &Limit) -> String {
    let what = format!(
        "the subscription's {} limit is reached",
        window_words(limit.window.as_deref())
    );
    match limit.resets_at {
        Some(t) => format!("{what}{RESETS_AT}{}", rfc3339_s(t)),
        None => format!("{what}; when it resets is not known"),
    }
}

/// The reset time (Unix seconds) in a [`limit_detail`] (with or without
/// the shim's `paliadin-shim: usage_limit: ` before it).
pub fn resets_of_detail(detail: &str) -> Option<i64> {
    let (_, rest) = detail.rsplit_once(RESETS_AT)?;
    let when = rest.split_whitespace().next().filter(|w| w.contains('T'))?;
    crate::timefmt::parse_since(when, 0)
        .ok()
        .map(|ms| ms.div_euclid(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_detail_carries_the_reset_and_reads_back() {
        let l = Limit {
            window: Some("five_hour".into()),
            resets_at: Some(1_796_234_400),
        };
        let d = limit_detail(&l);
        assert_eq!(
            d,
            "the subscription's five-hour limit is reached; it resets at 2026-12-02T18:00:00Z"
        );
        assert_eq!(resets_of_detail(&d), Some(1_796_234_400));
        assert_eq!(
            resets_of_detail(&format!("paliadin-shim: usage_limit: {d}")),
            Some(1_796_234_400)
        );
        let unknown = limit_detail(&Limit::default());
        assert_eq!(
            unknown,
            "the subscription's usage limit is reached; when it resets is not known"
        );
        assert_eq!(resets_of_detail(&unknown), None);
        assert_eq!(resets_of_detail("; it resets at soon"), None);
        assert_eq!(rfc3339_s(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn windows_read_the_status_lines_form_and_say_it_short() {
        let w: Windows = serde_json::from_str(
            r#"{"five_hour":{"resets_at":1796234534,"used_percentage":20},"seven_day":{"resets_at":1796821334,"used_percentage":10}}"#,
        )
        .unwrap();
        assert_eq!(w.short(), "5h 20% · 7d 10%");
        assert_eq!(w.get("five_hour").unwrap().resets_at, 1_796_234_534);
        assert!(Windows::default().is_empty());
        assert_eq!(Windows::default().short(), "");
    }
}
