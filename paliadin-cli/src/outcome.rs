//! What the shim's answer about a turn means. One pure function,
//! [`outcome`], turns what a call said (an [`Answer`], the reply line of a
//! stream, the agent's events) into the turn's [`Outcome`], for `turn` and
//! for `poll` alike; [`poll_reading`] says what a `poll` answer means for a
//! row already sent; [`hint`] names the command that helps after a failed
//! turn. No call, no clock, no store: everything here is tested without
//! processes.

use paliadin_core::error_code::ErrorCode;
use paliadin_core::event::{Event, Kind};
use paliadin_core::reply;
use uuid::Uuid;

use crate::store::{Outcome, Status};
use crate::transport::Answer;

/// What a call about a turn came back with.
#[derive(Debug, Clone, Copy)]
pub struct Said<'a> {
    /// The call's result.
    pub answer: &'a Answer,
    /// Whether the call was a stream (`run-turn-events`): its reply is its
    /// last line, and a stream that ended well without one is broken.
    pub streamed: bool,
    /// The text of the stream's `reply` line, when one came.
    pub reply_line: Option<&'a str>,
    /// What the agent did, in order (from the stream, or the log).
    pub events: &'a [Event],
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

/// How a turn ended at `ended_ms`, from what the shim said.
pub fn outcome(said: Said<'_>, ended_ms: i64) -> Outcome {
    let a = said.answer;
    let body = match (a.code, said.reply_line) {
        (None, Some(line)) => line.to_owned(),
        // A stream that ended well must end with its reply.
        (None, None) if said.streamed => {
            return Outcome {
                used_tools: tools_of(said.events),
                ..Outcome::failed(
                    ended_ms,
                    ErrorCode::ShimError,
                    "the shim's event stream ended without the reply",
                )
            };
        }
        (None, None) => String::from_utf8_lossy(&a.stdout).into_owned(),
        (Some(code), _) => {
            return Outcome {
                // A failed turn's events still say what it touched.
                used_tools: tools_of(said.events),
                ..Outcome::failed(ended_ms, code, detail(code, &a.detail))
            };
        }
    };
    let p = reply::parse(&body);
    Outcome {
        ended_ms: Some(ended_ms),
        status: Status::Ok,
        response: Some(p.body),
        tokens: Some(p.tokens as i64),
        used_tools: if said.events.is_empty() {
            p.meta.used_tools.clone()
        } else {
            tools_of(said.events)
        },
        claimed_tools: Some(p.meta.used_tools),
        rows_seen: p.meta.rows_seen,
        classifier_tag: p.meta.classifier_tag,
        chip_count: Some(p.chip_count as i64),
        error_code: None,
        error_detail: None,
    }
}

/// A failure's detail as the record keeps it: the shim's words, without
/// the shim's own request in them (its "collect it later with: poll <session>
/// <id>" is for a caller of the shim, not a command of ours: [`hint`] names
/// ours); a lost connection says that the turn may go on.
fn detail(code: ErrorCode, said: &str) -> String {
    let said = said
        .split_once("; collect it later with: poll ")
        .map_or(said, |(head, _)| head);
    match code {
        ErrorCode::ConnectionLost => format!(
            "the connection was lost after the request went out ({said}); the turn may go on on the laptop"
        ),
        _ => said.to_owned(),
    }
}

/// The command that helps after turn `turn_id` failed with `code`, if one
/// does: `poll` for a turn that goes on on the laptop, `attach` for a pane
/// that waits on a person.
pub fn hint(code: ErrorCode, turn_id: Uuid, session: &str) -> Option<String> {
    match code {
        ErrorCode::Timeout | ErrorCode::ConnectionLost => Some(format!(
            "the turn goes on on the laptop; collect its reply with: paliadin-cli poll {turn_id}"
        )),
        ErrorCode::Interrupted => Some(format!(
            "the agent may still answer; collect its reply with: paliadin-cli poll {turn_id}"
        )),
        ErrorCode::Blocked => Some(format!(
            "the pane waits on a person; see it on the laptop with: paliadin-shim attach {session}"
        )),
        _ => None,
    }
}

