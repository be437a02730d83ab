//! The pieces of `paliadin-shim setup` (the verb itself is
//! [`crate::cmd::setup`]): every change it makes to this laptop goes through
//! [`changes::Changes`], so that `--dry-run` changes nothing and every
//! change lands in the manifest `--uninstall` reads.
//!
//! Nothing here runs a shell, follows a symlink into a file it did not mean
//! to write, or touches a line or key it did not write; nothing here knows
//! an operating system (the one question that differs, whether a claude of
//! this HOME runs, is [`paliadin_core::process`]'s).

pub mod changes;
pub mod claude_json;
pub mod keys;
pub mod login_shell;
pub mod manifest;
pub mod shim_toml;
pub mod skill;

use std::path::{Path, PathBuf};

/// Why setup stopped: one line, and its exit status (1: it could not do
/// what it was asked; 2: it was asked something it refuses, nothing changed).
#[derive(Debug)]
pub struct Fail {
    pub code: u8,
    pub msg: String,
}

impl Fail {
    /// Exit 1.
    pub fn die(msg: impl Into<String>) -> Fail {
        Fail {
            code: 1,
            msg: msg.into(),
        }
    }
    /// Exit 2: refused before anything changed.
    pub fn refuse(msg: impl Into<String>) -> Fail {
        Fail {
            code: 2,
            msg: msg.into(),
        }
    }
}

pub type Result<T, E = Fail> = std::result::Result<T, E>;

/// `~` and `~/x` under `home`; a relative path against the current
/// directory (its real path, as `pwd -P`); an absolute one as given.
pub fn abspath(p: &str, home: &Path) -> PathBuf {
    if p == "~" {
        home.to_owned()
    } else if let Some(rest) = p.strip_prefix("~/") {
        PathBuf::from(format!("{}/{rest}", home.display()))
    } else if p.starts_with('/') {
        PathBuf::from(p)
    } else {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        PathBuf::from(format!("{}/{p}", cwd.display()))
    }
}

/// The real path of an existing directory, else the path as given.
pub fn realdir(p: &Path) -> PathBuf {
    if p.is_dir() {
        p.canonicalize().unwrap_or_else(|_| p.to_owned())
    } else {
        p.to_owned()
    }
}

/// The real path of `p` as far as it exists, the rest appended: where a
/// directory not yet made will be.
pub fn real_as_far_as_it_exists(p: &Path) -> PathBuf {
    let mut rest = Vec::new();
    let mut at = p.to_owned();
    loop {
        if let Ok(real) = at.canonicalize() {
            return rest.iter().rev().fold(real, |acc, c: &PathBuf| acc.join(c));
        }
        match (at.parent(), at.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(PathBuf::from(name));
                at = parent.to_owned();
            }
            _ => return p.to_owned(),
        }
    }
}

/// Whether a path can go into sshd's command line or a permission rule
/// without quoting.
pub fn plain_path(p: &Path) -> bool {
    p.to_str().is_some_and(|s| {
        s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./@%+=:,~-".contains(c))
    })
}

/// Whether some line of `text` is exactly `line` (`grep -qxF`).
pub fn has_line(text: &[u8], line: &str) -> bool {
    lines(text).any(|l| l == line.as_bytes())
}

/// The lines of `text` as a line-reading tool sees them: split at `\n`, a
/// last line without its newline still a line.
pub fn lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    let empty = text.is_empty();
    body.split(|&b| b == b'\n').filter(move |_| !empty)
}

/// The path a write to `p` lands on: `p`, or the file its symlink names
/// (`readlink -f`), so that a symlinked file (dotfiles) stays a symlink.
pub fn write_target(p: &Path) -> Result<PathBuf> {
    let meta = std::fs::symlink_metadata(p);
    if !meta.is_ok_and(|m| m.file_type().is_symlink()) {
        return Ok(p.to_owned());
    }
    p.canonicalize()
        .or_else(|_| {
            // A dangling link: the file it names, in its directory's real path.
            let to = std::fs::read_link(p)?;
            let to = p.parent().unwrap_or(Path::new("/")).join(to);
            let dir = to.parent().unwrap_or(Path::new("/")).canonicalize()?;
            Ok::<_, std::io::Error>(dir.join(to.file_name().unwrap_or_default()))
        })
        .map_err(|_| Fail::die(format!("cannot resolve the symlink {}", p.display())))
}

/// The permission bits of `p` (symlinks followed).
pub fn mode_of(p: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(p)
        .ok()
        .map(|m| m.permissions().mode() & 0o7777)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_what_grep_sees() {
        let all = |t: &[u8]| lines(t).map(|l| l.to_vec()).collect::<Vec<_>>();
        assert!(all(b"").is_empty());
        assert_eq!(all(b"a"), [b"a".to_vec()]);
        assert_eq!(all(b"a\n"), [b"a".to_vec()]);
        assert_eq!(all(b"a\n\nb"), [b"a".to_vec(), vec![], b"b".to_vec()]);
        assert!(has_line(b"x\nrestrict k\n", "restrict k"));
        assert!(!has_line(b"x\nrestrict k2\n", "restrict k"));
    }

    #[test]
    fn plain_paths_need_no_quoting() {
        assert!(plain_path(Path::new("/Users/ada/.local/bin/paliadin-shim")));
        assert!(!plain_path(Path::new("/home/my dir")));
        assert!(!plain_path(Path::new("/home/\"x")));
    }

    #[test]
    fn a_path_not_made_yet_is_real_as_far_as_it_goes() {
        let tmp = tempfile::tempdir().expect("tmp");
        let real = tmp.path().canonicalize().expect("real");
        std::os::unix::fs::symlink(&real, real.join("link")).expect("link");
        assert_eq!(
            real_as_far_as_it_exists(&real.join("link/a/b")),
            real.join("a/b")
        );
    }
}
