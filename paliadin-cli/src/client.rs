//! The library face of paliadin-cli: a [`Client`] that runs requests against
//! the shim and records every turn and probe in the [`Store`]. The row goes
//! in before the call and is completed after; what a call said becomes the
//! turn's outcome through [`crate::outcome`]. Every turn comes back as its
//! record ([`Turn`]), a failed one inside the [`Failure`]; a failed log
//! write never hides the turn's own result (it comes back in `log_error`).
//! Never prints, never reads flags: the binary does that.

use paliadin_core::event::{Event, Kind};
use paliadin_core::request::{MessageSource, Request, MAX_ARG_MESSAGE};
use paliadin_core::timefmt::now_ms;
use paliadin_core::SessionName;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};
use uuid::Uuid;

use crate::failure::Failure;
use crate::outcome::{self, PollReading, Said};
use crate::store::{NewTurn, Outcome, Probe, Status, Store, StoreError, Turn, TurnRow};
use crate::transport::{Answer, ErrorCode, Reply, Transport, TransportError};

pub use crate::outcome::tools_of;

/// Runs turns and keeps their record.
pub struct Client {
    pub transport: Transport,
    /// The log; `None` runs without one (every result says so).
    pub store: Option<Store>,
    /// The wall-clock limit of one call.
    pub timeout: Duration,
    /// A call is stopped when this becomes readable (a signal pipe).
    pub cancel: Option<OwnedFd>,
}

/// One turn to run.
#[derive(Debug, Clone)]
pub struct TurnRequest {
    pub session: SessionName,
    pub user_id: Option<Uuid>,
    pub message: String,
    pub page_origin: Option<String>,
}

/// What `poll` says of a turn the shim still works on.
pub const STILL_RUNNING: &str = "the turn is still running on the laptop";

/// Small messages travel in the argument as the Go service sends them;
/// larger ones on stdin, which has no argv limit.
fn message_source(message: &str) -> (MessageSource, Option<&[u8]>) {
    if message.len() <= MAX_ARG_MESSAGE {
        (MessageSource::Inline(message.to_owned()), None)
    } else {
        (MessageSource::Stdin, Some(message.as_bytes()))
    }
}

/// What a stream brought besides its exit: the agent's events, and the
/// text of its `reply` line.
#[derive(Debug, Default)]
struct Streamed {
    events: Vec<Event>,
    reply: Option<String>,
}

impl Client {
    fn deadline(&self, timeout: Duration) -> Instant {
        Instant::now() + timeout
    }

