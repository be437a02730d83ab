//! The request grammar of PROTOCOL section 1: a typed [`Request`], parsed in
//! exactly one place ([`Request::parse`]) and rendered in exactly one place
//! ([`Request::to_words`]), so that what the client sends is what the shim
//! reads. Never reads stdin or the environment itself; the caller hands in the
//! words and, for `-`, reads the message with [`decode_stdin_message`].

use base64::Engine as _;
use std::fmt;
use uuid::Uuid;

use crate::session::{SessionName, SessionNameError};

/// Largest message carried in the argument, in bytes of UTF-8 (before base64).
pub const MAX_ARG_MESSAGE: usize = 64 * 1024;
/// Largest message carried on stdin, in bytes of UTF-8.
pub const MAX_STDIN_MESSAGE: usize = 1024 * 1024;

/// Where a `run-turn` message comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageSource {
    /// Decoded from the base64 argument.
    Inline(String),
    /// To be read from stdin (`-`).
    Stdin,
}

/// One request to the shim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Health {
        session: SessionName,
    },
    /// `run-turn`, or with `events` `run-turn-events`: the same turn, its
    /// progress streamed as JSON lines and the reply as the last line.
    RunTurn {
        session: SessionName,
        turn: Uuid,
        message: MessageSource,
        events: bool,
    },
    Reset {
        session: SessionName,
    },
    Poll {
        session: SessionName,
        turn: Uuid,
    },
    /// `cancel`: stops the session's current turn of that id (issue 14).
    Cancel {
        session: SessionName,
        turn: Uuid,
    },
    Status {
        session: SessionName,
    },
    Sessions,
    Version,
    /// `approve <session> <turn-id> <request-id> allow|deny`: the answer to
    /// a pending permission request of the session's current turn.
    Approve {
        session: SessionName,
        turn: Uuid,
        request: u32,
        allow: bool,
    },
}

/// The protocol verbs, in the order of PROTOCOL section 1.
pub const VERBS: [&str; 10] = [
    "health",
    "run-turn",
    "run-turn-events",
    "reset",
    "poll",
    "cancel",
    "status",
    "sessions",
    "version",
    "approve",
];

/// Why a request was refused (exit 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("empty request: expected one of {}", VERBS.join(", "))]
    Empty,
    #[error("unknown verb {verb:?}: expected one of {}", VERBS.join(", "))]
    UnknownVerb { verb: String },
    #[error("{verb} takes {expected}, got {got} argument(s)")]
    Arity {
        verb: &'static str,
        expected: &'static str,
        got: usize,
    },
    #[error("invalid session name: {0}")]
    Session(SessionNameError),
    #[error("invalid turn id: expected a lowercase canonical UUID")]
    TurnId,
    #[error("invalid message: not standard padded base64")]
    Base64,
    #[error("invalid message: not UTF-8 text")]
    Utf8,
    #[error("invalid message: empty")]
    EmptyMessage,
    #[error("invalid permission request id: expected a number from 1 to 9999")]
    RequestId,
    #[error("invalid answer {0:?}: expected allow or deny")]
    Answer(String),
    #[error("message too large: {got} bytes, the limit is {limit}")]
    TooLarge { got: usize, limit: usize },
}

/// Size limits in force (configurable downwards only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub arg_message: usize,
    pub stdin_message: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            arg_message: MAX_ARG_MESSAGE,
            stdin_message: MAX_STDIN_MESSAGE,
        }
    }
}

impl Limits {
    /// The protocol's limits, lowered to `max` where that is smaller.
    pub fn capped(max: Option<usize>) -> Limits {
        let d = Limits::default();
        match max {
            Some(m) => Limits {
                arg_message: d.arg_message.min(m),
                stdin_message: d.stdin_message.min(m),
            },
            None => d,
        }
    }
}

/// Splits `SSH_ORIGINAL_COMMAND` on ASCII spaces and tabs: no quoting, no shell.
pub fn split_ssh_command(s: &str) -> Vec<&str> {
    s.split([' ', '\t']).filter(|w| !w.is_empty()).collect()
}

