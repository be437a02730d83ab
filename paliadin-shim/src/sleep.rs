//! Sleep and wake (issue 14): a session idle past `idle_sleep_secs` has its
//! agent stopped by the shim itself, and its next turn starts the agent
//! again on the same conversation. Owns the session's `conversation`,
//! `asleep` and `woke` files and the rule for which agent is put to sleep;
//! never types into a pane and never touches a session a turn holds.
//!
//! Claude Code 2.1.328, measured: `--session-id <uuid>` starts a new
//! conversation under that id (again, once it exists, it exits 1 "already in
//! use"); `--resume <uuid>` starts on it, the whole conversation sent with
//! the next request, `SessionStart` source `resume`; an unknown id prints
//! "No conversation found" and exits 1 with no hook. SIGTERM stops it in
//! about 40 ms with its transcript kept. So the shim picks the id of every
//! fresh start, resumes it after a sleep, and starts anew (saying so in the
//! turn's events) when the conversation is gone.
//!
//! The sweep runs at the start of every request, there being no daemon: it
//! is bounded by [`SWEEP_BUDGET`], skips a session whose turn lock or start
//! lock is held, whose current turn is still pending or waits on a person,
//! or whose agent never became ready, and stops an agent only while holding
//! both locks, so no turn can start typing into it meanwhile.

use paliadin_core::event::{Event, Kind};
use paliadin_core::process::{memory, start_time, ExitWatch};
use paliadin_core::timefmt::now_ms;
use paliadin_core::SessionName;
use serde_json::{json, Value};
use std::time::{Duration, Instant, SystemTime};
use uuid::Uuid;

use crate::agent::{recorded_agent, Shim};
use crate::config::Config;
use crate::state::{LockName, Mark, SessionDir, TurnDir, TurnMark, TurnState};

/// The most a sweep may add to a request (a `health` has 3 s in all for
/// the Go client, ssh included).
pub const SWEEP_BUDGET: Duration = Duration::from_millis(500);
/// How long one agent is given to exit after SIGTERM (Claude Code: ~40 ms).
const STOP_WAIT: Duration = Duration::from_millis(300);

/// The flags that start the agent on the session's conversation: `--resume`
/// of it after a sleep, else `--session-id` of a new one (recorded). None
/// unless `agent_resume`.
pub fn launch_args(config: &Config, s: &SessionDir) -> std::io::Result<Vec<String>> {
    if !config.agent_resume {
        return Ok(Vec::new());
    }
    if let (Some(_), Some(id)) = (s.asleep(), s.conversation()) {
        return Ok(vec!["--resume".into(), id.to_string()]);
    }
    let id = Uuid::new_v4();
    s.set_conversation(id)?;
    Ok(vec!["--session-id".into(), id.to_string()])
}

/// Whether this start wakes an asleep agent (it is launched with `--resume`).
pub fn waking(config: &Config, s: &SessionDir) -> bool {
    config.agent_resume && s.asleep().is_some() && s.conversation().is_some()
}

/// A start that was a wake ended with the agent gone before it was ready:
/// its conversation cannot be resumed (Claude Code exits 1 at once for an
/// unknown id). Forgets it and leaves the note the next turn reports, so the
/// next start is a new conversation.
pub fn wake_failed(s: &SessionDir) {
    let old = s.conversation();
    s.forget_conversation();
    let note = json!({
        "how": "new",
        "detail": "the earlier conversation could not be resumed: a new one started",
        "conversation": old.map(|id| id.to_string()),
    });
    let _ = s.set_woke(&note.to_string());
}

/// The agent is ready after a start: if it was a wake, it is awake now.
pub fn started(s: &SessionDir, woke: bool) {
    if woke {
        let _ = s.set_woke(&json!({ "how": "resumed" }).to_string());
    }
}

/// Records how the agent woke, if it did for this turn, as the turn's first
/// event (PROTOCOL section 7, `woke`).
pub fn report(s: &SessionDir, t: &TurnDir) {
    let Some(note) = s.take_woke() else {
        return;
    };
    let v: Value = serde_json::from_str(&note).unwrap_or(Value::Null);
    let detail = match v["how"].as_str() {
        Some("new") => v["detail"].as_str().unwrap_or("a new conversation started"),
        _ => "resumed the conversation",
    };
    t.record(&Event {
        detail: Some(detail.into()),
        ..Event::new(Kind::Woke, paliadin_core::timefmt::rfc3339_ms(now_ms()))
    });
}

