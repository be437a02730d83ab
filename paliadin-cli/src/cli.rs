//! Every clap type of paliadin-cli, in one place; help text on every flag.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use uuid::Uuid;

const AFTER_HELP: &str = "\
Exit status: 0 ok; 1 other failure (config, log); 2 usage or invalid input; 68 unreachable;
69 agent unavailable; 70 shim error; 71 connection lost (the turn may go on: `poll` collects it);
75 blocked on a person; 76 agent error; 77 auth failed; 78 usage limit (the line says when it
resets); 124 timeout (the turn is pending: `poll` collects it); 130 interrupted or cancelled.
`health`: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. With --json, a failure is one object: `error_code`, `error`, and when
known `hint`, `turn_id` and the turn's record as `turn`.";

/// Talk to Claude Code on a laptop over ssh; every turn logged to SQLite.
#[derive(Debug, Parser)]
#[command(name = "paliadin-cli", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// The whole command line: the derived commands, every setting's flag
/// ([`paliadin_cli::config::add_flags`]) and the closing help.
pub fn command() -> clap::Command {
    use clap::CommandFactory as _;
    let help = format!("{}\n\n{AFTER_HELP}", paliadin_cli::config::help_text());
    same_name(paliadin_cli::config::add_flags(Cli::command()).after_help(help))
}

/// Every subcommand's `--version` says `paliadin-cli`, not clap's
/// `paliadin-cli-turn`.
fn same_name(mut cmd: clap::Command) -> clap::Command {
    let subs: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    for sub in subs {
        cmd = cmd.mut_subcommand(sub, |s| same_name(s.display_name("paliadin-cli")));
    }
    cmd
}

/// The matches of the subcommand that runs (global flags are propagated
/// to it): where its `--json` and the settings' flags are read.
pub fn leaf(m: &clap::ArgMatches) -> &clap::ArgMatches {
    let mut m = m;
    while let Some((_, sub)) = m.subcommand() {
        m = sub;
    }
    m
}

