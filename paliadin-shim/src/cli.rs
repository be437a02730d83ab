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
  status <session>                           one JSON object
  sessions                                   one JSON object per session
  version                                    the version
Local only:
  attach <session>                           attach this terminal to the session's pane
  hook <Event>                               the handler the agent's hook settings run
  completions <bash|zsh|fish|elvish|powershell>   a completion script for this shell
  man                                        this manual page, in roff

Exit status: 0 done, 1 other failure, 2 invalid request (nothing typed), 69 agent
unavailable, 75 blocked on a person, 76 the agent reported a failure (or left a reply
that does not count), 124 no reply within the wait (poll collects it later).";

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
