//! `paliadin-cli`: the server side of paliadin. Parses the command line,
//! runs one subcommand, prints one line per failure and exits with the status
//! the README's table promises.

mod cli;
mod cmd;
mod render;
mod signals;

use clap::Parser as _;
use paliadin_cli::{client, config, exit, store, transport};

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    let timeout = match &args.command {
        cli::Command::Turn(a) => a.timeout,
        cli::Command::Chat(a) => a.timeout,
        _ => None,
    };
    let result = cmd::App::new(&args.global, timeout).and_then(|app| match &args.command {
        cli::Command::Turn(a) => cmd::turn::run(&app, a),
        cli::Command::Chat(a) => cmd::chat::run(&app, a),
        cli::Command::Health(a) => cmd::health::run(&app, a),
        cli::Command::Reset(a) => cmd::reset::run(&app, a),
        cli::Command::Poll(a) => cmd::poll::run(&app, a),
        cli::Command::Status(a) => cmd::status::run(&app, a),
        cli::Command::Sessions(a) => cmd::sessions::run(&app, a),
        cli::Command::Log(a) => cmd::log::run(&app, a),
    });
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
            // One line, whatever the causes print (a TOML error spans several).
            eprintln!("paliadin-cli: {}", cmd::one_line(&format!("{e:#}")));
            if e.downcast_ref::<cmd::Usage>().is_some() {
                return std::process::ExitCode::from(exit::USAGE);
            }
            std::process::ExitCode::from(exit::FAILURE)
        }
    }
}
