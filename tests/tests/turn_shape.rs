//! What a turn sends the model, with the real Claude Code (the pinned
//! release) against the mock: the tools offered with the installer's
//! policy (`--tools Read`) and with the policy of before (every tool), a
//! protocol given with
//! `--append-system-prompt-file`, and a model that consults the skill
//! before it answers (issue 13). Each test asserts the fact later code
//! relies on, and prints the sizes it measured (`--nocapture`) for
//! docs/PROTOCOL.md.

use paliadin_tests::claude::{ClaudeEnv, Turn};
use paliadin_tests::mock_api::Request;
use paliadin_tests::Value;
use std::time::Duration;

/// The tools Claude Code 2.1.328 offers under the policy of before issue 13
/// (`--permission-mode dontAsk`, `--allowedTools Read(<workdir>)`,
/// `--disallowedTools AskUserQuestion`, no `--tools`), whatever it allows.
const OFFERED_TODAY: &[&str] = &[
    "Agent",
    "Bash",
    "Edit",
    "ListAgents",
    "Read",
    "ReportFindings",
    "ScheduleWakeup",
    "Skill",
    "ToolSearch",
    "Workflow",
    "DeferredToolPlaceholder",
    "Write",
];

/// A request's size, in bytes of its JSON body, and where they go.
#[derive(Debug)]
struct Shape {
    bytes: usize,
    system: usize,
    tools: usize,
    messages: usize,
    tool_names: Vec<String>,
}

