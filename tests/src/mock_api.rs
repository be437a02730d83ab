//! A mock Anthropic Messages API on loopback, for running the real Claude
//! Code against: `POST /v1/messages` (any query string) answered as
//! server-sent events when the request asks for `stream`, else as one JSON
//! message. Every request is recorded (method, path, headers of interest,
//! the whole JSON body, when it arrived and when its answer ended), in
//! memory and optionally as JSONL, with accessors that wait on a condition
//! variable instead of sleeping.
//!
//! What to answer is scripted per turn by `mock: ...` lines in the text of
//! the conversation's last user prompt, so parallel sessions never share
//! state ([`Directive`] lists them). Without a directive the answer echoes a
//! digest of the message ([`echo_of`]) and ends with a paliadin trailer.
//!
//! It is also the HTTPS proxy of the claude it serves ([`crate::claude`]
//! sets `HTTPS_PROXY` to it): a `CONNECT host:port` is recorded (kind
//! `connect`) and refused, so that anything claude asks of a host other
//! than the base URL shows in the log instead of failing unseen offline.
//!
//! Std only: threads, `TcpListener`, HTTP/1.1 with keep-alive, requests with
//! `Content-Length` or chunked bodies, responses with `Content-Length` or
//! chunked. It never reaches outside loopback and never reads a file but
//! what it is asked to log to.

use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The trailer line the mock's default answers end with.
pub const TRAILER: &str = r#"<!-- paliadin-meta: {"used_tools":[],"classifier_tag":"mock"} -->"#;

/// Request headers worth keeping (lower case).
const HEADERS_KEPT: &[&str] = &[
    "anthropic-version",
    "anthropic-beta",
    "user-agent",
    "content-type",
    "x-app",
    "x-stainless-retry-count",
    "x-stainless-timeout",
];

/// One request as the mock saw it.
#[derive(Debug, Clone, Serialize)]
pub struct Request {
    /// 0, 1, 2, … in order of arrival.
    pub seq: usize,
    pub method: String,
    /// The path with its query string; for a `CONNECT`, `host:port`.
    pub path: String,
    /// The headers of interest; `authorization` and `x-api-key` only as
    /// far as they tell the kind of credential (see [`credential_kind`]).
    pub headers: BTreeMap<String, String>,
    /// The JSON body (`null` when there was none or it was not JSON).
    pub body: Value,
    /// Milliseconds since the mock started, when the request had been read.
    pub arrived_ms: f64,
    /// Milliseconds since the mock started, when its answer was written whole.
    pub answered_ms: Option<f64>,
    /// The HTTP status answered.
    pub status: Option<u16>,
    /// The `request-id` header answered (`req_mock_<seq>`): what Claude
    /// Code's transcript records as `requestId`.
    pub request_id: String,
    /// `message` (a model call with tools), `side` (a model call without
    /// tools, answered harmlessly), `count_tokens`, `control` (the mock's
    /// own `/mock/…` endpoints), `connect` (a proxy `CONNECT` to a host
    /// off the box, refused) or `other`.
    pub kind: String,
    /// The text of the last user prompt, pasted-content wrappers removed
    /// (see [`prompt_text`]); empty for anything but model calls.
    pub prompt: String,
    /// The plan-limit headers answered (`anthropic-ratelimit-unified-*`,
    /// `retry-after`); empty when the mock reported no limits.
    pub limit_headers: BTreeMap<String, String>,
    /// The usage the answer reported (`input_tokens`, `output_tokens`,
    /// `cache_read_input_tokens`, `cache_creation_input_tokens`); `null` for
    /// an error or anything but a model call.
    pub usage: Value,
}

impl Request {
    /// Whether this is a model call (`POST /v1/messages`).
    pub fn is_model_call(&self) -> bool {
        self.kind == "message" || self.kind == "side"
    }

    /// The message of a paliadin turn: the prompt without the envelope's
    /// first line, when it has one.
    pub fn message(&self) -> &str {
        strip_envelope(&self.prompt)
    }

    /// The paliadin turn id the prompt carries (`[PALIADIN:<id>]`), if any.
    pub fn turn(&self) -> Option<String> {
        turn_in(&self.prompt)
    }

    /// How long the mock took from request to the end of its answer.
    pub fn answer_ms(&self) -> Option<f64> {
        self.answered_ms.map(|a| a - self.arrived_ms)
    }

    /// The raw text of the last user message as the API received it (with
    /// any `<pasted_content>` wrapper still in it).
    pub fn raw_last_user_text(&self) -> String {
        last_user_text(&self.body, false)
    }
}

/// How the mock treats side requests (model calls that offer no tools:
/// titles, summaries, classifiers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SideRequests {
    /// Answer them with a short harmless text, ignoring directives.
    Answer,
    /// Treat them like any other model call.
    Script,
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A claude.ai plan's rolling window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The five-hour window ("session limit").
    FiveHour,
    /// The seven-day window ("weekly limit").
    SevenDay,
}

impl Window {
    /// The window's name in the `representative-claim` header.
    pub fn claim(self) -> &'static str {
        match self {
            Window::FiveHour => "five_hour",
            Window::SevenDay => "seven_day",
        }
    }

    /// The window's infix in the header names (`-5h-`, `-7d-`).
    pub fn infix(self) -> &'static str {
        match self {
            Window::FiveHour => "5h",
            Window::SevenDay => "7d",
        }
    }

    fn parse(s: &str) -> Option<Window> {
        match s {
            "5h" | "five_hour" => Some(Window::FiveHour),
            "7d" | "seven_day" => Some(Window::SevenDay),
            _ => None,
        }
    }
}

/// One window's standing: the fraction used and when it resets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Standing {
    /// Fraction of the window used, 0.0 to 1.0.
    pub utilization: f64,
    /// When the window resets, Unix seconds.
    pub resets_at: u64,
}

/// A claude.ai subscription's plan limits as api.anthropic.com reports them
/// on every answer to `POST /v1/messages`: the `anthropic-ratelimit-unified-*`
/// headers ([`Limits::headers`]). Claude Code reads them only in a claude.ai
/// session (not with an API key or `ANTHROPIC_AUTH_TOKEN`).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub five_hour: Standing,
    pub seven_day: Standing,
    /// The limit reached on this window: every model call is answered 429
    /// `rate_limit_error` with `status: rejected` and that window's reset.
    pub reached: Option<Window>,
}

impl Limits {
    /// Under the limits: `five_hour` and `seven_day` used (fractions), the
    /// windows resetting in 5 hours and 7 days.
    pub fn under(five_hour: f64, seven_day: f64) -> Limits {
        let now = unix_now();
        Limits {
            five_hour: Standing {
                utilization: five_hour,
                resets_at: now + 5 * 3600,
            },
            seven_day: Standing {
                utilization: seven_day,
                resets_at: now + 7 * 86400,
            },
            reached: None,
        }
    }

    /// The limit of `window` reached, resetting at `resets_at` (Unix seconds).
    pub fn reached(window: Window, resets_at: u64) -> Limits {
        let mut l = Limits::under(0.3, 0.3);
        l.reached = Some(window);
        *l.standing_mut(window) = Standing {
            utilization: 1.0,
            resets_at,
        };
        l
    }

    pub fn standing(&self, window: Window) -> Standing {
        match window {
            Window::FiveHour => self.five_hour,
            Window::SevenDay => self.seven_day,
        }
    }

    fn standing_mut(&mut self, window: Window) -> &mut Standing {
        match window {
            Window::FiveHour => &mut self.five_hour,
            Window::SevenDay => &mut self.seven_day,
        }
    }

    /// The window the headers speak for: the reached one, else the fuller
    /// (the five-hour one on a tie).
    pub fn representative(&self) -> Window {
        self.reached
            .unwrap_or(if self.seven_day.utilization > self.five_hour.utilization {
                Window::SevenDay
            } else {
                Window::FiveHour
            })
    }

