//! `paliadin-test-agent`: a stand-in for Claude Code's interactive TUI, run
//! as the pane program inside real tmux by the end-to-end suite (`claude` is
//! not on the test machines).
//!
//! It imitates what matters to the shim (PROTOCOL sections 3 to 5): a start
//! delay during which typed input is lost, bracketed paste, Enter presses a
//! picker may swallow, the envelope and its reply file, and Claude Code's
//! hooks (`SessionStart`, `UserPromptSubmit`, `Stop`, `StopFailure`,
//! `Notification`) read from `--settings`. What each turn does is chosen by
//! `--mode` or by a line `paliadin-test: <mode>` in the message.
//!
//! It must never touch anything but its own tty, its log file and the reply
//! paths a prompt names (`<path>.tmp` and `<path>`); hooks are commands the
//! settings name and are run as Claude Code runs them.

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use paliadin_core::envelope::turn_of_prompt;
use paliadin_core::reply::{render_trailer, Meta};
use rustix::termios::{self, OptionalActions, QueueSelector, Termios};
use serde_json::{json, Map, Value};
use uuid::Uuid;

const USAGE: &str = "usage: paliadin-test-agent [--settings FILE|JSON] [--mode MODE] \
[--start-delay-ms N] [--mount-delay-ms N] [--swallow-enter N] [--log FILE] [any Claude Code flag...]";

/// How long a lone ESC waits for the rest of a sequence before it counts as
/// the Esc key.
const ESC_TIMEOUT: Duration = Duration::from_millis(30);
/// Default limit on one hook command, as Claude Code's.
const HOOK_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// Command line

/// What a turn does (see the module doc and the brief of each variant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The model followed the skill: reply file, then `Stop`.
    Reply,
    /// No reply file; `Stop` carries the reply.
    NoSkill,
    /// Nothing after the prompt: no file, no `Stop`.
    Silent,
    /// `Reply` after this many milliseconds, input still served meanwhile.
    Slow(u64),
    /// Exit 1 right after `UserPromptSubmit`.
    Crash,
    /// A permission prompt, then `Notification`; `1` allows, `2`/Esc denies.
    Permission,
    /// Like `Permission` but an elicitation dialog.
    Dialog,
    /// An API error: `StopFailure`, no `Stop`, no file.
    Failure,
}

impl Mode {
    fn parse(s: &str) -> Option<Mode> {
        Some(match s {
            "reply" => Mode::Reply,
            "no-skill" => Mode::NoSkill,
            "silent" => Mode::Silent,
            "crash" => Mode::Crash,
            "permission" => Mode::Permission,
            "dialog" => Mode::Dialog,
            "failure" => Mode::Failure,
            _ => Mode::Slow(s.strip_prefix("slow:")?.parse().ok()?),
        })
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Reply => f.write_str("reply"),
            Mode::NoSkill => f.write_str("no-skill"),
            Mode::Silent => f.write_str("silent"),
            Mode::Slow(ms) => write!(f, "slow:{ms}"),
            Mode::Crash => f.write_str("crash"),
            Mode::Permission => f.write_str("permission"),
            Mode::Dialog => f.write_str("dialog"),
            Mode::Failure => f.write_str("failure"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Args {
    settings: Option<String>,
    mode: Mode,
    start_delay: Duration,
    mount_delay: Duration,
    swallow_enter: u32,
    log: Option<PathBuf>,
}

/// Claude Code flags that take no value: an unknown flag not in this list
/// swallows the word after it unless that word is a flag itself.
const BOOLEAN_FLAGS: &[&str] = &[
    "--dangerously-skip-permissions",
    "--allow-dangerously-skip-permissions",
    "--verbose",
    "--continue",
    "--print",
    "--debug",
    "--ide",
    "--strict-mcp-config",
    "--fork-session",
    "--include-partial-messages",
    "--replay-user-messages",
    "--help",
    "--version",
];

/// Parses the command line (without the program name). `env` looks up the
/// environment, so tests can give their own. Unknown flags, their values and
/// bare words are ignored.
fn parse_args(argv: &[String], env: impl Fn(&str) -> Option<String>) -> Result<Args, String> {
    let mut flags: HashMap<&str, String> = HashMap::new();
    let mut i = 0;
    while i < argv.len() {
        let arg = argv[i].as_str();
        i += 1;
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (arg, None),
        };
        let known = matches!(
            name,
            "--settings"
                | "--mode"
                | "--start-delay-ms"
                | "--mount-delay-ms"
                | "--swallow-enter"
                | "--log"
        );
        let takes_value = known || (name.starts_with("--") && !BOOLEAN_FLAGS.contains(&name));
        if !takes_value || inline.is_some() {
            if let (true, Some(v)) = (known, inline) {
                flags.insert(name, v);
            }
            continue;
        }
        let next = argv.get(i).filter(|v| known || !v.starts_with('-'));
        match (known, next) {
            (true, None) => return Err(format!("{name} needs a value")),
            (true, Some(v)) => {
                flags.insert(name, v.clone());
                i += 1;
            }
            (false, Some(_)) => i += 1,
            (false, None) => {}
        }
    }
    let value = |flag: &str, var: &str| flags.get(flag).cloned().or_else(|| env(var));
    let number = |flag: &str, var: &str, default: u64| -> Result<u64, String> {
        match value(flag, var) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| format!("{flag}: not a number: {v:?}")),
        }
    };
    let mode = match flags.get("--mode") {
        None => Mode::Reply,
        Some(m) => Mode::parse(m).ok_or_else(|| format!("--mode: unknown mode {m:?}"))?,
    };
    let swallow = number("--swallow-enter", "PALIADIN_TEST_AGENT_SWALLOW_ENTER", 0)?;
    Ok(Args {
        settings: flags.get("--settings").cloned(),
        mode,
        start_delay: Duration::from_millis(number(
            "--start-delay-ms",
            "PALIADIN_TEST_AGENT_START_DELAY_MS",
            300,
        )?),
        mount_delay: Duration::from_millis(number(
            "--mount-delay-ms",
            "PALIADIN_TEST_AGENT_MOUNT_DELAY_MS",
            0,
        )?),
        swallow_enter: u32::try_from(swallow).map_err(|_| "--swallow-enter: too large")?,
        log: value("--log", "PALIADIN_TEST_AGENT_LOG")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from),
    })
}

