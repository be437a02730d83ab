//! Running another program (tmux, ssh, the shim) under a wall-clock
//! deadline: stdin written and stdout/stderr read concurrently on threads,
//! the child's exit awaited on a [`crate::process::ExitWatch`], the child killed and reaped at the
//! deadline or on cancellation; or ([`run_lines`]) stdout read line by line
//! on the caller's thread as it arrives. Never builds a command line and never runs a
//! shell: callers hand in a finished [`Command`].

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};

use crate::process::ExitWatch;

/// What a finished child left.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    /// The exit code, or 128 + signal for a child killed by a signal.
    pub fn code(&self) -> i32 {
        use std::os::unix::process::ExitStatusExt;
        self.status
            .code()
            .unwrap_or_else(|| 128 + self.status.signal().unwrap_or(0))
    }
}

/// Why a child did not finish on its own.
#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    #[error("could not start {program}: {source}")]
    Spawn { program: String, source: io::Error },
    #[error("{program} did not finish within {secs:.1} s")]
    TimedOut {
        program: String,
        secs: f64,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    },
    #[error("{program} was stopped")]
    Cancelled {
        program: String,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    },
    #[error("waiting for {program}: {source}")]
    Wait { program: String, source: io::Error },
}

impl ChildError {
    /// Whether the program itself is missing.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ChildError::Spawn { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

/// How one call runs.
pub struct Call<'a> {
    /// Bytes for the child's stdin; `None` gives it /dev/null.
    pub stdin: Option<&'a [u8]>,
    /// Killed at this instant.
    pub deadline: Instant,
    /// Killed when this fd becomes readable (a signal pipe).
    pub cancel: Option<BorrowedFd<'a>>,
}

fn reader<R: Read + Send + 'static>(r: Option<R>) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    if let Some(mut r) = r {
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            let _ = tx.send(buf);
        });
    } else {
        let _ = tx.send(Vec::new());
    }
    rx
}

/// `d` as poll(2)'s timeout (saturating: a deadline is never that far).
pub fn timespec(d: Duration) -> Timespec {
    Timespec::try_from(d).unwrap_or(Timespec {
        tv_sec: i64::MAX,
        tv_nsec: 0,
    })
}

fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

enum Ended {
    Exited,
    TimedOut,
    Cancelled,
}

fn await_exit(
    child: &Child,
    deadline: Instant,
    cancel: Option<BorrowedFd<'_>>,
) -> io::Result<Ended> {
    let Some(exit) = ExitWatch::new(child.id())? else {
        return Ok(Ended::Exited);
    };
    loop {
        let left = remaining(deadline);
        if left.is_zero() {
            return Ok(Ended::TimedOut);
        }
        let mut fds = vec![PollFd::new(&exit, PollFlags::IN)];
        if let Some(c) = cancel {
            fds.push(PollFd::from_borrowed_fd(c, PollFlags::IN));
        }
        let ts = timespec(left);
        match poll(&mut fds, Some(&ts)) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
        if fds.len() > 1 && !fds[1].revents().is_empty() {
            return Ok(Ended::Cancelled);
        }
        if !fds[0].revents().is_empty() {
            return Ok(Ended::Exited);
        }
    }
}

/// A spawned child, its stdin writer and its program's name.
struct Started {
    child: Child,
    writer: Option<thread::JoinHandle<()>>,
    program: String,
}

/// Spawns `cmd` with piped stdout and stderr, and `stdin` (or /dev/null)
/// written by a thread of its own.
fn start(cmd: &mut Command, stdin: Option<&[u8]>) -> Result<Started, ChildError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| ChildError::Spawn {
        program: program.clone(),
        source,
    })?;
    let writer = match (child.stdin.take(), stdin) {
        (Some(mut w), Some(data)) => {
            let data = data.to_vec();
            Some(thread::spawn(move || {
                // A child that exits without reading all of it is not an error here.
                let _ = w.write_all(&data);
            }))
        }
        _ => None,
    };
    Ok(Started {
        child,
        writer,
        program,
    })
}

/// How long to wait for a reaped child's pipes to close. A child that
/// exited by itself: until the deadline (at least 200 ms). One that was
/// killed (cancelled, or past its deadline): 200 ms, and no more, since
/// another process may hold its pipes for as long as it likes; an ssh mux
/// client hands its stdio to the master connection, which keeps stderr
/// open until the remote command ends (issue 14: Ctrl-C waited out the
/// whole turn). Their reader threads end when the last holder lets go.
fn pipe_grace(ended: &io::Result<Ended>, deadline: Instant) -> Duration {
    let least = Duration::from_millis(200);
    match ended {
        Ok(Ended::Exited) => remaining(deadline).max(least),
        _ => least,
    }
}

