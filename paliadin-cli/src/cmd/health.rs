//! `health`: for cron and monitoring. Exactly one line on stdout in every
//! case, Nagios style with performance data: `OK … | time=0.012s` (exit 0),
//! `CRITICAL … | time=…` (exit 2), `UNKNOWN …` (exit 3) when the probe could
//! not even be tried. Each probe is recorded in the log (`log probes` reads
//! them back).

use paliadin_core::timefmt::{now_ms, rfc3339_ms};

use crate::cli::HealthArgs;
use crate::cmd::{one_line, out, App};
use crate::exit;
use std::time::Duration;

/// The performance data of a probe that took `ms`.
fn perf(ms: i64) -> String {
    format!("time={:.3}s", ms as f64 / 1000.0)
}

/// Prints the UNKNOWN line (or JSON object) for a probe that could not be
/// tried, and returns its status.
pub fn unknown(a: &HealthArgs, code: &str, error: &str) -> u8 {
    let text = if a.json {
        format!(
            "{}\n",
            serde_json::json!({
                "ok": false, "state": "UNKNOWN", "at": rfc3339_ms(now_ms()),
                "error_code": code, "error": one_line(error),
            })
        )
    } else {
        format!("UNKNOWN paliadin {code}: {}\n", one_line(error))
    };
    // Nothing else to say if stdout is gone.
    let _ = out(&text);
    exit::UNKNOWN
}

pub fn run(app: &App, a: &HealthArgs) -> anyhow::Result<u8> {
    let session = app.session(&a.target, "health")?;
    // A probe must always answer with its line: without the log, it says so
    // and probes anyway.
    let mut client = app.client(Some("the probe"))?;
    let at = now_ms();
    let h = client.health(&session, Duration::from_secs(a.timeout.max(1)));
    if let Some(e) = &h.log_error {
        eprintln!("paliadin-cli: warning: the probe could not be recorded: {e}");
    }
    let state = if h.ok { "OK" } else { "CRITICAL" };
    if a.json {
        let mut v = serde_json::to_value(&h)?;
        v["state"] = state.into();
        v["at"] = rfc3339_ms(at).into();
        if !h.ok {
            v["error"] = h.detail.clone().unwrap_or_default().into();
        }
        out(&format!("{v}\n"))?;
    } else if h.ok {
        out(&format!(
            "OK paliadin {} session {} {} ms | {}\n",
            h.host,
            h.session,
            h.duration_ms,
            perf(h.duration_ms)
        ))?;
    } else {
        let code = h.error_code.map(|c| c.as_str()).unwrap_or("shim_error");
        out(&format!(
            "CRITICAL paliadin {} session {} {code}: {} | {}\n",
            h.host,
            h.session,
            one_line(h.detail.as_deref().unwrap_or("")).replace('|', "/"),
            perf(h.duration_ms)
        ))?;
    }
    Ok(if h.ok { exit::OK } else { exit::CRITICAL })
}
