//! The subscription's usage limit (PROTOCOL section 8): telling a plan
//! limit from an API's 429, learning when it resets, keeping it for the
//! whole laptop while it holds (a new turn in any session is refused at
//! once, nothing typed, no model request), and leaving the pane at its
//! prompt rather than on the limit's menu.
//!
//! The `StopFailure` hook only leaves what it got (`rate_limit`, a marker
//! of the turn) and returns: the exact reset is on a transcript line
//! Claude Code writes after the hook has run. Whoever waits on the turn
//! (`run-turn`, its repeat, `poll`) then tells it apart here, once (the
//! first to mark the turn `resolving`): it waits a bounded time for that
//! line, falls back to the status line's window at 100 %, records the
//! turn's `failed` event with the reset, and marks the turn. Only the
//! `run-turn` that typed the turn presses a key: Escape, once the menu or
//! the armed continue shows, and it never types while either shows.
//!
//! Never reads more of a transcript than its tail, never follows a
//! symlink to it, and never writes outside the shim's state.

use paliadin_core::event::{Event, Kind};
use paliadin_core::subscription::{limit_detail, rfc3339_s, Limit, Windows};
use paliadin_core::timefmt::{now_ms, rfc3339_ms};
use paliadin_core::ExitCode;
use serde_json::{json, Value};
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::agent::Shim;
use crate::error::ShimError;
use crate::output::print_or_fail;
use crate::state::{Mark, SessionDir, TurnDir, TurnMark, TurnState};

/// How Claude Code 2.1.328 words a plan limit in `last_assistant_message`
/// (`You've hit your 5-hour limit · resets 2:17pm (UTC)`); an API key's 429
/// says `API Error: Request rejected (429) · …` with the same `rate_limit`.
const LIMIT_TEXT: &str = "You've hit your";
/// How long the transcript's error line is waited for after `StopFailure`
/// (measured 0.03 to 0.3 s after it).
const LINE_WAIT: Duration = Duration::from_millis(1200);
/// A `resolving` mark this old was left by a waiter killed while it told
/// the limit apart: the next waiter does it instead.
const RESOLVE_STALE: Duration = Duration::from_secs(5);
/// How much of the transcript's end is read.
const TAIL: u64 = 512 << 10;
/// How often the transcript (and the pane) is looked at while waiting.
const LOOK: Duration = Duration::from_millis(25);
/// How long the limit's menu (or armed continue) is waited for, and then
/// for it to go once Escape was pressed.
const PANE_WAIT: Duration = Duration::from_secs(3);
/// What the pane shows while a key would land in the limit's menu or
/// cancel its automatic continue: never type a turn then.
const PANE_TEXTS: [&str; 2] = ["What do you want to do?", "Esc to cancel"];

/// Whether a `StopFailure` payload may be a usage limit: `error` is
/// `rate_limit` (a plan limit or an API's 429, told apart by [`resolve`]).
pub fn is_rate_limit(v: &Value) -> bool {
    v.get("error").and_then(Value::as_str) == Some("rate_limit")
}

/// What the `StopFailure` hook keeps of a rate limit for [`resolve`].
pub fn hook_record(v: &Value) -> String {
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("");
    json!({
        "at_ms": now_ms(),
        "message": s("last_assistant_message"),
        "prompt_id": s("prompt_id"),
        "transcript_path": s("transcript_path"),
    })
    .to_string()
}

/// The transcript's error line of a limit, read from its tail: the last
/// `assistant` line with `isApiErrorMessage` (of `prompt_id`, when known).
fn error_line(transcript: &Path, prompt_id: &str) -> Option<Value> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32)
        .open(transcript)
        .ok()?;
    let meta = f.metadata().ok()?;
    if !meta.is_file() {
        return None;
    }
    let start = meta.len().saturating_sub(TAIL);
    f.seek(SeekFrom::Start(start)).ok()?;
    let mut buf = Vec::new();
    f.take(TAIL).read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    text.lines()
        .rev()
        .filter(|l| l.contains("\"isApiErrorMessage\""))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| {
            l["type"] == "assistant"
                && l["isApiErrorMessage"] == true
                && (prompt_id.is_empty() || l["promptId"].as_str().is_none_or(|p| p == prompt_id))
        })
}