fn shape(r: &Request) -> Shape {
    let len = |v: &Value| if v.is_null() { 0 } else { v.to_string().len() };
    Shape {
        bytes: len(&r.body),
        system: len(&r.body["system"]),
        tools: len(&r.body["tools"]),
        messages: len(&r.body["messages"]),
        tool_names: r.body["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["name"].as_str().map(str::to_owned))
            .collect(),
    }
}

fn print(label: &str, r: &Request) {
    let s = shape(r);
    eprintln!(
        "{label}: {} bytes (system {}, tools {} for {}, messages {}), ~{} tokens at 4 bytes each",
        s.bytes,
        s.system,
        s.tools,
        s.tool_names.len(),
        s.messages,
        s.bytes / 4
    );
}

/// The one model call a turn made, asserting it made one.
#[track_caller]
fn only_call(w: &ClaudeEnv, t: &Turn) -> Request {
    let calls = w.requests_for(t);
    assert_eq!(calls.len(), 1, "{}", w.mock.summary());
    calls[0].clone()
}

/// The system prompt's text, all blocks joined.
fn system_text(r: &Request) -> String {
    match &r.body["system"] {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// Milliseconds from the turn's `submitted` event (the shim done typing)
/// to the mock's reading of `call`.
fn typing_to_request(w: &ClaudeEnv, t: &Turn, call: &Request) -> f64 {
    let at = t.json["events"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["kind"] == "submitted")
        .and_then(|e| e["at"].as_str())
        .expect("a submitted event");
    let (whole, frac) = at
        .trim_end_matches('Z')
        .split_once('.')
        .unwrap_or((at, "0"));
    let ms = paliadin_core::timefmt::parse_since(&format!("{whole}Z"), 0).expect("RFC 3339")
        + frac.parse::<i64>().unwrap_or(0);
    w.mock.unix_ms(call.arrived_ms) - ms as f64
}

/// The sizes of a request's message blocks, each with the start of its
/// text: where the listings of skills, agents and deferred tools go (a
/// `system` message after the prompt).
fn print_blocks(r: &Request) {
    for m in r.body["messages"].as_array().into_iter().flatten() {
        for b in m["content"].as_array().into_iter().flatten() {
            let head: String = b["text"]
                .as_str()
                .unwrap_or_default()
                .chars()
                .take(60)
                .map(|c| if c == '\n' { ' ' } else { c })
                .collect();
            eprintln!(
                "  {} block, {} bytes: {head}",
                m["role"],
                b.to_string().len()
            );
        }
    }
}

/// The agent line's flags the installer's policy added in issue 13.
const NEW_FLAGS: [&str; 2] = ["--tools", "--append-system-prompt-file"];
/// The start of the protocol's text (skills/paliadin/SKILL.md).
const PROTOCOL: &str = "paliadin: answer relayed messages";

#[test]
fn the_installers_policy_offers_only_read_and_the_protocol_is_in_the_system_prompt() {
    // (label, the policy of before, tools offered, skills listed)
    let variants: [(&str, bool, Vec<&str>, bool); 3] = [
        ("before", true, OFFERED_TODAY.to_vec(), true),
        (
            "installer's policy",
            false,
            vec!["DeferredToolPlaceholder", "Read"],
            false,
        ),
        (
            "--tools Read,Skill",
            true,
            vec!["Read", "DeferredToolPlaceholder", "Skill"],
            true,
        ),
    ];
    for (label, before, want, skills_listed) in variants {
        let mut w = ClaudeEnv::new();
        if before {
            w.remove_agent_args(&NEW_FLAGS);
        }
        if label.starts_with("--tools") {
            w.add_agent_args(&["--tools", "Read,Skill"]);
        }
        let first_turn = w.turn("shape", "the first question");
        first_turn.code(0);
        let first = only_call(&w, &first_turn);
        let t = w.turn("shape", "the second question");
        t.code(0);
        let warm = only_call(&w, &t);
        print(&format!("{label}, first turn"), &first);
        print_blocks(&first);
        print(&format!("{label}, warm turn"), &warm);
        eprintln!(
            "{label}: from the shim's submitted event to the request's arrival: first turn {:.0} ms, warm turn {:.0} ms",
            typing_to_request(&w, &first_turn, &first),
            typing_to_request(&w, &t, &warm)
        );
        for r in [&first, &warm] {
            assert_eq!(shape(r).tool_names, want, "{label}");
        }
        // Without the Skill tool the skills are not listed at all: the
        // paliadin skill cannot reach the model.
        let listed = first
            .body
            .to_string()
            .contains("Answers a message relayed by the paliadin shim");
        assert_eq!(listed, skills_listed, "{label}");
        // The protocol is in the system prompt with the policy, in every
        // request, and nowhere in the requests of before.
        for r in [&first, &warm] {
            assert_eq!(system_text(r).contains(PROTOCOL), !before, "{label}");
        }
    }
}

#[test]
fn offered_only_read_a_turn_still_reads_the_workdir_and_any_other_tool_is_refused() {
    // The installer's policy as it is: --tools Read.
    let mut w = ClaudeEnv::new();
    assert!(w
        .agent_command()
        .0
        .windows(2)
        .any(|p| p == ["--tools", "Read"]));
    let notes = w.env.workdir.join("notes.txt");
    std::fs::write(&notes, "the notes\n").expect("notes");
    let notes = notes.canonicalize().expect("real path");
    let read = format!(
        "mock: tool Read {}\nread the notes",
        serde_json::json!({ "file_path": notes })
    );
    let t = w.turn("only-read", &read);
    t.code(0);
    assert_eq!(t.response(), "tool ok", "{}", t.run);
    // Outside the workdir, still the permission rules: refused.
    let outside = w.env.home.join("private.txt");
    std::fs::write(&outside, "private\n").expect("private");
    let t = w.turn(
        "only-read",
        &format!(
            "mock: tool Read {}\nread that",
            serde_json::json!({"file_path": outside.canonicalize().expect("real")})
        ),
    );
    t.code(0);
    assert!(t.response().starts_with("tool failed: "), "{}", t.run);
    // A tool not offered, called anyway: refused as unknown, nothing runs.
    let planted = w.env.home.join("planted");
    for (tool, input) in [
        (
            "Bash",
            serde_json::json!({"command": format!("touch {}", planted.display())}),
        ),
        (
            "Write",
            serde_json::json!({"file_path": planted, "content": "x"}),
        ),
        (
            "Agent",
            serde_json::json!({"description": "x", "prompt": "hi", "subagent_type": "general-purpose"}),
        ),
    ] {
        let t = w.turn("only-read", &format!("mock: tool {tool} {input}\ntry it"));
        t.code(0);
        let r = t.response();
        assert!(
            r.starts_with(&format!(
                "tool failed: <tool_use_error>Error: No such tool available: {tool}"
            )),
            "{tool}: {r:?}\n{}",
            t.run
        );
        assert!(!planted.exists(), "{tool} ran");
    }
}

#[test]
fn an_appended_system_prompt_is_read_at_start_and_in_every_request_after_clear_and_after_compaction(
) {
    let mut w = ClaudeEnv::new();
    let marker = "PALIADIN-PROTOCOL-MARKER-5e1d: answer in one line.";
    let file = w.env.tmp.path().join("protocol.md");
    std::fs::write(&file, format!("# protocol\n\n{marker}\n")).expect("protocol");
    w.remove_agent_args(&["--append-system-prompt-file"]);
    w.add_agent_args(&["--append-system-prompt-file", &file.to_string_lossy()]);
    let rec = w.record();
    let t = w.turn("sys", "first");
    t.code(0);
    let call = only_call(&w, &t);
    let system = system_text(&call);
    assert!(system.contains(marker), "{system}");
    // Where it goes: the last system block, after Claude Code's own text.
    let blocks = call.body["system"].as_array().expect("system blocks");
    let at = blocks
        .iter()
        .position(|b| b["text"].as_str().is_some_and(|t| t.contains(marker)))
        .expect("a block");
    eprintln!(
        "the appended file is system block {at} of {} ({} bytes)",
        blocks.len(),
        blocks[at].to_string().len()
    );
    // It is the end of the last block, which is cached (a 1 h breakpoint).
    assert_eq!(at, blocks.len() - 1);
    assert_eq!(
        blocks[at]["cache_control"]["type"], "ephemeral",
        "{}",
        blocks[at]
    );
    // The file changed while claude runs: this conversation keeps the
    // text of its first request (the system prompt snapshot).
    let changed = "PALIADIN-PROTOCOL-MARKER-77aa: the protocol changed.";
    std::fs::write(&file, format!("# protocol\n\n{changed}\n")).expect("protocol");
    let t = w.turn("sys", "second");
    t.code(0);
    let second = system_text(&only_call(&w, &t));
    assert!(second.contains(marker) && !second.contains(changed));
    // /clear: a new conversation, the same system prompt.
    w.keys("sys", &["/clear", "Enter"]);
    rec.wait_hooks(Duration::from_secs(20), "SessionStart from /clear", |h| {
        h.iter().any(|h| h["payload"]["source"] == "clear")
    });
    let t = w.turn("sys", "after clear");
    t.code(0);
    let call = only_call(&w, &t);
    // Nor a new one: claude read the file once, when it started.
    assert!(!system_text(&call).contains(changed));
    assert!(system_text(&call).contains(marker));
    let said = call.body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["role"] == "assistant")
        .count();
    assert_eq!(said, 0, "a new conversation after /clear");
    // /compact: the summary request and the turns after it carry it too.
    let before = w.mock.requests().len();
    w.keys("sys", &["/compact", "Enter"]);
    let (log, ok) = w.mock.wait_until(Duration::from_secs(30), |log| {
        log.len() > before && log[before..].iter().any(|r| r.answered_ms.is_some())
    });
    assert!(ok, "no compaction request: {}", w.mock.summary());
    for r in &log[before..] {
        print("compaction request", r);
        assert!(system_text(r).contains(marker), "{}", w.mock.summary());
    }
    w.wait_pane("sys", Duration::from_secs(30), "the compaction done", |p| {
        p.contains("Compacted")
    });
    let t = w.turn("sys", "after compaction");
    t.code(0);
    assert!(system_text(&only_call(&w, &t)).contains(marker));
    // A claude started again (the shim's reset) reads the new text.
    w.cli(false, &["reset", "--session", "sys"], None).code(0);
    let t = w.turn("sys", "after a restart");
    t.code(0);
    let after = system_text(&only_call(&w, &t));
    assert!(
        after.contains(changed) && !after.contains(marker),
        "{after}"
    );
}

#[test]
fn a_model_that_consults_the_skill_takes_two_requests_before_and_one_with_the_installers_policy() {
    let mut w = ClaudeEnv::new();
    w.remove_agent_args(&NEW_FLAGS);
    w.mock.set_consult_skill(true);
    let t = w.turn("skill", "what is two and two?");
    t.code(0);
    assert_eq!(
        t.response(),
        ClaudeEnv::echo("what is two and two?"),
        "{}",
        t.run
    );
    let calls = w.requests_for(&t);
    assert_eq!(calls.len(), 2, "{}", w.mock.summary());
    let asked = &calls[0].body;
    let skill = calls[1].body["messages"].to_string();
    assert!(
        skill.contains("paliadin: answer relayed messages"),
        "the skill's body reached the model: {}",
        &skill[skill.len().saturating_sub(3000)..]
    );
    print("consulting, first request", &calls[0]);
    print("consulting, second request", &calls[1]);
    assert!(asked["tools"].to_string().contains("\"Skill\""));
    // The installer's policy: offered only Read, with the protocol in the
    // system prompt: one request.
    let mut w = ClaudeEnv::new();
    w.mock.set_consult_skill(true);
    let t = w.turn("skill", "what is two and two?");
    t.code(0);
    let call = only_call(&w, &t);
    assert!(system_text(&call).contains(PROTOCOL));
    assert!(!call.body["tools"].to_string().contains("\"Skill\""));
    print(
        "protocol in the system prompt, --tools Read, first request",
        &call,
    );
    let t = w.turn("skill", "and three and three?");
    t.code(0);
    print(
        "protocol in the system prompt, --tools Read, warm request",
        &only_call(&w, &t),
    );
}