/// What the shim's answer to `poll` means for a turn already sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollReading {
    /// The turn is over (replied or failed): complete its row.
    Over,
    /// It still runs on the laptop: the row stays as it is.
    StillRunning,
    /// The shim was not reached (or the call was stopped): nothing was
    /// learnt of the turn, whose row stays as it is.
    NotReached(ErrorCode),
}

/// The reading of a `poll` answer with code `code`.
pub fn poll_reading(code: Option<ErrorCode>) -> PollReading {
    match code {
        Some(ErrorCode::Timeout) => PollReading::StillRunning,
        Some(
            c @ (ErrorCode::Unreachable
            | ErrorCode::AuthFailed
            | ErrorCode::ConnectionLost
            | ErrorCode::Interrupted),
        ) => PollReading::NotReached(c),
        _ => PollReading::Over,
    }
}

/// When a turn collected late really ended: its last `replied` or `failed`
/// event (the laptop's clock), kept between `not_before` (the row's start,
/// or the moment a client last saw it running) and `now`; `now` when the
/// events do not say (an agent without hooks).
pub fn ended_at(events: &[Event], not_before: i64, now: i64) -> i64 {
    events
        .iter()
        .rev()
        .find(|e| matches!(e.kind, Kind::Replied | Kind::Failed))
        .and_then(|e| at_ms(&e.at))
        .map_or(now, |t| t.clamp(not_before, now.max(not_before)))
}

