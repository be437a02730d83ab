//! What a turn really cost (issue 13): the usage of the turn's own model
//! requests, summed from the agent's transcript when its `Stop` (or
//! `StopFailure`) hook runs, and recorded as the turn's `usage` event
//! (PROTOCOL section 7), which `run-turn-events` sends before the reply.
//!
//! The rule, from Claude Code 2.1.328's transcripts (PROTOCOL section 8):
//! from the turn's prompt line on, every `assistant` line counts once per
//! `requestId` (a request's answer is one line per content block, each with
//! the request's whole usage), never a `<synthetic>` one (an API error or a
//! limit, usage 0), plus the requests in the files of the subagents the turn
//! launched, as far as they got. The transcript may lag the hook: the hook waits, at most
//! [`WAIT`], for the assistant line whose text is the hook's
//! `last_assistant_message`. The hook has written the reply before it looks,
//! so a plain `run-turn` never waits for this.
//!
//! The transcript path is the agent's word and trusted no further than it
//! must be: it must name `<claude config>/projects/<project>/<session>.jsonl`
//! where `<session>` is the id this session's own agent gave at its
//! `SessionStart`, so no session reads another's; every name below the
//! `projects` directory is opened with `O_NOFOLLOW` (no symlink followed),
//! the file must be a regular file of ours, and at most [`MAX_READ`] bytes
//! of its end are read. Never writes anything but the turn's event and mark.

use paliadin_core::event::{Event, Kind, Usage};
use rustix::fs::{Mode, OFlags};
use serde_json::Value;
use std::collections::HashSet;
use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use uuid::Uuid;

use crate::state::{SessionDir, TurnDir, TurnMark};

/// How long the hook waits for the transcript to hold the turn's last line
/// (seen there within 65 ms of the hook in most runs, once 0.8 s).
pub const WAIT: Duration = Duration::from_secs(2);
/// How often it looks again meanwhile.
const POLL: Duration = Duration::from_millis(20);
/// The most of a transcript's end that is read: a turn's lines beyond it
/// (a prompt line further back) leave the turn not measured.
pub const MAX_READ: u64 = 32 << 20;

/// Why a turn's usage is not known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotMeasured {
    /// The hook named no transcript, or one that is not this session's.
    Path(&'static str),
    /// The transcript could not be opened or read as ours.
    Unreadable(String),
    /// The turn's prompt line is not in the transcript's end.
    NoPrompt,
}

impl std::fmt::Display for NotMeasured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotMeasured::Path(why) => write!(f, "the transcript path {why}"),
            NotMeasured::Unreadable(e) => write!(f, "the transcript cannot be read: {e}"),
            NotMeasured::NoPrompt => f.write_str("the turn's prompt is not in the transcript"),
        }
    }
}

/// Where Claude Code keeps its transcripts: `$CLAUDE_CONFIG_DIR/projects`,
/// else `~/.claude/projects`.
pub fn projects_dir() -> PathBuf {
    match std::env::var_os("CLAUDE_CONFIG_DIR").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d).join("projects"),
        None => paliadin_core::dirs::home().join(".claude/projects"),
    }
}

