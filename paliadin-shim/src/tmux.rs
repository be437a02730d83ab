//! The shim's only door to tmux. Every call goes through [`Tmux::command`]
//! (`tmux -L <socket> -f /dev/null -u`, so the user's own server and config
//! are never touched and non-ASCII survives without a UTF-8 locale), targets
//! are exact (`=name`), free text never travels in argv (it is loaded from
//! stdin), every call has a deadline, and tmux's failures come back typed.
//! Never runs a shell, and never pastes into a pane it has not just seen alive.

use paliadin_core::child::{self, Call, ChildError};
use std::ffi::OsString;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// What never reaches the agent (PROTOCOL section 2): the first bills the
/// API instead of the subscription, the second makes Claude Code refuse to
/// start, the third would be read by the agent's hooks as their request.
pub const REMOVED_FROM_AGENT: [&str; 3] =
    ["ANTHROPIC_API_KEY", "CLAUDECODE", "SSH_ORIGINAL_COMMAND"];

/// The server option that names the state directory of the shim that
/// started the server: a server belongs to one state directory.
pub const OWNER_OPTION: &str = "@paliadin-state";

/// How long one tmux call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A failed tmux call.
#[derive(Debug, thiserror::Error)]
pub enum TmuxError {
    #[error("tmux is not installed or not on PATH")]
    Missing,
    #[error("no tmux session {0}")]
    NoSession(String),
    #[error("tmux {verb} failed: {stderr}")]
    Failed { verb: String, stderr: String },
    #[error("tmux {verb} did not answer within {secs:.1} s")]
    TimedOut { verb: String, secs: f64 },
    #[error("running tmux: {0}")]
    Other(String),
}

/// What the shim needs to know of a session's pane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pane {
    pub pid: u32,
    pub dead: bool,
    pub created: i64,
    pub activity: i64,
}

/// The keys the shim may press besides typing a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// Interrupts a busy Claude Code (never Ctrl-C: a second one exits it).
    Escape,
    /// Clears the input line (a withdrawn prompt put back there).
    ClearLine,
    /// Submits what the input box holds.
    Enter,
}

impl Key {
    fn name(self) -> &'static str {
        match self {
            Key::Escape => "Escape",
            Key::ClearLine => "C-u",
            Key::Enter => "Enter",
        }
    }
}

/// One tmux server, by socket name.
#[derive(Debug, Clone)]
pub struct Tmux {
    socket: String,
    /// No call runs (much) past this: the request's own deadline.
    limit: Instant,
}

/// Whether tmux's stderr says the session (or the whole server) is not there.
pub fn is_missing_session(stderr: &str) -> bool {
    [
        "can't find session",
        "no server running",
        "error connecting to",
        "session not found",
        "can't find pane",
        "can't find window",
        // A server with no session yet (another request is just starting
        // one) answers a target with this; seen with eight first turns at once.
        "no current target",
        "no sessions",
        // A server whose last session was just killed exits while a
        // client's command is on its way; seen right after `reset`.
        "server exited unexpectedly",
    ]
    .iter()
    .any(|m| stderr.contains(m))
}

/// Parses `#{pane_pid} #{pane_dead} #{session_created} #{session_activity}`.
pub fn parse_pane(line: &str) -> Option<Pane> {
    let mut it = line.split_whitespace();
    let pid = it.next()?.parse().ok()?;
    let dead = it.next()? == "1";
    let created = it.next()?.parse().ok()?;
    let activity = it.next()?.parse().ok()?;
    Some(Pane {
        pid,
        dead,
        created,
        activity,
    })
}

fn exact(name: &str) -> String {
    format!("={name}")
}

fn pane_target(name: &str) -> String {
    format!("={name}:")
}

impl Tmux {
    /// A server by socket name; calls end by `limit` (at least a second
    /// each, so an error can still show the pane) and within 10 s.
    pub fn new(socket: &str, limit: Instant) -> Tmux {
        Tmux {
            socket: socket.to_owned(),
            limit,
        }
    }

    fn call_deadline(&self) -> Instant {
        let now = Instant::now();
        (now + CALL_TIMEOUT).min(self.limit.max(now + Duration::from_secs(1)))
    }

    /// The base command every call starts from.
    pub fn command(&self) -> Command {
        let mut c = Command::new("tmux");
        c.arg("-L")
            .arg(&self.socket)
            .args(["-f", "/dev/null", "-u"]);
        // Inside the operator's tmux, TMUX would point elsewhere; and a server
        // we start must not carry these into the agent (PROTOCOL section 2).
        for var in ["TMUX", "TMUX_PANE"].iter().chain(&REMOVED_FROM_AGENT) {
            c.env_remove(var);
        }
        c
    }

