//! `paliadin-cli`: the server side of paliadin. Parses the command line,
//! runs one subcommand, and prints its failure, if any, once: one line on
//! stderr, and with `--json` (or `--events`) the one JSON error object on
//! stdout; then exits with the status the README's table promises.

mod ask;
mod cli;
mod cmd;
mod render;
mod signals;
mod table;

use clap::FromArgMatches as _;
use paliadin_cli::Failure;

/// How the command that runs prints: what its failure looks like on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Text,
    /// `--json` or `--jsonl`: the JSON error object.
    Json,
    /// `turn --events`: the error object as the stream's last line.
    Events,
}

impl Format {
    /// Read from the flags the running subcommand has (no list of which
    /// commands take `--json`: the command's own definition says).
    fn of(m: &clap::ArgMatches) -> Format {
        let on = |id: &str| matches!(m.try_get_one::<bool>(id), Ok(Some(true)));
        if on("events") {
            Format::Events
        } else if on("json") || on("jsonl") {
            Format::Json
        } else {
            Format::Text
        }
    }
}

fn main() -> std::process::ExitCode {
    let matches = match cli::command().try_get_matches() {
        Ok(m) => m,
        Err(e) => usage_error(e),
    };
    let args = match cli::Cli::from_arg_matches(&matches) {
        Ok(a) => a,
        Err(e) => usage_error(e),
    };
    let leaf = cli::leaf(&matches);
    let ctx = cmd::Ctx {
        global: &args.global,
        matches: leaf,
    };
    match cmd::run(&ctx, &args.command) {
        Ok(code) => std::process::ExitCode::from(code),
        Err(f) => finish(&f, Format::of(leaf)),
    }
}

/// A command line clap refused: its own message and exit 2, and with
/// `--json` anywhere in it (nothing else can be known) the error object too.
fn usage_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    let wants_json = std::env::args().any(|a| a == "--json" || a == "--jsonl");
    if wants_json && !matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let text = e.to_string();
        let first = text.lines().next().unwrap_or("invalid usage");
        let first = first.strip_prefix("error: ").unwrap_or(first);
        let _ = cmd::out_json(&Failure::usage(first).json());
    }
    e.exit()
}

/// Prints a failure once, and gives its exit status.
fn finish(f: &Failure, format: Format) -> std::process::ExitCode {
    if f.is_broken_pipe() {
        return std::process::ExitCode::from(paliadin_cli::exit::OK);
    }
    if let Some(t) = &f.turn {
        cmd::warn_log(t);
    }
    eprintln!("paliadin-cli: {}", f.line());
    let mut v = f.json();
    if format == Format::Events {
        // The stream's last line: its events went out already.
        if let Some(turn) = v.get_mut("turn").and_then(|t| t.as_object_mut()) {
            turn.remove("events");
        }
        let mut last = serde_json::Map::new();
        last.insert("kind".into(), "error".into());
        last.insert("at".into(), now().into());
        last.extend(v.as_object().cloned().unwrap_or_default());
        v = last.into();
    }
    if format != Format::Text {
        // Nothing more to say if stdout is gone.
        let _ = cmd::out_json(&v);
    }
    std::process::ExitCode::from(f.exit_status())
}

fn now() -> String {
    paliadin_core::timefmt::rfc3339_ms(paliadin_core::timefmt::now_ms())
}