/// An event's `at` (RFC 3339 UTC with milliseconds) in ms since the epoch.
fn at_ms(at: &str) -> Option<i64> {
    let rest = at.strip_suffix('Z')?;
    let (whole, frac) = rest.split_once('.').unwrap_or((rest, ""));
    let secs = paliadin_core::timefmt::parse_since(&format!("{whole}Z"), 0).ok()?;
    let ms: i64 = match frac {
        "" => 0,
        f => format!("{f:0<3}").get(..3)?.parse().ok()?,
    };
    Some(secs + ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: Uuid = Uuid::from_u128(0x3f2a9c1e_0000_4000_8000_000000000001);

    fn ev(kind: Kind, tool: Option<&str>, at: &str) -> Event {
        Event {
            kind,
            at: at.into(),
            tool: tool.map(str::to_owned),
            target: None,
            detail: None,
            id: None,
            text: None,
        }
    }

    fn said<'a>(a: &'a Answer, events: &'a [Event]) -> Said<'a> {
        Said {
            answer: a,
            streamed: false,
            reply_line: None,
            events,
        }
    }

    fn ok(stdout: &str) -> Answer {
        Answer {
            stdout: stdout.as_bytes().to_vec(),
            ..Answer::default()
        }
    }

    fn failed(code: ErrorCode, detail: &str) -> Answer {
        Answer {
            code: Some(code),
            detail: detail.into(),
            ..Answer::default()
        }
    }

    #[test]
    fn a_reply_is_parsed_and_its_trailer_kept_apart() {
        let a = ok("Two [A](chip:a/1) [B](chip:b/2)\n<!-- paliadin-meta: {\"used_tools\":[\"sql\"],\"rows_seen\":3} -->\n");
        let o = outcome(said(&a, &[]), 5);
        assert_eq!(o.status, Status::Ok);
        assert_eq!(o.ended_ms, Some(5));
        assert_eq!(
            o.response.as_deref(),
            Some("Two [A](chip:a/1) [B](chip:b/2)")
        );
        assert_eq!((o.chip_count, o.rows_seen), (Some(2), Some(3)));
        // No events: the trailer's claim is all there is.
        assert_eq!(o.used_tools, ["sql"]);
        assert_eq!(o.claimed_tools, Some(vec!["sql".to_owned()]));
        assert_eq!(o.error_code, None);
    }

    #[test]
    fn events_say_which_tools_ran_whatever_the_trailer_claims() {
        let a = ok("x\n<!-- paliadin-meta: {\"used_tools\":[\"sql\"]} -->");
        let events = [
            ev(Kind::ToolStarted, Some("Read"), "t"),
            ev(Kind::ToolFinished, Some("Read"), "t"),
            ev(Kind::ToolStarted, Some("Bash"), "t"),
            ev(Kind::ToolStarted, Some("Grep"), "t"),
            ev(Kind::ToolFailed, Some("Grep"), "t"),
            ev(Kind::ToolFinished, Some("Read"), "t"),
        ];
        let o = outcome(said(&a, &events), 1);
        assert_eq!(o.used_tools, ["Read", "Grep"]);
        assert_eq!(o.claimed_tools, Some(vec!["sql".to_owned()]));
        assert!(tools_of(&[]).is_empty());
    }

    #[test]
    fn a_stream_replies_by_its_last_line_or_is_broken() {
        let a = ok("{\"kind\":\"reply\"}\n");
        let mut s = said(&a, &[]);
        s.streamed = true;
        s.reply_line = Some("hello");
        assert_eq!(outcome(s, 1).response.as_deref(), Some("hello"));
        s.reply_line = None;
        let o = outcome(s, 1);
        assert_eq!(
            (o.status, o.error_code),
            (Status::Error, Some(ErrorCode::ShimError))
        );
    }

    #[test]
    fn failures_get_their_status_and_words() {
        let cases = [
            (ErrorCode::Timeout, Status::Pending),
            (ErrorCode::ConnectionLost, Status::Pending),
            (ErrorCode::AuthFailed, Status::Error),
            (ErrorCode::Blocked, Status::Error),
            (ErrorCode::Interrupted, Status::Error),
        ];
        for (code, status) in cases {
            let a = failed(code, "said");
            let events = [ev(Kind::ToolFinished, Some("Read"), "t")];
            let o = outcome(said(&a, &events), 9);
            assert_eq!((o.status, o.error_code), (status, Some(code)), "{code}");
            assert_eq!(o.response, None);
            assert_eq!(o.used_tools, ["Read"], "{code}");
        }
        let a = failed(
            ErrorCode::Timeout,
            "no reply within 60 s; collect it later with: poll ops 3f2a",
        );
        let o = outcome(said(&a, &[]), 1);
        assert_eq!(o.error_detail.as_deref(), Some("no reply within 60 s"));
        let a = failed(ErrorCode::ConnectionLost, "closed");
        let d = outcome(said(&a, &[]), 1).error_detail.unwrap();
        assert!(d.contains("(closed)") && d.contains("may go on"), "{d}");
    }

    #[test]
    fn hints_name_commands_of_ours() {
        let h = hint(ErrorCode::Timeout, ID, "ops").unwrap();
        assert!(h.ends_with(&format!("paliadin-cli poll {ID}")), "{h}");
        assert!(hint(ErrorCode::Blocked, ID, "ops")
            .unwrap()
            .contains("paliadin-shim attach ops"));
        assert_eq!(hint(ErrorCode::AgentError, ID, "ops"), None);
    }

    #[test]
    fn poll_answers() {
        assert_eq!(poll_reading(None), PollReading::Over);
        assert_eq!(poll_reading(Some(ErrorCode::AgentError)), PollReading::Over);
        assert_eq!(
            poll_reading(Some(ErrorCode::AgentUnavailable)),
            PollReading::Over
        );
        assert_eq!(
            poll_reading(Some(ErrorCode::Timeout)),
            PollReading::StillRunning
        );
        for c in [
            ErrorCode::Unreachable,
            ErrorCode::AuthFailed,
            ErrorCode::ConnectionLost,
            ErrorCode::Interrupted,
        ] {
            assert_eq!(poll_reading(Some(c)), PollReading::NotReached(c));
        }
    }

    #[test]
    fn a_late_turn_ends_when_it_replied_not_when_it_was_polled() {
        let t = |s| paliadin_core::timefmt::parse_since(s, 0).unwrap();
        let start = t("2026-11-30T12:00:00Z");
        let now = t("2026-11-30T15:00:00Z");
        let events = [
            ev(Kind::Submitted, None, "2026-11-30T12:00:00.100Z"),
            ev(Kind::Replied, None, "2026-11-30T12:01:04.250Z"),
        ];
        assert_eq!(ended_at(&events, start, now), start + 64_250);
        // No word of its end: when it was found.
        assert_eq!(ended_at(&events[..1], start, now), now);
        // A clock ahead or behind is kept within what is known.
        let ahead = [ev(Kind::Replied, None, "2026-12-01T00:00:00.000Z")];
        assert_eq!(ended_at(&ahead, start, now), now);
        let behind = [ev(Kind::Failed, None, "2026-11-29T00:00:00.5Z")];
        assert_eq!(ended_at(&behind, start, now), start);
    }
}
