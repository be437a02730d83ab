//! Claude Code's own sandbox for an agent that may run commands (issue 17):
//! the `sandbox` block of the settings the shim starts the agent with, when
//! `agent_sandbox` is on. Every Bash command then runs under bubblewrap
//! (Linux) or Seatbelt (macOS): it reads nothing of HOME but the workdir,
//! nothing of the shim's state or its tmux server, writes only the workdir
//! (Claude Code's default), and the agent refuses to start where the sandbox
//! cannot run (`failIfUnavailable`) instead of running commands without it;
//! no command may ask to leave it (`allowUnsandboxedCommands: false`). The
//! keys are Claude Code 2.1.328's (its settings schema). Builds JSON only;
//! never decides whether Bash is allowed (that is `crate::policy`'s).

use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Where tmux keeps the sockets of this user's servers: `$TMUX_TMPDIR` or
/// `/tmp`, then `tmux-<uid>`.
fn tmux_dir() -> PathBuf {
    let base = std::env::var_os("TMUX_TMPDIR")
        .filter(|d| !d.is_empty())
        .map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
    base.join(format!("tmux-{}", rustix::process::getuid().as_raw()))
}

fn text(p: &Path) -> Value {
    Value::String(p.to_string_lossy().into_owned())
}

/// The settings' `sandbox` object for an agent in `workdir`, whose shim
/// keeps its state in `state_dir`, for a user whose HOME is `home`.
pub fn block(workdir: &Path, state_dir: &Path, home: &Path) -> Value {
    let tmux = tmux_dir();
    json!({
        "enabled": true,
        "failIfUnavailable": true,
        "allowUnsandboxedCommands": false,
        "filesystem": {
            "denyRead": [text(home), text(state_dir), text(&tmux)],
            "allowRead": [text(workdir)],
            "denyWrite": [text(state_dir), text(&tmux)],
        },
    })
}

/// The block for this configuration, if its sandbox is on.
pub fn for_config(c: &crate::config::Config) -> Option<Value> {
    c.agent_sandbox
        .then(|| block(&c.workdir, &c.state_dir, &paliadin_core::dirs::home()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denies_home_state_and_tmux_and_reopens_only_the_workdir() {
        let b = block(
            Path::new("/h/paliadin-work"),
            Path::new("/h/.local/state/paliadin"),
            Path::new("/h"),
        );
        assert_eq!(b["enabled"], true);
        assert_eq!(b["failIfUnavailable"], true);
        assert_eq!(b["allowUnsandboxedCommands"], false);
        let deny = b["filesystem"]["denyRead"].as_array().unwrap();
        assert_eq!(deny[0], "/h");
        assert_eq!(deny[1], "/h/.local/state/paliadin");
        assert!(deny[2].as_str().unwrap().contains("tmux-"));
        assert_eq!(b["filesystem"]["allowRead"], json!(["/h/paliadin-work"]));
        assert_eq!(b["filesystem"]["denyWrite"][0], "/h/.local/state/paliadin");
    }
}
