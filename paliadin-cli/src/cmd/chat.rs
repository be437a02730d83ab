//! `chat`: manual conversations in a terminal. Reads input with rustyline
//! (history in `$XDG_STATE_HOME/paliadin/chat_history`), runs each message as
//! a logged turn on a worker thread while a spinner turns on stderr, prints
//! each step of the agent's work as a dim line above it (on a terminal
//! only), and prints the reply through [`crate::render`]. With stdin not a terminal it
//! reads plain lines: no spinner, no colour, no history. Ctrl-C at the
//! prompt clears the line; during a turn it cancels that turn (the agent's
//! too), which otherwise is waited for as long as it takes. Keys typed
//! during a turn wait in the terminal for the next prompt, in order. A
//! `permission_request` (the laptop's approve mode) is asked in place on a
//! terminal ([`crate::ask`]) and answered with `approve`.

use anyhow::Context as _;
use paliadin_core::event::Kind;
use paliadin_core::SessionName;
use rustyline::error::ReadlineError;
use rustyline::DefaultEditor;
use std::fs::{DirBuilder, OpenOptions};
use std::io::Write as _;
use std::os::fd::AsFd as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use uuid::Uuid;

use crate::ask::{self, Answered, TypedAhead};
use crate::cli::ChatArgs;
use crate::cmd::{out, sessions::describe, warn_log, Ctx};
use paliadin_cli::client::{is_still_running, Client, TurnRequest};
use paliadin_cli::failure::Code;
use paliadin_cli::store::Turn;
use paliadin_cli::transport::ErrorCode;
use paliadin_cli::{exit, Failure};

const PROMPT: &str = "> ";
const MORE: &str = "... ";
const FENCE: &str = "\"\"\"";

const HELP: &str = "\
Type a message and press Enter to send it.
  end a line with \\ to go on on the next line; \"\"\" on a line of its own
  opens and closes a block; a paste of several lines is one message.
/status          the session's state on the laptop
/reset           end the session; the next message starts afresh
/poll [turn-id]  collect the reply of a turn that was stopped
                 (without an id: the last such turn; a unique prefix will do)
/help            this text
/quit, /exit     leave (also Ctrl-D)
A line starting with / that is none of these is sent as a message;
//text sends /text.
Ctrl-C clears the line at the prompt and cancels a running turn.
Lines typed while a turn runs are kept and sent after it, in order.
On a laptop in approve mode a tool call that needs a yes is asked:
  \"Allow Bash: git? [y/N]\": y or yes allows it, anything else denies it.
";

/// What the prompt gave.
enum Input {
    Text(String),
    /// Ctrl-C: the line was dropped.
    Cleared,
    /// Ctrl-D or the end of stdin.
    End,
}

/// rustyline and the history file.
struct Prompt {
    editor: DefaultEditor,
    history: Option<PathBuf>,
    /// Keys typed during a turn before a question took them aside: read
    /// before the terminal's.
    ahead: TypedAhead,
}

/// Keeps what is typed while a turn runs: the terminal stops echoing and
/// stops assembling lines (Ctrl-C still signals), so the keys wait in its
/// queue, behind those rustyline read already (it keeps them, with its
/// `buffer-redux` feature), for the next prompt to read in the order they
/// were typed. Restores the terminal on drop.
struct TypeAhead {
    saved: Option<rustix::termios::Termios>,
}

impl TypeAhead {
    fn begin(tty: bool) -> TypeAhead {
        use rustix::termios::{
            tcgetattr, tcsetattr, LocalModes, OptionalActions, SpecialCodeIndex,
        };
        let fd = rustix::stdio::stdin();
        let saved = tty.then(|| tcgetattr(fd).ok()).flatten();
        if let Some(t) = &saved {
            let mut quiet = t.clone();
            quiet
                .local_modes
                .remove(LocalModes::ICANON | LocalModes::ECHO);
            quiet.special_codes[SpecialCodeIndex::VMIN] = 0;
            quiet.special_codes[SpecialCodeIndex::VTIME] = 0;
            let _ = tcsetattr(fd, OptionalActions::Now, &quiet);
        }
        TypeAhead { saved }
    }

    fn restore(&mut self) {
        if let Some(t) = self.saved.take() {
            let _ = rustix::termios::tcsetattr(
                rustix::stdio::stdin(),
                rustix::termios::OptionalActions::Now,
                &t,
            );
        }
    }
}

impl Drop for TypeAhead {
    fn drop(&mut self) {
        self.restore();
    }
}

/// `$XDG_STATE_HOME/paliadin/chat_history`, made private before first use.
fn history_file() -> anyhow::Result<PathBuf> {
    let state = match std::env::var_os("XDG_STATE_HOME").map(PathBuf::from) {
        Some(p) if p.is_absolute() => p,
        _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".local/state"),
    };
    let dir = state.join("paliadin");
    DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
    let file = dir.join("chat_history");
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&file)?;
    Ok(file)
}