/// Kills the child unless it exited, reaps it, collects its stdout (from
/// `stdout`, called after the reap) and stderr, and says how it ended.
fn finish(
    mut s: Started,
    ended: io::Result<Ended>,
    deadline: Instant,
    stdout: impl FnOnce(&io::Result<Ended>) -> Vec<u8>,
    err: mpsc::Receiver<Vec<u8>>,
) -> Result<Output, ChildError> {
    if !matches!(ended, Ok(Ended::Exited)) {
        let _ = s.child.kill();
    }
    let program = s.program;
    let status = s.child.wait().map_err(|source| ChildError::Wait {
        program: program.clone(),
        source,
    })?;
    let stdout = stdout(&ended);
    let stderr = err
        .recv_timeout(pipe_grace(&ended, deadline))
        .unwrap_or_default();
    if let Some(w) = s.writer {
        if w.is_finished() {
            let _ = w.join();
        }
    }
    match ended {
        Ok(Ended::Exited) => Ok(Output {
            status,
            stdout,
            stderr,
        }),
        Ok(Ended::TimedOut) => Err(ChildError::TimedOut {
            program,
            secs: 0.0_f64.max(deadline.elapsed().as_secs_f64()),
            stdout,
            stderr,
        }),
        Ok(Ended::Cancelled) => Err(ChildError::Cancelled {
            program,
            stdout,
            stderr,
        }),
        Err(source) => Err(ChildError::Wait { program, source }),
    }
}

/// Runs `cmd` as [`Call`] says. The child is always reaped before this returns.
pub fn run(cmd: &mut Command, call: Call<'_>) -> Result<Output, ChildError> {
    let mut s = start(cmd, call.stdin)?;
    let out = reader(s.child.stdout.take());
    let err = reader(s.child.stderr.take());
    let ended = await_exit(&s.child, call.deadline, call.cancel);
    // A grandchild that kept a pipe open must not hold us past the deadline.
    let stdout = |ended: &io::Result<Ended>| {
        out.recv_timeout(pipe_grace(ended, call.deadline))
            .unwrap_or_default()
    };
    finish(s, ended, call.deadline, stdout, err)
}

/// A receiver of a child's stdout, one line at a time (see [`run_lines`]).
pub type OnLine<'a> = &'a mut dyn FnMut(&[u8]);

/// [`run`], with the child's stdout also handed to `on_line` one line at a
/// time (without its `\n`) as it arrives, on this thread: a child that
/// streams its progress is read while it runs, not after it ends. A last
/// line without `\n` is handed over too. The whole stdout is in the
/// [`Output`] as well.
pub fn run_lines(
    cmd: &mut Command,
    call: Call<'_>,
    on_line: &mut dyn FnMut(&[u8]),
) -> Result<Output, ChildError> {
    let mut s = start(cmd, call.stdin)?;
    let err = reader(s.child.stderr.take());
    let mut stdout = s.child.stdout.take();
    let mut all = Vec::new();
    let mut done_to = 0;
    let ended = stream_until_exit(&s.child, &mut stdout, &call, &mut all, &mut |all| {
        while let Some(n) = all[done_to..].iter().position(|&b| b == b'\n') {
            on_line(&all[done_to..done_to + n]);
            done_to += n + 1;
        }
    });
    if done_to < all.len() {
        on_line(&all[done_to..]);
    }
    finish(s, ended, call.deadline, |_| all, err)
}

/// Reads `stdout` into `all` as it arrives (calling `got` after each read)
/// until the child has exited and its stdout is closed, or 200 ms after the
/// exit (a grandchild that kept the pipe open must not hold us), or the
/// deadline or the cancel fd.
fn stream_until_exit(
    child: &Child,
    stdout: &mut Option<std::process::ChildStdout>,
    call: &Call<'_>,
    all: &mut Vec<u8>,
    got: &mut dyn FnMut(&[u8]),
) -> io::Result<Ended> {
    let exit = ExitWatch::new(child.id())?;
    // Already gone: only its stdout is left to read.
    let mut exited: Option<Instant> = exit.is_none().then(Instant::now);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let mut until = call.deadline;
        if let Some(at) = exited {
            if stdout.is_none() {
                return Ok(Ended::Exited);
            }
            let grace = at + Duration::from_millis(200);
            if Instant::now() >= grace {
                return Ok(Ended::Exited);
            }
            until = until.min(grace);
        }
        let left = remaining(until);
        if left.is_zero() {
            return Ok(if exited.is_some() {
                Ended::Exited
            } else {
                Ended::TimedOut
            });
        }
        let mut fds = Vec::with_capacity(3);
        let out_at = stdout.as_ref().map(|o| {
            fds.push(PollFd::new(o, PollFlags::IN));
            fds.len() - 1
        });
        let pid_at = exit.as_ref().filter(|_| exited.is_none()).map(|e| {
            fds.push(PollFd::new(e, PollFlags::IN));
            fds.len() - 1
        });
        let cancel_at = call.cancel.map(|c| {
            fds.push(PollFd::from_borrowed_fd(c, PollFlags::IN));
            fds.len() - 1
        });
        let ts = timespec(left);
        match poll(&mut fds, Some(&ts)) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let ready = |i: Option<usize>| i.is_some_and(|i| !fds[i].revents().is_empty());
        let (out_ready, pid_ready) = (ready(out_at), ready(pid_at));
        if ready(cancel_at) {
            return Ok(Ended::Cancelled);
        }
        drop(fds);
        if out_ready {
            if let Some(o) = stdout.as_mut() {
                match o.read(&mut buf) {
                    Ok(0) => *stdout = None,
                    Ok(n) => {
                        all.extend_from_slice(&buf[..n]);
                        got(all);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => *stdout = None,
                }
            }
        }
        if pid_ready {
            exited = Some(Instant::now());
        }
    }
}

