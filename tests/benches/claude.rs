//! The real Claude Code (the pinned release `tests/run` caches) with the
//! mock Messages API answering at once, on a laptop set up by
//! `install/laptop.sh` ([`ClaudeEnv`]), beside the same claude driven by
//! hand in a pane of the same tmux server. Measured in one run:
//!
//! (1) model requests per turn (aim: 1): the mock's model calls whose
//!     prompt carries the turn's id, and every model call that arrived
//!     while the turn ran, over every warm and cold turn.
//! (2) cold turn: `reset`, then one `paliadin-shim run-turn`, timed; beside
//!     it claude alone doing the same work: a fresh tmux session running
//!     the agent's argv and environment as the shim started it (read from
//!     its `agent.json` and `/proc/<pid>/environ`), with the same hook
//!     events and timeouts but each hook a small script that leaves a file,
//!     timed from `new-session` to its `SessionStart` hook and
//!     `#{alternate_on}` = 1 (its input loop runs), then the same envelope
//!     typed as the shim types it, until its `Stop` hook. Aim: within
//!     0.5 s of claude alone.
//! (3) warm turn overhead: wall time minus the mock's own time for the
//!     turn's requests (arrival to the end of the answer), for `run-turn`
//!     on a warm session and for a warm claude typed into directly until
//!     its `Stop` hook; the difference is the shim's share. Each turn is
//!     also cut at the moments its hooks leave files (seen by inotify) and
//!     the mock's clock, so the shim's own parts show apart from claude's:
//!     start to typing, and the Stop hook's file to `run-turn`'s exit.
//!     Two claude turns alone differ by tens of ms on a loaded machine, so
//!     the per-round difference (rounds run in pairs) is printed too.
//!
//! Each side tears its claude down (untimed) after a cold round and waits
//! for the process to be gone, so no cold round shares the machine with an
//! idle claude of the other side. `PALIADIN_BENCH_N` sets the warm rounds;
//! the cold rounds are a quarter of them (at least 3).

mod common;

use common::*;
use paliadin_core::envelope;
use paliadin_shim::tmux::Tmux;
use paliadin_tests::claude::{claude_version, ClaudeEnv, ClaudeOptions};
use paliadin_tests::mock_api::Request;
use paliadin_tests::{b64, run, turn_id, Value};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fs::inotify;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

const MESSAGE: &str = "hello from the bench: what changed in the quarterly numbers?";
const SESSION: &str = "bench";
const COLD_AIM: Duration = Duration::from_millis(500);
const LIMIT: Duration = Duration::from_secs(60);
/// How often the direct side asks tmux for `#{alternate_on}`.
const SCREEN_POLL: Duration = Duration::from_millis(10);

/// One timed turn, on the bench's clock and on the mock's.
#[derive(Debug, Clone)]
struct TurnRec {
    /// The envelope's turn id.
    id: String,
    wall: Duration,
    /// The mock's clock when timing started and ended.
    t0_ms: f64,
    t1_ms: f64,
    /// Cold only: from the start to `SessionStart` and to the input loop.
    session_start: Option<Duration>,
    mounted: Option<Duration>,
    /// Warm only, from the start: when the turn was about to be typed, and
    /// when its UserPromptSubmit and Stop hooks had written their files.
    marks: BTreeMap<&'static str, Duration>,
}

/// An inotify watch on a directory whose files the hooks create.
struct Watch {
    fd: OwnedFd,
    dir: PathBuf,
}

impl Watch {
    fn new(dir: &Path) -> Watch {
        std::fs::create_dir_all(dir).expect("hook dir");
        let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
            .expect("inotify");
        inotify::add_watch(
            &fd,
            dir,
            inotify::WatchFlags::CREATE | inotify::WatchFlags::MOVED_TO,
        )
        .expect("watch");
        Watch {
            fd,
            dir: dir.to_path_buf(),
        }
    }

