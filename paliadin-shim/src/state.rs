//! The shim's state on disk, under `<state_dir>/sessions/<key>/`: the turn
//! lock, the markers the hooks leave, and one directory per turn holding its
//! reply. Owns every name below the state directory and every rule about them
//! (who writes what, once); never talks to tmux or reads a hook's stdin.
//! Everything is reached through [`crate::dirfd::Dir`]: from a checked
//! descriptor, one name at a time, never through a symlink.
//!
//! ```text
//! <state_dir>/claude-settings.json       the hooks the agent is started with
//! <state_dir>/usage-limit.json           the subscription's limit while it holds
//! <state_dir>/sessions/<key>/lock        held across a turn (flock)
//!                           start.lock   held while the agent starts
//!                           ready        SessionStart arrived
//!                           mounted      the agent's input loop runs
//!                           agent.json   argv and start time of the agent
//!                           last_prompt  id of the last submitted turn
//!                           current      id of the turn being waited for
//!                           cancel       id of a turn cancelled before it was typed
//!                           activity     its mtime: the last activity
//!                           swept        its mtime: the last sweep
//!                           windows.json the plan's windows, from the status line
//!                           limit_pane   the pane may show a usage limit's menu
//!                           conversation the agent's conversation id (crate::sleep)
//!                           asleep       the agent was put to sleep (when, memory)
//!                           woke         how it woke, for the next turn's events
//!                           hook.auth    the verifier of the agent's hook key
//!                           refused.log  refused hook calls, dropped event lines
//!                           bells/<uuid> one FIFO per waiter, rung by hooks
//!                           turns/<id>/  typed (the id is held), submitted,
//!                                        reply.md, blocked, failed, idle,
//!                                        cancelled, delivered, events.jsonl,
//!                                        rate_limit, resolving, usage_limit
//! ```

use paliadin_core::session::SessionName;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use uuid::Uuid;

use crate::dirfd::{Dir, ReadError, Ring};

/// Largest reply the shim will read.
pub const MAX_REPLY: u64 = 64 << 20;
/// How long a reply is kept for `poll` and retries.
pub const TURN_TTL: Duration = Duration::from_secs(24 * 3600);
/// How often a session's expired turns are looked for.
pub const SWEEP_EVERY: Duration = Duration::from_secs(600);
/// Largest marker file read.
const MAX_MARKER: u64 = 1 << 20;

/// A marker of a session: there or not, left by a hook or by the shim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// `SessionStart` arrived (or an agent without hooks showed its pattern).
    Ready,
    /// The agent's input loop runs: a paste's Enter gets in.
    Mounted,
    /// A turn hit the usage limit: the pane may show its menu until it is
    /// seen gone.
    LimitPane,
}

impl Mark {
    fn file(self) -> &'static str {
        match self {
            Mark::Ready => "ready",
            Mark::Mounted => "mounted",
            Mark::LimitPane => "limit_pane",
        }
    }
}

/// A marker of a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnMark {
    /// The id is held: its envelope may have been typed.
    Typed,
    /// `UserPromptSubmit` arrived with its id.
    Submitted,
    /// The pane waits on a person (the file holds why).
    Blocked,
    /// The agent reported a failure, or its reply was refused (the file holds why).
    Failed,
    /// The agent went idle after it.
    Idle,
    /// Its reply was printed at least once (the file holds when, in ms).
    Delivered,
    /// Its `usage` event is recorded (measured or not).
    Measured,
    /// `StopFailure` said `rate_limit` (the file holds what it said): a
    /// usage limit or an API's 429, still to be told apart.
    RateLimited,
    /// Someone tells that rate limit apart (first come; see `crate::limit`).
    Resolving,
    /// The subscription's usage limit (the file holds the limit as JSON).
    UsageLimit,
    /// A `cancel` stopped it (the file holds how).
    Cancelled,
}

impl TurnMark {
    fn file(self) -> &'static str {
        match self {
            TurnMark::Typed => "typed",
            TurnMark::Submitted => "submitted",
            TurnMark::Blocked => "blocked",
            TurnMark::Failed => "failed",
            TurnMark::Idle => "idle",
            TurnMark::Delivered => "delivered",
            TurnMark::Measured => "measured",
            TurnMark::RateLimited => "rate_limit",
            TurnMark::Resolving => "resolving",
            TurnMark::UsageLimit => "usage_limit",
            TurnMark::Cancelled => "cancelled",
        }
    }
}

