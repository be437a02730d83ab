//! What a turn sends the model (issue 13, a lighter turn): the real Claude
//! Code (the pinned release) against the mock, on two laptops set up by
//! `install/laptop.sh` in the same run, the installer's policy (`--tools
//! Read`, the protocol in the system prompt) beside the policy of before
//! (every tool offered, the protocol only in the skill: the two flags taken
//! out of the agent line). Rounds alternate between the two. Per round and
//! side: a first turn (after `reset`), a warm turn, and a turn for a model
//! that consults the skill first (mock directive `consult-skill`).
//!
//! Measured: the bytes of each request's JSON body and its tokens as the
//! mock estimates them (bytes / 4: the mock has no tokenizer, so these are
//! NOT real token counts), model requests per turn, and the time from the
//! shim's `submitted` event (the agent took the prompt) to the first
//! request's arrival at the mock. Aims: half the bytes per request, one
//! request per turn for any model. `PALIADIN_BENCH_N` sets the rounds (5).

mod common;

use common::*;
use paliadin_tests::claude::{claude_version, ClaudeEnv, ClaudeOptions, Turn};
use paliadin_tests::mock_api::Request;
use std::time::Duration;

const SESSION: &str = "shape";

/// One side's samples.
#[derive(Default)]
struct Side {
    first_bytes: Vec<usize>,
    warm_bytes: Vec<usize>,
    consult_requests: Vec<usize>,
    consult_bytes: Vec<usize>,
    first_latency: Vec<Duration>,
    warm_latency: Vec<Duration>,
    /// From a warm turn's `replied` event to its `usage` event: how much
    /// longer a stream's reply waits for what the turn cost.
    usage_gap: Vec<Duration>,
}

/// When the turn's `submitted` event was recorded, in Unix ms.
fn submitted_ms(t: &Turn) -> i64 {
    event_ms(t, "submitted")
}

/// When the turn's first event of `kind` was recorded, in Unix ms.
fn event_ms(t: &Turn, kind: &str) -> i64 {
    let at = t.json["events"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["kind"] == kind)
        .and_then(|e| e["at"].as_str())
        .unwrap_or_else(|| panic!("a {kind} event: {}", t.run));
    let (whole, frac) = at
        .trim_end_matches('Z')
        .split_once('.')
        .unwrap_or((at, "0"));
    paliadin_core::timefmt::parse_since(&format!("{whole}Z"), 0).expect("RFC 3339")
        + frac.parse::<i64>().unwrap_or(0)
}

/// The turn's model requests, at least one.
fn calls(w: &ClaudeEnv, t: &Turn) -> Vec<Request> {
    let calls = w.requests_for(t);
    assert!(!calls.is_empty(), "{}", w.mock.summary());
    calls
}

fn latency(w: &ClaudeEnv, t: &Turn, first: &Request) -> Duration {
    let ms = w.mock.unix_ms(first.arrived_ms) - submitted_ms(t) as f64;
    Duration::from_secs_f64(ms.max(0.0) / 1e3)
}

fn round(w: &mut ClaudeEnv, side: &mut Side, k: usize) {
    w.cli(false, &["reset", "--session", SESSION], None).code(0);
    let t = w.turn(SESSION, &format!("the first question of round {k}"));
    t.code(0);
    let c = calls(w, &t);
    side.first_bytes.push(c[0].body.to_string().len());
    side.first_latency.push(latency(w, &t, &c[0]));
    let t = w.turn(SESSION, &format!("a warm question of round {k}"));
    t.code(0);
    let c = calls(w, &t);
    side.warm_bytes.push(c[0].body.to_string().len());
    side.warm_latency.push(latency(w, &t, &c[0]));
    let gap = event_ms(&t, "usage") - event_ms(&t, "replied");
    side.usage_gap
        .push(Duration::from_millis(gap.max(0) as u64));
    w.mock.set_consult_skill(true);
    let t = w.turn(
        SESSION,
        &format!("a question for a careful model, round {k}"),
    );
    w.mock.set_consult_skill(false);
    t.code(0);
    let c = calls(w, &t);
    side.consult_requests.push(c.len());
    side.consult_bytes
        .extend(c.iter().map(|r| r.body.to_string().len()));
}

