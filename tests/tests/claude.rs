//! The real Claude Code (the pinned npm release, which `tests/run` installs)
//! in the loop: a laptop set up by `install/laptop.sh`, claude in the shim's
//! tmux pane, a mock Messages API on loopback in place of Anthropic's.
//! Each test checks both ends: what the caller got (exit status, reply) and
//! what the model was sent (the mock's request log). The behaviour asked
//! for is issue 7's: one model call per turn, messages arriving whole, API
//! errors reported as 76 within the wait.

use paliadin_tests::claude::{claude_text, ClaudeEnv, ClaudeOptions, Turn};
use paliadin_tests::mock_api::echo_of;
use paliadin_tests::run;
use std::time::Duration;

/// Asserts that `turn` got the default mock answer for `message` and that
/// the model was called exactly once for it, with the whole message.
#[track_caller]
fn assert_echoed(w: &ClaudeEnv, turn: &Turn, message: &str) {
    turn.code(0);
    assert_eq!(turn.response(), ClaudeEnv::echo(message), "{}", turn.run);
    let calls = w.requests_for(turn);
    assert_eq!(
        calls.len(),
        1,
        "one model call per turn; got {}:\n{}",
        calls.len(),
        w.mock.summary()
    );
    assert_eq!(
        calls[0].message(),
        claude_text(message),
        "the model got the message whole"
    );
}

#[test]
fn cold_start_then_a_turn_gets_the_models_reply() {
    let mut w = ClaudeEnv::new();
    let t = w.turn("cold", "Hello laptop");
    assert_echoed(&w, &t, "Hello laptop");
    assert_eq!(t.response(), "echo: Hello laptop (12 chars)");
    assert_eq!(t.json["status"], "ok", "{}", t.run);
    // The trailer was the reply's, not the body's.
    assert!(!t.response().contains("paliadin-meta"), "{}", t.run);
}

#[test]
fn turns_in_a_row_each_get_their_own_reply() {
    let mut w = ClaudeEnv::new();
    let messages = ["first question", "second question", "third one, short"];
    for m in messages {
        let t = w.turn("row", m);
        assert_echoed(&w, &t, m);
    }
    // One conversation: the last call carried the earlier turns too.
    let last = w.mock.model_calls().pop().expect("a model call");
    let users = last.body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["role"] == "user")
        .count();
    assert!(users >= 3, "{}", w.mock.summary());
}

#[test]
fn a_multi_line_non_ascii_message_arrives_whole_and_sanitised() {
    let mut w = ClaudeEnv::new();
    // A first turn, so that the long one is a session's second prompt: the
    // one Claude Code wraps as pasted content.
    let t = w.turn("multi", "warm up");
    assert_echoed(&w, &t, "warm up");
    let message = "Grüße aus Köln 🎉\n\tzweite Zeile, mit Tab\n日本語の三行目\x1b[31m rot?\r\nvierte Zeile \u{7}\nfünfte: ñ ø å — «quoted» \"double\" 'single' `back`\nsechste\n";
    let t = w.turn("multi", message);
    assert_echoed(&w, &t, message);
    let got = w.requests_for(&t)[0].message().to_owned();
    for gone in ['\x1b', '\r', '\u{7}'] {
        assert!(!got.contains(gone), "{gone:?} reached the model: {got:?}");
    }
}

#[test]
fn a_60_kib_message_arrives_whole() {
    let mut w = ClaudeEnv::new();
    let line = "Sixty kilobytes of text, ünïcödé included — 0123456789\n";
    let first = line.repeat(60 * 1024 / line.len());
    let t = w.turn("big", &first);
    assert_echoed(&w, &t, &first);
    let second = format!("second {}", first.replace("Sixty", "Again"));
    let t = w.turn("big", &second);
    assert_echoed(&w, &t, &second);
}

#[test]
fn api_overloaded_529_ends_76_within_the_wait() {
    let mut w = ClaudeEnv::new();
    let t = w.turn("overloaded", "mock: status 529\nare you there?");
    t.code(76);
    assert_eq!(t.json["error_code"], "agent_error", "{}", t.run);
    let calls = w.requests_for(&t);
    assert!(
        !calls.is_empty() && calls.iter().all(|r| r.status == Some(529)),
        "{}",
        w.mock.summary()
    );
    // The session is usable afterwards.
    let t = w.turn("overloaded", "better now?");
    assert_echoed(&w, &t, "better now?");
}