/// A session's flocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockName {
    /// Held across a turn: turns of a session run one at a time.
    Turn,
    /// Held while the agent starts: it starts once, even when requests race.
    Start,
}

impl LockName {
    fn file(self) -> &'static str {
        match self {
            LockName::Turn => "lock",
            LockName::Start => "start.lock",
        }
    }
}

/// `agent.json`: the agent the shim started in the session's pane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRecord {
    /// Its argv as started (with the shim's `--settings`).
    pub argv: Vec<String>,
    pub pid: u32,
    /// [`paliadin_core::process::start_time`] of `pid`: tells it from a
    /// later process given the same pid.
    pub starttime: Option<u64>,
    /// When it was started, ms since the epoch.
    pub started_ms: i64,
}

/// One FIFO per waiter, rung by the hooks.
const BELLS: &str = "bells";

/// A waiter's bell: a FIFO of its own in the session's `bells/`, held open
/// at both ends (so it never reads as hung up), which every hook rings after
/// it has recorded what it saw ([`SessionDir::ring`]). Poll it: readable
/// means "look at the state again". Armed before the first look at the
/// state, so no record made after that look goes unrung; one per waiter, so
/// every waiter (a turn, its repeats, a `poll`) wakes. Removed when dropped;
/// one left by a killed waiter is removed by the next ring.
#[derive(Debug)]
pub struct Bell {
    read: OwnedFd,
    _write: OwnedFd,
    bells: Dir,
    name: String,
}

impl Bell {
    /// Reads what the ringers wrote, so the bell can wake its waiter again.
    pub fn drain(&self) {
        let mut buf = [0u8; 512];
        while matches!(rustix::io::read(&self.read, &mut buf), Ok(n) if n > 0) {}
    }
}

impl AsFd for Bell {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }
}

impl Drop for Bell {
    fn drop(&mut self) {
        self.bells.remove(&self.name);
    }
}

/// The record of the agent.
const AGENT: &str = "agent.json";
/// The id of the turn being waited for.
const CURRENT: &str = "current";
/// The id of a turn a `cancel` named before it was typed.
const CANCEL: &str = "cancel";
/// The id of the last turn the agent took (`UserPromptSubmit`).
const LAST_PROMPT: &str = "last_prompt";
/// The agent's own id of its conversation (Claude Code's `session_id`).
const AGENT_SESSION: &str = "agent_session";
/// Its mtime: the session's last activity.
const ACTIVITY: &str = "activity";
/// Its mtime: the last sweep of expired turns.
const SWEPT: &str = "swept";
/// The plan's windows as the status line last saw them.
const WINDOWS: &str = "windows.json";
/// In the state directory itself: the subscription's usage limit.
const USAGE_LIMIT: &str = "usage-limit.json";

/// The usage limit recorded for the whole laptop (the subscription's, not
/// a session's), as written.
pub fn usage_limit_record(state_dir: &Path) -> Option<String> {
    let root = open_root(state_dir, false).ok()??;
    let b = root.read(USAGE_LIMIT, MAX_MARKER).ok()??;
    Some(String::from_utf8_lossy(&b).into_owned())
}

/// Replaces the laptop's usage limit record (atomic, never through a symlink).
pub fn set_usage_limit_record(state_dir: &Path, text: &str) -> io::Result<()> {
    open_root(state_dir, true)?
        .ok_or_else(absent)?
        .write(USAGE_LIMIT, text.as_bytes())
}

/// The agent's conversation id, chosen by the shim ([`crate::sleep`]).
const CONVERSATION: &str = "conversation";
/// The agent was put to sleep: its record ([`crate::sleep`]).
const ASLEEP: &str = "asleep";
/// How the agent woke, until a turn reports it ([`crate::sleep`]).
const WOKE: &str = "woke";
/// The verifier of the agent's hook key (`crate::hookauth`).
const HOOK_AUTH: &str = "hook.auth";
/// One line per refused hook call or dropped event line.
const REFUSED: &str = "refused.log";

