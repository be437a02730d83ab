//! Every change setup makes, made (or, in a dry run, only told) here, one
//! line each on stdout (`done:` / `would:`), counted, and recorded in the
//! manifest. Files are replaced atomically (temp file, fsync, rename) with
//! their mode kept or given; a symlinked file keeps its link and its target
//! is rewritten. Never removes a directory that is not empty, a line it did
//! not add, or a file it did not install.

use paliadin_core::fsutil;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use super::manifest::Manifest;
use super::{has_line, lines, mode_of, write_target, Fail, Result};

/// One run's changes.
pub struct Changes {
    /// The name errors and warnings carry (`laptop.sh` when the bootstrap runs us).
    pub prog: String,
    pub dry_run: bool,
    /// How many changes this run made (or would make).
    pub count: usize,
    pub manifest: Manifest,
    /// Directories a dry run pretends to have created.
    dry_dirs: Vec<PathBuf>,
}

/// A line on stdout (a closed stdout loses the line, not the run).
pub fn say(s: &str) {
    let _ = crate::output::print(format!("{s}\n").as_bytes());
}

impl Changes {
    pub fn new(prog: &str, dry_run: bool, manifest: &Path) -> Changes {
        Changes {
            prog: prog.to_owned(),
            dry_run,
            count: 0,
            manifest: Manifest::new(manifest),
            dry_dirs: Vec::new(),
        }
    }

    /// Starts a pass over the machine: nothing counted, the manifest as on disk.
    pub fn begin(&mut self, dry_run: bool) {
        self.dry_run = dry_run;
        self.count = 0;
        self.dry_dirs.clear();
        self.manifest = Manifest::new(&self.manifest.path);
        self.manifest.load();
    }

    pub fn warn(&self, s: &str) {
        let _ = writeln!(std::io::stderr(), "{}: warning: {s}", self.prog);
    }

    /// One change, done now (or only told, in a dry run).
    pub fn change(&mut self, s: &str) {
        self.count += 1;
        say(&format!(
            "{} {s}",
            if self.dry_run { "would:" } else { "done:" }
        ));
    }

    pub fn unchanged(&self, s: &str) {
        say(&format!("ok: {s}"));
    }

    pub fn record(&mut self, fields: &[&str]) {
        self.manifest.record(fields);
    }