    /// How many `<event>.<pid>` files the hooks left.
    fn count(&self, event: &str) -> usize {
        let prefix = format!("{event}.");
        std::fs::read_dir(&self.dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                    .count()
            })
            .unwrap_or(0)
    }

    /// The names of the files the hooks left.
    fn names(&self) -> std::collections::BTreeSet<String> {
        std::fs::read_dir(&self.dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until `n` files of `event` exist; panics on `StopFailure`.
    fn until(&self, event: &str, n: usize) {
        self.until_seen(event, n, &mut BTreeMap::new());
    }

    /// [`Watch::until`], noting in `seen` when each file not in it yet
    /// was first seen.
    fn until_seen(&self, event: &str, n: usize, seen: &mut BTreeMap<String, Instant>) {
        let until = Instant::now() + LIMIT;
        loop {
            let now = Instant::now();
            for name in self.names() {
                seen.entry(name).or_insert(now);
            }
            if self.count(event) >= n {
                return;
            }
            assert_eq!(
                self.count("StopFailure"),
                0,
                "claude reported StopFailure in {}",
                self.dir.display()
            );
            assert!(
                Instant::now() < until,
                "no {event} hook #{n} in {}",
                self.dir.display()
            );
            let ts = Timespec {
                tv_sec: 0,
                tv_nsec: 200_000_000,
            };
            let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
            let _ = poll(&mut fds, Some(&ts));
            let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
            let mut r = inotify::Reader::new(&self.fd, &mut buf);
            while r.next().is_ok() {}
        }
    }
}

/// The shim's claude as it was started: argv, environment, workdir.
struct Agent {
    argv: Vec<String>,
    env: Vec<(String, String)>,
    workdir: PathBuf,
    /// The shim's hooks settings (`claude-settings.json`).
    hooks: Value,
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A `key = "value"` line of the installer's config.
fn config_path(config: &str, key: &str) -> PathBuf {
    let line = config
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no {key} in the shim config:\n{config}"));
    PathBuf::from(line.trim().trim_matches('"'))
}

fn state_dir(w: &ClaudeEnv) -> PathBuf {
    config_path(&w.shim_config(), "state_dir")
}

/// The shim's `agent.json` for the bench session.
fn agent_record(w: &ClaudeEnv) -> Value {
    let p = state_dir(w)
        .join("sessions")
        .join(SESSION)
        .join("agent.json");
    let t = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&t).expect("agent.json")
}

fn shim_agent_pid(w: &ClaudeEnv) -> i32 {
    agent_record(w)["pid"].as_i64().expect("pid") as i32
}

/// Reads how the shim started its claude.
fn agent_of(w: &ClaudeEnv) -> Agent {
    let rec = agent_record(w);
    let argv: Vec<String> = rec["argv"]
        .as_array()
        .expect("argv")
        .iter()
        .map(|a| a.as_str().expect("word").to_owned())
        .collect();
    let pid = rec["pid"].as_i64().expect("pid");
    let raw = std::fs::read(format!("/proc/{pid}/environ")).expect("the agent's environ");
    let env = raw
        .split(|&b| b == 0)
        .filter_map(|kv| {
            let kv = String::from_utf8_lossy(kv);
            let (k, v) = kv.split_once('=')?;
            (!k.starts_with("PALIADIN_") && k != "TMUX_PANE").then(|| (k.to_owned(), v.to_owned()))
        })
        .collect();
    let settings = state_dir(w).join("claude-settings.json");
    let hooks = serde_json::from_str(&std::fs::read_to_string(&settings).expect("settings"))
        .expect("settings json");
    Agent {
        argv,
        env,
        workdir: config_path(&w.shim_config(), "workdir"),
        hooks,
    }
}

/// tmux against the world's server, as the shim calls it.
/// The shim's own tmux wrapper, on the session's server.
fn shim_tmux(w: &ClaudeEnv) -> Tmux {
    Tmux::new(&w.env.socket, Instant::now() + LIMIT)
}

/// tmux as the shim runs it.
fn tmux(w: &ClaudeEnv) -> Command {
    shim_tmux(w).command()
}

fn tmux_out(w: &ClaudeEnv, args: &[&str]) -> String {
    run(tmux(w).args(args), None, Duration::from_secs(10)).ok()
}

/// Writes the direct claude's hook script and settings under `dir`: the
/// shim's events and timeouts, each hook leaving `<Event>.<pid>` (created
/// when the hook starts, then filled with its JSON).
fn direct_settings(agent: &Agent, dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).expect("dir");
    let script = dir.with_extension("hook");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nexec cat > {}/\"$1.$$\"\n",
            shell_quote(&dir.to_string_lossy())
        ),
    )
    .expect("hook script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut settings = agent.hooks.clone();
    let events: Vec<String> = settings["hooks"]
        .as_object()
        .expect("hooks")
        .keys()
        .cloned()
        .collect();
    assert!(events.iter().any(|e| e == "Stop"), "{settings}");
    for ev in events {
        for group in settings["hooks"][&ev].as_array_mut().expect("groups") {
            for h in group["hooks"].as_array_mut().expect("hooks") {
                h["command"] = format!("{} {ev}", shell_quote(&script.to_string_lossy())).into();
            }
        }
    }
    let path = dir.with_extension("json");
    std::fs::write(&path, settings.to_string()).expect("settings");
    path
}

