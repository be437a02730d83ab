//! Every clap type of the shim. The request itself is not a clap
//! subcommand: it is protocol words, parsed by `paliadin_core::request`.

use clap::{CommandFactory as _, FromArgMatches as _, Parser};
use std::path::PathBuf;

use crate::config::Layer;

const AFTER_HELP: &str = "\
Requests (PROTOCOL section 1), from SSH_ORIGINAL_COMMAND when set, else from REQUEST:
  health <session>                           start the session if missing; print ok
  run-turn <session> <turn-id> <b64|->       type one turn, print the reply
  run-turn-events <session> <turn-id> <b64|->   the same, its steps as JSON lines, the reply last
  reset <session>                            end the session and its agent
  poll <session> <turn-id>                   the reply of a turn again, or 124 while it runs
  cancel <session> <turn-id>                 stop the session's running turn (one Escape)
  approve <session> <turn-id> <n> allow|deny answer a pending permission request (approve mode)
  status <session>                           one JSON object
  sessions                                   one JSON object per session
  version                                    the version
Local only:
  attach <session>                           attach this terminal to the session's pane
  setup [options]                            set this laptop up (install/laptop.sh runs it)
  hook <Event>                               the handler the agent's hook settings run
  status-line                                the agent's status line (keeps the plan's windows)
  completions <bash|zsh|fish|elvish|powershell>   a completion script for this shell
  man                                        this manual page, in roff

Exit status: 0 done, 1 other failure, 2 invalid request (nothing typed), 69 agent
unavailable, 75 blocked on a person, 76 the agent reported a failure (or left a reply
that does not count), 78 the subscription's usage limit is reached (the line says when it
resets), 124 no reply within the wait (poll collects it later), 130 the turn was cancelled.";

/// The laptop side of paliadin: one tmux session per user with the agent in it.
#[derive(Debug, Parser)]
#[command(name = "paliadin-shim", version, after_help = AFTER_HELP)]
pub struct Options {
    /// Config file (TOML). Default: $PALIADIN_SHIM_CONFIG, else $XDG_CONFIG_HOME/paliadin/shim.toml if it exists.
    #[arg(long, env = "PALIADIN_SHIM_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Every setting, as flags (each also a key of the config file).
    #[command(flatten)]
    pub flags: Layer,
    /// The request (ignored when SSH_ORIGINAL_COMMAND is set).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "REQUEST"
    )]
    pub request: Vec<String>,
}

/// The shim's command line, each setting's help ending in its default from
/// [`Layer::defaults`] (for this user: paths are this HOME's).
pub fn command() -> clap::Command {
    let defaults = toml::Table::try_from(Layer::defaults()).unwrap_or_default();
    defaults
        .into_iter()
        .fold(Options::command(), |cmd, (key, value)| {
            let shown = match value {
                toml::Value::String(s) => s,
                toml::Value::Array(words) => {
                    shlex::try_join(words.iter().filter_map(|w| w.as_str())).unwrap_or_default()
                }
                v => v.to_string(),
            };
            cmd.mut_arg(key, |a| {
                let help = a.get_help().map(ToString::to_string).unwrap_or_default();
                a.help(format!("{help} [default: {shown}]"))
            })
        })
}

/// The options of this process's command line; exits as clap does on
/// `--help`, `--version` or a malformed flag.
pub fn parse() -> Options {
    let matches = command().get_matches();
    Options::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// `paliadin-shim setup [options]` (local only): sets this laptop up for
/// paliadin. `install/laptop.sh` runs it with the same options.
#[derive(Debug, Parser)]
#[command(
    name = "paliadin-shim setup",
    bin_name = "paliadin-shim setup",
    args_override_self = true,
    about = "Sets this laptop up so that a server can reach Claude Code over ssh: the binary, the skill, shim.toml, the workdir's trust entry in ~/.claude.json and, given the server's key, its authorized_keys line. Run it again at any time: it changes only what differs; --uninstall undoes what its manifest records.",
    after_help = "Files: <prefix>/paliadin-shim, ~/.claude/skills/paliadin/SKILL.md, ~/.config/paliadin/shim.toml (0600), ~/.config/paliadin/install-laptop.manifest, ~/.ssh/authorized_keys (one line added), ~/.claude.json (one trust entry).\n\nExit status: 0 done (or nothing to do), 1 a change failed, 2 refused before anything changed (no terminal and no --yes, no agent, a workdir that holds HOME, ~/.ssh or the shim's state)."
)]
pub struct SetupArgs {
    /// The paliadin-shim binary to install. Default: this program.
    #[arg(long, value_name = "PATH")]
    pub shim_bin: Option<PathBuf>,
    /// Where to install the binary. Default: ~/.local/bin.
    #[arg(long, value_name = "DIR")]
    pub prefix: Option<String>,
    /// The server's public key, a .pub file or the key text ('ssh-ed25519 AAAA...'); without it authorized_keys is left alone.
    #[arg(long, value_name = "KEY")]
    pub pubkey: Option<String>,
    /// Restrict the key to these client addresses (from="...").
    #[arg(long, value_name = "PATTERNS")]
    pub from: Option<String>,
    /// The agent's working directory; never one that holds or lies inside HOME's ~/.ssh, ~/.claude or the shim's state, nor HOME itself. Default: ~/paliadin-work.
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// The agent's command line, used as given. Default: claude with unattended permissions; without claude on PATH and without --agent, setup stops (exit 2).
    #[arg(long, value_name = "COMMAND")]
    pub agent: Option<String>,
    /// Let the agent run commands (Bash), inside Claude Code's sandbox: its commands read nothing of HOME but the workdir, nothing of the shim's state or tmux, and write only the workdir; claude refuses to start where the sandbox cannot run (Linux: bubblewrap and socat). See the README's "What widening the agent's tools costs".
    #[arg(long)]
    pub allow_bash: bool,
    /// Text that replaces the skill's persona section.
    #[arg(long, value_name = "FILE")]
    pub persona: Option<PathBuf>,
    /// The shim's tmux server. Default: paliadin.
    #[arg(long, value_name = "NAME")]
    pub tmux_socket: Option<String>,
    /// How long a turn waits for its reply, in seconds. Default: 60.
    #[arg(long, value_name = "N")]
    pub wait_secs: Option<String>,
    /// Replace a SKILL.md setup did not write (moved to SKILL.md.orig, put back by --uninstall).
    #[arg(long)]
    pub force: bool,
    /// Print every change, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Undo what setup did (see its manifest).
    #[arg(long)]
    pub uninstall: bool,
    /// Ask no questions (without a terminal nothing changes without --yes).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// The name messages carry (install/laptop.sh gives its own).
    #[arg(
        long,
        hide = true,
        value_name = "NAME",
        default_value = "paliadin-shim setup"
    )]
    pub invoked_as: String,
}
