//! Cancelling a turn (issue 14 item 1) against the real Claude Code and the
//! mock API: the shim's `cancel` presses Escape once while the agent shows
//! the turn busy, confirms the interruption on the pane, and ends the turn
//! with 130 `cancelled`; the session takes its next turn at once, and
//! nothing of the cancelled turn reaches its reply. A cancel naming another
//! turn or session changes nothing.

use paliadin_tests::claude::{ClaudeEnv, Turn};
use paliadin_tests::{b64, run, turn_id, Run};
use serde_json::Value;
use std::time::Duration;

const BUSY: &str = "esc to interrupt";

/// The session's current turn, as the shim's `status` says.
fn current_turn(w: &ClaudeEnv, session: &str) -> String {
    let st: Value =
        serde_json::from_str(&w.shim(&["status", session], None).ok()).expect("status is JSON");
    st["current_turn"].as_str().unwrap_or_default().to_owned()
}

/// The last line of the pane that starts with `❯`: the input box.
fn input_box(pane: &str) -> String {
    pane.lines()
        .rfind(|l| l.trim_start().starts_with('❯'))
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn cancel_stops_a_streaming_turn_and_the_next_is_answered_at_once() {
    let mut w = ClaudeEnv::new();
    w.turn("c1", "hello").code(0);
    // Text streams, then the message's end is held back a minute.
    let mut c = w.cli_command(
        false,
        &[
            "turn",
            "--json",
            "--session",
            "c1",
            "mock: slow-close 60000",
        ],
    );
    let waiting = std::thread::spawn(move || run(&mut c, None, Duration::from_secs(150)));
    w.wait_pane("c1", Duration::from_secs(30), "the streamed text", |p| {
        p.contains("echo: mock: slow-close") && p.contains(BUSY)
    });
    let id = current_turn(&w, "c1");
    assert_eq!(id.len(), 36, "{id:?}");

    // Another session's name, or another turn's id: nothing stopped.
    w.cli(false, &["cancel", "--session", "other", &id], None)
        .code(2);
    w.shim(&["cancel", "c1", &turn_id()], None).code(2);
    w.shim(&["cancel", "other", &id], None).code(2);
    assert!(
        w.pane("c1")
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default()
            .contains(BUSY),
        "the turn still runs:\n{}",
        w.panes()
    );

    // From another shell, by a prefix of the id.
    let r = w.cli(false, &["cancel", &id[..8]], None);
    r.code(0);
    assert_eq!(r.out(), format!("cancelled {id}\n"), "{r}");
    let t = Turn::of(waiting.join().expect("the waiting turn"));
    t.code(130);
    assert_eq!(t.json["error_code"], "cancelled", "{}", t.run);
    assert_eq!(t.json["turn"]["status"], "error", "{}", t.run);
    let p = w.pane("c1");
    assert!(
        p.contains("Interrupted · What should Claude do instead?"),
        "{p}"
    );

    // Repeating it changes nothing and says the same.
    let again = w.cli(false, &["cancel", &id], None);
    again.code(0);
    assert_eq!(again.out(), format!("cancelled {id}\n"), "{again}");
    let polled = Turn::of(w.cli(false, &["poll", "--json", &id], None));
    polled.code(130);
    assert_eq!(polled.json["error_code"], "cancelled", "{}", polled.run);
    assert!(
        !w.pane("c1").contains("Rewind"),
        "no second Escape:\n{}",
        w.panes()
    );

    // The next turn is answered at once, with nothing of the cancelled one.
    let next = w.turn("c1", "after the cancel");
    next.code(0);
    assert_eq!(
        next.response().trim(),
        ClaudeEnv::echo("after the cancel"),
        "{}",
        next.run
    );
}

/// `run-turn-events <session> <id> <message>` on a thread of its own.
fn turn_in_background(
    w: &ClaudeEnv,
    session: &str,
    id: &str,
    message: &str,
) -> std::thread::JoinHandle<Run> {
    let mut c = w.command(&w.shim_bin());
    c.arg("--config")
        .arg(&w.env.config)
        .args(["run-turn-events", session, id, &b64(message)]);
    std::thread::spawn(move || run(&mut c, None, Duration::from_secs(150)))
}

/// The shim's `cancel` of `id` (its time printed, labelled `what`): it
/// answers `cancelled`, and the turn `waiting` for it ends 130 `cancelled`.
fn cancel_awaited(
    w: &ClaudeEnv,
    session: &str,
    id: &str,
    waiting: std::thread::JoinHandle<Run>,
    what: &str,
) -> Run {
    let asked = std::time::Instant::now();
    let r = w.shim(&["cancel", session, id], None);
    eprintln!(
        "cancel {what}, request to answer: {:.2} s",
        asked.elapsed().as_secs_f64()
    );
    r.code(0);
    assert_eq!(r.out(), "cancelled\n", "{r}");
    let done = waiting.join().expect("the waiting turn");
    done.code(130);
    assert!(
        done.stderr.starts_with("paliadin-shim: cancelled: "),
        "{done}"
    );
    done
}

#[test]
fn cancel_stops_a_running_tool_and_a_turn_before_its_first_token() {
    let mut w = ClaudeEnv::new();
    w.add_agent_args(&["--allowedTools", "Bash"]);
    w.turn("c2", "hello").code(0);

    // A tool that runs a minute.
    let id = turn_id();
    let tool = r#"mock: tool Bash {"command":"perl -e 'select(undef, undef, undef, 61)'; echo done","description":"wait"}"#;
    let waiting = turn_in_background(&w, "c2", &id, tool);
    w.wait_pane("c2", Duration::from_secs(30), "the tool running", |p| {
        p.contains("perl -e") && p.contains(BUSY)
    });
    let done = cancel_awaited(&w, "c2", &id, waiting, "of a running tool");
    let last: Value =
        serde_json::from_str(done.out().lines().last().unwrap_or_default()).unwrap_or(Value::Null);
    assert_eq!(last["kind"], "failed", "{done}");
    assert_eq!(last["code"], "cancelled", "{done}");
    w.shim(&["poll", "c2", &id], None)
        .shim_error(130, "cancelled");

    // Before the first token the prompt goes back into the input box: the
    // cancel clears it, or the next paste would be appended to it.
    let id2 = turn_id();
    let waiting = turn_in_background(&w, "c2", &id2, "mock: slow 60000");
    w.wait_pane("c2", Duration::from_secs(30), "the turn busy", |p| {
        p.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .is_some_and(|l| l.contains(BUSY))
    });
    cancel_awaited(&w, "c2", &id2, waiting, "before the first token");
    let p = w.pane("c2");
    assert!(!input_box(&p).contains(&id2), "{p}");

    // The next turn is answered, and only it.
    let (next, _) = w.shim_turn("c2", "third question");
    next.code(0);
    let reply = next.out();
    assert!(reply.contains(&ClaudeEnv::echo("third question")), "{next}");
    assert!(
        !reply.contains("perl") && !reply.contains("slow 60000"),
        "{next}"
    );
}