/// Parses a canonical lowercase 36-character UUID, and nothing looser.
pub fn parse_turn_id(s: &str) -> Result<Uuid, RequestError> {
    let ok = s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        });
    if !ok {
        return Err(RequestError::TurnId);
    }
    Uuid::parse_str(s).map_err(|_| RequestError::TurnId)
}

/// A permission request's id within its turn: 1 to 9999, no leading zero.
pub fn parse_request_id(s: &str) -> Result<u32, RequestError> {
    let ok =
        (1..=4).contains(&s.len()) && !s.starts_with('0') && s.bytes().all(|b| b.is_ascii_digit());
    if !ok {
        return Err(RequestError::RequestId);
    }
    s.parse().map_err(|_| RequestError::RequestId)
}

/// Checks decoded message bytes: UTF-8, non-empty, within `limit`.
pub fn check_message(bytes: Vec<u8>, limit: usize) -> Result<String, RequestError> {
    if bytes.len() > limit {
        return Err(RequestError::TooLarge {
            got: bytes.len(),
            limit,
        });
    }
    let text = String::from_utf8(bytes).map_err(|_| RequestError::Utf8)?;
    if text.trim().is_empty() {
        return Err(RequestError::EmptyMessage);
    }
    Ok(text)
}

/// Reads a `-` message from `input`, at most `limit` bytes (one more is
/// read to tell "too large" from "exactly the limit").
pub fn decode_stdin_message(
    input: &mut dyn std::io::Read,
    limit: usize,
) -> Result<String, RequestError> {
    use std::io::Read as _;
    let mut buf = Vec::new();
    let mut taken = input.take(limit as u64 + 1);
    if taken.read_to_end(&mut buf).is_err() {
        return Err(RequestError::Utf8);
    }
    if buf.len() > limit {
        // Report what we know without draining an unbounded stream.
        return Err(RequestError::TooLarge {
            got: buf.len(),
            limit,
        });
    }
    check_message(buf, limit)
}

fn arity(
    verb: &'static str,
    expected: &'static str,
    args: &[&str],
    n: usize,
) -> Result<(), RequestError> {
    if args.len() == n {
        Ok(())
    } else {
        Err(RequestError::Arity {
            verb,
            expected,
            got: args.len(),
        })
    }
}

impl Request {
    /// Parses the words of a request (verb first), checking each argument.
    pub fn parse(words: &[&str], limits: Limits) -> Result<Request, RequestError> {
        let (verb, args) = words.split_first().ok_or(RequestError::Empty)?;
        let session = |i: usize| SessionName::new(args[i]).map_err(RequestError::Session);
        Ok(match *verb {
            "health" => {
                arity("health", "<session>", args, 1)?;
                Request::Health {
                    session: session(0)?,
                }
            }
            "reset" => {
                arity("reset", "<session>", args, 1)?;
                Request::Reset {
                    session: session(0)?,
                }
            }
            "status" => {
                arity("status", "<session>", args, 1)?;
                Request::Status {
                    session: session(0)?,
                }
            }
            "poll" => {
                arity("poll", "<session> <turn-id>", args, 2)?;
                Request::Poll {
                    session: session(0)?,
                    turn: parse_turn_id(args[1])?,
                }
            }
            "cancel" => {
                arity("cancel", "<session> <turn-id>", args, 2)?;
                Request::Cancel {
                    session: session(0)?,
                    turn: parse_turn_id(args[1])?,
                }
            }
            verb @ ("run-turn" | "run-turn-events") => {
                let events = verb == "run-turn-events";
                let name = if events {
                    "run-turn-events"
                } else {
                    "run-turn"
                };
                arity(name, "<session> <turn-id> <message-b64|->", args, 3)?;
                let session = session(0)?;
                let turn = parse_turn_id(args[1])?;
                let message = if args[2] == "-" {
                    MessageSource::Stdin
                } else {
                    MessageSource::Inline(decode_b64_message(args[2], limits.arg_message)?)
                };
                Request::RunTurn {
                    session,
                    turn,
                    message,
                    events,
                }
            }
            "sessions" => {
                arity("sessions", "no arguments", args, 0)?;
                Request::Sessions
            }
            "version" => {
                arity("version", "no arguments", args, 0)?;
                Request::Version
            }
            "approve" => {
                arity(
                    "approve",
                    "<session> <turn-id> <request-id> allow|deny",
                    args,
                    4,
                )?;
                Request::Approve {
                    session: session(0)?,
                    turn: parse_turn_id(args[1])?,
                    request: parse_request_id(args[2])?,
                    allow: match args[3] {
                        "allow" => true,
                        "deny" => false,
                        other => return Err(RequestError::Answer(truncate(other, 20))),
                    },
                }
            }
            other => {
                return Err(RequestError::UnknownVerb {
                    verb: truncate(other, 40),
                })
            }
        })
    }