/// A name Claude Code gives a project directory (the workdir's path with
/// every other character a `-`) or a transcript: no `/`, never `.` or `..`.
fn plain_name(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// The names below `projects` of `path`, if it is the transcript of the
/// agent session `session` (`<project>/<session>.jsonl`).
pub fn transcript_names(
    projects: &Path,
    path: &str,
    session: &str,
) -> Result<Vec<String>, NotMeasured> {
    let rest = Path::new(path)
        .strip_prefix(projects)
        .map_err(|_| NotMeasured::Path("is not under Claude Code's projects directory"))?;
    let names: Vec<String> = rest
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    match names.as_slice() {
        [project, file] if plain_name(project) && *file == format!("{session}.jsonl") => Ok(names),
        [_, _] => Err(NotMeasured::Path("names another session")),
        _ => Err(NotMeasured::Path("is not a transcript's")),
    }
}

/// Opens `names` below `root`, one name at a time, following no symlink:
/// a regular file of this user.
fn open_below(root: &Path, names: &[String]) -> Result<File, NotMeasured> {
    let io = |e: std::io::Error| NotMeasured::Unreadable(e.to_string());
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut dir: OwnedFd = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io(e.into()))?;
    let (file, dirs) = names.split_last().ok_or(NotMeasured::Path("is empty"))?;
    for d in dirs {
        dir = rustix::fs::openat(&dir, d.as_str(), dir_flags, Mode::empty())
            .map_err(|e| io(e.into()))?;
    }
    let fd = rustix::fs::openat(
        &dir,
        file.as_str(),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io(e.into()))?;
    let st = rustix::fs::fstat(&fd).map_err(|e| io(e.into()))?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(NotMeasured::Unreadable("not a regular file".into()));
    }
    if st.st_uid != rustix::process::getuid().as_raw() {
        return Err(NotMeasured::Unreadable("not this user's file".into()));
    }
    Ok(File::from(fd))
}

/// What the turn's prompt line carries: the envelope's tag with its id.
fn marker(turn: &Uuid) -> String {
    format!("{}{turn}]", paliadin_core::envelope::TAG)
}

/// The sum of a turn's requests, line by line.
#[derive(Debug, Default)]
pub struct Tally {
    /// The turn's prompt line was seen (or no prompt gates the lines).
    started: bool,
    /// Another turn's prompt line came after it: nothing more is this turn's.
    ended: bool,
    marker: String,
    seen: HashSet<String>,
    pub usage: Usage,
    /// The assistant line whose text is the turn's last message was seen.
    pub last_seen: bool,
    last_text: String,
    /// The subagents the turn launched (the Agent tool's result names
    /// each), whose requests are in files of their own.
    pub agents: Vec<String>,
}

/// The most subagents of one turn whose files are read.
const MAX_AGENTS: usize = 32;

impl Tally {
    /// A tally of turn `turn`'s lines, ending at the message `last_text`.
    pub fn for_turn(turn: Uuid, last_text: &str) -> Tally {
        Tally {
            marker: marker(&turn),
            last_text: last_text.trim().to_owned(),
            ..Tally::default()
        }
    }

    /// A tally of every request in a file (a subagent's).
    pub fn whole() -> Tally {
        Tally {
            started: true,
            ..Tally::default()
        }
    }

    /// Whether the turn's lines began.
    pub fn started(&self) -> bool {
        self.started
    }

