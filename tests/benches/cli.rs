//! What `paliadin-cli` costs over the bare ssh round trip it cannot avoid,
//! measured in one run against a private sshd on loopback whose
//! authorized_keys forces the key into the shim (as on the laptop), warm
//! session of the test agent (mode `reply`). Every ssh session gets the
//! test's temp HOME (sshd's `SetEnv`), so the login shell sshd runs each
//! command through reads no `~/.bashrc` of this machine's: a clean shell,
//! the same on both sides of each comparison.
//!
//! (a) warm `turn` over a reused connection (mux; master up after a first
//!     call) beside bare reused ssh: `-- version` through the SAME master
//!     (forced into the shim's cheapest verb), and a truly bare `true`
//!     through a second private sshd whose authorized_keys line has no
//!     command= (its own master). Aim: within 10 ms of bare `true`. Also
//!     against the floor of a turn, bare reused `true` plus the tmux floor
//!     (the shim's own `Tmux::type_submit` into a pane running `cat`), per
//!     round: the shim's `run-turn` through the cli's master (aim: within
//!     3 ms; the rest is the shim and the test agent's reply with its
//!     hooks) and the cli's `turn`.
//! (b) the same with fresh connections (`--no-mux` / `ControlMaster=no`).
//! (c) a local turn (`--transport local --shim <bin>`) beside the bare shim
//!     `run-turn` process.
//! (d) `health` beside bare `ssh -- health <session>` through the same master.
//! (e) progress: a warm turn with its events (`run-turn-events`, read line by
//!     line) beside one without (`run-turn`), through the library's `Client`
//!     over the cli's reused master, in one process, interleaved; and the
//!     same two verbs as bare ssh through that master. Aim: within 5 ms.
//!     (`turn` in (a)-(c) streams its events too: the cli always does.)
//!
//! `PALIADIN_BENCH_N` sets the rounds of (a), (c), (d); (b) runs a third as
//! many (a fresh connection is ~50x slower).

mod common;

use common::*;
use paliadin_cli::ssh::SshConfig;
use paliadin_cli::store::Store;
use paliadin_cli::transport::Transport;
use paliadin_cli::{Client, TurnRequest};
use paliadin_core::SessionName;
use paliadin_shim::tmux::Tmux;
use paliadin_tests::{b64, bin, run, turn_id, Sshd, TestEnv};
use std::ffi::OsString;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const MESSAGE: &str = "hello from the bench: what changed in the quarterly numbers?";
const SESSION: &str = "bench";
const LIMIT: Duration = Duration::from_secs(60);
/// The pane running `cat` the tmux floor types into.
const FLOOR: &str = "bench-floor";

/// A private sshd whose sessions get `home` as HOME (a clean login shell);
/// `line` is its authorized_keys line, `{key}` standing for the client's key.
fn clean_sshd(dir: &Path, home: &Path, line: &str) -> Sshd {
    let auth = dir.with_extension("authorized_keys");
    std::fs::write(&auth, "").expect("authorized_keys");
    let sshd = Sshd::serve_with_env(dir, &auth, &[("HOME", home)]);
    let key = std::fs::read_to_string(sshd.client_key.with_extension("pub")).expect("client key");
    std::fs::write(&auth, format!("{}\n", line.replace("{key}", key.trim())))
        .expect("authorized_keys");
    sshd
}

/// Per-round sums of two alternatives measured in the same rounds.
fn sums(a: &[Duration], b: &[Duration]) -> Vec<Duration> {
    a.iter().zip(b).map(|(a, b)| *a + *b).collect()
}

/// ssh's options as paliadin-cli gives them (without its `-E` log), then
/// the mux options, destination, `--` and `args`.
fn ssh(sshd: &Sshd, control: Option<&Path>, args: &[&str]) -> Command {
    let mut c = Command::new("ssh");
    let kh: OsString = format!("UserKnownHostsFile={}", sshd.known_hosts.display()).into();
    c.args(["-F", "/dev/null", "-i"])
        .arg(&sshd.client_key)
        .args(["-p", &sshd.port.to_string()])
        .args(["-o", "IdentitiesOnly=yes", "-o"])
        .arg(kh)
        .args([
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=3",
            "-o",
            "ServerAliveInterval=10",
            "-o",
            "ServerAliveCountMax=3",
            "-T",
        ]);
    match control {
        Some(dir) => {
            let mut cp = OsString::from("ControlPath=");
            cp.push(dir.join("%C"));
            c.args(["-o", "ControlMaster=auto", "-o", "ControlPersist=60", "-o"])
                .arg(cp);
        }
        None => {
            c.args(["-o", "ControlMaster=no", "-o", "ControlPath=none"]);
        }
    }
    c.arg(format!("{}@127.0.0.1", sshd.user))
        .arg("--")
        .args(args);
    c
}