/// Starts claude in a new session `name` of the world's server: the
/// shim's argv with `settings` in place of its own, its environment
/// (without PALIADIN_*), its workdir, the same pane size.
fn start_direct(w: &ClaudeEnv, agent: &Agent, name: &str, settings: &Path) {
    let mut argv = agent.argv.clone();
    let i = argv
        .iter()
        .position(|a| a == "--settings")
        .expect("--settings in the agent's argv");
    argv[i + 1] = settings.to_string_lossy().into_owned();
    let mut c = tmux(w);
    c.args([
        "new-session",
        "-d",
        "-s",
        name,
        "-x",
        "200",
        "-y",
        "50",
        "-c",
    ])
    .arg(&agent.workdir);
    for (k, v) in &agent.env {
        c.arg("-e").arg(format!("{k}={v}"));
    }
    c.args(["--", "env"]);
    for v in [
        "PALIADIN_SESSION",
        "PALIADIN_STATE_DIR",
        "ANTHROPIC_API_KEY",
        "CLAUDECODE",
        "SSH_ORIGINAL_COMMAND",
    ] {
        c.args(["-u", v]);
    }
    c.arg("--").args(&argv);
    run(&mut c, None, Duration::from_secs(10)).code(0);
}

/// Types an envelope into `name` with the shim's own `type_submit`: one
/// tmux call, head as keys, a pasted newline, the pasted body, Enter.
fn type_submit(w: &ClaudeEnv, name: &str, id: &str) {
    let uuid: uuid::Uuid = id.parse().expect("uuid");
    let head = envelope::head(&uuid, None);
    let body = envelope::body(MESSAGE);
    shim_tmux(w)
        .type_submit(name, &format!("bench-{id}"), &head, &body, true)
        .expect("type_submit");
}

fn alternate_on(w: &ClaudeEnv, name: &str) -> bool {
    tmux_out(
        w,
        &[
            "display-message",
            "-p",
            "-t",
            &format!("={name}:"),
            "#{alternate_on}",
        ],
    )
    .trim()
        == "1"
}

fn pane_pid(w: &ClaudeEnv, name: &str) -> i32 {
    tmux_out(
        w,
        &[
            "display-message",
            "-p",
            "-t",
            &format!("={name}:"),
            "#{pane_pid}",
        ],
    )
    .trim()
    .parse()
    .expect("pane pid")
}

/// CPU time so far of every thread of `pid`, in ns (`schedstat`).
fn cpu_ns(pid: i32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
                .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0)
}