// ---------------------------------------------------------------------------
// Settings: hooks

/// One `type: command` hook.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hook {
    command: String,
    timeout: Duration,
}

/// Hook commands by event name, in settings order.
type Hooks = HashMap<String, Vec<Hook>>;

/// Reads `--settings`: a file, or inline JSON when it starts with `{`.
fn load_settings(arg: &str) -> Result<Hooks, String> {
    let text = if arg.trim_start().starts_with('{') {
        arg.to_string()
    } else {
        fs::read_to_string(arg).map_err(|e| format!("--settings {arg}: {e}"))?
    };
    let value: Value =
        serde_json::from_str(&text).map_err(|e| format!("--settings: invalid JSON: {e}"))?;
    Ok(hooks_of_settings(&value))
}

/// `{"hooks": {Event: [{"hooks": [{"type": "command", "command": ..}]}]}}`.
/// Matchers are ignored: every group of an event runs.
fn hooks_of_settings(settings: &Value) -> Hooks {
    let mut hooks = Hooks::new();
    let Some(events) = settings.get("hooks").and_then(Value::as_object) else {
        return hooks;
    };
    for (event, groups) in events {
        let entries = groups
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| g.get("hooks").and_then(Value::as_array))
            .flatten();
        for entry in entries {
            if entry.get("type").and_then(Value::as_str) != Some("command") {
                continue;
            }
            let Some(command) = entry.get("command").and_then(Value::as_str) else {
                continue;
            };
            let timeout = entry
                .get("timeout")
                .and_then(Value::as_f64)
                .filter(|s| *s > 0.0)
                .map_or(HOOK_TIMEOUT, Duration::from_secs_f64);
            hooks.entry(event.clone()).or_default().push(Hook {
                command: command.to_string(),
                timeout,
            });
        }
    }
    hooks
}

// ---------------------------------------------------------------------------
// The tty

/// The terminal settings found at startup, put back on every exit.
static SAVED_TERMIOS: OnceLock<Termios> = OnceLock::new();
/// Serialises what threads write to the screen.
static SCREEN: Mutex<()> = Mutex::new(());