    /// The response headers, in the shape api.anthropic.com sends a Max
    /// subscriber without extra usage (a capture of 2026-05: status,
    /// per-window status, reset and utilization, representative claim and
    /// its reset, fallback percentage, overage rejected). Past 75 % of a
    /// window its status is `allowed_warning` with a `surpassed-threshold`;
    /// at the limit `status` is `rejected`, with `retry-after` (seconds
    /// until the reset), as Claude Code's own limit simulator sends it.
    pub fn headers(&self) -> Vec<(String, String)> {
        let h = |k: &str| format!("anthropic-ratelimit-unified-{k}");
        let rep = self.representative();
        let mut warned = false;
        let mut v = Vec::new();
        for w in [Window::FiveHour, Window::SevenDay] {
            let st = self.standing(w);
            let status = if self.reached == Some(w) {
                "rejected"
            } else if st.utilization >= 0.75 {
                warned = true;
                "allowed_warning"
            } else {
                "allowed"
            };
            let i = w.infix();
            v.push((h(&format!("{i}-status")), status.to_owned()));
            v.push((h(&format!("{i}-reset")), st.resets_at.to_string()));
            v.push((h(&format!("{i}-utilization")), fraction(st.utilization)));
            if status == "allowed_warning" {
                let t = if st.utilization >= 0.9 { "0.9" } else { "0.75" };
                v.push((h(&format!("{i}-surpassed-threshold")), t.to_owned()));
            }
        }
        let status = if self.reached.is_some() {
            "rejected"
        } else if warned {
            "allowed_warning"
        } else {
            "allowed"
        };
        let reset = self.standing(rep).resets_at;
        v.insert(0, (h("status"), status.to_owned()));
        v.push((h("representative-claim"), rep.claim().to_owned()));
        v.push((h("fallback-percentage"), "0.5".to_owned()));
        v.push((h("reset"), reset.to_string()));
        v.push((
            h("overage-disabled-reason"),
            "org_level_disabled".to_owned(),
        ));
        v.push((h("overage-status"), "rejected".to_owned()));
        if self.reached.is_some() {
            v.push((
                "retry-after".to_owned(),
                reset.saturating_sub(unix_now()).to_string(),
            ));
        }
        v
    }
}

/// A fraction as the headers write it: at most two decimals, no trailing zeros.
fn fraction(f: f64) -> String {
    let s = format!("{:.2}", f.clamp(0.0, 1.0));
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

/// Mock-wide plan limits from a spec (the binary's `--limits`, the body of
/// `POST /mock/limits`): `none` (an API key's answers), `subscriber`
/// (`Limits::under(0.2, 0.1)`), or a `limits …` or `limit-reached …`
/// directive without its `mock:`, over [`Limits::under`]`(0, 0)`.
pub fn parse_limits(spec: &str) -> Result<Option<Limits>, String> {
    let spec = spec.trim();
    match spec {
        "none" => return Ok(None),
        "subscriber" => return Ok(Some(Limits::under(0.2, 0.1))),
        _ => {}
    }
    let ds = directives(&format!("mock: {spec}"));
    if ds.is_empty()
        || !ds
            .iter()
            .all(|d| matches!(d, Directive::Limits { .. } | Directive::LimitReached { .. }))
    {
        return Err(format!("not a limits spec: {spec:?}"));
    }
    let set = Settings {
        limits: Some(Limits::under(0.0, 0.0)),
        consult_skill: false,
    };
    Ok(limits_for(&ds, 0, &set))
}

/// A time in a directive: `+S` is S seconds from now, else Unix seconds.
fn parse_time(s: &str) -> Option<u64> {
    match s.strip_prefix('+') {
        Some(rel) => rel.parse::<u64>().ok().map(|d| unix_now() + d),
        None => s.parse().ok(),
    }
}

/// How to start a mock.
#[derive(Debug, Clone)]
pub struct Options {
    /// Address to bind; port 0 picks a free one.
    pub bind: SocketAddr,
    /// Also append every finished request as one JSON line here.
    pub log_file: Option<PathBuf>,
    pub side_requests: SideRequests,
    /// The plan limits every answer to `POST /v1/messages` reports, as
    /// api.anthropic.com reports a claude.ai subscriber's; `None` (an API
    /// key's answers) reports none. [`MockApi::set_limits`] changes them.
    pub limits: Option<Limits>,
    /// Answer a turn's first model call with a `Skill` tool call, as a real
    /// model may before it answers (as `mock: consult-skill` does per turn).
    pub consult_skill: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            log_file: None,
            side_requests: SideRequests::Answer,
            limits: None,
            consult_skill: false,
        }
    }
}

struct Shared {
    start: Instant,
    start_unix_ms: f64,
    log: Mutex<Vec<Request>>,
    changed: Condvar,
    file: Option<Mutex<std::fs::File>>,
    side: SideRequests,
    stop: AtomicBool,
    tool_ids: AtomicUsize,
    limits: Mutex<Option<Limits>>,
    consult_skill: AtomicBool,
}

/// A running mock; stops accepting on drop.
pub struct MockApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl MockApi {
    /// A mock on a free loopback port with default options.
    pub fn start() -> MockApi {
        MockApi::with(Options::default()).expect("start the mock API")
    }

    pub fn with(opts: Options) -> std::io::Result<MockApi> {
        let listener = TcpListener::bind(opts.bind)?;
        let addr = listener.local_addr()?;
        let file = match &opts.log_file {
            Some(p) => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?,
            )),
            None => None,
        };
        let shared = Arc::new(Shared {
            start: Instant::now(),
            start_unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0),
            log: Mutex::new(Vec::new()),
            changed: Condvar::new(),
            file,
            side: opts.side_requests,
            stop: AtomicBool::new(false),
            tool_ids: AtomicUsize::new(0),
            limits: Mutex::new(opts.limits),
            consult_skill: AtomicBool::new(opts.consult_skill),
        });
        let s = shared.clone();
        std::thread::Builder::new()
            .name("mock-api-accept".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if s.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let s = s.clone();
                    let _ = std::thread::Builder::new()
                        .name("mock-api-conn".into())
                        .spawn(move || serve(conn, &s));
                }
            })?;
        Ok(MockApi { addr, shared })
    }

    /// `http://127.0.0.1:<port>`: what `ANTHROPIC_BASE_URL` is set to.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request so far, in order of arrival.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.log.lock().expect("mock log").clone()
    }

    /// The model calls so far (`POST /v1/messages`, side requests included).
    pub fn model_calls(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(Request::is_model_call)
            .collect()
    }

    /// The hosts (`host:port`) something asked the mock, as its HTTPS
    /// proxy, to connect to: every attempt to leave the box.
    pub fn connects(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|r| r.kind == "connect")
            .map(|r| r.path)
            .collect()
    }

    /// The model calls whose last user prompt contains `needle` (a turn id).
    pub fn requests_for(&self, needle: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.is_model_call() && r.prompt.contains(needle))
            .collect()
    }

    /// Waits until `pred` holds for the log, or `timeout` passes; returns
    /// the log either way and whether `pred` held.
    pub fn wait_until(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&[Request]) -> bool,
    ) -> (Vec<Request>, bool) {
        let deadline = Instant::now() + timeout;
        let mut log = self.shared.log.lock().expect("mock log");
        loop {
            if pred(&log) {
                return (log.clone(), true);
            }
            let now = Instant::now();
            if now >= deadline {
                return (log.clone(), false);
            }
            log = self
                .shared
                .changed
                .wait_timeout(log, deadline - now)
                .expect("mock log")
                .0;
        }
    }

    /// Waits for the `n`th model call (1-based) to have been answered whole;
    /// panics with the log after `timeout`.
    #[track_caller]
    pub fn wait_for_model_call(&self, n: usize, timeout: Duration) -> Request {
        let (log, ok) = self.wait_until(timeout, |log| {
            log.iter()
                .filter(|r| r.is_model_call() && r.answered_ms.is_some())
                .count()
                >= n
        });
        assert!(
            ok,
            "the mock API got fewer than {n} model calls within {timeout:?}; its log:\n{}",
            summary(&log)
        );
        log.into_iter()
            .filter(|r| r.is_model_call() && r.answered_ms.is_some())
            .nth(n - 1)
            .expect("nth call")
    }

    /// Milliseconds since the mock started, on the clock of
    /// [`Request::arrived_ms`] and [`Request::answered_ms`]: lets a caller
    /// place its own moments among the requests.
    pub fn now_ms(&self) -> f64 {
        ms_since(self.shared.start)
    }

    /// One line per request, for failure messages.
    pub fn summary(&self) -> String {
        summary(&self.requests())
    }

    /// A moment of the mock's clock ([`Request::arrived_ms`]) in Unix
    /// milliseconds, to set beside other programs' timestamps.
    pub fn unix_ms(&self, mock_ms: f64) -> f64 {
        self.shared.start_unix_ms + mock_ms
    }

    /// Changes the plan limits every later answer reports (see
    /// [`Options::limits`]): a limit reached mid-session, or lifted.
    pub fn set_limits(&self, limits: Option<Limits>) {
        *self.shared.limits.lock().expect("mock limits") = limits;
    }

    /// The plan limits answers report now.
    pub fn limits(&self) -> Option<Limits> {
        self.shared.limits.lock().expect("mock limits").clone()
    }

    /// Turns [`Options::consult_skill`] on or off for later calls.
    pub fn set_consult_skill(&self, on: bool) {
        self.shared.consult_skill.store(on, Ordering::SeqCst);
    }
}

