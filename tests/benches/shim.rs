//! How much a warm `paliadin-shim run-turn` costs over the bare tmux typing
//! it cannot avoid, measured in one run on one tmux server:
//!
//! - floor: the shim's own typing (`Tmux::type_submit` of the shim's
//!   library: one chained tmux call, the head as keys, the body pasted,
//!   Enter) into a pane running `cat`: the typing alone.
//! - direct: the same call typing an envelope into a test agent pane (no
//!   hooks), timed until the agent's reply file appears (inotify): typing
//!   plus the agent's own reply time, with nothing of the shim.
//! - run-turn: the shim process as sshd's forced command runs it, against a
//!   warm session of the test agent (mode `reply`), until it exits with the
//!   reply; with the agent's hooks on (the default, each hook is a shim
//!   process the agent starts) and off.
//!
//! Overhead = run-turn median - direct median (= run-turn - floor - the
//! agent's own reply time). Aim: within 5 ms. `PALIADIN_BENCH_N` sets the
//! number of timed rounds.

mod common;

use common::*;
use paliadin_shim::tmux::Tmux;
use paliadin_tests::{b64, bin, run, turn_id, ShimSettings, TestEnv};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fs::inotify;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const MESSAGE: &str = "hello from the bench: what changed in the quarterly numbers?";
const SESSION: &str = "bench";
const FLOOR: &str = "bench-floor";
const DIRECT: &str = "bench-direct";
const DIRECT_HOOKS: &str = "bench-direct-hooks";
const AIM: Duration = Duration::from_millis(5);

/// The shim's own tmux wrapper, on the test's server.
fn shim_tmux(env: &TestEnv) -> Tmux {
    Tmux::new(&env.socket, Instant::now() + Duration::from_secs(3600))
}

/// tmux as the shim runs it.
fn tmux(env: &TestEnv) -> Command {
    shim_tmux(env).command()
}

/// The shim's own typing (its `type_submit`, one chained tmux call): the
/// envelope's head as keys, a pasted newline, the pasted body, Enter.
fn paste(env: &TestEnv, session: &str, id: &uuid::Uuid, reply_to: &Path) {
    let head = paliadin_core::envelope::head(id, Some(reply_to));
    let body = paliadin_core::envelope::body(MESSAGE);
    shim_tmux(env)
        .type_submit(session, &format!("bench-{id}"), &head, &body, true)
        .expect("type_submit");
}

fn new_session(env: &TestEnv, name: &str, argv: &[&str]) {
    let mut c = tmux(env);
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
    .arg(&env.workdir)
    .arg("--")
    .args(argv);
    run(&mut c, None, Duration::from_secs(10)).code(0);
}

fn await_screen(env: &TestEnv, name: &str, needle: &str) {
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        let mut c = tmux(env);
        c.args(["capture-pane", "-p", "-t", &format!("={name}:")]);
        if run(&mut c, None, Duration::from_secs(10))
            .out()
            .contains(needle)
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("pane {name} never showed {needle:?}");
}

/// An inotify watch on one directory, awaited until a file exists.
struct Watch(OwnedFd);

impl Watch {
    fn new(dir: &Path) -> Watch {
        let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
            .expect("inotify");
        inotify::add_watch(
            &fd,
            dir,
            inotify::WatchFlags::MOVED_TO | inotify::WatchFlags::CREATE,
        )
        .expect("watch");
        Watch(fd)
    }

    fn until_exists(&self, path: &Path) {
        let until = Instant::now() + Duration::from_secs(20);
        while !path.exists() {
            assert!(Instant::now() < until, "no reply file {}", path.display());
            let ts = Timespec {
                tv_sec: 1,
                tv_nsec: 0,
            };
            let mut fds = [PollFd::new(&self.0, PollFlags::IN)];
            let _ = poll(&mut fds, Some(&ts));
            let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
            let mut r = inotify::Reader::new(&self.0, &mut buf);
            while r.next().is_ok() {}
        }
    }
}

