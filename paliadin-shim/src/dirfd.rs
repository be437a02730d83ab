//! Directories of the shim's state reached without following a symlink. A
//! [`Dir`] is an open directory descriptor, checked once when it is opened
//! (a real directory, owned by this user; the state root also mode 0700), and
//! every file or directory below it is reached from it one name at a time with
//! `*at` calls and `O_NOFOLLOW`: nothing the agent or anything else of the
//! same user leaves in the state directory (a symlink, a hard link, a
//! directory where a file belongs) can make the shim create, change, read or
//! delete anything outside it. A single name relative to a checked
//! descriptor, opened with `O_NOFOLLOW`, resolves no symlink at all, which is
//! what `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` would promise.
//!
//! Owns those calls; never decides what a file means (`state` does).

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags, Timestamps};
use std::fs::File;
use std::io::{self, Read as _, Write as _};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How deep [`Dir::remove_tree`] goes (a turn directory has no subdirectory;
/// anything deeper was planted).
const MAX_DEPTH: usize = 4;

/// An open, checked directory of the shim's state.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    /// Where it is, for messages and for the agent (never opened by path).
    path: PathBuf,
}

/// What [`Dir::ring`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ring {
    /// A byte was written: its reader wakes.
    Rung,
    /// Its pipe was full: its reader has unread bytes and wakes anyway.
    Full,
    /// Nobody holds it open for reading: its waiter is gone.
    NoReader,
    /// Not a FIFO of ours (a symlink, a file, a directory): left alone.
    Refused,
    /// Nothing by that name.
    Gone,
}

/// Why [`Dir::read_owned`] would not read a file.
#[derive(Debug)]
pub enum ReadError {
    /// A symlink, a directory, a device or a pipe.
    NotRegular,
    /// More than one hard link: the same bytes as some other file.
    Linked(u64),
    /// Owned by another user (the uid).
    Owner(u32),
    /// Larger than the limit.
    TooLarge,
    Io(io::Error),
}

fn errno(e: rustix::io::Errno) -> io::Error {
    e.into()
}

/// `name` must be one plain path component.
fn check_name(name: &str) -> io::Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a single file name: {name:?}"),
        ));
    }
    Ok(())
}

fn refuse(path: &Path, why: &str) -> io::Error {
    io::Error::other(format!("{} {why}", path.display()))
}

/// Files and directories the shim creates: its user's alone.
const PRIVATE_FILE: Mode = Mode::RUSR.union(Mode::WUSR);
const PRIVATE_DIR: Mode = Mode::RWXU;

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

impl Dir {
    /// Opens the state root, creating it (and its missing parents, 0700) if
    /// asked. It must be a directory, not a symlink, owned by this user and
    /// reachable by nobody else (no group or other bits).
    pub fn open_root(path: &Path, create: bool) -> io::Result<Option<Dir>> {
        if create {
            paliadin_core::fsutil::private_dir(path)?;
        }
        let fd =
            match rustix::fs::open(path, DIR_FLAGS, Mode::empty()) {
                Ok(fd) => fd,
                Err(rustix::io::Errno::NOENT) => return Ok(None),
                Err(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR) => return Err(refuse(
                    path,
                    "is a symlink or not a directory: the state directory must be a real directory",
                )),
                Err(e) => return Err(errno(e)),
            };
        let st = rustix::fs::fstat(&fd).map_err(errno)?;
        if st.st_uid != rustix::process::geteuid().as_raw() {
            return Err(refuse(path, "belongs to another user"));
        }
        if st.st_mode & 0o077 != 0 {
            return Err(refuse(
                path,
                &format!(
                    "has mode {:o}, not 700: others could plant files in it (chmod 700 it)",
                    st.st_mode & 0o7777
                ),
            ));
        }
        Ok(Some(Dir {
            fd,
            path: path.to_owned(),
        }))
    }