impl Prompt {
    fn open(tty: bool) -> anyhow::Result<Prompt> {
        let mut editor = DefaultEditor::new().context("cannot set up line editing")?;
        let mut history = None;
        if tty {
            match history_file() {
                Ok(f) => {
                    if let Err(e) = editor.load_history(&f) {
                        eprintln!("paliadin-cli: warning: cannot read {}: {e}", f.display());
                    }
                    history = Some(f);
                }
                Err(e) => eprintln!("paliadin-cli: warning: no chat history: {e}"),
            }
        }
        Ok(Prompt {
            editor,
            history,
            ahead: TypedAhead::default(),
        })
    }

    fn line(&mut self, prompt: &str) -> Result<String, ReadlineError> {
        if let Some(line) = self.ahead.line() {
            // As the terminal would have shown it, typed at this prompt.
            let mut o = std::io::stdout().lock();
            let shown = paliadin_core::text::for_terminal(&line);
            let _ = writeln!(o, "{prompt}{shown}").and_then(|()| o.flush());
            return Ok(line);
        }
        let begun = self.ahead.begun();
        if begun.is_empty() {
            self.editor.readline(prompt)
        } else {
            self.editor.readline_with_initial(prompt, (&begun, ""))
        }
    }

    /// One input: lines joined while they end in `\`, or a `"""` block.
    fn read(&mut self) -> anyhow::Result<Input> {
        let mut lines: Vec<String> = Vec::new();
        let mut block = false;
        loop {
            let prompt = if lines.is_empty() && !block {
                PROMPT
            } else {
                MORE
            };
            let line = match self.line(prompt) {
                Ok(l) => l,
                Err(ReadlineError::Interrupted) => return Ok(Input::Cleared),
                Err(ReadlineError::Eof) => return Ok(Input::End),
                Err(e) => return Err(e).context("cannot read input"),
            };
            if line.trim() == FENCE && (block || lines.is_empty()) {
                if block {
                    break;
                }
                block = true;
            } else if block {
                lines.push(line);
            } else if let Some(head) = line.strip_suffix('\\') {
                lines.push(head.to_owned());
            } else {
                lines.push(line);
                break;
            }
        }
        let text = lines.join("\n");
        self.remember(&text);
        Ok(Input::Text(text))
    }

    fn remember(&mut self, text: &str) {
        let Some(file) = &self.history else { return };
        if text.trim().is_empty() {
            return;
        }
        let saved = self
            .editor
            .add_history_entry(text)
            .and_then(|_| self.editor.save_history(file));
        if let Err(e) = saved {
            eprintln!("paliadin-cli: warning: cannot save {}: {e}", file.display());
            self.history = None;
        }
    }
}

/// A chat's settings and its client.
struct Chat {
    client: Client,
    session: SessionName,
    user_id: Option<Uuid>,
    spin: bool,
    color: bool,
    /// The last turn that timed out or was stopped, for `/poll` alone.
    unfinished: Option<Uuid>,
    /// stdin is a terminal: a permission request is asked in place.
    ask: bool,
    /// Keys a question took aside, for the prompt.
    ahead: TypedAhead,
}

impl Chat {
    /// Forgets a Ctrl-C that came between turns: it must not stop the next.
    fn forget_signals(&self) {
        if let Some(fd) = &self.client.cancel {
            crate::signals::drain(fd);
        }
    }

    fn turn(&mut self, message: String) -> Result<(), Failure> {
        self.forget_signals();
        let req = TurnRequest {
            session: self.session.clone(),
            user_id: self.user_id,
            message,
            page_origin: Some("chat".into()),
        };
        let turn_id = Uuid::new_v4();
        // Answers go out on a client of their own (the same transport, so
        // over the same master connection), not stopped by Ctrl-C.
        let asker = self.ask.then(|| Asker {
            client: Client {
                transport: self.client.transport.clone(),
                store: None,
                timeout: self.client.timeout,
                cancel: None,
            },
            session: self.session.clone(),
            turn: turn_id,
            cancel: self.client.cancel.as_ref().and_then(|c| c.try_clone().ok()),
        });
        let ahead = &mut self.ahead;
        let client = &mut self.client;
        let dim = self.spin && crate::cmd::stderr_color();
        let r = crate::cmd::progress::with_steps(self.spin, |steps| {
            // Each step stays as a line above the reply; the spinner shows
            // the newest.
            let mut on_event = |e: &paliadin_core::event::Event| {
                let step = crate::render::step(e);
                if let (Some(asker), Kind::PermissionRequest) = (&asker, e.kind) {
                    steps.show(step.as_deref());
                    asker.ask(e, steps, ahead, dim);
                    steps.show(None);
                    return;
                }
                if let Some(s) = &step {
                    steps.println(&crate::render::step_line(s, dim));
                }
                steps.show(step.as_deref());
            };
            let mut r = client.turn_with_events_as(turn_id, &req, &mut on_event);
            // Past the shim's wait the turn goes on, and a person waits for
            // it (or presses Ctrl-C, which cancels it): the turn is
            // followed again, its new steps shown as they come.
            loop {
                match r {
                    Err(f) if is_still_running(&f) && f.turn.is_some() => {
                        let t = f.turn.as_deref().expect("checked");
                        r = client.follow_turn(t, &mut on_event);
                    }
                    r => return r,
                }
            }
        });
        self.show(r)
    }

