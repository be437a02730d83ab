//! The agent's permission policy: the one place that says what an
//! unattended Claude Code may do on this laptop, as the flags and the
//! environment `paliadin-shim setup` writes into `shim.toml`. The shim's
//! design depends on it (a pane that stops on a question hangs every turn;
//! an agent that can read the shim's state can read other sessions), so it
//! is defined here, in Rust, and nowhere else.
//!
//! It must never widen what the agent may do beyond reading its workdir;
//! an operator who wants more edits `shim.toml` (and the README says what
//! that costs). Later additions (a `--tools` list, a system-prompt file)
//! belong here too.

use std::path::Path;

/// The flags that make Claude Code run unattended, reading `workdir` (its
/// real path) and nothing else.
pub fn claude_args(workdir: &Path) -> Vec<String> {
    vec![
        // dontAsk denies whatever is not allowed below instead of prompting
        // (bypassPermissions would allow everything, and refuses to run as root).
        "--permission-mode".into(),
        "dontAsk".into(),
        // No MCP server from the workdir's .mcp.json, whose approval
        // dialog would stop the pane.
        "--strict-mcp-config".into(),
        "--allowedTools".into(),
        read_rule(workdir),
        // AskUserQuestion opens a picker that waits for a person.
        "--disallowedTools".into(),
        "AskUserQuestion".into(),
    ]
}

/// The one allow rule: read the workdir. A Read path rule takes a
/// `//absolute` path (`//path` is the filesystem root; a single leading `/`
/// is relative to the settings source), the real path, so that it matches
/// both a symlink and its target. The reply is the model's final message,
/// which the shim's Stop hook records: the agent needs no access at all to
/// the shim's state, so no session can see another's.
pub fn read_rule(workdir: &Path) -> String {
    format!("Read(/{}/**)", workdir.display())
}

/// The agent's environment, name and value.
pub const AGENT_ENV: [(&str, &str); 2] = [
    // Claude retries a failing API call ten times over about three minutes
    // by default, long past a turn's wait; with three (about 3.5 s of
    // backoff) a turn whose calls keep failing ends with the agent's error
    // (76) within the wait, and a blip of a second or two still passes unseen.
    ("CLAUDE_CODE_MAX_RETRIES", "3"),
    // An unattended pane must not update claude under itself
    // mid-conversation (update it as you always do).
    ("DISABLE_AUTOUPDATER", "1"),
];

/// [`claude_args`] with Bash allowed too (setup's `--allow-bash`), which
/// setup gives only with Claude Code's sandbox on (`crate::sandbox`): an
/// agent whose commands run unsandboxed is the laptop's user.
pub fn claude_args_with_bash(workdir: &Path) -> Vec<String> {
    let mut args = claude_args(workdir);
    if let Some(i) = args.iter().position(|a| a == "--allowedTools") {
        args.insert(i + 2, "Bash".into());
    }
    args
}

/// The whole agent command line: `claude` then [`claude_args`].
pub fn claude_argv(claude: &str, workdir: &Path) -> Vec<String> {
    let mut argv = vec![claude.to_owned()];
    argv.extend(claude_args(workdir));
    argv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_workdir_by_its_absolute_rule_and_asks_nothing() {
        let argv = claude_argv("/bin/claude", Path::new("/home/me/work"));
        assert_eq!(
            argv,
            [
                "/bin/claude",
                "--permission-mode",
                "dontAsk",
                "--strict-mcp-config",
                "--allowedTools",
                "Read(//home/me/work/**)",
                "--disallowedTools",
                "AskUserQuestion",
            ]
        );
        assert!(!argv.iter().any(|a| a.contains("add-dir") || a == "Bash"));
    }
}