/// Flags every command takes besides the settings' own.
#[derive(Debug, Args, Clone)]
pub struct Global {
    /// Config file [env: PALIADIN_CONFIG] [default: $XDG_CONFIG_HOME/paliadin/cli.toml].
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Which session a command talks to.
#[derive(Debug, Args, Clone, Default)]
pub struct Target {
    /// The user's UUID: the session is <prefix>-<first 8 hex>, as the Go service derives it.
    #[arg(long, value_name = "UUID", conflicts_with = "session")]
    pub user: Option<Uuid>,
    /// The session name itself ([A-Za-z0-9_.-]{1,64}).
    #[arg(long, value_name = "NAME")]
    pub session: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one turn and print the reply.
    #[command(after_help = "\
Examples:
  paliadin-cli turn --session ops \"Summarise today's failed jobs\"
  paliadin-cli turn --json --user 0123abcd-1111-4222-8333-444455556666 - <question.md
  paliadin-cli turn --events --session ops \"What do I owe?\" | jq -c 'select(.tool) | [.kind, .tool, .target]'
  reply=$(paliadin-cli turn \"Hi\") || echo \"failed with $?\"")]
    Turn(TurnArgs),
    /// Chat by hand in a terminal.
    #[command(after_help = "\
Examples:
  paliadin-cli chat --session me
  paliadin-cli chat --user 0123abcd-1111-4222-8333-444455556666 --timeout 120")]
    Chat(ChatArgs),
    /// Probe the shim, for cron: one line, OK, CRITICAL or UNKNOWN (Nagios).
    #[command(after_help = "\
Examples:
  paliadin-cli health
  */5 * * * * paliadin-cli health >/dev/null || logger -t paliadin \"$(paliadin-cli health)\"
  paliadin-cli log probes --since 7d      # availability and latency")]
    Health(HealthArgs),
    /// End a session and its agent; the next turn starts afresh.
    #[command(after_help = "\
Examples:
  paliadin-cli reset --session me
  paliadin-cli reset --user 0123abcd-1111-4222-8333-444455556666")]
    Reset(ResetArgs),
    /// Collect the late reply of a turn that timed out, lost its connection, or whose client was killed.
    #[command(after_help = "\
Examples:
  paliadin-cli poll 3f2a9c1e               # a unique prefix of the id will do
  paliadin-cli poll --wait 3f2a9c1e        # ask every second, up to 300 s
  paliadin-cli poll --json --wait=60 3f2a9c1e
  paliadin-cli poll --stale                # turns left running by a killed client")]
    Poll(PollArgs),
    /// Stop a running turn: the agent on the laptop stops working on it.
    #[command(after_help = "\
Examples:
  paliadin-cli cancel 3f2a9c1e             # a unique prefix of the id will do
  paliadin-cli cancel --session me 3f2a9c1e-…  # a turn not in this log

Prints `cancelled <id>` (stopped now, or before) or `finished <id>` (it had
ended by itself: `poll` collects it); exit 2 when the laptop holds no such turn.")]
    Cancel(CancelArgs),
    /// Answer a running turn's request to allow a tool call (the laptop's approve mode).
    #[command(after_help = "\
Examples:
  paliadin-cli approve 3f2a9c1e 1 allow    # a unique prefix of the turn id, the request's number
  paliadin-cli approve 3f2a9c1e 2 deny")]
    Approve(ApproveArgs),
    /// Show a session's state on the laptop.
    #[command(after_help = "\
Examples:
  paliadin-cli status --session me
  paliadin-cli status --json --session me | jq .busy")]
    Status(StatusArgs),
    /// List the sessions on the laptop.
    #[command(after_help = "\
Examples:
  paliadin-cli sessions
  paliadin-cli sessions --json | jq -r '.[] | select(.busy) | .session'")]
    Sessions(SessionsArgs),
    /// Read the turn log.
    #[command(after_help = "\
Examples:
  paliadin-cli log --status error --since 1d
  paliadin-cli log search --since 7d 'invoice*'
  paliadin-cli log stats --json --since 7d")]
    Log(LogArgs),
    /// Check the whole path to the laptop and say what to fix, one line per check.
    #[command(after_help = "\
Examples:
  paliadin-cli doctor
  paliadin-cli doctor --session me")]
    Doctor(DoctorArgs),
    /// Read and change the settings: where each comes from, one at a time.
    #[command(after_help = "\
Examples:
  paliadin-cli config show
  paliadin-cli config get db
  paliadin-cli config set timeout_secs 120
  paliadin-cli config unset port
  paliadin-cli --config /etc/paliadin/cli.toml config path")]
    Config(ConfigArgs),
    /// Print paliadin-cli's version.
    #[command(after_help = "\
Examples:
  paliadin-cli version
  paliadin-cli version --json | jq -r .version")]
    Version(VersionArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = "\
Examples:
  paliadin-cli completions bash > ~/.local/share/bash-completion/completions/paliadin-cli
  paliadin-cli completions zsh > ~/.zfunc/_paliadin-cli
  paliadin-cli completions fish > ~/.config/fish/completions/paliadin-cli.fish")]
    Completions(CompletionsArgs),
    /// Print the manual page (roff) on stdout.
    #[command(after_help = "\
Examples:
  paliadin-cli man | man -l -
  paliadin-cli man > ~/.local/share/man/man1/paliadin-cli.1")]
    Man,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the config file's path (it need not exist).
    Path,
    /// Every setting in force, its value and where it came from (flag,
    /// env, file or default).
    Show {
        /// Print a JSON array of {key, value, source}.
        #[arg(long)]
        json: bool,
    },
    /// Print one setting in force; exit 1 when it is unset.
    Get {
        /// The setting's key (as in cli.toml).
        key: String,
    },
    /// Write one setting into the config file (created 0600 when missing;
    /// its other lines and comments are kept).
    Set {
        /// The setting's key (as in cli.toml).
        key: String,
        /// Its value, checked as a flag's would be.
        value: String,
    },
    /// Remove one setting from the config file.
    Unset {
        /// The setting's key (as in cli.toml).
        key: String,
    },
}

#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Print {"version": "..."}.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Args)]
pub struct TurnArgs {
    /// The message; several words are joined with spaces (quote a message
    /// with shell characters in it: ' " * ? $ #). `-` or none reads stdin
    /// (when it is not a terminal).
    pub message: Vec<String>,
    #[command(flatten)]
    pub target: Target,
    /// Where the user asked from (recorded with the turn).
    #[arg(long, value_name = "TEXT")]
    pub page_origin: Option<String>,
    /// Print the turn's record as one JSON object.
    #[arg(long, conflicts_with = "events")]
    pub json: bool,
    /// Print the agent's steps as JSON lines on stdout while it works, then
    /// one last line with the reply and the turn's record (PROTOCOL section 7).
    #[arg(long)]
    pub events: bool,
}

#[derive(Debug, Args)]
pub struct ChatArgs {
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Args)]
pub struct HealthArgs {
    #[command(flatten)]
    pub target: Target,
    /// Seconds before the probe counts as failed (at least 1).
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
    /// Print the probe as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ResetArgs {
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Args)]
pub struct PollArgs {
    /// The turn id printed by a `turn` that timed out, or a unique prefix of it.
    #[arg(required_unless_present = "stale", conflicts_with = "stale")]
    pub turn_id: Option<String>,
    /// Complete every turn left `running` by a client that is gone (killed
    /// mid-turn) with the reply the laptop kept: one line (or JSON object)
    /// per turn. Every command that logs does this on its own first.
    #[arg(long)]
    pub stale: bool,
    /// The session, for a turn that is not in the log.
    #[arg(long, value_name = "NAME")]
    pub session: Option<String>,
    /// Wait for the reply (`--wait` or `--wait=SECS`, default 300 s), asking every second.
    #[arg(long, value_name = "SECS", num_args = 0..=1, require_equals = true, default_missing_value = "300")]
    pub wait: Option<u64>,
    /// Print the turn's record as one JSON object (`--stale`: an array).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The turn's id, or a unique prefix of it.
    pub turn_id: String,
    /// The session, for a turn that is not in the log.
    #[arg(long, value_name = "NAME")]
    pub session: Option<String>,
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The running turn's id (`turn --events` shows it), or a unique prefix of it.
    pub turn_id: String,
    /// The request's number, from its `permission_request` event.
    pub request: String,
    /// The answer.
    pub answer: Answer,
    /// The session, for a turn that is not in the log.
    #[arg(long, value_name = "NAME")]
    pub session: Option<String>,
}

