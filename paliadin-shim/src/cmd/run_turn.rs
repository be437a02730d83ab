//! `run-turn <session> <turn-id> <message-b64|->`: one turn, typed once,
//! answered once. Owns the order of a turn (lock, ready, arm the watch, paste,
//! confirm, wait, deliver) and the rule that a repeated turn id types nothing.
//! `run-turn-events` is the same turn with its progress streamed (PROTOCOL
//! section 7): the events the hooks record, as they arrive, then the reply as
//! the last line; the exit status is run-turn's. Only the stream waits for
//! the turn's `usage` event, which the `Stop` hook records after the reply
//! (at most [`crate::usage::WAIT`] later): `run-turn`'s reply never does.

use paliadin_core::envelope;
use paliadin_core::request::{decode_stdin_message, MessageSource};
use paliadin_core::{ExitCode, SessionName};
use std::time::{Duration, Instant};
use uuid::Uuid;

use crate::agent::{tmux_error, Shim};
use crate::error::{io_error, Result, ShimError};
use crate::outcome::settle;
use crate::output::Output;
use crate::state::{LockName, SessionDir, TurnDir, TurnMark, TurnState};
use crate::tmux::TmuxError;
use crate::wait::{Wake, Watch};

/// How many times Enter is pressed again when no submission is confirmed.
const ENTER_RETRIES: u32 = 3;
/// A turn typed longer ago than this no longer holds the next one up (Claude
/// reports idle after a minute; this bounds an agent that never says so).
const MAX_TURN_AGE: std::time::Duration = std::time::Duration::from_secs(30 * 60);

pub fn run(
    shim: &Shim,
    session: &SessionName,
    turn: Uuid,
    message: MessageSource,
    events: bool,
) -> Result<()> {
    let mut out = if events {
        Output::Events { from: 0 }
    } else {
        Output::Raw
    };
    let out = &mut out;
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
    let s = shim.session_dir(session, true)?;
    s.sweep();
    let t = s.turn(turn);
    if t.held() {
        return await_reply(shim, &s, &t, deadline, None, out);
    }
    // The subscription's limit holds for every session: nothing is typed.
    if let Some(limit) = crate::limit::holding(&shim.config.state_dir) {
        return Err(crate::limit::refuse(&limit, events));
    }
    let _lock = s
        .lock(LockName::Turn, deadline)?
        .ok_or_else(|| held_past_deadline(shim, &s))?;
    if t.exists() && !t.held() {
        // Left by a request stopped before it typed anything (we hold the
        // lock, so none is typing it now): the id was never held.
        t.remove();
    }
    await_previous(shim, &s, deadline)?;
    let pane = shim.ensure_ready(&s, deadline)?;
    crate::limit::clear_before_typing(shim, &s)?;
    if !t
        .create()
        .map_err(|e| io_error(&format!("cannot create {}", t.path().display()), e))?
    {
        // The same turn id arrived meanwhile: never type it twice.
        return await_reply(shim, &s, &t, deadline, None, out);
    }
    crate::sleep::report(&s, &t);
    match type_turn(shim, &s, &t, pane.pid, &clean) {
        Ok(None) => {
            s.clear_current(t.id);
            last_look(shim, &s, &t, out, || {
                ShimError::new(ExitCode::Cancelled, "the turn was cancelled")
            })
        }
        Ok(Some(watch)) => {
            let done = await_reply(shim, &s, &t, deadline, Some(watch), out);
            // Only the lock holder clears `current`: a `poll` racing a new
            // turn could otherwise remove the new turn's mark.
            if matches!(
                t.state(),
                TurnState::Replied
                    | TurnState::Failed(_)
                    | TurnState::UsageLimit(_)
                    | TurnState::Cancelled(_)
            ) {
                s.clear_current(t.id);
            }
            if let Err(e) = &done {
                if e.code == ExitCode::UsageLimit {
                    // Back to the prompt, as a person would leave it.
                    crate::limit::dismiss(shim, &s);
                }
            }
            done
        }
        Err((e, maybe_typed)) => {
            if maybe_typed {
                // tmux may have pasted before it failed: the id stays held
                // (a retry never types it twice) and the turn is over.
                let _ = t.mark(TurnMark::Failed, &e.detail);
            } else {
                // Nothing was typed: the id must not look held, or a retry
                // would wait for a reply that can never come.
                t.remove();
            }
            s.clear_current(t.id);
            Err(e)
        }
    }
}