#[test]
fn api_error_500_that_claude_retries_ends_76_within_the_wait() {
    // Claude retries a 500 ten times over about three minutes; the turn
    // must end with the agent's error within its wait (the default 30 s,
    // which also covers claude's start), not 124.
    let mut w = ClaudeEnv::new();
    let t = w.turn("server-error", "mock: status 500\nhello?");
    t.code(76);
    assert_eq!(t.json["error_code"], "agent_error", "{}", t.run);
}

#[test]
fn reset_then_a_turn_starts_a_new_conversation() {
    let mut w = ClaudeEnv::new();
    let t = w.turn("reset", "before the reset");
    assert_echoed(&w, &t, "before the reset");
    let r = w.cli(false, &["reset", "--session", "reset"], None);
    r.code(0);
    let t = w.turn("reset", "after the reset");
    assert_echoed(&w, &t, "after the reset");
    // A fresh conversation: nothing the model said before the reset.
    let call = &w.requests_for(&t)[0];
    let said = call.body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["role"] == "assistant")
        .count();
    assert_eq!(said, 0, "{}", w.mock.summary());
}

#[test]
fn a_turn_over_ssh_gets_the_models_reply() {
    let mut w = ClaudeEnv::with_ssh();
    let t = w.turn_ssh("remote", "Hello over ssh");
    assert_echoed(&w, &t, "Hello over ssh");
    let t = w.turn_ssh("remote", "and again");
    assert_echoed(&w, &t, "and again");
}

#[test]
fn a_model_that_ignores_the_skill_still_gets_its_text_delivered() {
    let mut w = ClaudeEnv::new();
    let message = "mock: ignore-skill\nno trailer please";
    let t = w.turn("plain", message);
    t.code(0);
    assert_eq!(t.response(), echo_of(message), "{}", t.run);
}

#[test]
fn a_slow_answer_times_out_then_poll_collects_it() {
    let mut w = ClaudeEnv::new();
    // Started first so that the slow turn's wait is the model's alone.
    let t = w.turn("slow", "warm up");
    assert_echoed(&w, &t, "warm up");
    w.set_wait_secs(5);
    let message = "mock: slow 8000\ntake your time";
    let t = w.turn("slow", message);
    t.code(124);
    // The answer comes once the mock has sent it; poll then has it.
    let id = t.id();
    let (_, answered) = w.mock.wait_until(Duration::from_secs(30), |log| {
        log.iter()
            .any(|r| r.prompt.contains(&id) && r.answered_ms.is_some())
    });
    assert!(answered, "{}", w.mock.summary());
    let mut last = None;
    for _ in 0..50 {
        let r = w.cli(false, &["poll", &id], None);
        if r.code == 0 {
            assert_eq!(r.out().trim_end(), ClaudeEnv::echo(message), "{r}");
            return;
        }
        r.code(124);
        last = Some(r);
        // poll has no way to wait for a reply; the mock's answer is in, so
        // only claude's own post-processing is left.
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "poll never collected the late reply: {}",
        last.expect("a poll")
    );
}

#[test]
fn an_allowed_tool_runs_and_a_forbidden_one_is_denied_without_a_prompt() {
    let mut w = ClaudeEnv::new();
    let notes = w.env.workdir.join("notes.txt");
    std::fs::write(&notes, "the notes\n").expect("notes");
    let notes = notes.canonicalize().expect("real path");
    // Reading the workdir is allowed by the installer's rules.
    let read = format!(
        "mock: tool Read {}\nread the notes",
        serde_json::json!({"file_path": notes})
    );
    let t = w.turn("tools", &read);
    t.code(0);
    assert_eq!(t.response(), "tool ok", "{}", t.run);
    assert_eq!(
        t.json["used_tools"],
        serde_json::json!(["Read"]),
        "{}",
        t.run
    );
    // Running a command is not: denied at once, the turn goes on.
    let secret = w.env.home.join("secret");
    let bash = format!(
        "mock: tool Bash {}\nwrite a file",
        serde_json::json!({"command": format!("touch {}", secret.display())})
    );
    let t = w.turn("tools", &bash);
    t.code(0);
    assert!(
        t.response().starts_with("tool failed: "),
        "{}\n{}",
        t.run,
        w.panes()
    );
    assert!(!secret.exists(), "the denied command ran");
    assert_eq!(w.requests_for(&t).len(), 2, "{}", w.mock.summary());
}