    /// Takes one transcript line.
    pub fn line(&mut self, line: &[u8]) {
        let Ok(v) = serde_json::from_slice::<Value>(line) else {
            return;
        };
        let kind = v["type"].as_str().unwrap_or_default();
        // A prompt is a user line that is no tool's result (which could
        // quote anything, an envelope too).
        let said = v["message"].to_string();
        let prompt = kind == "user" && !said.contains("\"tool_result\"");
        if prompt && !self.marker.is_empty() && said.contains(&self.marker) {
            // The prompt line: the turn starts here (a retry's or an
            // earlier look's lines before it are not this turn's).
            *self = Tally {
                started: true,
                marker: std::mem::take(&mut self.marker),
                last_text: std::mem::take(&mut self.last_text),
                ..Tally::default()
            };
            return;
        }
        let tagged = !self.marker.is_empty() && said.contains(paliadin_core::envelope::TAG);
        if prompt && self.started && tagged {
            // The next turn's prompt (typed while this hook still looks).
            self.ended = true;
        }
        if !self.started || self.ended {
            return;
        }
        if kind == "user" {
            let agent = v["toolUseResult"]["agentId"].as_str().unwrap_or_default();
            if plain_name(agent)
                && self.agents.len() < MAX_AGENTS
                && !self.agents.iter().any(|a| a == agent)
            {
                self.agents.push(agent.to_owned());
            }
        }
        if kind != "assistant" {
            return;
        }
        let m = &v["message"];
        let text: String = m["content"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n");
        // One line per content block: the message's last block ends it.
        let text = text.trim();
        if !text.is_empty() && self.last_text.ends_with(text) {
            self.last_seen = true;
        }
        let model = m["model"].as_str().unwrap_or_default();
        if model == "<synthetic>" {
            return;
        }
        let id = v["requestId"]
            .as_str()
            .or_else(|| m["id"].as_str())
            .unwrap_or_default();
        if id.is_empty() || !self.seen.insert(id.to_owned()) {
            return;
        }
        let u = &m["usage"];
        let n = |k: &str| u[k].as_u64().unwrap_or(0);
        self.usage.input_tokens += n("input_tokens");
        self.usage.output_tokens += n("output_tokens");
        self.usage.cache_read_input_tokens += n("cache_read_input_tokens");
        self.usage.cache_creation_input_tokens += n("cache_creation_input_tokens");
        self.usage.requests += 1;
        if !model.is_empty() {
            self.usage.model = Some(model.to_owned());
        }
    }
}

/// A transcript read from near its end, then as it grows: whole lines only.
struct Lines {
    file: File,
    partial: Vec<u8>,
    /// Bytes read so far, bounded by [`MAX_READ`].
    read: u64,
    /// Whether the first line read may be the tail of a line before it.
    skip_first: bool,
}

impl Lines {
    fn open(mut file: File) -> std::io::Result<Lines> {
        let len = file.metadata()?.len();
        let start = len.saturating_sub(MAX_READ);
        file.seek(SeekFrom::Start(start))?;
        Ok(Lines {
            file,
            partial: Vec::new(),
            read: 0,
            skip_first: start > 0,
        })
    }

    /// Feeds the whole lines written since the last call to `tally`.
    fn feed(&mut self, tally: &mut Tally) -> std::io::Result<()> {
        let mut chunk = Vec::new();
        let left = MAX_READ.saturating_sub(self.read);
        (&mut self.file).take(left).read_to_end(&mut chunk)?;
        self.read += chunk.len() as u64;
        self.partial.extend_from_slice(&chunk);
        let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return Ok(());
        };
        let whole: Vec<u8> = self.partial.drain(..=end).collect();
        for (i, line) in whole.split(|&b| b == b'\n').enumerate() {
            if i == 0 && std::mem::take(&mut self.skip_first) {
                continue;
            }
            if !line.is_empty() {
                tally.line(line);
            }
        }
        Ok(())
    }
}

/// Sums turn `turn`'s usage from the transcript at `path` (the agent
/// session `session`'s), waiting until `deadline` for the line of
/// `last_text`.
pub fn measure(
    projects: &Path,
    path: &str,
    session: &str,
    turn: Uuid,
    last_text: &str,
    deadline: Instant,
) -> Result<Usage, NotMeasured> {
    let names = transcript_names(projects, path, session)?;
    let file = open_below(projects, &names)?;
    let unreadable = |e: std::io::Error| NotMeasured::Unreadable(e.to_string());
    let mut lines = Lines::open(file).map_err(unreadable)?;
    let mut tally = Tally::for_turn(turn, last_text);
    loop {
        lines.feed(&mut tally).map_err(unreadable)?;
        if tally.last_seen || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(POLL);
    }
    if !tally.started() {
        return Err(NotMeasured::NoPrompt);
    }
    let mut usage = tally.usage;
    // A subagent's requests, as far as it got by the turn's end (one still
    // running in the background adds the rest to no turn): its file is
    // `<project>/<session>/subagents/agent-<id>.jsonl`.
    for agent in &tally.agents {
        let names = [
            names[0].clone(),
            session.to_owned(),
            "subagents".to_owned(),
            format!("agent-{agent}.jsonl"),
        ];
        let Ok(file) = open_below(projects, &names) else {
            continue;
        };
        let mut sub = Tally::whole();
        if Lines::open(file).and_then(|mut l| l.feed(&mut sub)).is_ok() {
            let u = sub.usage;
            usage.input_tokens += u.input_tokens;
            usage.output_tokens += u.output_tokens;
            usage.cache_read_input_tokens += u.cache_read_input_tokens;
            usage.cache_creation_input_tokens += u.cache_creation_input_tokens;
            usage.requests += u.requests;
        }
    }
    Ok(usage)
}