/// Arms the watch, marks the id held, then types the envelope (the head as
/// keys, the message as one paste) and presses Enter; `None` when a
/// `cancel` asked first that it never be typed.
/// On failure, also says whether tmux may have typed something.
fn type_turn(
    shim: &Shim,
    s: &SessionDir,
    t: &TurnDir,
    pid: u32,
    clean: &str,
) -> Result<Option<Watch>, (ShimError, bool)> {
    let before = |e: ShimError| (e, false);
    let mut watch = shim.watch(s, shim.config.agent_hooks).map_err(before)?;
    if !watch.watch_pid(pid).map_err(|e| before(e.into()))? {
        return Err(before(ShimError::unavailable(
            "the agent's pane died before the turn was typed",
        )));
    }
    let key = s.name.key();
    // With hooks the reply is the agent's final message (the Stop hook
    // records it); only an agent without hooks is told where to write a file.
    let reply_to = (!shim.config.agent_hooks).then(|| t.reply_path());
    let head = envelope::head(&t.id, reply_to.as_deref());
    let body = envelope::body(clean);
    s.set_current(t.id).map_err(|e| {
        before(io_error(
            &format!("cannot write in {}", s.path().display()),
            e,
        ))
    })?;
    // From here on the id is held: whatever happens to this process, the
    // turn may have been typed and is never typed again.
    t.mark(TurnMark::Typed, "")
        .map_err(|e| before(io_error(&format!("cannot write {}", t.path().display()), e)))?;
    // After `typed`, before tmux: a `cancel` that found the id not held yet
    // asked first (and looks at `typed` after asking), so one of the two
    // sees the other and the turn is either never typed or interrupted.
    if s.take_cancel(t.id) {
        let _ = super::cancel::record_cancelled(s, t, "before it was typed");
        return Ok(None);
    }
    shim.tmux
        .type_submit(
            &key,
            &format!("paliadin-{key}-{}", t.id),
            &head,
            &body,
            true,
        )
        .map_err(|e| match e {
            TmuxError::NoSession(_) | TmuxError::Missing => {
                // The recorded agent is not this session's any more: start afresh next time.
                s.forget_agent();
                before(tmux_error(e))
            }
            e => (tmux_error(e), true),
        })?;
    s.touch();
    Ok(Some(watch))
}

fn held_past_deadline(shim: &Shim, s: &SessionDir) -> ShimError {
    ShimError::new(
        ExitCode::Blocked,
        "another turn held the session past the deadline",
    )
    .with_pane(shim.tail(s))
}

/// Turns of a session run one at a time, also in the pane: a turn that ran
/// past its wait (124) may still be working there, so the next one waits
/// for it to end (its reply arrives and stays for `poll`, it fails, or the
/// agent goes idle) rather than typing into a busy agent.
fn await_previous(shim: &Shim, s: &SessionDir, deadline: Instant) -> Result<()> {
    let Some(prev) = s.current() else {
        return Ok(());
    };
    let p = s.turn(prev);
    let mut watch: Option<Watch> = None;
    loop {
        // Nothing to wait for: the turn is gone or over, its agent is gone,
        // its Enter never got in (the holder gave up retrying), the agent
        // cannot tell us (no hooks), or it is older than any turn runs.
        let over = !p.exists()
            || p.has(TurnMark::Idle)
            || !p.has(TurnMark::Submitted)
            || !shim.config.agent_hooks
            || crate::agent::recorded_agent(s).is_none()
            || p.age().is_some_and(|a| a > MAX_TURN_AGE);
        if over {
            return Ok(());
        }
        match p.state() {
            TurnState::Pending => {}
            TurnState::Blocked(m) => {
                return Err(ShimError::new(
                    ExitCode::Blocked,
                    format!("an earlier turn waits on a person ({m}); answer it with: paliadin-shim attach {}", s.name),
                )
                .with_pane(shim.tail(s)))
            }
            _ => return Ok(()),
        }
        let Some(w) = &mut watch else {
            // Armed on the first need, then looked again: a record made
            // before the bell existed is seen by that look.
            watch = Some(shim.watch(s, true)?);
            continue;
        };
        if w.wait(deadline)? == Wake::Deadline && Instant::now() >= deadline {
            return Err(held_past_deadline(shim, s));
        }
    }
}