/// Untimed, before each warm turn: waits until both claudes are quiet (less
/// than 2 ms of CPU in 50 ms; at most 1 s), so that what one claude still
/// does after its Stop hook (drawing, writing its transcript) does not land
/// in the other side's next turn. Without it the side that returns sooner
/// after Stop (claude alone, seen by the bench's own watch) hands more of
/// its claude's tail to the other.
fn settle(pids: &[i32]) -> Duration {
    let t = Instant::now();
    let mut last: Vec<u64> = pids.iter().map(|&p| cpu_ns(p)).collect();
    while t.elapsed() < Duration::from_secs(1) {
        std::thread::sleep(Duration::from_millis(50));
        let now: Vec<u64> = pids.iter().map(|&p| cpu_ns(p)).collect();
        let quiet = now
            .iter()
            .zip(&last)
            .all(|(a, b)| a.saturating_sub(*b) < 2_000_000);
        if quiet {
            break;
        }
        last = now;
    }
    t.elapsed()
}

/// Waits until process `pid` has exited (gone or a zombie).
fn wait_gone(pid: i32) {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return,
            Ok(s) if s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')) => return,
            Ok(_) => {}
        }
        assert!(Instant::now() < until, "claude {pid} did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn kill_direct(w: &ClaudeEnv, name: &str) {
    let pid = pane_pid(w, name);
    run(
        tmux(w).args(["kill-session", "-t", &format!("={name}")]),
        None,
        Duration::from_secs(10),
    )
    .code(0);
    wait_gone(pid);
}

/// One `run-turn` through the installed shim and its config.
fn shim_turn(w: &ClaudeEnv) -> TurnRec {
    let id = turn_id();
    let mut c = w.command(&w.shim_bin());
    c.arg("--config")
        .arg(&w.env.config)
        .args(["run-turn", SESSION, &id, &b64(MESSAGE)]);
    let turns = state_dir(w).join("sessions").join(SESSION).join("turns");
    let files = turns.is_dir().then(|| watch_turn_files(&turns, &id));
    let t0_ms = w.mock.now_ms();
    let t = Instant::now();
    let r = run(&mut c, None, LIMIT);
    let wall = t.elapsed();
    let t1_ms = w.mock.now_ms();
    let out = r.ok();
    assert!(out.contains("echo: "), "unexpected reply: {out:?}");
    let mut marks = BTreeMap::new();
    let seen = files
        .map(|h| h.join().expect("watcher"))
        .unwrap_or_default();
    for (k, file) in [
        ("typed", "typed"),
        ("UserPromptSubmit", "submitted"),
        ("Stop", "reply.md"),
    ] {
        if let Some(at) = seen.get(file) {
            marks.insert(k, at.saturating_duration_since(t));
        }
    }
    TurnRec {
        marks,
        id,
        wall,
        t0_ms,
        t1_ms,
        session_start: None,
        mounted: None,
    }
}

/// One turn typed into the warm direct pane, until its next Stop hook.
fn direct_turn(w: &ClaudeEnv, name: &str, watch: &Watch) -> TurnRec {
    let id = turn_id();
    let n = watch.count("Stop") + 1;
    let before = watch.names();
    let t0_ms = w.mock.now_ms();
    let t = Instant::now();
    let mut seen: BTreeMap<String, Instant> = before.iter().map(|b| (b.clone(), t)).collect();
    type_submit(w, name, &id);
    watch.until_seen("Stop", n, &mut seen);
    let wall = t.elapsed();
    let mut marks = BTreeMap::new();
    marks.insert("typed", Duration::ZERO);
    for (name, at) in &seen {
        for ev in ["UserPromptSubmit", "Stop"] {
            if !before.contains(name) && name.starts_with(&format!("{ev}.")) {
                marks.insert(ev, at.duration_since(t));
            }
        }
    }
    TurnRec {
        marks,
        id,
        wall,
        t0_ms,
        t1_ms: w.mock.now_ms(),
        session_start: None,
        mounted: None,
    }
}