/// A session's state for `status`: `running` (its agent is alive),
/// `asleep` (stopped by the shim, its next turn resumes it) or `stopped`
/// (no agent: never started, reset, or it exited).
pub fn state(s: &SessionDir, alive: bool) -> &'static str {
    if alive {
        "running"
    } else if s.asleep().is_some() {
        "asleep"
    } else {
        "stopped"
    }
}

/// The memory a sleeping session's agent held when it was stopped.
pub fn freed(s: &SessionDir) -> Option<Value> {
    let v: Value = serde_json::from_str(&s.asleep()?).ok()?;
    Some(json!({ "rss_bytes": v["rss_bytes"], "private_bytes": v["private_bytes"] }))
}

/// Puts to sleep every session but `except` idle past `idle_sleep` (none
/// when it is off), within [`SWEEP_BUDGET`]. Never fails: a session it
/// cannot look at is left as it is.
pub fn sweep(shim: &Shim, except: Option<&SessionName>) {
    let Some(idle) = shim.config.idle_sleep else {
        return;
    };
    let until = Instant::now() + SWEEP_BUDGET;
    let Ok(Some(root)) = crate::state::open_root(&shim.config.state_dir, false) else {
        return;
    };
    let Ok(Some(sessions)) = root.child("sessions", false) else {
        return;
    };
    for key in sessions.names() {
        if Instant::now() >= until {
            return;
        }
        let Some(name) = SessionName::from_key(&key).filter(|n| Some(n) != except) else {
            continue;
        };
        let Ok(s) = SessionDir::open(&shim.config.state_dir, &name, false) else {
            continue;
        };
        if sleepy(&s, idle) {
            put_to_sleep(shim, &s, idle, until);
        }
    }
}

/// Whether the session may be put to sleep, as far as its files tell:
/// awake, ready, idle long enough, and no turn of it pending.
fn sleepy(s: &SessionDir, idle: Duration) -> bool {
    let idle_long = s
        .last_activity()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age >= idle);
    let pending = s.current().map(|id| s.turn(id)).is_some_and(|t| {
        t.exists()
            && !t.has(TurnMark::Idle)
            && matches!(t.state(), TurnState::Pending | TurnState::Blocked(_))
    });
    idle_long && !pending && s.asleep().is_none() && s.has(Mark::Ready)
}

/// Stops the session's agent, holding its locks, and records the sleep.
/// An agent not gone within [`STOP_WAIT`] (Claude Code takes ~40 ms) is
/// asleep all the same: its pane is killed (SIGHUP, which Claude Code also
/// ends on with its transcript kept), so no turn can reach it any more.
fn put_to_sleep(shim: &Shim, s: &SessionDir, idle: Duration, until: Instant) {
    let now = Instant::now();
    let Ok(Some(_turn)) = s.lock(LockName::Turn, now) else {
        return;
    };
    let Ok(Some(_start)) = s.lock(LockName::Start, now) else {
        return;
    };
    // Looked at again under the locks: a turn may have ended just now.
    let Some(agent) = recorded_agent(s).filter(|_| sleepy(s, idle)) else {
        return;
    };
    let Ok(Some(watch)) = ExitWatch::new(agent.pid) else {
        return;
    };
    let held = memory(agent.pid);
    let Some(pid) = i32::try_from(agent.pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    // The very process recorded: the watch was made after the start time
    // was checked, so a pid reused now would not be this one.
    if start_time(agent.pid) != s.agent().and_then(|a| a.starttime) {
        return;
    }
    let record = json!({
        "at_ms": now_ms(),
        "rss_bytes": held.map(|m| m.rss),
        "private_bytes": held.and_then(|m| m.private),
    });
    // Recorded first: once signalled, the agent is asleep whatever happens
    // to this request.
    if s.set_asleep(&record.to_string()).is_err() {
        return;
    }
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    let wait = STOP_WAIT.min(until.saturating_duration_since(Instant::now()));
    let mut fds = [rustix::event::PollFd::new(
        &watch,
        rustix::event::PollFlags::IN,
    )];
    let _ = rustix::event::poll(&mut fds, Some(&paliadin_core::child::timespec(wait)));
    s.forget_agent();
    // Gone with its agent, or still there after a slow exit: killed.
    let _ = shim.tmux.kill_session(&s.name.key());
}