    /// The words that [`Request::parse`] reads back as this request. An
    /// inline message is base64-encoded here, and only here.
    pub fn to_words(&self) -> Vec<String> {
        let s = |n: &SessionName| n.as_str().to_owned();
        match self {
            Request::Health { session } => vec!["health".into(), s(session)],
            Request::Reset { session } => vec!["reset".into(), s(session)],
            Request::Status { session } => vec!["status".into(), s(session)],
            Request::Poll { session, turn } => vec!["poll".into(), s(session), turn.to_string()],
            Request::Cancel { session, turn } => {
                vec!["cancel".into(), s(session), turn.to_string()]
            }
            Request::RunTurn {
                session,
                turn,
                message,
                events,
            } => {
                let m = match message {
                    MessageSource::Inline(text) => {
                        base64::engine::general_purpose::STANDARD.encode(text)
                    }
                    MessageSource::Stdin => "-".into(),
                };
                let verb = if *events {
                    "run-turn-events"
                } else {
                    "run-turn"
                };
                vec![verb.into(), s(session), turn.to_string(), m]
            }
            Request::Sessions => vec!["sessions".into()],
            Request::Version => vec!["version".into()],
            Request::Approve {
                session,
                turn,
                request,
                allow,
            } => vec![
                "approve".into(),
                s(session),
                turn.to_string(),
                request.to_string(),
                if *allow { "allow" } else { "deny" }.into(),
            ],
        }
    }

    /// The verb of this request.
    pub fn verb(&self) -> &'static str {
        match self {
            Request::Health { .. } => "health",
            Request::RunTurn { events: false, .. } => "run-turn",
            Request::RunTurn { events: true, .. } => "run-turn-events",
            Request::Reset { .. } => "reset",
            Request::Poll { .. } => "poll",
            Request::Cancel { .. } => "cancel",
            Request::Status { .. } => "status",
            Request::Sessions => "sessions",
            Request::Version => "version",
            Request::Approve { .. } => "approve",
        }
    }

    /// The session this request names, if any.
    pub fn session(&self) -> Option<&SessionName> {
        match self {
            Request::Health { session }
            | Request::RunTurn { session, .. }
            | Request::Reset { session }
            | Request::Poll { session, .. }
            | Request::Cancel { session, .. }
            | Request::Status { session }
            | Request::Approve { session, .. } => Some(session),
            Request::Sessions | Request::Version => None,
        }
    }
}

impl fmt::Display for Request {
    /// The request as one line, with an inline message elided (for logs).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut words = self.to_words();
        if let Request::RunTurn {
            message: MessageSource::Inline(_),
            ..
        } = self
        {
            words[3] = "<message>".into();
        }
        f.write_str(&words.join(" "))
    }
}

