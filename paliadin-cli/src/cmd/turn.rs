//! `turn [MESSAGE]`: one turn, its reply on stdout (without the trailer), or
//! with `--json` the whole result. The message comes from the argument, or
//! stdin when the argument is `-` or absent and stdin is not a terminal.

use anyhow::Context as _;
use std::io::Read as _;

use crate::cli::TurnArgs;
use crate::client::{TurnRequest, TurnResult};
use crate::cmd::{out, App};
use crate::exit;

fn read_message(arg: Option<&str>) -> anyhow::Result<String> {
    match arg {
        Some(m) if m != "-" => Ok(m.to_owned()),
        _ => {
            if arg.is_none() && rustix::termios::isatty(rustix::stdio::stdin()) {
                return Err(crate::cmd::Usage(
                    "no message: give it as an argument, or pipe it on stdin (use `chat` to type turns)".into(),
                )
                .into());
            }
            let mut buf = Vec::new();
            // One byte more than the shim takes, so that it can refuse it.
            std::io::stdin()
                .take(paliadin_core::request::MAX_STDIN_MESSAGE as u64 + 1)
                .read_to_end(&mut buf)
                .context("cannot read the message from stdin")?;
            String::from_utf8(buf).context("the message on stdin is not UTF-8")
        }
    }
}

/// Prints a turn's result as `turn` and `chat --json`-less callers want it.
pub fn report(r: &TurnResult, json: bool) -> anyhow::Result<u8> {
    if let Some(e) = &r.log_error {
        eprintln!(
            "paliadin-cli: warning: the turn log could not record turn {}: {e}",
            r.turn_id
        );
    }
    if json {
        let mut v = serde_json::to_value(r)?;
        if r.error_code.is_some() {
            // Every failure in --json has `error_code` and `error`.
            v["error"] = r.error_detail.clone().unwrap_or_default().into();
        }
        out(&format!("{v}\n"))?;
    }
    match r.error_code {
        None => {
            if !json {
                let body = r.response.as_deref().unwrap_or("");
                if rustix::termios::isatty(rustix::stdio::stdout()) {
                    // For a person: chips and Markdown as `chat` shows them.
                    out(&crate::render::reply_width(
                        body,
                        crate::cmd::color(),
                        crate::cmd::stdout_width(),
                    ))?;
                } else {
                    out(&format!(
                        "{body}{}",
                        if body.ends_with('\n') { "" } else { "\n" }
                    ))?;
                }
            }
            Ok(exit::OK)
        }
        Some(_) if r.still_running => {
            eprintln!(
                "paliadin-cli: turn {}: {}",
                r.turn_id,
                crate::client::STILL_RUNNING
            );
            Ok(exit::of(crate::transport::ErrorCode::Timeout))
        }
        Some(code) => {
            let detail = r.error_detail.as_deref().unwrap_or("");
            eprintln!("paliadin-cli: turn {} failed: {code}: {detail}", r.turn_id);
            if code == crate::transport::ErrorCode::Timeout {
                eprintln!(
                    "paliadin-cli: the turn goes on; collect its reply with: paliadin-cli poll {}",
                    r.turn_id
                );
            }
            Ok(exit::of(code))
        }
    }
}

pub fn run(app: &App, a: &TurnArgs) -> anyhow::Result<u8> {
    let message = read_message(a.message.as_deref())?;
    if message.trim().is_empty() {
        eprintln!("paliadin-cli: the message is empty: nothing to send");
        if a.json {
            let v = serde_json::json!({
                "turn_id": null, "status": "error", "error_code": "invalid_input",
                "error_detail": "the message is empty: nothing to send",
                "error": "the message is empty: nothing to send",
            });
            out(&format!("{v}\n"))?;
        }
        return Ok(exit::USAGE);
    }
    let session = app.session(&a.target, "cli")?;
    let mut client = app.client(Some("the turn"))?;
    let req = TurnRequest {
        session,
        user_id: a.target.user,
        message,
        page_origin: a.page_origin.clone(),
    };
    let spin = crate::cmd::stderr_is_tty();
    let r = crate::cmd::progress::with_spinner(spin, || client.turn(&req));
    report(&r, a.json)
}
