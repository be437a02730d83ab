//! `paliadin-cli` end to end: a private sshd on loopback forcing the real
//! shim, the test agent in real tmux, a temp HOME and a real SQLite log.
//! Every command, every error code of PROTOCOL section 6 produced for real.

use paliadin_tests::{ShimSettings, TestEnv, Value};
use rusqlite::Connection;

fn json(r: &paliadin_tests::Run) -> Value {
    serde_json::from_str(r.out().trim()).unwrap_or_else(|e| panic!("not JSON ({e})\n{r}"))
}

fn row(env: &TestEnv, turn_id: &str) -> Value {
    let c = Connection::open(env.db()).unwrap();
    c.query_row(
        "SELECT status, error_code, response, message, session, duration_ms, tokens, chip_count, used_tools FROM turns WHERE turn_id = ?1",
        [turn_id],
        |r| {
            Ok(serde_json::json!({
                "status": r.get::<_, String>(0)?,
                "error_code": r.get::<_, Option<String>>(1)?,
                "response": r.get::<_, Option<String>>(2)?,
                "message": r.get::<_, String>(3)?,
                "session": r.get::<_, String>(4)?,
                "duration_ms": r.get::<_, Option<i64>>(5)?,
                "tokens": r.get::<_, Option<i64>>(6)?,
                "chip_count": r.get::<_, Option<i64>>(7)?,
                "used_tools": r.get::<_, Option<String>>(8)?,
            }))
        },
    )
    .unwrap_or_else(|e| panic!("no row for {turn_id}: {e}"))
}

/// Creates the turn log, migrated, as the first command that writes it would.
fn create_log(env: &TestEnv) {
    paliadin_cli::store::Store::open(&env.db()).unwrap();
}

fn count(env: &TestEnv, sql: &str) -> i64 {
    Connection::open(env.db())
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

/// The failed turn's JSON result and exit status, checked against the log.
fn failed_turn(env: &mut TestEnv, msg: &str, exit: i32, code: &str) -> Value {
    let r = env.cli(&["turn", "--json", "--session", "faults", msg]);
    r.code(exit);
    let v = json(&r);
    assert_eq!(v["error_code"], code, "{r}");
    let db = row(env, v["turn_id"].as_str().unwrap());
    assert_eq!(db["error_code"], code);
    v
}

#[test]
fn turn_over_ssh_prints_the_reply_and_logs_it() {
    let mut env = TestEnv::new();
    let msg = "Hello [Invoice 42](chip:invoice/42) and [B](chip:b/1)";
    let r = env.cli(&["turn", "--session", "ssh-one", msg]);
    assert_eq!(r.ok(), format!("{msg}\n"), "the body, trailer stripped");
    let r = env.cli(&[
        "turn",
        "--json",
        "--session",
        "ssh-one",
        "--page-origin",
        "/invoices",
        msg,
    ]);
    let v = json(&r);
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(v["response"], msg);
    assert_eq!(v["status"], "ok");
    assert_eq!(v["chip_count"], 2);
    // The test agent claims a tool in its trailer, but its hooks say it
    // used none: the record keeps both.
    assert_eq!(v["used_tools"], serde_json::json!([]));
    assert_eq!(v["claimed_tools"], serde_json::json!(["test-agent"]));
    assert_eq!(v["classifier_tag"], "test");
    assert_eq!(v["rows_seen"], 1);
    assert_eq!(v["estimated_tokens"], msg.chars().count().div_ceil(4));
    // The test agent writes no transcript: its usage was not measured,
    // and the record says so rather than estimate it.
    assert_eq!(v["usage"], Value::Null);
    assert_eq!(v["error_code"], Value::Null);
    let db = row(&env, v["turn_id"].as_str().unwrap());
    assert_eq!(db["status"], "ok");
    assert_eq!(db["response"], msg);
    assert_eq!(db["chip_count"], 2);
    assert!(db["duration_ms"].as_i64().unwrap() >= 0);
    assert_eq!(
        count(&env, "SELECT count(*) FROM turns WHERE status = 'ok'"),
        2
    );
}

#[test]
fn turn_events_streams_json_lines_and_the_log_keeps_them() {
    let mut env = TestEnv::new();
    let msg = "Hello [Invoice 42](chip:invoice/42)";
    let r = env.cli(&["turn", "--events", "--session", "ev", msg]);
    assert_eq!(r.code, 0, "{r}");
    let lines: Vec<Value> = String::from_utf8_lossy(&r.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l:?}\n{r}")))
        .collect();
    let kinds: Vec<&str> = lines.iter().map(|v| v["kind"].as_str().unwrap()).collect();
    // The test agent keeps no transcript of Claude Code's: its usage event
    // says "not measured".
    assert_eq!(kinds, ["submitted", "replied", "usage", "reply"], "{r}");
    assert!(lines[2]["detail"]
        .as_str()
        .is_some_and(|d| d.starts_with("not measured: ")));
    assert_eq!(lines[3]["usage"], Value::Null, "{r}");
    let last = lines.last().unwrap();
    assert_eq!(last["text"], msg, "the reply, trailer stripped");
    assert_eq!(last["status"], "ok");
    assert_eq!(last["chip_count"], 1);
    assert_eq!(last["used_tools"], serde_json::json!([]));
    assert_eq!(last["claimed_tools"], serde_json::json!(["test-agent"]));
    assert!(last.get("events").is_none(), "{last}");
    for v in &lines[..2] {
        assert!(v["at"].as_str().unwrap().ends_with('Z'), "{v}");
    }
    // The log keeps them, in order.
    let id = last["turn_id"].as_str().unwrap();
    let shown = env.cli(&["log", "show", id]).ok();
    let events = shown
        .split("--- events ---\n")
        .nth(1)
        .and_then(|s| s.split("--- message ---").next())
        .unwrap_or_else(|| panic!("no events in:\n{shown}"));
    let kinds: Vec<&str> = events
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(kinds, ["submitted", "replied", "usage"], "{shown}");
    assert!(shown.contains("usage:          not measured\n"), "{shown}");
    assert!(shown.contains("claimed tools:  test-agent\n"), "{shown}");
    let v = json(&env.cli(&["log", "show", "--json", id]));
    assert_eq!(v["events"][0]["kind"], "submitted");
    assert_eq!(v["events"].as_array().unwrap().len(), 3);
    assert_eq!(v["claimed_tools"], serde_json::json!(["test-agent"]));
    // A failed turn ends the stream with an error line and its exit status.
    let r = env.cli(&[
        "turn",
        "--events",
        "--session",
        "ev",
        "paliadin-test: failure\nhi",
    ]);
    r.code(76);
    let stdout = String::from_utf8_lossy(&r.stdout);
    let last: Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("{e}\n{r}"));
    assert_eq!(last["kind"], "error", "{r}");
    assert_eq!(last["error_code"], "agent_error", "{r}");
    assert!(last["error"].is_string(), "{r}");
}

#[test]
fn a_hookless_agent_answers_with_no_events() {
    let mut env = TestEnv::with(ShimSettings {
        agent_hooks: false,
        extra: "ready_pattern = \"test-agent ready\"".into(),
        ..Default::default()
    });
    let r = env.cli(&["turn", "--events", "--session", "quiet", "no hooks here"]);
    assert_eq!(r.code, 0, "{r}");
    let out = String::from_utf8_lossy(&r.stdout).into_owned();
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    assert_eq!(lines.len(), 1, "only the last line\n{r}");
    assert_eq!(lines[0]["kind"], "reply");
    assert_eq!(lines[0]["text"], "no hooks here");
    // No events: the claim is all there is.
    assert_eq!(lines[0]["used_tools"], serde_json::json!(["test-agent"]));
    let v = json(&env.cli(&[
        "log",
        "show",
        "--json",
        lines[0]["turn_id"].as_str().unwrap(),
    ]));
    assert_eq!(v["events"], serde_json::json!([]));
}