/// Raw mode as `cfmakeraw`: no echo, no line editing, no signals from keys.
/// A stdin that is not a tty is left alone.
fn enter_raw_mode() {
    let stdin = rustix::stdio::stdin();
    let Ok(saved) = termios::tcgetattr(stdin) else {
        return;
    };
    let mut raw = saved.clone();
    raw.make_raw();
    if termios::tcsetattr(stdin, OptionalActions::Now, &raw).is_ok() {
        let _ = SAVED_TERMIOS.set(saved);
    }
}

/// Drops everything typed so far: input before ready is lost.
fn discard_typed_input() {
    let _ = termios::tcflush(rustix::stdio::stdin(), QueueSelector::IFlush);
}

/// Claude Code's early-input capture between `SessionStart` and the moment
/// its input loop runs (measured with 2.1.328): whatever arrives is kept as
/// text, escape sequences (the paste brackets too) are dropped, CR becomes a
/// newline, and the whole is trimmed when the loop starts, so an Enter
/// pressed in this window is lost while its text stays in the input box.
fn capture_early_input(window: Duration) -> Vec<u8> {
    let stdin = rustix::stdio::stdin();
    let until = Instant::now() + window;
    let mut raw = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let ts = paliadin_core::child::timespec(left);
        let mut fds = [rustix::event::PollFd::new(
            &stdin,
            rustix::event::PollFlags::IN,
        )];
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(0) => break,
            Ok(_) => match rustix::io::read(stdin, &mut buf) {
                Ok(0) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
                Err(_) => {}
            },
            Err(_) => {}
        }
    }
    let mut text = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            0x1b => {
                // ESC [ params final: skipped whole.
                i += 1;
                if raw.get(i) == Some(&b'[') {
                    i += 1;
                    while i < raw.len() && !(0x40..=0x7e).contains(&raw[i]) {
                        i += 1;
                    }
                }
            }
            b'\r' => text.push(b'\n'),
            b => text.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&text).trim().as_bytes().to_vec()
}

/// Writes raw bytes to the screen.
fn put(text: &str) {
    let _guard = SCREEN.lock().unwrap_or_else(|e| e.into_inner());
    let mut out = io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Writes one line to the screen (CR LF: output processing is off in raw mode).
fn say(line: &str) {
    put(&format!("{line}\r\n"));
}

/// Leaves the screen and the tty as they were, then exits.
fn exit(code: i32) -> ! {
    put("\x1b[?2004l\x1b[?1049l");
    if let Some(saved) = SAVED_TERMIOS.get() {
        let _ = termios::tcsetattr(rustix::stdio::stdin(), OptionalActions::Now, saved);
    }
    std::process::exit(code)
}

// ---------------------------------------------------------------------------
// Input parser: a pure state machine over the bytes read from the tty

/// What the user did at the keyboard.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    /// A typed byte (UTF-8 sequences arrive a byte at a time).
    Text(u8),
    /// A whole bracketed paste, CR turned into LF.
    Paste(Vec<u8>),
    Enter,
    /// Ctrl-C.
    Interrupt,
    /// Ctrl-D.
    Eof,
    Backspace,
    /// A lone ESC (reported by [`Parser::idle`]).
    Esc,
}

const PASTE_START: &[u8] = b"200~";
const PASTE_END: &[u8] = b"\x1b[201~";
/// An escape sequence longer than this is junk: drop it.
const MAX_SEQUENCE: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ground,
    /// After ESC.
    Escape,
    /// After `ESC [`, collecting parameters until a final byte.
    Csi,
    /// After `ESC O`: one more byte.
    Ss3,
    /// Inside a bracketed paste.
    Paste,
}

#[derive(Debug)]
struct Parser {
    state: State,
    /// The parameters of a CSI sequence so far.
    seq: Vec<u8>,
    /// The paste so far.
    paste: Vec<u8>,
    /// How much of [`PASTE_END`] the last bytes of the paste matched.
    end_matched: usize,
}

impl Parser {
    fn new() -> Parser {
        Parser {
            state: State::Ground,
            seq: Vec::new(),
            paste: Vec::new(),
            end_matched: 0,
        }
    }

    /// True when a lone ESC waits to learn whether it starts a sequence.
    fn pending_escape(&self) -> bool {
        self.state == State::Escape
    }

    /// Nothing more came after a lone ESC: it was the Esc key.
    fn idle(&mut self) -> Option<Key> {
        if self.state == State::Escape {
            self.state = State::Ground;
            return Some(Key::Esc);
        }
        None
    }