impl Drop for MockApi {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

/// One line per request: seq, time, kind, status, the prompt's start.
pub fn summary(log: &[Request]) -> String {
    let mut s = String::new();
    for r in log {
        let p: String = r.prompt.chars().take(80).collect();
        s.push_str(&format!(
            "#{} {:.0} ms {} {} {} -> {:?} in {:?} ms: {:?}\n",
            r.seq,
            r.arrived_ms,
            r.method,
            r.path,
            r.kind,
            r.status,
            r.answer_ms().map(|m| m.round()),
            p
        ));
    }
    if s.is_empty() {
        s.push_str("(no requests)\n");
    }
    s
}

/// The default answer's body for a message: `echo: <first 40 chars, newlines
/// as spaces> (<n> chars)`, so a test can tell that the whole text arrived.
pub fn echo_of(message: &str) -> String {
    let head: String = message
        .chars()
        .take(40)
        .map(|c| if c == '\n' { ' ' } else { c })
        .collect();
    format!("echo: {head} ({} chars)", message.chars().count())
}

/// The text of `prompt` after the envelope's first line, if it starts with one.
pub fn strip_envelope(prompt: &str) -> &str {
    let t = prompt.trim_start();
    if t.starts_with("[PALIADIN:") {
        t.split_once('\n').map(|(_, m)| m).unwrap_or("")
    } else {
        prompt
    }
}

fn turn_in(text: &str) -> Option<String> {
    let i = text.find("[PALIADIN:")?;
    let id = text.get(i + 10..i + 46)?;
    (text.get(i + 46..i + 47) == Some("]")).then(|| id.to_owned())
}

/// Removes Claude Code's paste wrappers (`<pasted_content id="…">` … its
/// closing tag) and the blank lines it puts before them, keeping what they
/// wrap.
pub fn unwrap_pasted(text: &str) -> String {
    if !text.contains("<pasted_content") {
        return text.to_owned();
    }
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("<pasted_content") {
        // Claude Code puts "\n\n" before the opening tag.
        out.push_str(rest[..i].strip_suffix("\n\n").unwrap_or(&rest[..i]));
        let after = &rest[i..];
        let Some(end) = after.find('>') else {
            out.push_str(after);
            rest = "";
            break;
        };
        let mut inner = &after[end + 1..];
        inner = inner.strip_prefix('\n').unwrap_or(inner);
        match inner.find("</pasted_content") {
            Some(j) => {
                let body = &inner[..j];
                out.push_str(body.strip_suffix('\n').unwrap_or(body));
                let close = &inner[j..];
                rest = close.find('>').map(|k| &close[k + 1..]).unwrap_or("");
                // ... and a newline after the closing one.
                rest = rest.strip_prefix('\n').unwrap_or(rest);
            }
            None => {
                out.push_str(inner);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    if out.trim_start().starts_with("[PALIADIN:") || text.trim_start().starts_with("<pasted") {
        out.trim_start_matches('\n').to_owned()
    } else {
        out
    }
}

/// Whether a user text block is Claude Code's, not the user's: a system
/// reminder, or what it sends with a Skill call's result (the skill's body
/// after "Base directory for this skill: …", or the note that it is loaded).
fn is_reminder(text: &str) -> bool {
    let t = text.trim_start();
    t.starts_with("<system-reminder>")
        || t.starts_with("Base directory for this skill: ")
        || (t.starts_with("Skill /") && t.contains(" is already loaded above"))
}

/// The user's text in one message's content: a plain string, or its last
/// text block that is not a system reminder. Claude Code merges a prompt
/// whose call failed with the next one into one user message, one text
/// block each; the last block is the newest prompt.
fn user_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter(|b| b["type"] == "text")
            .filter_map(|b| b["text"].as_str())
            .rfind(|t| !is_reminder(t))
            .unwrap_or_default()
            .to_owned(),
        _ => String::new(),
    }
}

/// Index of the last user message that carries the user's own text (not
/// only tool results and reminders).
fn prompt_index(body: &Value) -> Option<usize> {
    let msgs = body["messages"].as_array()?;
    msgs.iter()
        .rposition(|m| m["role"] == "user" && !user_text(&m["content"]).trim().is_empty())
}

fn last_user_text(body: &Value, unwrap: bool) -> String {
    let Some(i) = prompt_index(body) else {
        return String::new();
    };
    let t = user_text(&body["messages"][i]["content"]);
    if unwrap {
        unwrap_pasted(&t)
    } else {
        t
    }
}

/// The text of the conversation's last user prompt, pasted-content wrappers
/// removed: where a test looks for what the user sent.
pub fn prompt_text(body: &Value) -> String {
    last_user_text(body, true)
}

/// One scripted behaviour, a line `mock: <directive>` in the prompt.
#[derive(Debug, Clone, PartialEq)]
pub enum Directive {
    /// `mock: say <text>`: answer exactly this text (`\n` makes a newline).
    Say(String),
    /// `mock: status <code> [retry-after=S] [x-should-retry=true|false]
    /// [times=N]`: answer with this HTTP error and an Anthropic error body,
    /// to the first N calls of the turn (every call without `times`).
    Status {
        code: u16,
        headers: Vec<(String, String)>,
        times: Option<usize>,
    },
    /// `mock: slow <ms>`: wait this long before answering.
    Slow(u64),
    /// `mock: slow-close <ms>`: stream the text, then wait this long before
    /// ending the message.
    SlowClose(u64),
    /// `mock: tool <Name> <json input>`: call this tool; once its result is
    /// back, go on with the next tool directive, then answer
    /// `tool ok`/`tool failed: …`.
    Tool { name: String, input: Value },
    /// `mock: ignore-skill`: answer the echo without a trailer.
    IgnoreSkill,
    /// `mock: limits [5h=U] [7d=U] [5h-reset=T] [7d-reset=T]`: report
    /// these plan limits on this turn's answers (utilization a fraction, a
    /// time `+S` seconds from now or Unix seconds), over the mock-wide ones
    /// (or [`Limits::under`]`(0, 0)` when there are none).
    Limits {
        five_hour: Option<f64>,
        seven_day: Option<f64>,
        five_hour_reset: Option<u64>,
        seven_day_reset: Option<u64>,
    },
    /// `mock: limit-reached [5h|7d] [reset=T] [times=N]`: the plan limit of
    /// that window (default 5h) reached: answer 429 `rate_limit_error` with
    /// `status: rejected` and the reset (default an hour from now), to the
    /// first N calls of the turn (every call without `times`).
    LimitReached {
        window: Window,
        resets_at: Option<u64>,
        times: Option<usize>,
    },
    /// `mock: usage [input=N] [output=N] [cache-read=N] [cache-creation=N]`:
    /// report this usage on this turn's answers (each field omitted keeps
    /// the mock's own count: input a quarter of the body's bytes, output a
    /// quarter of the text's, no cache).
    Usage {
        input: Option<u64>,
        output: Option<u64>,
        cache_read: Option<u64>,
        cache_creation: Option<u64>,
    },
    /// `mock: preamble <text>`: answer each tool call with this text block
    /// before it, as a model says what it is about to do (two content
    /// blocks in one answer).
    Preamble(String),
    /// `mock: consult-skill`: answer the turn's first call (when it offers
    /// the `Skill` tool) with a call of the skill `paliadin`, as a real
    /// model may before it answers; then go on as without it.
    ConsultSkill,
}

/// `k=v` words into pairs.
fn pairs(arg: &str) -> Vec<(&str, &str)> {
    arg.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .collect()
}

/// The directives in `text`, in order; unknown `mock:` lines are ignored.
pub fn directives(text: &str) -> Vec<Directive> {
    let mut v = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.trim().strip_prefix("mock:") else {
            continue;
        };
        let rest = rest.trim();
        let (word, arg) = rest.split_once(' ').unwrap_or((rest, ""));
        let arg = arg.trim();
        let d = match word {
            "say" => Some(Directive::Say(arg.replace("\\n", "\n"))),
            "status" => {
                let mut it = arg.split_whitespace();
                it.next().and_then(|c| c.parse().ok()).map(|code| {
                    let mut headers = Vec::new();
                    let mut times = None;
                    for kv in it {
                        if let Some((k, val)) = kv.split_once('=') {
                            if k == "times" {
                                times = val.parse().ok();
                            } else {
                                headers.push((k.to_owned(), val.to_owned()));
                            }
                        }
                    }
                    Directive::Status {
                        code,
                        headers,
                        times,
                    }
                })
            }
            "slow" => arg.parse().ok().map(Directive::Slow),
            "slow-close" => arg.parse().ok().map(Directive::SlowClose),
            "tool" => {
                let (name, input) = arg.split_once(' ').unwrap_or((arg, "{}"));
                serde_json::from_str(input.trim())
                    .ok()
                    .map(|input| Directive::Tool {
                        name: name.to_owned(),
                        input,
                    })
            }
            "ignore-skill" => Some(Directive::IgnoreSkill),
            "consult-skill" => Some(Directive::ConsultSkill),
            "preamble" => Some(Directive::Preamble(arg.to_owned())),
            "limits" => {
                let (mut five_hour, mut seven_day) = (None, None);
                let (mut five_hour_reset, mut seven_day_reset) = (None, None);
                for (k, val) in pairs(arg) {
                    match k {
                        "5h" => five_hour = val.parse().ok(),
                        "7d" => seven_day = val.parse().ok(),
                        "5h-reset" => five_hour_reset = parse_time(val),
                        "7d-reset" => seven_day_reset = parse_time(val),
                        _ => {}
                    }
                }
                Some(Directive::Limits {
                    five_hour,
                    seven_day,
                    five_hour_reset,
                    seven_day_reset,
                })
            }
            "limit-reached" => {
                let window = arg
                    .split_whitespace()
                    .find_map(Window::parse)
                    .unwrap_or(Window::FiveHour);
                let mut resets_at = None;
                let mut times = None;
                for (k, val) in pairs(arg) {
                    match k {
                        "reset" => resets_at = parse_time(val),
                        "times" => times = val.parse().ok(),
                        _ => {}
                    }
                }
                Some(Directive::LimitReached {
                    window,
                    resets_at,
                    times,
                })
            }
            "usage" => {
                let mut u = [None; 4];
                for (k, val) in pairs(arg) {
                    let i = match k {
                        "input" => 0,
                        "output" => 1,
                        "cache-read" => 2,
                        "cache-creation" => 3,
                        _ => continue,
                    };
                    u[i] = val.parse().ok();
                }
                Some(Directive::Usage {
                    input: u[0],
                    output: u[1],
                    cache_read: u[2],
                    cache_creation: u[3],
                })
            }
            _ => None,
        };
        v.extend(d);
    }
    v
}

/// What to send back for one model call.
#[derive(Debug, Clone, PartialEq)]
enum Answer {
    Text(String),
    Tool {
        name: String,
        input: Value,
    },
    Error {
        code: u16,
        headers: Vec<(String, String)>,
        message: String,
    },
}

struct Plan {
    answer: Answer,
    delay: u64,
    close_delay: u64,
    /// The plan-limit headers of a successful answer.
    limit_headers: Vec<(String, String)>,
    /// Usage fields given by `mock: usage` (input, output, cache read,
    /// cache creation).
    usage: [Option<u64>; 4],
    /// A text block before each tool call (`mock: preamble`).
    preamble: Option<String>,
}

/// The mock-wide settings a call is planned with.
struct Settings {
    limits: Option<Limits>,
    consult_skill: bool,
}

/// The message of a 429 at a plan limit (Claude Code composes its own line
/// from the headers and shows none of it).
pub const LIMIT_MESSAGE: &str =
    "This request would exceed your account's rate limit. Please try again later.";

fn error_type(code: u16) -> &'static str {
    match code {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    }
}