    fn call(
        &self,
        req: &Request,
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Reply, TransportError> {
        let cancel = self.cancel.as_ref().map(|c| c.as_fd());
        self.transport
            .call(req, stdin, self.deadline(timeout), cancel)
    }

    /// A streamed call: each event handed to `on_event` as it arrives (a
    /// line that is not an event is not ours to show), the reply line kept.
    fn stream(
        &self,
        req: &Request,
        stdin: Option<&[u8]>,
        on_event: &mut dyn FnMut(&Event),
    ) -> (Result<Reply, TransportError>, Streamed) {
        let mut st = Streamed::default();
        let cancel = self.cancel.as_ref().map(|c| c.as_fd());
        let result = self.transport.call_lines(
            req,
            stdin,
            self.deadline(self.timeout),
            cancel,
            &mut |line| {
                let Ok(e) = serde_json::from_slice::<Event>(line) else {
                    return;
                };
                if e.kind == Kind::Reply {
                    st.reply = e.text;
                } else {
                    on_event(&e);
                    st.events.push(e);
                }
            },
        );
        (result, st)
    }

    /// A call whose only use is its stdout; `what` names it in a failure.
    fn simple(&self, req: &Request, what: String) -> Result<Vec<u8>, Failure> {
        let result = self.call(req, None, self.timeout);
        self.transport.answer(&result).into_stdout(what)
    }

    fn log(&mut self, f: impl FnOnce(&mut Store) -> Result<(), StoreError>) -> Option<String> {
        self.store
            .as_mut()
            .and_then(|s| f(s).err().map(|e| e.to_string()))
    }

    /// Runs one turn: row first, then the call (`run-turn`, the reply at the
    /// end), then the row completed. A failed turn is the `Err`, with its
    /// record.
    pub fn turn(&mut self, req: &TurnRequest) -> Result<Turn, Failure> {
        self.run_turn(Uuid::new_v4(), req, None)
    }

    /// [`Client::turn`] with progress: `run-turn-events`, each of the
    /// agent's events handed to `on_event` as it arrives (never the reply
    /// line), then kept in the log with the turn and in its record.
    pub fn turn_with_events(
        &mut self,
        req: &TurnRequest,
        on_event: &mut dyn FnMut(&Event),
    ) -> Result<Turn, Failure> {
        self.run_turn(Uuid::new_v4(), req, Some(on_event))
    }

    /// [`Client::turn_with_events`] under a turn id of the caller's choice
    /// (a fresh one: [`Uuid::new_v4`]), for a caller whose `on_event` needs
    /// it, e.g. to answer a `permission_request` ([`Client::approve`]).
    pub fn turn_with_events_as(
        &mut self,
        turn_id: Uuid,
        req: &TurnRequest,
        on_event: &mut dyn FnMut(&Event),
    ) -> Result<Turn, Failure> {
        self.run_turn(turn_id, req, Some(on_event))
    }

    fn run_turn(
        &mut self,
        turn_id: Uuid,
        req: &TurnRequest,
        on_event: Option<&mut dyn FnMut(&Event)>,
    ) -> Result<Turn, Failure> {
        let new = NewTurn {
            turn_id,
            user_id: req.user_id,
            session: req.session.as_str().to_owned(),
            host: self.transport.host().to_owned(),
            started_ms: now_ms(),
            message: req.message.clone(),
            page_origin: req.page_origin.clone(),
        };
        let begin_error = self.log(|s| s.begin_turn(&new));
        let (message, stdin) = message_source(&req.message);
        let request = Request::RunTurn {
            events: on_event.is_some(),
            session: req.session.clone(),
            turn: new.turn_id,
            message,
        };
        let streamed = on_event.is_some();
        let (result, st) = match on_event {
            None => (
                self.call(&request, stdin, self.timeout),
                Streamed::default(),
            ),
            Some(f) => self.stream(&request, stdin, f),
        };
        let mut answer = self.transport.answer(&result);
        // Stopped mid-call (Ctrl-C): stop the agent's turn too.
        self.cancel_interrupted(&req.session, new.turn_id, &mut answer);
        let said = Said {
            answer: &answer,
            streamed,
            reply_line: st.reply.as_deref(),
            events: &st.events,
        };
        let out = outcome::outcome(said, now_ms());
        let record = Record {
            begin_error,
            logged_events: 0,
            hint: answer.hint,
        };
        self.finish(new, out, st.events, record)
    }

    /// Follows a turn that ran past the shim's wait (a `timeout` failure's
    /// record): a repeat of its `run-turn-events`, which types nothing and
    /// streams the turn's events from the start, each one not seen yet
    /// handed to `on_event`, until the turn has an outcome or the shim's
    /// wait passes again (`timeout` again). The row is completed as after
    /// the first call; a call stopped by the cancel fd cancels the turn.
    pub fn follow_turn(
        &mut self,
        turn: &Turn,
        on_event: &mut dyn FnMut(&Event),
    ) -> Result<Turn, Failure> {
        let new = turn.row.turn.clone();
        let seen = turn.events.len();
        let session = SessionName::new(&new.session).map_err(|e| Failure::usage(e.to_string()))?;
        let (message, stdin) = message_source(&new.message);
        let request = Request::RunTurn {
            events: true,
            session: session.clone(),
            turn: new.turn_id,
            message,
        };
        let mut n = 0;
        let (result, st) = self.stream(&request, stdin, &mut |e| {
            n += 1;
            if n > seen {
                on_event(e);
            }
        });
        let mut answer = self.transport.answer(&result);
        self.cancel_interrupted(&session, new.turn_id, &mut answer);
        let said = Said {
            answer: &answer,
            streamed: true,
            reply_line: st.reply.as_deref(),
            events: &st.events,
        };
        let ended = outcome::ended_at(&st.events, new.started_ms, now_ms());
        let record = Record {
            begin_error: None,
            logged_events: seen,
            hint: answer.hint.clone(),
        };
        self.finish(new, outcome::outcome(said, ended), st.events, record)
    }

    /// Completes a turn's row with `out` and gives its record: the turn,
    /// or its failure carrying it.
    fn finish(
        &mut self,
        new: NewTurn,
        out: Outcome,
        events: Vec<Event>,
        r: Record,
    ) -> Result<Turn, Failure> {
        let id = new.turn_id;
        let fresh = &events[r.logged_events.min(events.len())..];
        let begun = r.begin_error.is_none();
        let log_error = self
            .log(|s| {
                if !begun {
                    s.begin_turn(&new)?;
                }
                s.record_events(id, fresh)?;
                s.finish_turn(id, &out)
            })
            // The first failure is the telling one.
            .map(|e| r.begin_error.unwrap_or(e));
        let session = new.session.clone();
        let turn = Turn {
            row: TurnRow::new(new, out),
            events,
            log_error,
        };
        match turn.row.outcome.error_code {
            None => Ok(turn),
            Some(c) => {
                let resets = turn.row.outcome.resets_at_ms;
                let hint = r.hint.or_else(|| match (c, resets) {
                    (ErrorCode::UsageLimit, Some(ms)) => Some(format!(
                        "the subscription's limit resets at {}; until then every turn is refused at once",
                        crate::localtime::for_people(ms, now_ms())
                    )),
                    _ => outcome::hint(c, id, &session),
                });
                Err(Failure::of_turn(c, turn, hint))
            }
        }
    }

    /// Collects the late reply of a turn that ended in `timeout` (or lost
    /// its connection, or whose client was killed) and completes its row,
    /// with its events and the time it really ended. `session` is needed
    /// only for a turn not in the log. A turn still running is a `timeout`
    /// failure carrying its row as it was.
    pub fn poll(&mut self, turn_id: Uuid, session: Option<SessionName>) -> Result<Turn, Failure> {
        let known = match self.store.as_ref() {
            Some(s) => s.turn(turn_id)?,
            None => None,
        };
        // A turn already collected keeps its reply: nothing to ask the shim.
        if let Some(t) = known
            .as_ref()
            .filter(|t| t.row.outcome.status == Status::Ok)
        {
            return Ok(t.clone());
        }
        let session = match (&known, session) {
            (Some(t), _) => {
                SessionName::new(&t.row.turn.session).map_err(|e| Failure::usage(e.to_string()))?
            }
            (None, Some(s)) => s,
            (None, None) => {
                return Err(Failure::usage(format!(
                    "turn {turn_id} is not in the log: give its --session"
                )))
            }
        };
        let request = Request::Poll {
            session: session.clone(),
            turn: turn_id,
        };
        let answer = self
            .transport
            .answer(&self.call(&request, None, self.timeout));
        if let Some(mut f) = not_over(turn_id, &answer) {
            f.turn = known.map(Box::new);
            return Err(f);
        }
        let Some(known) = known else {
            return self.unlogged(turn_id, &session, answer);
        };
        let events = match answer.code {
            // The turn replied: its events up to the reply (its `replied`
            // among them) come from a repeat of the turn, which types nothing.
            None => self
                .events_again(&known.row.turn)
                .unwrap_or_else(|| known.events.clone()),
            Some(_) => known.events.clone(),
        };
        let said = Said {
            answer: &answer,
            streamed: false,
            reply_line: None,
            events: &events,
        };
        let ended = outcome::ended_at(&events, known.row.turn.started_ms, now_ms());
        let record = Record {
            begin_error: None,
            logged_events: known.events.len(),
            hint: answer.hint.clone(),
        };
        self.finish(
            known.row.turn,
            outcome::outcome(said, ended),
            events,
            record,
        )
    }

    /// What the shim said of a turn not in the log: a record kept nowhere.
    fn unlogged(
        &self,
        turn_id: Uuid,
        session: &SessionName,
        answer: Answer,
    ) -> Result<Turn, Failure> {
        let now = now_ms();
        let new = NewTurn {
            turn_id,
            user_id: None,
            session: session.as_str().to_owned(),
            host: self.transport.host().to_owned(),
            started_ms: now,
            message: String::new(),
            page_origin: None,
        };
        let said = Said {
            answer: &answer,
            streamed: false,
            reply_line: None,
            events: &[],
        };
        let turn = Turn {
            row: TurnRow::new(new, outcome::outcome(said, now)),
            events: Vec::new(),
            log_error: None,
        };
        match turn.row.outcome.error_code {
            None => Ok(turn),
            Some(c) => Err(Failure::of_turn(c, turn, answer.hint)),
        }
    }

    /// All the events of a turn the shim holds, from the start: a repeat of
    /// its `run-turn-events` (which never types a turn it holds, and answers
    /// at once when the reply is there). `None` when it does not answer.
    fn events_again(&self, t: &NewTurn) -> Option<Vec<Event>> {
        let (message, stdin) = message_source(&t.message);
        let request = Request::RunTurn {
            events: true,
            session: SessionName::new(&t.session).ok()?,
            turn: t.turn_id,
            message,
        };
        let (result, st) = self.stream(&request, stdin, &mut |_| {});
        (self.transport.error_code(&result).is_none()).then_some(st.events)
    }

    /// [`Client::poll`] again every second while the turn is still running,
    /// for at most `wait` (stopped early by the cancel fd).
    pub fn poll_wait(
        &mut self,
        turn_id: Uuid,
        session: Option<SessionName>,
        wait: Duration,
    ) -> Result<Turn, Failure> {
        let deadline = Instant::now() + wait;
        loop {
            let r = self.poll(turn_id, session.clone());
            let left = deadline.saturating_duration_since(Instant::now());
            match r {
                Err(f) if is_still_running(&f) && !left.is_zero() => {}
                r => return r,
            }
            let pause = left.min(Duration::from_secs(1));
            if let Some(fd) = &self.cancel {
                let mut fds = [rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN)];
                let ts = paliadin_core::child::timespec(pause);
                if matches!(rustix::event::poll(&mut fds, Some(&ts)), Ok(n) if n > 0) {
                    return Err(Failure::call(
                        ErrorCode::Interrupted,
                        "stopped while waiting for the reply",
                    )
                    .what(format!("poll {turn_id}"))
                    .hint(format!(
                        "collect it later with: paliadin-cli poll {turn_id}"
                    )));
                }
            } else {
                std::thread::sleep(pause);
            }
        }
    }