fn decode_b64_message(arg: &str, limit: usize) -> Result<String, RequestError> {
    // Bound the work before decoding: base64 is 4 characters per 3 bytes.
    let max_encoded = limit.div_ceil(3) * 4;
    if arg.len() > max_encoded {
        return Err(RequestError::TooLarge {
            got: arg.len() / 4 * 3,
            limit,
        });
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(arg)
        .map_err(|_| RequestError::Base64)?;
    check_message(bytes, limit)
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0b7c2f3e-1d2a-4b5c-8d9e-0f1a2b3c4d5e";

    fn parse(line: &str) -> Result<Request, RequestError> {
        Request::parse(&split_ssh_command(line), Limits::default())
    }

    #[test]
    fn approve_takes_a_request_number_and_allow_or_deny() {
        let ok = parse(&format!("approve a {ID} 3 deny")).unwrap();
        assert!(matches!(
            ok,
            Request::Approve {
                request: 3,
                allow: false,
                ..
            }
        ));
        for bad in ["0", "01", "10000", "-1", "x", ""] {
            let line = format!("approve a {ID} {bad} allow");
            assert!(parse(&line).is_err(), "{line}");
        }
        assert_eq!(
            parse(&format!("approve a {ID} 1 yes")).unwrap_err(),
            RequestError::Answer("yes".into())
        );
        assert!(matches!(
            parse(&format!("approve a {ID} 1")).unwrap_err(),
            RequestError::Arity { .. }
        ));
    }

    #[test]
    fn every_verb_round_trips() {
        let s = SessionName::new("a.b").unwrap();
        let turn = parse_turn_id(ID).unwrap();
        let all = [
            Request::Health { session: s.clone() },
            Request::Reset { session: s.clone() },
            Request::Status { session: s.clone() },
            Request::Poll {
                session: s.clone(),
                turn,
            },
            Request::Cancel {
                session: s.clone(),
                turn,
            },
            Request::RunTurn {
                session: s.clone(),
                turn,
                message: MessageSource::Inline("héllo\n; C-c".into()),
                events: false,
            },
            Request::RunTurn {
                session: s.clone(),
                turn,
                message: MessageSource::Stdin,
                events: false,
            },
            Request::RunTurn {
                session: s.clone(),
                turn,
                message: MessageSource::Stdin,
                events: true,
            },
            Request::Sessions,
            Request::Version,
            Request::Approve {
                session: s.clone(),
                turn,
                request: 12,
                allow: true,
            },
            Request::Approve {
                session: s.clone(),
                turn,
                request: 1,
                allow: false,
            },
        ];
        for r in all {
            let line = r.to_words().join(" ");
            assert_eq!(parse(&line).unwrap(), r, "{line}");
        }
    }

    #[test]
    fn tabs_and_runs_of_spaces_separate_words() {
        assert_eq!(
            parse("health\t  s ").unwrap(),
            Request::Health {
                session: SessionName::new("s").unwrap()
            }
        );
    }

    #[test]
    fn refuses_bad_requests() {
        type Check = fn(&RequestError) -> bool;
        let cases: &[(&str, Check)] = &[
            ("", |e| matches!(e, RequestError::Empty)),
            ("attach s", |e| {
                matches!(e, RequestError::UnknownVerb { .. })
            }),
            ("hook Stop", |e| {
                matches!(e, RequestError::UnknownVerb { .. })
            }),
            ("health", |e| matches!(e, RequestError::Arity { .. })),
            ("health a b", |e| matches!(e, RequestError::Arity { .. })),
            ("sessions x", |e| matches!(e, RequestError::Arity { .. })),
            ("health a/b", |e| matches!(e, RequestError::Session(_))),
            ("poll s 0B7C2F3E-1D2A-4B5C-8D9E-0F1A2B3C4D5E", |e| {
                matches!(e, RequestError::TurnId)
            }),
            ("poll s {0b7c2f3e-1d2a-4b5c-8d9e-0f1a2b3c4d5e}", |e| {
                matches!(e, RequestError::TurnId)
            }),
            ("poll s 0b7c2f3e1d2a4b5c8d9e0f1a2b3c4d5e", |e| {
                matches!(e, RequestError::TurnId)
            }),
            ("cancel s", |e| matches!(e, RequestError::Arity { .. })),
            ("cancel s not-a-uuid", |e| matches!(e, RequestError::TurnId)),
        ];
        for (line, ok) in cases {
            let e = parse(line).unwrap_err();
            assert!(ok(&e), "{line:?} gave {e:?}");
        }
        let bad_b64 = [
            ("aGk", RequestError::Base64),
            ("a$==", RequestError::Base64),
            ("//79", RequestError::Utf8),
            ("ICA=", RequestError::EmptyMessage),
        ];
        for (b, want) in bad_b64 {
            assert_eq!(
                parse(&format!("run-turn s {ID} {b}")).unwrap_err(),
                want,
                "{b}"
            );
        }
    }

    #[test]
    fn size_limits_hold_at_the_edge() {
        let exact = "x".repeat(MAX_ARG_MESSAGE);
        let enc = base64::engine::general_purpose::STANDARD.encode(&exact);
        assert!(parse(&format!("run-turn s {ID} {enc}")).is_ok());
        let over =
            base64::engine::general_purpose::STANDARD.encode("x".repeat(MAX_ARG_MESSAGE + 1));
        assert!(matches!(
            parse(&format!("run-turn s {ID} {over}")),
            Err(RequestError::TooLarge { .. })
        ));
        let small = Limits::capped(Some(10));
        let r = Request::parse(
            &[
                "run-turn",
                "s",
                ID,
                &base64::engine::general_purpose::STANDARD.encode("01234567890"),
            ],
            small,
        );
        assert!(matches!(r, Err(RequestError::TooLarge { .. })));
        let mut big = std::io::Cursor::new(vec![b'a'; 11]);
        assert!(matches!(
            decode_stdin_message(&mut big, 10),
            Err(RequestError::TooLarge { .. })
        ));
        let mut fits = std::io::Cursor::new(vec![b'a'; 10]);
        assert_eq!(decode_stdin_message(&mut fits, 10).unwrap(), "a".repeat(10));
    }
}

#[cfg(test)]
mod fuzz {
    //! A deterministic fuzz of the grammar: random words, from bytes that
    //! matter to it, must never panic, and whatever parses must render back
    //! to words that parse to the same request.
    use super::*;

    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
            from[(self.next() % from.len() as u64) as usize]
        }
    }

    #[test]
    fn random_requests_never_panic_and_round_trip() {
        let verbs = [
            "health", "run-turn", "reset", "poll", "cancel", "status", "sessions", "version",
            "attach", "", "RUN-TURN",
        ];
        let parts = [
            "s",
            "a.b",
            "..",
            "-",
            "x/y",
            "ü",
            "0b7c2f3e-1d2a-4b5c-8d9e-0f1a2b3c4d5e",
            "0B7C2F3E-1D2A-4B5C-8D9E-0F1A2B3C4D5E",
            "aGk=",
            "aGk",
            "=",
            "////",
            "8J+Ygg==",
            "AA==",
            "gA==",
            "\u{0}",
            "\t",
            ";",
            "C-c",
        ];
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut parsed = 0;
        for _ in 0..50_000 {
            let n = (rng.next() % 5) as usize;
            let mut words = vec![rng.pick(&verbs)];
            for _ in 0..n {
                words.push(rng.pick(&parts));
            }
            if let Ok(req) = Request::parse(&words, Limits::default()) {
                parsed += 1;
                let back = req.to_words();
                let back: Vec<&str> = back.iter().map(String::as_str).collect();
                assert_eq!(
                    Request::parse(&back, Limits::default()).as_ref(),
                    Ok(&req),
                    "{words:?}"
                );
            }
        }
        assert!(
            parsed > 1000,
            "the fuzz reached valid requests too ({parsed})"
        );
    }

    #[test]
    fn random_command_lines_never_panic() {
        let alphabet: Vec<char> = " \t-=/+.:_aZ09ü日\u{0}\u{7f}\u{85}\\\"'$;"
            .chars()
            .collect();
        let mut rng = XorShift(42);
        for _ in 0..20_000 {
            let len = (rng.next() % 80) as usize;
            let line: String = (0..len)
                .map(|_| alphabet[(rng.next() % alphabet.len() as u64) as usize])
                .collect();
            let _ = Request::parse(&split_ssh_command(&line), Limits::default());
            let _ = crate::envelope::turn_of_prompt(&line);
            let _ = crate::reply::parse(&line);
        }
    }
}