/// The ids of the `Skill` tool calls the model made after message `start`.
fn skill_calls(msgs: &[Value], start: usize) -> Vec<String> {
    msgs.iter()
        .skip(start)
        .filter(|m| m["role"] == "assistant")
        .filter_map(|m| m["content"].as_array())
        .flatten()
        .filter(|b| b["type"] == "tool_use" && b["name"] == "Skill")
        .filter_map(|b| b["id"].as_str().map(str::to_owned))
        .collect()
}

/// The plan limits a call reports: the mock-wide ones as this turn's
/// directives change them.
fn limits_for(ds: &[Directive], earlier_same_prompt: usize, set: &Settings) -> Option<Limits> {
    let mut limits = set.limits.clone();
    for d in ds {
        match d {
            Directive::Limits {
                five_hour,
                seven_day,
                five_hour_reset,
                seven_day_reset,
            } => {
                let mut l = limits.take().unwrap_or_else(|| Limits::under(0.0, 0.0));
                let fields = [
                    (&mut l.five_hour, five_hour, five_hour_reset),
                    (&mut l.seven_day, seven_day, seven_day_reset),
                ];
                for (st, u, r) in fields {
                    if let Some(u) = u {
                        st.utilization = *u;
                    }
                    if let Some(r) = r {
                        st.resets_at = *r;
                    }
                }
                limits = Some(l);
            }
            Directive::LimitReached {
                window,
                resets_at,
                times,
            } if times.is_none_or(|n| earlier_same_prompt < n) => {
                let mut l = limits.take().unwrap_or_else(|| Limits::under(0.3, 0.3));
                l.reached = Some(*window);
                *l.standing_mut(*window) = Standing {
                    utilization: 1.0,
                    resets_at: resets_at.unwrap_or_else(|| unix_now() + 3600),
                };
                limits = Some(l);
            }
            _ => {}
        }
    }
    limits
}

