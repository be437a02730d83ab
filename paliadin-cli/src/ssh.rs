//! The `ssh` program, and nothing else: one constructor of the base command
//! ([`SshConfig::command`]) that sets every option that must always hold, one
//! call per request under a wall-clock deadline ([`SshConfig::call`]), and
//! small pure functions that read ssh's own log ([`classify`],
//! [`telling_line`], [`auth_problem`]), tested on text captured from real
//! OpenSSH 9.2 runs.
//!
//! The request reaches the laptop as words after `--`; the laptop's
//! `authorized_keys` forces `paliadin-shim`, which reads them from
//! `SSH_ORIGINAL_COMMAND` (PROTOCOL section 1). ssh's own messages go to a
//! private log file per call (`-E`), so they never mix with the shim's stderr.
//!
//! This module must never run a shell, never build a command line as one
//! string, never parse the shim's replies, and never decide what a reply
//! means beyond the error code of PROTOCOL section 6.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _};
use std::os::fd::BorrowedFd;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use paliadin_core::child::{self, Call, ChildError};
use paliadin_core::{ExitCode, Request};

use paliadin_core::error_code::ErrorCode;

/// The laptop's sshd port: 22022, which bypasses Tailscale SSH on port 22.
pub const DEFAULT_PORT: u16 = 22022;

/// `ConnectTimeout`, in seconds. It bounds only a fresh connection: a call over
/// an existing master ignores it, which is why every call has a deadline too.
pub const CONNECT_TIMEOUT_SECS: u32 = 3;

/// `ControlPersist`, in seconds: how long an idle master connection lingers.
pub const CONTROL_PERSIST_SECS: u32 = 60;

/// `sun_path` of a unix socket holds 108 bytes with its NUL. The master binds
/// `<ControlPath>.<16 random characters>` first and renames it, and the
/// socket's name ([`SshConfig::control_name`]) is [`CONTROL_NAME_LEN`] hex
/// digits, so the control directory may be at most this long: past it,
/// ssh 9.2 fails the whole call with status 255 ("ControlPath too long" or
/// "unix_listener: path ... too long for Unix domain socket").
pub const MAX_CONTROL_DIR_LEN: usize = 108 - 1 - (1 + CONTROL_NAME_LEN) - (1 + 16);

/// The length of a control socket's name: 160 bits of SHA-256, in hex.
pub const CONTROL_NAME_LEN: usize = 40;

/// The identity files ssh tries when no `-i` is given (OpenSSH 9.2,
/// `IdentitiesOnly=yes` and `-F /dev/null`), under `~/.ssh`.
const DEFAULT_IDENTITIES: &[&str] = &[
    "id_rsa",
    "id_ecdsa",
    "id_ecdsa_sk",
    "id_ed25519",
    "id_ed25519_sk",
    "id_xmss",
    "id_dsa",
];

/// The known_hosts files ssh reads besides `UserKnownHostsFile`.
const GLOBAL_KNOWN_HOSTS: &[&str] = &["/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"];

/// The most of ssh's log read back after a call.
const MAX_LOG_BYTES: u64 = 64 * 1024;

/// How to reach the laptop's shim over ssh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshConfig {
    /// Host name or address (`-p` gives the port; no `user@` here).
    pub host: String,
    /// `-p`; [`DEFAULT_PORT`] unless configured.
    pub port: u16,
    /// The remote user (`user@host`); ssh's default (our own name) when `None`.
    pub user: Option<String>,
    /// `-i`: the private key. With `IdentitiesOnly=yes` it is the only key tried.
    pub key: Option<PathBuf>,
    /// `-o UserKnownHostsFile=`: the laptop's host key, checked strictly.
    pub known_hosts: Option<PathBuf>,
    /// Reuse one connection (`ControlMaster=auto`, `ControlPersist`): every
    /// call but the first skips the connection setup (about 200 ms on
    /// loopback, far more over a real network). On by default.
    pub mux: bool,
    /// Where the master's sockets live (`ControlPath=<dir>/<name>`, the name
    /// from [`SshConfig::control_name`]). Created 0700;
    /// refused when not ours, not private, or longer than [`MAX_CONTROL_DIR_LEN`].
    pub control_dir: PathBuf,
    /// Where each call's private `-E` log file is made, read, and removed.
    pub log_dir: PathBuf,
    /// The ssh program; `ssh` from `PATH` by default.
    pub program: PathBuf,
}

/// What the remote side left, whatever its exit status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    /// The exit status: the shim's own, or 255 for ssh's failures. For a local
    /// shim killed by a signal, 128 + the signal.
    pub status: i32,
    /// The shim's stdout, byte for byte.
    pub stdout: Vec<u8>,
    /// The shim's stderr (ssh's own messages are not in it).
    pub shim_stderr: String,
    /// ssh's own messages for this call (its `-E` log), lines ending in `\n`.
    pub ssh_log: String,
}

impl Reply {
    /// One line for logs and the record's detail: the shim's error line (its
    /// first `paliadin-shim:` line, else its first non-empty stderr line),
    /// else the most telling line of ssh's log; for status 255 (ssh's own
    /// failure) the log comes first. `None` when both are empty.
    pub fn detail(&self) -> Option<String> {
        let lines = || self.shim_stderr.lines().map(str::trim);
        let shim = lines()
            .find(|l| l.starts_with("paliadin-shim:"))
            .or_else(|| lines().find(|l| !l.is_empty()));
        let ssh = telling_line(&self.ssh_log);
        let line = if self.status == SSH_FAILED {
            ssh.or(shim)
        } else {
            shim.or(ssh)
        };
        line.map(|l| paliadin_core::text::one_line(l, Some(300)))
    }
}

/// Why an ssh call left no [`Reply`].
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// The ssh program could not be found.
    #[error("{} is not installed or not on PATH", program.display())]
    Spawn { program: PathBuf },
    /// Killed at the call's deadline, `secs` after it started.
    #[error("ssh did not finish within {secs:.1} s")]
    TimedOut { secs: f64 },
    /// Killed because the cancel fd became readable.
    #[error("ssh was interrupted")]
    Interrupted,
    /// The control directory is unusable; ssh was not run.
    #[error("ssh control directory: {0}")]
    ControlDir(String),
    /// The configuration cannot make a safe command; ssh was not run.
    #[error("ssh configuration: {0}")]
    Config(String),
    /// Any other failure around the call (log file, starting or waiting for ssh).
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
}

impl SshConfig {
    /// A configuration with the defaults: port [`DEFAULT_PORT`], mux on,
    /// program `ssh`, no user, key or known_hosts of its own.
    pub fn new(
        host: impl Into<String>,
        control_dir: impl Into<PathBuf>,
        log_dir: impl Into<PathBuf>,
    ) -> SshConfig {
        SshConfig {
            host: host.into(),
            port: DEFAULT_PORT,
            user: None,
            key: None,
            known_hosts: None,
            mux: true,
            control_dir: control_dir.into(),
            log_dir: log_dir.into(),
            program: PathBuf::from("ssh"),
        }
    }

