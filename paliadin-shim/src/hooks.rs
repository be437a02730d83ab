//! PROTOCOL sections 5 and 7 from the shim's side: the settings file that
//! registers `paliadin-shim hook <Event>` with the agent, and the handler that
//! runs for each event. The handler reads its stdin with a bound, records the
//! turn's progress event, leaves its marker (the reply, for `Stop`) in the
//! session's state, then rings the waiters' bells, and exits 0 within a
//! second whatever it got (a `Stop` or `StopFailure` then spends up to 2 s
//! more on the turn's usage, [`crate::usage`], after its outcome is rung), printing
//! nothing (a `PreToolUse` hook's output would be a decision): it must never
//! hold the agent up, never type into a pane, never fail loudly.

use paliadin_core::envelope::turn_of_prompt;
use paliadin_core::event::{self, Event, Kind};
use paliadin_core::session::SessionName;
use paliadin_core::text::one_line;
use serde_json::{json, Value};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::state::{SessionDir, TurnMark};

/// The agent's hook events the shim registers for, by Claude Code's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookEvent {
    SessionStart,
    UserPromptSubmit,
    Stop,
    StopFailure,
    Notification,
    PermissionRequest,
    PreToolUse,
    PostToolUse,
    PostToolUseFailure,
    PreCompact,
}

impl HookEvent {
    /// Every event, in the order the settings file lists them.
    pub const ALL: [HookEvent; 10] = [
        HookEvent::SessionStart,
        HookEvent::UserPromptSubmit,
        HookEvent::Stop,
        HookEvent::StopFailure,
        HookEvent::Notification,
        HookEvent::PermissionRequest,
        HookEvent::PreToolUse,
        HookEvent::PostToolUse,
        HookEvent::PostToolUseFailure,
        HookEvent::PreCompact,
    ];

    /// Claude Code's name of the event.
    pub fn name(self) -> &'static str {
        match self {
            HookEvent::SessionStart => "SessionStart",
            HookEvent::UserPromptSubmit => "UserPromptSubmit",
            HookEvent::Stop => "Stop",
            HookEvent::StopFailure => "StopFailure",
            HookEvent::Notification => "Notification",
            HookEvent::PermissionRequest => "PermissionRequest",
            HookEvent::PreToolUse => "PreToolUse",
            HookEvent::PostToolUse => "PostToolUse",
            HookEvent::PostToolUseFailure => "PostToolUseFailure",
            HookEvent::PreCompact => "PreCompact",
        }
    }

    pub fn from_name(name: &str) -> Option<HookEvent> {
        HookEvent::ALL.into_iter().find(|e| e.name() == name)
    }
}

/// The most the handler reads from stdin (a Stop carries the whole reply).
const MAX_INPUT: usize = 16 << 20;
/// The handler's whole budget for reading stdin.
const READ_BUDGET: Duration = Duration::from_millis(800);

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The settings JSON that registers `exe hook <Event>` for every event and
/// `exe status-line` as the status line (the only place Claude Code shows
/// the plan's windows; it replaces the user's own, PROTOCOL section 8), and
/// turns off the automatic continue at a usage limit (claude would send a
/// prompt of its own after the reset). Claude Code honours only the last
/// `--settings` of its command line: the shim's comes last. The agent runs
/// each command through `sh -c`; `exec` lets the shell become the shim
/// instead of forking it and waiting (dash forks otherwise), which saves a
/// process per hook, a millisecond or more on two cores.
pub fn settings_json(exe: &Path) -> String {
    serde_json::to_string_pretty(&settings(exe, None, None)).unwrap_or_default()
}