/// An answer to a permission request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Answer {
    Allow,
    Deny,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub target: Target,
    /// Print the shim's JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SessionsArgs {
    /// Print a JSON array.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct LogArgs {
    #[command(subcommand)]
    pub command: Option<LogCommand>,
    #[command(flatten)]
    pub list: LogList,
}

/// Which turns: the filters `log`, `log search` and `log stats` share.
#[derive(Debug, Args, Clone, Default)]
pub struct Scope {
    /// Only this user's turns.
    #[arg(long, value_name = "UUID")]
    pub user: Option<Uuid>,
    /// Only this session's turns.
    #[arg(long, value_name = "NAME")]
    pub session: Option<String>,
    /// Only turns since then: a duration (2h, 7d), a day (2026-11-25) or RFC 3339.
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
}

/// Filters and output of the turn table.
#[derive(Debug, Args, Clone)]
pub struct LogList {
    /// How many turns, newest first.
    #[arg(short = 'n', long = "limit", value_name = "N", default_value_t = 20)]
    pub limit: usize,
    #[command(flatten)]
    pub scope: Scope,
    /// Only turns with this status: running, ok, error or pending.
    #[arg(long, value_name = "STATUS")]
    pub status: Option<String>,
    /// Only turns with this error code (unreachable, timeout, ...).
    #[arg(long, value_name = "CODE")]
    pub code: Option<String>,
    /// Print a JSON array.
    #[arg(long, conflicts_with = "jsonl")]
    pub json: bool,
    /// Print one JSON object per line.
    #[arg(long)]
    pub jsonl: bool,
}

#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Show one turn in full.
    Show {
        /// The turn's id, or a unique prefix of it (as the table shows).
        turn_id: String,
        /// Print the turn's record as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Full-text search over messages and replies, like grep: no match exits 1.
    Search {
        /// Words to find (all of them, in any order); `word*` finds words that start
        /// so. Options go before the words; after `--` everything is a word.
        #[arg(required = true, num_args = 1..)]
        query: Vec<String>,
        #[command(flatten)]
        scope: Scope,
        /// How many turns, newest first.
        #[arg(short = 'n', long = "limit", value_name = "N", default_value_t = 20)]
        limit: usize,
        /// Print a JSON array.
        #[arg(long, conflicts_with = "jsonl")]
        json: bool,
        /// Print one JSON object per line.
        #[arg(long)]
        jsonl: bool,
    },
    /// Turns, error rate by code, median and 95th percentile duration, by day.
    Stats {
        #[command(flatten)]
        scope: Scope,
        /// Print it as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Health probes over a period, per host: availability, latency, the newest probes.
    ///
    /// With --host (the connection flag), only that host's probes.
    Probes {
        /// Only probes since then (2h, 7d, 2026-11-25, RFC 3339). Default: 7d.
        #[arg(long, value_name = "WHEN", default_value = "7d")]
        since: String,
        /// Only this session's probes.
        #[arg(long, value_name = "NAME")]
        session: Option<String>,
        /// How many of the newest probes to list.
        #[arg(short = 'n', long = "limit", value_name = "N", default_value_t = 10)]
        limit: usize,
        /// Print it as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete turns and probes older than a time; asks first on a terminal.
    Prune {
        /// Older than this: a duration (90d, 12w, 0s), a day (2026-11-25) or RFC 3339.
        #[arg(long, value_name = "WHEN", required = true)]
        older_than: String,
        /// Print what would go, and delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Delete without asking (needed without a terminal).
        #[arg(short = 'y', long)]
        yes: bool,
    },
    /// Print the database's path.
    Path,
}