    /// The name of the control socket: a hash of everything that decides
    /// which key authenticates and which forced command runs, so a call never
    /// reuses a master connection that another identity opened. It covers
    /// user, host and port; the identity file's path, its public key's
    /// SHA-256 fingerprint (the whole file's hash when its public key cannot
    /// be read, "missing" when there is none) and its `-cert.pub`
    /// certificate; without `-i`, ssh's default identities; and the
    /// known_hosts files' paths and contents (the user's and the global ones).
    /// Any change to one of them names a new socket, so the next call makes
    /// a fresh connection that sshd authenticates again.
    pub fn control_name(&self) -> String {
        use sha2::{Digest as _, Sha256};
        let mut h = Sha256::new();
        let mut field = |tag: &str, value: &[u8]| {
            h.update(tag.as_bytes());
            h.update((value.len() as u64).to_be_bytes());
            h.update(value);
        };
        field("v", b"paliadin control socket 1");
        field("user", self.user.as_deref().unwrap_or("").as_bytes());
        field("host", self.host.as_bytes());
        field("port", self.port.to_string().as_bytes());
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let identities: Vec<PathBuf> = match (&self.key, &home) {
            (Some(k), _) => vec![k.clone()],
            (None, Some(home)) => DEFAULT_IDENTITIES
                .iter()
                .map(|n| home.join(".ssh").join(n))
                .collect(),
            (None, None) => Vec::new(),
        };
        for id in &identities {
            field("identity", id.as_os_str().as_encoded_bytes());
            field("fingerprint", identity_fingerprint(id).as_bytes());
            let mut cert = id.as_os_str().to_owned();
            cert.push("-cert.pub");
            field("certificate", &file_digest(Path::new(&cert)));
        }
        let mut known: Vec<PathBuf> = match (&self.known_hosts, &home) {
            (Some(kh), _) => vec![kh.clone()],
            (None, Some(home)) => vec![
                home.join(".ssh/known_hosts"),
                home.join(".ssh/known_hosts2"),
            ],
            (None, None) => Vec::new(),
        };
        known.extend(GLOBAL_KNOWN_HOSTS.iter().map(PathBuf::from));
        for kh in &known {
            field("known_hosts", kh.as_os_str().as_encoded_bytes());
            field("known_hosts_digest", &file_digest(kh));
        }
        let digest = h.finalize();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        hex[..CONTROL_NAME_LEN].to_owned()
    }

    /// `<control_dir>/<control_name>`: the `ControlPath` of this configuration.
    pub fn control_path(&self) -> PathBuf {
        self.control_dir.join(self.control_name())
    }

    /// `[user@]host`, as ssh's destination argument.
    pub fn destination(&self) -> String {
        match &self.user {
            Some(u) => format!("{u}@{}", self.host),
            None => self.host.clone(),
        }
    }

    /// Refuses a host or user that ssh could read as an option or as more
    /// than one word.
    fn check(&self) -> Result<(), SshError> {
        let bad = |s: &str| {
            s.is_empty()
                || s.starts_with('-')
                || s.chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == '@')
        };
        if bad(&self.host) {
            return Err(SshError::Config(format!("invalid host {:?}", self.host)));
        }
        if let Some(u) = &self.user {
            if bad(u) {
                return Err(SshError::Config(format!("invalid user {u:?}")));
            }
        }
        Ok(())
    }

    /// The one constructor of an ssh command: every option that must always
    /// hold, then `[user@]host`, `--` and the request's words. `log_file` is
    /// this call's `-E` file. Options all come before the destination: after
    /// it, ssh would send them to the remote side as words of the request.
    pub fn command(&self, req: &Request, log_file: &Path) -> Command {
        let mut a = self.options(log_file);
        a.extend([self.destination().into(), "--".into()]);
        a.extend(req.to_words().into_iter().map(OsString::from));
        let mut cmd = Command::new(&self.program);
        cmd.args(a);
        // A process group of its own: the terminal's Ctrl-C (or Ctrl-Z)
        // reaches only paliadin-cli, which stops the call itself (a call
        // `interrupted`, then a `cancel`), never ssh, which would exit 255
        // on its own first and make the call look `connection_lost`.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd
    }

    /// Every option of [`SshConfig::command`], the part before the destination.
    fn options(&self, log_file: &Path) -> Vec<OsString> {
        fn cat(a: &str, b: &Path) -> OsString {
            let mut s = OsString::from(a);
            s.push(b);
            s
        }
        let mut a: Vec<OsString> = vec!["-F".into(), "/dev/null".into()];
        if let Some(key) = &self.key {
            a.extend(["-i".into(), key.into()]);
        }
        a.extend(["-p".into(), self.port.to_string().into()]);
        let mut opts: Vec<OsString> = vec!["IdentitiesOnly=yes".into()];
        if let Some(kh) = &self.known_hosts {
            opts.push(cat("UserKnownHostsFile=", kh));
        }
        opts.extend([
            "StrictHostKeyChecking=yes".into(),
            "BatchMode=yes".into(),
            format!("ConnectTimeout={CONNECT_TIMEOUT_SECS}").into(),
            "ServerAliveInterval=10".into(),
            "ServerAliveCountMax=3".into(),
        ]);
        for o in opts {
            a.extend(["-o".into(), o]);
        }
        a.extend(["-T".into(), "-E".into(), log_file.into()]);
        let mux: Vec<OsString> = if self.mux {
            vec![
                "ControlMaster=auto".into(),
                format!("ControlPersist={CONTROL_PERSIST_SECS}").into(),
                cat("ControlPath=", &self.control_path()),
            ]
        } else {
            vec!["ControlMaster=no".into(), "ControlPath=none".into()]
        };
        for o in mux {
            a.extend(["-o".into(), o]);
        }
        a
    }

    /// Asks the master connection whether it runs (`ssh -O check`), with
    /// every option a call has: ssh starts and talks to its master on this
    /// machine, and nothing reaches the laptop. `doctor` times it as ssh's
    /// own share of a reused call. False without a master (or without
    /// connection reuse), or when ssh does not finish by `deadline`.
    pub fn master_running(&self, deadline: Instant) -> bool {
        if !self.mux {
            return false;
        }
        let mut a = self.options(Path::new("/dev/null"));
        a.extend(["-O".into(), "check".into(), self.destination().into()]);
        let mut cmd = Command::new(&self.program);
        cmd.args(a);
        let call = Call {
            stdin: None,
            deadline,
            cancel: None,
        };
        child::run(&mut cmd, call).is_ok_and(|o| o.code() == 0)
    }

    /// Runs one request over ssh. `stdin` goes to the shim's stdin (`None`:
    /// /dev/null). ssh is killed at `deadline` (a call over an existing master
    /// ignores `ConnectTimeout`) or when `cancel` becomes readable.
    ///
    /// Returns `Ok` for any exit status, 255 (ssh's own failure) included:
    /// [`classify`] tells what it means. `Err` only when ssh did not run or
    /// did not finish.
    pub fn call(
        &self,
        req: &Request,
        stdin: Option<&[u8]>,
        deadline: Instant,
        cancel: Option<BorrowedFd<'_>>,
    ) -> Result<Reply, SshError> {
        self.call_with(req, stdin, deadline, cancel, None)
    }

    /// [`SshConfig::call`], with the shim's stdout also handed to `on_line`
    /// line by line as it arrives (a streamed turn, PROTOCOL section 7).
    pub fn call_lines(
        &self,
        req: &Request,
        stdin: Option<&[u8]>,
        deadline: Instant,
        cancel: Option<BorrowedFd<'_>>,
        on_line: &mut dyn FnMut(&[u8]),
    ) -> Result<Reply, SshError> {
        self.call_with(req, stdin, deadline, cancel, Some(on_line))
    }

    fn call_with(
        &self,
        req: &Request,
        stdin: Option<&[u8]>,
        deadline: Instant,
        cancel: Option<BorrowedFd<'_>>,
        on_line: Option<child::OnLine<'_>>,
    ) -> Result<Reply, SshError> {
        let started = Instant::now();
        self.check()?;
        if self.mux {
            check_control_dir(&self.control_dir).map_err(SshError::ControlDir)?;
        }
        let log = LogFile::create(&self.log_dir)?;
        let mut cmd = self.command(req, &log.path);
        let call = Call {
            stdin,
            deadline,
            cancel,
        };
        let out = match on_line {
            Some(f) => child::run_lines(&mut cmd, call, f),
            None => child::run(&mut cmd, call),
        };
        let log_text = log.read();
        let out = out.map_err(|e| match e {
            ChildError::Spawn { source, .. } if source.kind() == io::ErrorKind::NotFound => {
                SshError::Spawn {
                    program: self.program.clone(),
                }
            }
            ChildError::Spawn { program, source } => SshError::Io {
                what: format!("could not start {program}"),
                source,
            },
            ChildError::TimedOut { .. } => SshError::TimedOut {
                secs: deadline.saturating_duration_since(started).as_secs_f64(),
            },
            ChildError::Cancelled { .. } => SshError::Interrupted,
            ChildError::Wait { program, source } => SshError::Io {
                what: format!("waiting for {program}"),
                source,
            },
        })?;
        let (shim_stderr, early) = split_stderr(&String::from_utf8_lossy(&out.stderr));
        Ok(Reply {
            status: out.code(),
            stdout: out.stdout,
            shim_stderr,
            ssh_log: early + &log_text,
        })
    }
}