    /// Creates `dir` with `mode` (its missing parents 0755), recording
    /// each directory it created.
    pub fn ensure_dir(&mut self, dir: &Path, mode: u32) -> Result<()> {
        if dir.is_dir() || (self.dry_run && self.dry_dirs.iter().any(|d| d == dir)) {
            return Ok(());
        }
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            self.ensure_dir(parent, 0o755)?;
        }
        self.change(&format!(
            "create directory {} (mode {mode:o})",
            dir.display()
        ));
        if self.dry_run {
            self.dry_dirs.push(dir.to_owned());
        } else {
            std::fs::DirBuilder::new()
                .mode(mode)
                .create(dir)
                .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)))
                .map_err(|e| Fail::die(format!("cannot create {}: {e}", dir.display())))?;
        }
        self.record(&["dir", &dir.to_string_lossy()]);
        Ok(())
    }

    /// Writes `data` to `dest` (through its symlink) with `mode`, atomically.
    pub fn write_atomic(&self, dest: &Path, data: &[u8], mode: u32) -> Result<()> {
        let target = write_target(dest)?;
        fsutil::write_atomic(&target, data, mode)
            .map_err(|e| Fail::die(format!("cannot write {}: {e}", target.display())))
    }

    /// Puts `data` at `dest` with `mode`, replacing it only if its content
    /// differs; records `kind dest`.
    pub fn install_file(
        &mut self,
        data: &[u8],
        dest: &Path,
        mode: u32,
        kind: &str,
        what: &str,
    ) -> Result<()> {
        if let Some(parent) = dest.parent() {
            self.ensure_dir(parent, 0o755)?;
        }
        let same = dest.is_file() && std::fs::read(dest).is_ok_and(|old| old == data);
        if same {
            if mode_of(dest) != Some(mode) {
                self.change(&format!("set mode {mode:o} on {}", dest.display()));
                if !self.dry_run {
                    std::fs::set_permissions(dest, std::fs::Permissions::from_mode(mode))
                        .map_err(|e| Fail::die(format!("cannot chmod {}: {e}", dest.display())))?;
                }
            } else {
                self.unchanged(&format!("{what} {} is up to date", dest.display()));
            }
        } else {
            if dest.exists() {
                self.change(&format!("replace {what} {}", dest.display()));
            } else {
                self.change(&format!(
                    "install {what} {} (mode {mode:o})",
                    dest.display()
                ));
            }
            if !self.dry_run {
                self.write_atomic(dest, data, mode)?;
            }
        }
        self.record(&[kind, &dest.to_string_lossy()]);
        Ok(())
    }

    /// Removes `path` (a symlink itself, not its target) if it is there.
    pub fn remove_file(&mut self, path: &Path, what: &str) -> Result<()> {
        if !path.exists() && std::fs::symlink_metadata(path).is_err() {
            return Ok(());
        }
        self.change(&format!("remove {what} {}", path.display()));
        if !self.dry_run {
            std::fs::remove_file(path)
                .map_err(|e| Fail::die(format!("cannot remove {}: {e}", path.display())))?;
        }
        Ok(())
    }

    /// Removes `dir` if it is empty, else says why it stays.
    pub fn remove_dir(&mut self, dir: &Path) -> Result<()> {
        if !dir.is_dir() {
            return Ok(());
        }
        if self.dry_run {
            say(&format!(
                "would: remove directory {} if it is empty then",
                dir.display()
            ));
            return Ok(());
        }
        let empty = std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none());
        if !empty {
            say(&format!("kept: {} (not empty)", dir.display()));
            return Ok(());
        }
        self.change(&format!("remove directory {}", dir.display()));
        std::fs::remove_dir(dir)
            .map_err(|e| Fail::die(format!("cannot remove {}: {e}", dir.display())))
    }

    /// Appends `line` to `file` (created 0600 if missing, its mode kept
    /// otherwise) and records it as `kind`. A last line without its newline
    /// gets one first, and the manifest says so, so that [`Self::remove_line`]
    /// can give the file back byte for byte.
    pub fn append_line(&mut self, file: &Path, line: &str, kind: &str) -> Result<()> {
        let name = file.to_string_lossy().into_owned();
        let exists = file.exists();
        if !exists {
            self.change(&format!("create {name} (mode 600)"));
            self.record(&[&format!("{kind}-file"), &name]);
        }
        self.change(&format!("add to {name}: {line}"));
        let old = if exists {
            std::fs::read(file).map_err(|e| Fail::die(format!("cannot read {name}: {e}")))?
        } else {
            Vec::new()
        };
        let needs_newline = old.last().is_some_and(|&b| b != b'\n');
        if needs_newline {
            self.record(&[&format!("{kind}-newline"), &name]);
        }
        self.record(&[kind, &name, line]);
        if self.dry_run {
            return Ok(());
        }
        let mut text = old;
        if needs_newline {
            text.push(b'\n');
        }
        text.extend_from_slice(line.as_bytes());
        text.push(b'\n');
        let mode = if exists {
            mode_of(file).unwrap_or(0o600)
        } else {
            0o600
        };
        self.write_atomic(file, &text, mode)
    }

    /// Undoes [`Self::append_line`]: every copy of `line` goes, and the file
    /// too if setup created it and nothing else is left in it.
    pub fn remove_line(&mut self, file: &Path, line: &str, kind: &str) -> Result<()> {
        if !file.is_file() {
            return Ok(());
        }
        let name = file.to_string_lossy().into_owned();
        let text =
            std::fs::read(file).map_err(|e| Fail::die(format!("cannot read {name}: {e}")))?;
        if has_line(&text, line) {
            self.change(&format!("remove from {name}: {line}"));
            if !self.dry_run {
                let strip = self.manifest.has(&format!("{kind}-newline\t{name}"))
                    && lines(&text).last() == Some(line.as_bytes());
                let kept: Vec<&[u8]> = lines(&text).filter(|l| *l != line.as_bytes()).collect();
                let mut out = Vec::new();
                for (i, l) in kept.iter().enumerate() {
                    out.extend_from_slice(l);
                    if !(strip && i + 1 == kept.len()) {
                        out.push(b'\n');
                    }
                }
                let mode = mode_of(file).unwrap_or(0o600);
                self.write_atomic(file, &out, mode)?;
            }
        }
        if self.manifest.has(&format!("{kind}-file\t{name}")) {
            if self.dry_run {
                say(&format!(
                    "would: remove {name} if nothing is left in it then"
                ));
            } else if std::fs::metadata(file).is_ok_and(|m| m.len() == 0) {
                self.remove_file(file, "the empty file")?;
            }
        }
        Ok(())
    }

    /// Writes the manifest if this run added entries to it.
    pub fn save_manifest(&mut self) -> Result<()> {
        if self.manifest.new.is_empty() || self.dry_run {
            return Ok(());
        }
        let path = self.manifest.path.clone();
        if let Some(dir) = path.parent() {
            self.ensure_dir(dir, 0o700)?;
        }
        let text = self.manifest.text();
        self.write_atomic(&path, text.as_bytes(), 0o600)?;
        self.manifest = Manifest::new(&path);
        self.manifest.load();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_added_then_removed_gives_the_file_back() {
        let tmp = tempfile::tempdir().expect("tmp");
        let file = tmp.path().join("authorized_keys");
        for before in ["", "a", "a\n", "a\nb"] {
            std::fs::write(&file, before).expect("write");
            let mut c = Changes::new("t", false, &tmp.path().join("m"));
            c.append_line(&file, "ours", "authline").expect("append");
            let after = std::fs::read_to_string(&file).expect("read");
            assert!(
                after.ends_with("ours\n") && after.starts_with(before),
                "{after:?}"
            );
            c.remove_line(&file, "ours", "authline").expect("remove");
            assert_eq!(std::fs::read_to_string(&file).expect("read"), before);
        }
    }
}