/// The `Stop`/`StopFailure` hook's part, after the outcome is recorded:
/// the turn's usage (or why it is not known) as its `usage` event, then
/// the mark `run-turn-events` waits for. Never fails.
pub fn record(dir: &SessionDir, t: &TurnDir, v: &Value) {
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("");
    let result = match dir.agent_session() {
        Some(session) if session == s("session_id") => measure(
            &projects_dir(),
            s("transcript_path"),
            &session,
            t.id,
            s("last_assistant_message"),
            Instant::now() + WAIT,
        ),
        Some(_) => Err(NotMeasured::Path("names another session")),
        None => Err(NotMeasured::Path(
            "cannot be checked: the agent gave no session id at its start",
        )),
    };
    let (usage, detail) = match result {
        Ok(u) => (Some(u), None),
        Err(e) => (None, Some(format!("not measured: {e}"))),
    };
    t.record(&Event {
        detail,
        usage,
        ..Event::new(
            Kind::Usage,
            paliadin_core::timefmt::rfc3339_ms(paliadin_core::timefmt::now_ms()),
        )
    });
    let _ = t.mark(TurnMark::Measured, "");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SESSION: &str = "1b92fe9f-0000-4000-8000-000000000001";

    fn assistant(request: &str, text: &str, model: &str, usage: [u64; 4]) -> String {
        json!({"type": "assistant", "requestId": request, "message": {
            "id": format!("msg_{request}"), "model": model,
            "content": [{"type": "text", "text": text}],
            "usage": {"input_tokens": usage[0], "output_tokens": usage[1],
                      "cache_read_input_tokens": usage[2], "cache_creation_input_tokens": usage[3]}}})
        .to_string()
    }

    #[test]
    fn each_request_counts_once_from_the_prompt_on_and_synthetic_lines_never() {
        let turn = Uuid::new_v4();
        let mut t = Tally::for_turn(turn, "the answer");
        let prompt = json!({"type": "user", "message": {"role": "user",
            "content": format!("{} Answer the person's message below.\nhi", marker(&turn))}});
        for line in [
            assistant("req_0", "an earlier turn", "m", [9, 9, 9, 9]),
            prompt.to_string(),
            assistant(
                "req_1",
                "Let me look.",
                "claude-opus-5-5",
                [100, 20, 5000, 300],
            ),
            assistant("req_1", "", "claude-opus-5-5", [100, 20, 5000, 300]),
            assistant("req_2", "the answer", "claude-opus-5-5", [7, 3, 11, 13]),
            assistant(
                "req_3",
                "You've hit your limit",
                "<synthetic>",
                [0, 0, 0, 0],
            ),
            // The next turn's prompt and answer: not this turn's.
            json!({"type": "user", "message": {"content": marker(&Uuid::new_v4())}}).to_string(),
            assistant("req_4", "the next answer", "claude-opus-5-5", [1, 1, 1, 1]),
        ] {
            t.line(line.as_bytes());
        }
        assert!(t.started() && t.last_seen);
        assert_eq!(
            t.usage,
            Usage {
                input_tokens: 107,
                output_tokens: 23,
                cache_read_input_tokens: 5011,
                cache_creation_input_tokens: 313,
                model: Some("claude-opus-5-5".into()),
                requests: 2,
            }
        );
    }

    #[test]
    fn only_this_sessions_transcript_under_projects_is_read() {
        let p = Path::new("/h/.claude/projects");
        let ok = format!("/h/.claude/projects/-h-work/{SESSION}.jsonl");
        assert_eq!(
            transcript_names(p, &ok, SESSION).expect("ok"),
            ["-h-work", &format!("{SESSION}.jsonl")]
        );
        for bad in [
            "/h/.claude/projects/-h-work/other.jsonl".to_owned(),
            format!("/h/.claude/projects/../x/{SESSION}.jsonl"),
            format!("/h/.claude/projects/{SESSION}.jsonl"),
            format!("/h/elsewhere/-h-work/{SESSION}.jsonl"),
            format!("/h/.claude/projects/a/b/{SESSION}.jsonl"),
            "relative.jsonl".to_owned(),
        ] {
            assert!(transcript_names(p, &bad, SESSION).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_symlinked_transcript_is_not_followed_and_the_end_is_read_as_it_grows() {
        let tmp = tempfile::tempdir().expect("tmp");
        let projects = tmp.path().join("projects");
        std::fs::create_dir_all(projects.join("w")).expect("dirs");
        let secret = tmp.path().join("secret.jsonl");
        std::fs::write(&secret, "x\n").expect("secret");
        let file = format!("{SESSION}.jsonl");
        std::os::unix::fs::symlink(&secret, projects.join("w").join(&file)).expect("link");
        let path = projects.join("w").join(&file).display().to_string();
        let turn = Uuid::new_v4();
        let far = Instant::now();
        assert!(matches!(
            measure(&projects, &path, SESSION, turn, "a", far),
            Err(NotMeasured::Unreadable(_))
        ));
        std::fs::remove_file(projects.join("w").join(&file)).expect("unlink");
        std::os::unix::fs::symlink(tmp.path(), projects.join("l")).expect("dir link");
        let via = projects.join("l").join(&file).display().to_string();
        std::fs::write(tmp.path().join(&file), "").expect("file");
        assert!(measure(&projects, &via, SESSION, turn, "a", far).is_err());
        // A real one, whose last line comes late.
        let prompt = json!({"type": "user", "message": {"content": marker(&turn)}});
        std::fs::write(projects.join("w").join(&file), format!("{prompt}\n")).expect("write");
        let late = projects.join("w").join(&file);
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            use std::io::Write as _;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(late)
                .expect("open");
            writeln!(f, "{}", assistant("req_1", "done", "m", [1, 2, 3, 4])).expect("append");
        });
        let u = measure(
            &projects,
            &path,
            SESSION,
            turn,
            "done",
            Instant::now() + WAIT,
        )
        .expect("measured");
        writer.join().expect("writer");
        assert_eq!((u.requests, u.input_tokens, u.output_tokens), (1, 1, 2));
        // A subagent the turn launched: its own file counts too.
        let agent = json!({"type": "user", "toolUseResult": {"status": "async_launched", "agentId": "a1b2"},
            "message": {"content": [{"type": "tool_result", "content": "launched"}]}});
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(projects.join("w").join(&file))
            .expect("open");
        use std::io::Write as _;
        writeln!(f, "{agent}").expect("append");
        let subs = projects.join("w").join(SESSION).join("subagents");
        std::fs::create_dir_all(&subs).expect("subagents");
        std::fs::write(
            subs.join("agent-a1b2.jsonl"),
            format!("{}\n", assistant("req_9", "hi", "m", [7, 3, 11, 13])),
        )
        .expect("subagent");
        let u = measure(&projects, &path, SESSION, turn, "done", Instant::now()).expect("measured");
        assert_eq!(
            (u.requests, u.input_tokens, u.cache_creation_input_tokens),
            (2, 8, 17)
        );
        // No prompt line: not this turn's lines at all.
        let other = Uuid::new_v4();
        assert_eq!(
            measure(&projects, &path, SESSION, other, "done", Instant::now()),
            Err(NotMeasured::NoPrompt)
        );
    }
}