/// The limit a transcript error line names: `apiErrorParams.rate_limit_info`
/// (`rateLimitType`, `resetsAt` in Unix seconds), else `quotaLimits`.
pub fn limit_of_line(line: &Value) -> Limit {
    let info = [
        &line["apiErrorParams"]["rate_limit_info"],
        &line["quotaLimits"],
    ];
    let pick = |k: &str| info.iter().find_map(|i| i.get(k).filter(|v| !v.is_null()));
    Limit {
        window: pick("rateLimitType")
            .and_then(Value::as_str)
            .map(|w| paliadin_core::text::one_line(w, Some(40))),
        resets_at: pick("resetsAt")
            .and_then(|r| r.as_i64().or_else(|| r.as_f64().map(|f| f as i64))),
    }
}

/// Whether a transcript error line is a plan limit.
fn is_usage_limit_line(line: &Value) -> bool {
    line["apiError"] == "usage_limit_reached"
        || line["message"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with(LIMIT_TEXT))
}

/// The reset of the window at 100 % in the status line's last record
/// (`window` first, when named), for a limit whose line never came.
fn from_windows(s: &SessionDir, window: Option<&str>) -> Limit {
    let w: Windows = crate::statusline::recorded(s)
        .map(|(w, _)| w)
        .unwrap_or_default();
    let full = |name: &str| w.get(name).filter(|u| u.used_percentage >= 100.0);
    let names = window.into_iter().chain(["five_hour", "seven_day"]);
    for name in names {
        if let Some(u) = full(name) {
            return Limit {
                window: Some(name.to_owned()),
                resets_at: Some(u.resets_at),
            };
        }
    }
    Limit {
        window: window.map(str::to_owned),
        resets_at: None,
    }
}

/// Tells the rate limit the hook left (`hook`, its record) apart, once:
/// a usage limit (marked, recorded for the laptop, its `failed` event with
/// the reset) or an ordinary failure. Returns whether this call did it
/// (`false`: another waiter does; look at the turn again when it rings).
pub fn resolve(state_dir: &Path, s: &SessionDir, t: &TurnDir, hook: &str) -> bool {
    if !t.mark_new(TurnMark::Resolving, "").unwrap_or(false) {
        // Another waiter does it, unless it was killed doing it.
        let stale = t
            .mark_age(TurnMark::Resolving)
            .is_some_and(|a| a > RESOLVE_STALE);
        if !stale || t.mark(TurnMark::Resolving, "").is_err() {
            return false;
        }
    }
    let h: Value = serde_json::from_str(hook).unwrap_or(Value::Null);
    let st = |k: &str| h[k].as_str().unwrap_or("");
    let said_limit = st("message").starts_with(LIMIT_TEXT);
    let path = Path::new(st("transcript_path"));
    let since = h["at_ms"].as_i64().unwrap_or_else(now_ms);
    let until = Instant::now()
        + LINE_WAIT.saturating_sub(Duration::from_millis((now_ms() - since).max(0) as u64));
    let line = loop {
        let found = (!path.as_os_str().is_empty())
            .then(|| error_line(path, st("prompt_id")))
            .flatten();
        if found.is_some() || Instant::now() >= until {
            break found;
        }
        std::thread::sleep(LOOK);
    };
    let plan = said_limit || line.as_ref().is_some_and(is_usage_limit_line);
    let mut event = Event {
        detail: Some("rate_limit".into()),
        ..Event::new(Kind::Failed, rfc3339_ms(now_ms()))
    };
    if !plan {
        t.record(&event);
        let _ = t.mark(TurnMark::Failed, "rate_limit");
        s.ring();
        return true;
    }
    let mut limit = line.as_ref().map(limit_of_line).unwrap_or_default();
    if limit.resets_at.is_none() {
        limit = from_windows(s, limit.window.as_deref());
    }
    event.detail = Some("usage_limit".into());
    event.resets_at = limit.resets_at.map(rfc3339_s);
    event.window = limit.window.clone();
    let text = serde_json::to_string(&limit).unwrap_or_default();
    if limit.resets_at.is_some() {
        let record = json!({ "window": limit.window, "resets_at": limit.resets_at, "since_ms": now_ms(), "session": s.name.as_str() });
        let _ = crate::state::set_usage_limit_record(state_dir, &record.to_string());
    }
    let _ = s.mark(Mark::LimitPane, "");
    t.record(&event);
    let _ = t.mark(TurnMark::UsageLimit, &text);
    s.ring();
    true
}

