//! Approve mode (issue 14 item 2, `approve_secs` in the laptop's shim
//! config): a tool call that needs a yes is asked to the person on the
//! other end through `run-turn-events`' `permission_request` event and
//! answered with `approve`. The real Claude Code against the mock.

use paliadin_tests::claude::{ClaudeEnv, ClaudeOptions};
use paliadin_tests::{b64, turn_id, Value};
use std::io::BufRead as _;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

const SESSION: &str = "ask";

fn world(approve_secs: u64) -> ClaudeEnv {
    // A minute: the turn waits for the person too.
    let w = ClaudeEnv::with(ClaudeOptions {
        wait_secs: 60,
        ..ClaudeOptions::default()
    });
    // Every tool offered: since issue 17 the installer offers Bash only
    // with `--allow-bash`, inside Claude Code's sandbox.
    w.remove_agent_args(&["--tools"]);
    std::fs::write(
        &w.env.config,
        format!("{}approve_secs = {approve_secs}\n", w.shim_config()),
    )
    .expect("config");
    w
}

/// A turn streamed with `run-turn-events`, read line by line as it runs.
struct Stream {
    id: String,
    lines: mpsc::Receiver<Value>,
    child: std::process::Child,
}

impl Stream {
    fn start(w: &ClaudeEnv, message: &str) -> Stream {
        let id = turn_id();
        let mut child = w
            .command(&w.shim_bin())
            .arg("--config")
            .arg(&w.env.config)
            .args(["run-turn-events", SESSION, &id, &b64(message)])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .stdin(Stdio::null())
            .spawn()
            .expect("start the shim");
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let v = serde_json::from_str(&line).unwrap_or(Value::String(line));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        Stream { id, lines, child }
    }

    /// The next `permission_request` event (the lines before it dropped).
    fn request(&self) -> Value {
        loop {
            let v = self
                .lines
                .recv_timeout(Duration::from_secs(60))
                .expect("a permission_request event");
            if v["kind"] == "permission_request" {
                return v;
            }
        }
    }

    /// The rest of the stream and the exit status.
    fn finish(mut self) -> (Vec<Value>, i32) {
        let rest: Vec<Value> = self.lines.iter().collect();
        let status = self.child.wait().expect("the shim's exit");
        (rest, status.code().unwrap_or(-1))
    }
}

fn reply_of(lines: &[Value]) -> String {
    let text = lines
        .iter()
        .find(|v| v["kind"] == "reply")
        .and_then(|v| v["text"].as_str())
        .unwrap_or_default();
    paliadin_core::reply::split_trailer(text).0
}

fn make_file(w: &ClaudeEnv, name: &str) -> (std::path::PathBuf, String) {
    let file = w.env.workdir.join(name);
    let message = format!(
        "mock: tool Bash {}\nplease make the file",
        serde_json::json!({"command": format!("touch {} && echo touched", file.display()), "description": "make file"})
    );
    (file, message)
}

