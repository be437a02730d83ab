//! Which hook calls and event lines are a session's own (PROTOCOL section
//! 5): every agent start gets a fresh key (32 random bytes, hex) in its
//! environment, `PALIADIN_HOOK_KEY`, and the session's state keeps only its
//! verifier (a SHA-256 of it, `hook.auth`). A `paliadin-shim hook` call whose
//! environment holds no key or another one is refused before it writes
//! anything (exit 0, silent; a line in the session's `refused.log`), so an
//! agent of another session, or anyone else, cannot run the hook with this
//! session's name to forge its events or its reply. Each event line the hook
//! records is signed (HMAC-SHA256 keyed by the verifier), and the stream
//! sends only lines whose signature holds, parsed and serialised again by
//! the shim itself: a line appended by anyone else, one that is not JSON, or
//! one too long is dropped and counted.
//!
//! What it does not stop (README, "What widening the agent's tools costs"):
//! a process of the same user that can read this session's state (the
//! verifier signs lines) or the agent's environment (`/proc/<pid>/environ`,
//! `tmux show-environment`). Claude Code's sandbox denies its commands
//! both; without it, an agent that may run commands is the user.
//!
//! Owns the key, the verifier, the signed line format and the refusal log;
//! never decides what an event means and never prints.

use paliadin_core::event::{Event, Kind};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::state::{SessionDir, TurnDir};

/// The agent's environment variable that carries the key to its hooks.
pub const ENV: &str = "PALIADIN_HOOK_KEY";
/// The longest event line streamed; longer ones are dropped.
pub const MAX_LINE: usize = 8 << 10;
/// Domain of the verifier's hash.
const DOMAIN: &[u8] = b"paliadin hook key v1\0";

/// A key given to one agent start.
pub struct HookKey(String);

impl HookKey {
    /// 32 fresh random bytes, as hex.
    pub fn new() -> std::io::Result<HookKey> {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(HookKey(hex(&b)))
    }

    /// The value of [`ENV`] in the agent's environment.
    pub fn value(&self) -> &str {
        &self.0
    }

    pub fn verifier(&self) -> Verifier {
        Verifier::of(&self.0)
    }
}

/// What the state keeps of a key: enough to check it and sign with it,
/// nothing that gives the key back.
#[derive(Clone, PartialEq, Eq)]
pub struct Verifier([u8; 32]);

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verifier(..)")
    }
}