/// Decides the answer to a model call from its body and the calls before it.
fn plan(body: &Value, side: bool, earlier_same_prompt: usize, set: &Settings) -> Plan {
    let prompt = prompt_text(body);
    // Side requests follow no directive; the plan limits hold for them too.
    let ds = if side {
        Vec::new()
    } else {
        directives(&prompt)
    };
    let limits = limits_for(&ds, earlier_same_prompt, set);
    let limit_headers = limits.as_ref().map(Limits::headers).unwrap_or_default();
    let mut delay = 0;
    let mut close_delay = 0;
    let mut usage = [None; 4];
    let mut preamble = None;
    for d in &ds {
        match d {
            Directive::Preamble(t) => preamble = Some(t.clone()),
            Directive::Slow(ms) => delay = *ms,
            Directive::SlowClose(ms) => close_delay = *ms,
            Directive::Usage {
                input,
                output,
                cache_read,
                cache_creation,
            } => usage = [*input, *output, *cache_read, *cache_creation],
            _ => {}
        }
    }
    let mk = |answer| Plan {
        answer,
        delay,
        close_delay,
        limit_headers: limit_headers.clone(),
        usage,
        preamble: preamble.clone(),
    };
    if limits.as_ref().is_some_and(|l| l.reached.is_some()) {
        return mk(Answer::Error {
            code: 429,
            headers: limit_headers.clone(),
            message: LIMIT_MESSAGE.to_owned(),
        });
    }
    if side {
        return mk(Answer::Text("Mock title".into()));
    }
    for d in &ds {
        if let Directive::Status {
            code,
            headers,
            times,
        } = d
        {
            if times.is_none_or(|n| earlier_same_prompt < n) {
                return mk(Answer::Error {
                    code: *code,
                    headers: headers.clone(),
                    message: format!("mock: status {code}"),
                });
            }
        }
    }
    let msgs = body["messages"].as_array().cloned().unwrap_or_default();
    let start = prompt_index(body).unwrap_or(0);
    // A model that reads the skill first: one Skill call per turn, then on
    // as if it had not been made.
    let skills = skill_calls(&msgs, start);
    let offers_skill = body["tools"]
        .as_array()
        .is_some_and(|t| t.iter().any(|t| t["name"] == "Skill"));
    if skills.is_empty()
        && offers_skill
        && (set.consult_skill || ds.contains(&Directive::ConsultSkill))
    {
        return mk(Answer::Tool {
            name: "Skill".into(),
            input: json!({"skill": "paliadin"}),
        });
    }
    // Tool calls already made for this prompt: the assistant turns after it
    // that are not the Skill call.
    let done = msgs[start..]
        .iter()
        .filter(|m| m["role"] == "assistant")
        .filter(|m| {
            !m["content"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|b| b["type"] == "tool_use" && b["name"] == "Skill")
            })
        })
        .count();
    let tools: Vec<&Directive> = ds
        .iter()
        .filter(|d| matches!(d, Directive::Tool { .. }))
        .collect();
    if let Some(Directive::Tool { name, input }) = tools.get(done) {
        return mk(Answer::Tool {
            name: name.clone(),
            input: input.clone(),
        });
    }
    if !tools.is_empty() {
        let results: Vec<&Value> = msgs[start..]
            .iter()
            .filter(|m| m["role"] == "user")
            .filter_map(|m| m["content"].as_array())
            .flatten()
            .filter(|b| b["type"] == "tool_result")
            .filter(|b| !skills.iter().any(|id| b["tool_use_id"] == id.as_str()))
            .collect();
        let failed: Vec<String> = results
            .iter()
            .filter(|b| b["is_error"] == true)
            .map(|b| {
                let c = match &b["content"] {
                    Value::String(s) => s.clone(),
                    Value::Array(a) => a
                        .iter()
                        .filter_map(|x| x["text"].as_str())
                        .collect::<Vec<_>>()
                        .join(" "),
                    _ => String::new(),
                };
                c.chars().take(200).collect()
            })
            .collect();
        let used: Vec<String> = tools
            .iter()
            .filter_map(|d| match d {
                Directive::Tool { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect();
        let head = if results.is_empty() {
            "tool missing: no tool_result came back".to_owned()
        } else if failed.is_empty() {
            "tool ok".to_owned()
        } else {
            format!("tool failed: {}", failed.join(" | "))
        };
        let meta = json!({"used_tools": used, "classifier_tag": "mock"});
        return mk(Answer::Text(format!(
            "{head}\n\n<!-- paliadin-meta: {meta} -->"
        )));
    }
    for d in &ds {
        if let Directive::Say(t) = d {
            return mk(Answer::Text(t.clone()));
        }
    }
    let echo = echo_of(strip_envelope(&prompt));
    if ds.contains(&Directive::IgnoreSkill) {
        return mk(Answer::Text(echo));
    }
    mk(Answer::Text(format!("{echo}\n\n{TRAILER}")))
}

// --- HTTP ---------------------------------------------------------------------

struct HttpRequest {
    method: String,
    path: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

fn read_request(r: &mut BufReader<TcpStream>) -> std::io::Result<Option<HttpRequest>> {
    let mut line = String::new();
    // Skip blank lines between requests.
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        if !line.trim().is_empty() {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let path = parts.next().unwrap_or("").to_owned();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 {
            return Ok(None);
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let mut body = Vec::new();
    if headers
        .get("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size = String::new();
            r.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = headers.get("content-length") {
        let n: usize = n
            .parse()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        body = vec![0; n];
        r.read_exact(&mut body)?;
    }
    Ok(Some(HttpRequest {
        method,
        path,
        headers,
        body,
    }))
}

fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

fn serve(conn: TcpStream, s: &Shared) {
    let _ = conn.set_nodelay(true);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(300)));
    let Ok(mut w) = conn.try_clone() else { return };
    let mut r = BufReader::new(conn);
    while !s.stop.load(Ordering::SeqCst) {
        let req = match read_request(&mut r) {
            Ok(Some(req)) => req,
            _ => return,
        };
        let keep = req.method != "CONNECT"
            && !req
                .headers
                .get("connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        if handle(&mut w, s, req).is_err() || !keep {
            return;
        }
    }
}

fn handle(w: &mut TcpStream, s: &Shared, req: HttpRequest) -> std::io::Result<()> {
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let route = req.path.split('?').next().unwrap_or("");
    let is_messages = req.method == "POST" && route.trim_end_matches('/') == "/v1/messages";
    let side = is_messages
        && s.side == SideRequests::Answer
        && body["tools"].as_array().is_none_or(|t| t.is_empty());
    let kind = if is_messages {
        if side {
            "side"
        } else {
            "message"
        }
    } else if route.ends_with("/count_tokens") {
        "count_tokens"
    } else if route.starts_with("/mock/") {
        "control"
    } else if req.method == "CONNECT" {
        "connect"
    } else {
        "other"
    };
    let mut headers = BTreeMap::new();
    for (k, v) in &req.headers {
        if HEADERS_KEPT.contains(&k.as_str()) {
            headers.insert(k.clone(), v.clone());
        } else if k == "authorization" || k == "x-api-key" {
            headers.insert(k.clone(), credential_kind(v));
        }
    }
    let prompt = if is_messages {
        prompt_text(&body)
    } else {
        String::new()
    };
    let (seq, earlier) = {
        let mut log = s.log.lock().expect("mock log");
        let seq = log.len();
        let earlier = log
            .iter()
            .filter(|r| r.kind == kind && r.prompt == prompt && same_history(&r.body, &body))
            .count();
        log.push(Request {
            seq,
            method: req.method.clone(),
            path: req.path.clone(),
            headers,
            body: body.clone(),
            arrived_ms: ms_since(s.start),
            answered_ms: None,
            status: None,
            request_id: format!("req_mock_{seq}"),
            kind: kind.into(),
            prompt,
            limit_headers: BTreeMap::new(),
            usage: Value::Null,
        });
        s.changed.notify_all();
        (seq, earlier)
    };
    let rid = format!("req_mock_{seq}");
    let rid = rid.as_str();
    let mut served = (Vec::new(), Value::Null);
    let result = if is_messages {
        let set = Settings {
            limits: s.limits.lock().expect("mock limits").clone(),
            consult_skill: s.consult_skill.load(Ordering::SeqCst),
        };
        let p = plan(&body, side, earlier, &set);
        answer_message(w, rid, s, &body, p, &mut served)
    } else if req.method == "POST" && route == "/mock/limits" {
        // The mock's own control: a body `none`, or one directive line
        // without its `mock:` (`limits 5h=0.5`, `limit-reached 7d
        // reset=+60`), sets the mock-wide limits; answered with them.
        let text = String::from_utf8_lossy(&req.body).into_owned();
        let limits = parse_limits(&text).unwrap_or(None);
        *s.limits.lock().expect("mock limits") = limits.clone();
        let headers: BTreeMap<String, String> = limits
            .as_ref()
            .map(Limits::headers)
            .unwrap_or_default()
            .into_iter()
            .collect();
        write_json(
            w,
            rid,
            200,
            &[],
            &json!({ "headers": headers }),
            &req.method,
        )
    } else if kind == "connect" {
        // A proxy tunnel off the box: refused, the attempt logged.
        write_json(
            w,
            rid,
            403,
            &[],
            &json!({"type": "error", "error": {"type": "permission_error", "message": "mock: no way off the box"}}),
            &req.method,
        )
    } else if kind == "count_tokens" {
        write_json(w, rid, 200, &[], &json!({"input_tokens": 1}), &req.method)
    } else if req.method == "GET" || req.method == "HEAD" {
        write_json(w, rid, 200, &[], &json!({"ok": true}), &req.method)
    } else {
        write_json(
            w,
            rid,
            404,
            &[],
            &json!({"type": "error", "error": {"type": "not_found_error", "message": "mock: no such endpoint"}}),
            &req.method,
        )
    };
    let status = result.as_ref().map(|c| *c).ok();
    let done = {
        let mut log = s.log.lock().expect("mock log");
        let r = &mut log[seq];
        r.answered_ms = Some(ms_since(s.start));
        r.status = status;
        r.limit_headers = served.0.into_iter().collect();
        r.usage = served.1;
        s.changed.notify_all();
        r.clone()
    };
    if let Some(f) = &s.file {
        if let Ok(line) = serde_json::to_string(&done) {
            let mut f = f.lock().expect("mock log file");
            let _ = writeln!(f, "{line}");
        }
    }
    result.map(|_| ())
}

/// What the log keeps of a credential: its scheme and the first 12
/// characters of the secret, which name its kind and nothing more
/// (`Bearer sk-ant-oat01…` for a claude.ai OAuth token, `sk-ant-api03…`
/// for an API key), followed by `…`.
pub fn credential_kind(value: &str) -> String {
    let (scheme, secret) = match value.split_once(' ') {
        Some((scheme, secret)) => (format!("{scheme} "), secret),
        None => (String::new(), value),
    };
    let head: String = secret.chars().take(12).collect();
    format!("{scheme}{head}…")
}

/// Whether two bodies are the same step of a conversation (same number of
/// messages): retries of one call match, the next step of a tool loop does not.
fn same_history(a: &Value, b: &Value) -> bool {
    a["messages"].as_array().map(Vec::len) == b["messages"].as_array().map(Vec::len)
}

fn status_text(code: u16) -> &'static str {
    match code {
        200 => "OK",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        529 => "Overloaded",
        _ => "Error",
    }
}

fn write_json(
    w: &mut TcpStream,
    rid: &str,
    code: u16,
    extra: &[(String, String)],
    v: &Value,
    method: &str,
) -> std::io::Result<u16> {
    let body = v.to_string();
    let mut head = format!(
        "HTTP/1.1 {code} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nrequest-id: {rid}\r\n",
        status_text(code),
        body.len()
    );
    for (k, val) in extra {
        head.push_str(&format!("{k}: {val}\r\n"));
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes())?;
    if method != "HEAD" {
        w.write_all(body.as_bytes())?;
    }
    w.flush()?;
    Ok(code)
}

fn chunk(w: &mut TcpStream, data: &[u8]) -> std::io::Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    write!(w, "{:x}\r\n", data.len())?;
    w.write_all(data)?;
    w.write_all(b"\r\n")?;
    w.flush()
}

fn event(w: &mut TcpStream, name: &str, data: &Value) -> std::io::Result<()> {
    chunk(w, format!("event: {name}\ndata: {data}\n\n").as_bytes())
}

/// Writes the answer `p` plans; `served` gets the plan-limit headers and
/// the usage it reported.
fn answer_message(
    w: &mut TcpStream,
    rid: &str,
    s: &Shared,
    body: &Value,
    p: Plan,
    served: &mut (Vec<(String, String)>, Value),
) -> std::io::Result<u16> {
    if p.delay > 0 {
        std::thread::sleep(Duration::from_millis(p.delay));
    }
    let (text, tool) = match p.answer {
        Answer::Error {
            code,
            headers,
            message,
        } => {
            let v =
                json!({"type": "error", "error": {"type": error_type(code), "message": message}});
            if code == 429 {
                served.0 = headers.clone();
            }
            return write_json(w, rid, code, &headers, &v, "POST");
        }
        Answer::Text(t) => (Some(t), None),
        Answer::Tool { name, input } => (None, Some((name, input))),
    };
    let model = body["model"].as_str().unwrap_or("claude-mock").to_owned();
    let id = format!("msg_mock_{}", s.tool_ids.fetch_add(1, Ordering::SeqCst));
    let in_tokens = p.usage[0].unwrap_or(body.to_string().len() as u64 / 4);
    let out_tokens = p.usage[1].unwrap_or(text.as_ref().map_or(10, |t| t.len() as u64 / 4 + 1));
    let cache_read = p.usage[2].unwrap_or(0);
    let cache_creation = p.usage[3].unwrap_or(0);
    let stop_reason = if tool.is_some() {
        "tool_use"
    } else {
        "end_turn"
    };
    let tool_id = format!("toolu_mock_{}", s.tool_ids.fetch_add(1, Ordering::SeqCst));
    let usage = json!({"input_tokens": in_tokens, "output_tokens": out_tokens,
        "cache_creation_input_tokens": cache_creation, "cache_read_input_tokens": cache_read});
    *served = (p.limit_headers.clone(), usage.clone());
    // The content blocks: a tool call after the preamble, if any, or the text.
    let mut blocks = Vec::new();
    match (text, tool) {
        (Some(t), _) => blocks.push(json!({"type": "text", "text": t})),
        (None, Some((name, input))) => {
            if let Some(pre) = &p.preamble {
                blocks.push(json!({"type": "text", "text": pre}));
            }
            blocks.push(json!({"type": "tool_use", "id": tool_id, "name": name, "input": input}));
        }
        _ => {}
    }
    if body["stream"] != true {
        let v = json!({"id": id, "type": "message", "role": "assistant", "model": model,
            "content": blocks, "stop_reason": stop_reason, "stop_sequence": null, "usage": usage});
        return write_json(w, rid, 200, &p.limit_headers, &v, "POST");
    }
    let mut head = String::from(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n",
    );
    head.push_str(&format!("request-id: {rid}\r\n"));
    for (k, v) in &p.limit_headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes())?;
    event(
        w,
        "message_start",
        &json!({"type": "message_start", "message": {"id": id, "type": "message", "role": "assistant",
            "model": model, "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": in_tokens, "output_tokens": 1,
                "cache_creation_input_tokens": cache_creation, "cache_read_input_tokens": cache_read}}}),
    )?;
    for (index, block) in blocks.iter().enumerate() {
        stream_block(w, index, block)?;
    }
    if p.close_delay > 0 {
        std::thread::sleep(Duration::from_millis(p.close_delay));
    }
    event(
        w,
        "message_delta",
        &json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null},
            "usage": {"output_tokens": out_tokens}}),
    )?;
    event(w, "message_stop", &json!({"type": "message_stop"}))?;
    w.write_all(b"0\r\n\r\n")?;
    w.flush()?;
    Ok(200)
}