#[test]
fn a_person_allows_or_denies_a_tool_call_and_an_answer_counts_once() {
    let mut w = world(30);
    // Allowed: the command runs.
    let (file, message) = make_file(&w, "allowed");
    let s = Stream::start(&w, &message);
    let req = s.request();
    assert_eq!(req["tool"], "Bash", "{req}");
    assert_eq!(req["target"], "touch", "a safe summary: {req}");
    let n = req["id"].as_str().expect("request id").to_owned();
    // Another turn's id, or a request never asked: refused, nothing changes.
    w.shim(&["approve", SESSION, &turn_id(), &n, "allow"], None)
        .code(2);
    w.shim(&["approve", SESSION, &s.id, "99", "allow"], None)
        .code(2);
    assert_eq!(
        w.shim(&["approve", SESSION, &s.id, &n, "allow"], None).ok(),
        "ok\n"
    );
    let again = w.shim(&["approve", SESSION, &s.id, &n, "deny"], None);
    again.code(2);
    assert!(again.stderr.contains("not pending"), "{again}");
    let id = s.id.clone();
    let (rest, code) = s.finish();
    assert_eq!(code, 0, "{rest:?}\n{}\n{}", w.panes(), w.mock.summary());
    assert_eq!(reply_of(&rest), "tool ok", "{rest:?}");
    assert!(file.exists(), "the allowed command ran");
    // Answered: refused after the turn too.
    w.shim(&["approve", SESSION, &id, &n, "allow"], None)
        .code(2);

    // Denied: the model gets the denial as the tool's error, the turn goes on.
    let (file, message) = make_file(&w, "denied");
    let s = Stream::start(&w, &message);
    let n = s.request()["id"].as_str().unwrap().to_owned();
    // From another shell, through paliadin-cli (a turn not in its log: named
    // with its session).
    let r = w.cli(
        false,
        &["approve", &s.id, &n, "deny", "--session", SESSION],
        None,
    );
    assert_eq!(r.ok(), format!("denied request {n} of turn {}\n", s.id));
    let (rest, code) = s.finish();
    assert_eq!(code, 0, "{rest:?}\n{}\n{}", w.panes(), w.mock.summary());
    let reply = reply_of(&rest);
    assert!(
        reply.starts_with("tool failed: ") && reply.contains("denied"),
        "{reply}"
    );
    assert!(!file.exists(), "the denied command did not run");
}

#[test]
fn a_request_nobody_answers_is_denied_when_its_time_runs_out() {
    let w = world(2);
    let (file, message) = make_file(&w, "unanswered");
    let s = Stream::start(&w, &message);
    let n = s.request()["id"].as_str().unwrap().to_owned();
    let id = s.id.clone();
    let (rest, code) = s.finish();
    assert_eq!(code, 0, "{rest:?}\n{}\n{}", w.panes(), w.mock.summary());
    let reply = reply_of(&rest);
    assert!(
        reply.starts_with("tool failed: ") && reply.contains("Nobody answered"),
        "{reply}"
    );
    assert!(!file.exists());
    let late = w.shim(&["approve", SESSION, &id, &n, "allow"], None);
    late.code(2);
    assert!(late.stderr.contains("not pending"), "{late}");
}

/// `turn --events` prints a permission request with the turn's id, so that
/// whoever answers from another shell can name it; the answer's turn is the
/// one the reply line closes.
#[test]
fn turn_events_name_the_turn_a_request_belongs_to() {
    let mut w = world(30);
    let (file, message) = make_file(&w, "named");
    let mut child = w
        .cli_command(false, &["turn", "--events", "--session", SESSION, &message])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start paliadin-cli");
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let req: Value = loop {
        let line = lines
            .next()
            .expect("a permission_request line")
            .expect("read");
        let v: Value = serde_json::from_str(&line).expect("JSON");
        if v["kind"] == "permission_request" {
            break v;
        }
    };
    let turn = req["turn_id"].as_str().expect("the turn id").to_owned();
    assert_eq!(req["tool"], "Bash", "{req}");
    let n = req["id"].as_str().expect("request id").to_owned();
    let r = w.cli(false, &["approve", &turn[..8], &n, "allow"], None);
    assert_eq!(r.ok(), format!("allowed request {n} of turn {turn}\n"));
    let last: Value = lines
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str(&l).ok())
        .last()
        .expect("the reply line");
    assert_eq!(child.wait().expect("exit").code(), Some(0), "{last}");
    assert_eq!(last["kind"], "reply", "{last}");
    assert_eq!(last["turn_id"], turn.as_str(), "{last}");
    assert!(file.exists());
}

/// `chat` fed from a pipe asks nothing: the laptop denies at its bound, as
/// for a backend, and the next line of the pipe is no answer.
#[test]
fn chat_from_a_pipe_asks_nothing() {
    let mut w = world(2);
    let (file, message) = make_file(&w, "piped");
    let input = format!("\"\"\"\n{message}\n\"\"\"\ny\n");
    let r = w.cli(
        false,
        &["chat", "--session", SESSION],
        Some(input.as_bytes()),
    );
    let out = r.ok();
    assert!(out.contains("Nobody answered"), "{r}");
    assert!(!r.stderr.contains("[y/N]"), "{r}");
    assert!(!file.exists());
}
