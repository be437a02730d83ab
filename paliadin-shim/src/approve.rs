//! Approve mode (issue 14, opt-in per laptop: `approve_secs`): a tool call
//! that needs a yes is asked to the person on the other end instead of being
//! denied. Owns the agent's permission flags in that mode, the
//! `PermissionRequest` hook's wait for an answer, the `approve` verb, and the
//! turn's `permission-<n>` files; never types into a pane.
//!
//! Claude Code 2.1.328, measured: under `--permission-mode dontAsk` the hook
//! never fires (the call is denied), so this mode runs the agent with
//! `--permission-mode default` and settings
//! `permissions.denyInsteadOfPrompting: true` (no dialog ever shows; the hook
//! decides; a hook that gives no decision or times out is a deny). The hook
//! answers `{"hookSpecificOutput":{"hookEventName":"PermissionRequest",
//! "decision":{"behavior":"allow"|"deny","message":…}}}`; a deny goes back to
//! the model as the tool's error and the turn goes on.
//!
//! ```text
//! turns/<id>/permission-<n>         the request: tool, target, until (ms)
//!            permission-<n>.answer  allow | deny (by `approve`) or timeout
//!                                   (by the hook): created once, the first
//!                                   writer wins, so an answer and the end of
//!                                   the wait can never both count
//! ```

use paliadin_core::event::{self, Event, Kind};
use paliadin_core::text::one_line;
use paliadin_core::timefmt::{now_ms, rfc3339_ms};
use paliadin_core::SessionName;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use uuid::Uuid;

use crate::agent::Shim;
use crate::error::{Result, ShimError};
use crate::output::print_or_fail;
use crate::state::{SessionDir, TurnDir};

/// The agent's environment variable that tells its hooks the wait, in
/// seconds (set only in approve mode).
pub const ENV: &str = "PALIADIN_APPROVE_SECS";
/// The hook entry's timeout beyond the shim's own wait: the shim answers
/// (deny) before the agent would kill it.
pub const HOOK_MARGIN_SECS: u64 = 10;
/// The most requests one turn may ask.
const MAX_REQUESTS: u32 = 9999;

fn request_file(n: u32) -> String {
    format!("permission-{n}")
}

/// The agent's argv in approve mode: `--permission-mode default` in place
/// of any other mode (under `dontAsk` nobody is ever asked), and no
/// `--tools` list: a tool the model is not offered can never be asked for,
/// so every tool is offered and what the rules do not allow is asked.
pub fn agent_argv(argv: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(argv.len() + 2);
    let mut words = argv.iter();
    while let Some(w) = words.next() {
        if w == "--permission-mode" || w == "--tools" {
            words.next();
        } else if !w.starts_with("--permission-mode=") && !w.starts_with("--tools=") {
            out.push(w.clone());
        }
    }
    out.push("--permission-mode".into());
    out.push("default".into());
    out
}

fn decision(allow: bool, message: &str) -> String {
    let d = if allow {
        json!({ "behavior": "allow" })
    } else {
        json!({ "behavior": "deny", "message": message })
    };
    json!({ "hookSpecificOutput": { "hookEventName": "PermissionRequest", "decision": d } })
        .to_string()
}

