//! A yes/no question to the person at the terminal in the middle of a turn
//! (`chat`'s answer to a `permission_request`), and the keys they had typed
//! ahead before it. Owns the terminal's mode while it asks: the turn keeps
//! the terminal quiet (no echo, no line editing: keys wait in its queue for
//! the next prompt), so the question turns echo and line editing on for
//! one line and puts the quiet mode back. Keys already waiting when the
//! question comes were typed for the next prompt, not as an answer: they
//! are taken aside first and handed back ([`TypedAhead`]). Never answers
//! for the person, and never reads the cancel fd it watches (the turn's
//! call does, and cancels the turn).

use rustix::event::{poll, PollFd, PollFlags};
use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};
use std::io::{self, Write as _};
use std::os::fd::{AsFd, BorrowedFd};

/// What the person said.
#[derive(Debug, PartialEq, Eq)]
pub enum Answered {
    Yes,
    /// Anything but `y` / `yes`, an empty line, or the end of input.
    No,
    /// The cancel fd became readable (Ctrl-C, SIGTERM, SIGHUP): the turn
    /// is being cancelled; nothing was answered.
    Cancelled,
}

/// Keys typed ahead of a question: raw bytes in the order typed, given to
/// the next prompt as lines (and a last line begun).
#[derive(Debug, Default)]
pub struct TypedAhead {
    bytes: Vec<u8>,
}

impl TypedAhead {
    /// The next whole line typed (up to an Enter), as the terminal's line
    /// editing would have made it.
    pub fn line(&mut self) -> Option<String> {
        let end = self.bytes.iter().position(|b| matches!(b, b'\n' | b'\r'))?;
        let line: Vec<u8> = self.bytes.drain(..=end).take(end).collect();
        Some(edited(&line))
    }

    /// What was typed of a line not ended yet, taken out.
    pub fn begun(&mut self) -> String {
        edited(&std::mem::take(&mut self.bytes))
    }

    /// Adds the keys `other` holds after these.
    pub fn append(&mut self, other: &mut TypedAhead) {
        self.bytes.append(&mut other.bytes);
    }
}

/// Raw keys of one line as text: backspace and DEL delete a character,
/// Ctrl-U the line; escape sequences (arrows) and other control keys are
/// dropped.
fn edited(keys: &[u8]) -> String {
    let text = String::from_utf8_lossy(keys);
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{7f}' | '\u{8}' => {
                out.pop();
            }
            '\u{15}' => out.clear(),
            '\u{1b}' => {
                // CSI or SS3: up to the final byte; a lone ESC: itself.
                if let Some('[' | 'O') = chars.peek() {
                    chars.next();
                    for k in chars.by_ref() {
                        if ('\u{40}'..='\u{7e}').contains(&k) {
                            break;
                        }
                    }
                }
            }
            c if c.is_control() && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

/// Polls `fds` (for at most `ms`; `None`: until one is ready, a signal
/// making its pipe readable). Whether one is ready.
fn readable(fds: &mut [PollFd<'_>], ms: Option<u64>) -> io::Result<bool> {
    let ts = ms.map(|ms| paliadin_core::child::timespec(std::time::Duration::from_millis(ms)));
    loop {
        match poll(fds, ts.as_ref()) {
            Ok(n) => return Ok(n > 0),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Asks `question` followed by ` [y/N] ` on stderr and reads one line
/// from the terminal on stdin, while `cancel` stays unread. Keys that
/// waited before the question go to `ahead`.
pub fn yes_no(
    question: &str,
    cancel: Option<BorrowedFd<'_>>,
    ahead: &mut TypedAhead,
) -> io::Result<Answered> {
    let stdin = rustix::stdio::stdin();
    // Keys typed before the question: taken aside, unread by it.
    let mut buf = [0u8; 1024];
    loop {
        let mut fds = [PollFd::new(&stdin, PollFlags::IN)];
        if !readable(&mut fds, Some(0))? {
            break;
        }
        match rustix::io::read(stdin, &mut buf) {
            Ok(0) => break,
            Ok(n) => ahead.bytes.extend_from_slice(&buf[..n]),
            Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => break,
            Err(e) => return Err(e.into()),
        }
    }
    let saved = tcgetattr(stdin)?;
    let mut asking = saved.clone();
    asking
        .local_modes
        .insert(LocalModes::ICANON | LocalModes::ECHO);
    asking.local_modes.remove(LocalModes::ECHOCTL);
    tcsetattr(stdin, OptionalActions::Now, &asking)?;
    let answer = read_answer(question, cancel);
    let _ = tcsetattr(stdin, OptionalActions::Now, &saved);
    answer
}

fn read_answer(question: &str, cancel: Option<BorrowedFd<'_>>) -> io::Result<Answered> {
    let stdin = rustix::stdio::stdin();
    let mut err = io::stderr().lock();
    write!(err, "{question} [y/N] ")?;
    err.flush()?;
    let mut line = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        let mut fds = vec![PollFd::new(&stdin, PollFlags::IN)];
        if let Some(c) = &cancel {
            fds.push(PollFd::new(c, PollFlags::IN));
        }
        readable(&mut fds, None)?;
        if fds.len() > 1 && !fds[1].revents().is_empty() {
            writeln!(err)?;
            return Ok(Answered::Cancelled);
        }
        if fds[0].revents().is_empty() {
            continue;
        }
        // Canonical mode: at most one line per read.
        let n = match rustix::io::read(stdin.as_fd(), &mut buf) {
            Ok(n) => n,
            Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => continue,
            Err(e) => return Err(e.into()),
        };
        line.extend_from_slice(&buf[..n]);
        if n == 0 || line.ends_with(b"\n") {
            if n == 0 {
                writeln!(err)?;
            }
            break;
        }
    }
    let said = String::from_utf8_lossy(&line).trim().to_ascii_lowercase();
    Ok(match said.as_str() {
        "y" | "yes" => Answered::Yes,
        _ => Answered::No,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_typed_ahead_become_lines_as_edited() {
        let mut a = TypedAhead {
            bytes: b"one\rtwp\x7fo\n\x1b[Athree\x15four".to_vec(),
        };
        assert_eq!(a.line().as_deref(), Some("one"));
        assert_eq!(a.line().as_deref(), Some("two"));
        assert_eq!(a.line(), None);
        assert_eq!(a.begun(), "four");
        assert_eq!(a.begun(), "");
        assert_eq!(edited("grüße\u{1b}OB".as_bytes()), "grüße");
    }
}