/// Reads `fd` to check whether it became readable, without blocking.
pub fn is_readable(fd: impl AsFd) -> bool {
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    matches!(poll(&mut fds, Some(&timespec(Duration::ZERO))), Ok(n) if n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(stdin: Option<&[u8]>, secs: u64) -> Call<'_> {
        Call {
            stdin,
            deadline: Instant::now() + Duration::from_secs(secs),
            cancel: None,
        }
    }

    #[test]
    fn passes_stdin_and_collects_both_streams() {
        let mut c = Command::new("sh");
        c.args(["-c", "cat; echo err >&2; exit 3"]);
        let big = vec![b'x'; 3 << 20];
        let out = run(&mut c, call(Some(&big), 20)).unwrap();
        assert_eq!(out.code(), 3);
        assert_eq!(out.stdout.len(), big.len());
        assert_eq!(out.stderr, b"err\n");
    }

    #[test]
    fn lines_arrive_while_the_child_runs() {
        // The child prints a line, then waits for us to have seen it (the
        // file we create on the first line) before it prints the next.
        let dir = std::env::temp_dir().join(format!("paliadin-child-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let flag = dir.join("seen");
        let mut c = Command::new("sh");
        c.args([
            "-c",
            "echo one; while [ ! -e \"$1\" ]; do sleep 0.01; done; printf 'two\\nthree'; echo err >&2",
            "sh",
        ])
        .arg(&flag);
        let mut lines = Vec::new();
        let out = run_lines(&mut c, call(None, 20), &mut |l| {
            if l == b"one" {
                std::fs::write(&flag, b"").unwrap();
            }
            lines.push(String::from_utf8_lossy(l).into_owned());
        })
        .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(lines, ["one", "two", "three"]);
        assert_eq!(out.stdout, b"one\ntwo\nthree");
        assert_eq!(out.stderr, b"err\n");
        assert_eq!(out.code(), 0);
    }

    #[test]
    fn lines_stop_at_the_deadline_and_on_cancel() {
        let mut c = Command::new("sh");
        c.args(["-c", "echo early; exec sleep 30"]);
        let mut lines = 0;
        let e = run_lines(
            &mut c,
            Call {
                stdin: None,
                deadline: Instant::now() + Duration::from_millis(300),
                cancel: None,
            },
            &mut |_| lines += 1,
        )
        .unwrap_err();
        assert!(matches!(e, ChildError::TimedOut { .. }), "{e}");
        assert_eq!(lines, 1);
        let (r, w) = rustix::pipe::pipe().unwrap();
        rustix::io::write(&w, b"x").unwrap();
        let mut c = Command::new("sleep");
        c.arg("30");
        let e = run_lines(
            &mut c,
            Call {
                stdin: Some(b"in"),
                deadline: Instant::now() + Duration::from_secs(30),
                cancel: Some(r.as_fd()),
            },
            &mut |_| {},
        )
        .unwrap_err();
        assert!(matches!(e, ChildError::Cancelled { .. }), "{e}");
    }

    #[test]
    fn kills_at_the_deadline() {
        let mut c = Command::new("sleep");
        c.arg("30");
        let e = run(
            &mut c,
            Call {
                stdin: None,
                deadline: Instant::now() + Duration::from_millis(100),
                cancel: None,
            },
        )
        .unwrap_err();
        assert!(matches!(e, ChildError::TimedOut { .. }), "{e}");
    }

    #[test]
    fn missing_program_is_typed() {
        let e = run(&mut Command::new("paliadin-no-such-program"), call(None, 5)).unwrap_err();
        assert!(e.is_not_found());
    }

    #[test]
    fn cancel_fd_stops_the_child() {
        let (r, w) = rustix::pipe::pipe().unwrap();
        rustix::io::write(&w, b"x").unwrap();
        let mut c = Command::new("sleep");
        c.arg("30");
        let e = run(
            &mut c,
            Call {
                stdin: None,
                deadline: Instant::now() + Duration::from_secs(30),
                cancel: Some(r.as_fd()),
            },
        )
        .unwrap_err();
        assert!(matches!(e, ChildError::Cancelled { .. }), "{e}");
    }
}
