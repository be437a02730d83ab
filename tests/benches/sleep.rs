//! Sleep and wake with the real Claude Code (the pinned release) against the
//! mock Messages API answering at once, on a laptop set up by
//! `install/laptop.sh` ([`ClaudeEnv`]), `idle_sleep_secs = 1`. Measured in
//! one run, rounds interleaved:
//!
//! (1) a woken session's first turn: a session with a few turns behind it,
//!     put to sleep by a request's sweep (untimed: idle past the second,
//!     then `sessions`), then one `paliadin-shim run-turn`, timed; beside it
//!     a cold one's: `reset`, then one `run-turn`. The difference is what a
//!     user notices after a sleep (aim: within 0.5 s of a cold start).
//! (2) what sleeping frees per session: the agent's own memory (pages no
//!     file backs, `status`'s `private_bytes`) and resident memory as the
//!     sweep recorded them when it stopped the agent (`freed`).
//! (3) what the sweep adds to a request that puts one agent to sleep: that
//!     `sessions` against a `sessions` with nothing to do.
//!
//! `PALIADIN_BENCH_N` sets the rounds (default 6).

mod common;

use common::*;
use paliadin_tests::claude::{claude_version, ClaudeEnv, ClaudeOptions};
use paliadin_tests::{b64, run, turn_id, Value};
use std::time::{Duration, Instant};

const SESSION: &str = "bench-sleep";
const LIMIT: Duration = Duration::from_secs(120);
/// A woken turn may take this much longer than a cold one.
const AIM: Duration = Duration::from_millis(500);

fn shim_turn(w: &ClaudeEnv, message: &str) -> Duration {
    let id = turn_id();
    let mut c = w.command(&w.shim_bin());
    c.arg("--config")
        .arg(&w.env.config)
        .args(["run-turn", SESSION, &id, &b64(message)]);
    let t = Instant::now();
    let r = run(&mut c, None, LIMIT);
    let d = t.elapsed();
    assert!(r.ok().contains("echo: "), "unexpected reply: {r}");
    d
}

fn status(w: &ClaudeEnv) -> Value {
    serde_json::from_str(&w.shim(&["status", SESSION], None).ok()).expect("status JSON")
}

/// Waits (untimed) until the agent has been idle past the configured
/// second, then times the `sessions` whose sweep puts it to sleep.
fn put_to_sleep(w: &ClaudeEnv) -> (Duration, Value) {
    std::thread::sleep(Duration::from_millis(1100));
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let t = Instant::now();
        w.shim(&["sessions"], None).code(0);
        let d = t.elapsed();
        let st = status(w);
        if st["state"] == "asleep" {
            return (d, st["freed"].clone());
        }
        assert!(Instant::now() < until, "never asleep: {st}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn mb(v: &Value) -> f64 {
    v.as_u64().unwrap_or(0) as f64 / 1e6
}

fn main() {
    require_bins(&["paliadin-shim", "paliadin-cli"]);
    let n = iterations(6);
    let w = ClaudeEnv::with(ClaudeOptions {
        wait_secs: 60,
        ..ClaudeOptions::default()
    });
    std::fs::write(
        &w.env.config,
        format!("{}idle_sleep_secs = 1\n", w.shim_config()),
    )
    .expect("config");
    // A few turns behind the session before each sleep.
    let history = |w: &ClaudeEnv| {
        for i in 0..3 {
            shim_turn(w, &format!("an earlier turn, number {i}"));
        }
    };
    let freed = std::cell::RefCell::new(Vec::new());
    let sweeps = std::cell::RefCell::new(Vec::new());
    let idle = std::cell::RefCell::new(Vec::new());
    let mut woken = || {
        history(&w);
        let (sweep, f) = put_to_sleep(&w);
        sweeps.borrow_mut().push(sweep);
        freed.borrow_mut().push(f);
        // Nothing to put to sleep now: the same request's bare cost.
        idle.borrow_mut().push(timed(|| {
            w.shim(&["sessions"], None).code(0);
        }));
        shim_turn(&w, "the first turn after a sleep")
    };
    let mut cold = || {
        history(&w);
        w.shim(&["reset", SESSION], None).code(0);
        shim_turn(&w, "the first turn after a reset")
    };
    let r = interleaved(1, n, &mut [&mut woken, &mut cold]);
    let (wk, cd) = (summary(&r[0]), summary(&r[1]));
    println!(
        "sleep bench: Claude Code {} against the mock API (answers at once), release binaries, installed by install/laptop.sh, idle_sleep_secs = 1; {n} rounds after 1, interleaved",
        claude_version()
    );
    println!(
        "(1) first turn, woken (--resume, 3 earlier turns) {} | cold (reset, --session-id) {} | {} ({}; aim within {} ms: {})",
        med_p95(&wk),
        med_p95(&cd),
        diff_ms(wk.median, cd.median),
        ratio(wk.median, cd.median),
        AIM.as_millis(),
        verdict(wk.median.saturating_sub(cd.median) <= AIM)
    );
    let f = freed.take();
    let mut own: Vec<f64> = f.iter().map(|v| mb(&v["private_bytes"])).collect();
    let mut rss: Vec<f64> = f.iter().map(|v| mb(&v["rss_bytes"])).collect();
    own.sort_by(f64::total_cmp);
    rss.sort_by(f64::total_cmp);
    println!(
        "(2) freed per sleeping session: own memory median {:.0} MB (min {:.0}, max {:.0}); resident median {:.0} MB (min {:.0}, max {:.0})",
        own[own.len() / 2],
        own[0],
        own[own.len() - 1],
        rss[rss.len() / 2],
        rss[0],
        rss[rss.len() - 1]
    );
    let (sw, id) = (summary(&sweeps.take()), summary(&idle.take()));
    println!(
        "(3) sessions that puts one agent to sleep {} | with nothing to sweep {} | {}",
        med_p95(&sw),
        med_p95(&id),
        diff_ms(sw.median, id.median)
    );
}