    /// The turn `/poll` names: its argument (an id or a unique prefix), or
    /// the last unfinished turn of this chat.
    fn poll_target(&self, arg: &str) -> Result<Uuid, String> {
        let arg = arg.trim();
        if arg.is_empty() {
            return self
                .unfinished
                .ok_or_else(|| "no unfinished turn in this chat: /poll <turn-id>".to_owned());
        }
        match (Uuid::parse_str(arg), self.client.store.as_ref()) {
            (Ok(id), _) => Ok(id),
            (Err(_), Some(store)) => super::log::resolve(store, arg, store.path())
                .map_err(|f| format!("error: {}", f.line())),
            (Err(_), None) => Err("usage: /poll [turn-id]".into()),
        }
    }

    fn poll(&mut self, arg: &str) -> Result<(), Failure> {
        let id = match self.poll_target(arg) {
            Ok(id) => id,
            Err(e) => {
                eprintln!("{e}");
                return Ok(());
            }
        };
        self.forget_signals();
        let (client, session) = (&mut self.client, self.session.clone());
        let r = crate::cmd::progress::with_spinner(self.spin, || client.poll(id, Some(session)));
        if r.as_ref().is_ok_and(|_| self.unfinished == Some(id)) {
            self.unfinished = None;
        }
        self.show(r)
    }

    /// A turn's reply and status line, or its one-line failure (with the
    /// hint of a chat where `/poll` collects it).
    fn show(&mut self, r: Result<Turn, Failure>) -> Result<(), Failure> {
        let mut f = match r {
            Ok(t) => {
                warn_log(&t);
                let body = t.row.outcome.response.as_deref().unwrap_or("");
                out(&crate::render::reply_width(
                    body,
                    self.color,
                    crate::cmd::stdout_width(),
                ))?;
                return out(&crate::render::status_line(&t.row, self.color));
            }
            Err(f) => f,
        };
        if let Some(t) = &f.turn {
            warn_log(t);
        }
        let id = f.turn.as_ref().map(|t| t.row.turn.turn_id);
        // These go on on the laptop: the reply comes to a later /poll.
        let goes_on = is_still_running(&f)
            || matches!(
                f.code,
                Code::Call(ErrorCode::ConnectionLost | ErrorCode::Interrupted)
            );
        if let (true, Some(id)) = (goes_on, id) {
            self.unfinished = Some(id);
            f.hint = Some(format!(
                "the agent may still answer; /poll (or /poll {id}) collects it"
            ));
        }
        match (f.code, id) {
            // Asked for: not an error.
            (Code::Call(ErrorCode::Cancelled), Some(id)) => {
                self.forget_signals();
                eprintln!("(cancelled) turn {id}");
            }
            (Code::Call(ErrorCode::Interrupted), Some(id)) => {
                self.forget_signals();
                eprintln!("(interrupted) turn {id}: the agent may still answer; /poll collects it");
            }
            _ => eprintln!("error: {}", f.line()),
        }
        Ok(())
    }

    /// Runs a `/command`: `Some(false)` when the chat should end, `None`
    /// when the line is no command (it is a message).
    fn command(&mut self, line: &str) -> Result<Option<bool>, Failure> {
        let (word, arg) = line.split_once(' ').unwrap_or((line, ""));
        match word {
            "/quit" | "/exit" => return Ok(Some(false)),
            "/help" => out(HELP)?,
            "/reset" => match self.client.reset(&self.session) {
                Ok(_) => eprintln!(
                    "session {} reset; the next message starts afresh",
                    self.session.as_str()
                ),
                Err(f) => eprintln!("error: {}", f.line()),
            },
            "/status" => match self.client.status(&self.session) {
                Ok(v) => out(&describe(&v))?,
                Err(f) => eprintln!("error: {}", f.line()),
            },
            "/poll" => self.poll(arg)?,
            _ => return Ok(None),
        }
        Ok(Some(true))
    }
}

/// Asks the person about a turn's permission requests and answers them.
struct Asker {
    client: Client,
    session: SessionName,
    turn: Uuid,
    /// A copy of the signal pipe: Ctrl-C while asked ends the question,
    /// and the turn's call, which reads the pipe, cancels the turn.
    cancel: Option<std::os::fd::OwnedFd>,
}