/// Streams one content block: its start, its text or input in a few
/// pieces (split on char boundaries, as a model streams), its stop.
fn stream_block(w: &mut TcpStream, index: usize, block: &Value) -> std::io::Result<()> {
    let (start, pieces, delta) = if block["type"] == "text" {
        let t = block["text"].as_str().unwrap_or_default();
        let chars: Vec<char> = t.chars().collect();
        let step = (chars.len() / 3).max(1);
        let pieces: Vec<String> = chars.chunks(step).map(|c| c.iter().collect()).collect();
        (json!({"type": "text", "text": ""}), pieces, "text_delta")
    } else {
        let json = block["input"].to_string();
        let mid = json
            .char_indices()
            .nth(json.chars().count() / 2)
            .map_or(0, |(i, _)| i);
        let pieces = vec![json[..mid].to_owned(), json[mid..].to_owned()];
        let mut start = block.clone();
        start["input"] = json!({});
        (start, pieces, "input_json_delta")
    };
    event(
        w,
        "content_block_start",
        &json!({"type": "content_block_start", "index": index, "content_block": start}),
    )?;
    for piece in pieces {
        let d = if delta == "text_delta" {
            json!({"type": delta, "text": piece})
        } else {
            json!({"type": delta, "partial_json": piece})
        };
        event(
            w,
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": index, "delta": d}),
        )?;
    }
    event(
        w,
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": index}),
    )
}

