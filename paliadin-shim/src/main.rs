//! `paliadin-shim`: the laptop side of paliadin (PROTOCOL sections 1 to 5).
//! Reads one request, from `SSH_ORIGINAL_COMMAND` when sshd forced this
//! program, else from its own arguments; serves it; exits with a documented
//! status and, on failure, one line on stderr. Never exits 126, 127 or 255.

use paliadin_core::request::{split_ssh_command, Request};
use paliadin_core::ExitCode;

use paliadin_shim::agent::Shim;
use paliadin_shim::error::{Result, ShimError};
use paliadin_shim::output::print_or_fail;
use paliadin_shim::{cli, cmd, config, hooks, sleep, statusline};

fn main() -> std::process::ExitCode {
    let opts = cli::parse();
    let ssh = std::env::var("SSH_ORIGINAL_COMMAND").ok();
    let words: Vec<String> = match &ssh {
        Some(line) => split_ssh_command(line)
            .into_iter()
            .map(str::to_owned)
            .collect(),
        None => opts.request.clone(),
    };
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    // The hook must answer whatever happens, config or not. Its words come
    // from argv, which sshd's forced command fixes, so they are always local.
    if let [hook, event] = opts.request.as_slice() {
        if hook == "hook" {
            hooks::run(event);
            return ExitCode::Ok.into();
        }
    }
    if let [verb] = opts.request.as_slice() {
        if verb == "status-line" {
            statusline::run();
            return ExitCode::Ok.into();
        }
    }
    // Setting the laptop up needs no config (it writes one); never over ssh.
    if let (None, Some("setup")) = (&ssh, opts.request.first().map(String::as_str)) {
        return cmd::setup::main(&opts.request[1..]);
    }
    match serve(&opts, &words, ssh.is_some()) {
        Ok(()) => ExitCode::Ok.into(),
        Err(e) => {
            e.report(&mut std::io::stderr());
            e.code.into()
        }
    }
}

fn serve(opts: &cli::Options, words: &[&str], over_ssh: bool) -> Result<()> {
    if let Some(&verb @ ("attach" | "hook" | "status-line" | "completions" | "man" | "setup")) =
        words.first()
    {
        if over_ssh {
            return Err(ShimError::invalid(format!(
                "{verb} is only available locally, not over ssh"
            )));
        }
    }
    match words {
        ["completions", shell] => return cmd::docs::completions(shell),
        ["completions", ..] => {
            return Err(ShimError::invalid(
                "completions takes one of bash, zsh, fish, elvish, powershell",
            ))
        }
        ["man"] => return cmd::docs::man(),
        _ => {}
    }
    let config = config::Config::load(opts.config.as_deref(), &opts.flags)
        .map_err(|e| ShimError::failure(format!("{e:#}")))?;
    let limits = config.limits;
    let shim = Shim::new(config);
    if let ["attach", rest @ ..] = words {
        let [name] = rest else {
            return Err(ShimError::invalid("attach takes <session>"));
        };
        let name = paliadin_core::SessionName::new(name)
            .map_err(|e| ShimError::invalid(format!("invalid session name: {e}")))?;
        return cmd::attach::run(&shim, &name);
    }
    if let ["hook", ..] = words {
        return Err(ShimError::invalid("hook takes <Event>"));
    }
    let req = Request::parse(words, limits).map_err(|e| ShimError::invalid(e.to_string()))?;
    // Idle agents are put to sleep here, there being no daemon (not the
    // request's own session: it is about to be used).
    sleep::sweep(&shim, req.session());
    match req {
        Request::Health { session } => cmd::health::run(&shim, &session),
        Request::RunTurn {
            session,
            turn,
            message,
            events,
        } => cmd::run_turn::run(&shim, &session, turn, message, events),
        Request::Reset { session } => cmd::reset::run(&shim, &session),
        Request::Poll { session, turn } => cmd::poll::run(&shim, &session, turn),
        Request::Cancel { session, turn } => cmd::cancel::run(&shim, &session, turn),
        Request::Status { session } => cmd::status::run(&shim, &session),
        Request::Sessions => cmd::sessions::run(&shim),
        Request::Approve {
            session,
            turn,
            request,
            allow,
        } => cmd::approve::run(&shim, &session, turn, request, allow),
        Request::Version => {
            print_or_fail(format!("paliadin-shim {}\n", env!("CARGO_PKG_VERSION")).as_bytes())
        }
    }
}
