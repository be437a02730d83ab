//! `turn [MESSAGE]`: one turn, its reply on stdout (without the trailer), or
//! with `--json` the whole result, or with `--events` the agent's steps as
//! JSON lines while it works and the result last. The message comes from the
//! argument, or stdin when the argument is `-` or absent and stdin is not a
//! terminal. On a terminal the current step turns beside the spinner.

use anyhow::Context as _;
use std::io::Read as _;

use crate::cli::TurnArgs;
use crate::client::{TurnRequest, TurnResult};
use crate::cmd::{out, App};
use crate::exit;
use paliadin_core::event::Kind;

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

fn warn_log(r: &TurnResult) {
    if let Some(e) = &r.log_error {
        eprintln!(
            "paliadin-cli: warning: the turn log could not record turn {}: {e}",
            r.turn_id
        );
    }
}

/// Prints a turn's result as `turn` and `chat --json`-less callers want it.
pub fn report(r: &TurnResult, json: bool) -> anyhow::Result<u8> {
    warn_log(r);
    if json {
        let mut v = serde_json::to_value(r)?;
        if r.error_code.is_some() {
            // Every failure in --json has `error_code` and `error`.
            v["error"] = r.error_detail.clone().unwrap_or_default().into();
        }
        out(&format!("{v}\n"))?;
    }
    if r.error_code.is_none() && !json {
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
    finish(r)
}

/// A turn's failure line on stderr (if it failed) and its exit status.
fn finish(r: &TurnResult) -> anyhow::Result<u8> {
    match r.error_code {
        None => Ok(exit::OK),
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
        if a.json || a.events {
            let v = serde_json::json!({
                "kind": if a.events { Some("error") } else { None },
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
    let events = a.events;
    let mut stdout_gone = false;
    let r = crate::cmd::progress::with_steps(spin, |steps| {
        client.turn_with_events(&req, &mut |e| {
            if events && !stdout_gone {
                let line = serde_json::to_string(e).unwrap_or_default();
                // A reader that went away must not stop the turn.
                stdout_gone = out(&format!("{line}\n")).is_err();
            }
            match e.kind {
                Kind::Submitted | Kind::ToolFinished => steps.show(None),
                _ => {
                    if let Some(s) = crate::render::step(e) {
                        steps.show(Some(&s));
                    }
                }
            }
        })
    });
    if events {
        return report_events(&r);
    }
    report(&r, a.json)
}

/// The last line of `turn --events`: `kind` `reply` (or `error`), `at`,
/// `text` (the reply without its trailer) and the turn's record fields, as
/// `--json` has them without `events`; then the exit status as `report`.
fn report_events(r: &TurnResult) -> anyhow::Result<u8> {
    let mut v = serde_json::to_value(r)?;
    if let Some(o) = v.as_object_mut() {
        o.remove("events");
        let kind = if r.error_code.is_none() {
            "reply"
        } else {
            "error"
        };
        let mut last = serde_json::Map::new();
        last.insert("kind".into(), kind.into());
        last.insert(
            "at".into(),
            paliadin_core::timefmt::rfc3339_ms(paliadin_core::timefmt::now_ms()).into(),
        );
        if let Some(text) = &r.response {
            last.insert("text".into(), text.clone().into());
        }
        if r.error_code.is_some() {
            last.insert(
                "error".into(),
                r.error_detail.clone().unwrap_or_default().into(),
            );
        }
        last.extend(std::mem::take(o));
        v = last.into();
    }
    out(&format!("{v}\n"))?;
    warn_log(r);
    finish(r)
}
