//! What the operating system tells about other processes, asked the one way
//! each system answers: a descriptor that becomes readable when a process
//! ends ([`ExitWatch`]: a pidfd on Linux, a kqueue holding `EVFILT_PROC` /
//! `NOTE_EXIT` on macOS), the time a process started ([`start_time`]: what
//! tells it from a later process that got the same pid), and whether a
//! Claude Code of a given HOME runs for this user ([`claude_running`]).
//!
//! This is the only module of paliadin with code for one system and not the
//! other: everything else asks here. So it also holds the one file call that
//! rustix offers on Linux only, making a FIFO below a directory descriptor
//! ([`make_fifo_at`], for the shim's wake-up bells). It never kills, signals
//! or reaps a process, and never reads more of another process than its
//! name, owner, state, start time, HOME and memory use ([`memory`]).
//!
//! Linux reads `/proc` and needs kernel 5.3 (pidfd). macOS asks libproc
//! (`proc_pidinfo`, `proc_listallpids`) and `sysctl(KERN_PROCARGS2)`; that
//! build is checked by CI for both Mac targets but not run there.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

/// The process names Claude Code runs under (`claude.exe` when started from
/// its npm package's own path).
pub const CLAUDE_NAMES: [&str; 2] = ["claude", "claude.exe"];

/// A descriptor that becomes readable (`POLLIN`) once its process has ended,
/// and stays so; poll it with others. Reading it is never needed.
#[derive(Debug)]
pub struct ExitWatch {
    fd: OwnedFd,
}

impl ExitWatch {
    /// Watches process `pid`. `Ok(None)` when there is no such process any
    /// more (it ended, or is a zombie on macOS): it has ended, then.
    pub fn new(pid: u32) -> io::Result<Option<ExitWatch>> {
        let Some(p) = i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        else {
            return Ok(None);
        };
        match sys::exit_fd(p) {
            Ok(Some(fd)) => Ok(Some(ExitWatch { fd })),
            Ok(None) | Err(rustix::io::Errno::SRCH) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether the process has ended (never blocks).
    pub fn exited(&self) -> bool {
        crate::child::is_readable(&self.fd)
    }
}

impl AsFd for ExitWatch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// When process `pid` started, to tell it from a later process given the
/// same pid; `None` for no such process, or a zombie. Linux: clock ticks
/// after boot (field 22 of `/proc/<pid>/stat`, what `ps` and the client's turn
/// log store). macOS: microseconds since the Unix epoch (`pbi_start_tvsec`
/// and `pbi_start_tvusec` of `proc_pidinfo`). Compare values of one system
/// only, and of one boot (on Linux).
pub fn start_time(pid: u32) -> Option<u64> {
    sys::start_time(pid)
}

/// What tells this boot of the machine from every other, for times that
/// count from boot ([`start_time`] on Linux): Linux's
/// `/proc/sys/kernel/random/boot_id`, macOS's `kern.bootsessionuuid`.
/// `None` when the system does not say.
pub fn boot_id() -> Option<String> {
    sys::boot_id()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// Whether a Claude Code whose HOME is `home` runs now for this user: a
/// live process (not a zombie) with this effective uid, named as in
/// [`CLAUDE_NAMES`], whose environment's HOME is `home`. A process whose
/// environment cannot be read counts (it may be ours). An error when the
/// system would not list its processes (nobody can tell, then).
pub fn claude_running(home: &Path) -> io::Result<bool> {
    let me = rustix::process::geteuid().as_raw();
    let home = home.as_os_str().as_encoded_bytes();
    for p in sys::processes()? {
        if p.uid != me || p.zombie || !CLAUDE_NAMES.iter().any(|n| p.name == n.as_bytes()) {
            continue;
        }
        match sys::env_var(p.pid, b"HOME") {
            Some(h) if h != home => continue,
            // Ended since it was listed (its environment goes with its
            // memory, before it is a zombie): another claude's exit must
            // not read as ours running.
            None if start_time(p.pid).is_none() => continue,
            _ => return Ok(true),
        }
    }
    Ok(false)
}

/// How much memory a process holds, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// Resident: every page it has in memory, shared ones included.
    pub rss: u64,
    /// Its own: what its end gives back, the pages no file backs (a
    /// program's text stays in the page cache, and is shared by every
    /// process of that program). Linux: `Anonymous` of
    /// `/proc/<pid>/smaps_rollup`; macOS: the physical footprint
    /// (`ri_phys_footprint`, Activity Monitor's "Memory"). `None` when the
    /// system would not say.
    pub private: Option<u64>,
}

/// The memory process `pid` holds now (one process, not its children);
/// `None` for no such process, or one whose memory cannot be read.
pub fn memory(pid: u32) -> Option<Memory> {
    sys::memory(pid)
}

/// Makes the FIFO `name` (one path component) in directory `dir`, with
/// `mode`; an error if something by that name exists. Never resolves a path
/// outside `dir`. macOS has `mkfifoat` since 13 (Ventura): on an older one
/// this is an `Unsupported` error, not a binary that fails to load.
pub fn make_fifo_at(dir: BorrowedFd<'_>, name: &str, mode: rustix::fs::Mode) -> io::Result<()> {
    sys::make_fifo_at(dir, name, mode)
}

/// One process as [`sys::processes`] lists it.
struct Proc {
    pid: u32,
    uid: u32,
    name: Vec<u8>,
    zombie: bool,
}

/// The value of `name` in an environment block of `NAME=value` strings,
/// each ended by NUL; the first one wins, as a shell's does.
fn env_value(block: &[u8], name: &[u8]) -> Option<Vec<u8>> {
    block.split(|&b| b == 0).find_map(|kv| {
        kv.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(b"="))
            .map(<[u8]>::to_vec)
    })
}

#[cfg(target_os = "linux")]
mod sys {
    use super::Proc;
    use rustix::process::{pidfd_open, Pid, PidfdFlags};
    use std::io;
    use std::os::fd::OwnedFd;
    use std::os::unix::fs::MetadataExt as _;