/// Waits for the turn's outcome until `deadline`. With `watch` (a turn this
/// process typed), Enter is pressed again while no submission is confirmed
/// and the agent's death ends the wait at once.
fn await_reply(
    shim: &Shim,
    s: &SessionDir,
    t: &TurnDir,
    deadline: Instant,
    watch: Option<Watch>,
    out: &mut Output,
) -> Result<()> {
    let typed = watch.is_some();
    let mut watch = match watch {
        Some(w) => w,
        None => {
            let mut w = shim.watch(s, shim.config.agent_hooks)?;
            // A repeated id also learns at once that the agent died.
            if let Some(p) = crate::agent::recorded_agent(s) {
                w.watch_pid(p.pid)?;
            }
            w
        }
    };
    let retry = shim.config.submit_retry;
    let mut enters = 0;
    let mut next_enter = Instant::now() + retry;
    let mut usage = UsageWait::new(shim, out);
    loop {
        if !t.exists() {
            return Err(ShimError::unavailable(format!(
                "turn {} was never typed (typing it failed)",
                t.id
            )));
        }
        out.flush_events(t)?;
        if let Some(until) = usage.due(t) {
            if watch.wait(until.min(deadline))? == Wake::Died || Instant::now() >= deadline {
                usage.give_up();
            }
            continue;
        }
        // The hook records the usage, then marks it recorded: between the
        // flush above and that look, the event may have come; it goes
        // before the reply.
        if usage.wanted {
            out.flush_events(t)?;
        }
        if let Some(done) = settle(shim, s, t, out)? {
            // Settling may have recorded the last event (a usage limit's).
            out.flush_events(t)?;
            return done;
        }
        let confirming = typed
            && shim.config.agent_hooks
            && enters < ENTER_RETRIES
            && !t.has(TurnMark::Submitted);
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
            // A reply written just before the exit still counts.
            Wake::Died => return last_look(shim, s, t, out, died),
            Wake::Deadline if Instant::now() >= deadline => {
                return last_look(shim, s, t, out, || {
                    ShimError::new(
                        ExitCode::Timeout,
                        format!(
                            "no reply within {} s; collect it later with: poll {} {}",
                            shim.config.wait.as_secs(),
                            s.name,
                            t.id
                        ),
                    )
                    .with_pane(shim.tail(s))
                })
            }
            _ => {}
        }
    }
}

/// The outcome at the end of the wait if there is one, else `otherwise`.
fn last_look(
    shim: &Shim,
    s: &SessionDir,
    t: &TurnDir,
    out: &mut Output,
    otherwise: impl FnOnce() -> ShimError,
) -> Result<()> {
    out.flush_events(t)?;
    let done = settle(shim, s, t, out)?;
    out.flush_events(t)?;
    done.unwrap_or_else(|| Err(otherwise()))
}

/// A stream's wait for the turn's `usage` event once its outcome is there.
struct UsageWait {
    wanted: bool,
    until: Option<Instant>,
}

impl UsageWait {
    fn new(shim: &Shim, out: &Output) -> UsageWait {
        UsageWait {
            wanted: shim.config.agent_hooks && matches!(out, Output::Events { .. }),
            until: None,
        }
    }

    /// Until when to wait for it, while it is due: the turn has its
    /// outcome, and its hook has not recorded the usage yet.
    fn due(&mut self, t: &TurnDir) -> Option<Instant> {
        if !self.wanted
            || !matches!(t.state(), TurnState::Replied | TurnState::Failed(_))
            || t.has(TurnMark::Measured)
        {
            return None;
        }
        // The hook's own bound, and its start and stdin besides.
        let until = *self
            .until
            .get_or_insert_with(|| Instant::now() + crate::usage::WAIT + Duration::from_secs(1));
        if Instant::now() >= until {
            self.wanted = false;
            return None;
        }
        Some(until)
    }

    fn give_up(&mut self) {
        self.wanted = false;
    }
}

fn died() -> ShimError {
    ShimError::unavailable("the agent's pane died mid-turn")
}