    /// Feeds bytes as read; sequences may be split anywhere across calls.
    fn feed(&mut self, bytes: &[u8], keys: &mut Vec<Key>) {
        for &b in bytes {
            self.byte(b, keys);
        }
    }

    fn byte(&mut self, b: u8, keys: &mut Vec<Key>) {
        match self.state {
            State::Ground => self.ground(b, keys),
            State::Escape => match b {
                b'[' => {
                    self.seq.clear();
                    self.state = State::Csi;
                }
                b'O' => self.state = State::Ss3,
                0x1b => keys.push(Key::Esc),
                _ => self.state = State::Ground,
            },
            State::Csi => {
                if (0x40..=0x7e).contains(&b) {
                    self.seq.push(b);
                    if self.seq == PASTE_START {
                        self.paste.clear();
                        self.end_matched = 0;
                        self.state = State::Paste;
                    } else {
                        self.state = State::Ground;
                    }
                } else if self.seq.len() >= MAX_SEQUENCE {
                    self.state = State::Ground;
                } else {
                    self.seq.push(b);
                }
            }
            State::Ss3 => self.state = State::Ground,
            State::Paste => self.paste_byte(b, keys),
        }
    }

    fn ground(&mut self, b: u8, keys: &mut Vec<Key>) {
        match b {
            b'\r' | b'\n' => keys.push(Key::Enter),
            0x03 => keys.push(Key::Interrupt),
            0x04 => keys.push(Key::Eof),
            0x08 | 0x7f => keys.push(Key::Backspace),
            0x1b => self.state = State::Escape,
            b'\t' => keys.push(Key::Text(b)),
            0x00..=0x1f => {}
            _ => keys.push(Key::Text(b)),
        }
    }

    fn paste_byte(&mut self, b: u8, keys: &mut Vec<Key>) {
        if b == PASTE_END[self.end_matched] {
            self.end_matched += 1;
            if self.end_matched == PASTE_END.len() {
                self.end_matched = 0;
                self.state = State::Ground;
                keys.push(Key::Paste(std::mem::take(&mut self.paste)));
            }
            return;
        }
        // A partial end marker was paste text after all. ESC occurs only at
        // the start of the marker, so `b` can only begin a new match.
        let partial = self.end_matched;
        self.paste.extend_from_slice(&PASTE_END[..partial]);
        self.end_matched = 0;
        if b == PASTE_END[0] {
            self.end_matched = 1;
        } else {
            self.paste.push(if b == b'\r' { b'\n' } else { b });
        }
    }
}

// ---------------------------------------------------------------------------
// Hooks runner

/// What every hook gets, and where the agent writes its log.
struct Ctx {
    hooks: Hooks,
    session_id: Uuid,
    transcript_path: PathBuf,
    cwd: PathBuf,
    log: Option<PathBuf>,
}

impl Ctx {
    /// Runs every command hook of `event` in order, each with the common
    /// fields plus `extra` on stdin. Blocks until all are done.
    fn run_hooks(&self, event: &str, extra: Value) {
        let Some(hooks) = self.hooks.get(event) else {
            return;
        };
        let mut input = Map::new();
        input.insert("session_id".into(), json!(self.session_id.to_string()));
        input.insert(
            "transcript_path".into(),
            json!(self.transcript_path.to_string_lossy()),
        );
        input.insert("cwd".into(), json!(self.cwd.to_string_lossy()));
        input.insert("hook_event_name".into(), json!(event));
        if let Value::Object(extra) = extra {
            input.extend(extra);
        }
        let input = Value::Object(input).to_string();
        for hook in hooks {
            if let Err(why) = run_hook(hook, &input) {
                say(&format!("hook {event} failed: {why}"));
            }
        }
    }

    /// Appends one JSON line for a submission, in one write call.
    fn log_submission(&self, turn: &Turn) {
        let Some(path) = &self.log else {
            return;
        };
        let mut line = json!({
            "prompt": turn.prompt,
            "turn": turn.id.map(|id| id.to_string()),
            "mode": turn.mode.to_string(),
            "pid": std::process::id(),
        })
        .to_string();
        line.push('\n');
        let written = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            say(&format!("log {} failed: {e}", path.display()));
        }
    }
}

