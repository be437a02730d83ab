//! Waiting without guessing: an inotify watch on the directories where
//! replies and hook markers appear, plus the agent's exit, polled together
//! with a tick of at most a second. Owns the kernel handles; never decides
//! what an event means (callers re-read the state on every wake).

use paliadin_core::process::ExitWatch;
use rustix::event::{poll, PollFd, PollFlags};
use rustix::fs::inotify;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::{Duration, Instant};

/// The longest sleep between two looks at the state.
pub const TICK: Duration = Duration::from_millis(1000);

/// Why [`Watch::wait`] returned.
#[derive(Debug, PartialEq, Eq)]
pub enum Wake {
    /// Something changed in a watched directory, or a tick passed.
    Look,
    /// The watched process ended.
    Died,
    /// `until` has passed.
    Deadline,
}

/// A watch on some directories and, optionally, a process.
pub struct Watch {
    inotify: OwnedFd,
    watches: Vec<i32>,
    exit: Option<ExitWatch>,
}

impl Watch {
    /// Arms the watch on `dirs` (before anything that could create a file there).
    pub fn new(dirs: &[&Path]) -> io::Result<Watch> {
        let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)?;
        let mask = inotify::WatchFlags::CREATE
            | inotify::WatchFlags::MOVED_TO
            | inotify::WatchFlags::CLOSE_WRITE
            | inotify::WatchFlags::DELETE;
        let mut watches = Vec::new();
        for d in dirs {
            watches.push(inotify::add_watch(&fd, *d, mask)?);
        }
        Ok(Watch {
            inotify: fd,
            watches,
            exit: None,
        })
    }

    /// Removes the watches as soon as the outcome is known. The kernel frees
    /// a watch only after a grace period, and closing an inotify fd waits for
    /// that (measured: up to 20 ms at exit); started early, it overlaps with
    /// delivering the reply.
    pub fn disarm(&mut self) {
        for wd in self.watches.drain(..) {
            let _ = inotify::remove_watch(&self.inotify, wd);
        }
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

    /// Sleeps until something happens, the tick passes, or `until`.
    pub fn wait(&mut self, until: Instant) -> io::Result<Wake> {
        let now = Instant::now();
        if now >= until {
            return Ok(Wake::Deadline);
        }
        let left = (until - now).min(TICK);
        let ts = paliadin_core::child::timespec(left);
        let mut fds = vec![PollFd::new(&self.inotify, PollFlags::IN)];
        if let Some(p) = &self.exit {
            fds.push(PollFd::new(p, PollFlags::IN));
        }
        match poll(&mut fds, Some(&ts)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        let died = fds.len() > 1 && !fds[1].revents().is_empty();
        self.drain();
        if died {
            return Ok(Wake::Died);
        }
        if Instant::now() >= until {
            return Ok(Wake::Deadline);
        }
        Ok(Wake::Look)
    }

    fn drain(&self) {
        let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
        let mut r = inotify::Reader::new(&self.inotify, &mut buf);
        while r.next().is_ok() {}
    }
}
