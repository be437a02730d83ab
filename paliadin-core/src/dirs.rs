//! Where things live for the user running us: HOME and the XDG base
//! directories (an unset or relative `XDG_*` falls back to its default under
//! HOME, as the spec says), and `~/` in paths from config files. Never
//! creates a directory.

use std::path::{Path, PathBuf};

/// `$HOME`, or `/` when it is unset.
pub fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// `$<var>` when it is an absolute path, else `$HOME/<fallback>`.
pub fn xdg(var: &str, fallback: &str) -> PathBuf {
    match std::env::var_os(var).map(PathBuf::from) {
        Some(p) if p.is_absolute() => p,
        _ => home().join(fallback),
    }
}

/// `$XDG_CONFIG_HOME/paliadin/<file>`.
pub fn config_file(file: &str) -> PathBuf {
    xdg("XDG_CONFIG_HOME", ".config")
        .join("paliadin")
        .join(file)
}

/// `~/x` becomes `$HOME/x`; other paths are unchanged.
pub fn expand_home(p: &Path) -> PathBuf {
    match p.strip_prefix("~") {
        Ok(rest) => home().join(rest),
        Err(_) => p.to_owned(),
    }
}