/// The settings; in approve mode (`approve`: the wait) with no permission
/// dialog ever shown and the `PermissionRequest` hook given time to wait
/// ([`crate::approve`]); with Claude Code's `sandbox` block when the config
/// asks for it (`crate::sandbox`).
fn settings(exe: &Path, approve: Option<Duration>, sandbox: Option<Value>) -> Value {
    let mut hooks = serde_json::Map::new();
    for ev in HookEvent::ALL {
        let command = format!(
            "exec {} hook {}",
            shell_quote(&exe.to_string_lossy()),
            ev.name()
        );
        let timeout = match (ev, approve) {
            (HookEvent::PermissionRequest, Some(w)) => {
                w.as_secs() + crate::approve::HOOK_MARGIN_SECS
            }
            _ => 5,
        };
        hooks.insert(
            ev.name().into(),
            json!([{ "hooks": [{ "type": "command", "command": command, "timeout": timeout }] }]),
        );
    }
    let status = format!("exec {} status-line", shell_quote(&exe.to_string_lossy()));
    let mut v = json!({
        "hooks": hooks,
        "statusLine": { "type": "command", "command": status },
        "autoContinueAtUsageLimit": false,
    });
    if approve.is_some() {
        v["permissions"] = json!({ "denyInsteadOfPrompting": true });
    }
    if let Some(s) = sandbox {
        v["sandbox"] = s;
    }
    v
}

/// Writes the settings file under `state_dir` (only when it changed) and returns its path.
pub fn write_settings(
    state_dir: &Path,
    approve: Option<Duration>,
    sandbox: Option<Value>,
) -> std::io::Result<PathBuf> {
    let name = match approve {
        None => "claude-settings.json",
        Some(_) => "claude-settings-approve.json",
    };
    let exe = std::env::current_exe()?;
    let root = crate::state::open_root(state_dir, true)?
        .ok_or_else(|| std::io::Error::other("the state directory vanished"))?;
    let text = serde_json::to_string_pretty(&settings(&exe, approve, sandbox)).unwrap_or_default();
    if root.read(name, 1 << 20)?.as_deref() != Some(text.as_bytes()) {
        root.write(name, text.as_bytes())?;
    }
    Ok(state_dir.join(name))
}

/// Reads stdin until EOF, [`MAX_INPUT`] or [`READ_BUDGET`], whichever first.
pub(crate) fn read_bounded_stdin() -> Vec<u8> {
    use rustix::event::{poll, PollFd, PollFlags};
    let stdin = std::io::stdin();
    let fd = rustix::stdio::stdin();
    let deadline = Instant::now() + READ_BUDGET;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    while buf.len() < MAX_INPUT {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let ts = paliadin_core::child::timespec(left);
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        match poll(&mut fds, Some(&ts)) {
            Ok(0) => break,
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => break,
        }
        match stdin.lock().read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n.min(MAX_INPUT - buf.len())]),
        }
    }
    buf
}

/// The handler of `paliadin-shim hook <Event>`: always returns normally.
pub fn run(event: &str) {
    let input = read_bounded_stdin();
    let Some(event) = HookEvent::from_name(event) else {
        return;
    };
    let v: Value = serde_json::from_slice(&input).unwrap_or(Value::Null);
    let Some(dir) = own_session(event.name()) else {
        return;
    };
    // Approve mode: the hook holds the decision until a person answers.
    let wait = std::env::var(crate::approve::ENV)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|&s| s > 0);
    if let (HookEvent::PermissionRequest, Some(secs)) = (event, wait) {
        let answer = crate::approve::hold(&dir, &v, Duration::from_secs(secs));
        println!("{answer}");
        return;
    }
    handle(&dir, event, &v);
}

/// The session whose agent runs this call (`PALIADIN_STATE_DIR` and
/// `PALIADIN_SESSION` in its environment), if it exists and the call
/// carries that agent's hook key: nothing is written for anyone else (a
/// refusal is counted as `what`'s).
pub(crate) fn own_session(what: &str) -> Option<SessionDir> {
    let state = std::env::var_os("PALIADIN_STATE_DIR")?;
    let name = SessionName::new(&std::env::var("PALIADIN_SESSION").ok()?).ok()?;
    let dir = SessionDir::open(Path::new(&state), &name, false).ok()?;
    if !dir.exists() {
        return None;
    }
    let key = std::env::var(crate::hookauth::ENV).ok();
    crate::hookauth::admit(&dir, what, key.as_deref())?;
    Some(dir)
}