impl Asker {
    /// "Allow Bash: git? [y/N]" in place of the spinner, and the answer
    /// sent (y or yes allows, anything else denies). Nothing is sent on
    /// Ctrl-C: the turn is being cancelled.
    fn ask(
        &self,
        e: &paliadin_core::event::Event,
        steps: &crate::cmd::progress::Steps,
        ahead: &mut TypedAhead,
        dim: bool,
    ) {
        let Some(request) =
            e.id.as_deref()
                .and_then(|id| paliadin_core::request::parse_request_id(id).ok())
        else {
            return;
        };
        let question = crate::render::question(e);
        let cancel = self.cancel.as_ref().map(|c| c.as_fd());
        let allow = match steps.suspend(|| ask::yes_no(&question, cancel, ahead)) {
            Ok(Answered::Yes) => true,
            Ok(Answered::No) => false,
            Ok(Answered::Cancelled) => return,
            Err(err) => {
                steps.say(&format!(
                    "cannot ask ({err}): the laptop denies the request when its time runs out"
                ));
                return;
            }
        };
        match self
            .client
            .approve(&self.session, self.turn, request, allow)
        {
            Ok(()) => {
                let word = if allow { "allowed" } else { "denied" };
                steps.say(&crate::render::step_line(word, dim));
            }
            Err(f) => steps.say(&format!(
                "not answered: {}; a request not answered in time is denied",
                f.line()
            )),
        }
    }
}

/// What a line of input is.
#[derive(Debug, PartialEq, Eq)]
enum Said<'a> {
    /// One line starting with `/` (not `//`): a command if it names one,
    /// else a message as it is.
    Command(&'a str),
    /// A message, with a leading `//` made `/`.
    Message(String),
}

fn message_of(text: &str) -> Said<'_> {
    let t = text.trim();
    match t.strip_prefix("//") {
        Some(rest) => Said::Message(format!("/{}", rest.trim_end())),
        None if t.starts_with('/') && !t.contains('\n') => Said::Command(t),
        None => Said::Message(text.trim_end().to_owned()),
    }
}

pub fn run(ctx: &Ctx<'_>, a: &ChatArgs) -> Result<u8, Failure> {
    let app = ctx.app()?;
    let session = app.session(&a.target, "cli")?;
    let client = app.client(Some("turns"))?;
    // SIGTERM also stops a turn through the client's cancel pipe; this flag
    // tells it apart from Ctrl-C, so that it ends the chat.
    let terminated = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&terminated))
        .context("cannot install signal handlers")?;
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&terminated))
        .context("cannot install signal handlers")?;
    // A closed terminal at the prompt: nothing is running, nothing to record,
    // and the read would never return. Leave at once.
    let at_prompt = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register_conditional_shutdown(
        signal_hook::consts::SIGHUP,
        exit::of(ErrorCode::Interrupted).into(),
        Arc::clone(&at_prompt),
    )
    .context("cannot install signal handlers")?;
    let tty = rustix::termios::isatty(rustix::stdio::stdin());
    eprintln!(
        "paliadin chat — session {} on {}; /help for commands",
        session.as_str(),
        client.transport.host()
    );
    let mut prompt = Prompt::open(tty)?;
    let mut chat = Chat {
        client,
        session,
        user_id: a.target.user,
        spin: tty && crate::cmd::stderr_is_tty(),
        color: tty && crate::cmd::color(),
        unfinished: None,
        ask: tty,
        ahead: TypedAhead::default(),
    };
    loop {
        at_prompt.store(true, Ordering::Relaxed);
        let input = prompt.read();
        at_prompt.store(false, Ordering::Relaxed);
        let text = match input? {
            Input::Text(t) => t,
            Input::Cleared => continue,
            Input::End => break,
        };
        if terminated.load(Ordering::Relaxed) {
            return Ok(exit::of(ErrorCode::Interrupted));
        }
        let trimmed = text.trim();
        if trimmed.is_empty() {
            continue;
        }
        let typing = TypeAhead::begin(tty);
        let go_on = match message_of(&text) {
            Said::Command(line) => match chat.command(line) {
                Ok(Some(go_on)) => Ok(go_on),
                // No command of ours: a message like any other.
                Ok(None) => chat.turn(line.to_owned()).map(|()| true),
                Err(f) => Err(f),
            },
            Said::Message(m) => chat.turn(m).map(|()| true),
        };
        drop(typing);
        prompt.ahead.append(&mut chat.ahead);
        if !go_on? {
            break;
        }
        if terminated.load(Ordering::Relaxed) {
            return Ok(exit::of(ErrorCode::Interrupted));
        }
    }
    Ok(exit::OK)
}
