//! The choice between reaching the shim over ssh and running it on this
//! machine, and what a call's result says ([`Answer`]): the stable error
//! code (PROTOCOL section 6, [`ErrorCode`]) it carries, why in one line, and
//! for a refused login which side is wrong and its fix.
//! Either way a call is one request, one [`Reply`], under one wall-clock
//! deadline and an optional cancel fd.
//!
//! This module must never parse a reply's body (the caller does, with
//! `paliadin_core::reply`), never build an ssh command (that is `ssh.rs`), and
//! never run a shell.

use std::io;
use std::os::fd::BorrowedFd;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use paliadin_core::child::{self, Call, ChildError};
use paliadin_core::{ExitCode, Request};

use crate::failure::Failure;
pub use crate::ssh::Reply;
use crate::ssh::{self, SshConfig, SshError};
pub use paliadin_core::error_code::ErrorCode;

/// How requests reach the shim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// Over ssh to the laptop, where `authorized_keys` forces the shim.
    Ssh(SshConfig),
    /// The shim binary on this machine, run directly with `args` (its own
    /// options, such as `--config`) followed by the request's words.
    Local { shim: PathBuf, args: Vec<String> },
}

/// Why a call left no [`Reply`].
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The ssh call did not run or did not finish.
    #[error(transparent)]
    Ssh(#[from] SshError),
    /// The local shim binary does not exist.
    #[error("paliadin-shim not found at {}: set --shim or install it", path.display())]
    ShimNotFound { path: PathBuf },
    /// The local shim was killed at the deadline, `secs` after it started.
    #[error("paliadin-shim did not finish within {secs:.1} s")]
    TimedOut { secs: f64 },
    /// The local shim was killed because the cancel fd became readable.
    #[error("paliadin-shim was interrupted")]
    Interrupted,
    /// The local shim could not be started or awaited.
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
}

impl Transport {
    /// Runs one request. `stdin` goes to the shim's stdin (`None`: /dev/null);
    /// the shim (or ssh) is killed at `deadline` or when `cancel` becomes
    /// readable. `Ok` for any exit status; [`Transport::error_code`] reads it.
    pub fn call(
        &self,
        req: &Request,
        stdin: Option<&[u8]>,
        deadline: Instant,
        cancel: Option<BorrowedFd<'_>>,
    ) -> Result<Reply, TransportError> {
        self.call_with(req, stdin, deadline, cancel, None)
    }

    /// [`Transport::call`], with the shim's stdout also handed to `on_line`
    /// line by line as it arrives, over ssh and locally alike.
    pub fn call_lines(
        &self,
        req: &Request,
        stdin: Option<&[u8]>,
        deadline: Instant,
        cancel: Option<BorrowedFd<'_>>,
        on_line: &mut dyn FnMut(&[u8]),
    ) -> Result<Reply, TransportError> {
        self.call_with(req, stdin, deadline, cancel, Some(on_line))
    }

    fn call_with(
        &self,
        req: &Request,
        stdin: Option<&[u8]>,
        deadline: Instant,
        cancel: Option<BorrowedFd<'_>>,
        on_line: Option<child::OnLine<'_>>,
    ) -> Result<Reply, TransportError> {
        match self {
            Transport::Ssh(cfg) => Ok(match on_line {
                Some(f) => cfg.call_lines(req, stdin, deadline, cancel, f)?,
                None => cfg.call(req, stdin, deadline, cancel)?,
            }),
            Transport::Local { shim, args } => {
                let started = Instant::now();
                let mut cmd = local_command(shim, args, req);
                let call = Call {
                    stdin,
                    deadline,
                    cancel,
                };
                let out = match on_line {
                    Some(f) => child::run_lines(&mut cmd, call, f),
                    None => child::run(&mut cmd, call),
                }
                .map_err(|e| match e {
                    ChildError::Spawn { source, .. }
                        if source.kind() == io::ErrorKind::NotFound =>
                    {
                        TransportError::ShimNotFound { path: shim.clone() }
                    }
                    ChildError::Spawn { program, source } => TransportError::Io {
                        what: format!("could not start {program}"),
                        source,
                    },
                    ChildError::TimedOut { .. } => TransportError::TimedOut {
                        secs: deadline.saturating_duration_since(started).as_secs_f64(),
                    },
                    ChildError::Cancelled { .. } => TransportError::Interrupted,
                    ChildError::Wait { program, source } => TransportError::Io {
                        what: format!("waiting for {program}"),
                        source,
                    },
                })?;
                Ok(Reply {
                    status: out.code(),
                    shim_stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                    stdout: out.stdout,
                    ssh_log: String::new(),
                })
            }
        }
    }