/// ssh's own failures exit 255; the shim never does (PROTOCOL section 1).
pub const SSH_FAILED: i32 = 255;

/// Log lines that say ssh could not connect.
const UNREACHABLE: &[&str] = &[
    "Connection refused",
    "Connection timed out",
    "timed out",
    "No route to host",
    "Network is unreachable",
    "Could not resolve hostname",
    "Name or service not known",
    "Temporary failure in name resolution",
    "Connection closed by",
    "Connection reset by",
    "kex_exchange_identification",
    "Broken pipe",
];

/// Log lines that say an established connection went away: ssh had already
/// sent the request, so the turn may go on on the laptop. Checked before
/// [`UNREACHABLE`] ("Read from remote host ...: Connection reset by peer"
/// is a lost connection, not a refused one).
const LOST: &[&str] = &[
    // With the full stop: "kex_exchange_identification: Connection closed
    // by remote host" (no stop) is a connection that never came up.
    "closed by remote host.",
    "Shared connection to",
    "not responding",
    "client_loop:",
    "Read from remote host",
];

/// Log lines that say the key was refused or the host key did not match,
/// most telling first.
const AUTH_FAILED: &[&str] = &[
    "REMOTE HOST IDENTIFICATION HAS CHANGED",
    "host key is known for",
    "Too many authentication failures",
    "Permission denied",
    "UNPROTECTED PRIVATE KEY FILE",
    "Host key verification failed",
];

/// Lines ssh writes on a call that worked: never an error, never a detail.
const BENIGN: &[&str] = &["disabling multiplexing", "Warning: Permanently added"];

/// The error code of PROTOCOL section 6 for a finished ssh call, `None` for
/// success. 255 is always ssh's own (the shim never exits 255): its log tells
/// `auth_failed`, then `connection_lost` (an established connection went
/// away, or a reused one ended without a word: the request had gone out),
/// then `unreachable` (no connection: the request never went out); a log
/// with anything else is `shim_error`. Every
/// other status is the shim's and maps through [`ErrorCode::from_shim_exit`],
/// whatever the log says (a "ControlSocket ... already exists, disabling
/// multiplexing" line on a working call is not an error).
pub fn classify(status: i32, ssh_log: &str) -> Option<ErrorCode> {
    if status != SSH_FAILED {
        return ErrorCode::from_shim_exit(ExitCode::from_code(status));
    }
    let has = |pats: &[&str]| {
        ssh_log
            .lines()
            .any(|l| !is_benign(l) && pats.iter().any(|p| l.contains(p)))
    };
    Some(if has(AUTH_FAILED) {
        ErrorCode::AuthFailed
    } else if has(LOST) {
        ErrorCode::ConnectionLost
    } else if has(UNREACHABLE) {
        ErrorCode::Unreachable
    } else if telling_line(ssh_log).is_none() {
        // A call over a master connection that dies mid-call exits 255 and
        // says nothing (OpenSSH 9.2): only a request already handed to the
        // master gets there, since failing to reach the master falls back
        // to a connection of the call's own, which says why it failed.
        ErrorCode::ConnectionLost
    } else {
        ErrorCode::ShimError
    })
}

fn is_benign(line: &str) -> bool {
    BENIGN.iter().any(|b| line.contains(b))
}

/// The line of ssh's log that best says what went wrong: the first line
/// matching the most telling known failure, else the last line that is not
/// benign (the mux fallback message is never chosen). Trimmed of the `@`
/// frame ssh draws around its host-key warning.
pub fn telling_line(ssh_log: &str) -> Option<&str> {
    let lines: Vec<&str> = ssh_log
        .lines()
        .map(|l| l.trim_matches(|c: char| c == '@' || c.is_whitespace()))
        .filter(|l| !l.is_empty() && !is_benign(l))
        .collect();
    AUTH_FAILED
        .iter()
        .chain(LOST)
        .chain(UNREACHABLE)
        .find_map(|p| lines.iter().find(|l| l.contains(p)))
        .or(lines.last())
        .copied()
}

/// Which side of an `auth_failed` call is wrong, read from ssh's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthProblem {
    /// ssh ignored our key because others may read its file: the server's
    /// side. `mode` as ssh says it (`0644`).
    KeyFileMode { mode: String },
    /// The laptop's host key is not the one pinned: the host key changed,
    /// or this is not the laptop.
    HostKeyChanged,
    /// No host key is pinned for the laptop.
    HostKeyUnknown,
    /// The laptop's sshd refused every key offered: its authorized_keys
    /// has no line for ours (or its `from=` does not match).
    KeyRefused,
}

/// The [`AuthProblem`] ssh's log tells, most specific first (a key ignored
/// for its mode is also "Permission denied"); `None` for a log that tells
/// none.
pub fn auth_problem(ssh_log: &str) -> Option<AuthProblem> {
    let has = |p: &str| ssh_log.lines().any(|l| l.contains(p));
    if has("UNPROTECTED PRIVATE KEY FILE") || has("bad permissions") {
        let mode = ssh_log
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("Permissions ")?
                    .split_whitespace()
                    .next()
            })
            .unwrap_or("")
            .to_owned();
        return Some(AuthProblem::KeyFileMode { mode });
    }
    if has("REMOTE HOST IDENTIFICATION HAS CHANGED") {
        return Some(AuthProblem::HostKeyChanged);
    }
    if has("host key is known for") {
        return Some(AuthProblem::HostKeyUnknown);
    }
    if has("Permission denied") || has("Too many authentication failures") {
        return Some(AuthProblem::KeyRefused);
    }
    None
}

impl SshConfig {
    /// `host` as known_hosts names it: `[host]:port`, or `host` for port 22.
    pub fn host_pattern(&self) -> String {
        if self.port == 22 {
            self.host.clone()
        } else {
            format!("[{}]:{}", self.host, self.port)
        }
    }

    /// What is wrong, in words that say which side, and the fix: a
    /// command the reader can type (`ssh-keygen -R` as install/server.sh
    /// has it for a changed host key).
    pub fn auth_fix(&self, p: &AuthProblem) -> (String, String) {
        let key = self
            .key
            .as_ref()
            .map(|k| k.display().to_string())
            .unwrap_or_else(|| "~/.ssh/id_ed25519".into());
        let kh = self
            .known_hosts
            .as_ref()
            .map(|k| k.display().to_string())
            .unwrap_or_else(|| "~/.ssh/known_hosts".into());
        let pattern = self.host_pattern();
        let pin = format!(
            "install/server.sh --host {} --port {}",
            self.host, self.port
        );
        match p {
            AuthProblem::KeyFileMode { mode } => (
                format!("this server's key {key} is readable by others (mode {mode}), so ssh will not use it"),
                format!("chmod 600 {key}"),
            ),
            AuthProblem::HostKeyChanged => (
                format!("the laptop's host key is not the one pinned for {pattern} in {kh}: it changed, or this is not the laptop"),
                format!("if the laptop's host key really changed: ssh-keygen -R '{pattern}' -f {kh}, then run {pin} to pin the new one"),
            ),
            AuthProblem::HostKeyUnknown => (
                format!("no host key is pinned for {pattern} in {kh}"),
                format!("pin it with {pin}"),
            ),
            AuthProblem::KeyRefused => (
                format!("the laptop refused this server's key {key}"),
                format!("on the laptop, authorize it: install/laptop.sh --pubkey '<the line of {key}.pub>'"),
            ),
        }
    }
}