fn note_refused(d: &Dir, what: &str) {
    let at = paliadin_core::timefmt::rfc3339_ms(paliadin_core::timefmt::now_ms());
    let line = paliadin_core::text::one_line(&format!("{at} {what}"), Some(200));
    let _ = d.append_line(REFUSED, &line, 64 << 10, 1000);
}

/// The state directory itself: opened (and created, 0700) once per request.
pub fn open_root(state_dir: &Path, create: bool) -> io::Result<Option<Dir>> {
    Dir::open_root(state_dir, create)
}

/// The state of one session. Without its directory on disk (a session
/// never used here), it reads as empty and cannot be written.
#[derive(Debug)]
pub struct SessionDir {
    pub name: SessionName,
    /// `sessions/<key>` and its `turns`.
    dirs: Option<(Arc<Dir>, Arc<Dir>)>,
    path: PathBuf,
}

/// A held flock, released when dropped or when the process dies.
#[derive(Debug)]
pub struct Lock(#[allow(dead_code)] File);

fn try_flock(f: &File) -> io::Result<bool> {
    use rustix::fs::{flock, FlockOperation};
    match flock(f, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

fn absent() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "the session has no state yet")
}

impl SessionDir {
    /// Opens the session's state under `state_dir`, creating what is missing
    /// when `create`. Fails on anything planted in its place (a symlink, a
    /// file, a state directory others can write to).
    pub fn open(state_dir: &Path, name: &SessionName, create: bool) -> io::Result<SessionDir> {
        let path = state_dir.join("sessions").join(name.key());
        let dirs = match open_root(state_dir, create)? {
            None => None,
            Some(root) => match root.child("sessions", create)? {
                None => None,
                Some(sessions) => match sessions.child(&name.key(), create)? {
                    None => None,
                    Some(dir) => dir
                        .child("turns", true)?
                        .map(|t| (Arc::new(dir), Arc::new(t))),
                },
            },
        };
        Ok(SessionDir {
            name: name.clone(),
            dirs,
            path,
        })
    }

    /// Where the session's state is (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the session has state on disk.
    pub fn exists(&self) -> bool {
        self.dirs.is_some()
    }

    fn dir(&self) -> io::Result<&Dir> {
        self.dirs.as_ref().map(|(d, _)| &**d).ok_or_else(absent)
    }

    /// Takes the lock, waiting until `deadline`; `Ok(None)` if it stayed held.
    pub fn lock(&self, lock: LockName, deadline: Instant) -> io::Result<Option<Lock>> {
        let f = self.dir()?.lock_file(lock.file())?;
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
        match self.dir().and_then(|d| d.lock_file(LockName::Turn.file())) {
            Ok(f) => !try_flock(&f).unwrap_or(true),
            Err(_) => false,
        }
    }

    /// A small file's text.
    fn read(&self, file: &str) -> Option<String> {
        self.dir()
            .ok()?
            .read(file, MAX_MARKER)
            .ok()
            .flatten()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    /// Replaces a small file (atomic for readers, not flushed: state is
    /// rebuilt after a reboot anyway).
    fn write(&self, file: &str, text: &str) -> io::Result<()> {
        self.dir()?.write(file, text.as_bytes())
    }

    fn remove(&self, file: &str) {
        if let Ok(d) = self.dir() {
            d.remove(file);
        }
    }

    fn read_id(&self, file: &str) -> Option<Uuid> {
        self.read(file)?.trim().parse().ok()
    }

    pub fn has(&self, mark: Mark) -> bool {
        self.dir().is_ok_and(|d| d.has(mark.file()))
    }

    /// Leaves `mark`, holding `text`.
    pub fn mark(&self, mark: Mark, text: &str) -> io::Result<()> {
        self.write(mark.file(), text)
    }

    /// Removes `mark`.
    pub fn unmark(&self, mark: Mark) {
        self.remove(mark.file());
    }

    /// The plan's windows as last recorded (`crate::statusline`).
    pub fn windows_record(&self) -> Option<String> {
        self.read(WINDOWS)
    }

    pub fn set_windows_record(&self, text: &str) -> io::Result<()> {
        self.write(WINDOWS, text)
    }

    /// Marks the agent ready; `source` says who saw it (SessionStart's
    /// source, or `pattern`).
    pub fn mark_ready(&self, source: &str) -> io::Result<()> {
        let record =
            serde_json::json!({ "source": source, "at_ms": paliadin_core::timefmt::now_ms() });
        self.mark(Mark::Ready, &record.to_string())
    }

    /// Records the agent's id of its conversation, as its `SessionStart`
    /// gave it (a new one after `/clear`): the one transcript this
    /// session's turns are measured from.
    pub fn set_agent_session(&self, id: &str) -> io::Result<()> {
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            self.remove(AGENT_SESSION);
            return Ok(());
        }
        self.write(AGENT_SESSION, id)
    }

    /// The agent's id of its conversation, if its start gave one.
    pub fn agent_session(&self) -> Option<String> {
        Some(self.read(AGENT_SESSION)?.trim().to_owned()).filter(|s| !s.is_empty())
    }

    /// The turn the session waits on, if any.
    pub fn current(&self) -> Option<Uuid> {
        self.read_id(CURRENT)
    }

    pub fn set_current(&self, id: Uuid) -> io::Result<()> {
        self.write(CURRENT, &id.to_string())
    }

    /// The session no longer waits on turn `id` (another turn's mark stays).
    pub fn clear_current(&self, id: Uuid) {
        if self.current() == Some(id) {
            self.remove(CURRENT);
        }
    }

    /// Asks that turn `id`, not typed yet, never be typed (a `cancel` that
    /// came before its `run-turn` typed it). One id: the last asked.
    pub fn request_cancel(&self, id: Uuid) -> io::Result<()> {
        self.write(CANCEL, &id.to_string())
    }

    /// Whether a `cancel` asked that turn `id` never be typed; the request
    /// is taken (removed) when it names `id`.
    pub fn take_cancel(&self, id: Uuid) -> bool {
        let asked = self.read_id(CANCEL) == Some(id);
        if asked {
            self.remove(CANCEL);
        }
        asked
    }

    /// The last turn the agent took, if the last prompt was a turn's.
    pub fn last_prompt(&self) -> Option<Uuid> {
        self.read_id(LAST_PROMPT)
    }

    /// Records the last prompt's turn; `None` for a prompt of no turn (an
    /// operator typing in the pane).
    pub fn set_last_prompt(&self, id: Option<Uuid>) -> io::Result<()> {
        match id {
            Some(id) => self.write(LAST_PROMPT, &id.to_string()),
            None => {
                self.remove(LAST_PROMPT);
                Ok(())
            }
        }
    }

    /// The agent the shim started here, as recorded.
    pub fn agent(&self) -> Option<AgentRecord> {
        serde_json::from_str(&self.read(AGENT)?).ok()
    }

    pub fn set_agent(&self, record: &AgentRecord) -> io::Result<()> {
        let text = serde_json::to_string(record).map_err(io::Error::other)?;
        self.write(AGENT, &text)
    }

    /// Forgets the agent: whatever runs in the pane next is started afresh,
    /// must become ready and mounted again, and owns no earlier turn.
    pub fn forget_agent(&self) {
        for f in [
            Mark::Ready.file(),
            Mark::Mounted.file(),
            LAST_PROMPT,
            CURRENT,
            AGENT,
            HOOK_AUTH,
        ] {
            self.remove(f);
        }
    }

    /// The agent's conversation id, if the shim chose one.
    pub fn conversation(&self) -> Option<Uuid> {
        self.read_id(CONVERSATION)
    }

    pub fn set_conversation(&self, id: Uuid) -> io::Result<()> {
        self.write(CONVERSATION, &id.to_string())
    }

    /// The sleep record, if the agent was put to sleep and has not woken.
    pub fn asleep(&self) -> Option<String> {
        self.read(ASLEEP)
    }

    pub fn set_asleep(&self, record: &str) -> io::Result<()> {
        self.write(ASLEEP, record)
    }

    /// How the agent woke, taken once (by the turn that woke it).
    pub fn take_woke(&self) -> Option<String> {
        let text = self.read(WOKE)?;
        self.remove(WOKE);
        Some(text)
    }

    /// Records that the agent woke (`text`), and that it sleeps no more.
    pub fn set_woke(&self, text: &str) -> io::Result<()> {
        self.write(WOKE, text)?;
        self.remove(ASLEEP);
        Ok(())
    }

    /// Forgets the conversation, the sleep and the wake: the next agent
    /// starts a new conversation.
    pub fn forget_conversation(&self) {
        for f in [CONVERSATION, ASLEEP, WOKE] {
            self.remove(f);
        }
    }

    /// The verifier of the agent's hook key (`crate::hookauth`), as hex.
    pub fn hook_verifier(&self) -> Option<String> {
        self.read(HOOK_AUTH)
    }

    pub fn set_hook_verifier(&self, hex: &str) -> io::Result<()> {
        self.write(HOOK_AUTH, hex)
    }

    /// Notes a refused hook call or dropped event line (bounded).
    pub fn note_refused(&self, what: &str) {
        if let Ok(d) = self.dir() {
            note_refused(d, what);
        }
    }

    /// How many refusals the session noted.
    pub fn refused(&self) -> usize {
        self.read(REFUSED)
            .map_or(0, |t| t.lines().filter(|l| !l.is_empty()).count())
    }

    /// Marks activity now (the file's mtime is the time).
    pub fn touch(&self) {
        if let Ok(d) = self.dir() {
            d.stamp(ACTIVITY);
        }
    }

    /// When the session was last active.
    pub fn last_activity(&self) -> Option<SystemTime> {
        self.dir().ok()?.mtime(ACTIVITY)
    }

    /// Arms a new bell for a waiter of this session (see [`Bell`]).
    pub fn bell(&self) -> io::Result<Bell> {
        let bells = self.dir()?.child(BELLS, true)?.ok_or_else(absent)?;
        let name = Uuid::new_v4().to_string();
        // Made and opened under a name no ringer touches, then put in place:
        // a ringer never sees it without its reader.
        let tmp = format!(".{name}");
        let armed = bells
            .make_fifo(&tmp)
            .and_then(|fds| bells.rename(&tmp, &name).map(|()| fds));
        match armed {
            Ok((read, write)) => Ok(Bell {
                read,
                _write: write,
                bells,
                name,
            }),
            Err(e) => {
                bells.remove(&tmp);
                Err(e)
            }
        }
    }

    /// Rings every waiter's bell, after something was recorded: never
    /// blocks, never follows a symlink, writes to nothing but a FIFO of
    /// ours, and removes the bells whose waiters are gone.
    pub fn ring(&self) {
        let Ok(Some(bells)) = self.dir().and_then(|d| d.child(BELLS, false)) else {
            return;
        };
        for name in bells.names() {
            if !name.starts_with('.') && bells.ring(&name) == Ring::NoReader {
                bells.remove(&name);
            }
        }
    }

    pub fn turn(&self, id: Uuid) -> TurnDir {
        TurnDir {
            id,
            name: id.to_string(),
            turns: self.dirs.as_ref().map(|(_, t)| Arc::clone(t)),
            session: self.dirs.as_ref().map(|(d, _)| Arc::clone(d)),
            path: self.path.join("turns").join(id.to_string()),
        }
    }

    /// Removes turns older than [`TURN_TTL`], at most every [`SWEEP_EVERY`]
    /// (a busy session holds a day of turns: no turn should stat them all).
    /// Only real directories on the state's own filesystem are removed, and
    /// nothing below them is followed.
    pub fn sweep(&self) {
        let Some((dir, turns)) = &self.dirs else {
            return;
        };
        let now = SystemTime::now();
        let recent = dir
            .mtime(SWEPT)
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age < SWEEP_EVERY);
        if recent {
            return;
        }
        dir.stamp(SWEPT);
        // A bell whose waiter was killed as it armed it (never rung: its
        // name starts with a dot).
        if let Ok(Some(bells)) = dir.child(BELLS, false) {
            for name in bells.names().into_iter().filter(|n| n.starts_with('.')) {
                let old = bells
                    .mtime(&name)
                    .and_then(|t| now.duration_since(t).ok())
                    .is_some_and(|age| age > SWEEP_EVERY);
                if old {
                    bells.remove(&name);
                }
            }
        }
        for name in turns.names() {
            let old = turns
                .mtime(&name)
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age > TURN_TTL);
            if old && turns.is_subdir_here(&name) {
                turns.remove_tree(&name);
            }
        }
    }
}

