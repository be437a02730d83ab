//! The agent's permission policy: the one place that says what an
//! unattended Claude Code may do on this laptop, as the flags and the
//! environment `paliadin-shim setup` writes into `shim.toml`. The shim's
//! design depends on it (a pane that stops on a question hangs every turn;
//! an agent that can read the shim's state can read other sessions), so it
//! is defined here, in Rust, and nowhere else.
//!
//! It must never widen what the agent may do beyond reading its workdir;
//! an operator who wants more edits `shim.toml` (and the README says what
//! that costs). The model is offered only the tools the allow rules name
//! (`--tools`, issue 13: every other tool's definition is bytes in every
//! request), and [`offer_allowed_tools`] keeps that true for an operator who
//! widens `--allowedTools`. With no Skill tool offered, the reply protocol
//! reaches the model in its system prompt (`--append-system-prompt-file`).

use std::path::Path;

/// The flags that make Claude Code run unattended, reading `workdir` (its
/// real path) and nothing else, told the reply protocol by `prompt_file`.
pub fn claude_args(workdir: &Path, prompt_file: &Path) -> Vec<String> {
    let allowed = vec![read_rule(workdir)];
    let mut args: Vec<String> = vec![
        // dontAsk denies whatever is not allowed below instead of prompting
        // (bypassPermissions would allow everything, and refuses to run as root).
        "--permission-mode".into(),
        "dontAsk".into(),
        // No MCP server from the workdir's .mcp.json, whose approval
        // dialog would stop the pane.
        "--strict-mcp-config".into(),
        // Only the tools a rule allows are offered: 12 tools' definitions
        // were 31 KB of a 51 KB first request (2.1.328), in every request.
        "--tools".into(),
        tools_of(&allowed).join(","),
        "--allowedTools".into(),
    ];
    args.extend(allowed);
    args.extend([
        // AskUserQuestion opens a picker that waits for a person (not
        // offered anyway; denied should an operator offer every tool).
        "--disallowedTools".into(),
        "AskUserQuestion".into(),
        // Without the Skill tool the skill never reaches the model: the
        // protocol comes with the system prompt, read once at claude's
        // start, in every request, after /clear and compaction.
        "--append-system-prompt-file".into(),
        prompt_file.to_string_lossy().into_owned(),
    ]);
    args
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

/// The tool names permission rules name, in order, each once: `Read` of
/// `Read(//w/**)`, `Bash` of `Bash(git log *)`. One argument may hold
/// several rules, split by commas or spaces outside parentheses, as
/// Claude Code reads `--allowedTools`.
pub fn tools_of(rules: &[String]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for rule in rules {
        let mut depth = 0usize;
        let mut word = String::new();
        let mut in_name = true;
        let push = |word: &mut String, names: &mut Vec<String>| {
            if !word.is_empty() && !names.contains(word) {
                names.push(std::mem::take(word));
            }
            word.clear();
        };
        for c in rule.chars() {
            match c {
                '(' => {
                    depth += 1;
                    in_name = false;
                }
                ')' => depth = depth.saturating_sub(1),
                ',' | ' ' if depth == 0 => {
                    push(&mut word, &mut names);
                    in_name = true;
                }
                _ if in_name => word.push(c),
                _ => {}
            }
        }
        push(&mut word, &mut names);
    }
    names
}

/// `argv` with every tool its `--allowedTools` rules name also in its
/// `--tools` list, so that widening the allow rules in `shim.toml` is
/// enough. An argv without `--tools` (every tool offered) is left as it is.
pub fn offer_allowed_tools(argv: &[String]) -> Vec<String> {
    let Some(at) = argv.iter().position(|a| a == "--tools") else {
        return argv.to_vec();
    };
    let Some(offered) = argv.get(at + 1).filter(|v| !v.starts_with('-')) else {
        return argv.to_vec();
    };
    let mut allowed = Vec::new();
    let mut rules = false;
    for a in argv.iter().skip(1) {
        if a.starts_with("--") {
            rules = a == "--allowedTools" || a == "--allowed-tools";
        } else if rules {
            allowed.push(a.clone());
        }
    }
    let mut tools = tools_of(std::slice::from_ref(offered));
    // "default" offers every tool already.
    if tools.iter().any(|t| t == "default") {
        return argv.to_vec();
    }
    for t in tools_of(&allowed) {
        if !tools.contains(&t) {
            tools.push(t);
        }
    }
    let mut out = argv.to_vec();
    out[at + 1] = tools.join(",");
    out
}

/// The agent's environment, name and value.
pub const AGENT_ENV: [(&str, &str); 3] = [
    // Claude retries a failing API call ten times over about three minutes
    // by default, long past a turn's wait; with three (about 3.5 s of
    // backoff) a turn whose calls keep failing ends with the agent's error
    // (76) within the wait, and a blip of a second or two still passes unseen.
    ("CLAUDE_CODE_MAX_RETRIES", "3"),
    // An unattended pane must not update claude under itself
    // mid-conversation (update it as you always do).
    ("DISABLE_AUTOUPDATER", "1"),
    // Without it claude asks the model for a title beside every turn and
    // probes the quota at every start (2.1.328): requests in the
    // subscriber's budget that answer nobody.
    ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
];

/// [`claude_args`] with Bash allowed too (setup's `--allow-bash`), which
/// setup gives only with Claude Code's sandbox on (`crate::sandbox`): an
/// agent whose commands run unsandboxed is the laptop's user.
pub fn claude_args_with_bash(workdir: &Path, prompt_file: &Path) -> Vec<String> {
    let mut args = claude_args(workdir, prompt_file);
    if let Some(i) = args.iter().position(|a| a == "--allowedTools") {
        args.insert(i + 2, "Bash".into());
    }
    // Offered too, as every allowed tool is.
    offer_allowed_tools(&args)
}

/// The whole agent command line: `claude` then [`claude_args`].
pub fn claude_argv(claude: &str, workdir: &Path, prompt_file: &Path) -> Vec<String> {
    let mut argv = vec![claude.to_owned()];
    argv.extend(claude_args(workdir, prompt_file));
    argv
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn reads_the_workdir_by_its_absolute_rule_offers_only_read_and_asks_nothing() {
        let argv = claude_argv(
            "/bin/claude",
            Path::new("/Users/ada/work"),
            Path::new("/Users/ada/.config/paliadin/agent-prompt.md"),
        );
        assert_eq!(
            argv,
            [
                "/bin/claude",
                "--permission-mode",
                "dontAsk",
                "--strict-mcp-config",
                "--tools",
                "Read",
                "--allowedTools",
                "Read(//Users/ada/work/**)",
                "--disallowedTools",
                "AskUserQuestion",
                "--append-system-prompt-file",
                "/Users/ada/.config/paliadin/agent-prompt.md",
            ]
        );
        assert!(!argv.iter().any(|a| a.contains("add-dir") || a == "Bash"));
        assert_eq!(offer_allowed_tools(&argv), argv);
    }

    #[test]
    fn tools_are_the_names_the_rules_name() {
        assert_eq!(
            tools_of(&strings(&[
                "Read(//w/**)",
                "Bash(git log *),Read",
                "Grep Glob"
            ])),
            ["Read", "Bash", "Grep", "Glob"]
        );
        assert!(tools_of(&[]).is_empty());
    }

    #[test]
    fn a_widened_allow_list_is_offered_too() {
        let argv = strings(&[
            "claude",
            "--tools",
            "Read",
            "--allowedTools",
            "Read(//w/**)",
            "Bash(git status)",
            "--disallowedTools",
            "Write",
        ]);
        assert_eq!(offer_allowed_tools(&argv)[2], "Read,Bash");
        // Without --tools every tool is offered already; "default" too.
        let all = strings(&["claude", "--allowedTools", "Bash"]);
        assert_eq!(offer_allowed_tools(&all), all);
        let default = strings(&["claude", "--tools", "default", "--allowedTools", "Bash"]);
        assert_eq!(offer_allowed_tools(&default), default);
    }
}
