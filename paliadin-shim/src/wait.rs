//! Waiting without guessing: a bell of the waiter's own in the session's
//! state ([`crate::state::Bell`], a FIFO every hook rings after it has
//! recorded something), plus the agent's exit
//! ([`paliadin_core::process::ExitWatch`]), polled together. Owns the
//! waiting; never decides what an event means (callers look at the state
//! again on every wake, and first before any wait: a record made before the
//! bell existed is seen that way). Nothing here costs time to close.

use paliadin_core::process::ExitWatch;
use rustix::event::{poll, PollFd, PollFlags};
use std::io;
use std::time::{Duration, Instant};

use crate::state::{Bell, SessionDir};

/// The longest sleep between two looks at the state when the hooks ring: a
/// safety net only (a bell replaced by something else is never rung).
pub const TICK: Duration = Duration::from_millis(1000);
/// What an agent without hooks writes (its reply file) rings nothing: the
/// state is looked at after this, then twice as long each time, up to
/// [`UNRUNG_MAX`].
const UNRUNG_FIRST: Duration = Duration::from_millis(1);
const UNRUNG_MAX: Duration = Duration::from_millis(50);

/// Why [`Watch::wait`] returned.
#[derive(Debug, PartialEq, Eq)]
pub enum Wake {
    /// The bell rang, or the sleep between two looks passed.
    Look,
    /// The watched process ended.
    Died,
    /// `until` has passed.
    Deadline,
}

/// A waiter's bell and, optionally, the agent's exit.
pub struct Watch {
    bell: Bell,
    exit: Option<ExitWatch>,
    /// `None` when the hooks ring for what is awaited; else the next sleep.
    unrung: Option<Duration>,
}

impl Watch {
    /// Arms a bell in session `s` (before the first look at the state).
    /// `rung`: whether the hooks ring for what is awaited (an agent without
    /// hooks writes its reply file unrung).
    pub fn new(s: &SessionDir, rung: bool) -> io::Result<Watch> {
        Ok(Watch {
            bell: s.bell()?,
            exit: None,
            unrung: (!rung).then_some(UNRUNG_FIRST),
        })
    }

    /// Also wakes when process `pid` ends. `Ok(false)` if it is already gone.
    pub fn watch_pid(&mut self, pid: u32) -> io::Result<bool> {
        self.exit = ExitWatch::new(pid)?;
        Ok(self.exit.is_some())
    }

    /// Whether the watched process has ended.
    pub fn died(&self) -> bool {
        self.exit.as_ref().is_some_and(ExitWatch::exited)
    }

    /// Sleeps until the bell rings, the watched process ends, the sleep
    /// between two looks passes, or `until`.
    pub fn wait(&mut self, until: Instant) -> io::Result<Wake> {
        let now = Instant::now();
        if now >= until {
            return Ok(Wake::Deadline);
        }
        let nap = match &mut self.unrung {
            Some(next) => {
                let this = *next;
                *next = (this * 2).min(UNRUNG_MAX);
                this
            }
            None => TICK,
        };
        let ts = paliadin_core::child::timespec((until - now).min(nap));
        let mut fds = vec![PollFd::new(&self.bell, PollFlags::IN)];
        if let Some(p) = &self.exit {
            fds.push(PollFd::new(p, PollFlags::IN));
        }
        match poll(&mut fds, Some(&ts)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        let rang = !fds[0].revents().is_empty();
        let died = fds.len() > 1 && !fds[1].revents().is_empty();
        drop(fds);
        if rang {
            self.bell.drain();
        }
        if died {
            return Ok(Wake::Died);
        }
        if Instant::now() >= until {
            return Ok(Wake::Deadline);
        }
        Ok(Wake::Look)
    }
}
