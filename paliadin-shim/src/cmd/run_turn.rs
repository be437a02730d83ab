//! `run-turn <session> <turn-id> <message-b64|->`: one turn, typed once,
//! answered once. Owns the order of a turn (lock, ready, arm the watch, paste,
//! confirm, wait, deliver) and the rule that a repeated turn id types nothing.

use paliadin_core::envelope;
use paliadin_core::request::{decode_stdin_message, MessageSource};
use paliadin_core::{ExitCode, SessionName};
use std::time::Instant;
use uuid::Uuid;

use crate::agent::{tmux_error, Shim};
use crate::error::{Result, ShimError};
use crate::state::{SessionDir, TurnDir, TurnState};
use crate::wait::{Wake, Watch};

/// How many times Enter is pressed again when no submission is confirmed.
const ENTER_RETRIES: u32 = 3;

pub fn run(shim: &Shim, session: &SessionName, turn: Uuid, message: MessageSource) -> Result<()> {
    let start = Instant::now();
    let deadline = start + shim.config.wait;
    let text = match message {
        MessageSource::Inline(t) => t,
        MessageSource::Stdin => decode_stdin_message(
            &mut std::io::stdin().lock(),
            shim.config.limits.stdin_message,
        )
        .map_err(|e| ShimError::invalid(e.to_string()))?,
    };
    let clean = envelope::sanitise(&text);
    if clean.trim().is_empty() {
        return Err(ShimError::invalid(
            "invalid message: nothing left after removing control characters",
        ));
    }
    let s = shim.session_dir(session);
    s.create()?;
    s.sweep();
    let t = s.turn(turn);
    if t.exists() {
        return await_reply(shim, &s, &t, deadline, None);
    }
    let _lock = s.lock("lock", deadline)?.ok_or_else(|| {
        ShimError::new(
            ExitCode::Blocked,
            "another turn held the session past the deadline",
        )
        .with_pane(shim.tail(&s))
    })?;
    let pane = shim.ensure_ready(&s, deadline)?;
    if !t.create()? {
        // The same turn id arrived meanwhile: never type it twice.
        return await_reply(shim, &s, &t, deadline, None);
    }
    let mut watch = Watch::new(&[&t.dir])?;
    if !watch.watch_pid(pane.pid)? {
        return Err(ShimError::unavailable(
            "the agent's pane died before the turn was typed",
        ));
    }
    let key = s.name.key();
    let typed = envelope::render(&turn, &t.reply_path(), &clean);
    s.write("current", &turn.to_string())?;
    shim.tmux
        .paste_submit(&key, &format!("paliadin-{key}-{turn}"), &typed)
        .map_err(tmux_error)?;
    s.touch();
    await_reply(shim, &s, &t, deadline, Some(watch))
}

/// Waits for the turn's outcome until `deadline`. With `watch` (a turn this
/// process typed), Enter is pressed again while no submission is confirmed
/// and the agent's death ends the wait at once.
pub fn await_reply(
    shim: &Shim,
    s: &SessionDir,
    t: &TurnDir,
    deadline: Instant,
    watch: Option<Watch>,
) -> Result<()> {
    let typed = watch.is_some();
    let mut watch = match watch {
        Some(w) => w,
        None => Watch::new(&[&t.dir])?,
    };
    let retry = shim.config.submit_retry;
    let mut enters = 0;
    let mut next_enter = Instant::now() + retry;
    loop {
        if t.state() != TurnState::Pending {
            watch.disarm();
        }
        if let Some(done) = settle(shim, s, t)? {
            return done;
        }
        let confirming =
            typed && shim.config.agent_hooks && enters < ENTER_RETRIES && !t.has("submitted");
        if confirming && Instant::now() >= next_enter {
            if watch.died() {
                return Err(died());
            }
            shim.tmux.enter(&s.name.key()).map_err(tmux_error)?;
            enters += 1;
            next_enter = Instant::now() + retry;
        }
        let until = if confirming {
            deadline.min(next_enter)
        } else {
            deadline
        };
        match watch.wait(until)? {
            Wake::Died => {
                // A reply written just before the exit still counts.
                return match settle(shim, s, t)? {
                    Some(done) => done,
                    None => Err(died()),
                };
            }
            Wake::Deadline if Instant::now() >= deadline => {
                return match settle(shim, s, t)? {
                    Some(done) => done,
                    None => Err(ShimError::new(
                        ExitCode::Timeout,
                        format!(
                            "no reply within {} s; collect it later with: poll {} {}",
                            shim.config.wait.as_secs(),
                            s.name,
                            t.id
                        ),
                    )
                    .with_pane(shim.tail(s))),
                };
            }
            _ => {}
        }
    }
}

fn died() -> ShimError {
    ShimError::unavailable("the agent's pane died mid-turn")
}

/// The turn's outcome if it has one: `Some(Ok)` once delivered.
pub fn settle(shim: &Shim, s: &SessionDir, t: &TurnDir) -> Result<Option<Result<()>>> {
    Ok(match t.state() {
        TurnState::Replied => t.claim()?.map(|reply| deliver(s, t, &reply)),
        TurnState::Delivered => Some(Err(ShimError::invalid(format!(
            "turn {} was already delivered",
            t.id
        )))),
        TurnState::Failed(e) => Some(Err(ShimError::new(
            ExitCode::AgentError,
            format!("the agent reported a failure: {e}"),
        ))),
        TurnState::Blocked(m) => Some(Err(ShimError::new(
            ExitCode::Blocked,
            format!(
                "the pane waits on a person ({m}); answer it with: paliadin-shim attach {}",
                s.name
            ),
        )
        .with_pane(shim.tail(s)))),
        TurnState::Pending => None,
    })
}

fn deliver(s: &SessionDir, t: &TurnDir, reply: &[u8]) -> Result<()> {
    if let Err(e) = super::print(reply) {
        t.unclaim();
        return Err(ShimError::failure(format!(
            "could not write the reply (kept for poll): {e}"
        )));
    }
    t.delivered()?;
    if s.read("current")
        .is_some_and(|c| c.trim() == t.id.to_string())
    {
        s.remove("current");
    }
    Ok(())
}