    pub fn exit_fd(pid: Pid) -> rustix::io::Result<Option<OwnedFd>> {
        pidfd_open(pid, PidfdFlags::empty()).map(Some)
    }

    pub fn make_fifo_at(
        dir: std::os::fd::BorrowedFd<'_>,
        name: &str,
        mode: rustix::fs::Mode,
    ) -> io::Result<()> {
        Ok(rustix::fs::mkfifoat(dir, name, mode)?)
    }

    /// `/proc/<pid>/stat`'s fields after the command name (which may hold
    /// spaces and `)`), and the name.
    fn stat(pid: u32) -> Option<(Vec<u8>, String)> {
        let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
        let open = stat.iter().position(|&b| b == b'(')?;
        let close = stat.iter().rposition(|&b| b == b')')?;
        let name = stat.get(open + 1..close)?.to_vec();
        let rest = String::from_utf8_lossy(stat.get(close + 2..)?).into_owned();
        Some((name, rest))
    }

    pub fn start_time(pid: u32) -> Option<u64> {
        let (_, rest) = stat(pid)?;
        let mut fields = rest.split(' ');
        // Field 3 is the state, field 22 the start time.
        if fields.next()? == "Z" {
            return None;
        }
        fields.nth(18)?.parse().ok()
    }

    pub fn boot_id() -> Option<String> {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()
    }

    pub fn processes() -> io::Result<Vec<Proc>> {
        let mut all = Vec::new();
        for entry in std::fs::read_dir("/proc")? {
            let entry = entry?;
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            // Gone meanwhile: skip it.
            let (Ok(meta), Some((name, rest))) = (entry.metadata(), stat(pid)) else {
                continue;
            };
            all.push(Proc {
                pid,
                uid: meta.uid(),
                name,
                zombie: rest.starts_with('Z'),
            });
        }
        Ok(all)
    }

    /// A `Name:   123 kB` line's bytes.
    fn kb(text: &str, key: &str) -> Option<u64> {
        text.lines().find_map(|l| {
            let rest = l.strip_prefix(key)?.strip_prefix(':')?;
            let n: u64 = rest.trim().strip_suffix("kB")?.trim().parse().ok()?;
            Some(n * 1024)
        })
    }