/// ssh prints a few messages to stderr, not to its `-E` log: while it reads
/// its arguments ("Warning: Identity file ... not accessible") and when the
/// connection is closed under it ("Connection to ... closed by remote
/// host."). They are ssh's, not the shim's: split them off into the log.
fn split_stderr(stderr: &str) -> (String, String) {
    let mut shim = String::new();
    let mut ssh = String::new();
    for line in stderr.split_inclusive('\n') {
        let ssh_closing = (line.starts_with("Connection to ")
            || line.starts_with("Shared connection to "))
            && line.trim_end().ends_with(" closed by remote host.");
        if line.starts_with("Warning: Identity file ") || ssh_closing {
            ssh.push_str(line.trim_end());
            ssh.push('\n');
        } else {
            shim.push_str(line);
        }
    }
    (shim, ssh)
}

/// The most of a key, certificate or known_hosts file read for the control
/// socket's name.
const MAX_HASHED_FILE: u64 = 1024 * 1024;

/// SHA-256 of a file's first [`MAX_HASHED_FILE`] bytes; empty when it cannot
/// be read (a missing file is a state of its own, and hashes as such).
fn file_digest(path: &Path) -> Vec<u8> {
    use sha2::{Digest as _, Sha256};
    let mut buf = Vec::new();
    match File::open(path).and_then(|f| f.take(MAX_HASHED_FILE).read_to_end(&mut buf)) {
        Ok(_) => Sha256::digest(&buf).to_vec(),
        Err(_) => Vec::new(),
    }
}

/// The identity's public key fingerprint as ssh prints it (`SHA256:<base64>`),
/// read from an OpenSSH private key file (whose public key is stored
/// unencrypted, even in a key with a passphrase); for any other format, the
/// file's own SHA-256 (`file:<hex>`); `missing` when it cannot be read.
fn identity_fingerprint(path: &Path) -> String {
    use base64::Engine as _;
    use sha2::{Digest as _, Sha256};
    let mut buf = Vec::new();
    if File::open(path)
        .and_then(|f| f.take(MAX_HASHED_FILE).read_to_end(&mut buf))
        .is_err()
    {
        return "missing".into();
    }
    match openssh_public_key(&String::from_utf8_lossy(&buf)) {
        Some(blob) => format!(
            "SHA256:{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(Sha256::digest(&blob))
        ),
        None => {
            let hex: String = Sha256::digest(&buf)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            format!("file:{hex}")
        }
    }
}

/// The public key blob of an `openssh-key-v1` private key file: after the
/// magic, the cipher, KDF and KDF options strings and the key count, the
/// first public key (PROTOCOL.key in OpenSSH's sources).
fn openssh_public_key(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let body = text
        .split("-----BEGIN OPENSSH PRIVATE KEY-----")
        .nth(1)?
        .split("-----END OPENSSH PRIVATE KEY-----")
        .next()?;
    let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let mut rest = raw.strip_prefix(b"openssh-key-v1\0".as_slice())?;
    fn take<'a>(rest: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if rest.len() < n {
            return None;
        }
        let (a, b) = rest.split_at(n);
        *rest = b;
        Some(a)
    }
    fn u32_of(rest: &mut &[u8]) -> Option<usize> {
        let b = take(rest, 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }
    for _ in 0..3 {
        let n = u32_of(&mut rest)?;
        take(&mut rest, n)?;
    }
    if u32_of(&mut rest)? < 1 {
        return None;
    }
    let n = u32_of(&mut rest)?;
    take(&mut rest, n).map(<[u8]>::to_vec)
}

/// Creates `dir` 0700 if missing; refuses it unless it is a real directory
/// of ours that no one else may enter, with room for ssh's socket names.
fn check_control_dir(dir: &Path) -> Result<(), String> {
    let shown = dir.display();
    let len = dir.as_os_str().len();
    if len > MAX_CONTROL_DIR_LEN {
        return Err(format!(
            "{shown} is {len} bytes long, too long for ssh's control sockets (at most {MAX_CONTROL_DIR_LEN})"
        ));
    }
    paliadin_core::fsutil::private_dir(dir).map_err(|e| format!("cannot create {shown}: {e}"))?;
    let md = fs::symlink_metadata(dir).map_err(|e| format!("{shown}: {e}"))?;
    if !md.file_type().is_dir() {
        return Err(format!("{shown} is not a directory (a symlink is refused)"));
    }
    let me = rustix::process::geteuid().as_raw();
    if md.uid() != me {
        return Err(format!(
            "{shown} is owned by uid {}, not by us (uid {me})",
            md.uid()
        ));
    }
    let mode = md.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{shown} has mode {mode:03o}: others could reach our ssh connections; chmod 700 it"
        ));
    }
    Ok(())
}

/// A call's private `-E` file: created empty 0600 (ssh appends to it), read
/// after the call, removed on every path.
struct LogFile {
    path: PathBuf,
}

impl LogFile {
    fn create(dir: &Path) -> Result<LogFile, SshError> {
        let io_err = |what: String| move |source| SshError::Io { what, source };
        paliadin_core::fsutil::private_dir(dir)
            .map_err(io_err(format!("creating {}", dir.display())))?;
        let path = dir.join(format!("ssh-{}.log", uuid::Uuid::new_v4()));
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err(format!("creating {}", path.display())))?;
        Ok(LogFile { path })
    }

    /// The log's text with `\r\n` turned into `\n`; empty if unreadable.
    fn read(&self) -> String {
        let mut buf = Vec::new();
        if let Ok(f) = File::open(&self.path) {
            let _ = f.take(MAX_LOG_BYTES).read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).replace("\r\n", "\n")
    }
}

impl Drop for LogFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paliadin_core::SessionName;

    // ssh's -E log text, captured from OpenSSH_9.2p1 Debian-2+deb12u10 against
    // a private sshd on loopback (`sshd -D -e`, its own host key), with the
    // base command of this module. ssh ends each log line with "\r\n".
    // Temp paths, ports and the %C hash are replaced by placeholders.

    /// A closed port.
    const CLOSED_PORT: &str = "ssh: connect to host 127.0.0.1 port 40001: Connection refused\r\n";
    /// A key not in authorized_keys.
    const WRONG_KEY: &str = "root@127.0.0.1: Permission denied (publickey).\r\n";
    /// `-i` naming a missing file: the warning goes to stderr, not to the log.
    const MISSING_KEY_STDERR: &str =
        "Warning: Identity file <tmp>/no-such-key not accessible: No such file or directory.\n";
    /// known_hosts holding another key for the host.
    const CHANGED_HOST_KEY: &str = "\
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\r
@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\r
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\r
IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\r
Someone could be eavesdropping on you right now (man-in-the-middle attack)!\r
It is also possible that a host key has just been changed.\r
The fingerprint for the ED25519 key sent by the remote host is
SHA256:zdIZRvQqd0a2FLgHa5ppnSaumBCBbiAv3qaccJ+Zhb8.\r
Please contact your system administrator.\r
Add correct host key in <tmp>/known_hosts to get rid of this message.\r
Offending ED25519 key in <tmp>/known_hosts:1\r
  remove with:\r
  ssh-keygen -f \"<tmp>/known_hosts\" -R \"[127.0.0.1]:40000\"\r