fn ok(c: &mut Command) -> Duration {
    let mut out = String::new();
    let d = timed(|| out = run(c, None, LIMIT).ok());
    std::hint::black_box(out);
    d
}

fn main() {
    require_bins(&["paliadin-cli", "paliadin-shim", "paliadin-test-agent"]);
    let n = iterations(60);
    let n_fresh = (n / 3).max(3);
    let warm = warmups(n);

    let env = TestEnv::new();
    // As TestEnv::sshd would start it, owned here: the laptop's forced command.
    let forced = format!(
        "restrict,command=\"{} --config {}\" {{key}}",
        bin("paliadin-shim").display(),
        env.config.display()
    );
    let sshd = &clean_sshd(&env.tmp.path().join("sshd"), &env.home, &forced);
    let (port, user, key, known_hosts) = (
        sshd.port,
        sshd.user.clone(),
        sshd.client_key.clone(),
        sshd.known_hosts.clone(),
    );
    // A short, known runtime dir: the cli's masters live in <run>/paliadin-ssh.
    let run_dir = env.tmp.path().join("run");
    paliadin_core::fsutil::private_dir(&run_dir).expect("run dir");
    let control = run_dir.join("paliadin-ssh");
    let bare_control = run_dir.join("bare");
    paliadin_core::fsutil::private_dir(&bare_control).expect("bare control dir");
    // The truly bare sshd: same config, no command= for its key.
    let bare = clean_sshd(&env.tmp.path().join("sshd-bare"), &env.home, "{key}");
    let db = env.tmp.path().join("turns.db");
    let shim = bin("paliadin-shim");

    let cli = |args: &[&str]| {
        let mut c = env.command(&bin("paliadin-cli"));
        c.env("XDG_RUNTIME_DIR", &run_dir)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--ssh-user", &user, "--key"])
            .arg(&key)
            .arg("--known-hosts")
            .arg(&known_hosts)
            .arg("--db")
            .arg(&db)
            .args(args);
        c
    };
    // Warm: the session's agent, the cli's master, the bare master, the log.
    run(&mut cli(&["health", "--session", SESSION]), None, LIMIT).code(0);
    ok(&mut ssh(&bare, Some(&bare_control), &["true"]));
    assert!(
        std::fs::read_dir(&control).map(|d| d.count()).unwrap_or(0) > 0,
        "no master socket in the cli's control dir"
    );

    let turn_args = ["turn", "--session", SESSION, MESSAGE];
    let mut mux_turn = || ok(&mut cli(&turn_args));
    let mut bare_true = || ok(&mut ssh(&bare, Some(&bare_control), &["true"]));
    let mut bare_version = || ok(&mut ssh(sshd, Some(&control), &["version"]));
    let shim_s = shim.to_string_lossy().into_owned();
    let mut local_turn = || {
        ok(&mut cli(&[
            "--transport",
            "local",
            "--shim",
            &shim_s,
            "turn",
            "--session",
            SESSION,
            MESSAGE,
        ]))
    };
    let b = b64(MESSAGE);
    let mut shim_turn = || {
        let mut c = env.command(&shim);
        c.arg("--config")
            .arg(&env.config)
            .args(["run-turn", SESSION, &turn_id(), &b]);
        ok(&mut c)
    };
    let mut health = || ok(&mut cli(&["health", "--session", SESSION]));
    let mut ssh_health = || ok(&mut ssh(sshd, Some(&control), &["health", SESSION]));
    let mut ssh_turn = || {
        ok(&mut ssh(
            sshd,
            Some(&control),
            &["run-turn", SESSION, &turn_id(), &b],
        ))
    };
    // The tmux floor, on the session's own tmux server.
    env.tmux(&[
        "new-session",
        "-d",
        "-s",
        FLOOR,
        "-x",
        "200",
        "-y",
        "50",
        "--",
        "cat",
    ])
    .code(0);
    let floor_id = uuid::Uuid::new_v4();
    let floor_head = paliadin_core::envelope::head(&floor_id, None);
    let floor_body = paliadin_core::envelope::body(MESSAGE);
    let mut tmux_floor = || {
        timed(|| {
            Tmux::new(&env.socket, Instant::now() + LIMIT)
                .type_submit(FLOOR, "bench-floor", &floor_head, &floor_body, true)
                .expect("type_submit");
        })
    };
    let r = interleaved(
        warm,
        n,
        &mut [
            &mut mux_turn,
            &mut bare_true,
            &mut bare_version,
            &mut local_turn,
            &mut shim_turn,
            &mut health,
            &mut ssh_health,
            &mut ssh_turn,
            &mut tmux_floor,
        ],
    );
    let s: Vec<Summary> = r.iter().map(|v| summary(v)).collect();
    let floor = summary(&sums(&r[1], &r[8]));

    let mut fresh_turn = || {
        ok(&mut cli(&[
            "--no-mux",
            "turn",
            "--session",
            SESSION,
            MESSAGE,
        ]))
    };
    let mut fresh_true = || ok(&mut ssh(&bare, None, &["true"]));
    let mut fresh_version = || ok(&mut ssh(sshd, None, &["version"]));
    let rf = interleaved(
        2,
        n_fresh,
        &mut [&mut fresh_turn, &mut fresh_true, &mut fresh_version],
    );
    let f: Vec<Summary> = rf.iter().map(|v| summary(v)).collect();

    // (e) With and without progress, the library over the cli's master.
    let logs = run_dir.join("paliadin-logs");
    paliadin_core::fsutil::private_dir(&logs).expect("log dir");
    let client = || {
        let mut cfg = SshConfig::new("127.0.0.1", &control, &logs);
        cfg.port = port;
        cfg.user = Some(user.clone());
        cfg.key = Some(key.clone());
        cfg.known_hosts = Some(known_hosts.clone());
        Client {
            transport: Transport::Ssh(cfg),
            store: Some(Store::open(&db).expect("turn log")),
            timeout: LIMIT,
            cancel: None,
        }
    };
    let req = TurnRequest {
        session: SessionName::new(SESSION).expect("session"),
        user_id: None,
        message: MESSAGE.into(),
        page_origin: None,
    };
    let (mut plain, mut streamed) = (client(), client());
    let mut events_seen = 0;
    let mut lib_plain = || {
        let mut r = None;
        let d = timed(|| r = Some(plain.turn(&req)));
        r.expect("result").unwrap_or_else(|f| panic!("{f}"));
        d
    };
    let mut lib_events = || {
        let mut r = None;
        let d = timed(|| {
            r = Some(streamed.turn_with_events(&req, &mut |e| {
                std::hint::black_box(e);
            }))
        });
        let t = r.expect("result").unwrap_or_else(|f| panic!("{f}"));
        events_seen += t.events.len();
        d
    };
    let mut ssh_plain = || {
        ok(&mut ssh(
            sshd,
            Some(&control),
            &["run-turn", SESSION, &turn_id(), &b],
        ))
    };
    let mut ssh_events = || {
        ok(&mut ssh(
            sshd,
            Some(&control),
            &["run-turn-events", SESSION, &turn_id(), &b],
        ))
    };
    let re = interleaved(
        warm,
        n,
        &mut [
            &mut lib_events,
            &mut lib_plain,
            &mut ssh_events,
            &mut ssh_plain,
        ],
    );
    let e: Vec<Summary> = re.iter().map(|v| summary(v)).collect();
    assert!(
        events_seen > 0,
        "the agent streamed no events: its hooks are off"
    );

    let ten = Duration::from_millis(10);
    let five = Duration::from_millis(5);
    let line = |name: &str, a: &Summary, base_name: &str, base: &Summary, aim: Duration| {
        println!(
            "{name}  {} | {base_name} {} | {} {} (aim: within {} ms) {}",
            med_p95(a),
            med_p95(base),
            diff_ms(a.median, base.median),
            ratio(a.median, base.median),
            aim.as_millis(),
            verdict(a.median.saturating_sub(base.median) <= aim)
        );
    };
    let info = |name: &str, a: &Summary, base_name: &str, base: &Summary| {
        println!(
            "{name}  {} | {base_name} {} | {} {}",
            med_p95(a),
            med_p95(base),
            diff_ms(a.median, base.median),
            ratio(a.median, base.median),
        );
    };
    println!(
        "cli bench: {n} rounds after {warm} warm-up ({n_fresh} for fresh connections), interleaved; sshd on 127.0.0.1 ({}); the forced command and the bare command both run through the login shell ({}) with the test's temp HOME (no ~/.bashrc)",
        run(Command::new("ssh").arg("-V"), None, LIMIT).stderr.trim(),
        std::env::var("SHELL").unwrap_or_else(|_| "its shell".into())
    );
    line(
        "(a) turn, reused connection",
        &s[0],
        "bare reused ssh `true` (own sshd, no command=)",
        &s[1],
        ten,
    );
    info(
        "(a) turn, reused connection",
        &s[0],
        "bare reused ssh `version` (same master, forced into the shim)",
        &s[2],
    );
    println!(
        "(a) turn over ssh - bare `version` - bare local shim run-turn (both same run) = the cli's own cost over ssh  {}",
        diff_ms(s[0].median.saturating_sub(s[2].median), s[4].median)
    );
    println!(
        "(a) floor of a turn, per round: bare reused ssh `true` {} + tmux floor (the shim's type_submit into `cat`) {} = {}",
        med_p95(&s[1]),
        med_p95(&s[8]),
        med_p95(&floor)
    );
    line(
        "(a) run-turn over reused ssh (the cli's master, forced into the shim)",
        &s[7],
        "floor",
        &floor,
        Duration::from_millis(3),
    );
    info("(a) turn, reused connection", &s[0], "floor", &floor);
    line(
        "(b) turn, fresh connection (--no-mux)",
        &f[0],
        "fresh bare ssh `true`",
        &f[1],
        ten,
    );
    info(
        "(b) turn, fresh connection (--no-mux)",
        &f[0],
        "fresh bare ssh `version`",
        &f[2],
    );
    line(
        "(c) turn, --transport local",
        &s[3],
        "bare `paliadin-shim run-turn` process",
        &s[4],
        five,
    );
    line(
        "(d) health, reused connection",
        &s[5],
        "bare reused ssh `health <session>` (same master)",
        &s[6],
        ten,
    );
    line(
        "(e) turn with progress (run-turn-events), Client over reused connection",
        &e[0],
        "without (run-turn), same master",
        &e[1],
        five,
    );
    info(
        "(e) bare reused ssh `run-turn-events`",
        &e[2],
        "bare reused ssh `run-turn`",
        &e[3],
    );
    // Rounds ran interleaved: the per-round difference is less exposed to a
    // machine whose load drifts.
    let per_round = |a: &[Duration], b: &[Duration]| {
        let mut d: Vec<f64> = a
            .iter()
            .zip(b)
            .map(|(a, b)| (a.as_secs_f64() - b.as_secs_f64()) * 1e3)
            .collect();
        d.sort_by(f64::total_cmp);
        format!(
            "median {:+.2} ms, middle half {:+.2} .. {:+.2} ms",
            d[d.len() / 2],
            d[d.len() / 4],
            d[d.len() * 3 / 4]
        )
    };
    println!(
        "(e) per-round difference, with progress minus without (same round): Client {}; bare ssh {}",
        per_round(&re[0], &re[1]),
        per_round(&re[2], &re[3])
    );
    println!("a turn includes the shim's run-turn and the test agent's reply (see the shim bench), the cli process and its two SQLite transactions; health includes the shim's health and the cli's probe row; (c)'s aim is ours: the cli's own cost over the shim");
    // The masters are children of ssh, not of this process: end them.
    for (s, dir) in [(sshd, &control), (&bare, &bare_control)] {
        let mut cp = OsString::from("ControlPath=");
        cp.push(dir.join("%C"));
        let mut c = Command::new("ssh");
        c.args(["-F", "/dev/null", "-p", &s.port.to_string(), "-o"])
            .arg(cp)
            .args(["-O", "exit", &format!("{}@127.0.0.1", s.user)]);
        let _ = run(&mut c, None, LIMIT);
    }
}