#[test]
fn user_sessions_stdin_and_large_messages() {
    let mut env = TestEnv::new();
    let user = "0123abcd-1111-4222-8333-444455556666";
    let v = json(&env.cli(&["turn", "--json", "--user", user, "who am i"]));
    assert_eq!(v["session"], "paliad-paliadin-0123abcd");
    let v = json(&env.cli(&[
        "turn",
        "--json",
        "--session-prefix",
        "team",
        "--user",
        user,
        "and now?",
    ]));
    assert_eq!(v["session"], "team-0123abcd");
    let mine = env.cli(&["log", "--jsonl", "--user", user]).ok();
    assert_eq!(
        mine.lines().count(),
        2,
        "both turns are this user's\n{mine}"
    );
    let r = env.cli_in(
        true,
        &["turn", "--session", "pipe"],
        Some(b"from stdin\nsecond line"),
    );
    assert_eq!(r.ok(), "from stdin\nsecond line\n");
    let r = env.cli_in(
        true,
        &["turn", "--session", "pipe", "-"],
        Some("dash means stdin".as_bytes()),
    );
    assert_eq!(r.ok(), "dash means stdin\n");
    let line = "Lorem ipsum dolor sit amet, ünïcödé — 0123456789\n";
    let kib60 = line.repeat(60 * 1024 / line.len());
    let r = env.cli(&["turn", "--session", "big", &kib60]);
    assert_eq!(r.ok(), format!("{}\n", kib60.trim_end()));
    let mib1 = line.repeat(1024 * 1024 / line.len());
    let r = env.cli_in(true, &["turn", "--session", "big"], Some(mib1.as_bytes()));
    assert_eq!(
        r.ok(),
        format!("{}\n", mib1.trim_end()),
        "over the argument limit, sent on stdin"
    );
    // Too large for the shim: invalid_input, exit 2, logged.
    let over = vec![b'x'; 1024 * 1024 + 1];
    let r = env.cli_in(true, &["turn", "--json", "--session", "big"], Some(&over));
    r.code(2);
    assert_eq!(json(&r)["error_code"], "invalid_input");
    // An empty message is refused before anything is sent or logged.
    let before = count(&env, "SELECT count(*) FROM turns");
    env.cli_in(true, &["turn", "--session", "big"], Some(b"  \n"))
        .code(2);
    assert_eq!(count(&env, "SELECT count(*) FROM turns"), before);
}

#[test]
fn health_reset_status_sessions() {
    let mut env = TestEnv::new();
    let r = env.cli(&["health", "--session", "probe"]);
    let line = r.ok();
    assert!(
        line.starts_with("OK paliadin 127.0.0.1 session probe ") && line.contains(" ms | time="),
        "{r}"
    );
    assert!(line.ends_with("s\n") && line.lines().count() == 1, "{r}");
    let v = json(&env.cli(&["health", "--json", "--session", "probe"]));
    assert_eq!(v["ok"], true);
    assert_eq!(count(&env, "SELECT count(*) FROM probes WHERE ok = 1"), 2);
    let v = json(&env.cli(&["status", "--json", "--session", "probe"]));
    assert_eq!(v["alive"], true);
    assert!(env
        .cli(&["status", "--session", "probe"])
        .ok()
        .contains("alive:         yes"));
    let r = env.cli(&["sessions", "--json"]);
    let all: Vec<Value> = r
        .ok()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(all.len(), 1);
    assert!(env.cli(&["sessions"]).ok().contains("probe"));
    assert_eq!(
        env.cli(&["reset", "--session", "probe"]).ok(),
        "reset probe\n"
    );
    assert_eq!(
        json(&env.cli(&["status", "--json", "--session", "probe"]))["exists"],
        false
    );
    // A turn after reset starts afresh.
    assert_eq!(
        env.cli(&["turn", "--session", "probe", "back"]).ok(),
        "back\n"
    );
}

#[test]
fn unreachable_and_auth_failures_are_classified() {
    let mut env = TestEnv::new();
    // Closed port: unreachable, for turns and for health.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let base = env.cli_args(true);
    let port = env.sshd().port;
    let client_key = env.sshd().client_key.clone();
    let set = |flag: &str, value: &str, mux: bool| {
        let mut a = base.clone();
        let pos = a.iter().position(|x| x == flag).unwrap();
        a[pos + 1] = value.to_owned();
        if !mux {
            a.push("--no-mux".into());
        }
        a
    };
    let run = |extra: &[&str], a: &[String]| {
        let mut c = env.command(&paliadin_tests::bin("paliadin-cli"));
        c.args(a).args(extra);
        paliadin_tests::run(&mut c, None, std::time::Duration::from_secs(60))
    };
    let a = set("--port", &closed, true);
    let r = run(&["turn", "--json", "--session", "x", "hi"], &a);
    r.code(68);
    assert_eq!(json(&r)["error_code"], "unreachable");
    let r = run(&["health", "--session", "x"], &a);
    r.code(2);
    assert!(
        r.out()
            .starts_with("CRITICAL paliadin 127.0.0.1 session x unreachable: "),
        "{r}"
    );

    // Wrong key: auth_failed.
    let wrong = env.tmp.path().join("wrong_key");
    paliadin_tests::run(
        std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&wrong),
        None,
        std::time::Duration::from_secs(10),
    )
    .code(0);
    let a = set("--key", &wrong.to_string_lossy(), false);
    let r = run(&["turn", "--json", "--session", "x", "hi"], &a);
    r.code(77);
    let v = json(&r);
    assert_eq!(v["error_code"], "auth_failed");
    // It says which side is wrong and what to type.
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("the laptop refused this server's key"),
        "{r}"
    );
    assert!(
        v["hint"]
            .as_str()
            .unwrap()
            .contains("install/laptop.sh --pubkey"),
        "{r}"
    );
    assert!(
        r.stderr.trim_end().ends_with("run paliadin-cli doctor"),
        "{r}"
    );

    // A key file others can read: ssh ignores it, and the fix is here.
    let open_key = env.tmp.path().join("open_key");
    std::fs::copy(&client_key, &open_key).unwrap();
    std::fs::set_permissions(
        &open_key,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let a = set("--key", &open_key.to_string_lossy(), false);
    let r = run(&["turn", "--json", "--session", "x", "hi"], &a);
    r.code(77);
    let v = json(&r);
    assert!(v["error"].as_str().unwrap().contains("mode 0644"), "{r}");
    assert_eq!(
        v["hint"],
        format!("chmod 600 {}; run paliadin-cli doctor", open_key.display()),
        "{r}"
    );

    // Wrong host key pinned: auth_failed.
    let other_hosts = env.tmp.path().join("other_known_hosts");
    let pubkey = std::fs::read_to_string(wrong.with_extension("pub")).unwrap();
    let f: Vec<&str> = pubkey.split_whitespace().collect();
    std::fs::write(
        &other_hosts,
        format!("[127.0.0.1]:{port} {} {}\n", f[0], f[1]),
    )
    .unwrap();
    let a = set("--known-hosts", &other_hosts.to_string_lossy(), false);
    let r = run(&["turn", "--json", "--session", "x", "hi"], &a);
    r.code(77);
    let v = json(&r);
    assert_eq!(v["error_code"], "auth_failed");
    // The fix is the server's pinned host key, as install/server.sh says it.
    let keygen = format!(
        "ssh-keygen -R '[127.0.0.1]:{port}' -f {}",
        other_hosts.display()
    );
    assert!(v["hint"].as_str().unwrap().contains(&keygen), "{r}");
    let r = run(&["doctor"], &a);
    r.code(1);
    assert!(
        r.out().contains("FAIL  shim") && r.out().contains(&keygen),
        "{r}"
    );
    assert!(
        !r.out().contains("authorized_keys"),
        "not the laptop's side\n{r}"
    );
    let r = run(&["health", "--session", "x"], &a);
    assert!(r.out().contains(" auth_failed: "), "{r}");
    // Every failed turn left a complete row.
    assert_eq!(
        count(
            &env,
            "SELECT count(*) FROM turns WHERE status = 'error' AND ended_ms IS NOT NULL"
        ),
        4
    );
    assert_eq!(count(&env, "SELECT count(*) FROM probes WHERE ok = 0"), 2);
}

