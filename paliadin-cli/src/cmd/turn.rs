//! `turn [MESSAGE...]`: one turn, its reply on stdout (without the
//! trailer), or with `--json` the turn's record, or with `--events` the
//! agent's steps as JSON lines while it works and the record last. The
//! message is the words given, joined with spaces, or stdin when the only
//! word is `-` or there is none and stdin is not a terminal. On a terminal
//! the current step turns beside the spinner, and a permission request
//! (the laptop's approve mode) gets a line naming the `approve` command that
//! answers it; `--events` prints that request with the turn's id. A failed turn is the
//! [`Failure`] that `main` prints, its record inside.

use anyhow::Context as _;
use paliadin_core::event::{Event, Kind};
use serde::Serialize;
use std::io::Read as _;
use uuid::Uuid;

use crate::cli::TurnArgs;
use crate::cmd::{out, out_json, warn_log, Ctx};
use paliadin_cli::client::TurnRequest;
use paliadin_cli::store::{Turn, TurnRow};
use paliadin_cli::{exit, Failure};

fn read_message(words: &[String]) -> Result<String, Failure> {
    let from_stdin = match words {
        [] => true,
        [w] => w == "-",
        _ => false,
    };
    if !from_stdin {
        return Ok(words.join(" "));
    }
    if words.is_empty() && rustix::termios::isatty(rustix::stdio::stdin()) {
        return Err(Failure::usage(
            "no message: give it as arguments, or pipe it on stdin (use `chat` to type turns)",
        ));
    }
    let mut buf = Vec::new();
    // One byte more than the shim takes, so that it can refuse it.
    std::io::stdin()
        .take(paliadin_core::request::MAX_STDIN_MESSAGE as u64 + 1)
        .read_to_end(&mut buf)
        .context("cannot read the message from stdin")?;
    Ok(String::from_utf8(buf).context("the message on stdin is not UTF-8")?)
}

/// Prints a turn as `turn` and `poll` do: the body (rendered on a
/// terminal), or with `json` its record.
pub fn report(t: &Turn, json: bool) -> Result<u8, Failure> {
    warn_log(t);
    if json {
        out_json(t)?;
        return Ok(exit::OK);
    }
    let body = t.row.outcome.response.as_deref().unwrap_or("");
    if super::stdout_is_tty() {
        // For a person: chips and Markdown as `chat` shows them.
        out(&crate::render::reply_width(
            body,
            super::color(),
            super::stdout_width(),
        ))?;
    } else {
        // Piped: the body byte for byte as the agent wrote it.
        let nl = if body.ends_with('\n') { "" } else { "\n" };
        out(&format!("{body}{nl}"))?;
    }
    Ok(exit::OK)
}

/// The last line of `turn --events`: `kind` `reply`, `at`, `text` (the
/// reply without its trailer) and the turn's record (without its events,
/// streamed already).
#[derive(Serialize)]
struct ReplyLine<'a> {
    kind: &'static str,
    at: String,
    text: Option<&'a str>,
    #[serde(flatten)]
    row: &'a TurnRow,
}

/// A `permission_request` event as `turn --events` prints it: the event
/// with the turn's id, for whoever answers it from another shell
/// (`paliadin-cli approve`).
#[derive(Serialize)]
struct RequestLine<'a> {
    #[serde(flatten)]
    event: &'a Event,
    turn_id: String,
}

/// What `turn` needs to show a turn's events.
struct Shown {
    /// `--events`: each event as a JSON line on stdout.
    events: bool,
    /// The reader of stdout went away.
    stdout_gone: bool,
    turn_id: Uuid,
    /// How the turn is named in a hint: a prefix of its id when the log
    /// can resolve one, else the whole id.
    name: String,
}

/// Each event as a JSON line on stdout (`--events`), and the spinner's
/// step; for a permission request, a line above the spinner with the
/// command that answers it.
fn on_event(shown: &mut Shown, steps: &super::progress::Steps, e: &Event) {
    if shown.events && !shown.stdout_gone {
        // A reader that went away must not stop the turn.
        shown.stdout_gone = match e.kind {
            Kind::PermissionRequest => out_json(&RequestLine {
                event: e,
                turn_id: shown.turn_id.to_string(),
            }),
            _ => out_json(e),
        }
        .is_err();
    }
    match e.kind {
        Kind::Submitted | Kind::ToolFinished => steps.show(None),
        _ => {
            if let Some(s) = crate::render::step(e) {
                steps.show(Some(&s));
            }
        }
    }
    if e.kind == Kind::PermissionRequest {
        if let Some(hint) = crate::render::approve_hint(e, &shown.name) {
            steps.println(&hint);
        }
    }
}

pub fn run(ctx: &Ctx<'_>, a: &TurnArgs) -> Result<u8, Failure> {
    let message = read_message(&a.message)?;
    if message.trim().is_empty() {
        return Err(Failure::usage("the message is empty: nothing to send"));
    }
    let app = ctx.app()?;
    let session = app.session(&a.target, "cli")?;
    let mut client = app.client(Some("the turn"))?;
    let req = TurnRequest {
        session,
        user_id: a.target.user,
        message,
        page_origin: a.page_origin.clone(),
    };
    let spin = super::stderr_is_tty();
    let turn_id = Uuid::new_v4();
    let mut shown = Shown {
        events: a.events,
        stdout_gone: false,
        turn_id,
        name: match client.store {
            Some(_) => turn_id.to_string()[..8].to_owned(),
            None => turn_id.to_string(),
        },
    };
    let t = super::progress::with_steps(spin, |steps| {
        client.turn_with_events_as(turn_id, &req, &mut |e| on_event(&mut shown, steps, e))
    })?;
    if !a.events {
        return report(&t, a.json);
    }
    warn_log(&t);
    out_json(&ReplyLine {
        kind: "reply",
        at: paliadin_core::timefmt::rfc3339_ms(paliadin_core::timefmt::now_ms()),
        text: t.row.outcome.response.as_deref(),
        row: &t.row,
    })?;
    Ok(exit::OK)
}