    /// Completes the rows of this client's host left `running` by a process
    /// that is gone (killed mid-turn): each is taken over (`pending`,
    /// `interrupted`, with a line on how to poll it), then polled like
    /// [`Client::poll`] (or [`Client::poll_wait`] for `wait`), which makes
    /// it `ok` with the reply the laptop kept. Costs one indexed query, and
    /// no call at all, when there is no such row.
    pub fn complete_stale(&mut self, wait: Option<Duration>) -> Vec<(Uuid, Result<Turn, Failure>)> {
        let host = self.transport.host().to_owned();
        let stale = match self.store.as_ref().map(|s| s.stale_turns(&host)) {
            Some(Ok(v)) => v,
            _ => return Vec::new(),
        };
        let mut out = Vec::new();
        for t in stale {
            let detail = format!(
                "the client that ran this turn (pid {}) is gone; the turn may go on on the laptop: collect its reply with `paliadin-cli poll {}`",
                t.owner.pid, t.turn_id
            );
            let claimed = self
                .store
                .as_mut()
                .map(|s| s.claim_stale(t.turn_id, &detail));
            if !matches!(claimed, Some(Ok(true))) {
                continue;
            }
            let r = match wait {
                Some(w) => self.poll_wait(t.turn_id, None, w),
                None => self.poll(t.turn_id, None),
            };
            out.push((t.turn_id, r));
        }
        out
    }