/// The progress event (PROTOCOL section 7) a hook event stands for, if any.
pub fn progress(event: HookEvent, v: &Value) -> Option<Event> {
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("");
    let short = |t: &str| one_line(t, Some(event::MAX_SUMMARY));
    let tool = || Some(short(s("tool_name"))).filter(|t| !t.is_empty());
    let target = || event::summarise(s("tool_name"), v.get("tool_input").unwrap_or(&Value::Null));
    let (kind, tool, target, detail) = match event {
        HookEvent::UserPromptSubmit => (Kind::Submitted, None, None, None),
        HookEvent::PreToolUse => (Kind::ToolStarted, tool(), target(), None),
        HookEvent::PostToolUse => (Kind::ToolFinished, tool(), target(), None),
        // Never the tool's error text: it may quote what the tool read.
        HookEvent::PostToolUseFailure => (Kind::ToolFailed, tool(), target(), None),
        HookEvent::PreCompact => (Kind::Compacting, None, None, None),
        HookEvent::PermissionRequest => (
            Kind::Blocked,
            tool(),
            target(),
            Some("permission_request".into()),
        ),
        HookEvent::Notification => match s("notification_type") {
            k @ ("permission_prompt" | "elicitation_dialog") => {
                (Kind::Blocked, None, None, Some(k.to_owned()))
            }
            "idle_prompt" => (Kind::Idle, None, None, None),
            _ => return None,
        },
        // A rate limit's event waits until it is told apart (`crate::limit`).
        HookEvent::StopFailure if crate::limit::is_rate_limit(v) => return None,
        HookEvent::StopFailure => (Kind::Failed, None, None, Some(short(&failure_of(v)))),
        HookEvent::Stop if s("last_assistant_message").trim().is_empty() => {
            (Kind::Failed, None, None, Some("no message".into()))
        }
        HookEvent::Stop => (Kind::Replied, None, None, None),
        HookEvent::SessionStart => return None,
    };
    Some(Event {
        tool,
        target,
        detail,
        ..Event::new(
            kind,
            paliadin_core::timefmt::rfc3339_ms(paliadin_core::timefmt::now_ms()),
        )
    })
}

/// What a `StopFailure` says went wrong.
fn failure_of(v: &Value) -> String {
    match v.get("error") {
        Some(Value::String(e)) => e.clone(),
        Some(e) => e.to_string(),
        None => "the agent reported a failure".into(),
    }
}

/// Whether a prompt is one Claude Code submits by itself: 2.1.328 does when
/// a background task (the Agent tool's subagent) ends, with a
/// `<task-notification>` of it.
fn is_agents_own_prompt(prompt: &str) -> bool {
    prompt.trim_start().starts_with("<task-notification>")
}