#[test]
fn agent_faults_are_classified_and_a_timeout_is_collected_by_poll() {
    let mut env = TestEnv::with(ShimSettings {
        wait_secs: 3,
        ..Default::default()
    });
    failed_turn(
        &mut env,
        "paliadin-test: permission\nrm -rf?",
        75,
        "blocked",
    );
    env.cli(&["reset", "--session", "faults"]).ok();
    failed_turn(&mut env, "paliadin-test: failure\nhi", 76, "agent_error");
    failed_turn(
        &mut env,
        "paliadin-test: crash\nhi",
        69,
        "agent_unavailable",
    );
    let v = failed_turn(
        &mut env,
        "paliadin-test: slow:5000\nlate but sure",
        124,
        "timeout",
    );
    let id = v["turn_id"].as_str().unwrap().to_owned();
    assert_eq!(row(&env, &id)["status"], "pending");
    // Not there yet: poll says the turn still runs and leaves the row as it
    // was, its duration too.
    let before = row(&env, &id);
    let r = env.cli(&["poll", &id[..8]]);
    if r.code == 124 {
        assert!(r.stderr.contains("still running on the laptop"), "{r}");
        assert!(!r.stderr.contains("failed"), "{r}");
        assert_eq!(row(&env, &id), before);
        // --wait asks again until the reply is there.
        let r = env.cli(&["poll", "--json", "--wait=30", &id]);
        assert_eq!(
            json(&r)["response"],
            "paliadin-test: slow:5000\nlate but sure",
            "{r}"
        );
        r.code(0);
    } else {
        assert_eq!(r.ok(), "paliadin-test: slow:5000\nlate but sure\n");
    }
    let db = row(&env, &id);
    assert_eq!(db["status"], "ok");
    assert_eq!(db["response"], "paliadin-test: slow:5000\nlate but sure");
    // It kept the time it ran (its end is its `replied` event, which it
    // kept too), not the time until it was polled.
    let shown = json(&env.cli(&["log", "show", "--json", &id]));
    let events = shown["events"].as_array().unwrap();
    let replied = events
        .iter()
        .find(|e| e["kind"] == "replied")
        .unwrap_or_else(|| panic!("no replied event: {shown}"));
    assert_eq!(shown["ended"], replied["at"], "{shown}");
    assert_eq!(
        events.iter().filter(|e| e["kind"] == "submitted").count(),
        1,
        "{shown}"
    );
    // A second poll answers from the log: the reply is not lost.
    assert_eq!(
        env.cli(&["poll", &id]).ok(),
        "paliadin-test: slow:5000\nlate but sure\n"
    );
    assert_eq!(row(&env, &id)["status"], "ok");
}

#[test]
fn a_silent_agent_times_out_and_the_client_has_its_own_deadline() {
    let mut env = TestEnv::with(ShimSettings {
        wait_secs: 2,
        ..Default::default()
    });
    failed_turn(&mut env, "paliadin-test: silent\nanyone?", 124, "timeout");
    // The client's own deadline, shorter than the shim's wait.
    env.write_config(&ShimSettings {
        wait_secs: 30,
        ..Default::default()
    });
    let r = env.cli(&[
        "turn",
        "--json",
        "--timeout",
        "2",
        "--session",
        "faults2",
        "paliadin-test: silent\nstill?",
    ]);
    r.code(124);
    assert_eq!(json(&r)["error_code"], "timeout");
    assert_eq!(
        row(&env, json(&r)["turn_id"].as_str().unwrap())["status"],
        "pending"
    );
}