/// `sh -c <command>` with `input` on stdin, stdout and stderr discarded,
/// killed after the hook's timeout.
fn run_hook(hook: &Hook, input: &str) -> Result<(), String> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(&hook.command)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start: {e}"))?;
    // A hook that never reads must not block us: write from a thread that
    // ends with EPIPE when the hook is gone.
    if let Some(mut stdin) = child.stdin.take() {
        let input = input.to_string();
        thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
    }
    match wait_with_timeout(&mut child, hook.timeout) {
        Ok(Some(status)) if status.success() => Ok(()),
        Ok(Some(status)) => Err(describe(status)),
        Ok(None) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(format!("timed out after {:?}", hook.timeout))
        }
        Err(e) => Err(format!("wait: {e}")),
    }
}

fn wait_with_timeout(
    child: &mut std::process::Child,
    limit: Duration,
) -> io::Result<Option<ExitStatus>> {
    // Wait on a pidfd, as Claude Code awaits a hook: at once when it ends.
    use rustix::event::{poll, PollFd, PollFlags};
    let pidfd = rustix::process::pidfd_open(
        rustix::process::Pid::from_child(child),
        rustix::process::PidfdFlags::empty(),
    )?;
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        let ts = paliadin_core::child::timespec(left);
        let mut fds = [PollFd::new(&pidfd, PollFlags::IN)];
        match poll(&mut fds, Some(&ts)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => status.to_string(),
    }
}

// ---------------------------------------------------------------------------
// Turns and modes

/// One submitted prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Turn {
    prompt: String,
    id: Option<Uuid>,
    reply_to: Option<PathBuf>,
    message: String,
    mode: Mode,
}

impl Turn {
    /// Reads the envelope (if any) and the mode directive (if any).
    fn of_prompt(prompt: String, default_mode: Mode) -> Turn {
        let mode = prompt
            .lines()
            .find_map(|l| l.trim_end().strip_prefix("paliadin-test: "))
            .and_then(Mode::parse)
            .unwrap_or(default_mode);
        let id = turn_of_prompt(&prompt);
        let (reply_to, message) = match id {
            Some(_) => {
                let text = prompt.trim_start();
                let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
                let path = first
                    .split_once("] reply-to: ")
                    .map(|(_, p)| PathBuf::from(p.trim_end()));
                (path, rest.to_string())
            }
            None => (None, prompt.clone()),
        };
        Turn {
            prompt,
            id,
            reply_to,
            message,
            mode,
        }
    }

    /// The bytes a line `paliadin-test-reply-b64: <base64>` of the message
    /// asks the "model" to say (issue 17: a reply carrying terminal
    /// controls, which a prompt cannot).
    fn payload(&self) -> Option<String> {
        use base64::Engine as _;
        let b64 = self
            .message
            .lines()
            .find_map(|l| l.trim_end().strip_prefix("paliadin-test-reply-b64: "))?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The reply the "model" gives: the message echoed (or the payload the
    /// message asks for, also in the trailer's tools and tag), then a trailer.
    fn reply_text(&self) -> String {
        let payload = self.payload();
        let meta = Meta {
            used_tools: vec![payload.clone().unwrap_or_else(|| "test-agent".into())],
            rows_seen: Some(self.message.lines().count() as i64),
            classifier_tag: Some(payload.clone().unwrap_or_else(|| "test".into())),
        };
        let body = payload.unwrap_or_else(|| self.message.trim_end().to_owned());
        format!("{body}\n\n{}\n", render_trailer(&meta))
    }
}

fn first_line(text: &str) -> &str {
    let line = text.lines().next().unwrap_or("");
    match line.char_indices().nth(500) {
        Some((i, _)) => &line[..i],
        None => line,
    }
}

/// `<path>.tmp`, fsync, rename to `<path>`; returns the bytes written.
fn write_reply(path: &std::path::Path, text: &str) -> io::Result<usize> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = File::create(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)?;
    Ok(text.len())
}

/// The `reply` mode: the reply file (when the envelope names one), then Stop.
fn finish_reply(ctx: &Ctx, turn: &Turn) {
    let reply = turn.reply_text();
    match &turn.reply_to {
        Some(path) => match write_reply(path, &reply) {
            Ok(n) => say(&format!("● replied ({n} bytes)")),
            Err(e) => say(&format!("● cannot write {}: {e}", path.display())),
        },
        None => say(&format!("● {}", first_line(&reply))),
    }
    run_stop(ctx, &reply);
}

fn run_stop(ctx: &Ctx, last_message: &str) {
    ctx.run_hooks(
        "Stop",
        json!({"last_assistant_message": last_message, "stop_hook_active": false}),
    );
}

// ---------------------------------------------------------------------------
// The agent

/// What the agent is doing between keys.
struct Agent {
    ctx: Arc<Ctx>,
    default_mode: Mode,
    swallow_enter: u32,
    /// The prompt being typed.
    buffer: Vec<u8>,
    /// Enter presses still to swallow since the last paste.
    swallow_left: u32,
    /// A turn held by a permission prompt or dialog.
    waiting: Option<Turn>,
}

impl Agent {
    /// Handles one key; `Some(code)` means exit with it.
    fn key(&mut self, key: Key) -> Option<i32> {
        if let Some(turn) = self.waiting.take() {
            match key {
                Key::Text(b'1') => {
                    finish_reply(&self.ctx, &turn);
                    put("> ");
                }
                Key::Text(b'2') | Key::Esc => {
                    say("denied");
                    run_stop(&self.ctx, "denied");
                    put("> ");
                }
                _ => self.waiting = Some(turn),
            }
            return None;
        }
        match key {
            Key::Text(b) => {
                self.buffer.push(b);
                if b.is_ascii_graphic() || b == b' ' {
                    put(&char::from(b).to_string());
                }
            }
            Key::Paste(text) => {
                let lines = String::from_utf8_lossy(&text).lines().count();
                put(&format!("[Pasted text +{lines} lines]"));
                self.buffer.extend_from_slice(&text);
                self.swallow_left = self.swallow_enter;
            }
            Key::Backspace => {
                self.buffer.pop();
            }
            Key::Interrupt => {
                self.buffer.clear();
                put("\r\n> ");
            }
            Key::Eof if self.buffer.is_empty() => return Some(0),
            Key::Eof | Key::Esc => {}
            Key::Enter => return self.enter(),
        }
        None
    }

