//! `cancel <session> <turn-id>`: stops the session's current turn of that
//! id as a person would, with one Escape while the agent shows it busy, and
//! confirms the interruption on the pane before it says so. The turn then
//! ends with exit 130 `cancelled` for whoever waits on it (`run-turn`,
//! `run-turn-events`, `poll`), and the session takes its next turn at once:
//! no hook fires on an interrupt, so this request marks the turn itself.
//!
//! Never presses Ctrl-C (a second one exits Claude Code), never a second
//! Escape (two at an idle prompt open the Rewind menu), and nothing right
//! after Escape (it would be read as Meta+key). A turn not held yet is asked
//! never to be typed; any other turn or session is left alone.

use paliadin_core::{ExitCode, SessionName};
use std::time::{Duration, Instant};
use uuid::Uuid;

use crate::agent::{tmux_error, Shim};
use crate::error::{io_error, Result, ShimError};
use crate::output::print_or_fail;
use crate::state::{SessionDir, TurnDir, TurnMark, TurnState};
use crate::tmux::Key;

/// How long a cancel waits for its turn to show busy (typed, not yet
/// submitted or drawn).
const BUSY_WAIT: Duration = Duration::from_secs(5);
/// How long the pane has to confirm the interruption (measured 0.1–0.2 s).
const CONFIRM_WAIT: Duration = Duration::from_secs(3);
/// How often the pane is looked at meanwhile.
const LOOK_EVERY: Duration = Duration::from_millis(20);

/// Claude Code's status line while a turn runs.
const BUSY: &str = "esc to interrupt";
/// What Claude Code shows once a turn with output is interrupted.
const INTERRUPTED: &str = "Interrupted · What should Claude do instead?";

pub fn run(shim: &Shim, session: &SessionName, turn: Uuid) -> Result<()> {
    let s = shim.session_dir(session, false)?;
    let t = s.turn(turn);
    if !t.held() {
        if s.exists() {
            // Its run-turn may still wait for the session or the agent: ask
            // that it never type it, then look again (run-turn marks
            // `typed` before it looks for this request).
            s.request_cancel(turn)
                .map_err(|e| io_error(&format!("cannot write in {}", s.path().display()), e))?;
        }
        if !t.held() {
            return Err(ShimError::invalid(format!(
                "turn {turn} is not held for session {session}: nothing was stopped (if its run-turn is still on its way, it will not be typed)"
            )));
        }
    }
    let deadline = Instant::now() + BUSY_WAIT.min(shim.config.wait);
    loop {
        if let Some(word) = over(&s, &t) {
            return print_or_fail(format!("{word}\n").as_bytes());
        }
        let screen = pane(shim, &s)?;
        if t.has(TurnMark::Submitted) && busy(&screen) {
            return interrupt(shim, &s, &t);
        }
        // Typed but never submitted (its Enter got lost, and the request
        // that typed it, the only one that presses Enter again, is over):
        // the prompt still waits in the input box.
        let head = format!("[PALIADIN:{turn}]");
        if !t.has(TurnMark::Submitted) && !s.busy() && !busy(&screen) && input_holds(&screen, &head)
        {
            clear_input(shim, &s, &head)?;
            return mark_cancelled(&s, &t, "never submitted: cleared from the input box");
        }
        if Instant::now() >= deadline {
            return Err(ShimError::new(
                ExitCode::Timeout,
                format!(
                    "turn {turn} did not show busy on the pane within {} s; nothing was pressed",
                    BUSY_WAIT.min(shim.config.wait).as_secs()
                ),
            )
            .with_pane(shim.tail(&s)));
        }
        std::thread::sleep(LOOK_EVERY);
    }
}

/// `cancelled` or `finished` once the turn has an outcome, or is over
/// without one (no longer the current turn, or its agent went idle or away).
fn over(s: &SessionDir, t: &TurnDir) -> Option<&'static str> {
    match t.state() {
        TurnState::Cancelled(_) => Some("cancelled"),
        TurnState::Pending
            if s.current() == Some(t.id)
                && !t.has(TurnMark::Idle)
                && crate::agent::recorded_agent(s).is_some() =>
        {
            None
        }
        _ => Some("finished"),
    }
}

/// Presses Escape once and waits for the pane to confirm: the status line
/// no longer busy and either the "Interrupted" line or, before the first
/// token, the turn's prompt put back into the input box (then cleared).
fn interrupt(shim: &Shim, s: &SessionDir, t: &TurnDir) -> Result<()> {
    let key = s.name.key();
    let head = format!("[PALIADIN:{}]", t.id);
    shim.tmux.key(&key, Key::Escape).map_err(tmux_error)?;
    let deadline = Instant::now() + CONFIRM_WAIT;
    let how = loop {
        std::thread::sleep(LOOK_EVERY);
        // A Stop that came first: the turn ended by itself.
        if let Some(word) = over(s, t) {
            return print_or_fail(format!("{word}\n").as_bytes());
        }
        let screen = pane(shim, s)?;
        if !busy(&screen) {
            if input_holds(&screen, &head) {
                clear_input(shim, s, &head)?;
                break "interrupted before its first token";
            }
            if screen.lines().any(|l| l.contains(INTERRUPTED)) {
                break "interrupted";
            }
        }
        if Instant::now() >= deadline {
            return Err(ShimError::new(
                ExitCode::Timeout,
                format!(
                    "Escape was pressed but the agent did not confirm the interruption of turn {} within {} s",
                    t.id,
                    CONFIRM_WAIT.as_secs()
                ),
            )
            .with_pane(shim.tail(s)));
        }
    };
    // A Stop between the last look and now: the reply stands.
    if t.state() != TurnState::Pending {
        return print_or_fail(b"finished\n");
    }
    mark_cancelled(s, t, how)
}

