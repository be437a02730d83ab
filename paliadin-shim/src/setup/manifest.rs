//! `install-laptop.manifest`: what setup did, one tab-separated entry a
//! line (`kind`, then its fields), in the order it did it, read back by
//! `--uninstall` last first. The format is the bash installer's, so either
//! can undo what the other did. Owns the entries; never writes the file
//! itself (that is [`super::changes::Changes::save_manifest`]'s, a change
//! like any other).

use std::path::{Path, PathBuf};

/// The manifest as it was when loaded, and what this run adds.
#[derive(Debug, Default)]
pub struct Manifest {
    pub path: PathBuf,
    /// The file's text without its trailing newlines.
    pub old: String,
    /// Entries this run added, each with its newline.
    pub new: String,
}

impl Manifest {
    pub fn new(path: &Path) -> Manifest {
        Manifest {
            path: path.to_owned(),
            ..Manifest::default()
        }
    }

    /// Reads the file (nothing when there is none).
    pub fn load(&mut self) {
        if self.path.is_file() {
            self.old = std::fs::read(&self.path)
                .map(|b| {
                    String::from_utf8_lossy(&b)
                        .trim_end_matches('\n')
                        .to_owned()
                })
                .unwrap_or_default();
        }
    }

    /// Whether the entry is there, old or new.
    pub fn has(&self, entry: &str) -> bool {
        self.old
            .split('\n')
            .chain(self.new.split('\n'))
            .any(|l| l == entry)
    }

    /// Adds one entry unless it is there already.
    pub fn record(&mut self, fields: &[&str]) {
        let entry = fields.join("\t");
        if !self.has(&entry) {
            self.new.push_str(&entry);
            self.new.push('\n');
        }
    }

    /// The text to write: the old entries, then the new.
    pub fn text(&self) -> String {
        if self.old.is_empty() {
            self.new.clone()
        } else {
            format!("{}\n{}", self.old, self.new)
        }
    }

    /// The file's entries, last first (the order in which to undo them).
    pub fn reversed(&self) -> Vec<String> {
        let text = std::fs::read(&self.path).unwrap_or_default();
        let mut out: Vec<String> = super::lines(&text)
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect();
        out.reverse();
        out
    }
}

/// One entry, split as the bash installer's `cut -f` split it.
#[derive(Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    pub kind: &'a str,
    /// The second field (the whole line when it has no tab).
    pub a: &'a str,
    /// The third field and everything after it.
    pub rest: &'a str,
    /// The third field alone, and the fourth.
    pub b: &'a str,
    pub c: &'a str,
}

pub fn parse(line: &str) -> Entry<'_> {
    let mut f = line.splitn(2, '\t');
    let kind = f.next().unwrap_or_default();
    let tail = f.next();
    let Some(tail) = tail else {
        return Entry {
            kind,
            a: line,
            rest: line,
            b: line,
            c: line,
        };
    };
    let (a, rest) = tail.split_once('\t').unwrap_or((tail, ""));
    let (b, after) = rest.split_once('\t').unwrap_or((rest, ""));
    let c = after.split('\t').next().unwrap_or_default();
    Entry {
        kind,
        a,
        rest,
        b,
        c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_split_as_the_installer_wrote_them() {
        let e = parse("trust\t/h/.claude.json\t/h/work\tfile,projects,entry");
        assert_eq!(
            (e.kind, e.a, e.b, e.c),
            ("trust", "/h/.claude.json", "/h/work", "file,projects,entry")
        );
        let e =
            parse("authline\t/h/.ssh/authorized_keys\trestrict,command=\"x\" ssh-ed25519 AAAA c");
        assert_eq!(e.rest, "restrict,command=\"x\" ssh-ed25519 AAAA c");
        assert_eq!(parse("dir\t/h/x").a, "/h/x");
    }

    #[test]
    fn records_each_entry_once() {
        let mut m = Manifest::new(Path::new("/nonexistent"));
        m.old = "dir\t/a".into();
        m.record(&["dir", "/a"]);
        m.record(&["bin", "/b"]);
        m.record(&["bin", "/b"]);
        assert_eq!(m.text(), "dir\t/a\nbin\t/b\n");
    }
}
