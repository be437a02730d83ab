//! Every clap type of paliadin-cli, in one place; help text on every flag.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use uuid::Uuid;

const AFTER_HELP: &str = "\
Configuration: ~/.config/paliadin/cli.toml ($XDG_CONFIG_HOME), then PALIADIN_* variables
(PALIADIN_HOST or PALIADIN_REMOTE_HOST, PALIADIN_PORT, PALIADIN_SSH_USER, PALIADIN_KEY,
PALIADIN_KNOWN_HOSTS, PALIADIN_SESSION_PREFIX, PALIADIN_DB, PALIADIN_TRANSPORT, PALIADIN_SHIM,
PALIADIN_NO_MUX, PALIADIN_TIMEOUT, PALIADIN_CONFIG), then flags; later wins.

Exit status: 0 ok; 1 other failure (config, log); 2 usage or invalid input; 68 unreachable;
69 agent unavailable; 70 shim error; 75 blocked on a person; 76 agent error; 77 auth failed;
124 timeout (the turn is pending: `poll` collects it); 130 interrupted. `health`: 0 OK,
2 CRITICAL, 3 UNKNOWN. With --json, a failure is one object with `error_code` and `error`.";

/// Talk to Claude Code on a laptop over ssh; every turn logged to SQLite.
#[derive(Debug, Parser)]
#[command(name = "paliadin-cli", version, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Debug, Args, Clone)]
pub struct Global {
    /// Config file. Default: $XDG_CONFIG_HOME/paliadin/cli.toml.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The laptop's host name or address.
    #[arg(long, global = true, help_heading = "Connection", value_name = "HOST")]
    pub host: Option<String>,
    /// The laptop's sshd port. Default: 22022.
    #[arg(long, global = true, help_heading = "Connection", value_name = "PORT")]
    pub port: Option<u16>,
    /// The user to log in as on the laptop.
    #[arg(long, global = true, help_heading = "Connection", value_name = "USER")]
    pub ssh_user: Option<String>,
    /// The private key whose public half the laptop's authorized_keys forces into the shim.
    #[arg(long, global = true, help_heading = "Connection", value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// known_hosts file pinning the laptop's host key.
    #[arg(long, global = true, help_heading = "Connection", value_name = "FILE")]
    pub known_hosts: Option<PathBuf>,
    /// Prefix of per-user sessions (<prefix>-<first 8 hex of the user's UUID>). Default: paliad-paliadin.
    #[arg(long, global = true, value_name = "PREFIX")]
    pub session_prefix: Option<String>,
    /// The turn log. Default: $XDG_DATA_HOME/paliadin/turns.db.
    #[arg(long, global = true, value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// How to reach the shim: ssh, or local (run the shim on this machine).
    #[arg(long, global = true, help_heading = "Connection", value_name = "ssh|local", value_parser = ["ssh", "local"])]
    pub transport: Option<String>,
    /// The shim binary for --transport local. Default: paliadin-shim on PATH.
    #[arg(long, global = true, help_heading = "Connection", value_name = "PATH")]
    pub shim: Option<PathBuf>,
    /// Open a new ssh connection per call instead of reusing one.
    #[arg(long, global = true, help_heading = "Connection")]
    pub no_mux: bool,
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
  paliadin-cli sessions --json | jq -r 'select(.busy) | .session'")]
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

impl Command {
    /// Whether the command was asked for JSON (`--json` or `--jsonl`), so
    /// that a failure is a JSON object too.
    pub fn json(&self) -> bool {
        match self {
            Command::Turn(a) => a.json || a.events,
            Command::Health(a) => a.json,
            Command::Poll(a) => a.json,
            Command::Status(a) => a.json,
            Command::Sessions(a) => a.json,
            Command::Log(a) => match &a.command {
                None => a.list.json || a.list.jsonl,
                Some(LogCommand::Show { json, .. })
                | Some(LogCommand::Stats { json, .. })
                | Some(LogCommand::Probes { json, .. }) => *json,
                Some(LogCommand::Search { json, jsonl, .. }) => *json || *jsonl,
                Some(LogCommand::Prune { .. }) | Some(LogCommand::Path) => false,
            },
            Command::Chat(_)
            | Command::Reset(_)
            | Command::Doctor(_)
            | Command::Completions(_)
            | Command::Man => false,
        }
    }
}

#[derive(Debug, Args)]
pub struct TurnArgs {
    /// The message; `-` or absent reads stdin (when it is not a terminal).
    pub message: Option<String>,
    #[command(flatten)]
    pub target: Target,
    /// Where the user asked from (recorded with the turn).
    #[arg(long, value_name = "TEXT")]
    pub page_origin: Option<String>,
    /// Seconds before the client gives up on the call. Default: 75.
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// Print the whole result as JSON.
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
    /// Seconds before the client gives up on a turn. Default: 75.
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
}

#[derive(Debug, Args)]
pub struct HealthArgs {
    #[command(flatten)]
    pub target: Target,
    /// Seconds before the probe counts as failed. Default: 10.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub timeout: u64,
    /// Print the result as JSON.
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
    /// Print the whole result as JSON.
    #[arg(long)]
    pub json: bool,
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
    /// Print one JSON object per line.
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
        /// Print it as JSON.
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
    /// Health probes over a period: availability, latency, the newest probes.
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
