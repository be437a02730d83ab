//! `paliadin-cli chat` as a person uses it: the real CLI in a pane of a
//! private tmux server (one per test), typed into with `send-keys` and read
//! with `capture-pane`, talking through a local shim to the test agent in
//! the TestEnv's own tmux server. Also the same command fed from a pipe.

use paliadin_tests::claude::{claude_path, ClaudeEnv, ClaudeOptions};
use paliadin_tests::{bin, run, Run, TestEnv, TmuxServer};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static PANES: AtomicUsize = AtomicUsize::new(0);

/// How long any awaited screen content may take (a fresh agent starts first).
const WAIT: Duration = Duration::from_secs(60);

/// The environment every chat runs in: the TestEnv's HOME, XDG
/// directories and TMPDIR, the shim's config, and the run's TMUX_TMPDIR
/// (for the pane's server and the shim's).
fn chat_env(env: &TestEnv) -> Vec<(&'static str, PathBuf)> {
    let mut v = vec![
        ("HOME", env.home.clone()),
        ("XDG_CONFIG_HOME", env.home.join(".config")),
        ("XDG_STATE_HOME", env.home.join(".local/state")),
        ("XDG_DATA_HOME", env.home.join(".local/share")),
        ("TMPDIR", env.temp_dir()),
        ("PALIADIN_SHIM_CONFIG", env.config.clone()),
        ("LANG", "C.UTF-8".into()),
    ];
    if let Some(d) = paliadin_tests::leftovers::tmux_tmpdir() {
        v.push(("TMUX_TMPDIR", d.into()));
    }
    v
}

/// The CLI's arguments: a local shim, this test's log, `chat` on `session`.
fn chat_args(db: &Path, session: &str) -> Vec<String> {
    vec![
        "--transport".into(),
        "local".into(),
        "--shim".into(),
        bin("paliadin-shim").to_string_lossy().into_owned(),
        "--db".into(),
        db.to_string_lossy().into_owned(),
        "chat".into(),
        "--session".into(),
        session.into(),
    ]
}

/// `paliadin-cli chat` in a tmux pane of its own server, killed (and its
/// socket file removed) on drop.
struct Pane {
    server: TmuxServer,
    /// Where the CLI's exit status is written.
    status: PathBuf,
}

impl Pane {
    fn start(env: &TestEnv, db: &Path, session: &str) -> Pane {
        Pane::run(env, &chat_args(db, session), 120)
    }

    /// `paliadin-cli <args>` in a pane `width` columns wide.
    fn run(env: &TestEnv, args: &[String], width: u16) -> Pane {
        Pane::run_with(env, args, width, &[])
    }

    /// [`Pane::run`] with more environment (`PATH` replaces the test's).
    fn run_with(
        env: &TestEnv,
        args: &[String],
        width: u16,
        extra: &[(&str, std::ffi::OsString)],
    ) -> Pane {
        Pane::program(env, &bin("paliadin-cli"), args, width, extra)
    }