    /// The error code of PROTOCOL section 6 for a call's result, `None` for
    /// success. A reply over ssh is read by [`ssh::classify`] (255 is ssh's
    /// own); a local reply by its exit status alone. A passed deadline is
    /// `timeout`, a cancel `interrupted`; a call that could not start is
    /// `unreachable` over ssh and `agent_unavailable` locally.
    pub fn error_code(&self, result: &Result<Reply, TransportError>) -> Option<ErrorCode> {
        let local = matches!(self, Transport::Local { .. });
        match result {
            Ok(r) if local => ErrorCode::from_shim_exit(ExitCode::from_code(r.status)),
            Ok(r) => ssh::classify(r.status, &r.ssh_log),
            Err(
                TransportError::TimedOut { .. } | TransportError::Ssh(SshError::TimedOut { .. }),
            ) => Some(ErrorCode::Timeout),
            Err(TransportError::Interrupted | TransportError::Ssh(SshError::Interrupted)) => {
                Some(ErrorCode::Interrupted)
            }
            Err(TransportError::Ssh(_)) => Some(ErrorCode::Unreachable),
            Err(TransportError::ShimNotFound { .. } | TransportError::Io { .. }) => {
                Some(ErrorCode::AgentUnavailable)
            }
        }
    }

    /// What a call's result says: its code, the shim's stdout, one line on
    /// what went wrong (without the shim's own `paliadin-shim: <code>:`
    /// prefix) and, for `auth_failed` over ssh, which side is wrong and
    /// the fix.
    pub fn answer(&self, result: &Result<Reply, TransportError>) -> Answer {
        let code = self.error_code(result);
        let mut a = Answer {
            code,
            ..Answer::default()
        };
        match result {
            Ok(r) => {
                a.stdout = r.stdout.clone();
                if code.is_some() {
                    a.detail = shim_detail(r);
                }
                if let (Some(ErrorCode::AuthFailed), Transport::Ssh(cfg)) = (code, self) {
                    if let Some(p) = ssh::auth_problem(&r.ssh_log) {
                        let (what, fix) = cfg.auth_fix(&p);
                        a.detail = format!("{what} ({})", a.detail);
                        a.hint = Some(fix);
                    }
                }
            }
            Err(e) => a.detail = e.to_string(),
        }
        a
    }

    /// The host for the record: the ssh host, or `local`.
    pub fn host(&self) -> &str {
        match self {
            Transport::Ssh(cfg) => &cfg.host,
            Transport::Local { .. } => "local",
        }
    }
}

/// What a call's result says, reduced to what decides a turn's outcome or a
/// call's failure ([`Transport::answer`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    /// `None` for success.
    pub code: Option<ErrorCode>,
    /// The shim's stdout, byte for byte.
    pub stdout: Vec<u8>,
    /// What went wrong, one line; empty for success.
    pub detail: String,
    /// The fix, when the result says what it is.
    pub hint: Option<String>,
}

impl Answer {
    /// The failure of a call that is not a turn (`what`: "reset me"), or
    /// its stdout.
    pub fn into_stdout(self, what: impl Into<String>) -> Result<Vec<u8>, Failure> {
        match self.code {
            None => Ok(self.stdout),
            Some(code) => {
                let f = Failure::call(code, &self.detail).what(what);
                Err(match self.hint {
                    Some(h) => f.hint(h),
                    None => f,
                })
            }
        }
    }
}

/// The shim's (or ssh's) line on a failed reply, without the shim's own
/// `paliadin-shim: <code>: ` prefix.
fn shim_detail(r: &Reply) -> String {
    let d = r
        .detail()
        .unwrap_or_else(|| format!("exit status {}", r.status));
    match d
        .strip_prefix("paliadin-shim: ")
        .and_then(|rest| rest.split_once(": "))
    {
        Some((code, rest)) if ErrorCode::parse(code).is_some() => rest.to_owned(),
        _ => d,
    }
}

