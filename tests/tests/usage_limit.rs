//! The shim and the client at a claude.ai subscriber's plan limits, with
//! the real Claude Code against the mock (issue 13, items 2 and 3; PROTOCOL
//! sections 1, 7 and 8): a usage limit is exit 78 `usage_limit` with its
//! reset, the pane is left at its prompt, the laptop refuses every turn
//! until the reset without a model request, and the windows before the
//! limit reach `status`, `health`, `doctor` and `log probes`.

use paliadin_core::subscription::rfc3339_s;
use paliadin_tests::claude::ClaudeEnv;
use paliadin_tests::mock_api::{unix_now, Limits, Window};
use paliadin_tests::{b64, turn_id, Value};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

/// What the pane shows while a key would land in the limit's menu or
/// cancel its automatic continue.
fn holds(pane: &str) -> bool {
    pane.contains("What do you want to do?") || pane.contains("Esc to cancel")
}

/// The shim's status of `session`.
fn status(w: &ClaudeEnv, session: &str) -> Value {
    let r = w.shim(&["status", session], None);
    serde_json::from_str(r.ok().trim()).unwrap_or_else(|e| panic!("{e}\n{r}"))
}

/// Waits until the shim's status of `session` satisfies `pred`.
#[track_caller]
fn wait_status(w: &ClaudeEnv, session: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let s = status(w, session);
        if pred(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "no {what} in status: {s}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_usage_limit_is_78_with_its_reset_the_pane_back_at_its_prompt_and_every_turn_refused_until_it_resets(
) {
    let mut w = ClaudeEnv::new();
    let t = w.turn("lim", "before the limit");
    t.code(0);
    // Under the limit: the windows the status line saw, in status and health.
    let s = wait_status(&w, "lim", "windows", |s| {
        !s["windows"]["five_hour"].is_null()
    });
    assert_eq!(s["windows"]["five_hour"]["used_percentage"], 20.0, "{s}");
    assert_eq!(s["windows"]["seven_day"]["used_percentage"], 10.0, "{s}");
    assert!(s["usage_limit"].is_null(), "{s}");
    let h = w.cli(false, &["health", "--session", "lim"], None);
    h.code(0);
    assert!(
        h.out().starts_with("OK ")
            && h.out()
                .contains(" five_hour=20%;;;0;100 seven_day=10%;;;0;100"),
        "{h}"
    );
    let d = w.cli(false, &["doctor", "--session", "lim"], None);
    assert!(
        d.out().contains("five-hour window 20% used")
            && d.out().contains("seven-day window 10% used"),
        "{d}"
    );
    let p = w.cli(false, &["log", "probes", "--json"], None);
    let probes: Value = serde_json::from_str(p.ok().trim()).expect("log probes --json");
    assert_eq!(
        probes["recent"][0]["windows"]["five_hour"]["used_percentage"], 20.0,
        "{probes}"
    );

    // The limit, resetting a little ahead.
    let reset = unix_now() + 40;
    let at = rfc3339_s(reset as i64);
    w.mock
        .set_limits(Some(Limits::reached(Window::FiveHour, reset)));
    let calls = w.mock.model_calls().len();
    let started = Instant::now();
    let t = w.turn("lim", "at the limit");
    let took = started.elapsed();
    t.code(78);
    assert_eq!(t.json["error_code"], "usage_limit", "{}", t.run);
    let row = &t.json["turn"];
    assert_eq!(row["status"], "error", "{}", t.run);
    assert_eq!(row["error_code"], "usage_limit", "{}", t.run);
    assert_eq!(row["resets_at"], at.replace('Z', ".000Z"), "{}", t.run);
    let failed: Vec<&Value> = row["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["kind"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{row}");
    assert_eq!(failed[0]["resets_at"], at.as_str(), "{row}");
    assert_eq!(failed[0]["window"], "five_hour", "{row}");
    assert!(
        t.json["hint"].as_str().unwrap_or("").contains("resets at"),
        "{}",
        t.run
    );
    // One request, answered 429.
    let limited = w.requests_for(&t);
    assert_eq!(limited.len(), 1, "{}", w.mock.summary());
    assert_eq!(limited[0].status, Some(429));
    // The pane is back at its prompt: no menu, nothing armed.
    let pane = w.pane("lim");
    assert!(!holds(&pane), "{pane}");
    assert!(pane.contains("You've hit your 5-hour limit"), "{pane}");

    // While it holds: refused at once, in any session, nothing typed.
    for session in ["lim", "other"] {
        let started = Instant::now();
        let t = w.turn(session, "refused?");
        eprintln!(
            "the limit turn took {} ms (paliadin-cli turn, the pane cleared); a refused one in {session} {} ms",
            took.as_millis(),
            started.elapsed().as_millis()
        );
        t.code(78);
        assert_eq!(t.json["turn"]["resets_at"], row["resets_at"], "{}", t.run);
    }
    let id = turn_id();
    let r = w.shim(&["run-turn", "lim", &id, &b64("plain")], None);
    r.code(78);
    assert_eq!(
        r.stderr.trim_end(),
        format!("paliadin-shim: usage_limit: the subscription's five-hour limit is reached; it resets at {at}"),
        "{r}"
    );
    let r = w.shim(
        &["run-turn-events", "lim", &turn_id(), &b64("events")],
        None,
    );
    r.code(78);
    let e: Value = serde_json::from_str(r.out().lines().next().unwrap_or("")).expect("an event");
    assert_eq!(
        (&e["kind"], &e["detail"], &e["resets_at"], &e["window"]),
        (
            &Value::from("failed"),
            &Value::from("usage_limit"),
            &Value::from(at.as_str()),
            &Value::from("five_hour")
        ),
        "{r}"
    );
    assert_eq!(
        w.mock.model_calls().len(),
        calls + 1,
        "{}",
        w.mock.summary()
    );
    assert!(
        !w.env.tmux_sessions().iter().any(|s| s.contains("other")),
        "the refused session's agent was started: {:?}",
        w.env.tmux_sessions()
    );
    let s = status(&w, "lim");
    assert_eq!(s["usage_limit"]["resets_at"], at.as_str(), "{s}");
    assert_eq!(s["usage_limit"]["window"], "five_hour", "{s}");
    // health says WARNING with the reset; log stats counts the turns.
    let h = w.cli(false, &["health", "--session", "lim"], None);
    h.code(1);
    assert!(
        h.out().starts_with("WARNING ") && h.out().contains(&format!("it resets at {at}")),
        "{h}"
    );
    let st = w.cli(false, &["log", "stats", "--json"], None);
    let stats: Value = serde_json::from_str(st.ok().trim()).expect("log stats --json");
    let counted = stats.to_string();
    assert!(counted.contains("\"usage_limit\""), "{stats}");
    assert!(!holds(&w.pane("lim")), "{}", w.pane("lim"));

    // After the reset a turn works again.
    w.mock.set_limits(Some(Limits::under(0.01, 0.3)));
    while unix_now() <= reset {
        std::thread::sleep(Duration::from_millis(200));
    }
    let t = w.turn("lim", "after the reset");
    t.code(0);
    assert_eq!(
        t.response(),
        ClaudeEnv::echo("after the reset"),
        "{}",
        t.run
    );
    let h = w.cli(false, &["health", "--session", "lim"], None);
    h.code(0);
}

#[test]
fn a_limit_resetting_beyond_a_day_opens_a_menu_that_the_shim_dismisses() {
    let mut w = ClaudeEnv::new();
    w.turn("week", "before the limit").code(0);
    let reset = unix_now() + 5 * 86_400 + 60;
    w.mock
        .set_limits(Some(Limits::reached(Window::SevenDay, reset)));
    let t = w.turn("week", "at the weekly limit");
    t.code(78);
    assert_eq!(
        t.json["turn"]["resets_at"],
        rfc3339_s(reset as i64).replace('Z', ".000Z"),
        "{}",
        t.run
    );
    assert!(
        t.json["error"]
            .as_str()
            .unwrap_or("")
            .contains("the subscription's seven-day limit is reached"),
        "{}",
        t.run
    );
    let pane = w.pane("week");
    assert!(!holds(&pane), "{pane}");
    assert!(pane.contains("You've hit your weekly limit"), "{pane}");
    // The status line saw the window full; the pane stays clear (the menu
    // would stay until a key closed it), and a refused turn types nothing.
    wait_status(&w, "week", "a full seven-day window", |s| {
        s["windows"]["seven_day"]["used_percentage"] == 100.0
    });
    w.turn("week", "refused").code(78);
    let pane = w.pane("week");
    assert!(!holds(&pane), "{pane}");
    assert!(!pane.contains("refused"), "{pane}");
    // Nothing was typed into the menu: one request, and nothing since.
    assert_eq!(w.mock.model_calls().len(), 2, "{}", w.mock.summary());
}

#[test]
fn a_turn_never_types_into_the_menu_a_person_left_open_it_closes_it_first() {
    let mut w = ClaudeEnv::new();
    w.turn("seen", "before the limit").code(0);
    // Someone in the attached pane runs into a weekly limit: the menu opens
    // and stays (the shim typed nothing, so nothing dismissed it).
    w.mock.set_limits(Some(Limits::reached(
        Window::SevenDay,
        unix_now() + 5 * 86_400 + 60,
    )));
    w.keys("seen", &["typed by a person", "Enter"]);
    w.wait_pane("seen", WAIT, "the limit menu", |p| {
        p.contains("What do you want to do?")
    });
    // Lifted (say, by an upgrade): the next turn first closes the menu and
    // is then typed and answered whole.
    w.mock.set_limits(Some(Limits::under(0.3, 0.3)));
    let t = w.turn("seen", "after the menu");
    t.code(0);
    assert_eq!(t.response(), ClaudeEnv::echo("after the menu"), "{}", t.run);
    assert!(!holds(&w.pane("seen")), "{}", w.pane("seen"));
    assert_eq!(w.requests_for(&t).len(), 1, "{}", w.mock.summary());
}
