//! The shim's state on disk, under `<state_dir>/sessions/<key>/`: the turn
//! lock, the markers the hooks leave, and one directory per turn holding its
//! reply file. Owns every path below the state directory and every rule about
//! them (who writes what, once); never talks to tmux or reads a hook's stdin.
//!
//! ```text
//! <state_dir>/claude-settings.json       the hooks the agent is started with
//! <state_dir>/sessions/<key>/lock        held across a turn (flock)
//!                           start.lock   held while the agent starts
//!                           ready        SessionStart arrived
//!                           agent.json   argv and start time of the agent
//!                           last_prompt  id of the last submitted turn
//!                           current      id of the turn being waited for
//!                           turns/<id>/  reply.md, submitted, blocked, failed, delivered
//! ```

use paliadin_core::fsutil;
use paliadin_core::session::SessionName;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};
use uuid::Uuid;

/// Largest reply the shim will read.
pub const MAX_REPLY: u64 = 64 << 20;
/// How long an undelivered reply is kept for `poll`.
pub const TURN_TTL: Duration = Duration::from_secs(24 * 3600);
/// How often a session's expired turns are looked for.
pub const SWEEP_EVERY: Duration = Duration::from_secs(600);

/// The state of one session.
#[derive(Debug, Clone)]
pub struct SessionDir {
    pub name: SessionName,
    pub dir: PathBuf,
}