    fn enter(&mut self) -> Option<i32> {
        if self.buffer.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        put("\r\n");
        if self.swallow_left > 0 {
            self.swallow_left -= 1;
            say("(enter swallowed)");
            return None;
        }
        let prompt = String::from_utf8_lossy(&std::mem::take(&mut self.buffer)).into_owned();
        self.submit(Turn::of_prompt(prompt, self.default_mode))
    }

    /// A submitted prompt: log, `UserPromptSubmit`, then the turn's mode.
    fn submit(&mut self, turn: Turn) -> Option<i32> {
        let ctx = &self.ctx;
        ctx.log_submission(&turn);
        ctx.run_hooks("UserPromptSubmit", json!({"prompt": turn.prompt}));
        // A payload reaches the turn's events too, as a tool's target.
        if let Some(p) = turn.payload() {
            let call = json!({"tool_name": "Read", "tool_input": {"file_path": format!("/w/{p}")}});
            ctx.run_hooks("PreToolUse", call.clone());
            ctx.run_hooks("PostToolUse", call);
        }
        let lines = turn.prompt.lines().count();
        say(&format!("› {} ({lines} lines)", first_line(&turn.prompt)));
        match turn.mode {
            Mode::Reply => finish_reply(ctx, &turn),
            Mode::NoSkill => {
                say(&format!("● {}", first_line(&turn.reply_text())));
                run_stop(ctx, &turn.reply_text());
            }
            Mode::Silent => say("thinking..."),
            Mode::Slow(ms) => {
                say("thinking...");
                let ctx = Arc::clone(ctx);
                thread::spawn(move || {
                    thread::sleep(Duration::from_millis(ms));
                    finish_reply(&ctx, &turn);
                });
            }
            Mode::Crash => {
                say("panic: test agent crashed");
                return Some(1);
            }
            Mode::Permission | Mode::Dialog => {
                let (kind, message) = if turn.mode == Mode::Permission {
                    (
                        "permission_prompt",
                        "Claude needs your permission to use Bash",
                    )
                } else {
                    ("elicitation_dialog", "Claude has a question")
                };
                say("Do you want to allow this command?");
                say("❯ 1. Yes");
                say("  2. No");
                if turn.mode == Mode::Permission {
                    // Claude Code asks its PermissionRequest hooks at once
                    // and notifies 6.4 s later (2.1.328); the notification
                    // never comes within a test's wait here.
                    ctx.run_hooks(
                        "PermissionRequest",
                        json!({"tool_name": "Bash", "tool_input": {"command": "ls"}}),
                    );
                } else {
                    ctx.run_hooks(
                        "Notification",
                        json!({"notification_type": kind, "message": message}),
                    );
                }
                self.waiting = Some(turn);
                return None;
            }
            Mode::Failure => {
                say("API Error: 429 rate_limit_error");
                ctx.run_hooks("StopFailure", json!({"error": "rate_limit"}));
            }
        }
        put("> ");
        None
    }
}

/// Reads the tty until exit; returns the exit status.
fn serve(agent: &mut Agent) -> i32 {
    let stdin = rustix::stdio::stdin();
    let mut parser = Parser::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut keys = Vec::new();
    let esc_timeout = paliadin_core::child::timespec(ESC_TIMEOUT);
    loop {
        if parser.pending_escape() {
            let mut fds = [rustix::event::PollFd::new(
                &stdin,
                rustix::event::PollFlags::IN,
            )];
            match rustix::event::poll(&mut fds, Some(&esc_timeout)) {
                Ok(0) => keys.extend(parser.idle()),
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    say(&format!("poll: {e}"));
                    return 1;
                }
            }
        }
        if keys.is_empty() {
            match rustix::io::read(stdin, &mut buf) {
                Ok(0) => return 0,
                Ok(n) => parser.feed(&buf[..n], &mut keys),
                Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => continue,
                Err(e) => {
                    say(&format!("read: {e}"));
                    return 1;
                }
            }
        }
        for key in keys.drain(..) {
            if let Some(code) = agent.key(key) {
                return code;
            }
        }
    }
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse_args(&argv, |v| std::env::var(v).ok()) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("paliadin-test-agent: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let hooks = match args.settings.as_deref().map(load_settings) {
        None => Hooks::new(),
        Some(Ok(hooks)) => hooks,
        Some(Err(e)) => {
            eprintln!("paliadin-test-agent: {e}");
            std::process::exit(2);
        }
    };
    let session_id = Uuid::new_v4();
    let ctx = Arc::new(Ctx {
        hooks,
        session_id,
        transcript_path: std::env::temp_dir()
            .join(format!("paliadin-test-agent-{session_id}.jsonl")),
        cwd: std::env::current_dir().unwrap_or_default(),
        log: args.log.clone(),
    });

