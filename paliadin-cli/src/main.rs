//! `paliadin-cli`: the server side of paliadin. Parses the command line,
//! runs one subcommand, prints one line per failure (and with `--json` one
//! JSON object on stdout) and exits with the status the README's table
//! promises.

mod cli;
mod cmd;
mod render;
mod signals;

use clap::Parser as _;
use paliadin_cli::{client, config, exit, store, transport};

fn main() -> std::process::ExitCode {
    let args = match cli::Cli::try_parse() {
        Ok(a) => a,
        Err(e) => {
            use clap::error::ErrorKind;
            let wants_json = std::env::args().any(|a| a == "--json" || a == "--jsonl");
            if wants_json && !matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
            {
                let text = e.kind().as_str().unwrap_or("invalid usage").to_owned();
                let first = e.to_string();
                let first = first.lines().next().unwrap_or(&text);
                let first = first.strip_prefix("error: ").unwrap_or(first);
                print!("{}", cmd::json_error("invalid_input", first));
            }
            e.exit()
        }
    };
    let json = args.command.json();
    let timeout = match &args.command {
        cli::Command::Turn(a) => a.timeout,
        cli::Command::Chat(a) => a.timeout,
        _ => None,
    };
    let result = match &args.command {
        // These need no configuration: they work before there is one.
        cli::Command::Completions(a) => cmd::docs::completions(a),
        cli::Command::Man => cmd::docs::man(),
        cli::Command::Doctor(a) => cmd::doctor::run(&args.global, a),
        _ => run(&args, timeout),
    };
    finish(&args, json, result)
}

/// The commands that start from the configuration.
fn run(args: &cli::Cli, timeout: Option<u64>) -> anyhow::Result<u8> {
    cmd::App::new(&args.global, timeout).and_then(|app| match &args.command {
        cli::Command::Turn(a) => cmd::turn::run(&app, a),
        cli::Command::Chat(a) => cmd::chat::run(&app, a),
        cli::Command::Health(a) => cmd::health::run(&app, a),
        cli::Command::Reset(a) => cmd::reset::run(&app, a),
        cli::Command::Poll(a) => cmd::poll::run(&app, a),
        cli::Command::Status(a) => cmd::status::run(&app, a),
        cli::Command::Sessions(a) => cmd::sessions::run(&app, a),
        cli::Command::Log(a) => cmd::log::run(&app, a),
        cli::Command::Completions(_) | cli::Command::Man | cli::Command::Doctor(_) => {
            unreachable!("these run without the configuration")
        }
    })
}

/// The exit status of a result; a failure printed as one line (and one JSON
/// object with `--json`; `health`'s own UNKNOWN line).
fn finish(args: &cli::Cli, json: bool, result: anyhow::Result<u8>) -> std::process::ExitCode {
    match result {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            let broken_pipe = e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            });
            if broken_pipe {
                return std::process::ExitCode::from(exit::OK);
            }
            let text = cmd::one_line(&format!("{e:#}"));
            let (code, status) = cmd::classify(&e);
            if let cli::Command::Health(h) = &args.command {
                // Nagios: one line on stdout whatever happens; UNKNOWN (3)
                // when the probe could not even be tried.
                return std::process::ExitCode::from(cmd::health::unknown(h, code, &text));
            }
            // One line, whatever the causes print (a TOML error spans several).
            eprintln!("paliadin-cli: {text}");
            if json {
                print!("{}", cmd::json_error(code, &text));
            }
            std::process::ExitCode::from(status)
        }
    }
}