fn main() {
    require_bins(&["paliadin-shim", "paliadin-test-agent"]);
    let n = iterations(200);
    let warm = warmups(n);

    let env = TestEnv::new();
    let quiet = TestEnv::with(ShimSettings {
        agent_hooks: false,
        ..ShimSettings::default()
    });
    env.shim(&["health", SESSION]).code(0);
    quiet.shim(&["health", SESSION]).code(0);

    // The floor's pane and the direct agents' panes, on the shim's own server.
    new_session(&env, FLOOR, &["cat"]);
    let agent = bin("paliadin-test-agent").to_string_lossy().into_owned();
    let direct_log = env
        .tmp
        .path()
        .join("direct.jsonl")
        .to_string_lossy()
        .into_owned();
    // The settings file the shim gave its own agent: the same hook commands.
    // Outside a shim session (no PALIADIN_SESSION) the hook only starts and exits.
    let settings = env.state.join("claude-settings.json");
    assert!(settings.exists(), "no {}", settings.display());
    let settings = settings.to_string_lossy().into_owned();
    new_session(&env, DIRECT, &[&agent, "--log", &direct_log]);
    new_session(
        &env,
        DIRECT_HOOKS,
        &[&agent, "--log", &direct_log, "--settings", &settings],
    );
    await_screen(&env, DIRECT, "test-agent ready");
    await_screen(&env, DIRECT_HOOKS, "test-agent ready");
    let replies: PathBuf = env.tmp.path().join("direct-replies");
    std::fs::create_dir_all(&replies).expect("replies dir");
    let watch = Watch::new(&replies);

    let floor_id = uuid::Uuid::new_v4();
    let never = replies.join("never.md");
    let mut floor = || timed(|| paste(&env, FLOOR, &floor_id, &never));
    let k = std::cell::Cell::new(0usize);
    let direct_to = |pane: &str| {
        k.set(k.get() + 1);
        let id = uuid::Uuid::new_v4();
        let path = replies.join(format!("reply-{}.md", k.get()));
        timed(|| {
            paste(&env, pane, &id, &path);
            watch.until_exists(&path);
        })
    };
    let mut direct = || direct_to(DIRECT);
    let mut direct_hooks = || direct_to(DIRECT_HOOKS);
    let b = b64(MESSAGE);
    let turn = |e: &TestEnv| {
        let line = format!("run-turn {SESSION} {} {b}", turn_id());
        let mut out = String::new();
        let d = timed(|| out = e.shim_forced(&line, None).ok());
        assert!(out.starts_with(MESSAGE), "unexpected reply: {out:?}");
        d
    };
    let mut hooked = || turn(&env);
    let mut unhooked = || turn(&quiet);

    let r = interleaved(
        warm,
        n,
        &mut [
            &mut floor,
            &mut direct,
            &mut direct_hooks,
            &mut hooked,
            &mut unhooked,
        ],
    );
    let s: Vec<Summary> = r.iter().map(|v| summary(v)).collect();
    let (f, d, dh, h, u) = (s[0], s[1], s[2], s[3], s[4]);

    println!(
        "shim bench: {n} rounds after {warm} warm-up, alternatives interleaved, test agent mode `reply`, warm session (tmux {})",
        run(Command::new("tmux").arg("-V"), None, Duration::from_secs(5))
            .out()
            .trim()
            .trim_start_matches("tmux ")
    );
    println!(
        "tmux floor: the shim's type_submit (1 chained call: has-session;copy-mode -q;send-keys -l head;paste newline;load-buffer;paste-buffer;send-keys Enter) into `cat`  {}",
        med_p95(&f)
    );
    for (name, s) in [
        ("agent direct, no hooks: same call into a test agent, until its reply file", &d),
        ("agent direct, shim's hooks: same, the agent runs `sh -c 'exec paliadin-shim hook UserPromptSubmit'` first", &dh),
    ] {
        println!(
            "{name}  {} | tmux floor median {} | agent's own reply time {}",
            med_p95(s),
            ms(f.median),
            diff_ms(s.median, f.median)
        );
    }
    for (name, s, base, base_name) in [
        ("run-turn, hooks off", &u, &d, "agent direct, no hooks"),
        (
            "run-turn, hooks on (default)",
            &h,
            &dh,
            "agent direct, shim's hooks",
        ),
    ] {
        let over = s.median.saturating_sub(base.median);
        println!(
            "{name}  {} | tmux floor median {} ({} {}) | overhead {} over {base_name} (aim: within {} ms) {}",
            med_p95(s),
            ms(f.median),
            ratio(s.median, f.median),
            diff_ms(s.median, f.median),
            diff_ms(s.median, base.median),
            AIM.as_millis(),
            verdict(over <= AIM)
        );
    }
    println!("overhead = run-turn median - agent direct median = run-turn - floor - agent's own reply time: the shim process start, config, state files, lock, pane check, its wait, reply claim and print; with hooks on also the real hook's marker write (the direct agent's hook exits at once outside a session)");
}