    /// Probes the session (starting it if missing) and records the probe;
    /// with it, why the log could not keep it, if it could not.
    pub fn health(&mut self, session: &SessionName, timeout: Duration) -> (Probe, Option<String>) {
        let start = Instant::now();
        let at_ms = now_ms();
        let req = Request::Health {
            session: session.clone(),
        };
        let mut a = self.transport.answer(&self.call(&req, None, timeout));
        if a.code.is_none() && a.stdout != b"ok\n" {
            a = Answer {
                code: Some(ErrorCode::ShimError),
                detail: "the shim's health answer is not `ok`".into(),
                ..a
            };
        }
        let duration_ms = start.elapsed().as_millis() as i64;
        // The plan's windows, as the shim's status has them (not part of
        // the probe's time; a status that fails leaves them unknown).
        let windows = match a.code {
            None => {
                let status = Request::Status {
                    session: session.clone(),
                };
                let r = self.transport.answer(&self.call(&status, None, timeout));
                serde_json::from_slice::<serde_json::Value>(&r.stdout)
                    .ok()
                    .filter(|_| r.code.is_none())
                    .and_then(|v| serde_json::from_value(v["windows"].clone()).ok())
                    .unwrap_or_default()
            }
            Some(_) => Default::default(),
        };
        let probe = Probe {
            session: session.as_str().to_owned(),
            host: self.transport.host().to_owned(),
            at_ms,
            duration_ms,
            ok: a.code.is_none(),
            error_code: a.code,
            detail: a.code.map(|_| a.detail.clone()),
            windows,
        };
        let log_error = self.log(|s| s.record_probe(&probe));
        (probe, log_error)
    }

