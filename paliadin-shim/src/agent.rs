//! The agent's life in its pane: starting it (once, even when requests
//! race), knowing when it is ready for the first paste, and telling alive from
//! dead. Owns the `start.lock`, `ready` and `agent.json` files of a session;
//! never types a turn (that is `cmd::run_turn`'s).

use paliadin_core::process::start_time;
use paliadin_core::ExitCode;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::error::{Result, ShimError};
use crate::hooks;
use crate::state::{AgentRecord, LockName, Mark, SessionDir};
use crate::tmux::{Pane, Tmux, TmuxError};
use crate::wait::{Wake, Watch};

/// How many pane lines an error shows.
pub const TAIL_LINES: usize = 15;
/// How long after `SessionStart` the shim waits for the agent's input loop
/// (measured with Claude Code 2.1.328 on 2 cores: 0.2 to 0.55 s). Input that
/// arrives earlier is kept but its Enter is lost; an agent that never
/// switches to the alternate screen costs its first turn this much.
const MOUNT_WAIT: Duration = Duration::from_secs(2);
/// How often the screen is looked at while waiting for it.
const SCREEN_POLL: Duration = Duration::from_millis(20);
/// How often a starting agent's screen is looked at for a dialog (or, with
/// no hooks, for its ready pattern).
const SCREEN_LOOK: Duration = Duration::from_millis(100);

/// Text of the dialogs Claude Code may raise on an unattended start, before
/// `SessionStart` (no hook fires while one is shown), as seen on the screen
/// of 2.1.328: folder trust, a new `--add-dir` directory, onboarding's theme
/// picker and security notes, an `ANTHROPIC_API_KEY` approval, a project's
/// MCP server. All but the theme picker end with the first line.
const START_DIALOGS: [(&str, &str); 8] = [
    ("Enter to confirm · Esc to cancel", "a confirmation dialog"),
    ("Accessing workspace", "folder trust"),
    ("Adding a new directory", "a new --add-dir directory"),
    ("Choose the text style", "onboarding"),
    ("Press Enter to continue", "onboarding"),
    (
        "Do you want to use this API key?",
        "ANTHROPIC_API_KEY approval",
    ),
    ("New MCP server found", "MCP server approval"),
    ("Quick safety check", "folder trust"),
];

/// The start-up dialog on `screen`, if one is shown: its most specific name.
pub fn start_dialog(screen: &str) -> Option<&'static str> {
    let found: Vec<&str> = START_DIALOGS
        .iter()
        .filter(|(text, _)| screen.contains(text))
        .map(|(_, what)| *what)
        .collect();
    found
        .iter()
        .find(|w| **w != "a confirmation dialog")
        .or(found.first())
        .copied()
}

/// The shim's view of the world for one request.
pub struct Shim {
    pub config: Config,
    pub tmux: Tmux,
}

/// Maps a tmux failure to the shim's exit codes.
pub fn tmux_error(e: TmuxError) -> ShimError {
    match e {
        TmuxError::Missing => {
            ShimError::unavailable("tmux is not installed or not on PATH: install tmux")
        }
        TmuxError::NoSession(_) => {
            ShimError::unavailable("the agent's pane is gone (the agent exited)")
        }
        e => ShimError::unavailable(e.to_string()),
    }
}

fn on_path(program: &str) -> bool {
    if program.contains('/') {
        return is_executable(Path::new(program));
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| is_executable(&d.join(program))))
        .unwrap_or(false)
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The agent recorded in `agent.json`, if that very process still runs.
pub fn recorded_agent(s: &SessionDir) -> Option<Pane> {
    let a = s.agent()?;
    (start_time(a.pid)? == a.starttime?).then_some(Pane {
        pid: a.pid,
        dead: false,
        created: 0,
        activity: 0,
    })
}

impl Shim {
    pub fn new(config: Config) -> Shim {
        // A second past the request's wait, so the shim never outlives it by much.
        let limit = Instant::now() + config.wait + Duration::from_secs(1);
        let tmux = Tmux::new(&config.tmux_socket, limit);
        Shim { config, tmux }
    }

