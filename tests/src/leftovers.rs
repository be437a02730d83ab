//! Taking back what a test made, on drop, so also when the test fails: a
//! [`ScratchDir`] is a temp directory that first ends every process living
//! in it (by command line, working directory or environment: a HOME or
//! TMPDIR in it) and their descendants, then removes itself; a
//! [`TmuxServer`] is a private tmux server that is killed and whose socket
//! file goes with it (`tmux kill-server`, and a server that exits by
//! itself, leave the file).
//!
//! It must never touch what another test or another person made: processes
//! are chosen by the test's own unique directory (or the server's own pid),
//! never by name. `tests/run` checks the whole run the same way afterwards.

use rustix::process::{pidfd_open, pidfd_send_signal, Pid, PidfdFlags, Signal};
use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileTypeExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// How long an ended process may take to be gone.
const EXIT_WAIT: Duration = Duration::from_secs(10);

/// A temp directory (under `$TMPDIR`) that, when dropped, ends the
/// processes living in it and then removes it.
pub struct ScratchDir {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl ScratchDir {
    /// A new directory named `<prefix><6 random characters>`.
    pub fn new(prefix: &str) -> ScratchDir {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .expect("temp dir");
        let path = dir.path().to_owned();
        ScratchDir {
            dir: Some(dir),
            path,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        end_processes_under(&self.path);
        if let Some(dir) = self.dir.take() {
            if dir.close().is_err() {
                // Something still wrote in it while it went.
                end_processes_under(&self.path);
                let _ = std::fs::remove_dir_all(&self.path);
            }
        }
        if self.path.exists() {
            eprintln!("paliadin-tests: could not remove {}", self.path.display());
        }
    }
}

/// A tmux server on a private socket (`tmux -L <name>`), in the socket
/// directory of this process's `TMUX_TMPDIR`. Dropping it kills the
/// server, awaits its exit and removes its socket file.
pub struct TmuxServer {
    pub name: String,
}

impl TmuxServer {
    pub fn new(name: impl Into<String>) -> TmuxServer {
        TmuxServer { name: name.into() }
    }

    /// `tmux -L <name> -f /dev/null`, to add a command to.
    pub fn command(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.name, "-f", "/dev/null"]);
        c
    }

    /// Where tmux puts this server's socket: `$TMUX_TMPDIR` (else `/tmp`),
    /// resolved, then `tmux-<uid>/<name>`.
    pub fn socket_path(&self) -> PathBuf {
        let base = tmux_tmpdir()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/tmp"));
        let base = base.canonicalize().unwrap_or(base);
        base.join(format!("tmux-{}", rustix::process::getuid().as_raw()))
            .join(&self.name)
    }
}

impl Drop for TmuxServer {
    fn drop(&mut self) {
        // The server's pid, to await its end: every session line names it.
        let pid = quiet(self.command().args(["list-sessions", "-F", "#{pid}"]))
            .and_then(|out| out.lines().next()?.trim().parse::<i32>().ok())
            .and_then(Pid::from_raw)
            .and_then(|pid| pidfd_open(pid, PidfdFlags::empty()).ok());
        let _ = quiet(self.command().arg("kill-server"));
        if let Some(fd) = pid {
            await_exit(&[fd]);
        }
        let socket = self.socket_path();
        if std::fs::symlink_metadata(&socket).is_ok_and(|m| m.file_type().is_socket()) {
            let _ = std::fs::remove_file(&socket);
        }
    }
}

/// The `TMUX_TMPDIR` this process runs with (`tests/run` sets one per run),
/// when set.
pub fn tmux_tmpdir() -> Option<OsString> {
    std::env::var_os("TMUX_TMPDIR").filter(|v| !v.is_empty())
}

/// Gives a command whose environment was cleared this process's
/// `TMUX_TMPDIR`, so that its tmux finds the same sockets as the test's.
pub fn keep_tmux_tmpdir(c: &mut Command) -> &mut Command {
    if let Some(d) = tmux_tmpdir() {
        c.env("TMUX_TMPDIR", d);
    }
    c
}