#[test]
fn turns_sent_back_to_back_each_get_their_own_reply() {
    let mut w = ClaudeEnv::new();
    let t = w.turn("b2b", "warm up");
    assert_echoed(&w, &t, "warm up");
    // The first answer takes a while to close; the second turn is sent
    // while it streams and must neither be typed into it nor take its reply.
    let first = "mock: slow-close 1500\nfirst of two";
    let second = "second of two";
    let mut c = w.cli_command(false, &["turn", "--json", "--session", "b2b", "-"]);
    let handle = std::thread::spawn(move || {
        Turn::of(run(&mut c, Some(first.as_bytes()), Duration::from_secs(60)))
    });
    // The second is sent once the first is at the model.
    let (_, arrived) = w.mock.wait_until(Duration::from_secs(30), |log| {
        log.iter().any(|r| r.prompt.contains("first of two"))
    });
    assert!(arrived, "{}", w.mock.summary());
    let t2 = w.turn("b2b", second);
    let t1 = handle.join().expect("first turn");
    assert_echoed(&w, &t1, first);
    assert_echoed(&w, &t2, second);
}

#[test]
fn two_sessions_in_parallel_each_get_their_own_reply() {
    let mut w = ClaudeEnv::new();
    let handles: Vec<_> = ["alpha", "beta"]
        .iter()
        .map(|s| {
            let mut c = w.cli_command(false, &["turn", "--json", "--session", s, "-"]);
            let msg = format!("hello from {s}");
            std::thread::spawn(move || {
                let t = Turn::of(run(&mut c, Some(msg.as_bytes()), Duration::from_secs(60)));
                (t, msg)
            })
        })
        .collect();
    for h in handles {
        let (t, msg) = h.join().expect("turn thread");
        assert_echoed(&w, &t, &msg);
    }
}

/// Every regular file under `dir`.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else if p.is_file() {
            out.push(p);
        }
    }
    out
}

#[test]
fn one_session_cannot_read_or_write_anothers_state() {
    let mut w = ClaudeEnv::new();
    let victim = w.turn("victim", "my private question");
    assert_echoed(&w, &victim, "my private question");
    let state = w.env.state.canonicalize().expect("state dir");
    let theirs: Vec<_> = files_under(&state.join("sessions"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(&victim.id()))
        .collect();
    assert!(
        !theirs.is_empty(),
        "the victim's turn left no file to aim at under {}",
        state.display()
    );
    let turn_dir = theirs[0].parent().expect("turn dir").to_path_buf();
    // Reading the victim's turn.
    let read = format!(
        "mock: tool Read {}\nread it",
        serde_json::json!({"file_path": theirs[0]})
    );
    let t = w.turn("attacker", &read);
    t.code(0);
    assert!(
        t.response().starts_with("tool failed: "),
        "another session's state was readable: {}",
        t.run
    );
    // Planting a reply in the victim's turn.
    let planted = turn_dir.join("reply.md.tmp");
    let write = format!(
        "mock: tool Write {}\nplant it",
        serde_json::json!({"file_path": planted, "content": "planted"})
    );
    let t = w.turn("attacker", &write);
    t.code(0);
    assert!(
        t.response().starts_with("tool failed: "),
        "another session's state was writable: {}",
        t.run
    );
    assert!(!planted.exists(), "the planted file is there");
}

#[test]
fn a_1_mib_message_arrives_whole() {
    let mut w = ClaudeEnv::with(ClaudeOptions {
        wait_secs: 30,
        ..ClaudeOptions::default()
    });
    let line = "One mebibyte of text, ünïcödé included — 0123456789\n";
    let message = line.repeat(1024 * 1024 / line.len());
    let t = w.turn("huge", &message);
    assert_echoed(&w, &t, &message);
}

#[test]
fn a_permission_prompt_in_manual_mode_ends_75() {
    let claude = paliadin_tests::claude::claude_bin();
    let mut w = ClaudeEnv::with(ClaudeOptions {
        install_args: vec![
            "--agent".into(),
            format!("{} --permission-mode manual", claude.display()),
        ],
        ..ClaudeOptions::default()
    });
    let secret = w.env.home.join("secret");
    let message = format!(
        "mock: tool Bash {}\nwrite a file",
        serde_json::json!({"command": format!("touch {}", secret.display())})
    );
    let t = w.turn("manual", &message);
    t.code(75);
    assert_eq!(t.json["error_code"], "blocked", "{}", t.run);
    assert!(!secret.exists(), "the command ran without a yes");
}

#[test]
fn the_first_turn_is_submitted_without_a_second_enter() {
    // Claude Code keeps what arrives before its input loop runs but loses
    // the Enter; with no retry within the wait, only a first paste that
    // waits for the loop is answered.
    let mut w = ClaudeEnv::new();
    let config = w.env.config.clone();
    let text = std::fs::read_to_string(&config).expect("shim config");
    std::fs::write(&config, format!("{text}submit_retry_ms = 600000\n")).expect("config");
    let t = w.turn("first", "Hello, first turn");
    assert_echoed(&w, &t, "Hello, first turn");
}

#[test]
fn a_start_up_dialog_is_reported_at_once_with_its_text() {
    // The workdir's trust entry gone: claude stops at "Accessing workspace"
    // before SessionStart, and no hook says so.
    let mut w = ClaudeEnv::new();
    let dot = w.env.home.join(".claude.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&dot).expect(".claude.json")).expect("json");
    v["projects"] = serde_json::json!({});
    std::fs::write(&dot, v.to_string()).expect("write .claude.json");
    // Within the turn's 10 s wait, where waiting for SessionStart alone
    // would end in 69 ("still starting"), long before the ready timeout.
    let t = w.turn("untrusted", "are you there?");
    t.code(75);
    assert_eq!(t.json["error_code"], "blocked", "{}", t.run);
    let detail = t.json["error"].as_str().unwrap_or_default();
    assert!(
        detail.contains("folder trust"),
        "names the dialog\n{}",
        t.run
    );
    assert!(w.mock.model_calls().is_empty(), "nothing reached the model");
}

/// The JSON lines of a `run-turn-events` stream.
fn events_of(run: &paliadin_tests::Run) -> Vec<paliadin_tests::Value> {
    run.out()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}\n{run}")))
        .collect()
}

fn kinds(events: &[paliadin_tests::Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            let mut k = e["kind"].as_str().unwrap_or("?").to_owned();
            if let Some(t) = e["tool"].as_str() {
                k.push_str(&format!(" {t}"));
            }
            if let Some(t) = e["target"].as_str() {
                k.push_str(&format!(" {t}"));
            }
            k
        })
        .collect()
}