/// One turn's directory.
#[derive(Debug, Clone)]
pub struct TurnDir {
    pub id: Uuid,
    name: String,
    turns: Option<Arc<Dir>>,
    /// The session's directory (its hook verifier and refusal log).
    session: Option<Arc<Dir>>,
    path: PathBuf,
}

/// What a turn's directory says about it.
#[derive(Debug, PartialEq, Eq)]
pub enum TurnState {
    /// A reply file is there (read it with [`TurnDir::reply`]: it may still
    /// be refused).
    Replied,
    /// The subscription's usage limit (with the limit, as JSON).
    UsageLimit(String),
    /// The agent reported a failure (with its error), or its reply was refused.
    Failed(String),
    /// The agent reported a rate limit not yet told apart (with what it said).
    RateLimited(String),
    /// The pane waits on a person (with the notification's message).
    Blocked(String),
    /// A `cancel` stopped it (with how).
    Cancelled(String),
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

/// The reply file's name in a turn's directory.
const REPLY: &str = "reply.md";
/// The turn's events, one JSON object per line (PROTOCOL section 7).
const EVENTS: &str = "events.jsonl";
/// The most events a turn keeps, and their bytes.
const MAX_EVENTS: usize = 500;
const MAX_EVENT_BYTES: u64 = 128 << 10;

impl TurnDir {
    /// The turn's directory, if it is there (an error if something else is).
    fn open(&self) -> io::Result<Option<Dir>> {
        match &self.turns {
            Some(t) => t.child(&self.name, false),
            None => Ok(None),
        }
    }

