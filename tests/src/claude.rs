//! The real Claude Code in the suite: a [`ClaudeEnv`] is a laptop where
//! claude has been used before (a temp HOME with `~/.claude.json` past
//! onboarding and `~/.claude/settings.json` pointing at a [`MockApi`] on
//! loopback), set up by running the real `install/laptop.sh` with the cached
//! claude first on PATH, so the shim config the installer writes is the one
//! every turn uses. It builds on [`TestEnv`] (private tmux socket, sshd,
//! cleanup on drop) and, when a test fails, prints what it needs to be
//! understood: the installer's output, the shim config, every pane, and the
//! mock's request log.
//!
//! It never installs anything: `tests/run` installs the pinned Claude Code
//! into the cache that [`claude_bin`] names, and a missing one is a failure
//! that says so, never a skip.
//!
//! A test scripts the model with `mock: …` lines in its message (see
//! [`crate::mock_api::Directive`]) and checks both ends:
//!
//! ```no_run
//! use paliadin_tests::claude::{claude_text, ClaudeEnv};
//! let mut w = ClaudeEnv::new(); // or ClaudeEnv::with_ssh(), ClaudeEnv::with(ClaudeOptions {..})
//! let t = w.turn("session", "Hello"); // paliadin-cli turn --json, local; turn_ssh over ssh
//! t.code(0);
//! assert_eq!(t.response(), ClaudeEnv::echo("Hello")); // the mock's default answer
//! let calls = w.requests_for(&t); // the model calls that carried this turn
//! assert_eq!(calls.len(), 1);
//! assert_eq!(calls[0].message(), claude_text("Hello"));
//! let t = w.turn("session", "mock: status 529\nHello?");
//! t.code(76);
//! ```

use crate::mock_api::{echo_of, Limits, MockApi, Options, Request};
use crate::{bin, run, Run, Sshd, TestEnv, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The pinned Claude Code version; `tests/run` reads the same file.
pub const CLAUDE_CODE_VERSION: &str = include_str!("../claude-code-version");

/// The pinned version without its newline.
pub fn claude_version() -> &'static str {
    CLAUDE_CODE_VERSION.trim()
}

/// The cached Claude Code binary: `$PALIADIN_CLAUDE` (which `tests/run`
/// exports), else `target/claude-code/<version>/node_modules/.bin/claude`
/// under the workspace root, where `tests/run` puts it. Panics, saying to
/// run `tests/run`, when it is not there.
pub fn claude_bin() -> PathBuf {
    let p = match std::env::var_os("PALIADIN_CLAUDE") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root")
            .join("target/claude-code")
            .join(claude_version())
            .join("node_modules/.bin/claude"),
    };
    assert!(
        p.exists(),
        "Claude Code {} is not installed at {}: run tests/run, which installs it (npm install --prefix target/claude-code/{} @anthropic-ai/claude-code@{})",
        claude_version(),
        p.display(),
        claude_version(),
        claude_version(),
    );
    p
}

/// How the laptop's claude signs in (see docs/PROTOCOL.md, "A subscriber's
/// laptop").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// A claude.ai subscriber signed in with `claude /login`: a Max plan's
    /// OAuth login in `~/.claude/.credentials.json` (`claudeAiOauth` with
    /// the `user:inference` scope, valid for a year), the mock reporting
    /// the plan's limits ([`Limits::under`]`(0.2, 0.1)`). The default.
    Subscriber,
    /// A subscriber's long-lived token from `claude setup-token` (what a
    /// Mac over ssh, its keychain locked, needs): `CLAUDE_CODE_OAUTH_TOKEN`
    /// in the settings' `env`, no credentials file; plan limits as for
    /// [`Auth::Subscriber`].
    SubscriberToken,
    /// An API key's set-up: `ANTHROPIC_AUTH_TOKEN` in the settings' `env`;
    /// plan limits never apply and the mock reports none.
    ApiKey,
}

/// The access token of [`Auth::Subscriber`]'s login and the token of
/// [`Auth::SubscriberToken`]: shaped like claude.ai's, known to the mock.
pub const OAUTH_TOKEN: &str = "sk-ant-oat01-paliadin-mock-access-token";

/// The account of [`Auth::Subscriber`]'s login, as `~/.claude.json`'s
/// `oauthAccount.accountUuid` names it (claude sends it in every model
/// call's `metadata.user_id`).
pub const ACCOUNT_UUID: &str = "7a1b2c3d-0000-4000-8000-00000000a001";