/// A held flock, released when dropped or when the process dies.
#[derive(Debug)]
pub struct Lock(#[allow(dead_code)] File);

fn open_lock(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
}

fn try_flock(f: &File) -> io::Result<bool> {
    use rustix::fs::{flock, FlockOperation};
    match flock(f, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

impl SessionDir {
    pub fn new(state_dir: &Path, name: &SessionName) -> SessionDir {
        SessionDir {
            name: name.clone(),
            dir: state_dir.join("sessions").join(name.key()),
        }
    }

    /// Creates the directory (0700) if missing.
    pub fn create(&self) -> io::Result<()> {
        fsutil::private_dir(&self.dir.join("turns"))
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// Takes `file`'s lock, waiting until `deadline`; `Ok(None)` if it stayed held.
    pub fn lock(&self, file: &str, deadline: Instant) -> io::Result<Option<Lock>> {
        let f = open_lock(&self.path(file))?;
        loop {
            if try_flock(&f)? {
                return Ok(Some(Lock(f)));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether a turn holds the session right now.
    pub fn busy(&self) -> bool {
        match open_lock(&self.path("lock")) {
            Ok(f) => !try_flock(&f).unwrap_or(true),
            Err(_) => false,
        }
    }

    /// Reads a small marker file's text.
    pub fn read(&self, file: &str) -> Option<String> {
        fsutil::read_regular(&self.path(file), 1 << 20)
            .ok()
            .flatten()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    /// Replaces a marker file (atomic for readers, not flushed: state is
    /// rebuilt after a reboot anyway).
    pub fn write(&self, file: &str, text: &str) -> io::Result<()> {
        fsutil::write_atomic_volatile(&self.path(file), text.as_bytes(), 0o600)
    }

    pub fn remove(&self, file: &str) {
        let _ = fs::remove_file(self.path(file));
    }

    pub fn has(&self, file: &str) -> bool {
        fsutil::exists(&self.path(file))
    }

    /// Modification time of `file`.
    pub fn mtime(&self, file: &str) -> Option<SystemTime> {
        fs::metadata(self.path(file))
            .and_then(|m| m.modified())
            .ok()
    }

    /// Marks activity now.
    /// Marks activity now (the file's mtime is the time).
    pub fn touch(&self) {
        self.stamp("activity");
    }

    /// Sets `file`'s mtime to now, creating it empty if needed.
    fn stamp(&self, file: &str) {
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(self.path(file));
        if let Ok(f) = f {
            let _ = f.set_modified(SystemTime::now());
        }
    }

    pub fn turn(&self, id: Uuid) -> TurnDir {
        TurnDir {
            id,
            dir: self.dir.join("turns").join(id.to_string()),
        }
    }

    /// Removes turns older than [`TURN_TTL`], at most every [`SWEEP_EVERY`]
    /// (a busy session holds a day of turns: no turn should stat them all).
    pub fn sweep(&self) {
        let now = SystemTime::now();
        let recent = self
            .mtime("swept")
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age < SWEEP_EVERY);
        if recent {
            return;
        }
        self.stamp("swept");
        let Ok(entries) = fs::read_dir(self.dir.join("turns")) else {
            return;
        };
        for e in entries.flatten() {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age > TURN_TTL);
            if old {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
}

/// One turn's directory.
#[derive(Debug, Clone)]
pub struct TurnDir {
    pub id: Uuid,
    pub dir: PathBuf,
}

/// What a turn's directory says about it.
#[derive(Debug, PartialEq, Eq)]
pub enum TurnState {
    /// A reply file is there (read it with [`TurnDir::reply`]: it may still
    /// be refused).
    Replied,
    /// The agent reported a failure (with its error), or its reply was refused.
    Failed(String),
    /// The pane waits on a person (with the notification's message).
    Blocked(String),
    /// Typed, nothing yet.
    Pending,
}

/// Why a reply file does not count.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("it is not a regular file (a symlink, a directory or a device)")]
    NotRegular,
    #[error("it has {0} hard links (a link to another file)")]
    Linked(u64),
    #[error("it belongs to another user (uid {0})")]
    Owner(u32),
    #[error("it is larger than {} MiB", MAX_REPLY >> 20)]
    TooLarge,
    #[error("reading it failed: {0}")]
    Io(#[from] io::Error),
}

impl TurnDir {
    pub fn exists(&self) -> bool {
        self.dir.is_dir()
    }

    /// Creates the directory; `Ok(false)` if it already existed.
    pub fn create(&self) -> io::Result<bool> {
        use std::os::unix::fs::DirBuilderExt;
        match fs::DirBuilder::new().mode(0o700).create(&self.dir) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// How long ago the turn's directory last changed.
    pub fn age(&self) -> Option<Duration> {
        let m = fs::metadata(&self.dir).and_then(|m| m.modified()).ok()?;
        SystemTime::now().duration_since(m).ok()
    }

    /// Where the agent writes its reply.
    pub fn reply_path(&self) -> PathBuf {
        self.dir.join("reply.md")
    }

    fn marker(&self, name: &str) -> Option<String> {
        fsutil::read_regular(&self.dir.join(name), 1 << 16)
            .ok()
            .flatten()
            .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
    }

    pub fn has(&self, name: &str) -> bool {
        fsutil::exists(&self.dir.join(name))
    }

    /// Leaves a marker (idempotent).
    pub fn mark(&self, name: &str, text: &str) -> io::Result<()> {
        fsutil::write_atomic_volatile(&self.dir.join(name), text.as_bytes(), 0o600)
    }

    /// The turn's state, the reply winning over everything else.
    pub fn state(&self) -> TurnState {
        if fsutil::exists(&self.reply_path()) {
            TurnState::Replied
        } else if let Some(e) = self.marker("failed") {
            TurnState::Failed(e)
        } else if let Some(m) = self.marker("blocked") {
            TurnState::Blocked(m)
        } else {
            TurnState::Pending
        }
    }

    /// The reply, if its file is there and counts: a regular file (never
    /// followed through a symlink) with one link, owned by this user, within
    /// [`MAX_REPLY`]. A reply is kept until the turn expires, so reading it
    /// again (a retry, `poll`) gives the same bytes.
    pub fn reply(&self) -> Result<Option<Vec<u8>>, Refused> {
        fsutil::read_owned_file(&self.reply_path(), MAX_REPLY).map_err(|e| match e {
            fsutil::ReadError::NotRegular => Refused::NotRegular,
            fsutil::ReadError::Linked(n) => Refused::Linked(n),
            fsutil::ReadError::Owner(u) => Refused::Owner(u),
            fsutil::ReadError::TooLarge => Refused::TooLarge,
            fsutil::ReadError::Io(e) => Refused::Io(e),
        })
    }

    /// The reply was printed at least once (for `status`; the reply stays).
    pub fn delivered(&self) {
        let _ = self.mark("delivered", &paliadin_core::timefmt::now_ms().to_string());
    }
}