    pub fn exists(&self) -> bool {
        self.open().is_ok_and(|d| d.is_some())
    }

    /// Where the turn's directory is (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates the directory; `Ok(false)` if it already existed.
    pub fn create(&self) -> io::Result<bool> {
        self.turns.as_ref().ok_or_else(absent)?.mkdir(&self.name)
    }

    /// Removes the directory and what is in it.
    pub fn remove(&self) {
        if let Some(t) = &self.turns {
            t.remove_tree(&self.name);
        }
    }

    /// How long ago the turn's directory last changed.
    pub fn age(&self) -> Option<Duration> {
        let m = self.turns.as_ref()?.mtime(&self.name)?;
        SystemTime::now().duration_since(m).ok()
    }

    /// Where an agent without hooks writes its reply (the only path the
    /// shim ever hands out; it never opens it by path itself).
    pub fn reply_path(&self) -> PathBuf {
        self.path.join(REPLY)
    }

    pub fn has(&self, mark: TurnMark) -> bool {
        self.open()
            .ok()
            .flatten()
            .is_some_and(|d| d.has(mark.file()))
    }

    /// Leaves a marker (idempotent).
    pub fn mark(&self, mark: TurnMark, text: &str) -> io::Result<()> {
        self.open()?
            .ok_or_else(absent)?
            .write(mark.file(), text.as_bytes())
    }