/// Runs `c` with a deadline, for its stdout; `None` on any failure (this
/// runs in drops, where a panic would abort a failing test).
fn quiet(c: &mut Command) -> Option<String> {
    let out = paliadin_core::child::run(
        c,
        paliadin_core::child::Call {
            stdin: None,
            deadline: Instant::now() + Duration::from_secs(10),
            cancel: None,
        },
    )
    .ok()?;
    (out.code() == 0).then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One process as `/proc` shows it.
struct Proc {
    pid: i32,
    ppid: i32,
    zombie: bool,
    /// Its command line, working directory or environment names the
    /// directory asked about.
    under: bool,
}

/// Every process but this one (none where there is no `/proc`).
fn processes(dir: Option<&[String]>) -> Vec<Proc> {
    let me = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut v = Vec::new();
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`; comm may hold anything but not after the last ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let zombie = matches!(f.next(), Some("Z" | "X"));
        let ppid = f.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        let under = match dir {
            Some(forms) if !zombie => {
                let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
                let cwd = std::fs::read_link(e.path().join("cwd")).unwrap_or_default();
                let cwd = cwd.to_string_lossy();
                let names = |list: &[u8], d: &str| {
                    list.split(|&b| b == 0)
                        .any(|a| mentions(&String::from_utf8_lossy(a), d))
                };
                forms
                    .iter()
                    .any(|d| mentions(&cwd, d) || names(&cmdline, d))
                    || {
                        // Last, as it costs most: a daemon that left the
                        // directory and its parent still has HOME or TMPDIR.
                        let environ = std::fs::read(e.path().join("environ")).unwrap_or_default();
                        forms.iter().any(|d| names(&environ, d))
                    }
            }
            _ => false,
        };
        v.push(Proc {
            pid,
            ppid,
            zombie,
            under,
        });
    }
    v
}

/// Whether `text` names `dir` or a path below it (not a longer name
/// beginning the same way).
fn mentions(text: &str, dir: &str) -> bool {
    text.match_indices(dir).any(|(i, _)| {
        text[i + dir.len()..]
            .chars()
            .next()
            .is_none_or(|c| !(c.is_alphanumeric() || "-_.".contains(c)))
    })
}

/// `roots` and every live process below them.
fn with_descendants(all: &[Proc], mut set: Vec<i32>) -> Vec<i32> {
    loop {
        let more: Vec<i32> = all
            .iter()
            .filter(|p| !p.zombie && set.contains(&p.ppid) && !set.contains(&p.pid))
            .map(|p| p.pid)
            .collect();
        if more.is_empty() {
            return set;
        }
        set.extend(more);
    }
}

/// The live processes whose command line, working directory or
/// environment names `dir` or a path below it, and their descendants.
pub fn processes_under(dir: &Path) -> Vec<i32> {
    let mut forms = vec![dir.to_string_lossy().into_owned()];
    if let Ok(real) = dir.canonicalize() {
        let real = real.to_string_lossy().into_owned();
        if real != forms[0] {
            forms.push(real);
        }
    }
    let all = processes(Some(&forms));
    let roots = all.iter().filter(|p| p.under).map(|p| p.pid).collect();
    with_descendants(&all, roots)
}

/// The live processes below `pid` (not `pid` itself).
pub fn descendants_of(pid: i32) -> Vec<i32> {
    let all = processes(None);
    let mut v = with_descendants(&all, vec![pid]);
    v.retain(|&p| p != pid);
    v
}

/// SIGKILLs `pids` (through pidfds, so a reused pid is never hit) and
/// awaits their end.
pub fn kill_and_await(pids: &[i32]) {
    let fds: Vec<OwnedFd> = pids
        .iter()
        .filter_map(|&p| Pid::from_raw(p))
        .filter_map(|p| pidfd_open(p, PidfdFlags::empty()).ok())
        .collect();
    for fd in &fds {
        let _ = pidfd_send_signal(fd, Signal::KILL);
    }
    await_exit(&fds);
}

/// Ends everything living under `dir`; again while killing made room for
/// a process forked meanwhile.
pub fn end_processes_under(dir: &Path) {
    for _ in 0..5 {
        let pids = processes_under(dir);
        if pids.is_empty() {
            return;
        }
        kill_and_await(&pids);
    }
}

/// Awaits the end of every process of `fds`, for at most [`EXIT_WAIT`]
/// together.
fn await_exit(fds: &[OwnedFd]) {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let until = Instant::now() + EXIT_WAIT;
    for fd in fds {
        let left = until.saturating_duration_since(Instant::now());
        let ts = Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: left.subsec_nanos() as i64,
        };
        let mut p = [PollFd::new(fd, PollFlags::IN)];
        let _ = poll(&mut p, Some(&ts));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_is_mentioned_only_as_itself_or_a_parent() {
        let d = "/tmp/x/paliadin-test-abc123";
        assert!(mentions(d, d));
        assert!(mentions(&format!("--log {d}/home/agent.jsonl"), d));
        assert!(mentions(&format!("ControlPath={d}/run/x [mux]"), d));
        assert!(!mentions(&format!("{d}4/home"), d));
        assert!(!mentions(&format!("{d}-outer"), d));
        assert!(!mentions("/tmp/x", d));
    }

    #[test]
    fn a_scratch_dir_ends_its_processes_and_goes() {
        use std::io::BufRead as _;
        let dir = ScratchDir::new("paliadin-leftovers-");
        let path = dir.path().to_owned();
        // A child living in it by its working directory, with a grandchild
        // that lives elsewhere (and says its pid once it runs).
        let mut child = Command::new("sh")
            .args(["-c", "(cd / && exec sleep 600) & echo $!; exec sleep 600"])
            .current_dir(&path)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("sh");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the grandchild's pid");
        let grandchild: i32 = line.trim().parse().expect("a pid");
        let pid = child.id() as i32;
        let found = processes_under(&path);
        assert!(found.contains(&pid), "{found:?} lacks {pid}");
        assert!(found.contains(&grandchild), "{found:?} lacks {grandchild}");
        drop(dir);
        assert!(!path.exists());
        let status = child.wait().expect("wait");
        assert!(status.code().is_none(), "killed by a signal: {status}");
        let alive = processes(None)
            .iter()
            .any(|p| p.pid == grandchild && !p.zombie);
        assert!(!alive, "the grandchild {grandchild} still runs");
    }

    #[test]
    fn a_scratch_dir_ends_a_daemon_known_only_by_its_environment() {
        let dir = ScratchDir::new("paliadin-leftovers-");
        let path = dir.path().to_owned();
        // Orphaned at once, elsewhere, its command line free of the path:
        // only its TMPDIR says whose it is.
        let out = Command::new("sh")
            .args(["-c", "sleep 600 >/dev/null 2>&1 & echo $!"])
            .current_dir("/")
            .env("TMPDIR", path.join("tmp"))
            .output()
            .expect("sh");
        let daemon: i32 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("a pid");
        // Should an assertion below fail, the daemon still goes.
        struct Kill(i32);
        impl Drop for Kill {
            fn drop(&mut self) {
                let _ = Command::new("kill")
                    .args(["-KILL", &self.0.to_string()])
                    .status();
            }
        }
        let _kill = Kill(daemon);
        let found = processes_under(&path);
        assert!(found.contains(&daemon), "{found:?} lacks {daemon}");
        drop(dir);
        assert!(!path.exists());
        let alive = processes(None).iter().any(|p| p.pid == daemon && !p.zombie);
        assert!(!alive, "the daemon {daemon} still runs");
    }
}