impl Verifier {
    fn of(key: &str) -> Verifier {
        Verifier(
            Sha256::new()
                .chain_update(DOMAIN)
                .chain_update(key.as_bytes())
                .finalize()
                .into(),
        )
    }

    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    pub fn parse(text: &str) -> Option<Verifier> {
        let t = text.trim();
        if t.len() != 64 {
            return None;
        }
        let mut b = [0u8; 32];
        for (i, out) in b.iter_mut().enumerate() {
            *out = u8::from_str_radix(t.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Verifier(b))
    }

    /// Whether `key` is the key this verifier was made of (in constant time).
    pub fn admits(&self, key: &str) -> bool {
        equal(&Verifier::of(key).0, &self.0)
    }

    fn mac(&self, msg: &[u8]) -> [u8; 32] {
        let mut ipad = [0x36u8; 64];
        let mut opad = [0x5cu8; 64];
        for (i, k) in self.0.iter().enumerate() {
            ipad[i] ^= k;
            opad[i] ^= k;
        }
        let inner = Sha256::new()
            .chain_update(ipad)
            .chain_update(msg)
            .finalize();
        Sha256::new()
            .chain_update(opad)
            .chain_update(inner)
            .finalize()
            .into()
    }

    /// `event` as one signed line of a turn's `events.jsonl`:
    /// `{"event":{…},"mac":"<hex>"}`, the MAC over the event's own bytes.
    pub fn sign(&self, event: &Event) -> Option<String> {
        let body = serde_json::to_string(event).ok()?;
        let mac = hex(&self.mac(body.as_bytes()));
        let raw = RawValue::from_string(body).ok()?;
        serde_json::to_string(&Signed { event: raw, mac }).ok()
    }

    /// The event of a signed line, if the line is within [`MAX_LINE`],
    /// parses, carries this verifier's MAC and is an event a hook records
    /// (never a `reply`, which only the stream's last line is).
    pub fn open(&self, line: &[u8]) -> Option<Event> {
        if line.len() > MAX_LINE {
            return None;
        }
        let s: Signed = serde_json::from_slice(line).ok()?;
        let mac = self.mac(s.event.get().as_bytes());
        if !equal(hex(&mac).as_bytes(), s.mac.as_bytes()) {
            return None;
        }
        let e: Event = serde_json::from_str(s.event.get()).ok()?;
        (e.kind != Kind::Reply && e.text.is_none()).then_some(e)
    }
}

#[derive(Serialize, Deserialize)]
struct Signed {
    event: Box<RawValue>,
    mac: String,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Gives a starting agent of session `s` a fresh key: its verifier replaces
/// the one in the state (an agent started before holds a key that no longer
/// counts). Returns the key for the agent's environment.
pub fn arm(s: &SessionDir) -> std::io::Result<HookKey> {
    let key = HookKey::new()?;
    s.set_hook_verifier(&key.verifier().to_hex())?;
    Ok(key)
}

/// The verifier of the session's agent, if it was started with one.
pub fn verifier(s: &SessionDir) -> Option<Verifier> {
    Verifier::parse(&s.hook_verifier()?)
}

/// Whether a hook call of `event` with `key` (its environment's [`ENV`]) is
/// this session's agent's: the verifier it gives then signs the events it
/// records. A refusal is noted in the session's `refused.log`.
pub fn admit(s: &SessionDir, event: &str, key: Option<&str>) -> Option<Verifier> {
    let ok = verifier(s).filter(|v| key.is_some_and(|k| v.admits(k)));
    if ok.is_none() {
        let why = match key {
            None => "no key",
            Some(_) => "a wrong key",
        };
        s.note_refused(&format!("hook {event}: {why}"));
    }
    ok
}

/// The lines of `raw` (whole lines read from a turn's `events.jsonl`) that
/// the session's agent signed, each parsed and serialised again (escaped by
/// `json_safe`): the only bytes a stream sends. Every other line is dropped
/// and counted in the session's `refused.log`.
pub fn stream(t: &TurnDir, raw: &[u8]) -> Vec<u8> {
    // Called at every wake of a waiter: nothing new, nothing to read.
    if raw.is_empty() {
        return Vec::new();
    }
    let v = t.hook_verifier().as_deref().and_then(Verifier::parse);
    let mut out = Vec::new();
    let mut dropped = 0;
    for line in raw.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
        match v.as_ref().and_then(|v| v.open(line)) {
            Some(e) => {
                if let Ok(j) = serde_json::to_string(&e) {
                    out.extend_from_slice(paliadin_core::text::json_safe(j).as_bytes());
                    out.push(b'\n');
                }
            }
            None => dropped += 1,
        }
    }
    if dropped > 0 {
        t.note_refused(&format!(
            "turn {}: {dropped} event line(s) not signed by the agent's hooks, dropped",
            t.id
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: Kind, target: &str) -> Event {
        Event {
            tool: Some("Read".into()),
            target: Some(target.into()),
            ..Event::new(kind, "2026-01-01T00:00:00.000Z")
        }
    }

    #[test]
    fn a_key_is_fresh_and_only_its_verifier_admits_it() {
        let (a, b) = (HookKey::new().unwrap(), HookKey::new().unwrap());
        assert_eq!(a.value().len(), 64);
        assert_ne!(a.value(), b.value());
        let v = a.verifier();
        assert!(v.admits(a.value()));
        assert!(!v.admits(b.value()));
        assert!(!v.admits(""));
        assert_eq!(Verifier::parse(&v.to_hex()), Some(v.clone()));
        assert!(
            !v.to_hex().contains(a.value()),
            "the verifier is not the key"
        );
        assert_eq!(Verifier::parse("zz"), None);
    }

    #[test]
    fn only_lines_signed_with_the_verifier_open() {
        let v = HookKey::new().unwrap().verifier();
        let other = HookKey::new().unwrap().verifier();
        let e = event(Kind::ToolStarted, "a.csv");
        let line = v.sign(&e).unwrap();
        assert_eq!(v.open(line.as_bytes()), Some(e.clone()));
        assert_eq!(other.open(line.as_bytes()), None, "another session's key");
        // The event edited after signing.
        let forged = line.replace("a.csv", "b.csv");
        assert_eq!(v.open(forged.as_bytes()), None);
        // Bare events, non-JSON, an injected reply, an oversized line.
        let bare = serde_json::to_string(&e).unwrap();
        assert_eq!(v.open(bare.as_bytes()), None);
        assert_eq!(v.open(b"not json at all"), None);
        let mut reply = event(Kind::Reply, "x");
        reply.text = Some("FORGED".into());
        assert_eq!(v.open(v.sign(&reply).unwrap().as_bytes()), None);
        let big = event(Kind::ToolStarted, &"x".repeat(MAX_LINE));
        assert_eq!(v.open(v.sign(&big).unwrap().as_bytes()), None);
    }
}
