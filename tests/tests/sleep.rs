//! Sleep and wake (issue 14 item 3): a session idle past the shim's
//! `idle_sleep_secs` has its agent stopped by the next request's sweep, and
//! its next turn starts the agent on the same conversation (`--resume` of
//! the id the shim chose with `--session-id`). The real Claude Code against
//! the mock for the conversation; the test agent for the sweep's rules.

use paliadin_tests::claude::{claude_text, ClaudeEnv, Turn};
use paliadin_tests::{b64, turn_id, ShimSettings, TestEnv};
use serde_json::Value;
use std::time::{Duration, Instant};

/// The status objects `sessions` lists, by name.
fn sessions(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

fn find<'a>(all: &'a [Value], name: &str) -> &'a Value {
    all.iter()
        .find(|v| v["session"] == name)
        .unwrap_or_else(|| panic!("no session {name} in {all:?}"))
}

/// Asks `list` (a request, so a sweep) until session `name` shows `state`;
/// the idle time is the configured second, so a few tries.
fn await_state(mut list: impl FnMut() -> String, name: &str, state: &str) -> Value {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let all = sessions(&list());
        let v = find(&all, name).clone();
        if v["state"] == state {
            return v;
        }
        assert!(Instant::now() < until, "{name} never became {state}: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The `--session-id` / `--resume` and its id in the agent's argv.
fn conversation_flag(status: &Value) -> (String, String) {
    let argv: Vec<&str> = status["agent"]
        .as_array()
        .expect("agent argv")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let i = argv
        .iter()
        .position(|a| *a == "--session-id" || *a == "--resume")
        .unwrap_or_else(|| panic!("no conversation flag in {argv:?}"));
    (argv[i].to_owned(), argv[i + 1].to_owned())
}

/// Whether process `pid` ends within a few seconds (the sweep waits for it
/// a moment only, then kills its pane).
fn exits(pid: u64) -> bool {
    let Some(watch) = paliadin_core::process::ExitWatch::new(pid as u32).expect("watch") else {
        return true;
    };
    let mut fds = [rustix::event::PollFd::new(
        &watch,
        rustix::event::PollFlags::IN,
    )];
    let limit = paliadin_core::child::timespec(Duration::from_secs(10));
    let _ = rustix::event::poll(&mut fds, Some(&limit));
    watch.exited()
}

/// One turn through the installed shim's `run-turn-events`: its event lines.
fn events_turn(w: &ClaudeEnv, session: &str, message: &str) -> (Vec<Value>, String) {
    let id = turn_id();
    let r = w.shim(&["run-turn-events", session, &id, &b64(message)], None);
    r.code(0);
    (sessions(&r.out()), id)
}

#[test]
fn an_idle_claude_sleeps_and_its_next_turn_wakes_it_on_the_same_conversation() {
    let mut w = ClaudeEnv::new();
    std::fs::write(
        &w.env.config,
        format!("{}idle_sleep_secs = 1\n", w.shim_config()),
    )
    .expect("config");
    let first = w.turn("nap", "Remember the word pelican");
    first.code(0);
    assert_eq!(
        first.response(),
        ClaudeEnv::echo("Remember the word pelican")
    );

    // Running: its memory shown, the conversation id the shim chose.
    let st: Value = serde_json::from_str(&w.shim(&["status", "nap"], None).out()).unwrap();
    assert_eq!(st["state"], "running", "{st}");
    let private = st["private_bytes"].as_u64().expect("private bytes");
    let rss = st["rss_bytes"].as_u64().expect("rss bytes");
    assert!(private > 0 && rss >= private, "{st}");
    let (flag, conversation) = conversation_flag(&st);
    assert_eq!(flag, "--session-id", "{st}");
    let pid = st["pid"].as_u64().expect("pid");

    // Idle past a second: a request's sweep puts it to sleep.
    let asleep = await_state(|| w.shim(&["sessions"], None).ok(), "nap", "asleep");
    assert_eq!(asleep["alive"], false, "{asleep}");
    assert_eq!(asleep["rss_bytes"], Value::Null, "{asleep}");
    assert!(
        asleep["freed"]["private_bytes"].as_u64().unwrap_or(0) > 0,
        "what sleeping freed: {asleep}"
    );
    assert!(exits(pid), "claude {pid} exited");
    assert!(w.env.tmux_sessions().is_empty(), "its pane went too");
    // paliadin-cli shows it too.
    let table = w.cli(false, &["sessions"], None);
    let row = table
        .ok()
        .lines()
        .find(|l| l.starts_with("nap "))
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(
        row.contains("asleep") && row.contains("MB freed"),
        "{}",
        table
    );

    // The next turn resumes the conversation: the model sees the earlier turn.
    let (events, id) = events_turn(&w, "nap", "Which word did I ask you to remember?");
    assert_eq!(events[0]["kind"], "woke", "{events:?}");
    assert_eq!(events[0]["detail"], "resumed the conversation");
    let calls = w.mock.requests_for(&id);
    assert_eq!(calls.len(), 1, "{}", w.mock.summary());
    let history = calls[0].body["messages"].to_string();
    assert!(
        history.contains("Remember the word pelican") && history.contains("echo: Remember"),
        "the woken agent's first request carries the earlier turn: {history}"
    );
    assert_eq!(
        calls[0].message(),
        claude_text("Which word did I ask you to remember?")
    );
    let st: Value = serde_json::from_str(&w.shim(&["status", "nap"], None).out()).unwrap();
    assert_eq!(st["state"], "running", "{st}");
    assert_eq!(
        conversation_flag(&st),
        ("--resume".to_owned(), conversation.clone()),
        "{st}"
    );
    // Claude itself took it as a resume.
    let ready =
        std::fs::read_to_string(w.env.home.join(".local/state/paliadin/sessions/nap/ready"))
            .expect("ready marker");
    assert!(ready.contains("\"source\":\"resume\""), "{ready}");

    // reset still starts afresh: a new id, no earlier messages.
    w.cli(false, &["reset", "--session", "nap"], None).code(0);
    let after: Turn = w.turn("nap", "after the reset");
    after.code(0);
    let st: Value = serde_json::from_str(&w.shim(&["status", "nap"], None).out()).unwrap();
    let (flag, fresh) = conversation_flag(&st);
    assert_eq!(flag, "--session-id");
    assert_ne!(fresh, conversation);
    let said = w.requests_for(&after)[0].body["messages"].to_string();
    assert!(!said.contains("pelican"), "{said}");
}

#[test]
fn a_wake_whose_conversation_is_gone_starts_a_new_one_and_says_so() {
    let w = ClaudeEnv::new();
    std::fs::write(
        &w.env.config,
        format!("{}idle_sleep_secs = 1\n", w.shim_config()),
    )
    .expect("config");
    let (r, _) = w.shim_turn("lost", "a turn to forget");
    r.code(0);
    let st: Value = serde_json::from_str(&w.shim(&["status", "lost"], None).out()).unwrap();
    let (_, conversation) = conversation_flag(&st);
    await_state(|| w.shim(&["sessions"], None).ok(), "lost", "asleep");
    // The transcript removed behind the shim's back: `--resume` of its id
    // makes claude exit 1 ("No conversation found").
    let projects = w.env.home.join(".claude/projects");
    let mut removed = 0;
    for dir in std::fs::read_dir(&projects).expect("projects") {
        let file = dir.unwrap().path().join(format!("{conversation}.jsonl"));
        if std::fs::remove_file(&file).is_ok() {
            removed += 1;
        }
    }
    assert_eq!(removed, 1, "the transcript under {}", projects.display());

    let (events, id) = events_turn(&w, "lost", "hello again");
    assert_eq!(events[0]["kind"], "woke", "{events:?}");
    assert_eq!(
        events[0]["detail"],
        "the earlier conversation could not be resumed: a new one started"
    );
    let reply = events.last().expect("the reply line");
    assert_eq!(reply["kind"], "reply");
    assert_eq!(
        paliadin_core::reply::split_trailer(reply["text"].as_str().unwrap()).0,
        ClaudeEnv::echo("hello again")
    );
    assert_eq!(w.mock.requests_for(&id).len(), 1, "{}", w.mock.summary());
    let st: Value = serde_json::from_str(&w.shim(&["status", "lost"], None).out()).unwrap();
    let (flag, fresh) = conversation_flag(&st);
    assert_eq!(flag, "--session-id", "{st}");
    assert_ne!(fresh, conversation);
}

#[test]
fn the_sweep_never_stops_an_agent_whose_turn_is_pending_and_sleeps_only_when_asked() {
    let settings = ShimSettings {
        wait_secs: 3,
        extra: "idle_sleep_secs = 1".into(),
        ..Default::default()
    };
    let env = TestEnv::with(settings.clone());
    // A turn the agent never answers: pending past its wait (124).
    let r = env.shim(&[
        "run-turn",
        "waiting",
        &turn_id(),
        &b64("paliadin-test: silent"),
    ]);
    r.code(124);
    // An idle session beside it, answered.
    let r = env.shim(&["run-turn", "idle", &turn_id(), &b64("hello")]);
    r.code(0);
    await_state(|| env.shim(&["sessions"]).ok(), "idle", "asleep");
    let all = sessions(&env.shim(&["sessions"]).ok());
    assert_eq!(find(&all, "waiting")["state"], "running", "{all:?}");
    assert_eq!(env.tmux_sessions(), vec!["waiting"]);
    // Woken by its next turn; and the request's own session is never
    // swept: a health of a session idle past its time finds it alive.
    let r = env.shim(&["run-turn", "idle", &turn_id(), &b64("awake again")]);
    r.code(0);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(env.shim(&["health", "idle"]).ok(), "ok\n");
    let all = sessions(&env.shim(&["status", "idle"]).ok());
    assert_eq!(all[0]["state"], "running", "{all:?}");

    // With idle_sleep_secs = 0 nothing sleeps.
    env.write_config(&ShimSettings {
        extra: "idle_sleep_secs = 0".into(),
        ..settings
    });
    std::thread::sleep(Duration::from_millis(1100));
    let all = sessions(&env.shim(&["sessions"]).ok());
    assert_eq!(find(&all, "idle")["state"], "running", "{all:?}");
}

#[test]
fn a_reset_of_a_session_that_does_not_exist_says_so_and_exits_0() {
    let mut env = TestEnv::new();
    assert_eq!(env.shim(&["reset", "ghost"]).ok(), "none\n");
    assert_eq!(
        env.cli(&["reset", "--session", "ghost"]).ok(),
        "reset ghost: there was no such session\n"
    );
    let r = env.shim(&["run-turn", "ghost", &turn_id(), &b64("now it exists")]);
    r.code(0);
    assert_eq!(env.shim(&["reset", "ghost"]).ok(), "ok\n");
    assert_eq!(
        env.cli(&["reset", "--session", "ghost"]).ok(),
        "reset ghost: there was no such session\n"
    );
}
