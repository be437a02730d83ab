//! `health`: for cron and monitoring. One line, `OK ...` or `CRITICAL ...`,
//! exit 0 or 2 (the Nagios convention), each probe recorded in the log.

use crate::cli::HealthArgs;
use crate::cmd::{out, App};
use crate::exit;
use std::time::Duration;

pub fn run(app: &App, a: &HealthArgs) -> anyhow::Result<u8> {
    let session = app.session(&a.target, "health")?;
    let mut client = app.client(true)?;
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