    /// The session's state, created if missing when `create`.
    pub fn session_dir(
        &self,
        name: &paliadin_core::SessionName,
        create: bool,
    ) -> Result<SessionDir> {
        SessionDir::open(&self.config.state_dir, name, create).map_err(|e| {
            crate::error::io_error(
                &format!(
                    "cannot open the session's state under {}",
                    self.config.state_dir.display()
                ),
                e,
            )
        })
    }

    /// A watch for a waiter of session `s` (see [`Watch::new`]).
    pub fn watch(&self, s: &SessionDir, rung: bool) -> Result<Watch> {
        Watch::new(s, rung).map_err(|e| {
            crate::error::io_error(
                &format!("cannot arm a wake-up bell in {}", s.path().display()),
                e,
            )
        })
    }

    /// The pane's last lines, for an error report.
    pub fn tail(&self, s: &SessionDir) -> Option<String> {
        self.tmux.tail(&s.name.key(), TAIL_LINES).ok()
    }

    /// The live pane of the session, if any.
    pub fn live_pane(&self, s: &SessionDir) -> Result<Option<Pane>> {
        let pane = self.tmux.pane(&s.name.key()).map_err(tmux_error)?;
        Ok(pane.filter(|p| !p.dead && start_time(p.pid).is_some()))
    }

    /// Makes sure the session's agent runs and is ready for a paste, starting
    /// it if needed; waits until `deadline` at most.
    pub fn ensure_ready(&self, s: &SessionDir, deadline: Instant) -> Result<Pane> {
        // An agent started without a hook key (by an older shim) is started
        // afresh: its hooks would be refused.
        let keyed = !self.config.agent_hooks || crate::hookauth::verifier(s).is_some();
        if keyed && s.has(Mark::Ready) && s.has(Mark::Mounted) {
            // The warm path costs no tmux call: the agent recorded at start
            // is still that very process.
            if let Some(p) = recorded_agent(s) {
                return Ok(p);
            }
            if let Some(p) = self.live_pane(s)? {
                return Ok(p);
            }
        }
        self.claim_server()?;
        let _guard = s.lock(LockName::Start, deadline)?.ok_or_else(|| {
            ShimError::unavailable("the agent is still starting; try again shortly")
        })?;
        let pane = match self.live_pane(s)? {
            // Started by us: its SessionStart may still be on its way.
            Some(p) if keyed && s.agent().is_some() => {
                self.become_ready(s, &p, deadline)?;
                p
            }
            // A pane the state knows nothing of (the state directory was
            // wiped): its readiness can never be known, so start afresh.
            Some(_) | None => {
                let waking = crate::sleep::waking(&self.config, s);
                let started = self
                    .start(s)
                    .and_then(|p| self.become_ready(s, &p, deadline).map(|()| p));
                let (pane, resumed) = match started {
                    // Its conversation is gone: a new one.
                    Err(_) if waking && self.resume_died(s)? => {
                        crate::sleep::wake_failed(s);
                        let p = self.start(s)?;
                        self.become_ready(s, &p, deadline)?;
                        (p, false)
                    }
                    r => (r?, waking),
                };
                crate::sleep::started(s, resumed);
                pane
            }
        };
        if !s.has(Mark::Mounted) {
            self.await_mounted(s, deadline)?;
        }
        Ok(pane)
    }

    /// Until the started agent is ready (its `SessionStart`).
    fn become_ready(&self, s: &SessionDir, pane: &Pane, deadline: Instant) -> Result<()> {
        if !s.has(Mark::Ready) {
            let window = self.ready_window(s);
            if window.is_zero() {
                return Err(self.stuck(s));
            }
            self.await_ready(s, pane, deadline, Instant::now() + window)?;
        }
        Ok(())
    }

    /// Whether a resumed agent was launched and died before it was ready
    /// (not: it could not be launched at all).
    fn resume_died(&self, s: &SessionDir) -> Result<bool> {
        Ok(on_path(&self.config.agent[0])
            && self.config.workdir.is_dir()
            && self.live_pane(s)?.is_none())
    }