    pub fn memory(pid: u32) -> Option<super::Memory> {
        if let Ok(t) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) {
            if let Some(rss) = kb(&t, "Rss") {
                let private = kb(&t, "Anonymous");
                return Some(super::Memory { rss, private });
            }
        }
        // Kernels before 4.14 have no smaps_rollup.
        let t = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        Some(super::Memory {
            rss: kb(&t, "VmRSS")?,
            private: None,
        })
    }

    pub fn env_var(pid: u32, name: &[u8]) -> Option<Vec<u8>> {
        let block = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
        super::env_value(&block, name)
    }
}

#[cfg(target_os = "macos")]
mod sys {
    use super::Proc;
    use rustix::event::kqueue::{kevent, kqueue, Event, EventFilter, EventFlags, ProcessEvents};
    use rustix::process::Pid;
    use std::io;
    use std::mem::{size_of, MaybeUninit};
    use std::os::fd::OwnedFd;

    /// A kqueue with `NOTE_EXIT` for `pid` registered: it is readable once
    /// the event is pending, and nothing here ever takes the event out.
    pub fn exit_fd(pid: Pid) -> rustix::io::Result<Option<OwnedFd>> {
        let kq = kqueue()?;
        let change = Event::new(
            EventFilter::Proc {
                pid,
                flags: ProcessEvents::EXIT,
            },
            EventFlags::ADD,
            std::ptr::null_mut(),
        );
        let mut none: [MaybeUninit<Event>; 0] = [];
        // SAFETY: the change names a process, not a file descriptor, so no
        // descriptor has to outlive the kqueue.
        unsafe { kevent(&kq, &[change], &mut none[..], None)? };
        // A process that ended while the kqueue was being set up, or that
        // was already a zombie, may never post NOTE_EXIT: it has ended.
        Ok(start_time(pid.as_raw_pid() as u32).map(|_| kq))
    }