/// The `PermissionRequest` hook in approve mode: records the request as the
/// turn's `permission_request` event, waits up to `wait` for `approve`, and
/// returns the decision to print (deny when nobody answered in time).
pub fn hold(dir: &SessionDir, v: &Value, wait: Duration) -> String {
    dir.touch();
    let tool = one_line(
        v.get("tool_name").and_then(Value::as_str).unwrap_or(""),
        Some(event::MAX_SUMMARY),
    );
    let Some(t) = dir
        .last_prompt()
        .map(|id| dir.turn(id))
        .filter(TurnDir::exists)
    else {
        return decision(false, "No turn of paliadin's asked for this; denied.");
    };
    let target = event::summarise(&tool, v.get("tool_input").unwrap_or(&Value::Null));
    let until = Instant::now() + wait;
    let until_ms = now_ms() + wait.as_millis() as i64;
    let record = json!({ "tool": tool, "target": target, "until_ms": until_ms }).to_string();
    let Some(n) =
        (1..=MAX_REQUESTS).find(|&n| t.create_file(&request_file(n), &record).unwrap_or(false))
    else {
        return decision(false, "Too many permission requests in one turn; denied.");
    };
    // Armed before the request shows, so no answer goes unrung.
    let bell = dir.bell().ok();
    t.record(&Event {
        tool: Some(tool.clone()).filter(|t| !t.is_empty()),
        target,
        id: Some(n.to_string()),
        ..Event::new(Kind::PermissionRequest, rfc3339_ms(now_ms()))
    });
    dir.ring();
    let answer_file = format!("{}.answer", request_file(n));
    let answer = loop {
        if let Some(a) = t.read_file(&answer_file) {
            break Some(a.trim() == "allow");
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            // The end of the wait is an answer too; one that came just now wins.
            match t.create_file(&answer_file, "timeout") {
                Ok(false) => continue,
                _ => break None,
            }
        }
        match &bell {
            Some(b) => {
                let mut fds = [rustix::event::PollFd::new(b, rustix::event::PollFlags::IN)];
                let ts = paliadin_core::child::timespec(left.min(Duration::from_secs(1)));
                let _ = rustix::event::poll(&mut fds, Some(&ts));
                b.drain();
            }
            None => std::thread::sleep(left.min(Duration::from_millis(100))),
        }
    };
    let (allow, message) = match answer {
        Some(true) => (true, String::new()),
        Some(false) => (
            false,
            format!("The person on the other end denied this {tool} call."),
        ),
        None => (
            false,
            format!(
                "Nobody answered the request to allow this {tool} call within {} s, so it was denied.",
                wait.as_secs()
            ),
        ),
    };
    dir.touch();
    dir.ring();
    decision(allow, &message)
}

/// `approve <session> <turn-id> <request-id> allow|deny`: answers request
/// `request` of the session's current turn `turn`, once, while its hook
/// still waits. Anything else is refused (exit 2) and changes nothing.
pub fn answer(
    shim: &Shim,
    session: &SessionName,
    turn: Uuid,
    request: u32,
    allow: bool,
) -> Result<()> {
    let refused = |why: &str| {
        ShimError::invalid(format!(
            "permission request {request} of turn {turn} is not pending: {why}"
        ))
    };
    let s = shim.session_dir(session, false)?;
    if s.current() != Some(turn) {
        return Err(refused("that turn is not the session's current one"));
    }
    let t = s.turn(turn);
    let name = request_file(request);
    let Some(record) = t.read_file(&name) else {
        return Err(refused("the turn asked no such request"));
    };
    let until = serde_json::from_str::<Value>(&record)
        .ok()
        .and_then(|v| v["until_ms"].as_i64())
        .unwrap_or(0);
    if now_ms() >= until {
        return Err(refused("its time ran out"));
    }
    let word = if allow { "allow" } else { "deny" };
    let first = t
        .create_file(&format!("{name}.answer"), word)
        .map_err(|e| {
            crate::error::io_error(&format!("cannot write in {}", t.path().display()), e)
        })?;
    if !first {
        return Err(refused("it was answered already, or its time ran out"));
    }
    s.ring();
    print_or_fail(b"ok\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approve_mode_runs_the_agent_in_default_permission_mode() {
        let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            agent_argv(&argv(&["claude", "--permission-mode", "dontAsk", "--x"])),
            argv(&["claude", "--x", "--permission-mode", "default"])
        );
        assert_eq!(
            agent_argv(&argv(&["claude", "--permission-mode=dontAsk"])),
            argv(&["claude", "--permission-mode", "default"])
        );
        assert_eq!(
            agent_argv(&argv(&["claude"])),
            argv(&["claude", "--permission-mode", "default"])
        );
        // Every tool offered, so that any may be asked for.
        assert_eq!(
            agent_argv(&argv(&["claude", "--tools", "Read", "--tools=Read", "--y"])),
            argv(&["claude", "--y", "--permission-mode", "default"])
        );
    }

    #[test]
    fn decisions_are_claude_codes_permission_request_answers() {
        let v: Value = serde_json::from_str(&decision(true, "")).unwrap();
        assert_eq!(
            v,
            json!({"hookSpecificOutput": {"hookEventName": "PermissionRequest", "decision": {"behavior": "allow"}}})
        );
        let v: Value = serde_json::from_str(&decision(false, "no")).unwrap();
        assert_eq!(
            v["hookSpecificOutput"]["decision"],
            json!({"behavior": "deny", "message": "no"})
        );
    }
}