    enter_raw_mode();
    say("test agent starting...");
    thread::sleep(args.start_delay);
    discard_typed_input();
    ctx.run_hooks("SessionStart", json!({"source": "startup"}));
    let early = capture_early_input(args.mount_delay);
    // The input loop runs: bracketed paste, then the alternate screen, as
    // Claude Code's does.
    put("\x1b[?2004h\x1b[?1049h");
    if !early.is_empty() {
        say("(early input kept, its Enter lost)");
    }
    say("test-agent ready (? for shortcuts)");
    put("> ");

    let mut agent = Agent {
        ctx,
        default_mode: args.mode,
        swallow_enter: args.swallow_enter,
        buffer: early,
        swallow_left: 0,
        waiting: None,
    };
    exit(serve(&mut agent))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys_of(chunks: &[&[u8]]) -> Vec<Key> {
        let mut parser = Parser::new();
        let mut keys = Vec::new();
        for chunk in chunks {
            parser.feed(chunk, &mut keys);
        }
        keys
    }

    #[test]
    fn typed_text_and_controls() {
        assert_eq!(
            keys_of(&[b"a\x7f\x03\x04\r\n\x01"]),
            vec![
                Key::Text(b'a'),
                Key::Backspace,
                Key::Interrupt,
                Key::Eof,
                Key::Enter,
                Key::Enter
            ]
        );
    }

    #[test]
    fn paste_is_one_unit_with_cr_as_lf() {
        assert_eq!(
            keys_of(&[b"\x1b[200~a\rb\nc\x1b[201~\r"]),
            vec![Key::Paste(b"a\nb\nc".to_vec()), Key::Enter]
        );
    }

    #[test]
    fn paste_split_anywhere_across_reads() {
        let whole = b"x\x1b[200~he\x1b[20llo\x1b\x1b[201\x1b[201~y";
        let expected = vec![
            Key::Text(b'x'),
            Key::Paste(b"he\x1b[20llo\x1b\x1b[201".to_vec()),
            Key::Text(b'y'),
        ];
        for cut in 0..whole.len() {
            for cut2 in cut..whole.len() {
                let (a, rest) = whole.split_at(cut);
                let (b, c) = rest.split_at(cut2 - cut);
                assert_eq!(keys_of(&[a, b, c]), expected, "cut at {cut},{cut2}");
            }
        }
    }

