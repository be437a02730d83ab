//! What the real Claude Code (the pinned release) does as a claude.ai
//! subscriber, against the mock on loopback: how it signs in, where it
//! shows the plan's windows, what a usage limit does to a turn and to the
//! pane, and what its transcript keeps of each request. Each test asserts
//! the fact itself (issue 13; the measurements are in docs/PROTOCOL.md, "A
//! subscriber's laptop"), so that a Claude Code that changes one fails here
//! first. The shim's own handling of these is tested elsewhere: these tests
//! read claude's side (its hooks, status line, transcript, pane and the
//! requests the mock got), not the shim's answer.

use paliadin_tests::claude::{transcript, Auth, ClaudeEnv, ClaudeOptions, Recorder, ACCOUNT_UUID};
use paliadin_tests::mock_api::Request;
use paliadin_tests::mock_api::{unix_now, Limits, Window};
use paliadin_tests::Value;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// The windows the shim's status line kept for `session` (its `status`),
/// once `pred` holds.
#[track_caller]
fn shim_windows(w: &ClaudeEnv, session: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let r = w.shim(&["status", session], None);
        let s: Value = serde_json::from_str(r.ok().trim()).unwrap_or_else(|e| panic!("{e}\n{r}"));
        if pred(&s["windows"]) {
            return s["windows"].clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the shim's status never had such windows: {s}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_subscriber_signs_in_with_its_login_through_the_base_url_and_its_status_line_gets_the_windows()
{
    for auth in [Auth::Subscriber, Auth::SubscriberToken] {
        let mut w = ClaudeEnv::with(ClaudeOptions {
            auth,
            ..ClaudeOptions::default()
        });
        let limits = Limits::under(0.42, 0.07);
        w.mock.set_limits(Some(limits.clone()));
        let rec = w.record();
        let t = w.turn("sub", "hello, subscriber");
        t.code(0);
        assert_eq!(
            t.response(),
            ClaudeEnv::echo("hello, subscriber"),
            "{auth:?}"
        );
        // Nothing left the box (the mock is claude's HTTPS proxy too), and
        // every request came to the base URL, with the OAuth bearer and its
        // beta; nothing but the Messages API was asked there.
        assert_eq!(w.mock.connects(), Vec::<String>::new(), "{auth:?}");
        for r in w.mock.requests() {
            assert_eq!(r.kind, "message", "{auth:?}: {}", w.mock.summary());
            assert_eq!(
                r.headers["authorization"], "Bearer sk-ant-oat01…",
                "{auth:?}"
            );
            assert!(
                r.headers["anthropic-beta"].contains("oauth-2025-04-20"),
                "{auth:?}: {:?}",
                r.headers
            );
            assert!(!r.headers.contains_key("x-api-key"), "{auth:?}");
        }
        // The login names the plan (Max: Opus by default); a setup-token
        // does not, and claude falls back to its default model.
        let model = if auth == Auth::Subscriber {
            "claude-opus-5-5"
        } else {
            "claude-sonnet-5-5"
        };
        let first = &w.mock.requests()[0].body;
        assert_eq!(first["model"], model, "{auth:?}");
        // The login's account goes with every call; a token has none.
        let user: Value = serde_json::from_str(
            first["metadata"]["user_id"]
                .as_str()
                .expect("metadata.user_id"),
        )
        .expect("user_id is JSON");
        let account = if auth == Auth::Subscriber {
            ACCOUNT_UUID
        } else {
            ""
        };
        assert_eq!(user["account_uuid"], account, "{auth:?}: {user}");
        // The status line's input has both windows, as the headers said:
        // used percentage in whole percent, reset in Unix seconds. The
        // shim's status line (it replaces the user's) keeps them.
        let got = shim_windows(&w, "sub", |v| !v["five_hour"].is_null());
        assert_eq!(
            (&got["five_hour"], &got["seven_day"]),
            (
                &serde_json::json!({"used_percentage": 42.0, "resets_at": limits.five_hour.resets_at}),
                &serde_json::json!({"used_percentage": 7.0, "resets_at": limits.seven_day.resets_at}),
            ),
            "{auth:?}"
        );
        assert!(rec.status_lines().is_empty(), "the user's status line ran");
        // No hook payload carries the windows.
        let hooks = rec.hooks();
        assert!(!hooks.is_empty(), "{auth:?}: no hook recorded");
        for h in &hooks {
            let p = h["payload"].to_string();
            assert!(
                !p.contains("rate_limits") && !p.contains("used_percentage"),
                "{p}"
            );
        }
    }
}

#[test]
fn with_an_api_key_claude_ignores_the_plan_headers_and_a_rejected_429_is_an_api_error() {
    let mut w = ClaudeEnv::with(ClaudeOptions {
        auth: Auth::ApiKey,
        ..ClaudeOptions::default()
    });
    w.mock.set_limits(Some(Limits::under(0.5, 0.5)));
    let rec = w.record();
    let t = w.turn("key", "hello, key");
    t.code(0);
    assert_eq!(
        w.mock.requests()[0].headers["authorization"],
        "Bearer paliadin-moc…"
    );
    let ended = t.json["ended"].as_str().unwrap_or_default().to_owned();
    let got = shim_windows(&w, "key", |v| {
        v["at"].as_str().is_some_and(|at| at > ended.as_str())
    });
    assert!(
        got["five_hour"].is_null() && got["seven_day"].is_null(),
        "{got}"
    );
    // At the limit: no plan-limit text, the API's message; not retried.
    w.mock
        .set_limits(Some(Limits::reached(Window::FiveHour, unix_now() + 7200)));
    let t = w.turn("key", "limited?");
    // Not the subscription's limit: an ordinary failure of the agent.
    t.code(76);
    let failed = rec.wait_hooks(WAIT, "StopFailure", |h| {
        h.iter()
            .any(|h| h["payload"]["hook_event_name"] == "StopFailure")
    });
    let f = &failed
        .iter()
        .find(|h| h["payload"]["hook_event_name"] == "StopFailure")
        .expect("StopFailure")["payload"];
    assert_eq!(f["error"], "rate_limit");
    assert_eq!(
        f["last_assistant_message"],
        "API Error: Request rejected (429) · This request would exceed your account's rate limit. Please try again later."
    );
    assert_eq!(w.requests_for(&t).len(), 1, "{}", w.mock.summary());
}

/// A reset time `hours` and 17 minutes from the next full hour: never on a
/// full hour, so that its clock is always `h:17`.
fn reset_in(hours: u64) -> u64 {
    (unix_now() / 3600 + hours) * 3600 + 17 * 60
}

/// How Claude Code 2.1.328 shows a reset time within a day, in UTC (the
/// suite sets no TZ): `2:17pm`.
fn clock(t: u64) -> String {
    let h = t % 86_400 / 3600;
    let m = t % 3600 / 60;
    let h12 = if h % 12 == 0 { 12 } else { h % 12 };
    format!("{h12}:{m:02}{}", if h < 12 { "am" } else { "pm" })
}

/// ... and one further out: `Dec 7, 12:19pm`.
fn date_clock(t: u64) -> String {
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = (t / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let names = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!("{} {day}, {}", names[month as usize - 1], clock(t))
}

/// Waits for the `n`th call of `event` (1-based) and returns it whole
/// (`at_ms`, `payload`, `snapshot`).
#[track_caller]
fn wait_event(rec: &Recorder, event: &str, n: usize, timeout: Duration) -> Value {
    let what = format!("{event} #{n}");
    let h = rec.wait_hooks(timeout, &what, |h| {
        h.iter()
            .filter(|h| h["payload"]["hook_event_name"] == event)
            .count()
            >= n
    });
    h.into_iter()
        .filter(|h| h["payload"]["hook_event_name"] == event)
        .nth(n - 1)
        .expect("nth")
}

/// Waits for a line of the transcript at `path` that `pred` picks (claude
/// writes its transcript in batches; this polls it every 50 ms).
#[track_caller]
fn wait_line(path: &std::path::Path, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if let Some(l) = transcript(path).into_iter().rfind(|l| pred(l)) {
            return l;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no such line in {} within {WAIT:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The model calls the mock answered with a 429.
fn rejected(calls: &[Request]) -> usize {
    calls.iter().filter(|r| r.status == Some(429)).count()
}

/// Starts claude by hand in `session` (the installer's command line, no
/// shim) with the user's settings alone (the recorder's hooks and status
/// line) and claude's default automatic continue: for facts about claude
/// itself that the shim's own settings (its status line,
/// `autoContinueAtUsageLimit: false`) would change.
fn by_hand(w: &ClaudeEnv, session: &str) {
    let file = w.env.tmp.path().join(format!("{session}-settings.json"));
    std::fs::write(&file, "{}").expect("settings file");
    w.start_claude(session, &file, &[]);
}

/// Types `text` and Enter into `session`'s pane, as a person would.
fn say(w: &ClaudeEnv, session: &str, text: &str) {
    w.keys(session, &[text, "Enter"]);
}

/// The model calls whose prompt is `text` (typed by hand: no envelope).
fn calls_of(w: &ClaudeEnv, text: &str) -> Vec<Request> {
    w.mock
        .model_calls()
        .into_iter()
        .filter(|r| r.prompt == text)
        .collect()
}

#[test]
fn a_five_hour_limit_fires_stop_failure_with_the_reset_arms_an_automatic_continue_and_escape_cancels_it(
) {
    let w = ClaudeEnv::new();
    let rec = w.record();
    by_hand(&w, "limit");
    say(&w, "limit", "before the limit");
    wait_event(&rec, "Stop", 1, WAIT);
    let reset = reset_in(2);
    w.mock
        .set_limits(Some(Limits::reached(Window::FiveHour, reset)));
    say(&w, "limit", "at the limit");
    let failed = wait_event(&rec, "StopFailure", 1, WAIT);
    let text = format!(
        "You've hit your 5-hour limit · resets {} (UTC)",
        clock(reset)
    );
    let f = &failed["payload"];
    assert_eq!(f["error"], "rate_limit", "{f}");
    assert_eq!(f["last_assistant_message"], text.as_str(), "{f}");
    // The payload names no reset a machine could read but that clock.
    let keys: Vec<&String> = f.as_object().expect("object").keys().collect();
    assert_eq!(
        keys,
        [
            "cwd",
            "effort",
            "error",
            "hook_event_name",
            "last_assistant_message",
            "prompt_id",
            "session_id",
            "transcript_path"
        ],
        "{f}"
    );
    // One request, not retried, answered 429; no Stop for the turn.
    let calls = calls_of(&w, "at the limit");
    assert_eq!(
        (calls.len(), rejected(&calls)),
        (1, 1),
        "{}",
        w.mock.summary()
    );
    assert_eq!(rec.events("Stop").len(), 1, "{}", rec.summary());
    // The transcript holds the exact reset, on a line written after the
    // hook ran (within a second or so).
    let path = std::path::PathBuf::from(f["transcript_path"].as_str().expect("transcript_path"));
    let is_error_line = |l: &Value| l["type"] == "assistant" && l["isApiErrorMessage"] == true;
    let snap = failed["snapshot"]
        .as_str()
        .expect("a snapshot at StopFailure");
    let in_snapshot = transcript(std::path::Path::new(snap))
        .iter()
        .any(is_error_line);
    let line = wait_line(&path, is_error_line);
    eprintln!(
        "the limit's transcript line was {}in the transcript when StopFailure ran",
        if in_snapshot { "" } else { "not yet " }
    );
    assert_eq!(line["isApiErrorMessage"], true, "{line}");
    assert_eq!(line["apiErrorStatus"], 429);
    assert_eq!(line["error"], "rate_limit");
    assert_eq!(line["apiError"], "usage_limit_reached");
    assert_eq!(line["message"]["model"], "<synthetic>");
    assert_eq!(line["requestId"], calls[0].request_id.as_str());
    assert_eq!(line["message"]["content"][0]["text"], text.as_str());
    let info = &line["apiErrorParams"]["rate_limit_info"];
    assert_eq!(info["status"], "rejected", "{line}");
    assert_eq!(info["resetsAt"], reset);
    assert_eq!(info["rateLimitType"], "five_hour");
    assert_eq!(line["quotaLimits"]["resetsAt"], reset);
    // The status line: the window full, its reset.
    let full = serde_json::json!({"used_percentage": 100, "resets_at": reset});
    rec.wait_status(WAIT, "a full five-hour window", |s| {
        s.iter()
            .any(|s| s["payload"]["rate_limits"]["five_hour"] == full)
    });
    // The pane: the limit, and an automatic continue at the reset, no menu.
    let at = clock(reset);
    let pane = w.wait_pane("limit", WAIT, "the armed automatic continue", |p| {
        p.contains(&format!("Continuing automatically at {at} · Esc to cancel"))
    });
    assert!(pane.contains(&text), "{pane}");
    assert!(
        pane.contains(&format!(
            "Usage limit reached · continuing automatically at {at} · esc to cancel"
        )),
        "{pane}"
    );
    assert!(
        pane.contains(&format!("⚠ Usage limit reached · limit resets {at}")),
        "{pane}"
    );
    assert!(!pane.contains("What do you want to do?"), "{pane}");
    assert!(rec.events("Notification").is_empty(), "{}", rec.summary());
    // Escape, as a person would: cancelled, claude at its prompt.
    w.keys("limit", &["Escape"]);
    let pane = w.wait_pane("limit", WAIT, "the cancelled continue", |p| {
        p.contains("Automatic continue cancelled · /rate-limit-options to re-arm")
    });
    assert!(!pane.contains("Esc to cancel"), "{pane}");
    // Lifted: the next turn is answered as before.
    w.mock.set_limits(Some(Limits::under(0.01, 0.3)));
    say(&w, "limit", "after the reset");
    let stop = wait_event(&rec, "Stop", 2, WAIT);
    assert_eq!(
        stop["payload"]["last_assistant_message"],
        answer("after the reset").as_str()
    );
}

/// The mock's default answer to `text` typed by hand, trailer included.
fn answer(text: &str) -> String {
    format!(
        "{}\n\n{}",
        paliadin_tests::mock_api::echo_of(text),
        paliadin_tests::mock_api::TRAILER
    )
}

#[test]
fn a_limit_that_resets_beyond_a_day_opens_the_menu_which_drops_typed_text_and_escape_dismisses() {
    let w = ClaudeEnv::new();
    let rec = w.record();
    by_hand(&w, "week");
    say(&w, "week", "before the limit");
    wait_event(&rec, "Stop", 1, WAIT);
    let reset = reset_in(5 * 24);
    w.mock
        .set_limits(Some(Limits::reached(Window::SevenDay, reset)));
    say(&w, "week", "at the weekly limit");
    let when = date_clock(reset);
    let f = wait_event(&rec, "StopFailure", 1, WAIT);
    assert_eq!(
        f["payload"]["last_assistant_message"],
        format!("You've hit your weekly limit · resets {when} (UTC)").as_str()
    );
    let menu = |p: &str| p.contains("What do you want to do?");
    let pane = w.wait_pane("week", WAIT, "the limit menu", menu);
    for line in [
        "❯ 1. Stop and wait for limit to reset".to_owned(),
        format!("2. Wait here, then continue automatically at {when}"),
        // A login with a billing account is offered usage credits.
        "3. Switch to usage credits".to_owned(),
        "4. Upgrade your plan".to_owned(),
        "Enter to confirm · Esc to cancel".to_owned(),
    ] {
        assert!(pane.contains(&line), "{line:?} missing:\n{pane}");
    }
    // Text typed into the menu goes nowhere; Enter picks "Stop and wait".
    let calls = w.mock.model_calls().len();
    w.keys("week", &["typed into the menu", "Enter"]);
    let pane = w.wait_pane("week", WAIT, "the menu closed", |p| !menu(p));
    assert!(!pane.contains("typed into the menu"), "{pane}");
    assert_eq!(w.mock.model_calls().len(), calls, "{}", w.mock.summary());
    assert_eq!(rec.events("UserPromptSubmit").len(), 2, "{}", rec.summary());
    // A later reset opens it again; Escape closes it, nothing is typed.
    let reset = reset_in(6 * 24);
    w.mock
        .set_limits(Some(Limits::reached(Window::SevenDay, reset)));
    say(&w, "week", "again at the limit");
    wait_event(&rec, "StopFailure", 2, WAIT);
    w.wait_pane("week", WAIT, "the limit menu again", menu);
    w.keys("week", &["Escape"]);
    w.wait_pane("week", WAIT, "the menu closed", |p| !menu(p));
    // The same reset once more: no menu, a hint instead.
    say(&w, "week", "and once more");
    wait_event(&rec, "StopFailure", 3, WAIT);
    let pane = w.wait_pane("week", WAIT, "the upgrade hint", |p| {
        // (without a billing account: "/upgrade to increase your usage limit.")
        p.contains("/upgrade or /usage-credits to finish what you’re working on.")
    });
    assert!(!menu(&pane), "{pane}");
    // Within a day, a weekly limit arms the automatic continue instead.
    let soon = reset_in(3);
    w.mock
        .set_limits(Some(Limits::reached(Window::SevenDay, soon)));
    say(&w, "week", "weekly, resetting soon");
    wait_event(&rec, "StopFailure", 4, WAIT);
    let pane = w.wait_pane("week", WAIT, "the armed continue", |p| {
        p.contains(&format!(
            "Continuing automatically at {} · Esc to cancel",
            clock(soon)
        ))
    });
    assert!(!menu(&pane), "{pane}");
    // Every limit turn was one request.
    assert_eq!(rejected(&w.mock.model_calls()), 4, "{}", w.mock.summary());
}

#[test]
fn after_the_reset_the_automatic_continue_sends_a_prompt_of_its_own() {
    let w = ClaudeEnv::new();
    let rec = w.record();
    by_hand(&w, "resume");
    say(&w, "resume", "before the limit");
    wait_event(&rec, "Stop", 1, WAIT);
    let reset = unix_now() + 5;
    w.mock
        .set_limits(Some(Limits::reached(Window::FiveHour, reset)));
    say(&w, "resume", "cut off by the limit");
    wait_event(&rec, "StopFailure", 1, WAIT);
    w.mock.set_limits(Some(Limits::under(0.0, 0.3)));
    // It fires a while after the reset (a jitter, then a 30 s check):
    // nothing typed, a Notification, then a turn of its own.
    let fired = wait_event(&rec, "Notification", 1, Duration::from_secs(240));
    assert_eq!(
        fired["payload"]["notification_type"],
        "quota_auto_resume_fired"
    );
    assert_eq!(
        fired["payload"]["message"],
        "Usage limit reset — Claude is continuing your task"
    );
    let submit = wait_event(&rec, "UserPromptSubmit", 3, WAIT);
    let prompt = "Your claude.ai usage limit has reset. Continue the task you were working on when the limit was reached; do not repeat work that is already complete.";
    assert_eq!(submit["payload"]["prompt"], prompt);
    let stop = wait_event(&rec, "Stop", 2, WAIT);
    assert_eq!(stop["payload"]["prompt_id"], submit["payload"]["prompt_id"]);
    // The model got it, after the cut-off prompt, in one user message.
    let call = w
        .mock
        .model_calls()
        .into_iter()
        .rfind(|r| r.status == Some(200))
        .expect("the continuation's call");
    assert_eq!(call.prompt, prompt, "{}", w.mock.summary());
    assert!(call.raw_last_user_text() == prompt);
    let user = call.body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .rfind(|m| m["role"] == "user")
        .expect("user")
        .to_string();
    assert!(user.contains("cut off by the limit"), "{user}");
    eprintln!(
        "the automatic continue fired {} ms after the reset",
        fired["at_ms"].as_u64().unwrap_or(0) as i64 - reset as i64 * 1000
    );
}

/// The usage fields of a transcript line or a served answer, in one shape.
fn usage_of(u: &Value) -> [u64; 4] {
    [
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
    ]
    .map(|k| u[k].as_u64().unwrap_or(u64::MAX))
}

/// The assistant lines of a transcript that carry `request_id`.
fn lines_of(lines: &[Value], request_id: &str) -> Vec<Value> {
    lines
        .iter()
        .filter(|l| l["type"] == "assistant" && l["requestId"] == request_id)
        .cloned()
        .collect()
}

#[test]
fn the_transcript_repeats_a_requests_usage_on_each_line_of_its_answer_and_a_subagent_has_its_own_file(
) {
    let mut w = ClaudeEnv::new();
    // The Agent tool, which the installer's `--tools Read` does not offer.
    w.remove_agent_args(&["--tools"]);
    let rec = w.record();
    let notes = w.env.workdir.join("notes.txt");
    std::fs::write(&notes, "the notes\n").expect("notes");
    let notes = notes.canonicalize().expect("real path");
    let message = format!(
        "mock: usage input=100 output=20 cache-read=5000 cache-creation=300\nmock: preamble Let me look.\nmock: tool Read {}\nwhat do the notes say?",
        serde_json::json!({ "file_path": notes })
    );
    let t = w.turn("usage", &message);
    t.code(0);
    let stop = wait_event(&rec, "Stop", 1, WAIT);
    let path = std::path::PathBuf::from(
        stop["payload"]["transcript_path"]
            .as_str()
            .expect("transcript_path"),
    );
    let calls = w.requests_for(&t);
    assert_eq!(calls.len(), 2, "{}", w.mock.summary());
    let last_id = calls[1].request_id.clone();
    wait_line(&path, |l| {
        l["type"] == "assistant" && l["requestId"] == last_id.as_str()
    });
    eprintln!(
        "the last usage line was in the transcript by {} ms after Stop ran",
        paliadin_core::timefmt::now_ms() - stop["at_ms"].as_i64().unwrap_or(0)
    );
    let lines = transcript(&path);
    // The tool call's answer (a text block, then the tool_use) is two
    // lines, the final text one; every line carries its request's whole
    // usage, as served, and the model asked for.
    for (call, blocks) in calls.iter().zip([vec!["text", "tool_use"], vec!["text"]]) {
        let mine = lines_of(&lines, &call.request_id);
        let kinds: Vec<&str> = mine
            .iter()
            .map(|l| l["message"]["content"][0]["type"].as_str().unwrap_or("?"))
            .collect();
        assert_eq!(kinds, blocks, "{}", call.request_id);
        for l in &mine {
            assert_eq!(
                usage_of(&l["message"]["usage"]),
                [100, 20, 5000, 300],
                "{l}"
            );
            assert_eq!(l["message"]["model"], call.body["model"], "{l}");
            assert_eq!(l["isSidechain"], false);
            // The other keys of one request: the message id and the
            // `requestRef` of its `api-request` line.
            assert_eq!(l["message"]["id"], mine[0]["message"]["id"], "{l}");
            assert_eq!(l["requestRef"], mine[0]["requestRef"], "{l}");
        }
        let reference = mine[0]["requestRef"].as_str().expect("requestRef");
        assert_eq!(
            lines
                .iter()
                .filter(|l| l["type"] == "api-request" && l["id"] == reference)
                .count(),
            1,
            "{reference}"
        );
    }
    // The turn's last assistant line is the Stop's reply: the line to wait
    // for after Stop. After it, a `turn_duration` line ends the turn.
    let last = lines
        .iter()
        .rposition(|l| l["type"] == "assistant")
        .expect("an assistant line");
    assert_eq!(
        lines[last]["message"]["content"][0]["text"],
        stop["payload"]["last_assistant_message"]
    );
    let ended = lines[last..]
        .iter()
        .any(|l| l["type"] == "system" && l["subtype"] == "turn_duration");
    eprintln!(
        "a turn_duration line was {}after the last assistant line by then",
        if ended { "" } else { "not yet " }
    );
    // Was it all there when Stop ran?
    let snap = transcript(std::path::Path::new(
        stop["snapshot"].as_str().expect("a snapshot at Stop"),
    ));
    eprintln!(
        "at Stop the transcript had {} of the turn's {} assistant lines",
        calls
            .iter()
            .map(|c| lines_of(&snap, &c.request_id).len())
            .sum::<usize>(),
        3
    );
    // A subagent: its request's usage in its own file, named by
    // SubagentStop; not in the session's transcript. It runs in the
    // background: its end is a turn of its own, with a second Stop.
    let agent = serde_json::json!({"description": "look", "subagent_type": "general-purpose",
        "prompt": "mock: usage input=7 output=3 cache-read=11 cache-creation=13\nsay hi from the subagent"});
    let t = w.turn("usage", &format!("mock: tool Agent {agent}\nspawn one"));
    t.code(0);
    let sub = wait_event(&rec, "SubagentStop", 1, WAIT);
    let sub_path = std::path::PathBuf::from(
        sub["payload"]["agent_transcript_path"]
            .as_str()
            .expect("agent_transcript_path"),
    );
    let session = stop["payload"]["session_id"].as_str().expect("session_id");
    assert!(
        sub_path.starts_with(path.with_file_name(session).join("subagents")),
        "{}",
        sub_path.display()
    );
    let name = sub_path
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert!(
        name.starts_with("agent-") && name.ends_with(".jsonl"),
        "{name}"
    );
    let sub_call = w
        .mock
        .model_calls()
        .into_iter()
        .find(|r| r.prompt.starts_with("mock: usage input=7"))
        .expect("the subagent's call");
    let sub_line = wait_line(&sub_path, |l| {
        l["type"] == "assistant" && l["requestId"] == sub_call.request_id.as_str()
    });
    assert_eq!(usage_of(&sub_line["message"]["usage"]), [7, 3, 11, 13]);
    assert_eq!(sub_line["isSidechain"], true);
    assert!(lines_of(&transcript(&path), &sub_call.request_id).is_empty());
    let notified = wait_event(&rec, "UserPromptSubmit", 3, WAIT);
    assert!(
        notified["payload"]["prompt"]
            .as_str()
            .is_some_and(|p| p.starts_with("<task-notification>")),
        "{notified}"
    );
    wait_event(&rec, "Stop", 3, WAIT);
}

#[test]
fn a_login_whose_profile_is_a_day_old_is_fetched_from_api_anthropic_com_not_the_base_url() {
    let mut w = ClaudeEnv::new();
    let day_ago = paliadin_core::timefmt::now_ms() - 25 * 3600 * 1000;
    w.edit_claude_json(|c| {
        c["oauthAccount"]["profileFetchedAt"] = day_ago.into();
    });
    let rec = w.record();
    let t = w.turn("stale", "an old login");
    t.code(0);
    assert_eq!(t.response(), ClaudeEnv::echo("an old login"));
    // The profile is asked of api.anthropic.com through the proxy (offline:
    // refused), never of the base URL; the turn does not wait for it.
    let (_, asked) = w.mock.wait_until(WAIT, |log| {
        log.iter()
            .any(|r| r.kind == "connect" && r.path == "api.anthropic.com:443")
    });
    assert!(asked, "{}", w.mock.summary());
    assert_eq!(w.mock.connects(), ["api.anthropic.com:443"]);
    for r in w.mock.requests() {
        assert!(
            r.kind == "message" || r.kind == "connect",
            "{}",
            w.mock.summary()
        );
    }
    // Still a subscriber: the windows reach the (shim's) status line.
    shim_windows(&w, "stale", |v| !v["five_hour"].is_null());
    assert!(rec.status_lines().is_empty(), "{}", rec.summary());
}

#[test]
fn without_the_nonessential_traffic_switch_claude_probes_the_quota_at_start_and_asks_a_title_every_turn(
) {
    let mut w = ClaudeEnv::new();
    // The installer's environment of before issue 13 (DISABLE_AUTOUPDATER
    // in the shim config's agent_env, not the switch, which it sets now),
    // as on a laptop.
    w.edit_settings(|s| {
        s["env"]
            .as_object_mut()
            .expect("env")
            .remove("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC");
    });
    let switch = r#"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC = "1""#;
    let config = w.shim_config();
    assert!(config.contains("DISABLE_AUTOUPDATER") && config.contains(switch));
    let before = config
        .replace(&format!(", {switch}"), "")
        .replace(&format!("{switch}, "), "");
    assert!(!before.contains(switch), "{before}");
    std::fs::write(&w.env.config, before).expect("the shim config");
    let rec = w.record();
    let first = w.turn("noisy", "the first question");
    first.code(0);
    let second = w.turn("noisy", "the second question");
    second.code(0);
    // At start, before any prompt: a one-token "quota" call to the base
    // URL (its answer carries the windows).
    let calls = w.mock.model_calls();
    let probe = &calls[0];
    assert_eq!(probe.prompt, "quota", "{}", w.mock.summary());
    assert_eq!(probe.body["max_tokens"], 1);
    assert!(probe.body["tools"].is_null());
    let submitted = wait_event(&rec, "UserPromptSubmit", 1, WAIT);
    assert!(
        w.mock.unix_ms(probe.arrived_ms) < submitted["at_ms"].as_f64().unwrap_or(0.0),
        "the probe came after the first prompt"
    );
    // Each turn: a title request (no tools, the prompt inside <session>)
    // beside the model call.
    for t in [&first, &second] {
        let calls = w.requests_for(t);
        // Sent side by side: either may arrive first.
        let mut kinds: Vec<&str> = calls.iter().map(|c| c.kind.as_str()).collect();
        kinds.sort_unstable();
        assert_eq!(kinds, ["message", "side"], "{}", w.mock.summary());
        let title = calls
            .iter()
            .find(|c| c.kind == "side")
            .expect("a title request");
        assert!(
            title.prompt.starts_with("<session>\n[PALIADIN:"),
            "{}",
            title.prompt
        );
        assert!(
            title.body["system"]
                .to_string()
                .contains("You are naming a coding session"),
            "{}",
            title.body["system"]
        );
        eprintln!(
            "title request: {} bytes, max_tokens {}",
            title.body.to_string().len(),
            title.body["max_tokens"]
        );
    }
    // And the rest of the nonessential traffic goes to api.anthropic.com
    // (refused here; the turns do not wait for it).
    let (_, asked) = w.mock.wait_until(WAIT, |log| {
        log.iter()
            .any(|r| r.kind == "connect" && r.path == "api.anthropic.com:443")
    });
    assert!(asked, "{}", w.mock.summary());
}

#[test]
fn a_prompt_typed_while_the_automatic_continue_is_armed_runs_and_disarms_it() {
    let w = ClaudeEnv::new();
    let rec = w.record();
    by_hand(&w, "armed");
    say(&w, "armed", "before the limit");
    wait_event(&rec, "Stop", 1, WAIT);
    let reset = reset_in(2);
    w.mock
        .set_limits(Some(Limits::reached(Window::FiveHour, reset)));
    say(&w, "armed", "at the limit");
    wait_event(&rec, "StopFailure", 1, WAIT);
    let armed = format!(
        "Continuing automatically at {} · Esc to cancel",
        clock(reset)
    );
    w.wait_pane("armed", WAIT, "the armed continue", |p| p.contains(&armed));
    // The limit lifted, a prompt typed there runs, and the armed continue
    // is gone (a person's prompt takes the episode over).
    w.mock.set_limits(Some(Limits::under(0.0, 0.3)));
    say(&w, "armed", "typed while armed");
    let pane = w.wait_pane("armed", WAIT, "the continue disarmed", |p| {
        !p.contains("Esc to cancel")
    });
    assert!(!pane.contains("⚠ Usage limit reached"), "{pane}");
    let stop = wait_event(&rec, "Stop", 2, WAIT);
    assert_eq!(
        stop["payload"]["last_assistant_message"],
        answer("typed while armed").as_str(),
        "{stop}"
    );
}

#[test]
fn from_its_own_settings_file_claude_runs_that_status_line_and_autocontinue_off_opens_the_menu_at_any_limit(
) {
    let w = ClaudeEnv::new();
    // The user's own status line and hooks in ~/.claude/settings.json ...
    let user = w.record();
    // ... and a --settings file as the shim could write it.
    let (mine, hooks, status) = w.recorder("flag-recorder");
    let file = w.env.tmp.path().join("flag-settings.json");
    let settings = serde_json::json!({
        "hooks": hooks,
        "statusLine": status,
        "autoContinueAtUsageLimit": false,
    });
    std::fs::write(&file, settings.to_string()).expect("settings file");
    w.start_claude("byhand", &file, &[]);
    w.keys("byhand", &["hello by hand", "Enter"]);
    wait_event(&mine, "Stop", 1, WAIT);
    let seen = mine.wait_status(WAIT, "rate_limits", |s| {
        s.iter().any(|s| !s["payload"]["rate_limits"].is_null())
    });
    eprintln!(
        "flag status lines {}, user status lines {}, user hooks {}",
        seen.len(),
        user.status_lines().len(),
        user.hooks().len()
    );
    // The file's status line replaces the user's; both files' hooks run.
    assert!(user.status_lines().is_empty(), "{:?}", user.status_lines());
    assert_eq!(user.events("Stop").len(), 1, "{}", user.summary());
    // A five-hour limit resetting within the day: the menu, not the
    // automatic continue.
    let reset = reset_in(2);
    w.mock
        .set_limits(Some(Limits::reached(Window::FiveHour, reset)));
    w.keys("byhand", &["limited by hand", "Enter"]);
    wait_event(&mine, "StopFailure", 1, WAIT);
    let menu = |p: &str| p.contains("What do you want to do?");
    let pane = w.wait_pane("byhand", WAIT, "the limit menu", menu);
    assert!(!pane.contains("Continuing automatically at"), "{pane}");
    for line in [
        "❯ 1. Stop and wait for limit to reset".to_owned(),
        format!(
            "2. Wait here, then continue automatically at {}",
            clock(reset)
        ),
        "3. Switch to usage credits".to_owned(),
        "4. Upgrade your plan".to_owned(),
        "Enter to confirm · Esc to cancel".to_owned(),
    ] {
        assert!(pane.contains(&line), "{line:?} missing:\n{pane}");
    }
    // Escape: the menu closes, claude is at its prompt, nothing armed.
    w.keys("byhand", &["Escape"]);
    let pane = w.wait_pane("byhand", WAIT, "the menu closed", |p| !menu(p));
    assert!(!pane.contains("Esc to cancel"), "{pane}");
    w.mock.set_limits(Some(Limits::under(0.1, 0.3)));
    w.keys("byhand", &["after the limit", "Enter"]);
    let stop = wait_event(&mine, "Stop", 2, WAIT);
    assert_eq!(
        stop["payload"]["last_assistant_message"],
        answer("after the limit").as_str()
    );
}

#[test]
fn of_two_settings_flags_claude_honours_only_the_last_the_shims() {
    let mut w = ClaudeEnv::new();
    let user = w.record();
    // A --settings in the agent's command line comes before the shim's own.
    let (mine, hooks, status) = w.recorder("first-flag");
    let file = w.env.tmp.path().join("first-settings.json");
    let settings = serde_json::json!({"hooks": hooks, "statusLine": status});
    std::fs::write(&file, settings.to_string()).expect("settings file");
    w.add_agent_args(&["--settings", &file.to_string_lossy()]);
    let t = w.turn("two", "two settings files");
    t.code(0);
    // The shim's hooks ran (the turn got its reply) and so did the user's;
    // the shim's status line replaced the user's; the first file's hooks
    // and status line never ran.
    assert_eq!(t.response(), ClaudeEnv::echo("two settings files"));
    wait_event(&user, "Stop", 1, WAIT);
    shim_windows(&w, "two", |v| !v["five_hour"].is_null());
    assert!(user.status_lines().is_empty(), "{}", user.summary());
    assert!(mine.hooks().is_empty(), "{}", mine.summary());
    assert!(mine.status_lines().is_empty());
}