/// The error of a turn at the usage limit (exit 78, its reset on the line).
pub fn error(limit: &Limit) -> ShimError {
    ShimError::new(ExitCode::UsageLimit, limit_detail(limit))
}

/// The limit a turn's `usage_limit` marker holds.
pub fn of_marker(text: &str) -> Limit {
    serde_json::from_str(text).unwrap_or_default()
}

/// The laptop's usage limit, if one holds now.
pub fn holding(state_dir: &Path) -> Option<Limit> {
    let v: Value = serde_json::from_str(&crate::state::usage_limit_record(state_dir)?).ok()?;
    let resets_at = v["resets_at"].as_i64()?;
    (resets_at * 1000 > now_ms()).then(|| Limit {
        window: v["window"].as_str().map(str::to_owned),
        resets_at: Some(resets_at),
    })
}

/// A new turn while the limit holds: refused at once with the limit's
/// result (for `run-turn-events`, its `failed` event first), nothing typed.
pub fn refuse(limit: &Limit, events: bool) -> ShimError {
    if events {
        let e = Event {
            detail: Some("usage_limit".into()),
            resets_at: limit.resets_at.map(rfc3339_s),
            window: limit.window.clone(),
            ..Event::new(Kind::Failed, rfc3339_ms(now_ms()))
        };
        let line = paliadin_core::text::json_safe(serde_json::to_string(&e).unwrap_or_default());
        if let Err(e) = print_or_fail(format!("{line}\n").as_bytes()) {
            return e;
        }
    }
    error(limit)
}

/// Whether the pane shows the limit's menu or its armed continue.
fn pane_holds(shim: &Shim, s: &SessionDir) -> bool {
    let screen = shim.tmux.screen(&s.name.key()).unwrap_or_default();
    PANE_TEXTS.iter().any(|t| screen.contains(t))
}

/// Leaves the pane at its prompt after a usage limit, as a person would:
/// once the menu (or the armed continue) shows, Escape, then it must be
/// gone. Never presses anything else. `Ok(true)` when the pane is clear.
pub fn dismiss(shim: &Shim, s: &SessionDir) -> bool {
    let key = s.name.key();
    let until = Instant::now() + PANE_WAIT;
    while !pane_holds(shim, s) {
        if Instant::now() >= until {
            // Nothing to dismiss (the same reset again shows a hint only).
            s.unmark(Mark::LimitPane);
            return true;
        }
        std::thread::sleep(LOOK * 2);
    }
    for _ in 0..2 {
        if shim.tmux.key(&key, crate::tmux::Key::Escape).is_err() {
            return false;
        }
        let until = Instant::now() + PANE_WAIT;
        while pane_holds(shim, s) && Instant::now() < until {
            std::thread::sleep(LOOK * 2);
        }
        if !pane_holds(shim, s) {
            s.unmark(Mark::LimitPane);
            return true;
        }
    }
    false
}

/// Before a turn is typed into a pane a limit left: never while the menu
/// or the armed continue shows (dismissed first if it does).
pub fn clear_before_typing(shim: &Shim, s: &SessionDir) -> Result<(), ShimError> {
    if !s.has(Mark::LimitPane) || !pane_holds(shim, s) {
        s.unmark(Mark::LimitPane);
        return Ok(());
    }
    if dismiss(shim, s) {
        return Ok(());
    }
    Err(ShimError::new(
        ExitCode::Blocked,
        format!(
            "the pane still shows the usage limit's menu; answer it with: paliadin-shim attach {}",
            s.name
        ),
    )
    .with_pane(shim.tail(s)))
}