/// Acts on one event (separate from stdin for tests).
pub fn handle(dir: &SessionDir, event: HookEvent, v: &Value) {
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    dir.touch();
    let last = || dir.last_prompt().map(|id| dir.turn(id));
    // The turn this event belongs to: the prompt's own, else the last
    // submitted one (turns never overlap in the pane). Recorded first, so
    // that a stream sees the event before the outcome it leads to.
    let owner = match event {
        HookEvent::UserPromptSubmit => turn_of_prompt(&s("prompt")).map(|id| dir.turn(id)),
        _ => last(),
    };
    if let (Some(t), Some(e)) = (owner.filter(|t| t.exists()), progress(event, v)) {
        t.record(&e);
    }
    // Where an outcome goes: the last submitted turn. The next turn is
    // never typed before the earlier one ended, so that is the one.
    let last_turn = || last().filter(|t| t.exists());
    // The turn whose usage this hook measures: taken before the ring, after
    // which the next turn may be typed and become the last.
    let measured = match event {
        HookEvent::Stop | HookEvent::StopFailure => {
            last_turn().filter(|t| !t.has(TurnMark::Measured))
        }
        _ => None,
    };
    match event {
        HookEvent::SessionStart => {
            let _ = dir.set_agent_session(&s("session_id"));
            let _ = dir.mark_ready(&s("source"));
        }
        // Claude Code's own prompt when a background agent of a turn ends
        // (`<task-notification>`) can come before that turn's `Stop`: it
        // must not take the turn's reply away. Its own answer then finds
        // the turn answered already, and is nobody's.
        HookEvent::UserPromptSubmit if is_agents_own_prompt(&s("prompt")) => {}
        HookEvent::UserPromptSubmit => {
            // An untagged prompt is an operator typing in the attached
            // pane: whatever the agent answers now belongs to no turn.
            let id = turn_of_prompt(&s("prompt"));
            let _ = dir.set_last_prompt(id);
            if let Some(t) = id.map(|id| dir.turn(id)).filter(|t| t.exists()) {
                let _ = t.mark(TurnMark::Submitted, "");
            }
        }
        // The turn is over and its reply is the model's final message (the
        // skill asks for nothing else): this is how a turn with hooks is
        // answered.
        HookEvent::Stop => {
            if let Some(t) = last_turn() {
                let msg = s("last_assistant_message");
                if msg.trim().is_empty() {
                    let _ = t.mark(
                        TurnMark::Failed,
                        "the agent ended its turn without a message",
                    );
                } else {
                    let _ = t.write_reply(msg.as_bytes());
                }
            }
        }
        HookEvent::StopFailure => {
            // Also for a prompt of no turn (a person in the attached pane):
            // the next turn looks for the limit's menu before it types.
            if crate::limit::is_rate_limit(v) {
                let _ = dir.mark(crate::state::Mark::LimitPane, "");
            }
            if let Some(t) = last_turn() {
                let _ = if crate::limit::is_rate_limit(v) {
                    t.mark(TurnMark::RateLimited, &crate::limit::hook_record(v))
                } else {
                    t.mark(TurnMark::Failed, &failure_of(v))
                };
            }
        }
        // Fires the moment a tool call would ask a person (the
        // `permission_prompt` notification comes seconds later); never in
        // `dontAsk` mode, where such a call is denied without asking.
        HookEvent::PermissionRequest => {
            if let Some(t) = last_turn() {
                let why = format!("permission_request: {}", s("tool_name"));
                let _ = t.mark(TurnMark::Blocked, &why);
            }
        }
        HookEvent::Notification => notification(dir, &s("notification_type"), &s("message")),
        HookEvent::PreToolUse
        | HookEvent::PostToolUse
        | HookEvent::PostToolUseFailure
        | HookEvent::PreCompact => {}
    }
    // Last, once everything is recorded: the waiters look again.
    dir.ring();
    // Then what the turn cost, off the reply's path; rung again.
    if let Some(t) = measured {
        crate::usage::record(dir, &t, v);
        dir.ring();
    }
}