/// How a [`ClaudeEnv`] is set up.
#[derive(Debug, Clone)]
pub struct ClaudeOptions {
    /// The installer's `--wait-secs`: how long a turn waits for its reply,
    /// which bounds a first turn's wait for claude to start too. 30 s by
    /// default: on CI's two cores, with a second test's claude starting
    /// beside it, a start has taken longer than 10 s.
    pub wait_secs: u64,
    /// A private sshd serving the installer's `authorized_keys`, its client
    /// key given to the installer as `--pubkey`.
    pub ssh: bool,
    /// More installer arguments.
    pub install_args: Vec<String>,
    /// How claude signs in: a subscriber by default.
    pub auth: Auth,
}

impl Default for ClaudeOptions {
    fn default() -> Self {
        ClaudeOptions {
            wait_secs: 30,
            ssh: false,
            install_args: Vec::new(),
            auth: Auth::Subscriber,
        }
    }
}

/// One turn's outcome as `paliadin-cli turn --json` reported it.
#[derive(Debug)]
pub struct Turn {
    pub run: Run,
    /// The `--json` object (`turn_id`, `status`, `response`, `error_code`, …).
    pub json: Value,
}

impl Turn {
    /// The outcome of a finished `paliadin-cli turn --json` run.
    pub fn of(run: Run) -> Turn {
        let json = serde_json::from_str(run.out().trim()).unwrap_or(Value::Null);
        Turn { run, json }
    }

    pub fn id(&self) -> String {
        self.json["turn_id"].as_str().unwrap_or_default().to_owned()
    }