    /// `program <args>` in a pane, with the chat's environment and `extra`.
    fn program(
        env: &TestEnv,
        program: &Path,
        args: &[String],
        width: u16,
        extra: &[(&str, std::ffi::OsString)],
    ) -> Pane {
        let socket = format!(
            "paliadin-chat-{}-{}",
            std::process::id(),
            PANES.fetch_add(1, Ordering::SeqCst)
        );
        let pane = Pane {
            status: env.tmp.path().join(format!("{socket}.status")),
            server: TmuxServer::new(socket),
        };
        let path = extra
            .iter()
            .find(|(k, _)| *k == "PATH")
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var_os("PATH"))
            .unwrap_or_default();
        let mut c = pane.server.command();
        c.env_clear().env("PATH", &path).arg("-u").args([
            "new-session",
            "-d",
            "-s",
            "chat",
            "-x",
            &width.to_string(),
            "-y",
            "40",
        ]);
        for (k, v) in chat_env(env) {
            c.env(k, &v).arg("-e").arg(format!("{k}={}", v.display()));
        }
        for (k, v) in extra {
            c.env(k, v)
                .arg("-e")
                .arg(format!("{k}={}", v.to_string_lossy()));
        }
        // The CLI's exit status goes to a file: tmux's own `pane_dead_status`
        // sometimes never comes (the pane's child is left unreaped).
        c.args([
            "--",
            "sh",
            "-c",
            // The wrapper outlives a Ctrl-C sent to the pane (a trap, unlike
            // an ignored signal, is not inherited by the CLI).
            r#"f=$1; shift; trap : INT; "$@"; echo $? >"$f""#,
            "sh",
        ])
        .arg(&pane.status)
        .arg(program)
        .args(args);
        // Keep the pane after the end, for the screen in a failure message.
        c.args([";", "set-option", "-t", "chat", "remain-on-exit", "on"]);
        run(&mut c, None, Duration::from_secs(10)).code(0);
        pane
    }

    fn tmux(&self, args: &[&str]) -> Run {
        run(
            self.server.command().arg("-u").args(args),
            None,
            Duration::from_secs(10),
        )
    }

    /// The whole pane, scrollback included.
    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-J", "-S", "-", "-t", "chat"])
            .ok()
    }

    /// The whole pane with its escape codes (`-e`).
    fn screen_escapes(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-e", "-J", "-S", "-", "-t", "chat"])
            .ok()
    }

    /// Types `text` literally, then Enter.
    fn line(&self, text: &str) {
        self.tmux(&["send-keys", "-t", "chat", "-l", text]).code(0);
        self.key("Enter");
    }

    fn key(&self, key: &str) {
        self.tmux(&["send-keys", "-t", "chat", key]).code(0);
    }

    /// Awaits a screen for which `ok` holds, and returns it.
    #[track_caller]
    fn until(&self, what: &str, mut ok: impl FnMut(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let s = self.screen();
            if ok(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out awaiting {what}; the screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Awaits `text` on screen.
    #[track_caller]
    fn shows(&self, text: &str) -> String {
        self.until(&format!("{text:?}"), |s| s.contains(text))
    }

    /// Awaits an empty prompt at the bottom: the CLI reads keys again (a key
    /// sent earlier would meet the terminal in cooked mode, where Ctrl-C and
    /// Ctrl-D mean something else).
    #[track_caller]
    fn prompt(&self) {
        self.at("> ");
    }

    /// Awaits `prompt` alone on the last line.
    #[track_caller]
    fn at(&self, prompt: &str) {
        let want = prompt.trim_end();
        self.until(&format!("the prompt {prompt:?}"), |s| {
            s.lines().rfind(|l| !l.trim().is_empty()).map(str::trim_end) == Some(want)
        });
    }

    /// Awaits the `n`th reply's status line (`— 0.3 s · ...`).
    #[track_caller]
    fn replies(&self, n: usize) -> String {
        self.until(&format!("reply {n}"), |s| {
            s.lines().filter(|l| l.starts_with("— ")).count() >= n
        })
    }

    /// Awaits the end of the CLI and returns its exit status.
    #[track_caller]
    fn exit_status(&self) -> i32 {
        let mut code = None;
        self.until("the CLI to exit", |_| {
            let text = std::fs::read_to_string(&self.status).unwrap_or_default();
            code = text.strip_suffix('\n').and_then(|c| c.parse().ok());
            code.is_some()
        });
        code.expect("exit status")
    }
}

/// Every logged turn: (message, status, page_origin).
fn rows(db: &Path) -> Vec<(String, String, Option<String>)> {
    let conn = rusqlite::Connection::open(db).expect("open the turn log");
    let mut st = conn
        .prepare("SELECT message, status, page_origin FROM turns ORDER BY id")
        .expect("prepare");
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

#[test]
fn a_conversation_in_a_terminal() {
    let env = TestEnv::new();
    let db = env.tmp.path().join("turns.db");
    let pane = Pane::start(&env, &db, "chat1");
    pane.shows("paliadin chat — session chat1 on local; /help for commands");
    pane.prompt();

    // A turn: the echoed reply comes back rendered, and is logged.
    let message = "Hello **bold** see [Invoice 42](chip:invoice/42)";
    pane.line(message);
    let s = pane.replies(1);
    assert!(s.contains("Hello bold see Invoice 42 ⟨invoice/42⟩"), "{s}");
    assert!(s.contains("1 chip"), "{s}");
    assert_eq!(
        rows(&db),
        vec![(message.to_owned(), "ok".to_owned(), Some("chat".to_owned()))]
    );

    // Commands.
    pane.prompt();
    pane.line("/status");
    pane.shows("alive:         yes");
    pane.prompt();
    pane.line("/reset");
    pane.shows("session chat1 reset");
    pane.prompt();
    pane.line("after reset");
    let s = pane.replies(2);
    assert!(s.lines().any(|l| l == "after reset"), "{s}");

    // A trailing backslash goes on on the next line: one message.
    pane.prompt();
    pane.line("line one\\");
    pane.at("... ");
    pane.line("line two");
    pane.replies(3);
    // A bracketed paste of several lines is one message too.
    pane.prompt();
    pane.tmux(&["set-buffer", "-b", "p", "pasted one\npasted two"])
        .code(0);
    pane.tmux(&["paste-buffer", "-p", "-b", "p", "-t", "chat"])
        .code(0);
    pane.shows("pasted two");
    pane.key("Enter");
    pane.replies(4);
    // As does a """ block, in which a backslash is just a backslash.
    pane.prompt();
    pane.line("\"\"\"");
    pane.at("... ");
    pane.line("block one\\");
    pane.at("... ");
    pane.line("block two");
    pane.at("... ");
    pane.line("\"\"\"");
    pane.replies(5);

    // Ctrl-C at the prompt drops the line and the chat goes on.
    pane.prompt();
    pane.tmux(&["send-keys", "-t", "chat", "-l", "never sent"])
        .code(0);
    pane.shows("> never sent");
    pane.key("C-c");
    pane.prompt();
    pane.line("still here");
    pane.replies(6);

    // A line starting with / that is no command is a message; // escapes
    // one that is.
    pane.prompt();
    pane.line("/etc/hosts is odd");
    pane.replies(7);
    pane.prompt();
    pane.line("//status");
    pane.replies(8);

    let messages: Vec<String> = rows(&db).into_iter().map(|r| r.0).collect();
    assert_eq!(
        messages,
        vec![
            message,
            "after reset",
            "line one\nline two",
            "pasted one\npasted two",
            "block one\\\nblock two",
            "still here",
            "/etc/hosts is odd",
            "/status",
        ]
    );

    // History: private, one entry per input.
    let history = env.home.join(".local/state/paliadin/chat_history");
    let meta = std::fs::metadata(&history).expect("chat history");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let dir = std::fs::metadata(history.parent().unwrap()).unwrap();
    assert_eq!(dir.permissions().mode() & 0o777, 0o700);
    let text = std::fs::read_to_string(&history).unwrap();
    assert!(text.contains("line one\\nline two"), "{text}");
    assert!(text.contains("/status"), "{text}");

    pane.prompt();
    pane.line("/quit");
    assert_eq!(pane.exit_status(), 0, "{}", pane.screen());
}

#[test]
fn ctrl_d_leaves() {
    let env = TestEnv::new();
    let db = env.tmp.path().join("turns.db");
    let pane = Pane::start(&env, &db, "chat2");
    pane.prompt();
    pane.line("/help");
    pane.shows("/poll [turn-id]");
    pane.prompt();
    pane.key("C-d");
    assert_eq!(pane.exit_status(), 0, "{}", pane.screen());
    assert!(rows(&db).is_empty());
}

#[test]
fn chat_from_a_pipe() {
    let env = TestEnv::new();
    let db = env.tmp.path().join("turns.db");
    let mut c = env.command(&bin("paliadin-cli"));
    for (k, v) in chat_env(&env) {
        c.env(k, v);
    }
    c.env_remove("NO_COLOR").args(chat_args(&db, "piped"));
    let r = run(
        &mut c,
        Some(b"hello [Invoice 42](chip:invoice/42)\n/bogus\nsecond\\\nline\n/quit\nnot sent\n"),
        WAIT,
    );
    let out = r.ok();
    assert!(out.starts_with("hello Invoice 42 ⟨invoice/42⟩\n— "), "{r}");
    assert!(out.contains("\nsecond\nline\n— "), "{r}");
    assert!(!out.contains('\x1b'), "no colour into a pipe\n{r}");
    let messages: Vec<String> = rows(&db).into_iter().map(|r| r.0).collect();
    assert_eq!(
        messages,
        vec![
            "hello [Invoice 42](chip:invoice/42)",
            "/bogus",
            "second\nline"
        ]
    );
    assert!(
        !env.home.join(".local/state/paliadin/chat_history").exists(),
        "no history of piped input"
    );
}

#[test]
fn keys_typed_at_full_speed_after_enter_all_arrive_in_order() {
    let env = TestEnv::new();
    let db = env.tmp.path().join("turns.db");
    let pane = Pane::start(&env, &db, "fast");
    pane.prompt();
    // One tmux call each: the keys reach the terminal in one write, as a
    // fast typist's or a key's autorepeat do.
    pane.tmux(&["send-keys", "-t", "chat", "one", "Enter", "two", "Enter"])
        .code(0);
    pane.replies(2);
    pane.prompt();
    pane.tmux(&[
        "send-keys",
        "-t",
        "chat",
        "first\\",
        "Enter",
        "second",
        "Enter",
        "third",
        "Enter",
    ])
    .code(0);
    pane.replies(4);
    // Typed before a slow turn starts and during it: all, in typed order.
    pane.prompt();
    pane.tmux(&[
        "send-keys",
        "-t",
        "chat",
        "paliadin-test: slow:1500",
        "Enter",
        "after-slow",
        "Enter",
    ])
    .code(0);
    pane.shows("thinking");
    pane.tmux(&["send-keys", "-t", "chat", "during", "Enter"])
        .code(0);
    pane.replies(7);
    let messages: Vec<String> = rows(&db).into_iter().map(|r| r.0).collect();
    assert_eq!(
        messages,
        [
            "one",
            "two",
            "first\nsecond",
            "third",
            "paliadin-test: slow:1500",
            "after-slow",
            "during"
        ]
    );
}

#[test]
fn a_turn_past_the_shims_wait_is_waited_for() {
    // The shim gives up waiting after 1 s (124); the agent answers after 3.
    let env = TestEnv::with(paliadin_tests::ShimSettings {
        wait_secs: 1,
        ..Default::default()
    });
    let db = env.tmp.path().join("turns.db");
    let pane = Pane::start(&env, &db, "long");
    pane.prompt();
    pane.line("hello");
    pane.replies(1);
    pane.prompt();
    pane.line("paliadin-test: slow:3000");
    let s = pane.replies(2);
    assert!(!s.contains("error"), "no error, no hint:\n{s}");
    assert!(!s.contains("timeout"), "{s}");
    let statuses: Vec<String> = rows(&db).into_iter().map(|r| r.1).collect();
    assert_eq!(statuses, ["ok", "ok"]);
}

#[test]
fn type_ahead_is_kept_in_order_and_ctrl_c_tells_how_to_poll() {
    let env = TestEnv::new();
    let db = env.tmp.path().join("turns.db");
    let pane = Pane::start(&env, &db, "chat3");
    pane.prompt();
    // Typed while a slow turn runs: two lines and the start of a third.
    pane.line("slow one\\");
    pane.at("... ");
    pane.line("paliadin-test: slow:1500");
    pane.shows("thinking");
    pane.line("typed ahead two");
    pane.line("typed ahead three");
    pane.tmux(&["send-keys", "-t", "chat", "-l", "unfinished"])
        .code(0);
    let s = pane.replies(3);
    assert!(s.contains("> typed ahead two"), "{s}");
    pane.shows("> unfinished");
    pane.line(" four");
    pane.replies(4);
    let messages: Vec<String> = rows(&db).into_iter().map(|r| r.0).collect();
    assert_eq!(
        messages[1..],
        ["typed ahead two", "typed ahead three", "unfinished four"]
    );

    // Ctrl-C mid-turn: the turn id and how to collect it; `/poll` alone
    // collects that turn once the agent has answered.
    pane.prompt();
    pane.line("late answer\\");
    pane.at("... ");
    pane.line("paliadin-test: slow:1500");
    pane.shows("thinking");
    // Stop it once the agent has the message (before, nothing would answer).
    let deadline = Instant::now() + WAIT;
    while !env
        .prompts()
        .iter()
        .any(|p| p.to_string().contains("late answer"))
    {
        assert!(Instant::now() < deadline, "the agent never got the message");
        std::thread::sleep(Duration::from_millis(20));
    }
    pane.key("C-c");
    let s = pane.shows("(interrupted) turn ");
    let id = s
        .lines()
        .find_map(|l| l.strip_prefix("(interrupted) turn "))
        .and_then(|l| l.split(':').next())
        .unwrap()
        .to_owned();
    assert!(s.contains("/poll collects it"), "{s}");
    pane.prompt();
    // Until the agent answers, /poll says the turn still runs; then it
    // shows the reply.
    let deadline = Instant::now() + WAIT;
    loop {
        pane.line("/poll");
        let s = pane.until("a poll's answer", |s| {
            s.matches("/poll\n").count() >= 1
                && (s.contains("still running")
                    || s.lines().filter(|l| l.starts_with("— ")).count() >= 5)
        });
        if s.lines().filter(|l| l.starts_with("— ")).count() >= 5 {
            break;
        }
        assert!(Instant::now() < deadline, "{s}");
        pane.prompt();
        std::thread::sleep(Duration::from_millis(300));
    }
    let conn = rusqlite::Connection::open(&db).unwrap();
    let status: String = conn
        .query_row("SELECT status FROM turns WHERE turn_id = ?1", [&id], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(status, "ok", "the polled turn's row is complete");
    pane.prompt();
    pane.line("/quit");
    assert_eq!(pane.exit_status(), 0, "{}", pane.screen());
}

#[test]
fn turn_on_a_terminal_shows_progress_and_chips_and_log_fits_the_width() {
    let env = TestEnv::new();
    let db = env.tmp.path().join("turns.db");
    let local = |rest: &[&str]| {
        let mut a = chat_args(&db, "t")[..6].to_vec();
        a.extend(rest.iter().map(|s| s.to_string()));
        a
    };
    let pane = Pane::run(
        &env,
        &local(&[
            "turn",
            "--session",
            "tty",
            "see [Invoice 42](chip:invoice/42)\npaliadin-test: slow:1500",
        ]),
        60,
    );
    pane.shows("thinking… ");
    let s = pane.shows("Invoice 42 ⟨invoice/42⟩");
    assert!(!s.contains("(chip:"), "{s}");
    assert_eq!(pane.exit_status(), 0, "{}", pane.screen());
    drop(pane);
    // A long message: in a 60-column pane every row is one line.
    let long = "word ".repeat(40);
    let mut c = env.command(&bin("paliadin-cli"));
    for (k, v) in chat_env(&env) {
        c.env(k, v);
    }
    c.args(local(&["turn", "--session", "tty", &long]));
    run(&mut c, None, WAIT).ok();
    let pane = Pane::run(&env, &local(&["log"]), 60);
    assert_eq!(pane.exit_status(), 0);
    let s = pane.screen();
    let table: Vec<&str> = s
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("Pane is dead"))
        .collect();
    assert_eq!(table.len(), 3, "header and two turns, one line each\n{s}");
    assert!(table.iter().all(|l| l.chars().count() <= 60), "{s}");
    assert!(table[1].ends_with('…'), "{s}");
}

#[test]
fn log_prune_asks_on_a_terminal() {
    let env = TestEnv::new();
    let db = env.tmp.path().join("turns.db");
    let local = |rest: &[&str]| {
        let mut a = chat_args(&db, "t")[..6].to_vec();
        a.extend(rest.iter().map(|s| s.to_string()));
        a
    };
    let mut c = env.command(&bin("paliadin-cli"));
    for (k, v) in chat_env(&env) {
        c.env(k, v);
    }
    c.args(local(&["turn", "--session", "p", "to be pruned"]));
    run(&mut c, None, WAIT).ok();
    // No: nothing goes, exit 1.
    let pane = Pane::run(&env, &local(&["log", "prune", "--older-than", "0s"]), 100);
    pane.shows("delete 1 turns and 0 probes started before ");
    pane.shows("[y/N]");
    pane.line("n");
    assert_eq!(pane.exit_status(), 1, "{}", pane.screen());
    assert_eq!(rows(&db).len(), 1);
    drop(pane);
    // Yes: it goes.
    let pane = Pane::run(&env, &local(&["log", "prune", "--older-than", "0s"]), 100);
    pane.shows("[y/N]");
    pane.line("y");
    assert_eq!(pane.exit_status(), 0, "{}", pane.screen());
    pane.shows("deleted 1 turns");
    assert!(rows(&db).is_empty());
}

/// The real Claude Code (and the mock API) behind `turn` and `chat` in a
/// terminal: the step turns beside the spinner, and `chat` keeps each step
/// as a line above the reply (plain with NO_COLOR).
#[test]
fn turn_and_chat_show_the_agents_steps_in_a_terminal() {
    let w = ClaudeEnv::with(ClaudeOptions {
        wait_secs: 60,
        ..ClaudeOptions::default()
    });
    // Every tool offered (not the installer's `--tools Read`), so that the
    // permission rules deny the Bash call after its step shows.
    w.remove_agent_args(&["--tools"]);
    let invoices = w.env.workdir.join("invoices.csv");
    std::fs::write(&invoices, "id,total\n42,SECRET-TOTAL-9d1\n").expect("invoices");
    let invoices = invoices.canonicalize().expect("real path");
    let missing = invoices.with_file_name("missing.txt");
    // Each model call takes a second, so each step stays on screen a while.
    let message = format!(
        "mock: slow 1000\nmock: tool Read {}\nmock: tool Bash {}\nmock: tool Read {}\nwhat do I owe?",
        serde_json::json!({ "file_path": invoices }),
        serde_json::json!({ "command": "ls -la /" }),
        serde_json::json!({ "file_path": missing }),
    );
    let db = w.env.tmp.path().join("turns.db");
    let args = |rest: &[&str]| {
        let mut a: Vec<String> = vec![
            "--transport".into(),
            "local".into(),
            "--shim".into(),
            w.shim_bin().to_string_lossy().into_owned(),
            "--db".into(),
            db.to_string_lossy().into_owned(),
        ];
        a.extend(rest.iter().map(|s| s.to_string()));
        a
    };
    let path = [("PATH", claude_path(&w.claude))];
    let turn = Pane::run_with(
        &w.env,
        &args(&["turn", "--session", "tty", &message]),
        100,
        &path,
    );
    // The denied command's step stays while the model thinks again.
    let s = turn.shows("Running ls · ");
    assert!(!s.contains("SECRET-TOTAL"), "{s}");
    turn.shows("tool failed");
    assert_eq!(turn.exit_status(), 0, "{}", turn.screen());
    let s = turn.screen();
    assert!(!s.contains("Running ls"), "the spinner is erased\n{s}");
    drop(turn);

    let no_color = [("PATH", claude_path(&w.claude)), ("NO_COLOR", "1".into())];
    let chat = Pane::run_with(&w.env, &args(&["chat", "--session", "tty"]), 100, &no_color);
    chat.prompt();
    chat.tmux(&["send-keys", "-t", "chat", "-l", "\"\"\""])
        .code(0);
    chat.key("Enter");
    for line in message.lines() {
        chat.tmux(&["send-keys", "-t", "chat", "-l", line]).code(0);
        chat.key("Enter");
    }
    chat.tmux(&["send-keys", "-t", "chat", "-l", "\"\"\""])
        .code(0);
    chat.key("Enter");
    let s = chat.replies(1);
    let at = |needle: &str| {
        s.find(needle)
            .unwrap_or_else(|| panic!("no {needle:?} on screen:\n{s}"))
    };
    let (read, run, failed, reply) = (
        at("· Reading invoices.csv\n"),
        at("· Running ls\n"),
        at("· Read failed: missing.txt\n"),
        at("tool failed"),
    );
    assert!(read < run && run < failed && failed < reply, "{s}");
    assert!(!s.contains("SECRET-TOTAL"), "{s}");
    let raw = chat.screen_escapes();
    let step = raw
        .lines()
        .find(|l| l.contains("Reading invoices.csv"))
        .unwrap_or_default();
    assert!(!step.contains('\u{1b}'), "NO_COLOR: {step:?}");
}

#[test]
fn ctrl_c_cancels_a_chat_turn_with_and_without_connection_reuse() {
    let mut w = ClaudeEnv::with_ssh();
    // Each agent started within the installer's wait (a start bounded by
    // 3 s could lose its first Enter), then the shim's wait made short, so
    // that chat follows a turn past it.
    for session in ["reused", "fresh"] {
        w.turn_ssh(session, "warm up").code(0);
    }
    let config = w.shim_config();
    let short = config.replace("wait_secs = 30\n", "wait_secs = 3\n");
    assert_ne!(config, short, "{config}");
    std::fs::write(&w.env.config, short).expect("the shim config");
    let path = [("PATH", claude_path(&w.claude))];
    let db = w.env.db();
    for (session, mux) in [("reused", true), ("fresh", false)] {
        let mut args = w.env.cli_args(true);
        if !mux {
            args.push("--no-mux".into());
        }
        args.extend(["chat", "--session", session].map(String::from));
        let chat = Pane::run_with(&w.env, &args, 100, &path);
        chat.prompt();
        chat.line("hello");
        chat.replies(1);
        chat.prompt();
        chat.line("mock: slow-close 60000");
        w.wait_pane(session, WAIT, "the streamed text", |p| {
            p.contains("echo: mock: slow-close") && p.contains("esc to interrupt")
        });
        // Once the shim's wait has passed (the row says `timeout`), chat
        // still waits, and Ctrl-C cancels the turn it follows.
        let conn = rusqlite::Connection::open(&db).unwrap();
        let row = |conn: &rusqlite::Connection| -> (String, Option<String>) {
            conn.query_row(
                "SELECT status, error_code FROM turns WHERE session = ?1 \
                 AND message = 'mock: slow-close 60000'",
                [session],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap_or_default()
        };
        chat.until("the shim's wait to pass", |_| row(&conn).0 == "pending");
        let pressed = Instant::now();
        chat.key("C-c");
        let s = chat.shows("(cancelled) turn ");
        chat.prompt();
        eprintln!(
            "Ctrl-C to the prompt ({}): {:.2} s",
            if mux { "connection reused" } else { "--no-mux" },
            pressed.elapsed().as_secs_f64()
        );
        assert!(!s.contains("thinking…"), "no stale spinner:\n{s}");
        let p = w.pane(session);
        assert!(
            p.contains("Interrupted · What should Claude do instead?"),
            "the agent's turn was stopped:\n{p}"
        );
        let (status, code) = row(&conn);
        assert_eq!(
            (status.as_str(), code.as_deref()),
            ("error", Some("cancelled"))
        );
        // The next turn is answered at once.
        chat.line("after the cancel");
        let s = chat.replies(2);
        assert!(s.contains(&ClaudeEnv::echo("after the cancel")), "{s}");
        chat.prompt();
        chat.line("/quit");
        assert_eq!(chat.exit_status(), 0, "{}", chat.screen());
        drop(chat);

        // `turn` the same.
        let mut args = w.env.cli_args(true);
        if !mux {
            args.push("--no-mux".into());
        }
        args.extend(["turn", "--session", session, "mock: slow-close 60001"].map(String::from));
        let turn = Pane::run_with(&w.env, &args, 100, &path);
        w.wait_pane(session, WAIT, "the streamed text", |p| {
            p.contains("echo: mock: slow-close 60001") && p.contains("esc to interrupt")
        });
        let pressed = Instant::now();
        turn.key("C-c");
        assert_eq!(turn.exit_status(), 130, "{}", turn.screen());
        eprintln!(
            "Ctrl-C to the end of `turn` ({}): {:.2} s",
            if mux { "connection reused" } else { "--no-mux" },
            pressed.elapsed().as_secs_f64()
        );
        let s = turn.screen();
        assert!(s.contains("cancelled"), "{s}");
        assert!(!s.contains("thinking…"), "no stale spinner:\n{s}");
        w.wait_pane(session, WAIT, "the interruption", |p| {
            p.matches("Interrupted · What should Claude do instead?")
                .count()
                >= 2
        });
    }
}

/// Issue 17 item 1: a reply carrying each of the 14 payloads of
/// `paliadin_core::text::PAYLOADS` (in its body, its trailer's tools and
/// tag, and a tool's target in its events), shown by `turn`, `turn
/// --events`, `poll`, `log show`, `chat`, `log` and `log search` with stdout
/// a real terminal, then by `turn`'s spinner with stderr one: the pane's
/// title and tmux's paste buffers unchanged (OSC 52 would make one: the
/// server's `set-clipboard` is on), every payload shown as visible text, and
/// the raw bytes the programs wrote (`pipe-pane`) free of ESC and C1 (with
/// the spinner's own erase and cursor-up alone allowed). The same reply
/// piped is the agent's bytes exactly.
#[test]
fn no_payload_of_a_reply_acts_on_a_terminal_and_piped_it_stays_exact() {
    use base64::Engine as _;
    use paliadin_core::text::PAYLOADS;
    let env = TestEnv::new();
    let db = env.tmp.path().join("turns.db");
    let cli_args = |rest: &[&str]| {
        let mut a = chat_args(&db, "x")[..6].to_vec();
        a.extend(rest.iter().map(|s| s.to_string()));
        a
    };
    let b64 = |p: &str| base64::engine::general_purpose::STANDARD.encode(p);
    // Piped first: byte for byte, and the turn ids for poll and log show.
    let mut ids = Vec::new();
    for (i, (what, p)) in PAYLOADS.iter().enumerate() {
        let session = format!("p{i}");
        let msg = format!("paliadin-test-reply-b64: {}", b64(p));
        let mut c = env.command(&bin("paliadin-cli"));
        for (k, v) in chat_env(&env) {
            c.env(k, v);
        }
        c.args(cli_args(&["turn", "--session", &session, &msg]));
        let r = run(&mut c, None, WAIT);
        assert_eq!(r.code, 0, "{what}: {r}");
        assert_eq!(
            r.stdout,
            format!("{p}\n").into_bytes(),
            "{what}: piped is exact"
        );
        let mut c = env.command(&bin("paliadin-cli"));
        for (k, v) in chat_env(&env) {
            c.env(k, v);
        }
        c.args(cli_args(&["log", "--json", "--limit", "1"]));
        let rows: serde_json::Value =
            serde_json::from_str(&run(&mut c, None, WAIT).ok()).expect("log --json is JSON");
        ids.push(rows[0]["turn_id"].as_str().expect("a turn id").to_owned());
    }
    // The script the pane runs: it waits for a line on its terminal, so
    // that pipe-pane records from its first byte.
    let mut script = String::from(
        "read go\ncli() { \"$CLI\" --transport local --shim \"$SHIM\" --db \"$DB\" \"$@\"; }\n",
    );
    for (i, (_, p)) in PAYLOADS.iter().enumerate() {
        let msg = format!("paliadin-test-reply-b64: {}", b64(p));
        let id = &ids[i];
        script.push_str(&format!(
            "cli turn --session p{i} '{msg}' 2>>\"$ERR\"\n\
             cli turn --events --session p{i} '{msg}' 2>>\"$ERR\"\n\
             cli poll {id} 2>>\"$ERR\"\n\
             cli log show {id} 2>>\"$ERR\"\n\
             printf '%s\\n' '{msg}' | cli chat --session p{i} 2>>\"$ERR\"\n"
        ));
    }
    script.push_str("cli log --limit 100 2>>\"$ERR\"\ncli log search reply 2>>\"$ERR\"\n");
    // The spinner: stderr the terminal, the reply to /dev/null.
    for (i, (_, p)) in PAYLOADS.iter().enumerate() {
        let msg = format!(
            "paliadin-test: slow:400\npaliadin-test-reply-b64: {}",
            b64(p)
        );
        let file = env.tmp.path().join(format!("spin{i}.txt"));
        std::fs::write(&file, msg).unwrap();
        script.push_str(&format!(
            "echo SPIN{i}; cli turn --session p{i} - <'{}' >/dev/null\n",
            file.display()
        ));
    }
    script.push_str("echo ALL-DONE\n");
    let script_file = env.tmp.path().join("payloads.sh");
    std::fs::write(&script_file, script).unwrap();
    let err = env.tmp.path().join("stderr.txt");
    let raw = env.tmp.path().join("raw.bin");
    let extra: Vec<(&str, std::ffi::OsString)> = vec![
        ("CLI", bin("paliadin-cli").into()),
        ("SHIM", bin("paliadin-shim").into()),
        ("DB", db.clone().into()),
        ("ERR", err.clone().into()),
        ("NO_COLOR", "1".into()),
        ("PATH", std::env::var_os("PATH").unwrap_or_default()),
    ];
    let pane = Pane::program(
        &env,
        Path::new("sh"),
        &[script_file.to_string_lossy().into_owned()],
        120,
        &extra,
    );
    pane.tmux(&["set-option", "-g", "set-clipboard", "on"])
        .code(0);
    let title = pane
        .tmux(&["display-message", "-p", "-t", "chat", "#{pane_title}"])
        .ok();
    let raw_cmd = format!("cat >> '{}'", raw.display());
    pane.tmux(&["pipe-pane", "-t", "chat", "-o", &raw_cmd])
        .code(0);
    pane.key("Enter");
    assert_eq!(pane.exit_status(), 0, "{}", pane.screen());
    let screen = pane.screen();
    assert!(screen.contains("ALL-DONE"), "{screen}");
    assert_eq!(
        pane.tmux(&["display-message", "-p", "-t", "chat", "#{pane_title}"])
            .ok(),
        title,
        "the pane's title is unchanged"
    );
    assert_eq!(
        pane.tmux(&["list-buffers"]).ok(),
        "",
        "no paste buffer was made"
    );
    // Every payload shown as what it is.
    for (what, p) in PAYLOADS {
        let shown = paliadin_core::text::for_terminal(p);
        assert!(
            screen.contains(shown.as_ref()),
            "{what}: {shown:?} not shown:\n{screen}"
        );
    }
    // What the programs wrote, once the recorder has it all.
    let deadline = Instant::now() + WAIT;
    let bytes = loop {
        let b = std::fs::read(&raw).unwrap_or_default();
        if String::from_utf8_lossy(&b).contains("ALL-DONE") {
            break b;
        }
        assert!(Instant::now() < deadline, "pipe-pane recorded no end");
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(pane);
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let spin = text.find("SPIN0").expect("the spinner part ran");
    let (plain, spinner) = text.split_at(spin);
    let bad = |s: &str| {
        s.char_indices()
            .find(|(_, c)| {
                *c == '\x1b'
                    || ('\u{80}'..='\u{9f}').contains(c)
                    || *c == '\x07'
                    || *c == '\x08'
                    || *c == '\x7f'
            })
            .map(|(i, _)| {
                s[i.saturating_sub(40)..]
                    .chars()
                    .take(80)
                    .collect::<String>()
            })
    };
    assert_eq!(bad(plain), None, "stdout on a terminal carries no control");
    assert!(!plain.contains('\u{202e}') && !plain.contains('\u{200b}'));
    // The spinner's own redraws are the only escapes on its line.
    assert!(
        spinner.contains("Reading "),
        "the spinner showed the step:\n{spinner:?}"
    );
    let own = spinner
        .replace("\x1b[2K", "")
        .replace("\x1b[1A", "")
        .replace("\x1b[?25l", "")
        .replace("\x1b[?25h", "");
    assert_eq!(
        bad(&own),
        None,
        "the spinner carries no control of the agent's"
    );
    assert!(
        !spinner.contains("line\x1b[1A"),
        "the payload's own cursor-up"
    );
}

/// The arguments of paliadin-cli in a pane against `w`'s installed shim
/// (local, or over its sshd) and its log, then `rest`.
fn claude_args(w: &mut ClaudeEnv, ssh: bool, rest: &[&str]) -> Vec<String> {
    let mut a = w.env.cli_args(ssh);
    if let Some(i) = a.iter().position(|a| a == "--shim") {
        a[i + 1] = w.shim_bin().to_string_lossy().into_owned();
    }
    a.extend(rest.iter().map(|s| s.to_string()));
    a
}

/// A laptop in approve mode (issue 14 item 2) that waits `secs` for an
/// answer, with an sshd.
fn approving(secs: u64) -> ClaudeEnv {
    let w = ClaudeEnv::with(ClaudeOptions {
        ssh: true,
        wait_secs: 60,
        ..ClaudeOptions::default()
    });
    // Every tool offered: since issue 17 the installer offers Bash only
    // with `--allow-bash`, inside Claude Code's sandbox.
    w.remove_agent_args(&["--tools"]);
    std::fs::write(
        &w.env.config,
        format!("{}approve_secs = {secs}\n", w.shim_config()),
    )
    .expect("the shim config");
    w
}

/// A message whose model runs `touch <workdir>/<name>` (after a second of
/// thinking), and that file.
fn touch(w: &ClaudeEnv, name: &str) -> (PathBuf, String) {
    let file = w.env.workdir.join(name);
    let cmd = serde_json::json!({
        "command": format!("touch {} && echo touched", file.display()),
        "description": "make file",
    });
    let message = format!("mock: slow 1000\nmock: tool Bash {cmd}\nplease make the file");
    (file, message)
}

/// Issue 14 item 2: in approve mode `chat` asks in place, "Allow Bash:
/// touch? [y/N]", and answers over ssh with the connection reused: `y`
/// runs the tool, `n` or a bare Enter denies it and the reply goes on, and
/// Ctrl-C while asked cancels the turn. Keys typed during the turn before
/// the question are no answer: they wait for the next prompt.
#[test]
fn chat_asks_in_place_whether_to_allow_a_tool_call() {
    let mut w = approving(30);
    let path = [("PATH", claude_path(&w.claude))];
    let args = claude_args(&mut w, true, &["chat", "--session", "ask"]);
    let chat = Pane::run_with(&w.env, &args, 200, &path);
    let send = |message: &str| {
        chat.line("\"\"\"");
        for l in message.lines() {
            chat.line(l);
        }
        chat.line("\"\"\"");
    };
    let asked = |n: usize| {
        chat.until(&format!("question {n}"), |s| {
            s.matches("Allow Bash: touch? [y/N] ").count() >= n
        })
    };
    chat.prompt();

    // Allowed, with keys typed ahead while the model thinks.
    let (allowed, message) = touch(&w, "allowed");
    send(&message);
    chat.shows("thinking…");
    chat.tmux(&["send-keys", "-t", "chat", "-l", "typed ahead"])
        .code(0);
    let s = asked(1);
    assert!(!s.contains("typed ahead"), "no echo during a turn:\n{s}");
    let pressed = Instant::now();
    chat.line("y");
    chat.shows("· allowed\n");
    eprintln!(
        "y to `· allowed` (the answer over the reused connection): {:.2} s",
        pressed.elapsed().as_secs_f64()
    );
    let s = chat.replies(1);
    assert!(allowed.exists(), "the allowed command ran:\n{s}");
    assert!(s.contains("Allow Bash: touch? [y/N] y\n"), "{s}");
    assert!(s.contains("· allowed\n"), "{s}");
    assert!(!s.contains("tool failed"), "{s}");
    // The keys typed ahead are the next prompt's, not the answer.
    chat.at("> typed ahead");
    chat.key("C-u");
    chat.prompt();

    // Denied with `n`, then with a bare Enter: the reply goes on.
    for (n, (name, answer)) in [("denied", "n"), ("unanswered", "")].iter().enumerate() {
        let (file, message) = touch(&w, name);
        send(&message);
        asked(n + 2);
        chat.line(answer);
        let s = chat.replies(n + 2);
        assert!(!file.exists(), "{answer:?} denies:\n{s}");
        assert_eq!(s.matches("· denied\n").count(), n + 1, "{s}");
        assert_eq!(s.matches("tool failed: ").count(), n + 1, "{s}");
        chat.prompt();
    }

    // Ctrl-C while asked: the turn is cancelled, nothing answered.
    let (file, message) = touch(&w, "cancelled");
    send(&message);
    asked(4);
    chat.key("C-c");
    chat.shows("(cancelled) turn ");
    chat.prompt();
    // The terminal echoes again at the prompt.
    chat.tmux(&["send-keys", "-t", "chat", "-l", "echoed"])
        .code(0);
    chat.at("> echoed");
    chat.key("C-u");
    let conn = rusqlite::Connection::open(w.env.db()).expect("the log");
    let rows: Vec<(String, Option<String>)> = conn
        .prepare("SELECT status, error_code FROM turns ORDER BY started_ms")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let want = |s: &str, c: Option<&str>| (s.to_owned(), c.map(str::to_owned));
    assert_eq!(
        rows,
        [
            want("ok", None),
            want("ok", None),
            want("ok", None),
            want("error", Some("cancelled")),
        ]
    );
    assert!(!file.exists());
    chat.line("/quit");
    assert_eq!(chat.exit_status(), 0, "{}", chat.screen());
}

/// `turn` on a terminal names the command that answers a request from
/// another shell, with a prefix of the turn's id that `approve` takes.
#[test]
fn turn_on_a_terminal_says_how_to_answer_a_request() {
    let mut w = approving(30);
    let path = [("PATH", claude_path(&w.claude))];
    let (file, message) = touch(&w, "asked");
    let args = claude_args(&mut w, false, &["turn", "--session", "ask", &message]);
    let turn = Pane::run_with(&w.env, &args, 200, &path);
    let hint = "Allow Bash: touch? answer from another shell: paliadin-cli approve ";
    let s = turn.shows(hint);
    let line = s.lines().find(|l| l.contains(hint)).expect("the hint");
    let rest = line.split_once(hint).unwrap().1;
    assert!(rest.ends_with(" 1 allow|deny"), "{line}");
    let id8 = rest.split(' ').next().unwrap();
    assert_eq!(id8.len(), 8, "{line}");
    let r = w.cli(false, &["approve", id8, "1", "allow"], None);
    assert!(r.ok().starts_with("allowed request 1 of turn "), "{r}");
    assert_eq!(turn.exit_status(), 0, "{}", turn.screen());
    assert!(file.exists(), "{}", turn.screen());
}

/// An answer after the laptop's bound is refused, and chat says so: the
/// request was denied when its time ran out, and the turn went on.
#[test]
fn chat_says_when_an_answer_came_too_late() {
    let mut w = approving(1);
    let path = [("PATH", claude_path(&w.claude))];
    let args = claude_args(&mut w, false, &["chat", "--session", "late"]);
    let chat = Pane::run_with(&w.env, &args, 200, &path);
    chat.prompt();
    let (file, message) = touch(&w, "late");
    chat.line("\"\"\"");
    for l in message.lines() {
        chat.line(l);
    }
    chat.line("\"\"\"");
    chat.shows("Allow Bash: touch? [y/N] ");
    // The model got the denial: the laptop answered for nobody.
    w.wait_pane("late", WAIT, "the denial", |p| {
        p.contains("Nobody answered")
    });
    chat.line("y");
    let s = chat.replies(1);
    assert!(s.contains("not answered: "), "{s}");
    assert!(s.contains("its time ran out"), "{s}");
    assert!(s.contains("tool failed: "), "{s}");
    assert!(!file.exists(), "{s}");
}