    /// A tmux server belongs to the state directory of the shim that started
    /// it (marked with [`crate::tmux::OWNER_OPTION`]): two shims with
    /// different state on one socket would kill each other's agents and
    /// press keys in each other's panes. A server marked by another state
    /// directory is refused (exit 1); an unmarked one (started by an older
    /// shim) is marked as ours.
    pub fn claim_server(&self) -> Result<()> {
        let ours = self.config.state_dir.to_string_lossy();
        match self.tmux.owner().map_err(tmux_error)? {
            Some(owner) if owner == ours => Ok(()),
            Some(owner) => Err(ShimError::failure(format!(
                "the tmux server {:?} belongs to the paliadin state directory {owner}, not {ours}: give this shim a tmux_socket of its own",
                self.config.tmux_socket
            ))),
            None => {
                // No server yet: starting the agent marks it.
                if self.tmux.list_sessions().map_err(tmux_error)?.is_empty() {
                    return Ok(());
                }
                self.tmux.set_owner(&ours).map_err(tmux_error)
            }
        }
    }

    /// After `SessionStart`, Claude Code still reads the terminal through an
    /// early-input buffer that keeps typed text but drops its Enter, until its
    /// input loop runs and it switches to the alternate screen. The first
    /// paste waits for that switch (at most [`MOUNT_WAIT`]; an agent without
    /// hooks, which has no `SessionStart`, is ready when its pattern shows).
    fn await_mounted(&self, s: &SessionDir, deadline: Instant) -> Result<()> {
        if self.config.agent_hooks {
            let until = deadline.min(Instant::now() + MOUNT_WAIT);
            let key = s.name.key();
            while !self.tmux.alternate_on(&key).map_err(tmux_error)? && Instant::now() < until {
                std::thread::sleep(SCREEN_POLL);
            }
        }
        s.mark(Mark::Mounted, "")?;
        Ok(())
    }

    /// How much of the agent's `ready_timeout` since its start is left.
    fn ready_window(&self, s: &SessionDir) -> Duration {
        let started = s
            .agent()
            .map_or_else(paliadin_core::timefmt::now_ms, |a| a.started_ms);
        let age = Duration::from_millis((paliadin_core::timefmt::now_ms() - started).max(0) as u64);
        self.config.ready_timeout.saturating_sub(age)
    }

    /// An agent alive but never ready: most likely a dialog waits on a person.
    fn stuck(&self, s: &SessionDir) -> ShimError {
        ShimError::new(
            ExitCode::Blocked,
            format!(
                "the agent has not become ready in {} s since it started; it may wait on a dialog: look with: paliadin-shim attach {} (or reset the session)",
                self.config.ready_timeout.as_secs(),
                s.name
            ),
        )
        .with_pane(self.tail(s))
    }

    fn start(&self, s: &SessionDir) -> Result<Pane> {
        let key = s.name.key();
        // A dead pane must never be pasted into (tmux 3.3a crashes): remove it.
        let _ = self.tmux.kill_session(&key);
        s.forget_agent();
        let program = &self.config.agent[0];
        if !on_path(program) {
            return Err(ShimError::unavailable(format!("the agent {program:?} is not installed or not on PATH: set `agent` in the shim's config")));
        }
        if !self.config.workdir.is_dir() {
            return Err(ShimError::unavailable(format!(
                "the agent's workdir {} does not exist",
                self.config.workdir.display()
            )));
        }
        let configured = match self.config.approve {
            Some(_) => crate::approve::agent_argv(&self.config.agent),
            None => self.config.agent.clone(),
        };
        // A tool an operator allowed in shim.toml is offered too.
        let mut argv = crate::policy::offer_allowed_tools(&configured);
        if self.config.agent_hooks {
            let sandbox = crate::sandbox::for_config(&self.config);
            let settings =
                hooks::write_settings(&self.config.state_dir, self.config.approve, sandbox)?;
            argv.push("--settings".into());
            argv.push(settings.to_string_lossy().into_owned());
        }
        argv.extend(crate::sleep::launch_args(&self.config, s)?);
        let state = self.config.state_dir.to_string_lossy().into_owned();
        let mut env: Vec<(&str, &str)> = self
            .config
            .agent_env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let hook_key = crate::hookauth::arm(s)?;
        env.push((crate::hookauth::ENV, hook_key.value()));
        let approve = self.config.approve.map(|w| w.as_secs().to_string());
        if let Some(secs) = &approve {
            env.push((crate::approve::ENV, secs));
        }
        env.push(("PALIADIN_SESSION", s.name.as_str()));
        env.push(("PALIADIN_STATE_DIR", state.as_str()));
        self.tmux
            .new_session(&key, &self.config.workdir, &env, &argv, &state)
            .map_err(tmux_error)?;
        let pane = self.live_pane(s)?.ok_or_else(|| {
            ShimError::unavailable(format!(
                "the agent {program:?} exited as soon as it started"
            ))
        })?;
        s.set_agent(&AgentRecord {
            argv,
            pid: pane.pid,
            starttime: start_time(pane.pid),
            started_ms: paliadin_core::timefmt::now_ms(),
        })?;
        s.touch();
        Ok(pane)
    }