Host key for [127.0.0.1]:40000 has changed and you have requested strict checking.\r
Host key verification failed.\r
";
    /// An empty known_hosts.
    const UNKNOWN_HOST_KEY: &str = "\
No ED25519 host key is known for [127.0.0.1]:40000 and you have requested strict checking.\r
Host key verification failed.\r
";
    /// sshd with `MaxAuthTries 1`, three keys offered.
    const TOO_MANY_AUTH: &str = "\
Received disconnect from 127.0.0.1 port 40000:2: Too many authentication failures\r
Disconnected from 127.0.0.1 port 40000\r
";
    /// `-i` naming a key file of mode 0644 (sshd accepts the key otherwise).
    const KEY_FILE_MODE: &str = "\
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\r
@         WARNING: UNPROTECTED PRIVATE KEY FILE!          @\r
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\r
Permissions 0644 for 'client_key' are too open.\r
It is required that your private key files are NOT accessible by others.\r
This private key will be ignored.\r
Load key \"client_key\": bad permissions\r
root@127.0.0.1: Permission denied (publickey).\r
";
    /// A name that does not resolve.
    const BAD_NAME: &str =
        "ssh: Could not resolve hostname no-such-host.invalid: Name or service not known\r\n";
    /// A listener that accepts and closes at once.
    const KEX_CLOSED: &str = "\
kex_exchange_identification: Connection closed by remote host\r
Connection closed by 127.0.0.1 port 40002\r
";
    /// A listener that answers garbage and closes.
    const KEX_RESET: &str = "\
kex_exchange_identification: read: Connection reset by peer\r
Connection reset by 127.0.0.1 port 40003\r
";
    /// A listener that never answers (3 s, ConnectTimeout).
    const BANNER_TIMEOUT: &str = "\
Connection timed out during banner exchange\r
Connection to 192.0.2.1 port 40000 timed out\r
";
    /// ControlPath=<dir>/%C with a directory too long for a unix socket.
    const CONTROL_PATH_TOO_LONG: &str = "unix_listener: path \"<control_dir>/<hash>.zoZVQUVuMzZwucQM\" too long for Unix domain socket\r\n";
    /// sshd and its session processes killed mid-call (SIGKILL), no mux:
    /// nothing in the log, this on stderr, status 255.
    const CLOSED_BY_REMOTE_STDERR: &str = "Connection to 127.0.0.1 closed by remote host.\n";
    /// The same with mux, the call over a master connection: status 255,
    /// nothing in the log, nothing on stderr.
    const MASTER_KILLED: &str = "";
    /// sshd's session processes stopped (SIGSTOP) mid-call, as a network
    /// gone quiet: ServerAliveInterval=1, ServerAliveCountMax=1, status 255.
    const SERVER_SILENT: &str = "Timeout, server 127.0.0.1 not responding.\r\n";
    /// A working call: ssh logs nothing at its default level.
    const WORKING: &str = "";
    /// Seven of eight simultaneous first calls with mux on and no master yet
    /// logged this, and all eight exited 0 with the shim's output.
    const MUX_RACE: &str =
        "ControlSocket <control_dir>/<hash> already exists, disabling multiplexing\r\n";

    fn norm(s: &str) -> String {
        s.replace("\r\n", "\n")
    }

    #[test]
    fn classify_captured_ssh_failures() {
        let unreachable = [CLOSED_PORT, BAD_NAME, KEX_CLOSED, KEX_RESET, BANNER_TIMEOUT];
        for log in unreachable {
            assert_eq!(
                classify(255, &norm(log)),
                Some(ErrorCode::Unreachable),
                "{log}"
            );
            assert_eq!(
                classify(255, log),
                Some(ErrorCode::Unreachable),
                "raw {log}"
            );
        }
        for log in [WRONG_KEY, CHANGED_HOST_KEY, UNKNOWN_HOST_KEY, TOO_MANY_AUTH] {
            assert_eq!(
                classify(255, &norm(log)),
                Some(ErrorCode::AuthFailed),
                "{log}"
            );
        }
        assert_eq!(
            classify(255, CONTROL_PATH_TOO_LONG),
            Some(ErrorCode::ShimError)
        );
        assert_eq!(classify(255, "something new\n"), Some(ErrorCode::ShimError));
    }

    #[test]
    fn auth_failures_say_which_side_is_wrong() {
        let p = |log: &str| auth_problem(&norm(log));
        assert_eq!(
            classify(255, &norm(KEY_FILE_MODE)),
            Some(ErrorCode::AuthFailed)
        );
        assert_eq!(
            p(KEY_FILE_MODE),
            Some(AuthProblem::KeyFileMode {
                mode: "0644".into()
            })
        );
        assert_eq!(p(CHANGED_HOST_KEY), Some(AuthProblem::HostKeyChanged));
        assert_eq!(p(UNKNOWN_HOST_KEY), Some(AuthProblem::HostKeyUnknown));
        assert_eq!(p(WRONG_KEY), Some(AuthProblem::KeyRefused));
        assert_eq!(p(TOO_MANY_AUTH), Some(AuthProblem::KeyRefused));
        assert_eq!(p(CLOSED_PORT), None);
        let mut c = SshConfig::new("127.0.0.1", "ctl", "logs");
        c.port = 40000;
        c.key = Some("/k/id".into());
        c.known_hosts = Some("/k/known_hosts".into());
        let (what, fix) = c.auth_fix(&AuthProblem::HostKeyChanged);
        assert!(what.contains("[127.0.0.1]:40000"), "{what}");
        assert!(
            fix.contains("ssh-keygen -R '[127.0.0.1]:40000' -f /k/known_hosts"),
            "{fix}"
        );
        let (_, fix) = c.auth_fix(&AuthProblem::KeyFileMode {
            mode: "0644".into(),
        });
        assert_eq!(fix, "chmod 600 /k/id");
        let (what, fix) = c.auth_fix(&AuthProblem::KeyRefused);
        assert!(what.contains("refused") && fix.contains("install/laptop.sh --pubkey"));
    }

    #[test]
    fn classify_connections_lost_mid_call() {
        let (shim, ssh) = split_stderr(CLOSED_BY_REMOTE_STDERR);
        assert_eq!((shim.as_str(), ssh.as_str()), ("", CLOSED_BY_REMOTE_STDERR));
        for log in [ssh.as_str(), MASTER_KILLED, SERVER_SILENT] {
            assert_eq!(
                classify(255, &norm(log)),
                Some(ErrorCode::ConnectionLost),
                "{log:?}"
            );
        }
        assert_eq!(
            telling_line(&norm(SERVER_SILENT)),
            Some("Timeout, server 127.0.0.1 not responding.")
        );
        // A reset of an established connection is lost, not unreachable.
        let reset = "Read from remote host 127.0.0.1: Connection reset by peer\n";
        assert_eq!(classify(255, reset), Some(ErrorCode::ConnectionLost));
        // The shim's own statuses never are, whatever ssh says.
        assert_eq!(classify(0, CLOSED_BY_REMOTE_STDERR), None);
        assert_eq!(classify(124, SERVER_SILENT), Some(ErrorCode::Timeout));
    }

    #[test]
    fn classify_shim_statuses_whatever_the_log() {
        for log in [WORKING, MUX_RACE, CLOSED_PORT] {
            assert_eq!(classify(0, log), None);
            assert_eq!(classify(2, log), Some(ErrorCode::InvalidInput));
            assert_eq!(classify(69, log), Some(ErrorCode::AgentUnavailable));
            assert_eq!(classify(75, log), Some(ErrorCode::Blocked));
            assert_eq!(classify(76, log), Some(ErrorCode::AgentError));
            assert_eq!(classify(124, log), Some(ErrorCode::Timeout));
            assert_eq!(classify(1, log), Some(ErrorCode::ShimError));
            assert_eq!(classify(126, log), Some(ErrorCode::ShimError));
        }
    }

    #[test]
    fn mux_race_message_is_never_an_error_nor_a_detail() {
        assert_eq!(classify(0, &norm(MUX_RACE)), None);
        assert_eq!(telling_line(&norm(MUX_RACE)), None);
        let r = Reply {
            status: 0,
            stdout: b"ok\n".to_vec(),
            shim_stderr: String::new(),
            ssh_log: norm(MUX_RACE),
        };
        assert_eq!(r.detail(), None);
        // A real failure after the fallback is still told by its own line.
        let log = norm(&format!("{MUX_RACE}{WRONG_KEY}"));
        assert_eq!(classify(255, &log), Some(ErrorCode::AuthFailed));
        assert_eq!(
            telling_line(&log),
            Some("root@127.0.0.1: Permission denied (publickey).")
        );
    }

    #[test]
    fn telling_lines_of_captured_samples() {
        let t = |s: &str| telling_line(&norm(s)).map(str::to_owned);
        assert_eq!(
            t(CHANGED_HOST_KEY).as_deref(),
            Some("WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!")
        );
        assert!(t(UNKNOWN_HOST_KEY)
            .unwrap()
            .starts_with("No ED25519 host key is known for"));
        assert!(t(TOO_MANY_AUTH)
            .unwrap()
            .ends_with("Too many authentication failures"));
        assert_eq!(
            t(KEX_CLOSED).as_deref(),
            Some("kex_exchange_identification: Connection closed by remote host")
        );
        assert_eq!(
            t(BANNER_TIMEOUT).as_deref(),
            Some("Connection timed out during banner exchange")
        );
        assert!(t(CONTROL_PATH_TOO_LONG)
            .unwrap()
            .contains("too long for Unix domain socket"));
        assert_eq!(t(WORKING), None);
    }

    #[test]
    fn detail_prefers_the_shim_error_line() {
        let mut r = Reply {
            status: 75,
            stdout: Vec::new(),
            shim_stderr:
                "bashrc noise\npaliadin-shim: blocked: permission prompt\n--- last lines ---\n"
                    .into(),
            ssh_log: norm(MUX_RACE),
        };
        assert_eq!(
            r.detail().as_deref(),
            Some("paliadin-shim: blocked: permission prompt")
        );
        r.shim_stderr = "\n  something else\n".into();
        assert_eq!(r.detail().as_deref(), Some("something else"));
        r.shim_stderr.clear();
        r.ssh_log = norm(CLOSED_PORT);
        assert_eq!(
            r.detail().as_deref(),
            Some("ssh: connect to host 127.0.0.1 port 40001: Connection refused")
        );
        r.status = 255;
        r.shim_stderr = "partial output\n".into();
        assert_eq!(
            r.detail().as_deref(),
            Some("ssh: connect to host 127.0.0.1 port 40001: Connection refused")
        );
        r.shim_stderr = format!("paliadin-shim: x: {}\n", "y".repeat(1000));
        r.ssh_log.clear();
        assert!(r.detail().unwrap().len() < 320);
    }

    #[test]
    fn early_ssh_warnings_leave_the_shim_stderr() {
        let (shim, ssh) = split_stderr(&format!(
            "{MISSING_KEY_STDERR}paliadin-shim: invalid_input: x\n"
        ));
        assert_eq!(shim, "paliadin-shim: invalid_input: x\n");
        assert_eq!(ssh, MISSING_KEY_STDERR);
        let log = ssh + &norm(WRONG_KEY);
        assert_eq!(classify(255, &log), Some(ErrorCode::AuthFailed));
        assert_eq!(
            telling_line(&log),
            Some("root@127.0.0.1: Permission denied (publickey).")
        );
    }

    fn health() -> Request {
        Request::Health {
            session: SessionName::new("s1").unwrap(),
        }
    }

    fn args(cmd: &Command) -> Vec<String> {
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn base_command_with_mux() {
        let mut c = SshConfig::new("laptop", "ctl", "logs");
        c.user = Some("m".into());
        c.key = Some("id".into());
        c.known_hosts = Some("kh".into());
        let cmd = c.command(&health(), Path::new("logs/x.log"));
        assert_eq!(cmd.get_program(), "ssh");
        let want = "-F /dev/null -i id -p 22022 -o IdentitiesOnly=yes -o UserKnownHostsFile=kh \
                    -o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=3 \
                    -o ServerAliveInterval=10 -o ServerAliveCountMax=3 -T -E logs/x.log \
                    -o ControlMaster=auto -o ControlPersist=60 -o ControlPath=ctl/NAME m@laptop -- health s1";
        let name = c.control_name();
        assert_eq!(name.len(), CONTROL_NAME_LEN);
        assert!(name.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(args(&cmd).join(" "), want.replace("NAME", &name));
    }

    #[test]
    fn base_command_without_mux_and_options() {
        let mut c = SshConfig::new("10.0.0.2", "ctl", "logs");
        c.mux = false;
        c.port = 2222;
        c.program = "/opt/ssh".into();
        let turn = uuid::Uuid::nil();
        let req = Request::RunTurn {
            events: false,
            session: SessionName::new("a.b").unwrap(),
            turn,
            message: paliadin_core::MessageSource::Stdin,
        };
        let a = args(&c.command(&req, Path::new("l")));
        assert_eq!(c.command(&req, Path::new("l")).get_program(), "/opt/ssh");
        assert!(!a
            .iter()
            .any(|w| w == "-i" || w.starts_with("UserKnownHostsFile")));
        let tail: Vec<&str> = a
            .iter()
            .map(String::as_str)
            .skip_while(|w| *w != "ControlMaster=no")
            .collect();
        assert_eq!(
            tail,
            [
                "ControlMaster=no",
                "-o",
                "ControlPath=none",
                "10.0.0.2",
                "--",
                "run-turn",
                "a.b",
                &turn.to_string(),
                "-"
            ]
        );
        assert!(a.windows(2).any(|w| w == ["-p", "2222"]));
    }

    #[test]
    fn refuses_hosts_and_users_ssh_would_misread() {
        for (host, user) in [
            ("-oProxyCommand=x", None),
            ("a b", None),
            ("", None),
            ("h", Some("-l")),
            ("h", Some("a@b")),
        ] {
            let mut c = SshConfig::new(host, "ctl", "logs");
            c.user = user.map(str::to_owned);
            let e = c.call(&health(), None, Instant::now(), None).unwrap_err();
            assert!(matches!(e, SshError::Config(_)), "{e}");
        }
    }

    #[test]
    fn control_dir_must_be_private_and_ours() {
        use std::os::unix::fs::PermissionsExt as _;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ctl");
        check_control_dir(&dir).unwrap();
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        check_control_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o750)).unwrap();
        assert!(check_control_dir(&dir).unwrap_err().contains("chmod 700"));
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(tmp.path(), &link).unwrap();
        assert!(check_control_dir(&link).unwrap_err().contains("symlink"));
        let long = tmp.path().join("x".repeat(MAX_CONTROL_DIR_LEN));
        assert!(check_control_dir(&long).unwrap_err().contains("too long"));
        assert_eq!(MAX_CONTROL_DIR_LEN, 49);
        // The call refuses before running ssh.
        let mut c = SshConfig::new("h", &dir, tmp.path().join("logs"));
        c.program = "paliadin-no-such-ssh".into();
        let e = c
            .call(
                &health(),
                None,
                Instant::now() + std::time::Duration::from_secs(5),
                None,
            )
            .unwrap_err();
        assert!(matches!(e, SshError::ControlDir(_)), "{e}");
        // Without mux, no control directory is needed.
        c.mux = false;
        let e = c
            .call(
                &health(),
                None,
                Instant::now() + std::time::Duration::from_secs(5),
                None,
            )
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "paliadin-no-such-ssh is not installed or not on PATH"
        );
        assert_eq!(
            fs::read_dir(tmp.path().join("logs")).unwrap().count(),
            0,
            "the log file is removed"
        );
    }

    #[test]
    fn missing_ssh_is_a_clear_error() {
        let e = SshError::Spawn {
            program: "ssh".into(),
        };
        assert_eq!(e.to_string(), "ssh is not installed or not on PATH");
    }

    /// Real ssh against a private sshd of the test's own: a temp dir, fresh
    /// host and client keys, a free loopback port, a stand-in shim forced by
    /// `authorized_keys`. Stopped (master connection first) on drop, panics
    /// included. Skipped, with a note, where there is no sshd to start.
    mod live {
        use super::*;
        use std::net::{TcpListener, TcpStream};
        use std::process::{Child, Stdio};
        use std::time::Duration;

        const FAKE_SHIM: &str = r#"#!/bin/sh
# A stand-in for paliadin-shim: prints the request's words and exits with
# the status its session name asks for (exit-N, sleep-N).
set -f
set -- $SSH_ORIGINAL_COMMAND
echo "$*"
code=0
case "$2" in
  exit-*) code=${2#exit-} ;;
  sleep-*) sleep "${2#sleep-}" ;;