    /// Opens the subdirectory `name`, creating it (0700) if asked and
    /// missing. `Ok(None)` when it is missing and not created. A symlink or a
    /// file in its place, or one owned by another user, is an error.
    pub fn child(&self, name: &str, create: bool) -> io::Result<Option<Dir>> {
        check_name(name)?;
        if create {
            match rustix::fs::mkdirat(&self.fd, name, PRIVATE_DIR) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(errno(e)),
            }
        }
        let path = self.path.join(name);
        let fd = match rustix::fs::openat(&self.fd, name, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR) => {
                return Err(refuse(&path, "is a symlink or not a directory; remove it"))
            }
            Err(e) => return Err(errno(e)),
        };
        let st = rustix::fs::fstat(&fd).map_err(errno)?;
        if st.st_uid != rustix::process::geteuid().as_raw() {
            return Err(refuse(&path, "belongs to another user"));
        }
        Ok(Some(Dir { fd, path }))
    }

    /// Creates the subdirectory `name` (0700); `Ok(false)` if something by
    /// that name already exists.
    pub fn mkdir(&self, name: &str) -> io::Result<bool> {
        check_name(name)?;
        match rustix::fs::mkdirat(&self.fd, name, PRIVATE_DIR) {
            Ok(()) => Ok(true),
            Err(rustix::io::Errno::EXIST) => Ok(false),
            Err(e) => Err(errno(e)),
        }
    }

    fn open_file(&self, name: &str, flags: OFlags, mode: Mode) -> io::Result<File> {
        check_name(name)?;
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            mode,
        )
        .map_err(errno)?;
        Ok(File::from(fd))
    }

    /// Reads `name` if it is a regular file (not a symlink, not a
    /// directory), at most `limit` bytes; `Ok(None)` when there is none.
    pub fn read(&self, name: &str, limit: u64) -> io::Result<Option<Vec<u8>>> {
        match self.read_checked(name, limit, false) {
            Ok(v) => Ok(v),
            Err(ReadError::Io(e)) => Err(e),
            Err(_) => Ok(None),
        }
    }

    /// Reads `name` only if it is a regular file with one link, owned by
    /// this user, within `limit` bytes: a file that cannot stand for any
    /// other file. `Ok(None)` when it is absent.
    pub fn read_owned(&self, name: &str, limit: u64) -> Result<Option<Vec<u8>>, ReadError> {
        self.read_checked(name, limit, true)
    }

    fn read_checked(
        &self,
        name: &str,
        limit: u64,
        strict: bool,
    ) -> Result<Option<Vec<u8>>, ReadError> {
        let f = match self.open_file(name, OFlags::RDONLY | OFlags::NONBLOCK, Mode::empty()) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
                return Err(ReadError::NotRegular)
            }
            Err(e) => return Err(ReadError::Io(e)),
        };
        let st = rustix::fs::fstat(&f).map_err(|e| ReadError::Io(errno(e)))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(ReadError::NotRegular);
        }
        if strict {
            if st.st_nlink != 1 {
                return Err(ReadError::Linked(st.st_nlink as u64));
            }
            if st.st_uid != rustix::process::geteuid().as_raw() {
                return Err(ReadError::Owner(st.st_uid));
            }
            if st.st_size as u64 > limit {
                return Err(ReadError::TooLarge);
            }
        }
        let mut buf = Vec::new();
        f.take(limit + 1)
            .read_to_end(&mut buf)
            .map_err(ReadError::Io)?;
        if buf.len() as u64 > limit {
            if strict {
                return Err(ReadError::TooLarge);
            }
            buf.truncate(limit as usize);
        }
        Ok(Some(buf))
    }

    /// Writes `data` to a new temporary file in this directory; returns its name.
    fn write_temp(&self, name: &str, data: &[u8], durable: bool) -> io::Result<String> {
        let nonce = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let tmp = format!(".{name}.{}.{nonce}.tmp", std::process::id());
        let mut f = self.open_file(
            &tmp,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL,
            PRIVATE_FILE,
        )?;
        let res = f
            .write_all(data)
            .and_then(|_| if durable { f.sync_all() } else { Ok(()) });
        if let Err(e) = res {
            let _ = rustix::fs::unlinkat(&self.fd, tmp.as_str(), AtFlags::empty());
            return Err(e);
        }
        Ok(tmp)
    }

    /// Replaces `name` with `data` atomically (a reader sees the old file or
    /// the whole new one), 0600, not flushed to disk.
    pub fn write(&self, name: &str, data: &[u8]) -> io::Result<()> {
        check_name(name)?;
        let tmp = self.write_temp(name, data, false)?;
        rustix::fs::renameat(&self.fd, tmp.as_str(), &self.fd, name).map_err(|e| {
            let _ = rustix::fs::unlinkat(&self.fd, tmp.as_str(), AtFlags::empty());
            errno(e)
        })
    }

    /// Writes `name` atomically unless something by that name exists;
    /// `Ok(false)` then, and nothing changed.
    pub fn write_new(&self, name: &str, data: &[u8]) -> io::Result<bool> {
        check_name(name)?;
        let tmp = self.write_temp(name, data, false)?;
        match rustix::fs::renameat_with(
            &self.fd,
            tmp.as_str(),
            &self.fd,
            name,
            RenameFlags::NOREPLACE,
        ) {
            Ok(()) => Ok(true),
            Err(e) => {
                let _ = rustix::fs::unlinkat(&self.fd, tmp.as_str(), AtFlags::empty());
                if e == rustix::io::Errno::EXIST {
                    Ok(false)
                } else {
                    Err(errno(e))
                }
            }
        }
    }

    /// Appends `line` to `name` (created 0600) unless the file would grow
    /// past `max_bytes` or hold more than `max_lines` lines; `Ok(false)`
    /// then. One `write` in append mode: lines of concurrent writers never
    /// interleave.
    pub fn append_line(
        &self,
        name: &str,
        line: &str,
        max_bytes: u64,
        max_lines: usize,
    ) -> io::Result<bool> {
        let mut f = self.open_file(
            name,
            OFlags::WRONLY | OFlags::APPEND | OFlags::CREATE | OFlags::NONBLOCK,
            PRIVATE_FILE,
        )?;
        let st = rustix::fs::fstat(&f).map_err(errno)?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile
            || st.st_size as u64 + line.len() as u64 + 1 > max_bytes
        {
            return Ok(false);
        }
        let lines = self
            .read(name, max_bytes)?
            .map(|b| b.iter().filter(|&&c| c == b'\n').count())
            .unwrap_or(0);
        if lines >= max_lines {
            return Ok(false);
        }
        f.write_all(format!("{line}\n").as_bytes())?;
        Ok(true)
    }

    /// Makes the FIFO `name` (0600) and opens both its ends, non-blocking:
    /// the reader to poll and drain, and a writer of its own, so the reader
    /// never sees a hang-up when a ringer closes. An error if something by
    /// that name exists.
    pub fn make_fifo(&self, name: &str) -> io::Result<(OwnedFd, OwnedFd)> {
        check_name(name)?;
        paliadin_core::process::make_fifo_at(self.fd.as_fd(), name, PRIVATE_FILE)?;
        let open = |flags: OFlags| {
            rustix::fs::openat(
                &self.fd,
                name,
                flags | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(errno)
        };
        let read = open(OFlags::RDONLY)?;
        let write = open(OFlags::WRONLY)?;
        let (r, w) = (
            rustix::fs::fstat(&read).map_err(errno)?,
            rustix::fs::fstat(&write).map_err(errno)?,
        );
        if FileType::from_raw_mode(r.st_mode) != FileType::Fifo
            || (r.st_dev, r.st_ino) != (w.st_dev, w.st_ino)
        {
            return Err(refuse(&self.path.join(name), "was replaced as it was made"));
        }
        Ok((read, write))
    }

    /// Writes one byte to the FIFO `name`, never blocking and never through
    /// a symlink: only a FIFO owned by this user, with a reader, is rung.
    pub fn ring(&self, name: &str) -> Ring {
        if check_name(name).is_err() {
            return Ring::Refused;
        }
        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Fifo => {}
            Ok(_) => return Ring::Refused,
            Err(_) => return Ring::Gone,
        }
        // Non-blocking: a FIFO without a reader fails at once (ENXIO)
        // instead of waiting for one.
        let fd = match rustix::fs::openat(
            &self.fd,
            name,
            OFlags::WRONLY | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NXIO) => return Ring::NoReader,
            Err(rustix::io::Errno::NOENT) => return Ring::Gone,
            Err(_) => return Ring::Refused,
        };
        let ours = rustix::fs::fstat(&fd).is_ok_and(|st| {
            FileType::from_raw_mode(st.st_mode) == FileType::Fifo
                && st.st_uid == rustix::process::geteuid().as_raw()
        });
        if !ours {
            return Ring::Refused;
        }
        match rustix::io::write(&fd, b"!") {
            Ok(_) => Ring::Rung,
            // Full: unread bytes are there, so its reader wakes anyway.
            Err(rustix::io::Errno::AGAIN) => Ring::Full,
            // Its reader closed since the open.
            Err(rustix::io::Errno::PIPE) => Ring::NoReader,
            Err(_) => Ring::Refused,
        }
    }

    /// Renames `from` to `to` in this directory (replacing `to`).
    pub fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        check_name(from)?;
        check_name(to)?;
        rustix::fs::renameat(&self.fd, from, &self.fd, to).map_err(errno)
    }

    /// Opens (creating, 0600) `name` for a lock; never through a symlink.
    pub fn lock_file(&self, name: &str) -> io::Result<File> {
        self.open_file(name, OFlags::RDWR | OFlags::CREATE, PRIVATE_FILE)
    }

    /// Sets `name`'s modification time to now, creating it empty if needed.
    pub fn stamp(&self, name: &str) {
        if let Ok(f) = self.open_file(
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::NONBLOCK,
            PRIVATE_FILE,
        ) {
            let now = rustix::fs::Timespec {
                tv_sec: 0,
                tv_nsec: rustix::fs::UTIME_NOW,
            };
            let _ = rustix::fs::futimens(
                &f,
                &Timestamps {
                    last_access: now,
                    last_modification: now,
                },
            );
        }
    }

    /// Removes the file `name` (a symlink itself, never its target).
    pub fn remove(&self, name: &str) {
        if check_name(name).is_ok() {
            let _ = rustix::fs::unlinkat(&self.fd, name, AtFlags::empty());
        }
    }

    /// Whether something is at `name` (a symlink counts as itself).
    pub fn has(&self, name: &str) -> bool {
        check_name(name).is_ok()
            && rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW).is_ok()
    }

    /// `name`'s modification time (of a symlink itself).
    pub fn mtime(&self, name: &str) -> Option<SystemTime> {
        check_name(name).ok()?;
        let st = rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW).ok()?;
        Some(UNIX_EPOCH + Duration::new(st.st_mtime as u64, st.st_mtime_nsec as u32))
    }

    /// The names in this directory (without `.` and `..`).
    pub fn names(&self) -> Vec<String> {
        let Ok(dir) = rustix::fs::Dir::read_from(&self.fd) else {
            return Vec::new();
        };
        dir.flatten()
            .filter_map(|e| e.file_name().to_str().ok().map(str::to_owned))
            .filter(|n| n != "." && n != "..")
            .collect()
    }

    /// Whether `name` is a real directory (not a symlink) on this
    /// directory's filesystem: never a mount point.
    pub fn is_subdir_here(&self, name: &str) -> bool {
        let (Ok(here), Ok(st)) = (
            rustix::fs::fstat(&self.fd),
            rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW),
        ) else {
            return false;
        };
        FileType::from_raw_mode(st.st_mode) == FileType::Directory && st.st_dev == here.st_dev
    }

    /// Removes the subdirectory `name` and everything in it, never crossing
    /// a symlink (it is removed, not followed) or a mount point (left whole),
    /// and no deeper than a few levels.
    pub fn remove_tree(&self, name: &str) {
        self.remove_tree_at(name, 0);
    }

    fn remove_tree_at(&self, name: &str, depth: usize) {
        if depth > MAX_DEPTH || check_name(name).is_err() || !self.is_subdir_here(name) {
            return;
        }
        if let Ok(Some(sub)) = self.child(name, false) {
            for n in sub.names() {
                if sub.is_subdir_here(&n) {
                    sub.remove_tree_at(&n, depth + 1);
                } else {
                    sub.remove(&n);
                }
            }
        }
        let _ = rustix::fs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR);
    }
}

impl AsFd for Dir {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
