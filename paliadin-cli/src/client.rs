//! The library face of paliadin-cli: a [`Client`] that runs requests against
//! the shim and records every turn and probe in the [`Store`]. The row goes
//! in before the call and is completed after; a failed log write never hides
//! the turn's own result (it comes back in `log_error`). Never prints, never
//! reads flags: the binary does that.

use paliadin_core::event::{Event, Kind};
use paliadin_core::reply;
use paliadin_core::request::{MessageSource, Request, MAX_ARG_MESSAGE};
use paliadin_core::timefmt::now_ms;
use paliadin_core::SessionName;
use serde::Serialize;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};
use uuid::Uuid;

use crate::store::{NewTurn, Outcome, Probe, Status, Store, TurnRow};
use crate::transport::{ErrorCode, Reply, Transport, TransportError};

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

/// What became of a turn (also the `--json` output of `turn`).
#[derive(Debug, Clone, Serialize)]
pub struct TurnResult {
    pub turn_id: String,
    pub session: String,
    pub host: String,
    pub status: Status,
    pub response: Option<String>,
    /// The tools the agent used: from its events when the turn streamed
    /// any, else (no hooks, or no progress asked for) the trailer's claim.
    pub used_tools: Vec<String>,
    /// The tools the trailer claims, beside `used_tools` so a difference
    /// shows; `None` without a reply.
    pub claimed_tools: Option<Vec<String>>,
    pub rows_seen: Option<i64>,
    pub chip_count: Option<i64>,
    pub classifier_tag: Option<String>,
    pub tokens: Option<i64>,
    pub duration_ms: i64,
    pub error_code: Option<ErrorCode>,
    pub error_detail: Option<String>,
    /// Why the record could not be written, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_error: Option<String>,
    /// From `poll`: the turn is still running on the laptop (its row was
    /// left as it was).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub still_running: bool,
    /// What the agent did, in order (PROTOCOL section 7), when progress was
    /// asked for; never the `reply` line.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Event>,
}

/// The tools that ran: the distinct names of `tool_finished` and
/// `tool_failed` events, in the order first seen. A call with only its
/// `tool_started` (one the permission rules denied, or one cut off by the
/// turn's end) did not run; its event stays in the log.
pub fn tools_of(events: &[Event]) -> Vec<String> {
    let mut tools: Vec<String> = Vec::new();
    for e in events {
        if matches!(e.kind, Kind::ToolFinished | Kind::ToolFailed) {
            if let Some(t) = e.tool.as_ref().filter(|t| !tools.contains(t)) {
                tools.push(t.clone());
            }
        }
    }
    tools
}

/// What a streamed turn brought besides its exit: the events, and the
/// reply line's text.
#[derive(Debug, Default)]
struct Streamed {
    events: Vec<Event>,
    reply: Option<String>,
    /// The events are in the log already (`poll` of a streamed turn).
    logged: bool,
}

/// What `poll` says of a turn the shim still works on.
pub const STILL_RUNNING: &str =
    "the turn is still running on the laptop: poll again later, or wait with poll --wait";

impl TurnResult {
    /// The result a logged row records.
    pub fn from_row(r: &TurnRow) -> TurnResult {
        let (t, o) = (&r.turn, &r.outcome);
        TurnResult {
            turn_id: t.turn_id.to_string(),
            session: t.session.clone(),
            host: t.host.clone(),
            status: o.status,
            response: o.response.clone(),
            used_tools: o.used_tools.clone(),
            claimed_tools: o.claimed_tools.clone(),
            rows_seen: o.rows_seen,
            chip_count: o.chip_count,
            classifier_tag: o.classifier_tag.clone(),
            tokens: o.tokens,
            duration_ms: r.duration_ms.unwrap_or(0),
            error_code: o.error_code.as_deref().and_then(ErrorCode::parse),
            error_detail: o.error_detail.clone(),
            log_error: None,
            still_running: false,
            events: Vec::new(),
        }
    }
}

/// A failed call that is not a turn (reset, status, sessions).
#[derive(Debug, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct CallError {
    pub code: ErrorCode,
    pub detail: String,
}