esac
if [ "$4" = "-" ]; then cat; fi
if [ "$code" != 0 ]; then echo "paliadin-shim: test: exit $code" >&2; fi
exit "$code"
"#;

        struct Sshd {
            child: Child,
            dir: tempfile::TempDir,
            port: u16,
            /// Control directories whose master connections to stop.
            masters: std::cell::RefCell<Vec<PathBuf>>,
        }

        fn free_port() -> u16 {
            TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        }

        fn keygen(path: &Path) {
            let st = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(path)
                .stdout(Stdio::null())
                .status()
                .expect("ssh-keygen");
            assert!(st.success());
        }

        fn public(dir: &Path, name: &str) -> String {
            fs::read_to_string(dir.join(format!("{name}.pub")))
                .unwrap()
                .trim()
                .to_owned()
        }

        impl Sshd {
            fn start() -> Option<Sshd> {
                let sshd = Path::new("/usr/sbin/sshd");
                if !sshd.exists()
                    || !Path::new("/run/sshd").is_dir()
                    || Command::new("ssh").arg("-V").output().is_err()
                {
                    eprintln!("skipped: needs /usr/sbin/sshd, /run/sshd and ssh");
                    return None;
                }
                let dir = tempfile::tempdir().unwrap();
                let d = dir.path();
                for k in ["host_key", "other_host_key", "client_key", "wrong_key"] {
                    keygen(&d.join(k));
                }
                let shim = d.join("shim");
                fs::write(&shim, FAKE_SHIM).unwrap();
                use std::os::unix::fs::PermissionsExt as _;
                fs::set_permissions(&shim, fs::Permissions::from_mode(0o755)).unwrap();
                let auth = format!(
                    "restrict,command=\"{}\" {}\n",
                    shim.display(),
                    public(d, "client_key")
                );
                fs::write(d.join("authorized_keys"), auth).unwrap();
                let config = format!(
                    "ListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nStrictModes no\nUsePAM no\n\
                     PidFile none\nPermitRootLogin yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n",
                    d.join("host_key").display(),
                    d.join("authorized_keys").display()
                );
                fs::write(d.join("sshd_config"), config).unwrap();
                let port = free_port();
                for (name, key) in [
                    ("known_hosts", "host_key"),
                    ("known_hosts_changed", "other_host_key"),
                ] {
                    fs::write(
                        d.join(name),
                        format!("[127.0.0.1]:{port} {}\n", public(d, key)),
                    )
                    .unwrap();
                }
                fs::write(d.join("known_hosts_empty"), "").unwrap();
                let log = File::create(d.join("sshd.log")).unwrap();
                let child = Command::new(sshd)
                    .args(["-D", "-e", "-f"])
                    .arg(d.join("sshd_config"))
                    .args(["-p", &port.to_string()])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
                    .unwrap();
                let mut s = Sshd {
                    child,
                    dir,
                    port,
                    masters: Default::default(),
                };
                let until = Instant::now() + Duration::from_secs(10);
                while TcpStream::connect(("127.0.0.1", port)).is_err() {
                    if let Ok(Some(st)) = s.child.try_wait() {
                        panic!(
                            "sshd exited with {st}: {}",
                            fs::read_to_string(s.path("sshd.log")).unwrap_or_default()
                        );
                    }
                    assert!(Instant::now() < until, "sshd did not listen on {port}");
                    std::thread::sleep(Duration::from_millis(20));
                }
                Some(s)
            }

            fn path(&self, name: &str) -> PathBuf {
                self.dir.path().join(name)
            }

            /// A working configuration; `ctl` names its control directory.
            fn config(&self, mux: bool, ctl: &str) -> SshConfig {
                let mut c = SshConfig::new("127.0.0.1", self.path(ctl), self.path("logs"));
                c.port = self.port;
                c.key = Some(self.path("client_key"));
                c.known_hosts = Some(self.path("known_hosts"));
                c.mux = mux;
                if mux {
                    self.masters.borrow_mut().push(c.control_dir.clone());
                }
                c
            }
        }

        impl Drop for Sshd {
            fn drop(&mut self) {
                let sockets = self
                    .masters
                    .borrow()
                    .iter()
                    .filter_map(|ctl| fs::read_dir(ctl).ok())
                    .flatten()
                    .flatten()
                    .map(|e| e.path())
                    .collect::<Vec<_>>();
                for socket in sockets {
                    let mut kv = OsString::from("ControlPath=");
                    kv.push(&socket);
                    let _ = Command::new("ssh")
                        .args(["-F", "/dev/null", "-p", &self.port.to_string(), "-o"])
                        .arg(kv)
                        .args(["-O", "exit", "127.0.0.1"])
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status();
                }
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }

        fn req(session: &str) -> Request {
            Request::Health {
                session: SessionName::new(session).unwrap(),
            }
        }

        fn within(secs: u64) -> Instant {
            Instant::now() + Duration::from_secs(secs)
        }

        fn timed(c: &SshConfig, r: &Request) -> (Reply, Duration) {
            let t = Instant::now();
            let reply = c.call(r, None, within(20), None).unwrap();
            (reply, t.elapsed())
        }

        #[test]
        fn calls_failures_deadline_and_cancel() {
            let Some(sshd) = Sshd::start() else { return };

            // A fresh connection, no mux.
            let plain = sshd.config(false, "unused");
            let (r, fresh) = timed(&plain, &req("s1"));
            assert_eq!(
                (r.status, r.stdout.as_slice(), r.ssh_log.as_str()),
                (0, &b"health s1\n"[..], ""),
                "{r:?}"
            );
            assert_eq!((classify(r.status, &r.ssh_log), r.detail()), (None, None));

            // With mux: the first call starts the master, the next reuse it.
            // The control directory is as long as ssh allows, when TMPDIR lets us.
            let base = sshd.dir.path().as_os_str().len() + 1;
            let ctl = if base < MAX_CONTROL_DIR_LEN {
                "c".repeat(MAX_CONTROL_DIR_LEN - base)
            } else {
                "ctl".into()
            };
            let mux = sshd.config(true, &ctl);
            assert!(!mux.master_running(within(10)), "no master before a call");
            let (r, first) = timed(&mux, &req("s2"));
            assert_eq!(
                (r.status, r.stdout.as_slice()),
                (0, &b"health s2\n"[..]),
                "{r:?}"
            );
            let mut reused = Vec::new();
            for _ in 0..5 {
                let (r, t) = timed(&mux, &req("s3"));
                assert_eq!((r.status, r.ssh_log.as_str()), (0, ""), "{r:?}");
                reused.push(t);
            }
            reused.sort();
            assert!(mux.master_running(within(10)), "the calls' master");
            assert!(!plain.master_running(within(10)), "no master without mux");
            eprintln!(
                "loopback: fresh {fresh:?}, first with mux {first:?}, reused median {:?}",
                reused[2]
            );

            // The shim's own statuses, stdout and stderr come back apart from ssh's log.
            let r = mux.call(&req("exit-75"), None, within(20), None).unwrap();
            assert_eq!(
                (r.status, classify(r.status, &r.ssh_log)),
                (75, Some(ErrorCode::Blocked))
            );
            assert_eq!(r.shim_stderr, "paliadin-shim: test: exit 75\n");
            assert_eq!(r.detail().as_deref(), Some("paliadin-shim: test: exit 75"));
            let turn = uuid::Uuid::new_v4();
            let run = Request::RunTurn {
                events: false,
                session: SessionName::new("s4").unwrap(),
                turn,
                message: paliadin_core::MessageSource::Stdin,
            };
            let r = mux.call(&run, Some(b"hello\n"), within(20), None).unwrap();
            assert_eq!(
                String::from_utf8(r.stdout).unwrap(),
                format!("run-turn s4 {turn} -\nhello\n")
            );

            // ssh's own failures: 255, told apart by the log (no mux, so no
            // master hides them).
            let fail = |f: &dyn Fn(&mut SshConfig)| {
                let mut c = sshd.config(false, "unused");
                f(&mut c);
                let r = c.call(&req("s5"), None, within(20), None).unwrap();
                assert_eq!(r.status, 255, "{r:?}");
                assert!(r.stdout.is_empty() && r.shim_stderr.is_empty(), "{r:?}");
                (
                    classify(r.status, &r.ssh_log),
                    r.detail().unwrap_or_default(),
                )
            };
            let (code, detail) = fail(&|c| c.key = Some(sshd.path("wrong_key")));
            assert_eq!(code, Some(ErrorCode::AuthFailed));
            assert!(
                detail.ends_with("Permission denied (publickey)."),
                "{detail}"
            );
            let (code, detail) = fail(&|c| c.key = Some(sshd.path("no_such_key")));
            assert_eq!(code, Some(ErrorCode::AuthFailed), "{detail}");
            let (code, detail) = fail(&|c| c.known_hosts = Some(sshd.path("known_hosts_changed")));
            assert_eq!(
                (code, detail.as_str()),
                (
                    Some(ErrorCode::AuthFailed),
                    "WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!"
                )
            );
            let (code, detail) = fail(&|c| c.known_hosts = Some(sshd.path("known_hosts_empty")));
            assert_eq!(code, Some(ErrorCode::AuthFailed));
            assert!(
                detail.starts_with("No ED25519 host key is known for"),
                "{detail}"
            );
            let (code, detail) = fail(&|c| c.port = free_port());
            assert_eq!(code, Some(ErrorCode::Unreachable));
            assert!(detail.ends_with("Connection refused"), "{detail}");

            // The deadline holds over a reused connection, and so does cancel.
            let t = Instant::now();
            let e = mux
                .call(
                    &req("sleep-5"),
                    None,
                    Instant::now() + Duration::from_millis(800),
                    None,
                )
                .unwrap_err();
            assert!(matches!(e, SshError::TimedOut { .. }), "{e}");
            assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
            let (rd, wr) = rustix::pipe::pipe().unwrap();
            rustix::io::write(&wr, b"x").unwrap();
            let e = mux
                .call(
                    &req("sleep-5"),
                    None,
                    within(20),
                    Some(std::os::fd::AsFd::as_fd(&rd)),
                )
                .unwrap_err();
            assert!(matches!(e, SshError::Interrupted), "{e}");

            // Every call's log file is gone.
            assert_eq!(fs::read_dir(sshd.path("logs")).unwrap().count(), 0);
        }

        /// Issue 8, item 4: a master connection is reused only by a call with
        /// the same identity, known_hosts, user, host and port.
        #[test]
        fn control_socket_is_named_by_identity_and_known_hosts() {
            let Some(sshd) = Sshd::start() else { return };
            let ok = |c: &SshConfig, s: &str| {
                let r = c.call(&req(s), None, within(20), None).unwrap();
                assert_eq!(
                    (r.status, classify(r.status, &r.ssh_log)),
                    (0, None),
                    "{r:?}"
                );
            };
            let refused = |c: &SshConfig, s: &str| {
                let r = c.call(&req(s), None, within(20), None).unwrap();
                assert_eq!(
                    (r.status, classify(r.status, &r.ssh_log)),
                    (255, Some(ErrorCode::AuthFailed)),
                    "{r:?}"
                );
            };
            // The fingerprint read from the private key is ssh-keygen's.
            let out = Command::new("ssh-keygen")
                .args(["-l", "-E", "sha256", "-f"])
                .arg(sshd.path("client_key.pub"))
                .output()
                .unwrap();
            let listed = String::from_utf8(out.stdout).unwrap();
            assert_eq!(
                Some(identity_fingerprint(&sshd.path("client_key")).as_str()),
                listed.split_whitespace().nth(1),
                "{listed}"
            );
            assert_eq!(identity_fingerprint(&sshd.path("no_such_key")), "missing");
            let good = sshd.config(true, "ctl");
            ok(&good, "k1");
            // An unknown key to the same host while the accepted key's master lives.
            let mut wrong = good.clone();
            wrong.key = Some(sshd.path("wrong_key"));
            assert_ne!(wrong.control_path(), good.control_path());
            refused(&wrong, "k2");
            ok(&good, "k3");
            // Another key written over the same identity file names a new socket.
            let swapped = sshd.path("swapped_key");
            fs::copy(sshd.path("client_key"), &swapped).unwrap();
            let mut same_path = good.clone();
            same_path.key = Some(swapped.clone());
            ok(&same_path, "k4");
            fs::copy(sshd.path("wrong_key"), &swapped).unwrap();
            refused(&same_path, "k5");
            // A key removed from authorized_keys: the master it opened still
            // carries it (sshd checks keys only when a connection starts,
            // PROTOCOL section 6), a call under any other name does not.
            fs::write(sshd.path("authorized_keys"), "").unwrap();
            ok(&good, "k6");
            let moved = sshd.path("known_hosts_copy");
            fs::copy(sshd.path("known_hosts"), &moved).unwrap();
            let mut other_kh = good.clone();
            other_kh.known_hosts = Some(moved);
            refused(&other_kh, "k7");
            let mut other_user = good.clone();
            other_user.user = Some(
                std::env::var("USER")
                    .ok()
                    .filter(|u| !u.is_empty())
                    .unwrap_or_else(|| "root".into()),
            );
            if other_user.control_path() != good.control_path() {
                refused(&other_user, "k8");
            }
        }

        #[test]
        fn concurrent_first_calls_with_mux_all_succeed() {
            let Some(sshd) = Sshd::start() else { return };
            let cfg = sshd.config(true, "ctl");
            let start = std::sync::Barrier::new(8);
            let replies: Vec<Reply> = std::thread::scope(|s| {
                let hs: Vec<_> = (0..8)
                    .map(|i| {
                        let (cfg, start) = (&cfg, &start);
                        s.spawn(move || {
                            start.wait();
                            cfg.call(&req(&format!("c{i}")), None, within(30), None)
                                .unwrap()
                        })
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let mut fallbacks = 0;
            for (i, r) in replies.iter().enumerate() {
                assert_eq!(r.status, 0, "{r:?}");
                assert_eq!(r.stdout, format!("health c{i}\n").into_bytes());
                assert_eq!(classify(r.status, &r.ssh_log), None, "{r:?}");
                // The shim's stderr may hold the login shell's noise (a
                // ~/.bashrc runs first), never ssh's fallback message.
                assert!(!r.shim_stderr.contains("multiplexing"), "{r:?}");
                assert!(
                    !r.detail().unwrap_or_default().contains("multiplexing"),
                    "{r:?}"
                );
                if r.ssh_log.contains("already exists, disabling multiplexing") {
                    fallbacks += 1;
                }
            }
            eprintln!(
                "{fallbacks} of 8 simultaneous first calls fell back to their own connection"
            );
        }
    }
}