#[test]
fn a_turn_streams_its_steps_in_order_then_the_reply() {
    let w = ClaudeEnv::new();
    let (message, secret) = three_tools(&w);
    let id = paliadin_tests::turn_id();
    let r = w.shim(
        &[
            "run-turn-events",
            "steps",
            &id,
            &paliadin_tests::b64(&message),
        ],
        None,
    );
    r.code(0);
    let events = events_of(&r);
    assert_eq!(
        kinds(&events),
        [
            "submitted",
            "tool_started Read invoices.csv",
            "tool_finished Read invoices.csv",
            // Bash is not offered (the installer's `--tools Read`): the
            // call is refused before any hook, so no event shows it.
            "tool_started Read missing.txt",
            "tool_failed Read missing.txt",
            "replied",
            // What the turn's requests used, from the transcript.
            "usage",
            "reply",
        ],
        "{r}"
    );
    // The reply comes last, whole; no event carries what a tool read.
    let reply = events.last().expect("reply")["text"]
        .as_str()
        .expect("text");
    assert!(reply.contains("tool failed"), "{reply}");
    assert!(
        !r.out().contains(secret),
        "file content leaked into the stream\n{r}"
    );
    for e in &events {
        assert!(e["at"].as_str().is_some_and(|a| a.ends_with('Z')), "{e}");
    }
    // Plain run-turn of the same id: the same reply, byte for byte.
    let again = w.shim(&["run-turn", "steps", &id, &paliadin_tests::b64("x")], None);
    assert_eq!(again.ok().trim_end(), reply.trim_end());
}

#[test]
fn a_turn_without_tools_streams_submitted_and_replied() {
    let w = ClaudeEnv::new();
    let id = paliadin_tests::turn_id();
    let r = w.shim(
        &[
            "run-turn-events",
            "plain",
            &id,
            &paliadin_tests::b64("just say hi"),
        ],
        None,
    );
    r.code(0);
    let events = events_of(&r);
    assert_eq!(
        kinds(&events),
        ["submitted", "replied", "usage", "reply"],
        "{r}"
    );
    assert_eq!(
        events[3]["text"]
            .as_str()
            .map(|t| t.starts_with(&ClaudeEnv::echo("just say hi"))),
        Some(true),
        "{r}"
    );
}

