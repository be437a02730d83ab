//! The end-to-end suite's fixtures: a [`TestEnv`] per test with its own temp
//! HOME, its own tmux server on a private socket, its own shim config and
//! state, and on request its own sshd on a loopback port with its own keys and
//! `authorized_keys`. Everything is torn down on drop, also when a test fails
//! (see [`leftovers`]): the tmux server and its socket file, sshd and every
//! process below it, any process still living in the temp dir, the temp dir.
//! Real programs only: tmux, sshd, ssh, SQLite and the test agent.

use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub use serde_json::Value;

pub mod claude;
pub mod leftovers;
pub mod mock_api;

pub use leftovers::{keep_tmux_tmpdir, ScratchDir, TmuxServer};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Where cargo put this workspace's binaries.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// The path of a workspace binary, which must have been built.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: run the suite with `cargo test --workspace`",
        p.display()
    );
    p
}

/// A finished command, printed whole when an assertion about it fails.
#[derive(Debug)]
pub struct Run {
    pub what: String,
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Run {
    pub fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Asserts the exit status, showing everything otherwise.
    #[track_caller]
    pub fn code(&self, want: i32) -> &Run {
        assert_eq!(self.code, want, "unexpected exit status\n{self}");
        self
    }

    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> String {
        self.code(0);
        self.out()
    }

    /// Asserts the stderr line starts with `paliadin-shim: <name>:`.
    #[track_caller]
    pub fn shim_error(&self, code: i32, name: &str) -> &Run {
        self.code(code);
        let want = format!("paliadin-shim: {name}: ");
        assert!(
            self.stderr.starts_with(&want),
            "stderr should start with {want:?}\n{self}"
        );
        assert!(
            self.stdout.is_empty(),
            "stdout should be empty on failure\n{self}"
        );
        self
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let out = self.out();
        let shown: String = out.chars().take(2000).collect();
        write!(
            f,
            "command: {}\nexit: {}\nstdout: {}\nstderr: {}",
            self.what, self.code, shown, self.stderr
        )
    }
}

/// Runs `cmd` with `stdin`, killing it after `limit`.
pub fn run(cmd: &mut Command, stdin: Option<&[u8]>, limit: Duration) -> Run {
    let what = format!("{cmd:?}");
    let out = paliadin_core::child::run(
        cmd,
        paliadin_core::child::Call {
            stdin,
            deadline: Instant::now() + limit,
            cancel: None,
        },
    )
    .unwrap_or_else(|e| panic!("{what}: {e}"));
    Run {
        what,
        code: out.code(),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// One test's world. Dropped in field order: the tmux server (with the
/// agents in it), then sshd, then whatever still lives in the temp dir,
/// then the dir.
pub struct TestEnv {
    tmux: TmuxServer,
    sshd: Option<Sshd>,
    pub tmp: ScratchDir,
    pub home: PathBuf,
    pub socket: String,
    pub state: PathBuf,
    pub config: PathBuf,
    pub agent_log: PathBuf,
    pub workdir: PathBuf,
}

/// Shim settings a test may change.
#[derive(Debug, Clone)]
pub struct ShimSettings {
    pub agent_args: Vec<String>,
    pub agent_hooks: bool,
    pub wait_secs: u64,
    pub ready_timeout_secs: u64,
    pub extra: String,
}

impl Default for ShimSettings {
    fn default() -> Self {
        ShimSettings {
            agent_args: Vec::new(),
            agent_hooks: true,
            wait_secs: 20,
            ready_timeout_secs: 20,
            extra: String::new(),
        }
    }
}

fn toml_str(s: &str) -> String {
    serde_json::to_string(s).expect("string")
}

impl TestEnv {
    /// A world with the test agent in its default mode.
    pub fn new() -> TestEnv {
        TestEnv::with(ShimSettings::default())
    }

    pub fn with(settings: ShimSettings) -> TestEnv {
        // A short name: ssh's control sockets live below it (see runtime_dir).
        let tmp = ScratchDir::new("paliadin-");
        let home = tmp.path().join("home");
        let workdir = home.join("work");
        std::fs::create_dir_all(&workdir).expect("workdir");
        std::fs::create_dir_all(tmp.path().join("tmp")).expect("temp dir");
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let socket = format!("paliadin-test-{}-{n}", std::process::id());
        let env = TestEnv {
            tmux: TmuxServer::new(socket.clone()),
            socket,
            state: home.join(".local/state/paliadin"),
            config: home.join(".config/paliadin/shim.toml"),
            agent_log: home.join("agent.jsonl"),
            workdir,
            home,
            tmp,
            sshd: None,
        };
        env.write_config(&settings);
        env
    }

    /// (Re)writes the shim's config file.
    pub fn write_config(&self, s: &ShimSettings) {
        let mut agent = vec![
            bin("paliadin-test-agent").to_string_lossy().into_owned(),
            "--log".into(),
            self.agent_log.to_string_lossy().into_owned(),
        ];
        agent.extend(s.agent_args.iter().cloned());
        let agent: Vec<String> = agent.iter().map(|a| toml_str(a)).collect();
        let text = format!(
            "agent = [{}]\nagent_hooks = {}\nworkdir = {}\ntmux_socket = {}\nstate_dir = {}\nwait_secs = {}\nready_timeout_secs = {}\n{}\n",
            agent.join(", "),
            s.agent_hooks,
            toml_str(&self.workdir.to_string_lossy()),
            toml_str(&self.socket),
            toml_str(&self.state.to_string_lossy()),
            s.wait_secs,
            s.ready_timeout_secs,
            s.extra,
        );
        std::fs::create_dir_all(self.config.parent().expect("config dir")).expect("config dir");
        std::fs::write(&self.config, text).expect("write config");
    }

    /// A command with this world's environment: temp HOME and TMPDIR,
    /// nothing inherited that could point elsewhere but the run's
    /// `TMUX_TMPDIR` (the same tmux sockets as the test's own tmux calls).
    pub fn command(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        c.env_clear()
            .env("HOME", &self.home)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("XDG_STATE_HOME", self.home.join(".local/state"))
            .env("XDG_DATA_HOME", self.home.join(".local/share"))
            .env("XDG_RUNTIME_DIR", self.runtime_dir())
            .env("TMPDIR", self.temp_dir())
            .env("NO_COLOR", "1")
            .current_dir(&self.home);
        keep_tmux_tmpdir(&mut c);
        c
    }

    /// The environment of `session`'s agent as the shim started it, read
    /// from `/proc/<pid>/environ` of the pid in its `agent.json`: what its
    /// hooks run with, and what a command of another agent running as the
    /// same user can read.
    pub fn agent_environ(&self, session: &str) -> Vec<(String, String)> {
        let record = self.state.join("sessions").join(session).join("agent.json");
        let v: Value = serde_json::from_slice(&std::fs::read(record).expect("agent.json"))
            .expect("agent.json is JSON");
        let pid = v["pid"].as_u64().expect("the agent's pid");
        let raw = std::fs::read(format!("/proc/{pid}/environ")).expect("the agent's environ");
        raw.split(|&b| b == 0)
            .filter_map(|kv| {
                let kv = String::from_utf8_lossy(kv);
                let (k, v) = kv.split_once('=')?;
                Some((k.to_owned(), v.to_owned()))
            })
            .collect()
    }

    /// The hook key of `session`'s agent (`PALIADIN_HOOK_KEY` in its
    /// environment), for a test that plays its hooks.
    pub fn hook_key(&self, session: &str) -> String {
        self.agent_environ(session)
            .into_iter()
            .find(|(k, _)| k == "PALIADIN_HOOK_KEY")
            .map(|(_, v)| v)
            .expect("the agent has a hook key")
    }

    /// the temp dir so that they go with it.
    pub fn temp_dir(&self) -> PathBuf {
        self.tmp.path().join("tmp")
    }

    /// A short private directory (connection sockets must fit in 108 bytes).
    pub fn runtime_dir(&self) -> PathBuf {
        let d = self.tmp.path().join("run");
        let _ = std::fs::create_dir_all(&d);
        let _ = std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o700));
        let control = d.join("paliadin-ssh");
        assert!(
            control.as_os_str().len() <= paliadin_cli::ssh::MAX_CONTROL_DIR_LEN,
            "{} is too long for ssh's control sockets (at most {} bytes): run the suite with a shorter TMPDIR",
            control.display(),
            paliadin_cli::ssh::MAX_CONTROL_DIR_LEN
        );
        d
    }

    /// The turn log of this world's client.
    pub fn db(&self) -> PathBuf {
        self.home.join("turns.db")
    }

    /// Runs paliadin-cli with `args`, over this world's sshd when `ssh`, else locally.
    pub fn cli_in(&mut self, ssh: bool, args: &[&str], stdin: Option<&[u8]>) -> Run {
        let mut c = self.command(&bin("paliadin-cli"));
        c.args(self.cli_args(ssh)).args(args);
        run(&mut c, stdin, Duration::from_secs(150))
    }

    /// The global flags that point paliadin-cli at this world.
    pub fn cli_args(&mut self, ssh: bool) -> Vec<String> {
        let mut v = vec!["--db".to_string(), self.db().to_string_lossy().into_owned()];
        if ssh {
            let s = self.sshd();
            v.extend([
                "--host".into(),
                "127.0.0.1".into(),
                "--port".into(),
                s.port.to_string(),
                "--ssh-user".into(),
                s.user.clone(),
                "--key".into(),
                s.client_key.to_string_lossy().into_owned(),
                "--known-hosts".into(),
                s.known_hosts.to_string_lossy().into_owned(),
            ]);
        } else {
            v.extend([
                "--transport".into(),
                "local".into(),
                "--shim".into(),
                bin("paliadin-shim").to_string_lossy().into_owned(),
            ]);
        }
        v
    }

    /// Runs paliadin-cli over this world's sshd.
    pub fn cli(&mut self, args: &[&str]) -> Run {
        self.cli_in(true, args, None)
    }

    /// Runs the shim locally with `args` after `--config`.
    pub fn shim(&self, args: &[&str]) -> Run {
        self.shim_in(args, None)
    }

    pub fn shim_in(&self, args: &[&str], stdin: Option<&[u8]>) -> Run {
        let mut c = self.command(&bin("paliadin-shim"));
        c.arg("--config").arg(&self.config).args(args);
        run(&mut c, stdin, Duration::from_secs(120))
    }

    /// Runs the shim as sshd's forced command would: request in SSH_ORIGINAL_COMMAND.
    pub fn shim_forced(&self, line: &str, stdin: Option<&[u8]>) -> Run {
        let mut c = self.command(&bin("paliadin-shim"));
        c.arg("--config")
            .arg(&self.config)
            .env("SSH_ORIGINAL_COMMAND", line);
        run(&mut c, stdin, Duration::from_secs(120))
    }

    /// Runs tmux against this world's server.
    pub fn tmux(&self, args: &[&str]) -> Run {
        run(
            self.tmux.command().args(args),
            None,
            Duration::from_secs(10),
        )
    }

    /// The tmux sessions on this world's server.
    pub fn tmux_sessions(&self) -> Vec<String> {
        let r = self.tmux(&["list-sessions", "-F", "#{session_name}"]);
        if r.code != 0 {
            return Vec::new();
        }
        r.out().lines().map(str::to_owned).collect()
    }

    /// Every submission the test agents received, in order.
    pub fn prompts(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.agent_log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("agent log line"))
            .collect()
    }