/// A `Notification` of `kind`.
fn notification(dir: &SessionDir, kind: &str, message: &str) {
    let last = dir.last_prompt().map(|id| dir.turn(id));
    match kind {
        "permission_prompt" | "elicitation_dialog" => {
            if let Some(t) = last.filter(|t| t.exists()) {
                let _ = t.mark(TurnMark::Blocked, &format!("{kind}: {message}"));
            }
        }
        // Waiting for input: whatever was typed last is over, with or
        // without a reply (an interrupt fires no Stop), and so is the turn
        // the shim waits for, even if its Enter never got in.
        "idle_prompt" => {
            let current = dir.current().map(|id| dir.turn(id));
            for t in last.into_iter().chain(current).filter(|t| t.exists()) {
                let _ = t.mark(TurnMark::Idle, "");
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_register_every_event_with_a_quoted_path() {
        let v: Value =
            serde_json::from_str(&settings_json(Path::new("/opt/it's here/paliadin-shim")))
                .unwrap();
        for ev in HookEvent::ALL.map(HookEvent::name) {
            let cmd = v["hooks"][ev][0]["hooks"][0]["command"].as_str().unwrap();
            assert_eq!(
                cmd,
                format!(r"exec '/opt/it'\''s here/paliadin-shim' hook {ev}")
            );
            assert_eq!(v["hooks"][ev][0]["hooks"][0]["type"], "command");
        }
        assert_eq!(
            v["statusLine"]["command"],
            r"exec '/opt/it'\''s here/paliadin-shim' status-line"
        );
        assert_eq!(v["autoContinueAtUsageLimit"], false);
    }

    #[test]
    fn approve_mode_settings_never_prompt_and_give_the_hook_its_wait() {
        let exe = Path::new("/bin/shim");
        let plain = settings(exe, None, None);
        assert_eq!(plain.get("permissions"), None);
        assert_eq!(
            plain["hooks"]["PermissionRequest"][0]["hooks"][0]["timeout"],
            5
        );
        let v = settings(exe, Some(Duration::from_secs(60)), None);
        assert_eq!(v["permissions"]["denyInsteadOfPrompting"], true);
        assert_eq!(
            v["hooks"]["PermissionRequest"][0]["hooks"][0]["timeout"],
            70
        );
        assert_eq!(v["hooks"]["Stop"][0]["hooks"][0]["timeout"], 5);
    }

    #[test]
    fn stop_writes_the_reply_once_and_it_stays() {
        let tmp = std::env::temp_dir().join(format!("paliadin-hooks-{}", std::process::id()));
        paliadin_core::fsutil::private_dir(&tmp).unwrap();
        let dir = SessionDir::open(&tmp, &SessionName::new("s").unwrap(), true).unwrap();
        let id = uuid::Uuid::new_v4();
        let t = dir.turn(id);
        t.create().unwrap();
        let prompt = format!("[PALIADIN:{id}]\nhi");
        handle(
            &dir,
            HookEvent::UserPromptSubmit,
            &json!({ "prompt": prompt }),
        );
        assert!(t.has(TurnMark::Submitted));
        handle(
            &dir,
            HookEvent::Stop,
            &json!({ "last_assistant_message": "first" }),
        );
        handle(
            &dir,
            HookEvent::Stop,
            &json!({ "last_assistant_message": "second" }),
        );
        assert_eq!(t.reply().unwrap().unwrap(), b"first");
        t.delivered();
        assert_eq!(t.reply().unwrap().unwrap(), b"first", "kept after delivery");
        handle(
            &dir,
            HookEvent::Notification,
            &json!({ "notification_type": "idle_prompt" }),
        );
        assert!(!t.has(TurnMark::Blocked));
        assert!(t.has(TurnMark::Idle));
        // A turn ended with no message at all fails instead of waiting out its deadline.
        let id2 = uuid::Uuid::new_v4();
        let t2 = dir.turn(id2);
        t2.create().unwrap();
        handle(
            &dir,
            HookEvent::UserPromptSubmit,
            &json!({ "prompt": format!("[PALIADIN:{id2}]\nx") }),
        );
        handle(
            &dir,
            HookEvent::PermissionRequest,
            &json!({ "tool_name": "Bash" }),
        );
        assert_eq!(
            t2.state(),
            crate::state::TurnState::Blocked("permission_request: Bash".into())
        );
        handle(
            &dir,
            HookEvent::Stop,
            &json!({ "last_assistant_message": "  " }),
        );
        assert!(t2.has(TurnMark::Failed));
        // Claude's own prompt when a turn's background agent ends, before
        // the turn's Stop: the reply is still the turn's.
        let id3 = uuid::Uuid::new_v4();
        let t3 = dir.turn(id3);
        t3.create().unwrap();
        handle(
            &dir,
            HookEvent::UserPromptSubmit,
            &json!({ "prompt": format!("[PALIADIN:{id3}]\nspawn one") }),
        );
        handle(
            &dir,
            HookEvent::UserPromptSubmit,
            &json!({ "prompt": "<task-notification>\n<task-id>a1</task-id>\n<status>completed</status>" }),
        );
        assert_eq!(dir.last_prompt(), Some(id3));
        handle(
            &dir,
            HookEvent::Stop,
            &json!({ "last_assistant_message": "the turn's answer" }),
        );
        handle(
            &dir,
            HookEvent::Stop,
            &json!({ "last_assistant_message": "the notification's answer" }),
        );
        assert_eq!(
            t3.reply().unwrap().as_deref(),
            Some(&b"the turn's answer"[..])
        );
        // An untagged prompt (someone typing in the pane) belongs to no turn.
        handle(
            &dir,
            HookEvent::UserPromptSubmit,
            &json!({ "prompt": "what are you doing?" }),
        );
        assert_eq!(dir.last_prompt(), None);
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