/// Reads a JSONL log the mock wrote.
pub fn read_log(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_parse() {
        let d = directives(
            "hi\nmock: say a\\nb\nmock: status 429 retry-after=1 times=2\nmock: tool Bash {\"command\":\"ls\"}\nmock: nope\n",
        );
        assert_eq!(
            d,
            vec![
                Directive::Say("a\nb".into()),
                Directive::Status {
                    code: 429,
                    headers: vec![("retry-after".into(), "1".into())],
                    times: Some(2)
                },
                Directive::Tool {
                    name: "Bash".into(),
                    input: json!({"command": "ls"})
                },
            ]
        );
    }

    #[test]
    fn prompt_text_unwraps_pastes_and_skips_reminders() {
        let id = "0123abcd-1111-4222-8333-444455556666";
        let wrapped = format!(
            "\n\n<pasted_content id=\"ab12\">\n[PALIADIN:{id}] reply-to: /x\nline one\nline two</pasted_content id=\"ab12\">"
        );
        let body = json!({"messages": [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [
                {"type": "text", "text": "<system-reminder>skills</system-reminder>"},
                {"type": "text", "text": wrapped}]}]});
        let p = prompt_text(&body);
        assert_eq!(
            p,
            format!("[PALIADIN:{id}] reply-to: /x\nline one\nline two")
        );
        assert_eq!(strip_envelope(&p), "line one\nline two");
        assert_eq!(turn_in(&p).as_deref(), Some(id));
    }

    const NONE: Settings = Settings {
        limits: None,
        consult_skill: false,
    };

    #[test]
    fn limit_directives_parse() {
        let d = directives(
            "mock: limits 5h=0.5 7d-reset=1800000000\nmock: limit-reached 7d reset=1800000001 times=1\nmock: usage input=7 cache-read=90\nmock: consult-skill",
        );
        assert_eq!(
            d,
            vec![
                Directive::Limits {
                    five_hour: Some(0.5),
                    seven_day: None,
                    five_hour_reset: None,
                    seven_day_reset: Some(1_800_000_000),
                },
                Directive::LimitReached {
                    window: Window::SevenDay,
                    resets_at: Some(1_800_000_001),
                    times: Some(1),
                },
                Directive::Usage {
                    input: Some(7),
                    output: None,
                    cache_read: Some(90),
                    cache_creation: None,
                },
                Directive::ConsultSkill,
            ]
        );
        let d = directives("mock: limit-reached reset=+60");
        let Directive::LimitReached {
            window,
            resets_at,
            times,
        } = &d[0]
        else {
            panic!("{d:?}")
        };
        assert_eq!((*window, *times), (Window::FiveHour, None));
        assert!(resets_at.is_some_and(|r| r.abs_diff(unix_now() + 60) <= 2));
    }

    #[test]
    fn limits_headers_have_the_shape_of_api_anthropic_com() {
        let h = |l: &Limits| -> BTreeMap<String, String> { l.headers().into_iter().collect() };
        let mut l = Limits::under(0.2, 0.8);
        l.five_hour.resets_at = 1_800_000_000;
        l.seven_day.resets_at = 1_800_500_000;
        let got = h(&l);
        let u = |k: &str| {
            got.get(&format!("anthropic-ratelimit-unified-{k}"))
                .map(String::as_str)
        };
        assert_eq!(u("status"), Some("allowed_warning"));
        assert_eq!(u("5h-status"), Some("allowed"));
        assert_eq!(u("5h-utilization"), Some("0.2"));
        assert_eq!(u("5h-reset"), Some("1800000000"));
        assert_eq!(u("7d-status"), Some("allowed_warning"));
        assert_eq!(u("7d-surpassed-threshold"), Some("0.75"));
        assert_eq!(u("representative-claim"), Some("seven_day"));
        assert_eq!(u("reset"), Some("1800500000"));
        assert_eq!(u("overage-status"), Some("rejected"));
        assert!(!got.contains_key("retry-after"));
        let r = Limits::reached(Window::FiveHour, unix_now() + 100);
        let got = h(&r);
        assert_eq!(got["anthropic-ratelimit-unified-status"], "rejected");
        assert_eq!(got["anthropic-ratelimit-unified-5h-status"], "rejected");
        assert_eq!(got["anthropic-ratelimit-unified-5h-utilization"], "1");
        assert_eq!(
            got["anthropic-ratelimit-unified-representative-claim"],
            "five_hour"
        );
        let after: u64 = got["retry-after"].parse().expect("seconds");
        assert!((98..=100).contains(&after), "{after}");
        assert_eq!(parse_limits("none"), Ok(None));
        assert_eq!(
            parse_limits("limit-reached 7d reset=1800000002").map(|l| l.and_then(|l| l.reached)),
            Ok(Some(Window::SevenDay))
        );
        assert!(parse_limits("say hi").is_err());
    }

    #[test]
    fn a_reached_limit_answers_429_with_its_headers_and_a_lifted_one_200() {
        let m = MockApi::with(Options {
            limits: Some(Limits::under(0.4, 0.1)),
            ..Options::default()
        })
        .expect("mock");
        let body = json!({"model": "m", "stream": false, "tools": [{"name": "x"}],
            "messages": [{"role": "user", "content": "mock: usage input=11 output=3 cache-read=500\nhi"}]});
        let out = http_post(&m, "/v1/messages", &body);
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        assert!(
            out.contains("anthropic-ratelimit-unified-5h-utilization: 0.4\r\n"),
            "{out}"
        );
        assert!(out.contains("request-id: req_mock_0\r\n"), "{out}");
        let r = m.wait_for_model_call(1, Duration::from_secs(5));
        assert_eq!(r.usage["cache_read_input_tokens"], 500);
        assert_eq!(r.usage["input_tokens"], 11);
        assert_eq!(
            r.limit_headers["anthropic-ratelimit-unified-status"],
            "allowed"
        );
        // Reached mid-session: every call, side ones too.
        m.set_limits(Some(Limits::reached(Window::FiveHour, unix_now() + 3600)));
        let mut side = body.clone();
        side["tools"] = json!([]);
        for b in [&body, &side] {
            let out = http_post(&m, "/v1/messages", b);
            assert!(out.starts_with("HTTP/1.1 429"), "{out}");
            assert!(
                out.contains("anthropic-ratelimit-unified-status: rejected\r\n"),
                "{out}"
            );
            assert!(out.contains("rate_limit_error"), "{out}");
        }
        // Lifted through the control endpoint, as the binary's users do.
        let out = http_post_text(&m, "/mock/limits", "limits 5h=0.05");
        assert!(
            out.contains("\"anthropic-ratelimit-unified-5h-utilization\":\"0.05\""),
            "{out}"
        );
        let out = http_post(&m, "/v1/messages", &body);
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        // A directive reaches a limit for its own turn only.
        let mut limited = body.clone();
        limited["messages"][0]["content"] = json!("mock: limit-reached 7d reset=+600 times=1\nhi");
        let codes: Vec<String> = (0..2)
            .map(|_| http_post(&m, "/v1/messages", &limited)[..12].to_owned())
            .collect();
        assert_eq!(codes, ["HTTP/1.1 429", "HTTP/1.1 200"]);
        assert_eq!(
            m.requests().iter().filter(|r| r.kind == "control").count(),
            1
        );
    }

    #[test]
    fn consult_skill_calls_the_skill_once_then_answers_as_without_it() {
        let prompt = "mock: consult-skill\nhello";
        let tools = json!([{"name": "Skill"}, {"name": "Read"}]);
        let mut msgs = vec![json!({"role": "user", "content": prompt})];
        let p = plan(&json!({"messages": msgs, "tools": tools}), false, 0, &NONE);
        assert!(
            matches!(p.answer, Answer::Tool { ref name, ref input } if name == "Skill" && input["skill"] == "paliadin")
        );
        msgs.push(json!({"role": "assistant", "content": [{"type": "tool_use", "id": "s1", "name": "Skill", "input": {}}]}));
        msgs.push(json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "s1", "content": "Launching skill: paliadin"}]}));
        let p = plan(&json!({"messages": msgs, "tools": tools}), false, 0, &NONE);
        assert_eq!(
            p.answer,
            Answer::Text(format!("{}\n\n{TRAILER}", echo_of(prompt)))
        );
        // Mock-wide, without the directive; never when Skill is not offered.
        let set = Settings {
            limits: None,
            consult_skill: true,
        };
        let first = vec![json!({"role": "user", "content": "hi"})];
        let p = plan(&json!({"messages": first, "tools": tools}), false, 0, &set);
        assert!(matches!(p.answer, Answer::Tool { ref name, .. } if name == "Skill"));
        let p = plan(
            &json!({"messages": first, "tools": [{"name": "Read"}]}),
            false,
            0,
            &set,
        );
        assert!(matches!(p.answer, Answer::Text(_)));
    }

    #[test]
    fn tool_plan_walks_the_directives_then_reports() {
        let prompt = "mock: tool Read {\"file_path\":\"/x\"}\nmock: tool Bash {\"command\":\"ls\"}";
        let mut msgs = vec![json!({"role": "user", "content": prompt})];
        let p = plan(&json!({"messages": msgs}), false, 0, &NONE);
        assert!(matches!(p.answer, Answer::Tool { ref name, .. } if name == "Read"));
        msgs.push(json!({"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Read", "input": {}}]}));
        msgs.push(json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "x"}]}));
        let p = plan(&json!({"messages": msgs}), false, 0, &NONE);
        assert!(matches!(p.answer, Answer::Tool { ref name, .. } if name == "Bash"));
        msgs.push(json!({"role": "assistant", "content": [{"type": "tool_use", "id": "t2", "name": "Bash", "input": {}}]}));
        msgs.push(json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t2", "is_error": true, "content": "denied"}]}));
        let p = plan(&json!({"messages": msgs}), false, 0, &NONE);
        match p.answer {
            Answer::Text(t) => assert!(t.starts_with("tool failed: denied\n"), "{t}"),
            a => panic!("{a:?}"),
        }
    }

    #[test]
    fn serves_streaming_and_plain_answers_and_records_them() {
        let m = MockApi::start();
        let body = json!({"model": "m", "stream": false, "tools": [{"name": "x"}],
            "messages": [{"role": "user", "content": "hello there"}]});
        let out = http_post(&m, "/v1/messages?beta=true", &body);
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        assert!(out.contains(&echo_of("hello there")), "{out}");
        let mut body = body;
        body["stream"] = json!(true);
        body["messages"][0]["content"] = json!("mock: say hi\nmock: slow-close 10");
        let out = http_post(&m, "/v1/messages", &body);
        for e in [
            "message_start",
            "content_block_delta",
            "message_delta",
            "message_stop",
        ] {
            assert!(out.contains(&format!("event: {e}")), "{out}");
        }
        body["messages"][0]["content"] = json!("mock: status 529");
        let out = http_post(&m, "/v1/messages", &body);
        assert!(out.starts_with("HTTP/1.1 529"), "{out}");
        assert!(out.contains("overloaded_error"), "{out}");
        let r = m.wait_for_model_call(3, Duration::from_secs(5));
        assert_eq!(r.status, Some(529));
        assert_eq!(m.requests().len(), 3);
    }

    #[test]
    fn status_times_fails_only_the_first_tries_of_a_call() {
        let m = MockApi::start();
        let body = json!({"model": "m", "stream": false, "tools": [{"name": "x"}],
            "messages": [{"role": "user", "content": "mock: status 429 retry-after=0 times=2\nhi"}]});
        let codes: Vec<String> = (0..3)
            .map(|_| http_post(&m, "/v1/messages", &body)[..12].to_owned())
            .collect();
        assert_eq!(codes, ["HTTP/1.1 429", "HTTP/1.1 429", "HTTP/1.1 200"]);
        let out = http_post(&m, "/v1/messages", &body);
        assert!(out.contains("echo: mock: status 429"), "{out}");
        // Anything else is answered harmlessly.
        let mut c = TcpStream::connect(m.addr()).expect("connect");
        c.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .expect("write");
        let mut out = String::new();
        c.read_to_string(&mut out).expect("read");
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        assert_eq!(m.requests().last().expect("logged").kind, "other");
    }

    #[test]
    fn a_proxy_connect_is_logged_and_refused() {
        let m = MockApi::start();
        let mut c = TcpStream::connect(m.addr()).expect("connect");
        c.write_all(
            b"CONNECT api.anthropic.com:443 HTTP/1.1\r\nhost: api.anthropic.com:443\r\n\r\n",
        )
        .expect("write");
        let mut out = String::new();
        c.read_to_string(&mut out).expect("read");
        assert!(out.starts_with("HTTP/1.1 403"), "{out}");
        assert_eq!(m.connects(), ["api.anthropic.com:443"]);
        assert!(m.model_calls().is_empty());
    }

    fn http_post_text(m: &MockApi, path: &str, body: &str) -> String {
        let mut c = TcpStream::connect(m.addr()).expect("connect");
        write!(
            c,
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("write");
        let mut out = String::new();
        c.read_to_string(&mut out).expect("read");
        out
    }

    fn http_post(m: &MockApi, path: &str, body: &Value) -> String {
        let mut c = TcpStream::connect(m.addr()).expect("connect");
        let b = body.to_string();
        write!(
            c,
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{b}",
            b.len()
        )
        .expect("write");
        let mut out = String::new();
        c.read_to_string(&mut out).expect("read");
        out
    }
}