/// Watches the shim's `turns/` directory for turn `id`'s directory (its
/// creation is the moment before the shim types: "typed"), then that
/// directory for the files the hooks leave (`submitted`, `reply.md`);
/// returns when each first appeared. Ends at `reply.md` or after [`LIMIT`].
fn watch_turn_files(turns: &Path, id: &str) -> std::thread::JoinHandle<BTreeMap<String, Instant>> {
    let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
        .expect("inotify");
    inotify::add_watch(&fd, turns, inotify::WatchFlags::CREATE).expect("watch turns");
    let dir = turns.join(id);
    let id = id.to_owned();
    std::thread::spawn(move || {
        let mut seen = BTreeMap::new();
        let until = Instant::now() + LIMIT;
        while !seen.contains_key("reply.md") && Instant::now() < until {
            let ts = Timespec {
                tv_sec: 0,
                tv_nsec: 100_000_000,
            };
            let mut fds = [PollFd::new(&fd, PollFlags::IN)];
            let _ = poll(&mut fds, Some(&ts));
            let now = Instant::now();
            let mut names = Vec::new();
            let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
            let mut r = inotify::Reader::new(&fd, &mut buf);
            while let Ok(ev) = r.next() {
                if let Some(n) = ev.file_name() {
                    names.push(n.to_string_lossy().into_owned());
                }
            }
            for n in names {
                if n == id {
                    if seen.insert("typed".to_owned(), now).is_none() {
                        let _ = inotify::add_watch(
                            &fd,
                            &dir,
                            inotify::WatchFlags::CREATE | inotify::WatchFlags::MOVED_TO,
                        );
                    }
                } else {
                    seen.entry(n).or_insert(now);
                }
            }
        }
        seen
    })
}

/// Since when a state file of the shim's session was last written,
/// counted from `t0`.
fn since(t0: SystemTime, file: &Path) -> Option<Duration> {
    let m = std::fs::metadata(file).ok()?.modified().ok()?;
    m.duration_since(t0).ok()
}

/// A cold `run-turn` (the session was reset before); afterwards the
/// session is reset again (untimed) and its claude awaited out.
fn shim_cold(w: &ClaudeEnv) -> TurnRec {
    let t0 = SystemTime::now();
    let mut r = shim_turn(w);
    let dir = state_dir(w).join("sessions").join(SESSION);
    r.session_start = since(t0, &dir.join("ready"));
    r.mounted = since(t0, &dir.join("mounted"));
    let pid = shim_agent_pid(w);
    w.shim(&["reset", SESSION], None).code(0);
    wait_gone(pid);
    r
}

/// claude alone, cold: a fresh pane to its input loop, then the same
/// envelope until Stop; the pane is killed afterwards (untimed).
fn direct_cold(w: &ClaudeEnv, agent: &Agent, k: usize) -> TurnRec {
    let name = format!("direct-cold-{k}");
    let dir = w.env.tmp.path().join("direct").join(&name);
    let settings = direct_settings(agent, &dir);
    let watch = Watch::new(&dir);
    let id = turn_id();
    let t0_ms = w.mock.now_ms();
    let t = Instant::now();
    start_direct(w, agent, &name, &settings);
    watch.until("SessionStart", 1);
    let session_start = t.elapsed();
    let until = Instant::now() + LIMIT;
    while !alternate_on(w, &name) {
        assert!(Instant::now() < until, "{name} never mounted");
        std::thread::sleep(SCREEN_POLL);
    }
    let mounted = t.elapsed();
    type_submit(w, &name, &id);
    watch.until("Stop", 1);
    let wall = t.elapsed();
    let t1_ms = w.mock.now_ms();
    kill_direct(w, &name);
    TurnRec {
        id,
        wall,
        t0_ms,
        t1_ms,
        session_start: Some(session_start),
        mounted: Some(mounted),
        marks: BTreeMap::new(),
    }
}

/// A turn's model calls, from the whole log.
fn calls_of<'a>(log: &'a [Request], r: &TurnRec) -> Vec<&'a Request> {
    log.iter()
        .filter(|q| q.is_model_call() && q.turn().as_deref() == Some(r.id.as_str()))
        .collect()
}