    /// Runs one (possibly chained) tmux invocation; returns its stdout.
    fn run(&self, args: &[OsString], stdin: Option<&[u8]>) -> Result<String, TmuxError> {
        let verb = args
            .first()
            .map(|a| a.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut cmd = self.command();
        cmd.args(args);
        let started = Instant::now();
        let out = child::run(
            &mut cmd,
            Call {
                stdin,
                deadline: self.call_deadline(),
                cancel: None,
            },
        )
        .map_err(|e| match e {
            e if e.is_not_found() => TmuxError::Missing,
            ChildError::TimedOut { .. } => TmuxError::TimedOut {
                verb: verb.clone(),
                secs: started.elapsed().as_secs_f64(),
            },
            e => TmuxError::Other(e.to_string()),
        })?;
        if out.code() == 0 {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        if is_missing_session(&stderr) {
            return Err(TmuxError::NoSession(stderr));
        }
        Err(TmuxError::Failed { verb, stderr })
    }

    fn args<const N: usize>(a: [&str; N]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    /// The session's pane, or `None` when the session (or server) is absent.
    pub fn pane(&self, name: &str) -> Result<Option<Pane>, TmuxError> {
        let t = exact(name);
        let p = pane_target(name);
        let fmt = "#{pane_pid} #{pane_dead} #{session_created} #{session_activity}";
        match self.run(
            &Self::args([
                "has-session",
                "-t",
                &t,
                ";",
                "display-message",
                "-p",
                "-t",
                &p,
                fmt,
            ]),
            None,
        ) {
            Ok(out) => Ok(parse_pane(out.trim())),
            Err(TmuxError::NoSession(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The server's owner mark (the option [`OWNER_OPTION`]), `None` when
    /// the server is not running or carries no mark.
    pub fn owner(&self) -> Result<Option<String>, TmuxError> {
        match self.run(&Self::args(["show-options", "-gqv", OWNER_OPTION]), None) {
            Ok(out) => Ok(Some(out.trim_end_matches('\n').to_owned()).filter(|o| !o.is_empty())),
            Err(TmuxError::NoSession(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Marks the running server as `owner`'s.
    pub fn set_owner(&self, owner: &str) -> Result<(), TmuxError> {
        self.run(&Self::args(["set-option", "-g", OWNER_OPTION, owner]), None)
            .map(drop)
    }

    /// Starts a detached session whose pane runs `argv` directly (through
    /// `env -u`, never a shell), in `workdir`, with `env` set, and marks the
    /// server as `owner`'s in the same call (the first session starts the
    /// server).
    pub fn new_session(
        &self,
        name: &str,
        workdir: &Path,
        env: &[(&str, &str)],
        argv: &[String],
        owner: &str,
    ) -> Result<(), TmuxError> {
        let mut a: Vec<OsString> = Self::args([
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            "200",
            "-y",
            "50",
            "-c",
        ]);
        a.push(workdir.into());
        for (k, v) in env {
            a.push("-e".into());
            a.push(format!("{k}={v}").into());
        }
        a.push("--".into());
        // `env` makes argv always longer than one word, so tmux execs it
        // directly instead of through `sh -c`, and removes what must not
        // reach the agent (or its hooks, which are this shim again) even if
        // the server's global environment has it.
        a.push("env".into());
        for var in REMOVED_FROM_AGENT {
            a.push("-u".into());
            a.push(var.into());
        }
        a.push("--".into());
        // tmux splits its command line at a word ending in `;` unless the
        // `;` is escaped: the agent's words stay whole.
        a.extend(argv.iter().map(|w| match w.strip_suffix(';') {
            Some(head) => OsString::from(format!("{head}\\;")),
            None => OsString::from(w),
        }));
        a.extend(Self::args([";", "set-option", "-g", OWNER_OPTION, owner]));
        self.run(&a, None).map(drop)
    }

    /// Types `head` as keys, pastes a newline, then pastes `body` as one
    /// bracketed paste, and presses Enter (unless `enter` is false), in one
    /// tmux invocation that first checks the session is there and leaves
    /// copy mode. The head is typed, not pasted, so an agent that marks
    /// pasted text as untrusted (Claude Code wraps long pastes) never marks
    /// it; it goes through `send-keys -l --`, so no word of it is read as a
    /// key name or a flag. The newline is a paste of its own (a typed one
    /// would be Enter), so a wrapped body starts inside its wrapper.
    pub fn type_submit(
        &self,
        name: &str,
        buffer: &str,
        head: &str,
        body: &str,
        enter: bool,
    ) -> Result<(), TmuxError> {
        let t = exact(name);
        let p = pane_target(name);
        let nl = format!("{buffer}-nl");
        let mut a = Self::args([
            "has-session",
            "-t",
            &t,
            ";",
            "copy-mode",
            "-q",
            "-t",
            &p,
            ";",
            "send-keys",
            "-l",
            "-t",
            &p,
            "--",
            head,
            ";",
            "set-buffer",
            "-b",
            &nl,
            "--",
            "\n",
            ";",
            "paste-buffer",
            "-d",
            "-p",
            "-r",
            "-b",
            &nl,
            "-t",
            &p,
            ";",
            "load-buffer",
            "-b",
            buffer,
            "-",
            ";",
            "paste-buffer",
            "-d",
            "-p",
            "-r",
            "-b",
            buffer,
            "-t",
            &p,
        ]);
        if enter {
            a.extend(Self::args([";", "send-keys", "-t", &p, "Enter"]));
        }
        self.run(&a, Some(body.as_bytes())).map(drop)
    }

    /// Whether the pane's program switched to the alternate screen (a
    /// full-screen TUI does once its input loop runs).
    pub fn alternate_on(&self, name: &str) -> Result<bool, TmuxError> {
        let out = self.run(
            &Self::args([
                "display-message",
                "-p",
                "-t",
                &pane_target(name),
                "#{alternate_on}",
            ]),
            None,
        )?;
        Ok(out.trim() == "1")
    }

    /// Presses Enter once more (after leaving copy mode).
    pub fn enter(&self, name: &str) -> Result<(), TmuxError> {
        self.key(name, Key::Enter)
    }

    /// Presses one named key (`Escape`, `C-u`, `Enter`) in the session's
    /// pane after leaving copy mode (a person attached may have entered it),
    /// and nothing else: a key right after Escape would be read as Meta+key.
    pub fn key(&self, name: &str, key: Key) -> Result<(), TmuxError> {
        let t = exact(name);
        let p = pane_target(name);
        self.run(
            &Self::args([
                "has-session",
                "-t",
                &t,
                ";",
                "copy-mode",
                "-q",
                "-t",
                &p,
                ";",
                "send-keys",
                "-t",
                &p,
                key.name(),
            ]),
            None,
        )
        .map(drop)
    }

    /// The last `n` non-blank lines on the pane's screen.
    pub fn tail(&self, name: &str, n: usize) -> Result<String, TmuxError> {
        let p = pane_target(name);
        let out = self.run(&Self::args(["capture-pane", "-p", "-J", "-t", &p]), None)?;
        let lines: Vec<&str> = out
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.is_empty())
            .collect();
        Ok(lines[lines.len().saturating_sub(n)..].join("\n"))
    }

    /// The whole visible screen (for a ready pattern).
    pub fn screen(&self, name: &str) -> Result<String, TmuxError> {
        self.run(
            &Self::args(["capture-pane", "-p", "-J", "-t", &pane_target(name)]),
            None,
        )
    }

    /// Ends the session; `Ok(false)` when there was none.
    pub fn kill_session(&self, name: &str) -> Result<bool, TmuxError> {
        match self.run(&Self::args(["kill-session", "-t", &exact(name)]), None) {
            Ok(_) => Ok(true),
            Err(TmuxError::NoSession(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The names of all sessions on this server (none when it is not running).
    pub fn list_sessions(&self) -> Result<Vec<String>, TmuxError> {
        match self.run(
            &Self::args(["list-sessions", "-F", "#{session_name}"]),
            None,
        ) {
            Ok(out) => Ok(out.lines().map(str::to_owned).collect()),
            Err(TmuxError::NoSession(_)) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Stops the server and every session in it; `Ok(false)` when none ran.
    pub fn kill_server(&self) -> Result<bool, TmuxError> {
        match self.run(&Self::args(["kill-server"]), None) {
            Ok(_) => Ok(true),
            Err(TmuxError::NoSession(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The command that attaches a terminal to the session.
    pub fn attach_command(&self, name: &str) -> Command {
        let mut c = self.command();
        c.args(["attach-session", "-t", &exact(name)]);
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_captured_formats() {
        assert_eq!(
            parse_pane("2196 0 1795618373 1795618380"),
            Some(Pane {
                pid: 2196,
                dead: false,
                created: 1_795_618_373,
                activity: 1_795_618_380
            })
        );
        assert_eq!(parse_pane("2196 1 1 2").map(|p| p.dead), Some(true));
        assert_eq!(parse_pane(""), None);
    }

    #[test]
    fn recognises_missing_sessions_in_captured_stderr() {
        // Captured from tmux 3.3a.
        assert!(is_missing_session("can't find session: nosuch"));
        assert!(is_missing_session(
            "no server running on /tmp/tmux-0/paliadin-x"
        ));
        assert!(is_missing_session(
            "error connecting to /tmp/tmux-0/x (No such file or directory)"
        ));
        assert!(is_missing_session("no current target"));
        assert!(is_missing_session("server exited unexpectedly"));
        assert!(!is_missing_session("unknown command: foo"));
    }
}