#[test]
fn a_file_mention_in_a_message_reads_nothing() {
    // Claude Code reads a file named by `@path` anywhere in a prompt and
    // sends it to the model, whatever the permission rules say: a key
    // holder must not be able to pull a file off the laptop that way.
    let mut w = ClaudeEnv::new();
    let secret = "PRIVATE-KEY-MATERIAL-91c2";
    let outside = w.env.home.join("private.txt");
    std::fs::write(&outside, format!("{secret}\n")).expect("secret");
    let inside = w.env.workdir.join("inside.txt");
    std::fs::write(&inside, format!("{secret}\n")).expect("secret");
    for (i, path) in [outside, inside].iter().enumerate() {
        let path = path.canonicalize().expect("real path");
        let short = format!("what is in @{} ?", path.display());
        let long = format!(
            "{}\nline\nline\nand @{} please",
            "x".repeat(900),
            path.display()
        );
        for msg in [short, long] {
            let t = w.turn(&format!("mention{i}"), &msg);
            t.code(0);
        }
    }
    for call in w.mock.model_calls() {
        assert!(
            !call.body.to_string().contains(secret),
            "a mentioned file reached the model:\n{}",
            w.mock.summary()
        );
    }
}

/// A message that makes the model read a file, run a command the
/// installer's permission mode denies, and fail a read. Returns the message and the
/// secret the file holds.
fn three_tools(w: &ClaudeEnv) -> (String, &'static str) {
    let secret = "INVOICE-CONTENT-7f3a";
    let invoices = w.env.workdir.join("invoices.csv");
    std::fs::write(&invoices, format!("id,total\n42,{secret}\n")).expect("invoices");
    let invoices = invoices.canonicalize().expect("real path");
    let missing = invoices.with_file_name("missing.txt");
    let message = format!(
        "mock: tool Read {}\nmock: tool Bash {}\nmock: tool Read {}\nwhat do I owe?",
        serde_json::json!({ "file_path": invoices }),
        serde_json::json!({ "command": "ls -la /" }),
        serde_json::json!({ "file_path": missing }),
    );
    (message, secret)
}

#[test]
fn turn_events_over_ssh_streams_the_steps_then_the_reply_and_the_log_keeps_the_truth() {
    let mut w = ClaudeEnv::with_ssh();
    let (message, secret) = three_tools(&w);
    let r = w.cli(
        true,
        &["turn", "--events", "--session", "steps", "-"],
        Some(message.as_bytes()),
    );
    r.code(0);
    let lines = events_of(&r);
    let steps = [
        "submitted",
        "tool_started Read invoices.csv",
        "tool_finished Read invoices.csv",
        "tool_started Read missing.txt",
        "tool_failed Read missing.txt",
        "replied",
        "usage",
    ];
    assert_eq!(kinds(&lines), [&steps[..], &["reply"]].concat(), "{r}");
    let last = lines.last().expect("last line");
    assert!(
        last["text"]
            .as_str()
            .is_some_and(|t| t.contains("tool failed")),
        "{r}"
    );
    assert!(!r.out().contains(secret), "file content in the stream\n{r}");
    // Without a terminal, nothing but data: no step on stderr.
    assert!(!r.stderr.contains("Reading"), "{r}");
    // What ran, against what the model claims (the refused Bash too).
    assert_eq!(last["used_tools"], serde_json::json!(["Read"]), "{r}");
    let claimed = last["claimed_tools"].as_array().expect("claimed_tools");
    assert!(claimed.iter().any(|t| t == "Bash"), "{r}");
    let id = last["turn_id"].as_str().expect("turn_id").to_owned();
    let show = w.cli(true, &["log", "show", "--json", &id], None);
    let v: paliadin_tests::Value = serde_json::from_str(&show.ok()).expect("json");
    let logged: Vec<paliadin_tests::Value> = v["events"].as_array().expect("events").clone();
    assert_eq!(kinds(&logged), steps, "{show}");
    assert_eq!(v["used_tools"], serde_json::json!(["Read"]));
    assert_eq!(v["claimed_tools"], last["claimed_tools"]);
    assert!(!show.out().contains(secret), "{show}");
    let text = w.cli(true, &["log", "show", &id], None).ok();
    assert!(!text.contains("Bash  ls"), "{text}");
    assert!(text.contains("used tools:     Read\n"), "{text}");

    // A turn with no tools still streams its start and end.
    let r = w.cli(
        true,
        &["turn", "--events", "--session", "steps", "just say hi"],
        None,
    );
    r.code(0);
    let lines = events_of(&r);
    assert_eq!(
        kinds(&lines),
        ["submitted", "replied", "usage", "reply"],
        "{r}"
    );
    assert_eq!(lines[3]["used_tools"], serde_json::json!([]), "{r}");
}