fn ms_dur(v: f64) -> Duration {
    Duration::from_secs_f64(v.max(0.0) / 1e3)
}

/// What the mock spent on a turn, and the time before its first request
/// and after its last answer.
struct Split {
    mock: Duration,
    overhead: Duration,
    before: Duration,
    after: Duration,
}

fn split(log: &[Request], r: &TurnRec) -> Split {
    let calls = calls_of(log, r);
    assert!(!calls.is_empty(), "no model call carried turn {}", r.id);
    let mock: f64 = calls.iter().filter_map(|c| c.answer_ms()).sum();
    let first = calls.iter().map(|c| c.arrived_ms).fold(f64::MAX, f64::min);
    let last = calls
        .iter()
        .filter_map(|c| c.answered_ms)
        .fold(0.0, f64::max);
    Split {
        mock: ms_dur(mock),
        overhead: r.wall.saturating_sub(ms_dur(mock)),
        before: ms_dur(first - r.t0_ms),
        after: ms_dur(r.t1_ms - last),
    }
}

/// `{1: 20}`: how many turns had how many calls.
fn distribution(counts: impl Iterator<Item = usize>) -> String {
    let mut d: BTreeMap<usize, usize> = BTreeMap::new();
    for c in counts {
        *d.entry(c).or_default() += 1;
    }
    let parts: Vec<String> = d
        .iter()
        .map(|(calls, turns)| {
            format!(
                "{calls} call{}: {turns} turns",
                if *calls == 1 { "" } else { "s" }
            )
        })
        .collect();
    parts.join(", ")
}

fn med(v: impl Iterator<Item = Duration>) -> Summary {
    summary(&v.collect::<Vec<_>>())
}