/// The outcome of a health probe.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    pub ok: bool,
    pub session: String,
    pub host: String,
    pub duration_ms: i64,
    pub error_code: Option<ErrorCode>,
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_error: Option<String>,
}

/// One line on what went wrong, without the shim's own `paliadin-shim: <code>:` prefix.
fn detail_of(result: &Result<Reply, TransportError>) -> String {
    match result {
        Ok(r) => {
            let d = r
                .detail()
                .unwrap_or_else(|| format!("exit status {}", r.status));
            match d
                .strip_prefix("paliadin-shim: ")
                .and_then(|rest| rest.split_once(": "))
            {
                Some((code, rest)) if ErrorCode::parse(code).is_some() => rest.to_owned(),
                _ => d,
            }
        }
        Err(e) => e.to_string(),
    }
}

impl Client {
    fn call(
        &self,
        req: &Request,
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Reply, TransportError> {
        let deadline = Instant::now() + timeout;
        self.transport.call(
            req,
            stdin,
            deadline,
            self.cancel.as_ref().map(|c| c.as_fd()),
        )
    }

    /// A call whose only use is its stdout.
    fn simple(&self, req: &Request) -> Result<Vec<u8>, CallError> {
        let result = self.call(req, None, self.timeout);
        match self.transport.error_code(&result) {
            None => Ok(result.map(|r| r.stdout).unwrap_or_default()),
            Some(code) => Err(CallError {
                code,
                detail: detail_of(&result),
            }),
        }
    }

    fn log<T>(
        &mut self,
        f: impl FnOnce(&mut Store) -> Result<T, crate::store::StoreError>,
    ) -> Option<String> {
        match self.store.as_mut() {
            Some(s) => f(s).err().map(|e| e.to_string()),
            None => None,
        }
    }

    /// Runs one turn: row first, then the call, then the row completed.
    /// No progress: `run-turn`, the reply at the end.
    pub fn turn(&mut self, req: &TurnRequest) -> TurnResult {
        self.run_turn(req, None)
    }

    /// [`Client::turn`] with progress: `run-turn-events`, each of the
    /// agent's events handed to `on_event` as it arrives (never the reply
    /// line), then kept in the log with the turn and in the result.
    pub fn turn_with_events(
        &mut self,
        req: &TurnRequest,
        on_event: &mut dyn FnMut(&Event),
    ) -> TurnResult {
        self.run_turn(req, Some(on_event))
    }

    fn run_turn(
        &mut self,
        req: &TurnRequest,
        on_event: Option<&mut dyn FnMut(&Event)>,
    ) -> TurnResult {
        let turn_id = Uuid::new_v4();
        let started = now_ms();
        let new = NewTurn {
            turn_id,
            user_id: req.user_id,
            session: req.session.as_str().to_owned(),
            host: self.transport.host().to_owned(),
            started_ms: started,
            message: req.message.clone(),
            page_origin: req.page_origin.clone(),
        };
        let begin_error = self.log(|s| s.begin_turn(&new));
        // Small messages travel in the argument as the Go service sends
        // them; larger ones on stdin, which has no argv limit.
        let (message, stdin) = if req.message.len() <= MAX_ARG_MESSAGE {
            (MessageSource::Inline(req.message.clone()), None)
        } else {
            (MessageSource::Stdin, Some(req.message.as_bytes()))
        };
        let request = Request::RunTurn {
            events: on_event.is_some(),
            session: req.session.clone(),
            turn: turn_id,
            message,
        };
        let (result, streamed) = match on_event {
            None => (self.call(&request, stdin, self.timeout), None),
            Some(on_event) => {
                let mut st = Streamed::default();
                let deadline = Instant::now() + self.timeout;
                let result = self.transport.call_lines(
                    &request,
                    stdin,
                    deadline,
                    self.cancel.as_ref().map(|c| c.as_fd()),
                    &mut |line| {
                        // A line that is not an event is not ours to show.
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
                (result, Some(st))
            }
        };
        // If the row could not go in first, it goes in whole now.
        let late = begin_error.as_ref().map(|_| &new);
        let mut out = self.complete(
            turn_id,
            req.session.as_str(),
            started,
            &result,
            late,
            streamed,
        );
        if out.log_error.is_some() {
            out.log_error = begin_error.or(out.log_error);
        }
        out
    }

    /// Collects the late reply of a turn that ended in `timeout` and
    /// completes its row. `session` is needed only for a turn not in the log.
    pub fn poll(
        &mut self,
        turn_id: Uuid,
        session: Option<SessionName>,
    ) -> Result<TurnResult, CallError> {
        let row = match self.store.as_ref() {
            Some(s) => s.get(turn_id).map_err(|e| CallError {
                code: ErrorCode::ShimError,
                detail: e.to_string(),
            })?,
            None => None,
        };
        // A turn already collected keeps its reply: nothing to ask the shim.
        if let Some(r) = row.as_ref().filter(|r| r.outcome.status == Status::Ok) {
            return Ok(TurnResult::from_row(r));
        }
        let session = match (&row, session) {
            (Some(r), _) => SessionName::new(&r.turn.session).map_err(|e| CallError {
                code: ErrorCode::InvalidInput,
                detail: e.to_string(),
            })?,
            (None, Some(s)) => s,
            (None, None) => {
                return Err(CallError {
                    code: ErrorCode::InvalidInput,
                    detail: format!("turn {turn_id} is not in the log: give --session"),
                })
            }
        };
        let started = row
            .as_ref()
            .map(|r| r.turn.started_ms)
            .unwrap_or_else(now_ms);
        let result = self.call(
            &Request::Poll {
                session: session.clone(),
                turn: turn_id,
            },
            None,
            self.timeout,
        );
        let code = self.transport.error_code(&result);
        if code.is_some() && row.is_none() {
            return Err(CallError {
                code: code.unwrap_or(ErrorCode::ShimError),
                detail: detail_of(&result),
            });
        }
        // Failing to reach the shim says nothing about the turn, which is
        // still pending on the laptop: its row stays as it is.
        if let Some(
            c @ (ErrorCode::Unreachable
            | ErrorCode::AuthFailed
            | ErrorCode::ConnectionLost
            | ErrorCode::Interrupted),
        ) = code
        {
            return Err(CallError {
                code: c,
                detail: detail_of(&result),
            });
        }
        // Still running on the laptop: say so, and leave the row (and its
        // duration) as it is until the reply is there.
        if code == Some(ErrorCode::Timeout) {
            let mut r = match &row {
                Some(row) => TurnResult::from_row(row),
                None => TurnResult {
                    turn_id: turn_id.to_string(),
                    session: session.as_str().to_owned(),
                    host: self.transport.host().to_owned(),
                    status: Status::Pending,
                    response: None,
                    used_tools: Vec::new(),
                    claimed_tools: None,
                    rows_seen: None,
                    chip_count: None,
                    classifier_tag: None,
                    tokens: None,
                    duration_ms: 0,
                    error_code: None,
                    error_detail: None,
                    log_error: None,
                    still_running: false,
                    events: Vec::new(),
                },
            };
            r.status = Status::Pending;
            r.error_code = Some(ErrorCode::Timeout);
            r.error_detail = Some(STILL_RUNNING.into());
            r.still_running = true;
            return Ok(r);
        }
        // The events a streamed turn left before it timed out still say
        // which tools it used.
        let logged = self
            .store
            .as_ref()
            .and_then(|s| s.events(turn_id).ok())
            .filter(|e| !e.is_empty())
            .map(|events| Streamed {
                events,
                reply: None,
                logged: true,
            });
        let out = self.complete(turn_id, session.as_str(), started, &result, None, logged);
        Ok(out)
    }

    /// Completes the rows of this client's host left `running` by a process
    /// that is gone (killed mid-turn): each is taken over (`pending`,
    /// `interrupted`, with a line on how to poll it), then polled like
    /// [`Client::poll`] (or [`Client::poll_wait`] for `wait`), which makes
    /// it `ok` with the reply the laptop kept. Costs one indexed query, and
    /// no call at all, when there is no such row.
    pub fn complete_stale(
        &mut self,
        wait: Option<Duration>,
    ) -> Vec<(Uuid, Result<TurnResult, CallError>)> {
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

    /// [`Client::poll`] again every second while the turn is still running,
    /// for at most `wait` (stopped early by the cancel fd).
    pub fn poll_wait(
        &mut self,
        turn_id: Uuid,
        session: Option<SessionName>,
        wait: Duration,
    ) -> Result<TurnResult, CallError> {
        let deadline = Instant::now() + wait;
        loop {
            let r = self.poll(turn_id, session.clone())?;
            let left = deadline.saturating_duration_since(Instant::now());
            if !r.still_running || left.is_zero() {
                return Ok(r);
            }
            let pause = left.min(Duration::from_secs(1));
            if let Some(fd) = &self.cancel {
                let mut fds = [rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN)];
                let ts = rustix::event::Timespec::try_from(pause).unwrap_or_default();
                if matches!(rustix::event::poll(&mut fds, Some(&ts)), Ok(n) if n > 0) {
                    return Err(CallError {
                        code: ErrorCode::Interrupted,
                        detail: "stopped while waiting for the reply".into(),
                    });
                }
            } else {
                std::thread::sleep(pause);
            }
        }
    }

    /// Turns a call's result into the turn's outcome and records it.
    fn complete(
        &mut self,
        turn_id: Uuid,
        session: &str,
        started: i64,
        result: &Result<Reply, TransportError>,
        late: Option<&NewTurn>,
        streamed: Option<Streamed>,
    ) -> TurnResult {
        let ended = now_ms();
        let mut code = self.transport.error_code(result);
        let was_streamed = streamed.as_ref().is_some_and(|s| !s.logged);
        let streamed = streamed.unwrap_or_default();
        let logged = streamed.logged;
        let mut stream_detail = None;
        let body = match (code, result) {
            (None, Ok(reply)) if was_streamed && streamed.reply.is_none() => {
                // A stream that ended well must end with its reply.
                code = Some(ErrorCode::ShimError);
                stream_detail = Some("the shim's event stream ended without the reply".to_owned());
                None
            }
            (None, Ok(reply)) => Some(
                streamed
                    .reply
                    .clone()
                    .unwrap_or_else(|| String::from_utf8_lossy(&reply.stdout).into_owned()),
            ),
            _ => None,
        };
        let mut out = TurnResult {
            turn_id: turn_id.to_string(),
            session: session.to_owned(),
            host: self.transport.host().to_owned(),
            status: Status::Ok,
            response: None,
            used_tools: Vec::new(),
            claimed_tools: None,
            rows_seen: None,
            chip_count: None,
            classifier_tag: None,
            tokens: None,
            duration_ms: ended - started,
            error_code: code,
            error_detail: None,
            log_error: None,
            still_running: false,
            events: streamed.events,
        };
        match (code, body) {
            (None, Some(body)) => {
                let p = reply::parse(&body);
                out.response = Some(p.body);
                out.used_tools = if out.events.is_empty() {
                    p.meta.used_tools.clone()
                } else {
                    tools_of(&out.events)
                };
                out.claimed_tools = Some(p.meta.used_tools);
                out.rows_seen = p.meta.rows_seen;
                out.classifier_tag = p.meta.classifier_tag;
                out.chip_count = Some(p.chip_count as i64);
                out.tokens = Some(p.tokens as i64);
            }
            (Some(c), _) => {
                // A timed-out turn, or one whose connection went away after
                // the request went out, goes on on the laptop: `poll`
                // completes it.
                out.status = match c {
                    ErrorCode::Timeout | ErrorCode::ConnectionLost => Status::Pending,
                    _ => Status::Error,
                };
                out.error_detail = Some(match c {
                    ErrorCode::ConnectionLost => format!(
                        "the connection was lost after the request went out ({}); the turn may go on on the laptop: collect its reply with `paliadin-cli poll {turn_id}`",
                        detail_of(result)
                    ),
                    _ => stream_detail.unwrap_or_else(|| detail_of(result)),
                });
                // A failed turn's events still say what it touched.
                out.used_tools = tools_of(&out.events);
            }
            (None, None) => unreachable!("a call without a code has a body"),
        }
        let outcome = Outcome {
            ended_ms: Some(ended),
            status: out.status,
            response: out.response.clone(),
            tokens: out.tokens,
            used_tools: out.used_tools.clone(),
            claimed_tools: out.claimed_tools.clone(),
            rows_seen: out.rows_seen,
            classifier_tag: out.classifier_tag.clone(),
            chip_count: out.chip_count,
            error_code: out.error_code.map(|c| c.as_str().to_owned()),
            error_detail: out.error_detail.clone(),
        };
        let events = &out.events;
        let log_error = self.log(|s| {
            if let Some(new) = late {
                s.begin_turn(new)?;
            }
            if !logged {
                s.record_events(turn_id, events)?;
            }
            s.finish_turn(turn_id, &outcome)
        });
        out.log_error = log_error;
        out
    }

    /// Probes the session (starting it if missing) and records the probe.
    pub fn health(&mut self, session: &SessionName, timeout: Duration) -> Health {
        let start = Instant::now();
        let at = now_ms();
        let result = self.call(
            &Request::Health {
                session: session.clone(),
            },
            None,
            timeout,
        );
        let duration_ms = start.elapsed().as_millis() as i64;
        let mut code = self.transport.error_code(&result);
        if code.is_none() && !matches!(&result, Ok(r) if r.stdout == b"ok\n") {
            code = Some(ErrorCode::ShimError);
        }
        let mut h = Health {
            ok: code.is_none(),
            session: session.as_str().to_owned(),
            host: self.transport.host().to_owned(),
            duration_ms,
            error_code: code,
            detail: code.map(|_| detail_of(&result)),
            log_error: None,
        };
        let probe = Probe {
            session: h.session.clone(),
            host: h.host.clone(),
            at_ms: at,
            duration_ms,
            ok: h.ok,
            error_code: code.map(|c| c.as_str().to_owned()),
            detail: h.detail.clone(),
        };
        h.log_error = self.log(|s| s.record_probe(&probe));
        h
    }

    /// Ends the session and its agent on the laptop.
    pub fn reset(&self, session: &SessionName) -> Result<(), CallError> {
        self.simple(&Request::Reset {
            session: session.clone(),
        })
        .map(drop)
    }

    /// The shim's status object of a session.
    pub fn status(&self, session: &SessionName) -> Result<serde_json::Value, CallError> {
        let out = self.simple(&Request::Status {
            session: session.clone(),
        })?;
        serde_json::from_slice(&out).map_err(|e| CallError {
            code: ErrorCode::ShimError,
            detail: format!("the shim's status is not JSON: {e}"),
        })
    }

    /// The shim's status objects of all its sessions.
    pub fn sessions(&self) -> Result<Vec<serde_json::Value>, CallError> {
        let out = self.simple(&Request::Sessions)?;
        String::from_utf8_lossy(&out)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).map_err(|e| CallError {
                    code: ErrorCode::ShimError,
                    detail: format!("the shim's sessions are not JSON: {e}"),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn used_tools_are_the_tools_that_ran_once_each_in_order() {
        let e = |kind, tool: &str| Event {
            kind,
            at: "t".into(),
            tool: (!tool.is_empty()).then(|| tool.to_owned()),
            target: None,
            detail: None,
            text: None,
        };
        let events = [
            e(Kind::Submitted, ""),
            e(Kind::ToolStarted, "Read"),
            e(Kind::ToolFinished, "Read"),
            // Denied: started only.
            e(Kind::ToolStarted, "Bash"),
            e(Kind::ToolStarted, "Grep"),
            e(Kind::ToolFailed, "Grep"),
            e(Kind::ToolStarted, "Read"),
            e(Kind::ToolFinished, "Read"),
            e(Kind::Replied, ""),
        ];
        assert_eq!(tools_of(&events), ["Read", "Grep"]);
        assert!(tools_of(&[]).is_empty());
    }
}
