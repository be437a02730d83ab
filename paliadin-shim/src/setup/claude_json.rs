//! The workdir's trust entry in `~/.claude.json`. Claude Code asks "Do you
//! trust the files in this folder?" the first time it starts in a
//! directory, and its default answer exits: an unattended pane would stop
//! there. The answer is stored under
//! `projects["<real path>"].hasTrustDialogAccepted`.
//!
//! Claude rewrites that file often, so it is edited, not replaced: only the
//! objects on the way to that one key (the top, `projects`, the entry) are
//! written again, in their order and the file's indentation (as
//! `JSON.stringify(…, null, 2)` or compact); every other value keeps its
//! bytes. The new text goes to a temp file beside the real file (a
//! symlinked `~/.claude.json` keeps its link) and is renamed over it, with
//! its mode kept. Whether a claude of this HOME runs now, so that the file
//! is in use, is the caller's to ask first.

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::fmt;
use std::path::{Path, PathBuf};

const KEY: &str = "hasTrustDialogAccepted";

/// A JSON value as setup holds it: the objects it edits, opened, and
/// everything else as the bytes it was read as.
#[derive(Debug, Clone)]
enum Node {
    Raw(Box<RawValue>),
    Obj(Vec<(String, Node)>),
}

/// An object's members in the file's order; a repeated key keeps its
/// first place and its last value (as every JSON reader that keeps order).
struct Members(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Members, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut out: Vec<(String, Box<RawValue>)> = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Box<RawValue>>()? {
                    match out.iter_mut().find(|(key, _)| *key == k) {
                        Some(slot) => slot.1 = v,
                        None => out.push((k, v)),
                    }
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// A raw value opened as an object, `None` when it is something else.
fn open(raw: &RawValue) -> Option<Vec<(String, Node)>> {
    let m: Members = serde_json::from_str(raw.get()).ok()?;
    Some(m.0.into_iter().map(|(k, v)| (k, Node::Raw(v))).collect())
}

fn get<'a>(members: &'a [(String, Node)], key: &str) -> Option<&'a Node> {
    members.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// The file's layout: pretty with this many spaces, or compact; and
/// whether it ends with a newline.
#[derive(Debug, Clone, Copy)]
struct Layout {
    indent: Option<usize>,
    newline: bool,
}

impl Layout {
    fn of(text: &str) -> Layout {
        let stripped = text.trim_start();
        let indent = (text.is_empty() || stripped.starts_with("{\n")).then(|| {
            let rest = stripped.get(2..).unwrap_or_default();
            let n = rest.len() - rest.trim_start_matches(' ').len();
            if n == 0 {
                2
            } else {
                n
            }
        });
        Layout {
            indent,
            newline: text.is_empty() || text.ends_with('\n'),
        }
    }
}

fn write_node(out: &mut String, node: &Node, depth: usize, layout: Layout) {
    match node {
        Node::Raw(raw) => out.push_str(raw.get()),
        Node::Obj(members) if members.is_empty() => out.push_str("{}"),
        Node::Obj(members) => {
            out.push('{');
            for (i, (k, v)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if let Some(n) = layout.indent {
                    out.push('\n');
                    out.push_str(&" ".repeat(n * (depth + 1)));
                }
                out.push_str(&serde_json::to_string(k).unwrap_or_default());
                out.push_str(if layout.indent.is_some() { ": " } else { ":" });
                write_node(out, v, depth + 1, layout);
            }
            if let Some(n) = layout.indent {
                out.push('\n');
                out.push_str(&" ".repeat(n * depth));
            }
            out.push('}');
        }
    }
}

/// What went wrong with the file.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not valid JSON: {0}")]
    Invalid(String),
    #[error("{0} is not a JSON object")]
    NotAnObject(&'static str),
}

/// `~/.claude.json` as read.
pub struct ClaudeJson {
    path: PathBuf,
    /// `None`: there is no file.
    text: Option<String>,
    top: Vec<(String, Node)>,
}

/// What [`ClaudeJson::add`] created, as the manifest records it for the
/// undo: `file`, `projects`, `entry`, or just the `key`.
pub type Created = String;

impl ClaudeJson {
    pub fn read(path: &Path) -> Result<ClaudeJson, TrustError> {
        let text = match std::fs::read(path) {
            Ok(b) => Some(String::from_utf8(b).map_err(|e| TrustError::Invalid(e.to_string()))?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e.into()),
        };
        let top = match text.as_deref() {
            None => Vec::new(),
            Some(t) if t.trim().is_empty() => Vec::new(),
            Some(t) => {
                let raw: Box<RawValue> =
                    serde_json::from_str(t).map_err(|e| TrustError::Invalid(e.to_string()))?;
                open(&raw).ok_or(TrustError::NotAnObject("the file"))?
            }
        };
        Ok(ClaudeJson {
            path: path.to_owned(),
            text,
            top,
        })
    }

    fn projects(&self) -> Option<&Node> {
        get(&self.top, "projects")
    }

    /// Whether `project` is trusted.
    pub fn trusted(&self, project: &str) -> bool {
        let Some(Node::Raw(projects)) = self.projects() else {
            return false;
        };
        let Some(entry) = open(projects).and_then(|p| get(&p, project).cloned()) else {
            return false;
        };
        let Node::Raw(entry) = entry else {
            return false;
        };
        open(&entry)
            .and_then(|e| match get(&e, KEY) {
                Some(Node::Raw(v)) => Some(v.get() == "true"),
                _ => None,
            })
            .unwrap_or(false)
    }

    /// Marks `project` trusted; returns what it created.
    pub fn add(&mut self, project: &str) -> Result<Created, TrustError> {
        let mut created = Vec::new();
        if self.text.is_none() {
            created.push("file");
        }
        let mut projects = match self.projects() {
            None => {
                created.push("projects");
                Vec::new()
            }
            Some(Node::Raw(raw)) => open(raw).ok_or(TrustError::NotAnObject("projects"))?,
            Some(Node::Obj(m)) => m.clone(),
        };
        let mut entry = match get(&projects, project) {
            None => {
                created.push("entry");
                Vec::new()
            }
            Some(Node::Raw(raw)) => {
                open(raw).ok_or(TrustError::NotAnObject("the project entry"))?
            }
            Some(Node::Obj(m)) => m.clone(),
        };
        let yes = Node::Raw(RawValue::from_string("true".into()).expect("true is JSON"));
        set(&mut entry, KEY, yes);
        set(&mut projects, project, Node::Obj(entry));
        set(&mut self.top, "projects", Node::Obj(projects));
        self.write(self.text.is_some())?;
        Ok(if created.is_empty() {
            "key".into()
        } else {
            created.join(",")
        })
    }

    /// Takes the trust entry out again, and what [`Self::add`] created
    /// (`flags`) if nothing else is in it now; removes the file if setup
    /// created it and it is empty.
    pub fn remove(&mut self, project: &str, flags: &str) -> Result<(), TrustError> {
        if self.text.is_none() || !self.trusted(project) {
            return Ok(());
        }
        let flag = |f: &str| flags.split(',').any(|x| x == f);
        let Some(Node::Raw(raw)) = self.projects() else {
            return Ok(());
        };
        let mut projects = open(raw).ok_or(TrustError::NotAnObject("projects"))?;
        let Some(Node::Raw(raw)) = get(&projects, project) else {
            return Ok(());
        };
        let mut entry = open(raw).ok_or(TrustError::NotAnObject("the project entry"))?;
        entry.retain(|(k, _)| k != KEY);
        if flag("entry") && entry.is_empty() {
            projects.retain(|(k, _)| k != project);
        } else {
            set(&mut projects, project, Node::Obj(entry));
        }
        if flag("projects") && projects.is_empty() {
            self.top.retain(|(k, _)| k != "projects");
        } else {
            set(&mut self.top, "projects", Node::Obj(projects));
        }
        if flag("file") && self.top.is_empty() {
            return Ok(std::fs::remove_file(&self.path)?);
        }
        self.write(true)
    }

    /// The file's new text.
    fn render(&self) -> String {
        let layout = Layout::of(self.text.as_deref().unwrap_or_default());
        let mut out = String::new();
        write_node(&mut out, &Node::Obj(self.top.clone()), 0, layout);
        if layout.newline {
            out.push('\n');
        }
        out
    }

    fn write(&self, existed: bool) -> Result<(), TrustError> {
        let target = super::write_target(&self.path).map_err(|f| std::io::Error::other(f.msg))?;
        let mode = if existed {
            super::mode_of(&target).unwrap_or(0o600)
        } else {
            0o600
        };
        paliadin_core::fsutil::write_atomic(&target, self.render().as_bytes(), mode)?;
        Ok(())
    }
}

/// Sets `key` in place, or appends it.
fn set(members: &mut Vec<(String, Node)>, key: &str, value: Node) {
    match members.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = value,
        None => members.push((key.to_owned(), value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(before: Option<&str>, project: &str) -> (String, Created, Option<String>) {
        let tmp = tempfile::tempdir().expect("tmp");
        let path = tmp.path().join(".claude.json");
        if let Some(b) = before {
            std::fs::write(&path, b).expect("write");
        }
        let mut j = ClaudeJson::read(&path).expect("read");
        assert!(!j.trusted(project));
        let created = j.add(project).expect("add");
        let after = std::fs::read_to_string(&path).expect("read");
        let mut j = ClaudeJson::read(&path).expect("read");
        assert!(j.trusted(project), "{after}");
        j.remove(project, &created).expect("remove");
        (after, created, std::fs::read_to_string(&path).ok())
    }

    #[test]
    fn adds_one_key_in_the_files_own_layout_and_takes_it_out_again() {
        // (before, after, what add created); each is given back by remove.
        let cases: [(Option<&str>, &str, &str); 4] = [
            // Claude's own layout: the entry goes last in projects.
            (
                Some("{\n  \"numStartups\": 3,\n  \"projects\": {\n    \"/elsewhere\": {\n      \"allowedTools\": [],\n      \"hasTrustDialogAccepted\": false\n    }\n  },\n  \"theme\": \"dark\"\n}\n"),
                "{\n  \"numStartups\": 3,\n  \"projects\": {\n    \"/elsewhere\": {\n      \"allowedTools\": [],\n      \"hasTrustDialogAccepted\": false\n    },\n    \"/w\": {\n      \"hasTrustDialogAccepted\": true\n    }\n  },\n  \"theme\": \"dark\"\n}\n",
                "entry",
            ),
            // Compact, no newline; values it does not touch keep their
            // bytes (numbers beyond f64, escapes).
            (
                Some("{\"n\":123456789012345678901234567890,\"s\":\"\\u00e9\",\"projects\":{}}"),
                "{\"n\":123456789012345678901234567890,\"s\":\"\\u00e9\",\"projects\":{\"/w\":{\"hasTrustDialogAccepted\":true}}}",
                "entry",
            ),
            // No file: made, and removed again.
            (
                None,
                "{\n  \"projects\": {\n    \"/w\": {\n      \"hasTrustDialogAccepted\": true\n    }\n  }\n}\n",
                "file,projects,entry",
            ),
            // An entry claude made, untrusted: only the key changes.
            (
                Some("{\n    \"projects\": {\n        \"/w\": {\"hasTrustDialogAccepted\": false, \"x\": 1}\n    }\n}"),
                "{\n    \"projects\": {\n        \"/w\": {\n            \"hasTrustDialogAccepted\": true,\n            \"x\": 1\n        }\n    }\n}",
                "key",
            ),
        ];
        for (before, want, want_created) in cases {
            let (after, created, back) = round(before, "/w");
            assert_eq!(after, want);
            assert_eq!(created, want_created);
            if want_created != "key" {
                assert_eq!(back.as_deref(), before);
            }
        }
    }

    #[test]
    fn refuses_what_is_not_its_shape() {
        let tmp = tempfile::tempdir().expect("tmp");
        let path = tmp.path().join(".claude.json");
        for bad in ["[1]", "{", "{\"a\":1,}", "nul"] {
            std::fs::write(&path, bad).expect("write");
            assert!(ClaudeJson::read(&path).is_err(), "{bad}");
        }
        std::fs::write(&path, "{\"projects\": []}").expect("write");
        let mut j = ClaudeJson::read(&path).expect("read");
        assert!(!j.trusted("/w"));
        assert!(matches!(
            j.add("/w"),
            Err(TrustError::NotAnObject("projects"))
        ));
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "{\"projects\": []}"
        );
    }
}