/// The local shim's command: its options, then the request's words. Without
/// `SSH_ORIGINAL_COMMAND`, which would make the shim read that instead. In
/// a process group of its own, so a Ctrl-C at the terminal reaches only the
/// client, which then stops the call itself: a shim in the terminal's group
/// got the SIGINT too and could exit 130 before the client saw its own.
fn local_command(shim: &std::path::Path, args: &[String], req: &Request) -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(shim);
    cmd.args(args)
        .args(req.to_words())
        .env_remove("SSH_ORIGINAL_COMMAND")
        .process_group(0);
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;
    use paliadin_core::SessionName;
    use std::time::Duration;

    fn health(s: &str) -> Request {
        Request::Health {
            session: SessionName::new(s).unwrap(),
        }
    }

    fn soon(secs: f64) -> Instant {
        Instant::now() + Duration::from_secs_f64(secs)
    }

    /// A stand-in shim: `sh -c <script> shim <words...>`.
    fn sh(script: &str) -> Transport {
        Transport::Local {
            shim: "sh".into(),
            args: vec!["-c".into(), script.into(), "paliadin-shim".into()],
        }
    }

    #[test]
    fn local_command_puts_words_after_args_and_drops_ssh_original_command() {
        let cmd = local_command(
            "shim".as_ref(),
            &["--config".into(), "c.toml".into()],
            &health("s1"),
        );
        let a: Vec<_> = cmd.get_args().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(a, ["--config", "c.toml", "health", "s1"]);
        assert!(cmd
            .get_envs()
            .any(|(k, v)| k == "SSH_ORIGINAL_COMMAND" && v.is_none()));
    }

    #[test]
    fn local_call_returns_any_status() {
        let t = sh("echo \"$@\"; cat; echo 'paliadin-shim: blocked: prompt' >&2; exit 75");
        let r = t.call(&health("s1"), Some(b"in"), soon(10.0), None);
        let reply = r.as_ref().unwrap();
        assert_eq!(reply.status, 75);
        assert_eq!(reply.stdout, b"health s1\nin");
        assert_eq!(
            reply.detail().as_deref(),
            Some("paliadin-shim: blocked: prompt")
        );
        assert_eq!(t.error_code(&r), Some(ErrorCode::Blocked));
        let ok = sh("echo ok").call(&health("s1"), None, soon(10.0), None);
        assert_eq!(t.error_code(&ok), None);
        // A local 255 is the shim's failure, not ssh's.
        let r = sh("exit 255").call(&health("s1"), None, soon(10.0), None);
        assert_eq!(t.error_code(&r), Some(ErrorCode::ShimError));
    }

    #[test]
    fn local_lines_arrive_in_order_and_the_reply_is_whole() {
        let t = sh("echo a; echo b; exit 0");
        let mut lines = Vec::new();
        let r = t.call_lines(&health("s1"), None, soon(10.0), None, &mut |l| {
            lines.push(l.to_vec())
        });
        assert_eq!(lines, [b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(r.unwrap().stdout, b"a\nb\n");
    }

    #[test]
    fn local_deadline_and_cancel() {
        let t = sh("exec sleep 30");
        let r = t.call(&health("s1"), None, soon(0.2), None);
        assert!(
            matches!(r, Err(TransportError::TimedOut { secs }) if secs < 1.0),
            "{r:?}"
        );
        assert_eq!(t.error_code(&r), Some(ErrorCode::Timeout));
        let (rd, wr) = rustix::pipe::pipe().unwrap();
        rustix::io::write(&wr, b"x").unwrap();
        let r = t.call(
            &health("s1"),
            None,
            soon(30.0),
            Some(std::os::fd::AsFd::as_fd(&rd)),
        );
        assert!(matches!(r, Err(TransportError::Interrupted)), "{r:?}");
        assert_eq!(t.error_code(&r), Some(ErrorCode::Interrupted));
    }

    #[test]
    fn missing_local_shim_is_agent_unavailable() {
        let t = Transport::Local {
            shim: "/nonexistent/paliadin-shim".into(),
            args: vec![],
        };
        let r = t.call(&health("s1"), None, soon(5.0), None);
        let e = r.as_ref().unwrap_err();
        assert_eq!(
            e.to_string(),
            "paliadin-shim not found at /nonexistent/paliadin-shim: set --shim or install it"
        );
        assert_eq!(t.error_code(&r), Some(ErrorCode::AgentUnavailable));
        assert_eq!(t.host(), "local");
    }

    #[test]
    fn ssh_errors_map_to_codes() {
        let t = Transport::Ssh(SshConfig::new("laptop", "ctl", "logs"));
        assert_eq!(t.host(), "laptop");
        let code = |e: SshError| t.error_code(&Err(e.into()));
        assert_eq!(
            code(SshError::TimedOut { secs: 1.0 }),
            Some(ErrorCode::Timeout)
        );
        assert_eq!(code(SshError::Interrupted), Some(ErrorCode::Interrupted));
        assert_eq!(
            code(SshError::Spawn {
                program: "ssh".into()
            }),
            Some(ErrorCode::Unreachable)
        );
        assert_eq!(
            code(SshError::ControlDir("x".into())),
            Some(ErrorCode::Unreachable)
        );
        let reply = |status, log: &str| {
            Ok(Reply {
                status,
                ssh_log: log.into(),
                ..Reply::default()
            })
        };
        assert_eq!(
            t.error_code(&reply(255, "x: Permission denied (publickey).\n")),
            Some(ErrorCode::AuthFailed)
        );
        assert_eq!(
            t.error_code(&reply(
                255,
                "ssh: connect to host h port 1: Connection refused\n"
            )),
            Some(ErrorCode::Unreachable)
        );
        assert_eq!(
            t.error_code(&reply(
                0,
                "ControlSocket c/h already exists, disabling multiplexing\n"
            )),
            None
        );
        assert_eq!(t.error_code(&reply(124, "")), Some(ErrorCode::Timeout));
    }
}