    /// How long ago `mark` was left, if it is there.
    pub fn mark_age(&self, mark: TurnMark) -> Option<Duration> {
        let m = self.open().ok()??.mtime(mark.file())?;
        SystemTime::now().duration_since(m).ok()
    }

    /// Leaves a marker unless it is there already; `Ok(false)` then.
    pub fn mark_new(&self, mark: TurnMark, text: &str) -> io::Result<bool> {
        self.open()?
            .ok_or_else(absent)?
            .write_new(mark.file(), text.as_bytes())
    }

    /// Creates file `name` of the turn (a name another module owns) holding
    /// `text`, unless it is there: `Ok(false)` then.
    pub fn create_file(&self, name: &str, text: &str) -> io::Result<bool> {
        self.open()?
            .ok_or_else(absent)?
            .write_new(name, text.as_bytes())
    }

    /// The text of the turn's file `name`, if it is there.
    pub fn read_file(&self, name: &str) -> Option<String> {
        let d = self.open().ok()??;
        let b = d.read(name, MAX_MARKER).ok()??;
        Some(String::from_utf8_lossy(&b).into_owned())
    }

    /// Whether the turn id is held: its envelope may have been typed (it is
    /// marked so before tmux runs), or the turn has an outcome already.
    pub fn held(&self) -> bool {
        self.has(TurnMark::Typed)
            || self.has(TurnMark::Submitted)
            || self.state() != TurnState::Pending
    }