    /// The reply's body, or "" when there is none.
    pub fn response(&self) -> String {
        self.json["response"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Asserts the exit status, showing the whole run otherwise.
    #[track_caller]
    pub fn code(&self, want: i32) -> &Turn {
        self.run.code(want);
        self
    }
}

/// A laptop with the real Claude Code, set up by `install/laptop.sh`,
/// talking to a mock API. Everything goes on drop.
pub struct ClaudeEnv {
    /// The mock Messages API every claude of this world talks to.
    pub mock: MockApi,
    /// The underlying world: temp HOME, private tmux socket, sshd, cleanup.
    /// Its `config` is the installer's shim config.
    pub env: TestEnv,
    /// The installer's run, printed on failure.
    pub install: Run,
    /// The cached claude binary this world runs.
    pub claude: PathBuf,
    /// How its claude signs in.
    pub auth: Auth,
    ssh: bool,
}

impl ClaudeEnv {
    /// A laptop with the default options (local turns only).
    pub fn new() -> ClaudeEnv {
        ClaudeEnv::with(ClaudeOptions::default())
    }

    /// A laptop that also serves ssh, as the server reaches it.
    pub fn with_ssh() -> ClaudeEnv {
        ClaudeEnv::with(ClaudeOptions {
            ssh: true,
            ..ClaudeOptions::default()
        })
    }

    pub fn with(opts: ClaudeOptions) -> ClaudeEnv {
        let claude = claude_bin();
        let mut env = TestEnv::new();
        // The installer writes its own config; TestEnv's must not be taken
        // for one a user wrote.
        let _ = std::fs::remove_file(&env.config);
        let limits = (opts.auth != Auth::ApiKey).then(|| Limits::under(0.2, 0.1));
        let mock = MockApi::with(Options {
            log_file: Some(env.tmp.path().join("mock-api.jsonl")),
            limits,
            ..Options::default()
        })
        .expect("start the mock API");
        write_claude_home(&env.home, &mock.url(), opts.auth);

        let mut c = env.command(Path::new("bash"));
        c.arg(repo().join("install/laptop.sh"))
            .env("PATH", claude_path(&claude))
            .env("TMPDIR", env.tmp.path())
            .arg("--yes")
            .arg("--shim-bin")
            .arg(bin("paliadin-shim"))
            .arg("--workdir")
            .arg(&env.workdir)
            .arg("--tmux-socket")
            .arg(&env.socket)
            .arg("--wait-secs")
            .arg(opts.wait_secs.to_string());
        if opts.ssh {
            let sshd = Sshd::serve_with_env(
                &env.tmp.path().join("sshd"),
                &env.home.join(".ssh/authorized_keys"),
                &[
                    ("HOME", &env.home),
                    ("XDG_CONFIG_HOME", &env.home.join(".config")),
                    ("XDG_STATE_HOME", &env.home.join(".local/state")),
                    ("XDG_DATA_HOME", &env.home.join(".local/share")),
                ],
            );
            c.arg("--pubkey").arg(sshd.client_key.with_extension("pub"));
            env.set_sshd(sshd);
        }
        c.args(&opts.install_args);
        let install = run(&mut c, None, Duration::from_secs(60));
        let world = ClaudeEnv {
            mock,
            env,
            install,
            claude,
            ssh: opts.ssh,
            auth: opts.auth,
        };
        world.install.code(0);
        assert!(
            world.env.config.exists(),
            "the installer wrote no shim config\n{}",
            world.install
        );
        let config = world.shim_config();
        assert!(
            config.contains(&world.claude.to_string_lossy().into_owned()),
            "the installer did not choose the cached claude as the agent:\n{config}\n{}",
            world.install
        );
        let trusted = std::fs::read_to_string(world.env.home.join(".claude.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| {
                let work = world.env.workdir.canonicalize().ok()?;
                v["projects"][work.to_string_lossy().as_ref()]["hasTrustDialogAccepted"].as_bool()
            });
        assert_eq!(
            trusted,
            Some(true),
            "the installer did not mark the workdir trusted in ~/.claude.json (is another claude running? its check counts every claude on the machine)\n{}",
            world.install
        );
        world
    }

    /// The shim config the installer wrote.
    pub fn shim_config(&self) -> String {
        std::fs::read_to_string(&self.env.config).unwrap_or_default()
    }

    /// Adds `args` to the end of the agent's command line in the shim
    /// config the installer wrote, as a user editing it would (e.g.
    /// `--tools Read`); takes effect for sessions started afterwards.
    pub fn add_agent_args(&self, args: &[&str]) {
        let text = self.shim_config();
        let mut out = String::new();
        let mut done = false;
        for line in text.lines() {
            match line
                .strip_prefix("agent = [")
                .and_then(|l| l.strip_suffix(']'))
            {
                Some(words) if !done => {
                    let extra: Vec<String> = args
                        .iter()
                        .map(|a| serde_json::to_string(a).expect("a TOML basic string"))
                        .collect();
                    out.push_str(&format!("agent = [{words}, {}]\n", extra.join(", ")));
                    done = true;
                }
                _ => {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        assert!(done, "no agent line in the shim config:\n{text}");
        std::fs::write(&self.env.config, out).expect("write the shim config");
    }

    /// Sets the shim config's `wait_secs`, as a user editing it would; the
    /// shim reads its config per request, so the next turn waits that long.
    /// For a test whose point is a short wait: its first turn, which also
    /// waits for claude to start, can have the default.
    pub fn set_wait_secs(&self, secs: u64) {
        self.set_config_line("wait_secs = ", format!("wait_secs = {secs}"));
    }

    /// Takes each of `flags` and the value after it out of the agent line:
    /// `["--tools", "--append-system-prompt-file"]` gives the policy of
    /// before issue 13 (every tool offered, the protocol only in the skill).
    pub fn remove_agent_args(&self, flags: &[&str]) {
        let (argv, _) = self.agent_command();
        let mut kept: Vec<String> = Vec::new();
        let mut skip = false;
        for a in argv {
            if std::mem::take(&mut skip) {
                continue;
            }
            if flags.contains(&a.as_str()) {
                skip = true;
                continue;
            }
            kept.push(a);
        }
        self.set_agent_argv(&kept);
    }

    /// Replaces the agent line of the shim config with `argv`.
    pub fn set_agent_argv(&self, argv: &[String]) {
        let line = format!("agent = {}", serde_json::to_string(argv).expect("JSON"));
        self.set_config_line("agent = ", line);
    }

    /// Replaces the shim config's line that starts with `prefix` by `line`.
    fn set_config_line(&self, prefix: &str, line: String) {
        let text = self.shim_config();
        let mut done = false;
        let out: String = text
            .lines()
            .map(|l| {
                if l.starts_with(prefix) && !done {
                    done = true;
                    format!("{line}\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        assert!(done, "no {prefix:?} line in the shim config:\n{text}");
        std::fs::write(&self.env.config, out).expect("write the shim config");
    }

    /// Changes `~/.claude/settings.json` (the user's settings) with `f`;
    /// takes effect for claudes started afterwards.
    pub fn edit_settings(&self, f: impl FnOnce(&mut Value)) {
        edit_json(&self.env.home.join(".claude/settings.json"), f);
    }

    /// Changes `~/.claude.json` with `f`; for claudes started afterwards.
    pub fn edit_claude_json(&self, f: impl FnOnce(&mut Value)) {
        edit_json(&self.env.home.join(".claude.json"), f);
    }

    /// The agent's command line and environment from the installer's shim
    /// config (`agent`, `agent_env`).
    pub fn agent_command(&self) -> (Vec<String>, Vec<(String, String)>) {
        let text = self.shim_config();
        let mut argv = Vec::new();
        let mut env = Vec::new();
        for line in text.lines() {
            if let Some(words) = line.strip_prefix("agent = ") {
                argv = serde_json::from_str(words).expect("the agent line as JSON");
            } else if let Some(table) = line.strip_prefix("agent_env = ") {
                let inner = table.trim().trim_start_matches('{').trim_end_matches('}');
                for kv in inner.split(',').filter(|kv| !kv.trim().is_empty()) {
                    let (k, v) = kv.split_once('=').expect("key = value");
                    let v: String = serde_json::from_str(v.trim()).expect("a TOML basic string");
                    env.push((k.trim().to_owned(), v));
                }
            }
        }
        assert!(
            !argv.is_empty(),
            "no agent line in the shim config:\n{text}"
        );
        (argv, env)
    }

    /// Starts claude by hand in a tmux session `session` of this world's
    /// server, in the workdir, as the shim would (the installer's agent
    /// command line and environment) but with `--settings <settings>` of
    /// the test's own instead of the shim's, followed by `extra`: for facts
    /// about claude that need a settings file the shim does not write yet.
    /// Returns once the pane is on the alternate screen (the input loop
    /// runs: an Enter typed now is not lost).
    pub fn start_claude(&self, session: &str, settings: &Path, extra: &[&str]) {
        let (argv, agent_env) = self.agent_command();
        let mut args: Vec<String> = vec![
            "new-session".into(),
            "-d".into(),
            "-s".into(),
            session.into(),
            "-x".into(),
            "200".into(),
            "-y".into(),
            "50".into(),
            "-c".into(),
            self.env.workdir.to_string_lossy().into_owned(),
            "--".into(),
            "env".into(),
        ];
        let path = claude_path(&self.claude);
        let mut vars = vec![
            (
                "HOME".to_owned(),
                self.env.home.to_string_lossy().into_owned(),
            ),
            ("PATH".to_owned(), path.to_string_lossy().into_owned()),
            ("TERM".to_owned(), "xterm-256color".to_owned()),
            ("LANG".to_owned(), "C.UTF-8".to_owned()),
            // claude keeps a directory and a socket directory there: in
            // this world's temp dir, not the test server's TMPDIR.
            (
                "TMPDIR".to_owned(),
                self.env.temp_dir().to_string_lossy().into_owned(),
            ),
        ];
        vars.extend(agent_env);
        args.extend(vars.iter().map(|(k, v)| format!("{k}={v}")));
        args.extend(argv);
        args.push("--settings".into());
        args.push(settings.to_string_lossy().into_owned());
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.env.tmux(&refs).code(0);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let r = self.env.tmux(&[
                "display-message",
                "-p",
                "-t",
                &format!("={session}:"),
                "#{alternate_on}",
            ]);
            if r.out().trim() == "1" {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "claude started by hand never switched to the alternate screen:\n{}",
                self.panes()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The installed shim (`~/.local/bin/paliadin-shim`).
    pub fn shim_bin(&self) -> PathBuf {
        self.env.home.join(".local/bin/paliadin-shim")
    }

    /// A command in this world's environment, the cached claude first on PATH.
    pub fn command(&self, program: &Path) -> Command {
        let mut c = self.env.command(program);
        c.env("PATH", claude_path(&self.claude));
        c
    }

    /// Runs the installed shim with `args` after `--config <installer's config>`.
    pub fn shim(&self, args: &[&str], stdin: Option<&[u8]>) -> Run {
        let mut c = self.command(&self.shim_bin());
        c.arg("--config").arg(&self.env.config).args(args);
        run(&mut c, stdin, Duration::from_secs(120))
    }

    /// One turn straight through the installed shim: `run-turn <session>
    /// <new id> <base64>`. Returns the run (its stdout is the reply file as
    /// the shim prints it, trailer included) and the turn id.
    pub fn shim_turn(&self, session: &str, message: &str) -> (Run, String) {
        let id = crate::turn_id();
        let r = self.shim(&["run-turn", session, &id, &crate::b64(message)], None);
        (r, id)
    }

    /// A paliadin-cli command (over ssh when `ssh`, else `--transport
    /// local` with the installed shim and its config) with `args`, to run
    /// with [`crate::run`], e.g. on another thread.
    pub fn cli_command(&mut self, ssh: bool, args: &[&str]) -> Command {
        assert!(
            !ssh || self.ssh,
            "this ClaudeEnv has no sshd: make it with ClaudeEnv::with_ssh()"
        );
        let mut c = self.command(&bin("paliadin-cli"));
        let mut global = self.env.cli_args(ssh);
        if !ssh {
            // The installed shim rather than the build's, same config.
            if let Some(i) = global.iter().position(|a| a == "--shim") {
                global[i + 1] = self.shim_bin().to_string_lossy().into_owned();
            }
        }
        c.args(global).args(args);
        c
    }

    /// Runs paliadin-cli (see [`ClaudeEnv::cli_command`]).
    pub fn cli(&mut self, ssh: bool, args: &[&str], stdin: Option<&[u8]>) -> Run {
        let mut c = self.cli_command(ssh, args);
        run(&mut c, stdin, Duration::from_secs(150))
    }

    /// One turn through paliadin-cli with `--json`, the message on stdin.
    pub fn turn_in(&mut self, ssh: bool, session: &str, message: &str) -> Turn {
        let r = self.cli(
            ssh,
            &["turn", "--json", "--session", session, "-"],
            Some(message.as_bytes()),
        );
        Turn::of(r)
    }

    /// One local turn through paliadin-cli.
    pub fn turn(&mut self, session: &str, message: &str) -> Turn {
        self.turn_in(false, session, message)
    }

    /// One turn over ssh through paliadin-cli.
    pub fn turn_ssh(&mut self, session: &str, message: &str) -> Turn {
        self.turn_in(true, session, message)
    }

    /// The model calls whose prompt carries `turn`'s id.
    pub fn requests_for(&self, turn: &Turn) -> Vec<Request> {
        self.mock.requests_for(&turn.id())
    }

    /// The text of every pane of this world's tmux server, each under its
    /// session's name.
    pub fn panes(&self) -> String {
        let mut s = String::new();
        for name in self.env.tmux_sessions() {
            let r = self.env.tmux(&[
                "capture-pane",
                "-p",
                "-J",
                "-S",
                "-60",
                "-t",
                &format!("={name}:"),
            ]);
            s.push_str(&format!("--- pane of {name} ---\n{}\n", r.out().trim_end()));
        }
        if s.is_empty() {
            s.push_str("(no tmux session)\n");
        }
        s
    }

    /// The text of `session`'s pane as it shows now (joined lines, the
    /// visible screen and 60 lines above it), or "" when there is none.
    pub fn pane(&self, session: &str) -> String {
        let r = self.env.tmux(&[
            "capture-pane",
            "-p",
            "-J",
            "-S",
            "-60",
            "-t",
            &format!("={session}:"),
        ]);
        r.out().to_owned()
    }

    /// Waits until `session`'s pane satisfies `pred` (tmux draws only what
    /// claude wrote, so this polls the pane every 50 ms); panics with every
    /// pane after `timeout`. Returns the pane's text.
    #[track_caller]
    pub fn wait_pane(
        &self,
        session: &str,
        timeout: Duration,
        what: &str,
        mut pred: impl FnMut(&str) -> bool,
    ) -> String {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let text = self.pane(session);
            if pred(&text) {
                return text;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{session}'s pane never showed {what} within {timeout:?}:\n{}",
                self.panes()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Types into `session`'s pane as a person would: each item of `keys`
    /// is one `tmux send-keys` call, a key name (`Enter`, `Escape`, `C-c`)
    /// when it is one, else literal text.
    pub fn keys(&self, session: &str, keys: &[&str]) {
        let target = format!("={session}:");
        for k in keys {
            let named = ["Enter", "Escape", "Up", "Down", "Tab", "BSpace", "C-c"].contains(k);
            let r = if named {
                self.env.tmux(&["send-keys", "-t", &target, k])
            } else {
                self.env.tmux(&["send-keys", "-t", &target, "-l", "--", k])
            };
            r.code(0);
        }
    }

    /// Records what claude hands its hooks and its status line from now on
    /// (see [`Recorder`]): adds a hook for every event and a `statusLine`
    /// command to `~/.claude/settings.json`, so call it before the session's
    /// first turn starts claude.
    pub fn record(&self) -> Recorder {
        let (rec, hooks, status) = self.recorder("recorder");
        self.edit_settings(|s| {
            s["hooks"] = hooks;
            s["statusLine"] = status;
        });
        rec
    }

    /// A [`Recorder`] in `<tmp>/<name>` and the `hooks` and `statusLine`
    /// values of a settings file that feed it, to put where a test wants.
    pub fn recorder(&self, name: &str) -> (Recorder, Value, Value) {
        let dir = self.env.tmp.path().join(name);
        std::fs::create_dir_all(dir.join("snapshots")).expect("recorder dir");
        let script = dir.join("record.sh");
        std::fs::write(&script, RECORD_SH).expect("record.sh");
        let cmd = |what: &str| {
            serde_json::json!([{"hooks": [{"type": "command",
                "command": format!("sh {} {} {what}", script.display(), dir.display())}]}])
        };
        let mut hooks = serde_json::Map::new();
        for e in Recorder::EVENTS {
            hooks.insert((*e).to_owned(), cmd("hook"));
        }
        let status = serde_json::json!({"type": "command",
            "command": format!("sh {} {} status", script.display(), dir.display())});
        (Recorder { dir }, Value::Object(hooks), status)
    }

    /// The `messages` of the last model call, abridged, for failure output.
    pub fn last_messages(&self) -> String {
        let Some(last) = self.mock.model_calls().pop() else {
            return String::new();
        };
        let mut s = format!("--- messages of model call #{} ---\n", last.seq);
        for m in last.body["messages"].as_array().into_iter().flatten() {
            let text = m["content"].to_string();
            let short: String = text.chars().take(600).collect();
            let more = if text.chars().count() > 600 {
                " …"
            } else {
                ""
            };
            s.push_str(&format!("{}: {short}{more}\n", m["role"]));
        }
        s
    }

    /// What the default mock answer's body is for `message` as claude hands
    /// it on (see [`claude_text`]).
    pub fn echo(message: &str) -> String {
        echo_of(&claude_text(message))
    }
}

impl Default for ClaudeEnv {
    fn default() -> Self {
        ClaudeEnv::new()
    }
}

impl Drop for ClaudeEnv {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "==== ClaudeEnv at failure ====\n--- installer ---\n{}\n--- shim config ---\n{}\n{}--- mock API log ---\n{}==== end ====",
                self.install,
                self.shim_config(),
                self.panes(),
                self.mock.summary() + &self.last_messages()
            );
        }
    }
}

/// The recorder's hook and status line command: appends `{"at_ms": <Unix
/// ms>, "payload": <stdin>}` as one line to `hooks.jsonl` or
/// `status.jsonl`; for a `Stop` or `StopFailure` it first copies the
/// transcript the payload names to `snapshots/<at_ms>.jsonl` and adds
/// `"snapshot"`: what the transcript held when the hook ran.
const RECORD_SH: &str = r#"dir=$1; what=$2
p=$(cat | tr -d '\n')
at=$(date +%s%3N)
case $what in
status) printf '{"at_ms":%s,"payload":%s}\n' "$at" "$p" >> "$dir/status.jsonl"; echo status ;;
*) snap=
   case $p in
   *'"hook_event_name":"Stop"'*|*'"hook_event_name":"StopFailure"'*)
     t=$(printf '%s' "$p" | sed -n 's/.*"transcript_path":"\([^"]*\)".*/\1/p')
     if [ -n "$t" ] && [ -f "$t" ]; then cp "$t" "$dir/snapshots/$at.jsonl"; snap=",\"snapshot\":\"$dir/snapshots/$at.jsonl\""; fi ;;
   esac
   printf '{"at_ms":%s,"payload":%s%s}\n' "$at" "$p" "$snap" >> "$dir/hooks.jsonl" ;;
esac
"#;

/// What claude handed its hooks and status line, as [`ClaudeEnv::record`]
/// set it up to keep: one JSON object per call, `at_ms` (Unix ms, when the
/// command ran), `payload` (its stdin) and, for `Stop` and `StopFailure`,
/// `snapshot` (a copy of the transcript taken then).
pub struct Recorder {
    pub dir: PathBuf,
}

impl Recorder {
    /// The hook events recorded: every one Claude Code 2.1.328 documents
    /// that an unattended turn can fire.
    pub const EVENTS: &'static [&'static str] = &[
        "SessionStart",
        "UserPromptSubmit",
        "PreToolUse",
        "PostToolUse",
        "PostToolUseFailure",
        "PermissionRequest",
        "Notification",
        "Stop",
        "StopFailure",
        "SubagentStart",
        "SubagentStop",
        "PreCompact",
        "PostCompact",
        "SessionEnd",
        "MessageDisplay",
        "PostToolBatch",
    ];

    fn lines(&self, file: &str) -> Vec<Value> {
        std::fs::read_to_string(self.dir.join(file))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Every hook call so far, in order.
    pub fn hooks(&self) -> Vec<Value> {
        self.lines("hooks.jsonl")
    }

    /// The hook calls of `event` so far.
    pub fn events(&self, event: &str) -> Vec<Value> {
        self.hooks()
            .into_iter()
            .filter(|h| h["payload"]["hook_event_name"] == event)
            .collect()
    }

    /// Every status line call so far, in order.
    pub fn status_lines(&self) -> Vec<Value> {
        self.lines("status.jsonl")
    }

    /// Waits until `pred` holds for the lines of `file` so far (polling it
    /// every 50 ms); panics with `failure(lines)` after `timeout`.
    #[track_caller]
    fn wait_lines(
        &self,
        file: &str,
        timeout: Duration,
        mut pred: impl FnMut(&[Value]) -> bool,
        failure: impl Fn(&[Value]) -> String,
    ) -> Vec<Value> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let lines = self.lines(file);
            if pred(&lines) {
                return lines;
            }
            assert!(std::time::Instant::now() < deadline, "{}", failure(&lines));
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `pred` holds for the hook calls so far; panics with them
    /// after `timeout`.
    #[track_caller]
    pub fn wait_hooks(
        &self,
        timeout: Duration,
        what: &str,
        pred: impl FnMut(&[Value]) -> bool,
    ) -> Vec<Value> {
        self.wait_lines("hooks.jsonl", timeout, pred, |_| {
            format!(
                "no {what} among the hooks within {timeout:?}:\n{}",
                self.summary()
            )
        })
    }

    /// Waits until `pred` holds for the status line calls so far.
    #[track_caller]
    pub fn wait_status(
        &self,
        timeout: Duration,
        what: &str,
        pred: impl FnMut(&[Value]) -> bool,
    ) -> Vec<Value> {
        self.wait_lines("status.jsonl", timeout, pred, |s| {
            format!(
                "no {what} among {} status line calls within {timeout:?}; the last: {}",
                s.len(),
                s.last().map(Value::to_string).unwrap_or_default()
            )
        })
    }

    /// One line per hook call, for failure messages.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        for h in self.hooks() {
            let p = &h["payload"];
            let mut line = format!("{} {}", h["at_ms"], p["hook_event_name"]);
            for k in [
                "error",
                "notification_type",
                "message",
                "prompt",
                "last_assistant_message",
            ] {
                if let Some(v) = p[k].as_str() {
                    let v: String = v.chars().take(100).collect();
                    line.push_str(&format!(" {k}={v:?}"));
                }
            }
            s.push_str(&line);
            s.push('\n');
        }
        s
    }
}

/// Reads the JSON file at `path`, changes it with `f`, writes it back.
fn edit_json(path: &Path, f: impl FnOnce(&mut Value)) {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut v: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    f(&mut v);
    std::fs::write(path, serde_json::to_string_pretty(&v).expect("json"))
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// The lines of a transcript (JSONL), each parsed; unparsable ones skipped.
pub fn transcript(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// What the model receives of `message`: sanitised as the shim does, then
/// as Claude Code 2.1.328 hands pasted text on (tabs become four spaces,
/// trailing newlines are trimmed).
pub fn claude_text(message: &str) -> String {
    paliadin_core::envelope::sanitise(message)
        .replace('\t', "    ")
        .trim_end_matches('\n')
        .to_owned()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// PATH with the cached claude's directory first.
pub fn claude_path(claude: &Path) -> std::ffi::OsString {
    let mut dirs = vec![claude.parent().expect("claude's directory").to_path_buf()];
    if let Some(p) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&p));
    }
    std::env::join_paths(dirs).expect("PATH")
}

/// `~/.claude.json` past onboarding, `~/.claude/settings.json` with the
/// mock as the API and the sign-in `auth` says: what a laptop where claude
/// has been used looks like (see docs/PROTOCOL.md, "A subscriber's laptop").
///
/// The settings' `env`:
/// - `CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC` keeps claude from its
///   updater (an `npm install --global` as root), telemetry, feature flags,
///   the start-up "quota" probe and a title request every turn (see
///   `tests/tests/subscriber.rs`);
/// - `CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL` keeps it from
///   fetching the plugin marketplace (downloads.claude.ai, then `git` from
///   github.com);
/// - `HTTPS_PROXY` and `HTTP_PROXY` are the mock, `NO_PROXY` loopback: a
///   request to any other host shows in [`MockApi::connects`] and is
///   refused.
///
/// For [`Auth::Subscriber`] `oauthAccount` is the account `claude /login`
/// records, its profile fetched just now: a profile older than a day is
/// fetched again from `https://api.anthropic.com/api/oauth/profile`, never
/// through the base URL.
pub fn write_claude_home(home: &Path, url: &str, auth: Auth) {
    let mut dot = serde_json::json!({
        "hasCompletedOnboarding": true,
        "numStartups": 3,
        "projects": {}
    });
    if auth == Auth::Subscriber {
        dot["oauthAccount"] = oauth_account(paliadin_core::timefmt::now_ms());
    }
    std::fs::write(
        home.join(".claude.json"),
        serde_json::to_string_pretty(&dot).expect("json"),
    )
    .expect("write ~/.claude.json");
    let mut env = serde_json::json!({
        "ANTHROPIC_BASE_URL": url,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL": "1",
        "HTTPS_PROXY": url,
        "HTTP_PROXY": url,
        "NO_PROXY": "127.0.0.1,localhost"
    });
    std::fs::create_dir_all(home.join(".claude")).expect("~/.claude");
    match auth {
        Auth::Subscriber => write_credentials(home),
        Auth::SubscriberToken => env["CLAUDE_CODE_OAUTH_TOKEN"] = OAUTH_TOKEN.into(),
        Auth::ApiKey => env["ANTHROPIC_AUTH_TOKEN"] = "paliadin-mock-token".into(),
    }
    let settings = serde_json::json!({ "env": env });
    std::fs::write(
        home.join(".claude/settings.json"),
        serde_json::to_string_pretty(&settings).expect("json"),
    )
    .expect("write ~/.claude/settings.json");
}

/// The `oauthAccount` of `~/.claude.json` after `claude /login` by a Max
/// subscriber, its profile fetched at `fetched_ms` (Unix ms): claude fetches
/// it again when it is a day old or a field is missing.
pub fn oauth_account(fetched_ms: i64) -> Value {
    serde_json::json!({
        "accountUuid": ACCOUNT_UUID,
        "emailAddress": "subscriber@example.com",
        "organizationUuid": "7a1b2c3d-0000-4000-8000-00000000b001",
        "displayName": "Subscriber",
        "hasExtraUsageEnabled": false,
        "billingType": "stripe_subscription",
        "accountCreatedAt": "2025-01-01T00:00:00Z",
        "subscriptionCreatedAt": "2025-01-01T00:00:00Z",
        "ccOnboardingFlags": {},
        "organizationRole": "admin",
        "workspaceRole": null,
        "organizationName": "subscriber@example.com's Organization",
        "profileFetchedAt": fetched_ms
    })
}

/// `~/.claude/.credentials.json` (mode 0600) as `claude /login` leaves it on
/// Linux for a Max subscriber (macOS keeps the same JSON in the login
/// keychain): `claudeAiOauth` with an access token that expires in a year
/// (an expired one would be refreshed at platform.claude.com, offline a
/// failure), a refresh token, the scopes of a claude.ai login
/// (`user:inference` is what makes it a subscriber's), `subscriptionType`
/// and `rateLimitTier`.
pub fn write_credentials(home: &Path) {
    use std::os::unix::fs::OpenOptionsExt as _;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let creds = serde_json::json!({
        "claudeAiOauth": {
            "accessToken": OAUTH_TOKEN,
            "refreshToken": "sk-ant-ort01-paliadin-mock-refresh-token",
            "expiresAt": now_ms + 365 * 86_400_000,
            "scopes": ["user:inference", "user:profile", "user:sessions:claude_code"],
            "subscriptionType": "max",
            "rateLimitTier": "default_claude_max_5x"
        }
    });
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(home.join(".claude/.credentials.json"))
        .expect("write ~/.claude/.credentials.json");
    std::io::Write::write_all(&mut f, creds.to_string().as_bytes()).expect("credentials");
}