#[test]
fn an_interrupt_stops_the_turn_and_the_row_says_so() {
    let mut env = TestEnv::new();
    env.cli(&["health", "--session", "intr"]).ok();
    let mut c = env.command(&paliadin_tests::bin("paliadin-cli"));
    c.args(env.cli_args(true)).args([
        "turn",
        "--json",
        "--session",
        "intr",
        "paliadin-test: silent\nwait for me",
    ]);
    c.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = c.spawn().unwrap();
    // Await the submission reaching the agent, then interrupt.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while env.prompts().is_empty() {
        assert!(
            std::time::Instant::now() < until,
            "the turn never reached the agent"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error_code"], "interrupted");
    let db = row(&env, v["turn_id"].as_str().unwrap());
    assert_eq!(db["status"], "error");
    assert_eq!(db["error_code"], "interrupted");
}

/// Issue 8, item 3: sshd gone mid-turn (the request went out over a reused
/// connection) is `connection_lost`, exit 71, the row stays `pending`, and
/// the reply the laptop produced is collected by `poll` afterwards.
#[test]
fn a_connection_lost_mid_turn_stays_pending_and_poll_collects_it() {
    let mut env = TestEnv::new();
    env.cli(&["health", "--session", "lost"]).ok();
    let mut c = env.command(&paliadin_tests::bin("paliadin-cli"));
    let msg = "paliadin-test: slow:5000\nstill here";
    c.args(env.cli_args(true))
        .args(["turn", "--json", "--session", "lost", msg]);
    c.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = c.spawn().unwrap();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while env.prompts().is_empty() {
        assert!(
            std::time::Instant::now() < until,
            "the turn never reached the agent"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    env.sshd().kill_with_sessions();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(71), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = v["turn_id"].as_str().unwrap().to_owned();
    assert_eq!(v["error_code"], "connection_lost", "{v}");
    assert_eq!(
        v["turn"]["status"], "pending",
        "the record is in the error object: {v}"
    );
    let hint = format!("paliadin-cli poll {id}");
    assert!(v["hint"].as_str().unwrap().contains(&hint), "{v}");
    assert_eq!(stderr.matches(&hint).count(), 1, "one hint, once: {stderr}");
    assert!(stderr.contains(&hint), "{stderr}");
    let db = row(&env, &id);
    assert_eq!(
        (db["status"].as_str(), db["error_code"].as_str()),
        (Some("pending"), Some("connection_lost"))
    );
    // The laptop went on: its reply is collected (here by the local shim,
    // since this laptop's sshd is gone) and the row becomes `ok`.
    let r = env.cli_in(false, &["poll", "--json", "--wait=30", &id], None);
    assert_eq!(json(&r)["response"], msg, "{r}");
    r.code(0);
    assert_eq!(row(&env, &id)["status"], "ok");
}

/// Starts `turn msg` over ssh, awaits its message reaching the agent, then
/// kills the client with SIGKILL and awaits the exit of its ssh (which
/// drains the reply into a pipe no one reads). Returns the turn id of its
/// row, left `running`.
fn kill_client_mid_turn(env: &mut TestEnv, session: &str, msg: &str) -> String {
    use rustix::event::{poll, PollFd, PollFlags};
    use rustix::process::{kill_process, pidfd_open, Pid, PidfdFlags, Signal};
    let seen = env.prompts().len();
    let mut c = env.command(&paliadin_tests::bin("paliadin-cli"));
    c.args(env.cli_args(true))
        .args(["turn", "--json", "--session", session, msg]);
    c.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = c.spawn().unwrap();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while env.prompts().len() == seen {
        assert!(
            std::time::Instant::now() < until,
            "the turn never reached the agent"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Its ssh, a direct child: awaited through a pidfd, since it is not ours.
    let pid = child.id();
    let children: Vec<Pid> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .flat_map(|t| {
            std::fs::read_to_string(t.path().join("children"))
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|p| p.parse().ok().and_then(Pid::from_raw))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(!children.is_empty(), "no ssh under the client");
    let fds: Vec<_> = children
        .iter()
        .filter_map(|p| pidfd_open(*p, PidfdFlags::empty()).ok())
        .collect();
    kill_process(Pid::from_raw(pid as i32).unwrap(), Signal::KILL).unwrap();
    child.wait().unwrap();
    for fd in &fds {
        let mut p = [PollFd::new(fd, PollFlags::IN)];
        let ts = rustix::event::Timespec {
            tv_sec: 60,
            tv_nsec: 0,
        };
        assert_eq!(poll(&mut p, Some(&ts)).unwrap(), 1, "ssh did not end");
    }
    let id: String = Connection::open(env.db())
        .unwrap()
        .query_row("SELECT turn_id FROM turns WHERE message = ?1", [msg], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(row(env, &id)["status"], "running");
    id
}

/// Issue 8, item 2: `kill -9` of `paliadin-cli turn` mid-turn leaves a
/// `running` row; the next run of the client completes it with the reply
/// the laptop produced, and so does `poll --stale` on demand.
#[test]
fn a_client_killed_mid_turn_is_completed_by_the_next_run_and_poll_stale() {
    let mut env = TestEnv::new();
    env.cli(&["health", "--session", "killed"]).ok();
    let first = "paliadin-test: slow:3000\nkilled once";
    let id = kill_client_mid_turn(&mut env, "killed", first);
    // The next run (any command that logs) completes it first.
    let r = env.cli(&["health", "--session", "killed"]);
    r.code(0);
    assert!(
        r.stderr.contains(&format!(
            "turn {id}, left running by a client that is gone: completed"
        )),
        "{r}"
    );
    let db = row(&env, &id);
    assert_eq!(
        (db["status"].as_str(), db["response"].as_str()),
        (Some("ok"), Some(first))
    );
    // On demand, with the log's own row for the answer.
    let second = "paliadin-test: slow:3000\nkilled twice";
    let id = kill_client_mid_turn(&mut env, "killed", second);
    let r = env.cli(&["poll", "--stale", "--json", "--wait=30"]);
    r.code(0);
    let all = json(&r);
    assert_eq!(all.as_array().map(Vec::len), Some(1), "{r}");
    let v = &all[0];
    assert_eq!(
        (v["turn_id"].as_str(), v["status"].as_str()),
        (Some(id.as_str()), Some("ok")),
        "{r}"
    );
    assert_eq!(v["response"], second);
    assert_eq!(row(&env, &id)["status"], "ok");
    // Nothing stale is left: nothing to say, and no call made.
    let r = env.cli(&["poll", "--stale"]);
    assert_eq!((r.code, r.out().as_str()), (0, ""), "{r}");
}

#[test]
fn eight_processes_twenty_five_turns_each_lose_no_row() {
    let mut env = TestEnv::new();
    let args = env.cli_args(true);
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|p| {
                let env = &env;
                let args = &args;
                s.spawn(move || {
                    for t in 0..25 {
                        let mut c = env.command(&paliadin_tests::bin("paliadin-cli"));
                        let msg = format!("process {p} turn {t}");
                        c.args(args)
                            .args(["turn", "--session", &format!("load-{p}"), &msg]);
                        let r =
                            paliadin_tests::run(&mut c, None, std::time::Duration::from_secs(120));
                        assert_eq!(r.ok(), format!("{msg}\n"));
                        assert!(r.stderr.is_empty(), "no warning: {r}");
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    });
    assert_eq!(count(&env, "SELECT count(*) FROM turns"), 200);
    assert_eq!(
        count(
            &env,
            "SELECT count(*) FROM turns WHERE status = 'ok' AND response = message"
        ),
        200
    );
    assert_eq!(
        count(&env, "SELECT count(DISTINCT message) FROM turns"),
        200
    );
}

#[test]
fn log_commands_filters_search_stats_prune() {
    let mut env = TestEnv::new();
    let msgs = [
        "alpha beta",
        "Grüße aus Köln",
        "quote \" and - dash AND * star",
        "paliadin-test: failure\nbroken",
    ];
    for m in msgs {
        env.cli_in(false, &["turn", "--session", "logs", m], None);
    }
    env.cli_in(
        false,
        &["turn", "--session", "other", "alpha in another session"],
        None,
    )
    .ok();
    let table = env.cli_in(false, &["log"], None).ok();
    assert_eq!(table.lines().count(), 6, "header and five turns\n{table}");
    assert!(table.lines().next().unwrap().starts_with("TURN"));
    let rows: Vec<Value> =
        serde_json::from_str(&env.cli_in(false, &["log", "--json", "-n", "2"], None).ok()).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[0]["message"], "alpha in another session",
        "newest first"
    );
    let jl = env
        .cli_in(false, &["log", "--jsonl", "--session", "logs"], None)
        .ok();
    assert_eq!(jl.lines().count(), 4);
    let errs = env
        .cli_in(false, &["log", "--jsonl", "--status", "error"], None)
        .ok();
    assert_eq!(errs.lines().count(), 1);
    assert_eq!(
        env.cli_in(
            false,
            &["log", "--jsonl", "--code", "agent_error", "--since", "1h"],
            None
        )
        .ok()
        .lines()
        .count(),
        1
    );
    env.cli_in(false, &["log", "--status", "nonsense"], None)
        .code(2);
    // Search: any text is a safe query; like grep, no match exits 1.
    for q in [
        "-", "\"", "AND", "*", "OR NOT (", "Köln", "grüße", "日本", "**",
    ] {
        let r = env.cli_in(false, &["log", "search", "--jsonl", "--", q], None);
        assert!(r.code == 0 || r.code == 1, "{r}");
        assert!(r.stderr.is_empty(), "{r}");
    }
    let r = env.cli_in(false, &["log", "search", "nowhere-to-be-found"], None);
    r.code(1);
    assert!(r.stdout.is_empty(), "{r}");
    let hits = |q: &str, env: &mut TestEnv| {
        env.cli_in(false, &["log", "search", "--jsonl", "--", q], None)
            .out()
            .lines()
            .count()
    };
    assert_eq!(hits("alpha", &mut env), 2);
    assert_eq!(hits("Köln", &mut env), 1);
    assert_eq!(hits("AND", &mut env), 1);
    assert_eq!(hits("alpha beta", &mut env), 1);
    // show
    let id = rows[0]["turn_id"].as_str().unwrap().to_owned();
    let shown = env.cli_in(false, &["log", "show", &id], None).ok();
    assert!(
        shown.contains("alpha in another session") && shown.contains("status:         ok"),
        "{shown}"
    );
    assert_eq!(
        json(&env.cli_in(false, &["log", "show", "--json", &id], None))["turn_id"],
        id
    );
    env.cli_in(false, &["log", "show", &paliadin_tests::turn_id()], None)
        .code(1);
    // stats
    let st = json(&env.cli_in(false, &["log", "stats", "--json"], None));
    assert_eq!(st["total"], 5);
    assert_eq!(st["errors"], 1);
    assert!(env
        .cli_in(false, &["log", "stats"], None)
        .ok()
        .contains("agent_error"));
    // path, prune
    assert_eq!(
        env.cli_in(false, &["log", "path"], None).ok().trim(),
        env.db().to_string_lossy()
    );
    env.cli_in(
        false,
        &["log", "prune", "--older-than", "1d", "--yes"],
        None,
    )
    .ok();
    assert_eq!(count(&env, "SELECT count(*) FROM turns"), 5);
    let dry = env
        .cli_in(
            false,
            &["log", "prune", "--older-than", "0s", "--dry-run"],
            None,
        )
        .ok();
    assert!(
        dry.starts_with("would delete 5 turns and 0 probes"),
        "{dry}"
    );
    // Without a terminal to ask, deleting needs --yes.
    let r = env.cli_in(false, &["log", "prune", "--older-than", "0s"], None);
    r.code(2);
    assert!(r.stderr.contains("add --yes"), "{r}");
    assert_eq!(count(&env, "SELECT count(*) FROM turns"), 5);
    env.cli_in(false, &["log", "prune", "--older-than", "0s", "-y"], None)
        .ok();
    assert_eq!(count(&env, "SELECT count(*) FROM turns"), 0);
    assert_eq!(hits("alpha", &mut env), 0, "the search index follows");
}

#[test]
fn a_newer_database_is_left_untouched_and_never_stops_a_turn() {
    let mut env = TestEnv::new();
    create_log(&env);
    Connection::open(env.db())
        .unwrap()
        .execute_batch("PRAGMA user_version = 999")
        .unwrap();
    let before = std::fs::read(env.db()).unwrap();
    let r = env.cli_in(false, &["turn", "--session", "x", "hi"], None);
    assert_eq!(r.ok(), "hi\n", "the turn runs without its log");
    assert!(
        r.stderr
            .starts_with("paliadin-cli: warning: the turn will not be recorded: ")
            && r.stderr.contains("newer than this paliadin-cli"),
        "{r}"
    );
    assert_eq!(r.stderr.lines().count(), 1, "{r}");
    assert_eq!(std::fs::read(env.db()).unwrap(), before);
    // Reading the log is another matter: that fails, in one line.
    let r = env.cli_in(false, &["log"], None);
    r.code(1);
    assert!(r.stderr.contains("newer than this paliadin-cli"), "{r}");
}

#[test]
fn a_missing_key_or_known_hosts_file_is_named_before_ssh_runs() {
    let mut env = TestEnv::new();
    let base = env.cli_args(true);
    for flag in ["--key", "--known-hosts"] {
        let mut a = base.clone();
        let p = a.iter().position(|x| x == flag).unwrap();
        a[p + 1] = env.home.join("no-such-file").to_string_lossy().into_owned();
        let mut c = env.command(&paliadin_tests::bin("paliadin-cli"));
        c.args(&a).args(["turn", "--json", "--session", "k", "hi"]);
        let r = paliadin_tests::run(&mut c, None, std::time::Duration::from_secs(30));
        r.code(1);
        assert!(
            r.stderr.contains("no-such-file does not exist")
                && r.stderr.contains(&format!("(flag {flag})"))
                && r.stderr.ends_with("run paliadin-cli doctor\n"),
            "{r}"
        );
        assert_eq!(json(&r)["error_code"], "config_error");
    }
    assert!(env.prompts().is_empty(), "nothing was sent");
}

#[test]
fn configuration_file_environment_and_flags_in_that_order() {
    let env = TestEnv::new();
    let cfg = env.home.join(".config/paliadin/cli.toml");
    std::fs::write(&cfg, "db = \"/from/file.db\"\nsession_prefix = \"file\"\n").unwrap();
    let path = |extra_env: &[(&str, &str)], flags: &[&str]| {
        let mut c = env.command(&paliadin_tests::bin("paliadin-cli"));
        for (k, v) in extra_env {
            c.env(k, v);
        }
        c.args(flags).args(["log", "path"]);
        paliadin_tests::run(&mut c, None, std::time::Duration::from_secs(10))
            .ok()
            .trim()
            .to_owned()
    };
    assert_eq!(path(&[], &[]), "/from/file.db");
    assert_eq!(
        path(&[("PALIADIN_DB", "/from/env.db")], &[]),
        "/from/env.db"
    );
    assert_eq!(
        path(
            &[("PALIADIN_DB", "/from/env.db")],
            &["--db", "/from/flag.db"]
        ),
        "/from/flag.db"
    );
    std::fs::write(&cfg, "bogus_key = 1\n").unwrap();
    let mut c = env.command(&paliadin_tests::bin("paliadin-cli"));
    c.args(["log", "path"]);
    let r = paliadin_tests::run(&mut c, None, std::time::Duration::from_secs(10));
    r.code(1);
    assert!(r.stderr.starts_with("paliadin-cli: invalid config"), "{r}");
    assert_eq!(
        r.stderr.lines().count(),
        1,
        "one line, even for TOML's own multi-line message\n{r}"
    );
    // No host for ssh: a clear error.
    std::fs::remove_file(&cfg).unwrap();
    let mut c = env.command(&paliadin_tests::bin("paliadin-cli"));
    c.args(["turn", "hi"]);
    let r = paliadin_tests::run(&mut c, None, std::time::Duration::from_secs(10));
    r.code(1);
    assert!(r.stderr.contains("no host configured"), "{r}");
}

#[test]
fn a_failed_log_write_never_hides_the_reply() {
    let mut env = TestEnv::new();
    create_log(&env);
    // A real SQLite failure on completing the row.
    Connection::open(env.db())
        .unwrap()
        .execute_batch("CREATE TRIGGER fail BEFORE UPDATE ON turns BEGIN SELECT RAISE(ABORT, 'simulated disk failure'); END;")
        .unwrap();
    let r = env.cli_in(false, &["turn", "--session", "w", "still answered"], None);
    assert_eq!(r.ok(), "still answered\n");
    assert!(
        r.stderr
            .starts_with("paliadin-cli: warning: the turn log could not record turn "),
        "{r}"
    );
    assert!(r.stderr.contains("simulated disk failure"), "{r}");
    // The row went in before the call, so the turn left a trace.
    assert_eq!(
        count(&env, "SELECT count(*) FROM turns WHERE status = 'running'"),
        1
    );
}

#[test]
fn the_client_library_runs_and_records_a_turn_without_the_command_line() {
    use paliadin_cli::store::Store;
    use paliadin_cli::transport::Transport;
    use paliadin_cli::{Client, TurnRequest};
    let env = TestEnv::new();
    let mut client = Client {
        transport: Transport::Local {
            shim: paliadin_tests::bin("paliadin-shim"),
            args: vec!["--config".into(), env.config.to_string_lossy().into_owned()],
        },
        store: Some(Store::open(&env.db()).unwrap()),
        timeout: std::time::Duration::from_secs(60),
        cancel: None,
    };
    let r = client.turn(&TurnRequest {
        session: paliadin_core::SessionName::new("lib").unwrap(),
        user_id: None,
        message: "from Rust".into(),
        page_origin: Some("tests".into()),
    });
    let t = r.unwrap_or_else(|f| panic!("{f}"));
    assert_eq!(t.row.outcome.response.as_deref(), Some("from Rust"));
    assert_eq!(t.row.outcome.error_code, None);
    // What the library returns is what the log keeps.
    let logged = client
        .store
        .as_ref()
        .unwrap()
        .turn(t.row.turn.turn_id)
        .unwrap()
        .unwrap();
    assert_eq!(logged.row, t.row);
    assert_eq!(logged.row.turn.page_origin.as_deref(), Some("tests"));
}

#[test]
fn usage_errors_exit_2_and_health_answers_without_a_log() {
    let mut env = TestEnv::new();
    let r = env.cli(&["turn", "--session", "no/slash", "hi"]);
    r.code(2);
    assert!(
        r.stderr.starts_with("paliadin-cli: invalid session name"),
        "{r}"
    );
    let r = env.cli_in(true, &["turn", "--json", "--session", "x"], Some(b"   "));
    r.code(2);
    assert_eq!(json(&r)["error_code"], "invalid_input");
    // A log that cannot be opened: health still gives its line, and says why it did not record.
    Connection::open(env.db())
        .unwrap()
        .execute_batch("PRAGMA user_version = 999")
        .unwrap();
    let r = env.cli(&["health", "--session", "nolog"]);
    assert!(r.ok().starts_with("OK paliadin "), "{r}");
    assert!(
        r.stderr.contains("warning: the probe will not be recorded"),
        "{r}"
    );
}

/// Seeds the log with finished turns of chosen ids (`id`, session, message,
/// status, error code, minutes ago), through SQL as an older client would.
/// A seeded turn: id, session, message, status, error code, minutes ago.
type Seed<'a> = (&'a str, &'a str, &'a str, &'a str, Option<&'a str>, i64);

fn seed(env: &mut TestEnv, rows: &[Seed<'_>]) {
    create_log(env);
    let c = Connection::open(env.db()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    for (id, session, msg, status, code, ago) in rows {
        let started = now - ago * 60_000;
        c.execute(
            "INSERT INTO turns (turn_id, session, host, started_ms, ended_ms, duration_ms, \
             message, response, status, error_code) VALUES (?1, ?2, 'h', ?3, ?4, 250, ?5, ?5, ?6, ?7)",
            rusqlite::params![id, session, started, started + 250, msg, status, code],
        )
        .unwrap();
    }
}

#[test]
fn json_failures_are_one_object_and_usage_errors_exit_2() {
    let mut env = TestEnv::new();
    seed(&mut env, &[]);
    let is_error = |r: &paliadin_tests::Run, code: &str| {
        let v = json(r);
        assert_eq!(v["error_code"], code, "{r}");
        assert!(!v["error"].as_str().unwrap().is_empty(), "{r}");
        assert_eq!(r.out().lines().count(), 1, "one object\n{r}");
    };
    for (args, code) in [
        (&["log", "--json", "--status", "bogus"][..], 2),
        (&["log", "--jsonl", "--since", "yesterday"], 2),
        (&["log", "--json", "--code", "no_such_code"], 2),
        (&["log", "--json", "--session", "bad/name"], 2),
        (&["log", "stats", "--json", "--since", "soon"], 2),
        (&["log", "search", "--json", " "], 2),
        (&["log", "show", "--json", "0000"], 1),
        (&["log", "--json", "--no-such-flag"], 2),
    ] {
        let r = env.cli_in(false, args, None);
        r.code(code);
        is_error(
            &r,
            if code == 2 {
                "invalid_input"
            } else {
                "not_found"
            },
        );
    }
    // No host configured: status, sessions and poll fail as JSON too.
    for args in [
        &["status", "--json"][..],
        &["sessions", "--json"],
        &["poll", "--json", "0123"],
    ] {
        let mut c = env.command(&paliadin_tests::bin("paliadin-cli"));
        c.args(["--db", env.db().to_str().unwrap()]).args(args);
        let r = paliadin_tests::run(&mut c, None, std::time::Duration::from_secs(10));
        r.code(1);
        is_error(&r, "config_error");
    }
    // A broken config file: JSON for log too.
    let cfg = env.home.join(".config/paliadin/cli.toml");
    std::fs::write(&cfg, "port = \"nope\"\n").unwrap();
    let mut c = env.command(&paliadin_tests::bin("paliadin-cli"));
    c.args(["log", "--json"]);
    let r = paliadin_tests::run(&mut c, None, std::time::Duration::from_secs(10));
    r.code(1);
    is_error(&r, "config_error");
    // health: exactly one UNKNOWN line, exit 3.
    let mut c = env.command(&paliadin_tests::bin("paliadin-cli"));
    c.args(["health"]);
    let r = paliadin_tests::run(&mut c, None, std::time::Duration::from_secs(10));
    r.code(3);
    assert!(
        r.out().starts_with("UNKNOWN paliadin config_error: "),
        "{r}"
    );
    assert_eq!(r.out().lines().count(), 1, "{r}");
    std::fs::remove_file(&cfg).unwrap();
    let mut c = env.command(&paliadin_tests::bin("paliadin-cli"));
    c.args(["health", "--json"]);
    let r = paliadin_tests::run(&mut c, None, std::time::Duration::from_secs(10));
    r.code(3);
    assert_eq!(json(&r)["state"], "UNKNOWN");
    assert_eq!(json(&r)["error_code"], "config_error");
    // A missing message is a usage error.
    env.cli_in(false, &["turn", "--session", "x"], None).code(2);
}

#[test]
fn one_timestamp_form_stats_objects_and_probes_shown() {
    let mut env = TestEnv::new();
    let rfc3339 = |v: &Value| {
        let s = v.as_str().unwrap_or_else(|| panic!("not a string: {v}"));
        assert!(
            s.len() == 24 && s.ends_with('Z') && &s[10..11] == "T",
            "not RFC 3339 UTC with ms: {s}"
        );
    };
    let v = json(&env.cli(&["turn", "--json", "--session", "ts", "hello"]));
    let rows: Vec<Value> =
        serde_json::from_str(&env.cli_in(false, &["log", "--json"], None).ok()).unwrap();
    assert_eq!(rows[0]["turn_id"], v["turn_id"]);
    rfc3339(&rows[0]["started"]);
    rfc3339(&rows[0]["ended"]);
    assert!(rows[0].get("started_ms").is_none());
    env.cli(&["health", "--session", "ts"]).ok();
    let h = json(&env.cli(&["health", "--json", "--session", "ts"]));
    rfc3339(&h["at"]);
    assert_eq!(h["state"], "OK");
    // A probe that fails: CRITICAL with its performance data, and recorded.
    let mut args = env.cli_args(true);
    let p = args.iter().position(|a| a == "--port").unwrap();
    args[p + 1] = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let mut c = env.command(&paliadin_tests::bin("paliadin-cli"));
    c.args(&args)
        .args(["--no-mux", "health", "--session", "ts"]);
    let r = paliadin_tests::run(&mut c, None, std::time::Duration::from_secs(30));
    r.code(2);
    assert!(
        r.out()
            .starts_with("CRITICAL paliadin 127.0.0.1 session ts unreachable: ")
            && r.out().contains(" | time="),
        "{r}"
    );
    assert_eq!(r.out().lines().count(), 1, "{r}");
    let p = json(&env.cli_in(false, &["log", "probes", "--json", "--since", "1h"], None));
    let h = &p["hosts"][0];
    assert_eq!(h["host"], "127.0.0.1", "{p}");
    assert_eq!((h["probes"].as_i64(), h["ok"].as_i64()), (Some(3), Some(2)));
    assert!((h["availability"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9);
    assert_eq!(h["by_code"][0]["code"], "unreachable");
    assert_eq!(p["recent"].as_array().unwrap().len(), 3);
    assert_eq!(p["recent"][0]["error_code"], "unreachable");
    rfc3339(&p["recent"][0]["at"]);
    rfc3339(&p["since"]);
    let text = env.cli_in(false, &["log", "probes"], None).ok();
    assert!(text.contains("66.67%"), "{text}");
    // Split by host, and --host keeps one host's.
    env.cli_in(false, &["health", "--session", "ts"], None).ok();
    let p = json(&env.cli_in(false, &["log", "probes", "--json"], None));
    let hosts: Vec<&str> = p["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["host"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["127.0.0.1", "local"], "{p}");
    let p = json(&env.cli_in(false, &["--host", "local", "log", "probes", "--json"], None));
    assert_eq!(p["hosts"].as_array().unwrap().len(), 1, "{p}");
    assert_eq!(p["hosts"][0]["probes"], 1, "{p}");
    assert!(
        p["recent"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["host"] == "local"),
        "{p}"
    );
    // Stats: objects, not pairs.
    seed(
        &mut env,
        &[(
            "0badc0de-0000-4000-8000-000000000001",
            "ts",
            "m",
            "error",
            Some("timeout"),
            1,
        )],
    );
    let st = json(&env.cli_in(false, &["log", "stats", "--json"], None));
    assert_eq!(
        st["by_code"][0],
        serde_json::json!({"code": "timeout", "turns": 1})
    );
    assert_eq!(st["total"], 2);
    assert!(st["days"][0].is_object());
}

#[test]
fn turn_id_prefixes_short_ids_and_scoped_search_and_stats() {
    let mut env = TestEnv::new();
    seed(
        &mut env,
        &[
            (
                "abcd0001-0000-4000-8000-000000000001",
                "s1",
                "invoice forty two",
                "ok",
                None,
                90,
            ),
            (
                "abcd0002-0000-4000-8000-000000000002",
                "s1",
                "invoices overdue",
                "ok",
                None,
                30,
            ),
            (
                "abce0003-0000-4000-8000-000000000003",
                "s2",
                "invoice paid",
                "error",
                Some("timeout"),
                20,
            ),
            (
                "ffff0004-0000-4000-8000-000000000004",
                "s2",
                "weather",
                "ok",
                None,
                10,
            ),
        ],
    );
    // A unique prefix, an ambiguous one (exit 2, candidates named), none.
    let shown = env.cli_in(false, &["log", "show", "abce"], None).ok();
    assert!(shown.contains("invoice paid"), "{shown}");
    let r = env.cli_in(false, &["log", "show", "abcd"], None);
    r.code(2);
    assert!(
        r.stderr.contains("abcd0001-0000-4000-8000-000000000001")
            && r.stderr.contains("abcd0002-0000-4000-8000-000000000002"),
        "{r}"
    );
    env.cli_in(false, &["log", "show", "0123"], None).code(1);
    env.cli_in(false, &["poll", "abcd"], None).code(2);
    // poll of a finished turn by prefix: its reply, without asking the shim.
    assert_eq!(env.cli_in(false, &["poll", "ffff"], None).ok(), "weather\n");
    // The table shows short ids; piped, no message is cut.
    let long = "a long message ".repeat(20);
    seed(
        &mut env,
        &[(
            "0c0c0005-0000-4000-8000-000000000005",
            "s3",
            &long,
            "ok",
            None,
            5,
        )],
    );
    let table = env.cli_in(false, &["log"], None).ok();
    let first = table.lines().nth(1).unwrap();
    assert!(first.starts_with("0c0c0005  "), "{table}");
    assert!(
        first.ends_with(long.trim_end()),
        "piped, nothing cut\n{table}"
    );
    // Search with a trailing * and scopes.
    let hits = |env: &mut TestEnv, args: &[&str]| {
        // Options first, then the words.
        let mut a = vec!["log", "search", "--jsonl"];
        a.extend_from_slice(&args[1..]);
        a.push(args[0]);
        let r = env.cli_in(false, &a, None);
        r.out().lines().count()
    };
    assert_eq!(hits(&mut env, &["invoice"]), 2);
    assert_eq!(hits(&mut env, &["invoice*"]), 3);
    assert_eq!(hits(&mut env, &["invoice*", "--session", "s2"]), 1);
    assert_eq!(hits(&mut env, &["invoice*", "--since", "60m"]), 2);
    assert_eq!(
        hits(
            &mut env,
            &["invoice*", "--user", "0123abcd-1111-4222-8333-444455556666"]
        ),
        0
    );
    // Stats scoped the same way.
    let st = json(&env.cli_in(false, &["log", "stats", "--json", "--session", "s2"], None));
    assert_eq!(
        (st["total"].as_i64(), st["errors"].as_i64()),
        (Some(2), Some(1))
    );
    let st = json(&env.cli_in(false, &["log", "stats", "--json", "--since", "45m"], None));
    assert_eq!(st["total"], 4);
    // Prune takes the same time forms as --since.
    let dry = env
        .cli_in(
            false,
            &["log", "prune", "--older-than", "60m", "--dry-run"],
            None,
        )
        .ok();
    assert!(dry.starts_with("would delete 1 turns"), "{dry}");
    env.cli_in(
        false,
        &["log", "prune", "--older-than", "2026-01-01", "--dry-run"],
        None,
    )
    .ok();
    env.cli_in(false, &["log", "prune", "--older-than", "whenever"], None)
        .code(2);
}

#[test]
fn completions_manual_and_help_with_examples() {
    let mut env = TestEnv::new();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = env.cli_in(false, &["completions", shell], None).ok();
        assert!(
            out.contains("paliadin-cli") && out.contains("since"),
            "{shell}"
        );
    }
    env.cli_in(false, &["completions", "tcsh"], None).code(2);
    let man = env.cli_in(false, &["man"], None).ok();
    assert!(
        man.starts_with(".ie") && man.contains(".TH paliadin-cli 1"),
        "{man}"
    );
    assert!(man.contains("PALIADIN-CLI LOG") && man.contains("\\-\\-older\\-than"));
    // Every subcommand's help ends with examples; the ssh options stand
    // under their own heading.
    for sub in [
        "turn",
        "chat",
        "health",
        "reset",
        "poll",
        "status",
        "sessions",
        "log",
        "doctor",
        "completions",
        "man",
    ] {
        let help = env.cli_in(false, &[sub, "--help"], None).ok();
        let tail = &help[help
            .rfind("Examples:")
            .unwrap_or_else(|| panic!("{sub}: {help}"))..];
        assert!(tail.lines().count() >= 3, "{sub}: {tail}");
        assert!(
            tail.contains(&format!("paliadin-cli {sub}")),
            "{sub}: {tail}"
        );
        if sub != "completions" && sub != "man" {
            let conn = help.find("Connection:").expect("a Connection heading");
            assert!(help.find("--host").unwrap() > conn, "{help}");
        }
    }
}

#[test]
fn doctor_checks_the_whole_path_one_line_each() {
    let mut env = TestEnv::new();
    let r = env.cli(&["doctor", "--session", "doc"]);
    let out = r.ok();
    let checks: Vec<&str> = out
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap_or(""))
        .collect();
    assert_eq!(
        checks,
        [
            "config",
            "key",
            "known_hosts",
            "host",
            "shim",
            "agent",
            "plan",
            "timing"
        ],
        "{r}"
    );
    for l in out.lines() {
        assert!(l.starts_with("ok ") || l.starts_with("warn "), "{r}");
    }
    // ssh's own start is timed apart (the laptop installer's figure has none).
    assert!(
        out.contains("connect ") && out.contains("ssh's start here ") && out.contains("shim work "),
        "{r}"
    );
    // A key others can read is named with its fix.
    let key = env.sshd().client_key.clone();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let r = env.cli(&["doctor"]);
    r.code(1);
    assert!(
        r.out().contains("FAIL  key") && r.out().contains("chmod 600"),
        "{r}"
    );
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    // A broken config: its own FAIL line, before anything else.
    std::fs::write(env.home.join(".config/paliadin/cli.toml"), "port = 'x'\n").unwrap();
    let r = env.cli(&["doctor"]);
    r.code(1);
    assert!(r.out().starts_with("FAIL  config"), "{r}");
    // The checks it could not make after it are named, not left out.
    let text = r.out();
    let skipped: Vec<&str> = text
        .lines()
        .skip(1)
        .map(|l| {
            assert!(
                l.starts_with("skip  ") && l.contains("the config check failed"),
                "{r}"
            );
            l.split_whitespace().nth(1).unwrap_or("")
        })
        .collect();
    assert_eq!(
        skipped,
        [
            "key",
            "known_hosts",
            "host",
            "shim",
            "agent",
            "plan",
            "timing"
        ],
        "{r}"
    );
}

#[test]
fn one_record_from_turn_poll_log_show_and_the_last_line_of_events() {
    let mut env = TestEnv::new();
    let msg = "Same [A](chip:a/1) everywhere";
    let t = json(&env.cli(&["turn", "--json", "--session", "rec", msg]));
    let id = t["turn_id"].as_str().unwrap().to_owned();
    let polled = json(&env.cli(&["poll", "--json", &id]));
    let shown = json(&env.cli(&["log", "show", "--json", &id]));
    assert_eq!(t, polled, "turn --json and poll --json");
    assert_eq!(t, shown, "turn --json and log show --json");
    for key in [
        "turn_id",
        "user_id",
        "session",
        "host",
        "started",
        "ended",
        "duration_ms",
        "message",
        "page_origin",
        "status",
        "response",
        "estimated_tokens",
        "usage",
        "used_tools",
        "claimed_tools",
        "rows_seen",
        "classifier_tag",
        "chip_count",
        "error_code",
        "error_detail",
        "events",
    ] {
        assert!(t.get(key).is_some(), "{key}: {t}");
    }
    assert!(
        t.get("id").is_none(),
        "no row id a prefix could be taken for: {t}"
    );
    // A list holds the same rows, without their events.
    let list = json(&env.cli(&["log", "--json", "-n", "1"]));
    let mut row = shown.clone();
    row.as_object_mut().unwrap().remove("events");
    assert_eq!(list[0], row);

    // The last line of --events: the record with kind, at and text.
    let r = env.cli(&["turn", "--events", "--session", "rec", msg]);
    let out = r.ok();
    let mut last: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let id = last["turn_id"].as_str().unwrap().to_owned();
    let mut shown = json(&env.cli(&["log", "show", "--json", &id]));
    shown.as_object_mut().unwrap().remove("events");
    let l = last.as_object_mut().unwrap();
    assert_eq!(l.remove("kind").unwrap(), "reply");
    assert!(l.remove("at").unwrap().as_str().unwrap().ends_with('Z'));
    assert_eq!(l.remove("text").unwrap(), shown["response"]);
    assert_eq!(
        last, shown,
        "the last line of turn --events and log show --json"
    );

    // A failed turn: the one error object, its record inside.
    let r = env.cli(&[
        "turn",
        "--json",
        "--session",
        "rec",
        "paliadin-test: failure\nhi",
    ]);
    r.code(76);
    let e = json(&r);
    assert_eq!(e["error_code"], "agent_error", "{r}");
    let id = e["turn_id"].as_str().unwrap();
    let shown = json(&env.cli(&["log", "show", "--json", id]));
    assert_eq!(e["turn"], shown, "{r}");
    assert_eq!(e["error"], shown["error_detail"], "{r}");
}

#[test]
fn reading_the_log_or_probing_without_a_config_creates_no_database() {
    let env = TestEnv::new();
    let data = env.home.join(".local/share/paliadin");
    assert!(!data.exists());
    let run = |args: &[&str]| {
        let mut c = env.command(&paliadin_tests::bin("paliadin-cli"));
        c.args(args);
        paliadin_tests::run(&mut c, None, std::time::Duration::from_secs(30))
    };
    assert_eq!(run(&["log", "--json"]).ok(), "[]\n");
    assert!(run(&["log"]).ok().starts_with("TURN "));
    run(&["log", "stats"]).ok();
    run(&["log", "probes"]).ok();
    run(&["log", "search", "anything"]).code(1);
    run(&["log", "show", "0000"]).code(1);
    let r = run(&["health"]);
    r.code(3);
    assert!(
        r.out()
            .starts_with("UNKNOWN paliadin config_error: no host configured")
            && r.out().trim_end().ends_with("run paliadin-cli doctor"),
        "{r}"
    );
    assert!(!data.exists(), "nothing was created in {}", data.display());
}

#[test]
fn words_are_joined_timeouts_are_positive_and_every_command_has_a_version() {
    let mut env = TestEnv::new();
    let r = env.cli_in(false, &["turn", "--session", "w", "hi", "there"], None);
    assert_eq!(r.ok(), "hi there\n", "the words, joined");
    // A timeout of 0 would fail every call: refused from any layer.
    let r = env.cli_in(
        false,
        &["turn", "--timeout", "0", "--session", "w", "hi"],
        None,
    );
    r.code(2);
    assert!(r.stderr.contains("at least 1"), "{r}");
    env.cli_in(false, &["health", "--timeout", "0"], None)
        .code(2);
    let mut c = env.command(&paliadin_tests::bin("paliadin-cli"));
    c.args(env.cli_args(false))
        .args(["turn", "--json", "--session", "w", "hi"])
        .env("PALIADIN_TIMEOUT", "0");
    let r = paliadin_tests::run(&mut c, None, std::time::Duration::from_secs(30));
    r.code(1);
    assert_eq!(json(&r)["error_code"], "config_error");
    assert!(r.stderr.contains("PALIADIN_TIMEOUT"), "{r}");
    // `version`, and --version wherever a user reaches for it.
    let v = env.cli_in(false, &["version"], None).ok();
    assert!(
        v.starts_with("paliadin-cli ") && v.lines().count() == 1,
        "{v}"
    );
    for args in [
        &["--version"][..],
        &["turn", "--version"],
        &["log", "show", "--version"],
    ] {
        assert_eq!(env.cli_in(false, args, None).ok(), v, "{args:?}");
    }
    let j = json(&env.cli_in(false, &["version", "--json"], None));
    assert_eq!(
        format!("paliadin-cli {}\n", j["version"].as_str().unwrap()),
        v
    );
}

#[test]
fn config_says_where_each_setting_comes_from_and_sets_one_key() {
    let env = TestEnv::new();
    let file = env.home.join(".config/paliadin/cli.toml");
    let run = |args: &[&str], vars: &[(&str, &str)]| {
        let mut c = env.command(&paliadin_tests::bin("paliadin-cli"));
        c.args(args);
        for (k, v) in vars {
            c.env(k, v);
        }
        paliadin_tests::run(&mut c, None, std::time::Duration::from_secs(30))
    };
    assert_eq!(
        run(&["config", "path"], &[]).ok(),
        format!("{}\n", file.display())
    );
    std::fs::write(&file, "# mine\nport = 2201 # the laptop's\n").unwrap();
    run(&["config", "set", "host", "laptop.example"], &[]).ok();
    run(&["config", "set", "timeout_secs", "0"], &[]).code(2);
    run(&["config", "set", "no_such_key", "1"], &[]).code(2);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.starts_with("# mine\nport = 2201 # the laptop's\n"),
        "{text}"
    );
    assert!(text.contains("host = \"laptop.example\""), "{text}");
    let r = run(
        &["--session-prefix", "pfx", "config", "show", "--json"],
        &[("PALIADIN_PORT", "2222")],
    );
    let all = json(&r);
    let of = |key: &str| {
        all.as_array()
            .unwrap()
            .iter()
            .find(|e| e["key"] == key)
            .unwrap_or_else(|| panic!("{key}: {r}"))
            .clone()
    };
    assert_eq!(of("host")["source"], format!("file {}", file.display()));
    assert_eq!(of("host")["value"], "laptop.example");
    assert_eq!(
        (of("port")["value"].clone(), of("port")["source"].clone()),
        ("2222".into(), "env PALIADIN_PORT".into())
    );
    assert_eq!(of("session_prefix")["source"], "flag --session-prefix");
    assert_eq!(of("mux")["source"], "default");
    assert_eq!(of("ssh_user")["source"], "unset");
    assert!(run(&["config", "show"], &[])
        .ok()
        .contains("laptop.example"));
    assert_eq!(run(&["config", "get", "port"], &[]).ok(), "2201\n");
    let r = run(&["config", "get", "ssh_user"], &[]);
    assert_eq!((r.code, r.out().as_str()), (1, ""), "{r}");
    run(&["config", "get", "nope"], &[]).code(2);
    run(&["config", "unset", "port"], &[]).ok();
    assert_eq!(run(&["config", "get", "port"], &[]).ok(), "22022\n");
    assert!(std::fs::read_to_string(&file)
        .unwrap()
        .starts_with("# mine\n"));
}

/// Issue 17 item 3: under a umask of 022 the turn log's three files are
/// 0600 (made so before SQLite opens them); a dangling symlink at the log's
/// path is refused with one line and nothing is created at its target (the
/// turn itself goes on, unrecorded); a symlink to a real log is refused by
/// a reading command with exit 1 and one line.
#[test]
fn the_turn_log_is_private_under_umask_022_and_never_opened_through_a_symlink() {
    use std::os::unix::fs::PermissionsExt;
    let mut env = TestEnv::new();
    let cli = |env: &mut TestEnv, db: &std::path::Path, args: &[&str]| {
        let mut c = env.command(std::path::Path::new("sh"));
        c.args(["-c", "umask 022 && exec \"$@\"", "sh"])
            .arg(paliadin_tests::bin("paliadin-cli"))
            // Its own --db in place of the world's (the first two words).
            .args(&env.cli_args(false)[2..])
            .arg("--db")
            .arg(db)
            .args(args);
        paliadin_tests::run(&mut c, None, std::time::Duration::from_secs(60))
    };
    let db = env.db();
    cli(&mut env, &db, &["turn", "--session", "m", "hello"]).ok();
    for suffix in ["", "-wal", "-shm"] {
        let f = format!("{}{suffix}", db.display());
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    // A dangling symlink where the log would be.
    let target = env.home.join("planted.db");
    let link = env.home.join("linked.db");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let r = cli(&mut env, &link, &["turn", "--session", "m", "hello"]);
    assert_eq!(r.code, 0, "the turn goes on: {r}");
    assert!(r.stdout.starts_with(b"hello"), "{r}");
    assert!(
        r.stderr.contains("will not be recorded") && r.stderr.contains("is a symlink"),
        "{r}"
    );
    for suffix in ["", "-wal", "-shm"] {
        let f = format!("{}{suffix}", target.display());
        assert!(!std::path::Path::new(&f).exists(), "{f} was created");
    }
    // A symlink to the real log: refused, exit 1, one line.
    let to_real = env.home.join("to-real.db");
    std::os::unix::fs::symlink(&db, &to_real).unwrap();
    let r = cli(&mut env, &to_real, &["log", "stats"]);
    assert_eq!(r.code, 1, "{r}");
    assert_eq!(r.stderr.lines().count(), 1, "{r}");
    assert!(r.stderr.contains("is a symlink"), "{r}");
}

/// Issue 17 item 3: `log prune --older-than 0s` in a loop during 20 turns
/// deletes no row while it is running: every turn is recorded at its end
/// (no "could not record" warning), and the last prune leaves the log empty.
#[test]
fn a_prune_loop_during_turns_deletes_no_running_row() {
    let mut env = TestEnv::new();
    env.cli_in(false, &["turn", "--session", "pr", "warm"], None)
        .ok();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut prune = env.command(&paliadin_tests::bin("paliadin-cli"));
    prune
        .args(env.cli_args(false))
        .args(["log", "prune", "--older-than", "0s", "--yes"]);
    let pruner = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut runs = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let r = paliadin_tests::run(&mut prune, None, std::time::Duration::from_secs(60));
                assert_eq!(r.code, 0, "{r}");
                runs += 1;
            }
            runs
        })
    };
    for i in 0..20 {
        let r = env.cli_in(
            false,
            &[
                "turn",
                "--session",
                "pr",
                &format!("turn {i}\npaliadin-test: slow:50"),
            ],
            None,
        );
        assert_eq!(r.code, 0, "{r}");
        assert!(!r.stderr.contains("could not record"), "turn {i}: {r}");
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let runs = pruner.join().unwrap();
    assert!(runs > 0);
    env.cli_in(
        false,
        &["log", "prune", "--older-than", "0s", "--yes"],
        None,
    )
    .ok();
    assert_eq!(count(&env, "SELECT count(*) FROM turns"), 0);
}