/// The outcome of a turn in `state`, if it is a rate limit's: resolved by
/// this call if nobody did yet (`None` while another waiter does).
pub fn settle(shim: &Shim, s: &SessionDir, t: &TurnDir, state: &TurnState) -> Option<ShimError> {
    match state {
        TurnState::UsageLimit(l) => Some(error(&of_marker(l))),
        TurnState::RateLimited(hook) => {
            resolve(&shim.config.state_dir, s, t, hook);
            match t.state() {
                TurnState::UsageLimit(l) => Some(error(&of_marker(&l))),
                TurnState::Failed(e) => Some(ShimError::new(
                    ExitCode::AgentError,
                    format!("the agent reported a failure: {e}"),
                )),
                _ => None,
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transcript_limit_line_gives_its_window_and_reset() {
        // The line Claude Code 2.1.328 wrote at a five-hour limit (abridged).
        let line: Value = serde_json::from_str(r#"{"type":"assistant","isApiErrorMessage":true,"apiErrorStatus":429,"apiErrorType":"rate_limit_error","error":"rate_limit","apiError":"usage_limit_reached","failedResponseHadNoToolCall":true,"apiErrorParams":{"rate_limit_info":{"isUsingOverage":false,"overageDisabledReason":"org_level_disabled","overageStatus":"rejected","rateLimitType":"five_hour","resetsAt":1796216835,"status":"rejected"}},"quotaLimits":{"rateLimitType":"five_hour","resetsAt":1796216835,"status":"rejected","unifiedRateLimitFallbackAvailable":false},"message":{"model":"<synthetic>","content":[{"type":"text","text":"You've hit your 5-hour limit · resets 1:07pm (UTC)"}]},"promptId":"p1"}"#).unwrap();
        assert!(is_usage_limit_line(&line));
        assert_eq!(
            limit_of_line(&line),
            Limit {
                window: Some("five_hour".into()),
                resets_at: Some(1_796_216_835)
            }
        );
        // Only quotaLimits: still read.
        let q: Value = serde_json::from_str(
            r#"{"quotaLimits":{"rateLimitType":"seven_day","resetsAt":1796821334.0}}"#,
        )
        .unwrap();
        assert_eq!(limit_of_line(&q).resets_at, Some(1_796_821_334));
        assert_eq!(limit_of_line(&q).window.as_deref(), Some("seven_day"));
        // An API key's 429 is no plan limit.
        let api: Value = serde_json::from_str(r#"{"type":"assistant","isApiErrorMessage":true,"error":"rate_limit","message":{"content":[{"type":"text","text":"API Error: Request rejected (429) · This request would exceed your account's rate limit. Please try again later."}]}}"#).unwrap();
        assert!(!is_usage_limit_line(&api));
        assert_eq!(limit_of_line(&api), Limit::default());
    }

    #[test]
    fn a_rate_limit_is_told_apart_once_and_a_plan_limit_holds_for_the_laptop() {
        use crate::hooks::{handle, HookEvent};
        use paliadin_core::SessionName;
        let root = std::env::temp_dir().join(format!("paliadin-limit-r-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        paliadin_core::fsutil::private_dir(&root).unwrap();
        let s = SessionDir::open(&root, &SessionName::new("s").unwrap(), true).unwrap();
        // Events are recorded signed, with the key of an agent's start.
        crate::hookauth::arm(&s).unwrap();
        let transcript = root.join("t.jsonl");
        let reset = now_ms() / 1000 + 3600;
        std::fs::write(&transcript, format!("{}\n", json!({"type": "assistant", "isApiErrorMessage": true, "promptId": "p1", "apiError": "usage_limit_reached", "apiErrorParams": {"rate_limit_info": {"rateLimitType": "five_hour", "resetsAt": reset}}}))).unwrap();
        let turn = |prompt: &str| {
            let id = uuid::Uuid::new_v4();
            let t = s.turn(id);
            t.create().unwrap();
            handle(
                &s,
                HookEvent::UserPromptSubmit,
                &json!({"prompt": format!("[PALIADIN:{id}]\nhi")}),
            );
            handle(
                &s,
                HookEvent::StopFailure,
                &json!({"error": "rate_limit", "prompt_id": prompt, "transcript_path": transcript, "last_assistant_message": "You've hit your 5-hour limit · resets 2:17pm (UTC)"}),
            );
            t
        };
        let t = turn("p1");
        let TurnState::RateLimited(hook) = t.state() else {
            panic!("{:?}", t.state())
        };
        let before = String::from_utf8(t.events_from(0).0).unwrap();
        assert!(!before.contains("failed"), "no failed event yet: {before}");
        assert!(holding(&root).is_none());
        assert!(resolve(&root, &s, &t, &hook));
        assert!(!resolve(&root, &s, &t, &hook), "once");
        let want = Limit {
            window: Some("five_hour".into()),
            resets_at: Some(reset),
        };
        assert_eq!(
            t.state(),
            TurnState::UsageLimit(serde_json::to_string(&want).unwrap())
        );
        assert_eq!(holding(&root), Some(want));
        let events = String::from_utf8(crate::hookauth::stream(&t, &t.events_from(0).0)).unwrap();
        let failed: Event = serde_json::from_str(events.lines().last().unwrap()).unwrap();
        assert_eq!(failed.detail.as_deref(), Some("usage_limit"));
        assert_eq!(failed.resets_at, Some(rfc3339_s(reset)));
        assert!(s.has(Mark::LimitPane));
        // An API key's 429 (no plan text, no such line for its prompt): 76.
        let t = turn("p2");
        let TurnState::RateLimited(mut hook) = t.state() else {
            panic!("{:?}", t.state())
        };
        hook = hook.replace("You've hit your", "API Error: Request rejected (429)");
        assert!(resolve(&root, &s, &t, &hook));
        assert_eq!(t.state(), TurnState::Failed("rate_limit".into()));
        // A waiter killed while it told the limit apart holds nobody up
        // for long: its mark, once stale, is taken over.
        let t = turn("p1");
        let TurnState::RateLimited(hook) = t.state() else {
            panic!("{:?}", t.state())
        };
        assert!(t.mark_new(TurnMark::Resolving, "").unwrap());
        assert!(!resolve(&root, &s, &t, &hook), "a live claim is left alone");
        let mark = t.path().join("resolving");
        std::fs::File::options()
            .write(true)
            .open(&mark)
            .unwrap()
            .set_modified(std::time::SystemTime::now() - Duration::from_secs(10))
            .unwrap();
        assert!(resolve(&root, &s, &t, &hook));
        assert!(
            matches!(t.state(), TurnState::UsageLimit(_)),
            "{:?}",
            t.state()
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn the_laptops_limit_is_never_read_or_written_through_a_symlink() {
        let root = std::env::temp_dir().join(format!("paliadin-limit-l-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        paliadin_core::fsutil::private_dir(&root).unwrap();
        let outside = root.with_extension("outside");
        let record = json!({"window": "five_hour", "resets_at": now_ms() / 1000 + 3600});
        std::fs::write(&outside, record.to_string()).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("usage-limit.json")).unwrap();
        assert_eq!(holding(&root), None, "not read through the link");
        crate::state::set_usage_limit_record(&root, &record.to_string()).unwrap();
        assert!(holding(&root).is_some());
        assert!(!std::fs::symlink_metadata(root.join("usage-limit.json"))
            .unwrap()
            .is_symlink());
        assert_eq!(
            std::fs::read_to_string(&outside).unwrap(),
            record.to_string(),
            "the link's target untouched"
        );
        // A reset in the past holds nothing.
        let past = json!({"window": "five_hour", "resets_at": now_ms() / 1000 - 1});
        crate::state::set_usage_limit_record(&root, &past.to_string()).unwrap();
        assert_eq!(holding(&root), None);
        std::fs::remove_dir_all(&root).unwrap();
        std::fs::remove_file(&outside).unwrap();
    }

    #[test]
    fn the_error_line_is_found_in_the_tail_of_its_prompt() {
        let dir = std::env::temp_dir().join(format!("paliadin-limit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.jsonl");
        let mut text = String::new();
        text.push_str(r#"{"type":"assistant","isApiErrorMessage":true,"promptId":"old","apiErrorParams":{"rate_limit_info":{"resetsAt":1}}}"#);
        text.push('\n');
        text.push_str(&format!("{}\n", "x".repeat(1000)));
        text.push_str(r#"{"type":"assistant","isApiErrorMessage":true,"promptId":"p2","apiError":"usage_limit_reached","apiErrorParams":{"rate_limit_info":{"resetsAt":2,"rateLimitType":"seven_day"}}}"#);
        text.push_str("\n{\"type\":\"system\"}\n");
        std::fs::write(&path, text).unwrap();
        let l = error_line(&path, "p2").unwrap();
        assert_eq!(limit_of_line(&l).resets_at, Some(2));
        let l = error_line(&path, "old").unwrap();
        assert_eq!(limit_of_line(&l).resets_at, Some(1));
        assert!(error_line(&path, "p3").is_none());
        // Never through a symlink.
        let link = dir.join("link.jsonl");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(error_line(&link, "p2").is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