    /// Records the reply unless one is there already; `Ok(false)` then.
    pub fn write_reply(&self, reply: &[u8]) -> io::Result<bool> {
        self.open()?.ok_or_else(absent)?.write_new(REPLY, reply)
    }

    /// The turn's state: a cancel winning over everything else (what it
    /// answered stays true), then the reply.
    pub fn state(&self) -> TurnState {
        let Ok(Some(d)) = self.open() else {
            return TurnState::Pending;
        };
        let marker = |mark: TurnMark| {
            d.read(mark.file(), 1 << 16)
                .ok()
                .flatten()
                .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        };
        if let Some(c) = marker(TurnMark::Cancelled) {
            TurnState::Cancelled(c)
        } else if d.has(REPLY) {
            TurnState::Replied
        } else if let Some(l) = marker(TurnMark::UsageLimit) {
            TurnState::UsageLimit(l)
        } else if let Some(e) = marker(TurnMark::Failed) {
            TurnState::Failed(e)
        } else if let Some(r) = marker(TurnMark::RateLimited) {
            TurnState::RateLimited(r)
        } else if let Some(m) = marker(TurnMark::Blocked) {
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
        let Some(d) = self.open()? else {
            return Ok(None);
        };
        d.read_owned(REPLY, MAX_REPLY).map_err(|e| match e {
            ReadError::NotRegular => Refused::NotRegular,
            ReadError::Linked(n) => Refused::Linked(n),
            ReadError::Owner(u) => Refused::Owner(u),
            ReadError::TooLarge => Refused::TooLarge,
            ReadError::Io(e) => Refused::Io(e),
        })
    }

    /// Records one event, signed with the session's hook verifier
    /// (`crate::hookauth`; dropped past the turn's bounds, or when the
    /// session has no verifier).
    pub fn record(&self, event: &paliadin_core::event::Event) {
        let verifier = self.hook_verifier();
        let Some(v) = verifier
            .as_deref()
            .and_then(crate::hookauth::Verifier::parse)
        else {
            return;
        };
        let Some(line) = v.sign(event) else {
            return;
        };
        if let Ok(Some(d)) = self.open() {
            let _ = d.append_line(EVENTS, &line, MAX_EVENT_BYTES, MAX_EVENTS);
        }
    }

    /// The events recorded after byte `from`, whole lines only, and where
    /// the next read starts.
    pub fn events_from(&self, from: u64) -> (Vec<u8>, u64) {
        let Ok(Some(d)) = self.open() else {
            return (Vec::new(), from);
        };
        let all = d
            .read(EVENTS, MAX_EVENT_BYTES)
            .ok()
            .flatten()
            .unwrap_or_default();
        let start = (from as usize).min(all.len());
        let end = all[start..]
            .iter()
            .rposition(|&c| c == b'\n')
            .map_or(start, |i| start + i + 1);
        (all[start..end].to_vec(), end as u64)
    }

    /// The session's hook verifier (see [`SessionDir::hook_verifier`]).
    pub fn hook_verifier(&self) -> Option<String> {
        let b = self.session.as_ref()?.read(HOOK_AUTH, MAX_MARKER).ok()??;
        Some(String::from_utf8_lossy(&b).into_owned())
    }

    /// See [`SessionDir::note_refused`].
    pub fn note_refused(&self, what: &str) {
        if let Some(d) = &self.session {
            note_refused(d, what);
        }
    }

    /// The reply was printed at least once (for `status`; the reply stays).
    pub fn delivered(&self) {
        let _ = self.mark(
            TurnMark::Delivered,
            &paliadin_core::timefmt::now_ms().to_string(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt as _;

    /// A session's state in a temp dir of its own, removed on drop.
    struct Tmp(PathBuf, SessionDir);

    impl Tmp {
        fn new(tag: &str) -> Tmp {
            let root =
                std::env::temp_dir().join(format!("paliadin-state-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            paliadin_core::fsutil::private_dir(&root).unwrap();
            let s = SessionDir::open(&root, &SessionName::new("s").unwrap(), true).unwrap();
            Tmp(root, s)
        }

        fn bells(&self) -> PathBuf {
            self.0.join("sessions").join("s").join(BELLS)
        }

        fn names(&self) -> Vec<String> {
            let mut v: Vec<String> = std::fs::read_dir(self.bells())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        }
    }

    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn rung(b: &Bell) -> bool {
        paliadin_core::child::is_readable(b)
    }

    #[test]
    fn a_ring_wakes_every_waiter_and_each_can_wait_again() {
        let t = Tmp::new("two");
        let (a, b) = (t.1.bell().unwrap(), t.1.bell().unwrap());
        assert!(!rung(&a) && !rung(&b), "quiet until rung");
        t.1.ring();
        assert!(rung(&a) && rung(&b), "both waiters wake");
        a.drain();
        assert!(!rung(&a) && rung(&b), "draining one leaves the other rung");
        b.drain();
        t.1.ring();
        assert!(rung(&a) && rung(&b), "and they wake again");
        drop(a);
        assert_eq!(
            t.names(),
            std::slice::from_ref(&b.name),
            "a dropped bell is removed"
        );
    }

    #[test]
    fn a_ring_before_any_bell_is_nothing_and_a_later_bell_starts_quiet() {
        let t = Tmp::new("before");
        t.1.ring();
        let b = t.1.bell().unwrap();
        // The waiter looks at the state before it waits: a record made
        // before its bell is found by that look, not by a ring.
        assert!(!rung(&b));
    }

    #[test]
    fn a_killed_waiters_bell_holds_no_ring_up_and_is_removed() {
        let t = Tmp::new("killed");
        let live = t.1.bell().unwrap();
        // What a killed waiter leaves: its FIFO, with nobody reading it.
        let d = std::fs::File::open(t.bells()).unwrap();
        paliadin_core::process::make_fifo_at(d.as_fd(), "dead", rustix::fs::Mode::RWXU).unwrap();
        t.1.ring();
        assert!(rung(&live));
        assert_eq!(
            t.names(),
            std::slice::from_ref(&live.name),
            "the dead one removed"
        );
    }

    #[test]
    fn a_full_bell_is_still_rung_without_blocking() {
        let t = Tmp::new("full");
        let b = t.1.bell().unwrap();
        let chunk = [0u8; 4096];
        while rustix::io::write(&b._write, &chunk).is_ok() {}
        while rustix::io::write(&b._write, &chunk[..1]).is_ok() {}
        t.1.ring();
        assert!(rung(&b));
        b.drain();
        assert!(!rung(&b), "drained whole");
        t.1.ring();
        assert!(rung(&b), "and rung again");
    }

    #[test]
    fn a_bell_replaced_by_a_symlink_or_a_file_is_refused_and_nothing_followed() {
        let t = Tmp::new("planted");
        let b = t.1.bell().unwrap();
        // A FIFO outside the state, with a reader: a ring through a symlink
        // would reach it.
        let outside_dir = t.0.join("outside");
        std::fs::create_dir(&outside_dir).unwrap();
        let od = std::fs::File::open(&outside_dir).unwrap();
        paliadin_core::process::make_fifo_at(od.as_fd(), "fifo", rustix::fs::Mode::RWXU).unwrap();
        let outside = outside_dir.join("fifo");
        let reader = rustix::fs::open(
            &outside,
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NONBLOCK,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
        // The waiter's own bell replaced by a symlink, and a file planted.
        let own = t.bells().join(&b.name);
        std::fs::remove_file(&own).unwrap();
        std::os::unix::fs::symlink(&outside, &own).unwrap();
        std::fs::write(t.bells().join("planted"), b"").unwrap();
        t.1.ring();
        assert!(
            !paliadin_core::child::is_readable(&reader),
            "nothing followed"
        );
        assert!(!rung(&b), "its bell is gone: it waits for its tick");
        assert_eq!(std::fs::read(t.bells().join("planted")).unwrap(), b"");
        assert!(
            std::fs::symlink_metadata(&own).unwrap().is_symlink(),
            "left alone"
        );
        drop(b);
        assert!(
            std::fs::symlink_metadata(&own).is_err(),
            "the link itself removed"
        );
        assert!(std::fs::symlink_metadata(&outside)
            .unwrap()
            .file_type()
            .is_fifo());
    }
}