    /// Ends the session and its agent on the laptop; `false` when the shim
    /// says there was no such session (`none`).
    pub fn reset(&self, session: &SessionName) -> Result<bool, Failure> {
        let req = Request::Reset {
            session: session.clone(),
        };
        let out = self.simple(&req, format!("reset {session}"))?;
        Ok(out != b"none\n")
    }

    /// Answers permission request `request` of the session's current turn
    /// `turn` (the shim's approve mode).
    pub fn approve(
        &self,
        session: &SessionName,
        turn: Uuid,
        request: u32,
        allow: bool,
    ) -> Result<(), Failure> {
        let req = Request::Approve {
            session: session.clone(),
            turn,
            request,
            allow,
        };
        self.simple(&req, format!("approve {session}")).map(drop)
    }

    /// The shim's status object of a session.
    pub fn status(&self, session: &SessionName) -> Result<serde_json::Value, Failure> {
        let req = Request::Status {
            session: session.clone(),
        };
        let out = self.simple(&req, format!("status {session}"))?;
        serde_json::from_slice(&out).map_err(|e| {
            Failure::call(
                ErrorCode::ShimError,
                format!("the shim's status is not JSON: {e}"),
            )
        })
    }

    /// The shim's status objects of all its sessions.
    pub fn sessions(&self) -> Result<Vec<serde_json::Value>, Failure> {
        let out = self.simple(&Request::Sessions, "sessions".into())?;
        String::from_utf8_lossy(&out)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).map_err(|e| {
                    Failure::call(
                        ErrorCode::ShimError,
                        format!("the shim's sessions are not JSON: {e}"),
                    )
                })
            })
            .collect()
    }
}

/// How [`Client::finish`] records a turn.
struct Record {
    /// Why its row could not go in before the call, if it could not: it
    /// goes in whole now.
    begin_error: Option<String>,
    /// How many of its events the log holds already.
    logged_events: usize,
    /// The fix the call's answer named, if it named one.
    hint: Option<String>,
}

/// The failure a `poll` answer is when the turn is not over: still running
/// (`timeout`), or the shim not reached; `None` when the turn is over.
fn not_over(turn_id: Uuid, answer: &Answer) -> Option<Failure> {
    let f = match outcome::poll_reading(answer.code) {
        PollReading::Over => return None,
        PollReading::StillRunning => Failure::call(ErrorCode::Timeout, STILL_RUNNING).hint(
            format!("wait for its reply with: paliadin-cli poll --wait {turn_id}"),
        ),
        PollReading::NotReached(code) => {
            let hint = answer.hint.clone().unwrap_or_else(|| {
                format!("the turn is still to collect: paliadin-cli poll {turn_id}")
            });
            Failure::call(code, &answer.detail).hint(hint)
        }
    };
    Some(f.what(format!("poll {turn_id}")))
}

/// Whether a failure says the turn still runs on the laptop (a `timeout`:
/// `poll` collects it later).
pub fn is_still_running(f: &Failure) -> bool {
    f.code == crate::failure::Code::Call(ErrorCode::Timeout)
}