    /// Waits for `ready` until `deadline` (the caller's) or `window` (the
    /// agent's own ready timeout), whichever comes first.
    fn await_ready(
        &self,
        s: &SessionDir,
        pane: &Pane,
        deadline: Instant,
        window: Instant,
    ) -> Result<()> {
        let started = Instant::now();
        let until_ready = deadline.min(window);
        // The loop looks at the screen at its own pace: only the hooks ring.
        let mut watch = self.watch(s, true)?;
        if !watch.watch_pid(pane.pid)? {
            return Err(ShimError::unavailable("the agent exited during start-up"));
        }
        let pattern = self.config.ready_pattern.as_deref();
        loop {
            if s.has(Mark::Ready) {
                return Ok(());
            }
            let screen = self.tmux.screen(&s.name.key()).unwrap_or_default();
            if let Some(dialog) = start_dialog(&screen) {
                return Err(ShimError::new(
                    ExitCode::Blocked,
                    format!(
                        "the agent stopped at a start-up dialog ({dialog}); the laptop's installer prevents it: run install/laptop.sh again, or answer it with: paliadin-shim attach {}",
                        s.name
                    ),
                )
                .with_pane(self.tail(s)));
            }
            if !self.config.agent_hooks && pattern.is_none_or(|p| screen.contains(p)) {
                s.mark_ready("pattern")?;
                return Ok(());
            }
            let until = until_ready.min(Instant::now() + SCREEN_LOOK);
            match watch.wait(until)? {
                Wake::Died => {
                    return Err(ShimError::unavailable("the agent exited during start-up"))
                }
                Wake::Deadline if Instant::now() >= window => return Err(self.stuck(s)),
                Wake::Deadline if Instant::now() >= deadline => {
                    return Err(ShimError::unavailable(format!(
                        "the agent is still starting after {:.1} s; try again shortly",
                        started.elapsed().as_secs_f64()
                    )));
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::start_dialog;

    #[test]
    fn recognises_claude_codes_start_dialogs_from_captured_screens() {
        // Captured from Claude Code 2.1.328 in tmux.
        let trust = " Accessing workspace:\n /home/m/paliadin-work\n Quick safety check: Is this a project you created or one you trust?\n ❯ No, exit\n   Yes, I trust this folder\n Enter to confirm · Esc to cancel";
        assert_eq!(start_dialog(trust), Some("folder trust"));
        let add_dir = " Adding a new directory:\n /s\n This session hasn't worked here before.\n❯ No, exit\nYes, add it\n Enter to confirm · Esc to cancel";
        assert_eq!(start_dialog(add_dir), Some("a new --add-dir directory"));
        let key = "  Detected a custom API key in your environment\n  Do you want to use this API key?\n    Yes\n  ❯ No (recommended)\n Enter to confirm · Esc to cancel";
        assert_eq!(start_dialog(key), Some("ANTHROPIC_API_KEY approval"));
        let theme = " Let's get started.\n Choose the text style that looks best with your terminal\n ❯ ✔ Auto (match terminal)";
        assert_eq!(start_dialog(theme), Some("onboarding"));
        let mcp = "  New MCP server found in this project: demo\n  ❯ Continue without using this MCP server";
        assert_eq!(start_dialog(mcp), Some("MCP server approval"));
        assert_eq!(
            start_dialog("Something else?\n Enter to confirm · Esc to cancel"),
            Some("a confirmation dialog")
        );
        assert_eq!(start_dialog("test agent starting...\n"), None);
    }
}
