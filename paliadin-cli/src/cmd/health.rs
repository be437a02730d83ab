//! `health`: for cron and monitoring. Exactly one line on stdout in every
//! case, Nagios style with performance data: `OK … | time=0.012s` (exit 0),
//! `CRITICAL … | time=…` (exit 2), `UNKNOWN …` (exit 3) when the probe could
//! not even be tried; so health prints its own failures, never `main`.
//! Each probe is recorded in the log (`log probes` reads them back). With
//! `--json`: the probe's record with its `state`, or for UNKNOWN the error
//! object with its `state`.

use paliadin_core::text::one_line;
use paliadin_core::timefmt::{now_ms, rfc3339_ms};
use serde::Serialize;
use std::time::Duration;

use crate::cli::HealthArgs;
use crate::cmd::{out, out_json, Ctx};
use paliadin_cli::store::Probe;
use paliadin_cli::{exit, Failure};

/// The performance data of a probe that took `ms`.
fn perf(ms: i64) -> String {
    format!("time={:.3}s", ms as f64 / 1000.0)
}

#[derive(Serialize)]
struct Line<'a> {
    state: &'static str,
    #[serde(flatten)]
    probe: &'a Probe,
}

pub fn run(ctx: &Ctx<'_>, a: &HealthArgs) -> Result<u8, Failure> {
    match probe(ctx, a) {
        Ok(status) => Ok(status),
        Err(f) if f.is_broken_pipe() => Err(f),
        Err(f) => Ok(unknown(a, &f)),
    }
}

/// Prints the UNKNOWN line (or JSON object) for a probe that could not be
/// tried, and returns its status.
fn unknown(a: &HealthArgs, f: &Failure) -> u8 {
    let r = if a.json {
        let mut v = serde_json::json!({ "state": "UNKNOWN", "at": rfc3339_ms(now_ms()) });
        if let (Some(o), Some(e)) = (v.as_object_mut(), f.json().as_object()) {
            o.extend(e.clone());
        }
        out_json(&v)
    } else {
        out(&format!(
            "UNKNOWN paliadin {}: {}\n",
            f.code.as_str(),
            f.reason().replace('|', "/")
        ))
    };
    // Nothing else to say if stdout is gone.
    let _ = r;
    exit::UNKNOWN
}

fn probe(ctx: &Ctx<'_>, a: &HealthArgs) -> Result<u8, Failure> {
    let app = ctx.app()?;
    let session = app.session(&a.target, "health")?;
    // A probe must always answer with its line: without the log, it says so
    // and probes anyway.
    let mut client = app.client(Some("the probe"))?;
    let (p, log_error) = client.health(&session, Duration::from_secs(a.timeout));
    if let Some(e) = log_error {
        eprintln!("paliadin-cli: warning: the probe could not be recorded: {e}");
    }
    let state = if p.ok { "OK" } else { "CRITICAL" };
    if a.json {
        out_json(&Line { state, probe: &p })?;
    } else {
        let what = match p.error_code {
            None => format!("{} ms", p.duration_ms),
            Some(c) => format!(
                "{c}: {}",
                one_line(p.detail.as_deref().unwrap_or(""), None).replace('|', "/")
            ),
        };
        out(&format!(
            "{state} paliadin {} session {} {what} | {}\n",
            one_line(&p.host, None),
            p.session,
            perf(p.duration_ms)
        ))?;
    }
    Ok(if p.ok { exit::OK } else { exit::CRITICAL })
}
