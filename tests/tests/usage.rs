//! What a turn really cost (issue 13 item 4), with the real Claude Code
//! (the pinned release) as a subscriber against the mock: the shim's
//! `usage` event sums the turn's own requests from claude's transcript, the
//! client keeps it per turn (`turn --json`, `log show`, `log stats`), and
//! `run-turn`'s output stays the reply alone.

use paliadin_tests::claude::ClaudeEnv;
use paliadin_tests::mock_api::Request;
use paliadin_tests::Value;
use serde_json::json;

/// What the mock served over `calls`, as the `usage` object says it.
fn served(calls: &[Request]) -> Value {
    let sum = |k: &str| -> u64 { calls.iter().map(|c| c.usage[k].as_u64().unwrap_or(0)).sum() };
    json!({
        "input_tokens": sum("input_tokens"),
        "output_tokens": sum("output_tokens"),
        "cache_read_input_tokens": sum("cache_read_input_tokens"),
        "cache_creation_input_tokens": sum("cache_creation_input_tokens"),
        "model": calls.last().map(|c| c.body["model"].clone()).unwrap_or_default(),
        "requests": calls.len(),
    })
}

fn kinds(v: &Value) -> Vec<String> {
    v["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["kind"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn a_turns_usage_is_what_the_mock_served_each_request_counted_once_and_the_log_keeps_it() {
    let mut w = ClaudeEnv::new();
    // A turn of one request.
    let t = w.turn("usage", "what is two and two?");
    t.code(0);
    let calls = w.requests_for(&t);
    assert_eq!(calls.len(), 1, "{}", w.mock.summary());
    assert_eq!(t.json["usage"], served(&calls), "{}", t.run);
    assert_eq!(t.json["usage"]["model"], "claude-opus-5-5");
    let first = t.json["usage"].clone();
    // A tool call with a cached prefix: two requests, the first answered
    // with two content blocks (two transcript lines with its whole usage).
    let notes = w.env.workdir.join("notes.txt");
    std::fs::write(&notes, "the notes\n").expect("notes");
    let message = format!(
        "mock: usage input=100 output=20 cache-read=5000 cache-creation=300\nmock: preamble Let me look.\nmock: tool Read {}\nwhat do the notes say?",
        json!({ "file_path": notes.canonicalize().expect("real path") })
    );
    let t = w.turn("usage", &message);
    t.code(0);
    assert_eq!(t.response(), "tool ok", "{}", t.run);
    let calls = w.requests_for(&t);
    assert_eq!(calls.len(), 2, "{}", w.mock.summary());
    let want = json!({"input_tokens": 200, "output_tokens": 40,
        "cache_read_input_tokens": 10000, "cache_creation_input_tokens": 600,
        "model": "claude-opus-5-5", "requests": 2});
    assert_eq!(served(&calls), want);
    assert_eq!(t.json["usage"], want, "{}", t.run);
    // The stream sent it after `replied`, before the reply.
    let k = kinds(&t.json);
    assert_eq!(&k[k.len() - 2..], ["replied", "usage"], "{}", t.run);

    // The log: the same object in `log show --json`, a line in `log show`.
    let id = t.id();
    let show = w.cli(false, &["log", "show", "--json", &id], None);
    let v: Value = serde_json::from_str(&show.ok()).expect("json");
    assert_eq!(v["usage"], want, "{show}");
    assert!(v["estimated_tokens"].is_i64(), "{show}");
    let text = w.cli(false, &["log", "show", &id], None).ok();
    assert!(
        text.contains(
            "usage:          input 200  output 40  cache read 10000  cache creation 600  (2 requests, claude-opus-5-5)\n"
        ),
        "{text}"
    );
    assert!(text.contains("an estimate"), "{text}");

    // Stats: both turns, all time (the aggregates) and per session (the turns).
    let total = |k: &str| first[k].as_i64().unwrap_or(0) + want[k].as_i64().unwrap_or(0);
    for args in [
        vec!["log", "stats", "--json"],
        vec!["log", "stats", "--json", "--session", "usage"],
    ] {
        let r = w.cli(false, &args, None);
        let s: Value = serde_json::from_str(&r.ok()).expect("json");
        let u = &s["usage"];
        assert_eq!(u["measured_turns"], 2, "{args:?}: {r}");
        for k in [
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
        ] {
            assert_eq!(u[k].as_i64(), Some(total(k)), "{args:?} {k}: {r}");
        }
        assert_eq!(u["requests"], 3, "{args:?}: {r}");
        let day = s["days"].as_array().and_then(|d| d.last()).expect("a day");
        assert_eq!(day["usage"], *u, "{args:?}: {r}");
    }
    let text = w.cli(false, &["log", "stats"], None).ok();
    assert!(
        text.contains(&format!(
            "usage of the 2 of 2 turns measured: input {}",
            total("input_tokens")
        )),
        "{text}"
    );
    let other = w
        .cli(false, &["log", "stats", "--session", "nobody"], None)
        .ok();
    assert!(other.contains("usage: not measured"), "{other}");

    // `run-turn` itself: the reply alone, as the Go client reads it.
    let (r, _) = w.shim_turn("usage", "and three and three?");
    r.code(0);
    let out = r.out();
    assert!(
        out.starts_with(&ClaudeEnv::echo("and three and three?")),
        "{r}"
    );
    assert!(
        !out.contains("input_tokens") && !out.contains("\"kind\""),
        "{r}"
    );
}

#[test]
fn an_operator_who_widens_the_allow_rules_gets_those_tools_offered() {
    let mut w = ClaudeEnv::new();
    // Widened in shim.toml the way the README says: one more allow rule,
    // and `--tools` left as setup wrote it.
    let (mut argv, _) = w.agent_command();
    let at = argv
        .iter()
        .position(|a| a == "--allowedTools")
        .expect("--allowedTools");
    argv.insert(at + 2, "Grep".into());
    assert!(argv.windows(2).any(|p| p == ["--tools", "Read"]));
    w.set_agent_argv(&argv);
    let t = w.turn("wide", "what is two and two?");
    t.code(0);
    let calls = w.requests_for(&t);
    let names: Vec<&str> = calls[0].body["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        names.contains(&"Read") && names.contains(&"Grep") && !names.contains(&"Bash"),
        "{names:?}"
    );
    // The shim's own record of the command it started says so too.
    let record =
        std::fs::read_to_string(w.env.state.join("sessions").join("wide").join("agent.json"))
            .unwrap_or_default();
    assert!(record.contains("\"Read,Grep\""), "{record}");
}