    /// The messages (without the envelope line) of submitted turns with `turn` id.
    pub fn submissions_of(&self, turn: &str) -> Vec<String> {
        self.prompts()
            .into_iter()
            .filter(|p| p["turn"].as_str() == Some(turn))
            .map(|p| {
                let prompt = p["prompt"].as_str().unwrap_or("");
                prompt
                    .split_once('\n')
                    .map(|(_, m)| m.to_owned())
                    .unwrap_or_default()
            })
            .collect()
    }

    /// Makes `sshd` this world's sshd (instead of one started on first use
    /// by [`TestEnv::sshd`]), e.g. one serving an installer's `authorized_keys`.
    pub fn set_sshd(&mut self, sshd: Sshd) {
        self.sshd = Some(sshd);
    }

    /// The private sshd of this world (started on first use), serving
    /// `authorized_keys` with `line` (`{shim}`, `{config}` and `{key}` filled in).
    pub fn sshd(&mut self) -> &Sshd {
        if self.sshd.is_none() {
            let line = format!(
                "restrict,command=\"{} --config {}\" {{key}}",
                bin("paliadin-shim").display(),
                self.config.display()
            );
            self.sshd = Some(Sshd::start(&self.tmp.path().join("sshd"), &line));
        }
        self.sshd.as_ref().expect("sshd")
    }
}