fn main() {
    require_bins(&["paliadin-shim", "paliadin-cli"]);
    let n = iterations(40);
    let warm = warmups(n);
    let n_cold = (n / 4).max(3);

    let w = ClaudeEnv::with(ClaudeOptions {
        wait_secs: 60,
        ..ClaudeOptions::default()
    });
    // The first turn starts the shim's claude: how it runs is what the
    // direct side copies.
    shim_turn(&w);
    let agent = agent_of(&w);
    let direct_dir = w.env.tmp.path().join("direct").join("warm");
    let settings = direct_settings(&agent, &direct_dir);
    let watch = Watch::new(&direct_dir);
    start_direct(&w, &agent, "direct-warm", &settings);
    watch.until("SessionStart", 1);
    while !alternate_on(&w, "direct-warm") {
        std::thread::sleep(SCREEN_POLL);
    }

    // (3) and (1): warm turns, interleaved.
    let shim_recs = RefCell::new(Vec::new());
    let direct_recs = RefCell::new(Vec::new());
    let pids = [shim_agent_pid(&w), pane_pid(&w, "direct-warm")];
    let settled = RefCell::new(Vec::new());
    let mut a = || {
        settled.borrow_mut().push(settle(&pids));
        let r = shim_turn(&w);
        let d = r.wall;
        shim_recs.borrow_mut().push(r);
        d
    };
    let mut b = || {
        settled.borrow_mut().push(settle(&pids));
        let r = direct_turn(&w, "direct-warm", &watch);
        let d = r.wall;
        direct_recs.borrow_mut().push(r);
        d
    };
    interleaved(warm, n, &mut [&mut a, &mut b]);
    let shim_warm: Vec<TurnRec> = shim_recs.take().split_off(warm);
    let direct_warm: Vec<TurnRec> = direct_recs.take().split_off(warm);
    assert_eq!(watch.count("StopFailure"), 0);

    // (2): cold turns, nothing else of claude running.
    kill_direct(&w, "direct-warm");
    let pid = shim_agent_pid(&w);
    w.shim(&["reset", SESSION], None).code(0);
    wait_gone(pid);
    let k = std::cell::Cell::new(0usize);
    let shim_c = RefCell::new(Vec::new());
    let direct_c = RefCell::new(Vec::new());
    let mut a = || {
        let r = shim_cold(&w);
        let d = r.wall;
        shim_c.borrow_mut().push(r);
        d
    };
    let mut b = || {
        k.set(k.get() + 1);
        let r = direct_cold(&w, &agent, k.get());
        let d = r.wall;
        direct_c.borrow_mut().push(r);
        d
    };
    interleaved(1, n_cold, &mut [&mut a, &mut b]);
    let shim_cold_r: Vec<TurnRec> = shim_c.take().split_off(1);
    let direct_cold_r: Vec<TurnRec> = direct_c.take().split_off(1);

    let log = w.mock.requests();
    // (1)
    let per_turn = |recs: &[TurnRec]| distribution(recs.iter().map(|r| calls_of(&log, r).len()));
    let in_window = |recs: &[TurnRec]| {
        distribution(recs.iter().map(|r| {
            log.iter()
                .filter(|q| q.is_model_call() && q.arrived_ms >= r.t0_ms && q.arrived_ms <= r.t1_ms)
                .count()
        }))
    };
    let all_one = shim_warm
        .iter()
        .chain(&shim_cold_r)
        .all(|r| calls_of(&log, r).len() == 1);
    let paths: std::collections::BTreeSet<&str> = log.iter().map(|q| q.path.as_str()).collect();

    println!(
        "claude bench: Claude Code {} against the mock API (answers at once), release binaries, installed by install/laptop.sh; {n} warm rounds after {warm} warm-up, {n_cold} cold rounds after 1, alternatives interleaved; every request path seen: {}",
        claude_version(),
        paths.into_iter().collect::<Vec<_>>().join(" ")
    );
    println!(
        "(1) model calls per turn (carrying the turn's id): run-turn warm {{{}}}, cold {{{}}} | claude alone warm {{{}}}, cold {{{}}} (aim: 1) {}",
        per_turn(&shim_warm),
        per_turn(&shim_cold_r),
        per_turn(&direct_warm),
        per_turn(&direct_cold_r),
        verdict(all_one)
    );
    println!(
        "(1) every model call that arrived during the turn: run-turn warm {{{}}}, cold {{{}}} | claude alone warm {{{}}}, cold {{{}}}",
        in_window(&shim_warm),
        in_window(&shim_cold_r),
        in_window(&direct_warm),
        in_window(&direct_cold_r),
    );

    // (2)
    let sc = med(shim_cold_r.iter().map(|r| r.wall));
    let dc = med(direct_cold_r.iter().map(|r| r.wall));
    let d_start = med(direct_cold_r.iter().filter_map(|r| r.mounted));
    let d_prompt = med(direct_cold_r
        .iter()
        .map(|r| r.wall.saturating_sub(r.mounted.unwrap_or_default())));
    println!(
        "(2) cold turn (reset, then run-turn)  {} | claude alone (fresh pane until its input loop runs, then the same envelope until Stop) {} | {} {} (aim: within {} ms) {}",
        med_p95(&sc),
        med_p95(&dc),
        diff_ms(sc.median, dc.median),
        ratio(sc.median, dc.median),
        COLD_AIM.as_millis(),
        verdict(sc.median.saturating_sub(dc.median) <= COLD_AIM)
    );
    println!(
        "(2) claude alone, cold: start-up to input loop (SessionStart + alternate_on) {} ; then one prompt until Stop {}",
        med_p95(&d_start),
        med_p95(&d_prompt)
    );
    let timeline = |recs: &[TurnRec]| {
        let ss = med(recs.iter().filter_map(|r| r.session_start)).median;
        let mo = med(recs.iter().filter_map(|r| r.mounted)).median;
        let sp: Vec<Split> = recs.iter().map(|r| split(&log, r)).collect();
        let req = med(recs.iter().zip(&sp).map(|(_, s)| s.before)).median;
        let after = med(sp.iter().map(|s| s.after)).median;
        let mock = med(sp.iter().map(|s| s.mock)).median;
        format!(
            "SessionStart {} · input loop {} · model request {} · mock {} · after the answer {}",
            ms(ss),
            ms(mo),
            ms(req),
            ms(mock),
            ms(after)
        )
    };
    println!(
        "(2) where the cold time goes (medians from the start): run-turn: {} | claude alone: {}",
        timeline(&shim_cold_r),
        timeline(&direct_cold_r)
    );

    // (3)
    let st = summary(&settled.take());
    println!(
        "(3) untimed, before each warm turn: both claudes quiet (< 2 ms CPU in 50 ms, at most 1 s) after {}",
        med_p95(&st)
    );
    let ss: Vec<Split> = shim_warm.iter().map(|r| split(&log, r)).collect();
    let ds: Vec<Split> = direct_warm.iter().map(|r| split(&log, r)).collect();
    let sw = med(shim_warm.iter().map(|r| r.wall));
    let dw = med(direct_warm.iter().map(|r| r.wall));
    let so = med(ss.iter().map(|s| s.overhead));
    let dov = med(ds.iter().map(|s| s.overhead));
    println!(
        "(3) warm run-turn  wall {} ; minus the mock's time: {} | claude alone (same typing, until Stop) wall {} ; minus the mock's time: {} | shim's share {}",
        med_p95(&sw),
        med_p95(&so),
        med_p95(&dw),
        med_p95(&dov),
        diff_ms(so.median, dov.median)
    );
    // Each turn cut at its moments: start, about to type, UserPromptSubmit
    // hook, model request, answer written, Stop hook, returned.
    const SEGMENTS: [&str; 6] = [
        "start to typing",
        "typing to UserPromptSubmit hook",
        "hook to model request",
        "mock",
        "answer to Stop hook",
        "Stop hook to returned",
    ];
    let segments = |recs: &[TurnRec], sp: &[Split]| -> Vec<Summary> {
        let rows: Vec<[Duration; 6]> = recs
            .iter()
            .zip(sp)
            .filter_map(|(r, s)| {
                let typed = *r.marks.get("typed")?;
                let ups = *r.marks.get("UserPromptSubmit")?;
                let stop = *r.marks.get("Stop")?;
                let answered = r.wall.saturating_sub(s.after);
                Some([
                    typed,
                    ups.saturating_sub(typed),
                    s.before.saturating_sub(ups),
                    s.mock,
                    stop.saturating_sub(answered),
                    r.wall.saturating_sub(stop),
                ])
            })
            .collect();
        (0..6).map(|k| med(rows.iter().map(|row| row[k]))).collect()
    };
    let sseg = segments(&shim_warm, &ss);
    let dseg = segments(&direct_warm, &ds);
    let cut: Vec<String> = SEGMENTS
        .iter()
        .zip(sseg.iter().zip(&dseg))
        .map(|(name, (a, b))| {
            format!(
                "{name} {} vs {} ({})",
                ms(a.median),
                ms(b.median),
                diff_ms(a.median, b.median)
            )
        })
        .collect();
    println!(
        "(3) where the warm time goes, medians per segment, run-turn vs claude alone: {}",
        cut.join(" · ")
    );
    // Rounds ran in pairs: the per-round difference is less exposed to a
    // machine whose load drifts.
    let paired: Vec<f64> = ss
        .iter()
        .zip(&ds)
        .map(|(a, b)| a.overhead.as_secs_f64() - b.overhead.as_secs_f64())
        .collect();
    let mut sorted = paired.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "(3) per-round difference of the two overheads (run-turn minus claude alone, same round): median {:+.2} ms, middle half {:+.2} .. {:+.2} ms",
        sorted[sorted.len() / 2] * 1e3,
        sorted[sorted.len() / 4] * 1e3,
        sorted[sorted.len() * 3 / 4] * 1e3
    );
    println!("run-turn is the installed shim with the installer's config (hooks on); claude alone runs the same argv, environment and workdir with the same hook events, each hook a script that leaves a file; a turn's mock time is the sum of its requests' arrival-to-answer times");
}
