//! `health`: for cron and monitoring. One line, `OK ...` or `CRITICAL ...`,
//! exit 0 or 2 (the Nagios convention), each probe recorded in the log.

use crate::cli::HealthArgs;
use crate::cmd::{one_line, out, App};
use crate::exit;
use std::time::Duration;

pub fn run(app: &App, a: &HealthArgs) -> anyhow::Result<u8> {
    let session = app.session(&a.target, "health")?;
    // A probe must always answer with its line: without the log, it says so
    // and probes anyway.
    let mut client = match app.client(true) {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "paliadin-cli: warning: the probe will not be recorded: {}",
                one_line(&format!("{e:#}"))
            );
            app.client(false)?
        }
    };
    let h = client.health(&session, Duration::from_secs(a.timeout.max(1)));
    if let Some(e) = &h.log_error {
        eprintln!("paliadin-cli: warning: the probe could not be recorded: {e}");
    }
    if a.json {
        out(&format!("{}\n", serde_json::to_string(&h)?))?;
    } else if h.ok {
        out(&format!(
            "OK paliadin {} session {} {} ms\n",
            h.host, h.session, h.duration_ms
        ))?;
    } else {
        let code = h.error_code.map(|c| c.as_str()).unwrap_or("shim_error");
        out(&format!(
            "CRITICAL paliadin {} session {} {code}: {}\n",
            h.host,
            h.session,
            h.detail.as_deref().unwrap_or("")
        ))?;
    }
    Ok(if h.ok { exit::OK } else { exit::CRITICAL })
}