    pub fn make_fifo_at(
        dir: std::os::fd::BorrowedFd<'_>,
        name: &str,
        mode: rustix::fs::Mode,
    ) -> io::Result<()> {
        use std::os::fd::AsRawFd as _;
        type MkfifoAt =
            unsafe extern "C" fn(libc::c_int, *const libc::c_char, libc::mode_t) -> libc::c_int;
        // Looked up, not linked: macOS before 13 has no mkfifoat.
        // SAFETY: dlsym with a NUL-terminated name; RTLD_DEFAULT searches
        // every loaded image.
        let sym = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"mkfifoat".as_ptr()) };
        if sym.is_null() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "making a FIFO below a directory (mkfifoat) needs macOS 13 or newer",
            ));
        }
        // SAFETY: the symbol is mkfifoat(2), of this signature.
        let mkfifoat: MkfifoAt = unsafe { std::mem::transmute::<*mut libc::c_void, MkfifoAt>(sym) };
        let name = std::ffi::CString::new(name).map_err(io::Error::other)?;
        // SAFETY: a live directory descriptor and a NUL-terminated name.
        let rc = unsafe { mkfifoat(dir.as_raw_fd(), name.as_ptr(), mode.bits() as libc::mode_t) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    fn bsdinfo(pid: u32) -> Option<libc::proc_bsdinfo> {
        let mut info = MaybeUninit::<libc::proc_bsdinfo>::zeroed();
        let size = size_of::<libc::proc_bsdinfo>() as libc::c_int;
        // SAFETY: the buffer is a proc_bsdinfo of the size given.
        let n = unsafe {
            libc::proc_pidinfo(
                i32::try_from(pid).ok()?,
                libc::PROC_PIDTBSDINFO,
                0,
                info.as_mut_ptr().cast(),
                size,
            )
        };
        // SAFETY: proc_pidinfo filled the whole struct when it says so.
        (n == size).then(|| unsafe { info.assume_init() })
    }

    pub fn start_time(pid: u32) -> Option<u64> {
        let info = bsdinfo(pid)?;
        (info.pbi_status != libc::SZOMB)
            .then(|| info.pbi_start_tvsec * 1_000_000 + info.pbi_start_tvusec)
    }

    pub fn boot_id() -> Option<String> {
        let mut buf = [0u8; 64];
        let mut size = buf.len();
        // SAFETY: the name is NUL-terminated and the output buffer holds `size` bytes.
        let rc = unsafe {
            libc::sysctlbyname(
                c"kern.bootsessionuuid".as_ptr(),
                buf.as_mut_ptr().cast(),
                &mut size,
                std::ptr::null_mut(),
                0,
            )
        };
        if rc != 0 {
            return None;
        }
        let text = &buf[..size.min(buf.len())];
        let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
        String::from_utf8(text[..end].to_vec()).ok()
    }

    pub fn processes() -> io::Result<Vec<Proc>> {
        // SAFETY: a null buffer asks for the number of pids.
        let n = unsafe { libc::proc_listallpids(std::ptr::null_mut(), 0) };
        if n <= 0 {
            return Err(io::Error::last_os_error());
        }
        // Room for processes started meanwhile.
        let mut pids = vec![0 as libc::pid_t; n as usize + 64];
        let bytes = (pids.len() * size_of::<libc::pid_t>()) as libc::c_int;
        // SAFETY: the buffer holds `bytes` bytes of pids.
        let n = unsafe { libc::proc_listallpids(pids.as_mut_ptr().cast(), bytes) };
        if n <= 0 {
            return Err(io::Error::last_os_error());
        }
        pids.truncate(n as usize);
        Ok(pids
            .into_iter()
            .filter_map(|pid| {
                let pid = u32::try_from(pid).ok()?;
                let info = bsdinfo(pid)?;
                let name = info
                    .pbi_comm
                    .iter()
                    .take_while(|&&c| c != 0)
                    .map(|&c| c as u8)
                    .collect();
                Some(Proc {
                    pid,
                    uid: info.pbi_uid,
                    name,
                    zombie: info.pbi_status == libc::SZOMB,
                })
            })
            .collect())
    }

    pub fn memory(pid: u32) -> Option<super::Memory> {
        let pid = i32::try_from(pid).ok()?;
        let mut task = MaybeUninit::<libc::proc_taskinfo>::zeroed();
        let size = size_of::<libc::proc_taskinfo>() as libc::c_int;
        // SAFETY: the buffer is a proc_taskinfo of the size given.
        let n = unsafe {
            libc::proc_pidinfo(
                pid,
                libc::PROC_PIDTASKINFO,
                0,
                task.as_mut_ptr().cast(),
                size,
            )
        };
        if n != size {
            return None;
        }
        // SAFETY: proc_pidinfo filled the whole struct when it says so.
        let rss = unsafe { task.assume_init() }.pti_resident_size;
        let mut usage = MaybeUninit::<libc::rusage_info_v2>::zeroed();
        // SAFETY: the buffer is a rusage_info_v2, the flavour asked for.
        let rc =
            unsafe { libc::proc_pid_rusage(pid, libc::RUSAGE_INFO_V2, usage.as_mut_ptr().cast()) };
        // SAFETY: proc_pid_rusage filled it when it returned 0.
        let private = (rc == 0).then(|| unsafe { usage.assume_init() }.ri_phys_footprint);
        Some(super::Memory { rss, private })
    }

    /// `KERN_PROCARGS2`: argc, the executable's path, NUL padding, argc
    /// arguments, then the environment, each ended by NUL.
    pub fn env_var(pid: u32, name: &[u8]) -> Option<Vec<u8>> {
        let mut mib = [libc::CTL_KERN, libc::KERN_ARGMAX];
        let mut argmax: libc::c_int = 0;
        let mut size = size_of::<libc::c_int>();
        // SAFETY: the output is one c_int of the size given.
        let rc = unsafe {
            libc::sysctl(
                mib.as_mut_ptr(),
                2,
                (&mut argmax as *mut libc::c_int).cast(),
                &mut size,
                std::ptr::null_mut(),
                0,
            )
        };
        if rc != 0 || argmax <= 0 {
            return None;
        }
        let mut buf = vec![0u8; argmax as usize];
        let mut size = buf.len();
        let mut mib = [
            libc::CTL_KERN,
            libc::KERN_PROCARGS2,
            i32::try_from(pid).ok()?,
        ];
        // SAFETY: the output buffer holds `size` bytes.
        let rc = unsafe {
            libc::sysctl(
                mib.as_mut_ptr(),
                3,
                buf.as_mut_ptr().cast(),
                &mut size,
                std::ptr::null_mut(),
                0,
            )
        };
        if rc != 0 || size < size_of::<libc::c_int>() {
            return None;
        }
        buf.truncate(size);
        let argc = i32::from_ne_bytes(buf[..4].try_into().ok()?).max(0) as usize;
        let mut rest = &buf[4..];
        // The executable's path, then its padding.
        let end = rest.iter().position(|&b| b == 0)?;
        rest = &rest[end..];
        let start = rest.iter().position(|&b| b != 0)?;
        rest = &rest[start..];
        for _ in 0..argc {
            let end = rest.iter().position(|&b| b == 0)?;
            rest = &rest[end + 1..];
        }
        super::env_value(rest, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn env_value_takes_the_first_exact_name() {
        let block = b"HOMEX=no\0HOME=/home/a\0HOME=/home/b\0";
        assert_eq!(env_value(block, b"HOME").as_deref(), Some(&b"/home/a"[..]));
        assert_eq!(env_value(block, b"HOM"), None);
        assert_eq!(env_value(b"", b"HOME"), None);
    }

    #[test]
    fn start_time_tells_a_live_process_and_not_a_gone_one() {
        let me = start_time(std::process::id()).expect("this process has a start time");
        assert_eq!(start_time(std::process::id()), Some(me), "stable");
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert_eq!(start_time(pid), None, "reaped: no such process");
    }

    #[test]
    fn memory_of_a_live_process_and_not_of_a_gone_one() {
        // Pages this process owns: its own memory counts them.
        let held = vec![7u8; 8 << 20];
        let m = memory(std::process::id()).expect("this process has memory");
        assert!(m.rss >= held.len() as u64, "{m:?}");
        let private = m.private.expect("Linux and macOS both say");
        assert!(private >= held.len() as u64, "{m:?}");
        std::hint::black_box(&held);
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert_eq!(memory(pid), None, "reaped: no such process");
    }

    #[test]
    fn an_exit_watch_wakes_when_the_process_ends() {
        let mut child = Command::new("sleep")
            .arg("30")
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let w = ExitWatch::new(child.id()).unwrap().expect("it runs");
        assert!(!w.exited());
        child.kill().unwrap();
        let mut fds = [rustix::event::PollFd::new(&w, rustix::event::PollFlags::IN)];
        rustix::event::poll(&mut fds, None).unwrap();
        assert!(w.exited());
        assert!(w.exited(), "stays readable");
        child.wait().unwrap();
        assert!(ExitWatch::new(child.id()).unwrap().is_none(), "reaped");
    }

    #[test]
    fn a_fifo_is_made_below_its_directory_once() {
        let dir = std::env::temp_dir().join(format!("paliadin-fifo-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let d = std::fs::File::open(&dir).unwrap();
        let mode = rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR;
        make_fifo_at(d.as_fd(), "bell", mode).unwrap();
        let again = make_fifo_at(d.as_fd(), "bell", mode).unwrap_err();
        use std::os::unix::fs::FileTypeExt as _;
        let is_fifo = std::fs::symlink_metadata(dir.join("bell"))
            .unwrap()
            .file_type()
            .is_fifo();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(is_fifo);
        assert_eq!(again.kind(), io::ErrorKind::AlreadyExists);
    }

    #[test]
    fn claude_running_sees_a_claude_of_this_home_only() {
        let dir = std::env::temp_dir().join(format!("paliadin-process-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let home = dir.join("home");
        std::fs::create_dir_all(&home).unwrap();
        assert!(!claude_running(&home).unwrap());
        // A process named claude, like the real one, with this HOME.
        let claude = dir.join("claude");
        std::fs::copy("/bin/sleep", &claude).unwrap();
        let mut child = Command::new(&claude)
            .arg("30")
            .env("HOME", &home)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let seen = claude_running(&home).unwrap();
        let elsewhere = claude_running(&dir).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        let after = claude_running(&home).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(seen, "a claude of this HOME runs");
        assert!(!elsewhere, "not one of another HOME");
        assert!(!after, "gone once it ended");
    }
}