fn median(v: &[usize]) -> usize {
    let mut s = v.to_vec();
    s.sort_unstable();
    s[s.len() / 2]
}

fn bytes(label: &str, after: &[usize], before: &[usize]) -> bool {
    let (a, b) = (median(after), median(before));
    let ok = a * 2 <= b;
    println!(
        "{label}  median {a} bytes (~{} tokens, the mock's bytes/4 estimate) | before {b} bytes (~{} tokens) | {:+.0} % (aim: half) {}",
        a / 4,
        b / 4,
        (a as f64 / b as f64 - 1.0) * 100.0,
        verdict(ok)
    );
    ok
}

fn main() {
    require_bins(&["paliadin-shim", "paliadin-cli"]);
    let n = iterations(5);
    let opts = || ClaudeOptions {
        wait_secs: 60,
        ..ClaudeOptions::default()
    };
    let mut after_w = ClaudeEnv::with(opts());
    let mut before_w = ClaudeEnv::with(opts());
    before_w.remove_agent_args(&["--tools", "--append-system-prompt-file"]);
    let (mut after, mut before) = (Side::default(), Side::default());
    // One untimed round each: claude's first start on this machine.
    round(&mut after_w, &mut Side::default(), 0);
    round(&mut before_w, &mut Side::default(), 0);
    for k in 1..=n {
        round(&mut after_w, &mut after, k);
        round(&mut before_w, &mut before, k);
    }
    println!(
        "turn shape bench: Claude Code {} against the mock API, two laptops set up by install/laptop.sh; {n} rounds after 1, alternating: reset, a first turn, a warm turn, a turn whose model consults the skill; after = the installer's policy (--tools Read, --append-system-prompt-file), before = the same without those two flags",
        claude_version()
    );
    let b1 = bytes(
        "first turn's request",
        &after.first_bytes,
        &before.first_bytes,
    );
    let b2 = bytes("warm turn's request", &after.warm_bytes, &before.warm_bytes);
    let dist = |v: &[usize]| {
        let mut counts = std::collections::BTreeMap::new();
        for c in v {
            *counts.entry(*c).or_insert(0) += 1;
        }
        counts
            .iter()
            .map(|(c, k)| format!("{c} request(s): {k} turns"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let one = after.consult_requests.iter().all(|&c| c == 1);
    println!(
        "requests per turn, a model that consults the skill  {{{}}} | before {{{}}} (aim: 1) {}",
        dist(&after.consult_requests),
        dist(&before.consult_requests),
        verdict(one)
    );
    let per_turn = |s: &Side| s.consult_bytes.iter().sum::<usize>() / s.consult_requests.len();
    println!(
        "a consulting model's turn, all its requests  {} bytes a turn | before {} bytes a turn",
        per_turn(&after),
        per_turn(&before),
    );
    for (label, a, b) in [
        ("first turn", &after.first_latency, &before.first_latency),
        ("warm turn", &after.warm_latency, &before.warm_latency),
    ] {
        let (sa, sb) = (summary(a), summary(b));
        println!(
            "{label}: from the shim's submitted event to the request's arrival  {} | before {} | {}",
            med_p95(&sa),
            med_p95(&sb),
            diff_ms(sa.median, sb.median)
        );
    }
    let (ga, gb) = (summary(&after.usage_gap), summary(&before.usage_gap));
    println!(
        "warm turn: from the replied event to the usage event (a stream's reply waits that much more; run-turn's not at all)  {} | the other laptop {}",
        med_p95(&ga),
        med_p95(&gb)
    );
    if !(b1 && b2 && one) {
        std::process::exit(1);
    }
}