    #[test]
    fn big_paste_in_many_reads() {
        let body = vec![b'z'; 1 << 20];
        let mut stream = b"\x1b[200~".to_vec();
        stream.extend_from_slice(&body);
        stream.extend_from_slice(PASTE_END);
        let chunks: Vec<&[u8]> = stream.chunks(4095).collect();
        assert_eq!(keys_of(&chunks), vec![Key::Paste(body)]);
    }

    #[test]
    fn other_sequences_are_ignored_and_lone_esc_waits() {
        assert_eq!(
            keys_of(&[b"\x1b[A\x1bOP\x1b[1;5C\x1b[201~\x1bxq"]),
            vec![Key::Text(b'q')]
        );
        let mut parser = Parser::new();
        let mut keys = Vec::new();
        parser.feed(b"\x1b", &mut keys);
        assert!(keys.is_empty() && parser.pending_escape());
        assert_eq!(parser.idle(), Some(Key::Esc));
        assert_eq!(parser.idle(), None);
    }

    #[test]
    fn args_ignore_claude_flags_and_read_env() {
        let argv: Vec<String> = [
            "--permission-mode",
            "dontAsk",
            "--disallowedTools",
            "AskUserQuestion",
            "--dangerously-skip-permissions",
            "--mode",
            "slow:50",
            "--verbose",
            "--log=/x/log",
            "--allowedTools",
            "--swallow-enter",
            "2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let env = |v: &str| (v == "PALIADIN_TEST_AGENT_START_DELAY_MS").then(|| "5".to_string());
        let args = parse_args(&argv, env).unwrap();
        assert_eq!(args.mode, Mode::Slow(50));
        assert_eq!(args.swallow_enter, 2);
        assert_eq!(args.start_delay, Duration::from_millis(5));
        assert_eq!(args.log, Some(PathBuf::from("/x/log")));
        assert_eq!(args.settings, None);
        let none = |_: &str| None;
        let args = parse_args(&[], none).unwrap();
        assert_eq!(
            (args.mode, args.start_delay),
            (Mode::Reply, Duration::from_millis(300))
        );
        assert!(parse_args(&["--mode".into(), "weird".into()], none).is_err());
    }

    #[test]
    fn hooks_from_settings() {
        let settings = json!({"hooks": {
            "Stop": [{"hooks": [{"type": "command", "command": "a"}, {"type": "prompt", "prompt": "x"}]},
                     {"matcher": "", "hooks": [{"type": "command", "command": "b", "timeout": 5}]}]
        }});
        let hooks = hooks_of_settings(&settings);
        let stop: Vec<_> = hooks["Stop"]
            .iter()
            .map(|h| (h.command.as_str(), h.timeout))
            .collect();
        assert_eq!(
            stop,
            vec![("a", HOOK_TIMEOUT), ("b", Duration::from_secs(5))]
        );
        assert!(hooks_of_settings(&json!({})).is_empty());
    }

    #[test]
    fn turn_reads_envelope_mode_and_reply() {
        let id = Uuid::new_v4();
        let prompt =
            format!("[PALIADIN:{id}] reply-to: /r/reply.md\nhello\npaliadin-test: no-skill\n\n");
        let turn = Turn::of_prompt(prompt, Mode::Reply);
        assert_eq!(turn.id, Some(id));
        assert_eq!(turn.reply_to, Some(PathBuf::from("/r/reply.md")));
        assert_eq!(turn.mode, Mode::NoSkill);
        let reply = turn.reply_text();
        assert!(reply.starts_with("hello\npaliadin-test: no-skill\n\n<!-- paliadin-meta: "));
        let (body, meta) = paliadin_core::reply::split_trailer(&reply);
        assert_eq!(body, "hello\npaliadin-test: no-skill");
        assert_eq!(meta.rows_seen, Some(3));

        let plain = Turn::of_prompt("just text".into(), Mode::Silent);
        assert_eq!(
            (plain.id, plain.reply_to, plain.mode),
            (None, None, Mode::Silent)
        );
        assert_eq!(plain.message, "just text");
    }
}
