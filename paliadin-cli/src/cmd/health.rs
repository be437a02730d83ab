//! `health`: for cron and monitoring. Exactly one line on stdout in every
//! case, Nagios style with performance data: `OK … | time=0.012s
//! five_hour=20%;;;0;100 seven_day=10%;;;0;100` (exit 0; the plan's windows
//! when the shim knows them), `WARNING … usage limit … resets at …` (exit 1)
//! when the session's last turn hit the subscription's limit and it still
//! holds (or a window is full), `CRITICAL … | time=…` (exit 2), `UNKNOWN …`
//! (exit 3) when the probe could not even be tried; so health prints its
//! own failures, never `main`.
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

/// The performance data of a probe: its time, and the plan's windows.
fn perf(p: &Probe) -> String {
    let mut s = format!("time={:.3}s", p.duration_ms as f64 / 1000.0);
    for (name, w) in [
        ("five_hour", p.windows.five_hour),
        ("seven_day", p.windows.seven_day),
    ] {
        if let Some(w) = w {
            s.push_str(&format!(" {name}={}%;;;0;100", w.used_percentage));
        }
    }
    s
}

#[derive(Serialize)]
struct Line<'a> {
    state: &'static str,
    #[serde(flatten)]
    probe: &'a Probe,
    /// While a usage limit holds: when it resets (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    resets_at: Option<String>,
}

/// When the subscription's limit resets (ms), if one holds now: the
/// session's last finished turn hit it, or a window the shim saw is full.
fn limit_holds(client: &paliadin_cli::Client, p: &Probe, now: i64) -> Option<i64> {
    use paliadin_cli::store::{Filter, Status};
    use paliadin_core::error_code::ErrorCode;
    let last = client.store.as_ref().and_then(|s| {
        let f = Filter {
            limit: 5,
            session: Some(p.session.clone()),
            ..Filter::default()
        };
        s.list(&f)
            .ok()?
            .into_iter()
            .find(|t| t.outcome.status != Status::Running)
    });
    let from_turn = last
        .filter(|t| t.outcome.error_code == Some(ErrorCode::UsageLimit))
        .and_then(|t| t.outcome.resets_at_ms);
    let from_windows = [p.windows.five_hour, p.windows.seven_day]
        .into_iter()
        .flatten()
        .filter(|w| w.used_percentage >= 100.0)
        .map(|w| w.resets_at * 1000)
        .max();
    from_turn
        .into_iter()
        .chain(from_windows)
        .filter(|&r| r > now)
        .max()
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
    let now = now_ms();
    let limit = p.ok.then(|| limit_holds(&client, &p, now)).flatten();
    let state = match (p.ok, limit) {
        (false, _) => "CRITICAL",
        (true, Some(_)) => "WARNING",
        (true, None) => "OK",
    };
    if a.json {
        out_json(&Line {
            state,
            probe: &p,
            resets_at: limit.map(rfc3339_ms),
        })?;
    } else {
        let what = match (p.error_code, limit) {
            (None, Some(r)) => format!(
                "{} ms, the subscription's usage limit is reached; it resets at {} ({})",
                p.duration_ms,
                paliadin_core::subscription::rfc3339_s(r.div_euclid(1000)),
                paliadin_cli::localtime::for_people(r, now)
            ),
            (None, None) => format!("{} ms", p.duration_ms),
            (Some(c), _) => format!(
                "{c}: {}",
                one_line(p.detail.as_deref().unwrap_or(""), None).replace('|', "/")
            ),
        };
        out(&format!(
            "{state} paliadin {} session {} {what} | {}\n",
            one_line(&p.host, None),
            p.session,
            perf(&p)
        ))?;
    }
    Ok(match state {
        "OK" => exit::OK,
        "WARNING" => exit::WARNING,
        _ => exit::CRITICAL,
    })
}