#[test]
fn over_ssh_the_steps_arrive_while_the_turn_runs() {
    use std::io::BufRead as _;
    let mut w = ClaudeEnv::with(ClaudeOptions {
        ssh: true,
        wait_secs: 60,
        ..ClaudeOptions::default()
    });
    let (message, _) = three_tools(&w);
    // Each model call takes a second: the turn cannot end before the
    // calls after the first tool are answered.
    let message = format!("mock: slow 1000\n{message}");
    let mut c = w.cli_command(true, &["turn", "--events", "--session", "live", "-"]);
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = c.spawn().expect("paliadin-cli");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(message.as_bytes()).expect("message");
    }
    let stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut kinds_seen = Vec::new();
    let mut calls_at_first_tool = None;
    for line in stdout.lines() {
        let line = line.expect("line");
        let v: paliadin_tests::Value = serde_json::from_str(&line).expect("json line");
        let kind = v["kind"].as_str().unwrap_or("?").to_owned();
        if kind == "tool_started" && calls_at_first_tool.is_none() {
            // The model calls made so far: read as it arrives, the step
            // comes before the calls that follow its tool.
            calls_at_first_tool = Some(w.mock.model_calls().len());
        }
        kinds_seen.push(kind);
    }
    let status = child.wait().expect("wait");
    assert!(status.success(), "{kinds_seen:?}");
    let at_first = calls_at_first_tool.expect("a tool_started line");
    let total = w.mock.model_calls().len();
    assert!(
        at_first < total,
        "the first step came only after the turn's last model call ({at_first} of {total}): {kinds_seen:?}"
    );
    assert_eq!(kinds_seen.last().map(String::as_str), Some("reply"));
}

/// Issue 17 item 2: with Bash allowed by the installer (`--allow-bash`),
/// the real claude runs its commands in its own sandbox (bubblewrap here):
/// a command in the workdir runs, while one session's agent reading another
/// session's state, or an agent's environment through /proc, fails and
/// nothing of it reaches the reply.
#[test]
fn with_bash_allowed_the_sandbox_keeps_other_sessions_state_unread() {
    let mut w = ClaudeEnv::with(ClaudeOptions {
        install_args: vec!["--allow-bash".into()],
        ..ClaudeOptions::default()
    });
    let toml = std::fs::read_to_string(&w.env.config).unwrap();
    assert!(toml.contains("agent_sandbox = true"), "{toml}");
    w.turn("victim", "hello").code(0);
    let verifier = w.env.state.join("sessions/victim/hook.auth");
    let secret = std::fs::read_to_string(&verifier).unwrap();
    // A command of its own in the workdir runs.
    let t = w.turn(
        "mallory",
        r#"mock: tool Bash {"command": "echo made-here > sandboxed.txt"}"#,
    );
    t.code(0);
    assert!(t.response().starts_with("tool ok"), "{}", t.run);
    assert!(w.env.workdir.join("sandboxed.txt").exists());
    // Another session's state: hidden from the command.
    for command in [
        format!("cat {}", verifier.display()),
        format!("ls {}", w.env.state.display()),
    ] {
        let input = serde_json::json!({ "command": command });
        let t = w.turn("mallory", &format!("mock: tool Bash {input}"));
        t.code(0);
        let reply = t.response();
        assert!(reply.starts_with("tool failed"), "{command}: {}", t.run);
        assert!(!reply.contains(secret.trim()), "{command}: {reply}");
    }
    // The processes a command sees are its own sandbox's (a pid namespace
    // of its own): the only hook key in reach is its own agent's.
    let victim_key = w.env.hook_key("victim");
    let mallory_key = w.env.hook_key("mallory");
    let input = serde_json::json!({
        "command": "cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n' | grep PALIADIN_HOOK_KEY"
    });
    let t = w.turn("mallory", &format!("mock: tool Bash {input}"));
    t.code(0);
    let seen = w
        .requests_for(&t)
        .iter()
        .map(|r| r.body.to_string())
        .collect::<String>();
    assert!(seen.contains(&mallory_key), "the command ran: {}", t.run);
    assert!(!seen.contains(&victim_key), "another agent's key was read");
}