impl Default for TestEnv {
    fn default() -> Self {
        TestEnv::new()
    }
}

/// A private sshd on a loopback port, with its own host key, client key and
/// `authorized_keys`. Killed on drop, with every process below it (the
/// connections' and sessions' sshd, the forced commands).
pub struct Sshd {
    pub dir: PathBuf,
    pub port: u16,
    pub user: String,
    pub client_key: PathBuf,
    pub known_hosts: PathBuf,
    pub log: PathBuf,
    child: Child,
}

/// A new ed25519 key pair without a passphrase at `path` (and `path.pub`).
pub fn keygen(path: &Path) {
    let r = run(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "paliadin-test", "-f"])
            .arg(path),
        None,
        Duration::from_secs(20),
    );
    r.code(0);
}

/// The sshd binary, or a panic that says how to get it.
pub fn sshd_program() -> PathBuf {
    for p in ["/usr/sbin/sshd", "/usr/local/sbin/sshd"] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    panic!("sshd is not installed: apt-get install -y openssh-server (the README's test command does it in CI)");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The current user's name.
pub fn whoami() -> String {
    let r = run(Command::new("id").arg("-un"), None, Duration::from_secs(5));
    r.ok().trim().to_owned()
}

impl Sshd {
    /// Starts sshd; `line` is an authorized_keys line with `{key}` for the client's public key.
    pub fn start(dir: &Path, line: &str) -> Sshd {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).expect("sshd dir");
        let client_key = dir.join("client_ed25519");
        keygen(&client_key);
        let pubkey = std::fs::read_to_string(client_key.with_extension("pub")).expect("client pub");
        let auth = dir.join("authorized_keys");
        std::fs::write(&auth, format!("{}\n", line.replace("{key}", pubkey.trim())))
            .expect("authorized_keys");
        Sshd::launch(dir, &auth, client_key, &[])
    }

    /// Starts sshd serving an `authorized_keys` file that someone else writes
    /// (an installer); there is no client key of its own.
    pub fn serve(dir: &Path, authorized_keys: &Path) -> Sshd {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).expect("sshd dir");
        Sshd::launch(dir, authorized_keys, dir.join("no-client-key"), &[])
    }

    /// Like [`Sshd::serve`], with a client key made here (`client_ed25519`,
    /// its `.pub` beside it, for the installer's `--pubkey`) and `env` set
    /// in every session (sshd's `SetEnv`, which wins over the account's
    /// HOME): a laptop whose user's HOME is the test's temp HOME.
    pub fn serve_with_env(dir: &Path, authorized_keys: &Path, env: &[(&str, &Path)]) -> Sshd {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).expect("sshd dir");
        let client_key = dir.join("client_ed25519");
        keygen(&client_key);
        Sshd::launch(dir, authorized_keys, client_key, env)
    }

    /// The host's public key (`ssh-ed25519 AAAA...`).
    pub fn host_public_key(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("host_ed25519.pub")).expect("host pub");
        text.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Every session gets `env`, and a TMPDIR in `dir` and the run's
    /// TMUX_TMPDIR unless `env` says otherwise: what the forced command
    /// starts stays in the test's own places.
    fn launch(dir: &Path, auth: &Path, client_key: PathBuf, env: &[(&str, &Path)]) -> Sshd {
        let tmpdir = dir.join("tmp");
        std::fs::create_dir_all(&tmpdir).expect("sshd's TMPDIR");
        let tmux_tmpdir = leftovers::tmux_tmpdir().map(PathBuf::from);
        let mut setenv: Vec<(&str, &Path)> = env.to_vec();
        let defaults = [
            ("TMPDIR", Some(tmpdir.as_path())),
            ("TMUX_TMPDIR", tmux_tmpdir.as_deref()),
        ];
        for (k, v) in defaults {
            if let (Some(v), false) = (v, setenv.iter().any(|(have, _)| *have == k)) {
                setenv.push((k, v));
            }
        }
        let extra: Vec<String> = setenv
            .iter()
            .map(|(k, v)| format!("{k}={}", v.display()))
            .collect();
        let extra = format!("SetEnv {}\n", extra.join(" "));
        let host_key = dir.join("host_ed25519");
        keygen(&host_key);
        let host_pub = std::fs::read_to_string(host_key.with_extension("pub")).expect("host pub");
        let user = whoami();
        // sshd needs its privilege separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let log = dir.join("sshd.log");
        for _attempt in 0..5 {
            let port = free_port();
            let known_hosts = dir.join("known_hosts");
            let host_pub_fields: Vec<&str> = host_pub.split_whitespace().collect();
            std::fs::write(
                &known_hosts,
                format!(
                    "[127.0.0.1]:{port} {} {}\n",
                    host_pub_fields[0], host_pub_fields[1]
                ),
            )
            .expect("known_hosts");
            let config = dir.join("sshd_config");
            let mut f = std::fs::File::create(&config).expect("sshd_config");
            write!(
                f,
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPidFile none\nUsePAM no\nStrictModes no\nPermitRootLogin yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\nAllowUsers {user}\nLogLevel VERBOSE\nMaxStartups 100:30:200\nMaxSessions 100\n{extra}",
                host_key.display(),
                auth.display()
            )
            .expect("write sshd_config");
            drop(f);
            let mut child = Command::new(sshd_program())
                .args(["-D", "-e", "-f"])
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).expect("sshd log"))
                .spawn()
                .expect("start sshd");
            // Await the listening socket (sshd says so in its log).
            let until = Instant::now() + Duration::from_secs(10);
            let mut up = false;
            while Instant::now() < until {
                if let Some(status) = child.try_wait().expect("sshd wait") {
                    let _ = status;
                    break;
                }
                if std::fs::read_to_string(&log)
                    .unwrap_or_default()
                    .contains("Server listening")
                {
                    up = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            if up {
                return Sshd {
                    dir: dir.to_owned(),
                    port,
                    user,
                    client_key,
                    known_hosts,
                    log,
                    child,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "sshd did not start; its log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// The Go service's exact ssh arguments (from its `callShim`), then `--` and `args`.
    pub fn go_client_args(&self, args: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = vec![
            "-F".into(),
            "/dev/null".into(),
            "-i".into(),
            self.client_key.to_string_lossy().into_owned(),
            "-p".into(),
            self.port.to_string(),
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-o".into(),
            format!("UserKnownHostsFile={}", self.known_hosts.display()),
            "-o".into(),
            "StrictHostKeyChecking=yes".into(),
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            "ConnectTimeout=3".into(),
            "-o".into(),
            "ServerAliveInterval=10".into(),
            "-o".into(),
            "ServerAliveCountMax=3".into(),
            format!("{}@127.0.0.1", self.user),
            "--".into(),
        ];
        v.extend(args.iter().map(|s| s.to_string()));
        v
    }

    /// Runs ssh as the Go service does.
    pub fn go_client(&self, args: &[&str], stdin: Option<&[u8]>, limit: Duration) -> Run {
        let mut c = Command::new("ssh");
        c.args(self.go_client_args(args));
        run(&mut c, stdin, limit)
    }
}

impl Sshd {
    /// Kills (SIGKILL) sshd and every sshd process below it (the
    /// per-connection and session processes), as a laptop whose sshd dies
    /// would: the forced command's processes are left running.
    pub fn kill_with_sessions(&self) {
        fn below(pid: u32, out: &mut Vec<u32>) {
            let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
                return;
            };
            for t in tasks.flatten() {
                let children =
                    std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
                for c in children.split_whitespace().filter_map(|c| c.parse().ok()) {
                    out.push(c);
                    below(c, out);
                }
            }
        }
        let mut pids = vec![self.child.id()];
        below(self.child.id(), &mut pids);
        for pid in pids {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.starts_with("sshd") {
                if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
                    let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
                }
            }
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        // Below first: a connection's sshd outlives the listener, and with
        // it the ssh master at the other end.
        leftovers::kill_and_await(&leftovers::descendants_of(self.child.id() as i32));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh turn id.
pub fn turn_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Standard base64 of `s`.
pub fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}