/// Marks the turn cancelled, records its `failed` event, and wakes its
/// waiters, who end with 130.
fn mark_cancelled(s: &SessionDir, t: &TurnDir, how: &str) -> Result<()> {
    record_cancelled(s, t, how)
        .map_err(|e| io_error(&format!("cannot write {}", t.path().display()), e))?;
    print_or_fail(b"cancelled\n")
}

/// The turn is cancelled (`how`): its mark, its `failed` event with code
/// `cancelled` (a stream's last line), and its waiters woken.
pub(crate) fn record_cancelled(s: &SessionDir, t: &TurnDir, how: &str) -> std::io::Result<()> {
    t.mark(TurnMark::Cancelled, how)?;
    t.record(&paliadin_core::event::Event {
        detail: Some(how.to_owned()),
        code: Some(ExitCode::Cancelled.name().to_owned()),
        ..paliadin_core::event::Event::new(
            paliadin_core::event::Kind::Failed,
            paliadin_core::timefmt::rfc3339_ms(paliadin_core::timefmt::now_ms()),
        )
    });
    s.touch();
    // The turn's waiters (its run-turn, a repeat) wake and end with 130.
    s.ring();
    Ok(())
}

/// Clears the input box of the turn's prompt: one C-u per line (it kills
/// to the start of the line the cursor is on, the last), each once the pane
/// shows the last one's effect, until the head is gone.
fn clear_input(shim: &Shim, s: &SessionDir, head: &str) -> Result<()> {
    let key = s.name.key();
    let deadline = Instant::now() + CONFIRM_WAIT;
    let mut before = pane(shim, s)?;
    while input_holds(&before, head) {
        shim.tmux.key(&key, Key::ClearLine).map_err(tmux_error)?;
        loop {
            std::thread::sleep(LOOK_EVERY);
            let now = pane(shim, s)?;
            if now != before {
                before = now;
                break;
            }
            if Instant::now() >= deadline {
                return Err(ShimError::new(
                    ExitCode::Timeout,
                    "the interrupted turn's prompt stayed in the agent's input box",
                )
                .with_pane(shim.tail(s)));
            }
        }
    }
    Ok(())
}

fn pane(shim: &Shim, s: &SessionDir) -> Result<String> {
    shim.tmux.screen(&s.name.key()).map_err(tmux_error)
}

/// Whether the status line (the screen's last non-blank line) says busy.
fn busy(screen: &str) -> bool {
    screen
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .is_some_and(|l| l.contains(BUSY))
}

/// Whether the input box (the last `❯` line: the conversation's prompts are
/// above it) holds the turn's head.
fn input_holds(screen: &str, head: &str) -> bool {
    screen
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('❯'))
        .is_some_and(|l| l.contains(head))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Lines as Claude Code 2.1.328 draws them (issue 14's measurements).
    const BUSY_SCREEN: &str = "❯ [PALIADIN:x]\n  ⎿  [Pasted text #2 +3 lines]\n\n✽ Crafting… (0s · ↓ 20 tokens)\n────\n❯ \n────\n  ⏵⏵ don't ask on (shift+tab to cycle) · esc to interrupt · ← for agents\n\n";
    const INTERRUPTED_SCREEN: &str = "❯ [PALIADIN:x]\n● echo: mock\n  ⎿  Interrupted · What should Claude do instead?\n────\n❯ \n────\n  ⏵⏵ don't ask on (shift+tab to cycle)\n";
    const WITHDRAWN_SCREEN: &str =
        "────\n❯ [PALIADIN:x][Pasted text #2 +3 lines]\n────\n  ⏸ manual mode on\n";

    #[test]
    fn reads_busy_interrupted_and_withdrawn_panes() {
        assert!(busy(BUSY_SCREEN));
        assert!(!busy(INTERRUPTED_SCREEN));
        assert!(!busy(WITHDRAWN_SCREEN));
        // The conversation's own copy of the prompt is not the input box.
        assert!(!input_holds(BUSY_SCREEN, "[PALIADIN:x]"));
        assert!(!input_holds(INTERRUPTED_SCREEN, "[PALIADIN:x]"));
        assert!(input_holds(WITHDRAWN_SCREEN, "[PALIADIN:x]"));
        assert!(!input_holds(WITHDRAWN_SCREEN, "[PALIADIN:y]"));
    }
}
