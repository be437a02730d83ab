//! `setup [options]` (local only, never over ssh): sets this laptop up for
//! paliadin, as `install/laptop.sh` did and now has this verb do. In order:
//! the workdir and the state directory, the binary, the skill, `shim.toml`
//! (the agent and its permission policy, [`crate::policy`]), the workdir's
//! trust entry in `~/.claude.json` (only while no claude of this HOME
//! runs), the server key's `authorized_keys` line; then the manifest, and
//! what the login shell costs each turn. Idempotent; `--dry-run` changes
//! nothing; `--uninstall` undoes exactly what the manifest records, and
//! stops the shim's tmux server only if it is marked as this state
//! directory's. Without a terminal it changes nothing unless `--yes`.
//!
//! Its output is the bash installer's, line for line (the suite holds
//! recordings of it), and so is every file it writes: either can read and
//! undo what the other did.

use clap::Parser as _;
use paliadin_core::dirs::{home, xdg};
use paliadin_core::process::claude_running;
use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cli::SetupArgs;
use crate::config::{Argv, EnvVar, Layer};
use crate::policy;
use crate::setup::changes::{say, Changes};
use crate::setup::claude_json::{ClaudeJson, TrustError};
use crate::setup::{
    abspath, has_line, keys, login_shell, manifest, plain_path, real_as_far_as_it_exists, realdir,
    shim_toml, skill, Fail, Result,
};
use crate::tmux::Tmux;

/// Runs the verb on `words` (what follows `setup`); prints its own errors.
pub fn main(words: &[String]) -> std::process::ExitCode {
    let argv = std::iter::once("setup".to_owned()).chain(words.iter().cloned());
    let args = match SetupArgs::try_parse_from(argv) {
        Ok(a) => a,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return std::process::ExitCode::SUCCESS;
        }
        Err(e) => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("paliadin-shim setup: error: {first} (see setup --help)");
            return std::process::ExitCode::from(2);
        }
    };
    match Setup::new(&args).and_then(|s| s.run()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("{}: error: {}", args.invoked_as, f.msg);
            std::process::ExitCode::from(f.code)
        }
    }
}

/// Where everything goes, for this HOME.
struct Paths {
    home: PathBuf,
    config: PathBuf,
    config_dir: PathBuf,
    manifest: PathBuf,
    state_dir: PathBuf,
    skill: PathBuf,
    prompt: PathBuf,
    claude_json: PathBuf,
    ssh_dir: PathBuf,
    auth_keys: PathBuf,
    prefix: PathBuf,
    workdir: PathBuf,
}

/// One run of the verb.
struct Setup<'a> {
    args: &'a SetupArgs,
    p: Paths,
    c: Changes,
}

/// An option's value, `None` when missing or empty (as the bash installer
/// read an empty value: the default).
fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

/// The first `name` on PATH that this user may run, as `command -v` names it.
fn on_path(name: &str) -> Option<String> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':').find_map(|dir| {
        let dir = if dir.is_empty() { "." } else { dir };
        let p = format!("{dir}/{name}");
        (Path::new(&p).is_file() && executable(Path::new(&p))).then_some(p)
    })
}

fn executable(p: &Path) -> bool {
    rustix::fs::access(p, rustix::fs::Access::EXEC_OK).is_ok()
}

/// Asks on the terminal; yes only for y or yes.
fn ask(question: &str) -> bool {
    let _ = write!(std::io::stderr(), "{question} [y/N] ");
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).unwrap_or(0) == 0 {
        return false;
    }
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// The agent, as setup writes it: its argv, what it is (said to the user
/// and in the file), and its environment.
struct Agent {
    argv: Vec<String>,
    note: String,
    env: Vec<EnvVar>,
}

impl<'a> Setup<'a> {
    fn new(args: &'a SetupArgs) -> Result<Setup<'a>> {
        if let Some(w) = given(&args.wait_secs) {
            if !w.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Fail::die("--wait-secs takes a whole number of seconds"));
            }
        }
        if let Some(s) = given(&args.tmux_socket) {
            if !s
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            {
                return Err(Fail::die(
                    "--tmux-socket takes a name of letters, digits, '_', '.' and '-'",
                ));
            }
        }
        if std::env::var_os("HOME").is_none_or(|h| h.is_empty()) {
            return Err(Fail::die("HOME is not set"));
        }
        let home = home();
        let config_dir = xdg("XDG_CONFIG_HOME", ".config").join("paliadin");
        let ssh_dir = home.join(".ssh");
        let p = Paths {
            config: config_dir.join("shim.toml"),
            manifest: config_dir.join("install-laptop.manifest"),
            state_dir: xdg("XDG_STATE_HOME", ".local/state").join("paliadin"),
            skill: home.join(".claude/skills/paliadin/SKILL.md"),
            prompt: config_dir.join("agent-prompt.md"),
            claude_json: home.join(".claude.json"),
            auth_keys: ssh_dir.join("authorized_keys"),
            prefix: abspath(given(&args.prefix).unwrap_or("~/.local/bin"), &home),
            workdir: abspath(given(&args.workdir).unwrap_or("~/paliadin-work"), &home),
            ssh_dir,
            config_dir,
            home,
        };
        let c = Changes::new(&args.invoked_as, args.dry_run, &p.manifest);
        Ok(Setup { args, p, c })
    }

    fn run(mut self) -> Result<()> {
        let a = self.args;
        let tty = std::io::stdin().is_terminal();
        if !a.dry_run && !a.yes && !tty {
            return Err(Fail::refuse(
                "no terminal to ask on: run again with --yes to make the changes, or with --dry-run to see them",
            ));
        }
        let interactive = !a.dry_run && !a.yes && tty;
        if a.uninstall {
            if interactive
                && !ask(&format!(
                    "Undo everything install/laptop.sh did (see {})?",
                    self.p.manifest.display()
                ))
            {
                return Err(Fail::die("stopped; nothing changed"));
            }
            self.uninstall()?;
            if a.dry_run {
                say("dry run: nothing was changed");
            }
            return Ok(());
        }
        if interactive {
            self.install(true)?;
            if self.c.count == 0 {
                say("Nothing to change: this laptop is set up.");
                return Ok(());
            }
            if !ask(&format!("Make these {} changes?", self.c.count)) {
                return Err(Fail::die("stopped; nothing changed"));
            }
        }
        self.install(a.dry_run)?;
        self.check_login_shell();
        let n = self.c.count;
        if a.dry_run {
            say(&format!(
                "dry run: {n} change(s) listed above; nothing was changed"
            ));
        } else if n == 0 {
            say("Nothing changed: this laptop was already set up.");
        } else {
            say(&format!(
                "{n} change(s) made; {} records them for --uninstall.",
                self.p.manifest.display()
            ));
        }
        let shim = format!(
            "{}/paliadin-shim --config {}",
            self.p.prefix.display(),
            self.p.config.display()
        );
        say(&format!(
            "\nCheck it:\n  {shim} health <session>    # prints ok once the agent runs\n  {shim} attach <session>    # watch the agent's pane (detach: C-b d)"
        ));
        Ok(())
    }

    /// One pass over the machine: every change made, or (`dry_run`) told.
    fn install(&mut self, dry_run: bool) -> Result<()> {
        let a = self.args;
        if given(&a.agent).is_none() && on_path("claude").is_none() {
            return Err(no_agent());
        }
        self.c.begin(dry_run);
        let shim_bin = match &a.shim_bin {
            Some(p) => abspath(&p.to_string_lossy(), &self.p.home),
            None => std::env::current_exe()
                .map_err(|e| Fail::die(format!("cannot find this program: {e}")))?,
        };
        if !shim_bin.is_file() || !executable(&shim_bin) {
            return Err(Fail::die(format!(
                "--shim-bin: not an executable file: {}",
                shim_bin.display()
            )));
        }
        self.refuse_a_workdir_that_holds_secrets()?;

        self.c.ensure_dir(&self.p.workdir, 0o755)?;
        self.c.ensure_dir(&self.p.state_dir, 0o700)?;
        let work = realdir(&self.p.workdir);
        let state = realdir(&self.p.state_dir);
        for p in [&work, &state] {
            if !plain_path(p) {
                return Err(Fail::die(format!(
                    "{} has characters a permission rule cannot hold plainly; choose another path",
                    p.display()
                )));
            }
        }
        let bin = std::fs::read(&shim_bin)
            .map_err(|e| Fail::die(format!("cannot read {}: {e}", shim_bin.display())))?;
        let dest = self.p.prefix.join("paliadin-shim");
        self.c
            .install_file(&bin, &dest, 0o755, "bin", "the shim binary")?;
        let skill = self.render_skill()?;
        self.install_skill(&skill)?;
        self.install_config(&work, &state, &skill)?;
        self.trust_workdir(&work)?;
        match given(&a.pubkey) {
            Some(key) => self.install_authorized_key(key)?,
            None => say(&format!(
                "note: no --pubkey given, so {} was not changed",
                self.p.auth_keys.display()
            )),
        }
        self.c.save_manifest()
    }

    /// Issue 17: the agent's one allow rule reads its workdir, so a workdir
    /// that holds HOME, `~/.ssh`, `~/.claude` or the shim's state, or lies
    /// inside one of them, would let it read keys, credentials or every
    /// session. Refused before anything changed.
    fn refuse_a_workdir_that_holds_secrets(&self) -> Result<()> {
        let work = real_as_far_as_it_exists(&self.p.workdir);
        let holds = |p: &Path| real_as_far_as_it_exists(p).starts_with(&work);
        let inside = |p: &Path| work.starts_with(real_as_far_as_it_exists(p));
        let claude_dir = self.p.home.join(".claude");
        let shown = self.p.workdir.display();
        let why = if holds(&self.p.home) {
            format!("holds your whole HOME ({})", self.p.home.display())
        } else if holds(&self.p.ssh_dir) {
            format!("holds {} (your ssh keys)", self.p.ssh_dir.display())
        } else if holds(&self.p.state_dir) {
            format!(
                "holds the shim's state directory {} (every session's replies)",
                self.p.state_dir.display()
            )
        } else if holds(&claude_dir) {
            format!(
                "holds {} (your Claude Code credentials)",
                claude_dir.display()
            )
        } else if let Some(d) = [&self.p.ssh_dir, &self.p.state_dir, &claude_dir]
            .into_iter()
            .find(|d| inside(d))
        {
            format!("is inside {}, which the agent must never read", d.display())
        } else {
            return Ok(());
        };
        Err(Fail::refuse(format!(
            "--workdir {shown} {why}, and the agent may read all of its workdir: give it a directory of its own (default: ~/paliadin-work)"
        )))
    }

    /// The skill with `--persona`'s text, as the skill and the agent's
    /// system prompt both carry it.
    fn render_skill(&self) -> Result<Vec<u8>> {
        let persona = match self
            .args
            .persona
            .as_deref()
            .filter(|p| !p.as_os_str().is_empty())
        {
            Some(p) if p.is_file() => Some(
                std::fs::read(p)
                    .map_err(|e| Fail::die(format!("--persona: {}: {e}", p.display())))?,
            ),
            Some(p) => {
                return Err(Fail::die(format!(
                    "--persona: no such file: {}",
                    p.display()
                )))
            }
            None => None,
        };
        skill::render(skill::SOURCE, persona.as_deref()).map_err(Fail::die)
    }

    fn install_skill(&mut self, out: &[u8]) -> Result<()> {
        let path = self.p.skill.clone();
        if path.is_file() {
            let old = std::fs::read(&path).unwrap_or_default();
            if !has_line(&old, skill::MARK) && old != out {
                if !self.args.force {
                    self.c.warn(&format!(
                        "{} exists and was not written by this installer: left as is (--force moves it to SKILL.md.orig and installs paliadin's)",
                        path.display()
                    ));
                    return Ok(());
                }
                let orig = PathBuf::from(format!("{}.orig", path.display()));
                self.c.change(&format!(
                    "move the existing {} to {}",
                    path.display(),
                    orig.display()
                ));
                if !self.c.dry_run {
                    std::fs::rename(&path, &orig)
                        .map_err(|e| Fail::die(format!("cannot move {}: {e}", path.display())))?;
                }
                self.c.record(&[
                    "skill-backup",
                    &path.to_string_lossy(),
                    &orig.to_string_lossy(),
                ]);
            }
        }
        let claude = self.p.home.join(".claude");
        self.c.ensure_dir(&claude, 0o755)?;
        self.c.ensure_dir(&claude.join("skills"), 0o755)?;
        self.c.install_file(out, &path, 0o644, "skill", "the skill")
    }

    /// The agent: `--agent`'s words as given, else claude on PATH under
    /// the permission policy.
    fn agent(&self, work: &Path) -> Result<Agent> {
        if let Some(line) = given(&self.args.agent) {
            let argv = shlex::split(line).ok_or_else(|| Fail::die("--agent: unbalanced quotes"))?;
            if argv.is_empty() {
                return Err(Fail::die("--agent is empty"));
            }
            return Ok(Agent {
                argv,
                note: format!("{line} (given with --agent)"),
                env: Vec::new(),
            });
        }
        let Some(claude) = on_path("claude") else {
            return Err(no_agent());
        };
        let mut argv = policy::claude_argv(&claude, work, &self.p.prompt);
        let mut note = format!("Claude Code ({claude}), unattended");
        if self.args.allow_bash {
            argv = std::iter::once(claude.clone())
                .chain(policy::claude_args_with_bash(work, &self.p.prompt))
                .collect();
            note.push_str(", Bash in Claude Code's sandbox");
        }
        Ok(Agent {
            argv,
            note,
            env: policy::AGENT_ENV
                .iter()
                .map(|(k, v)| EnvVar((*k).into(), (*v).into()))
                .collect(),
        })
    }

    fn install_config(&mut self, work: &Path, state: &Path, skill: &[u8]) -> Result<()> {
        let agent = self.agent(work)?;
        let policy = given(&self.args.agent).is_none();
        let wait_secs = match given(&self.args.wait_secs) {
            Some(w) => Some(
                w.parse::<u64>()
                    .map_err(|_| Fail::die("--wait-secs takes a whole number of seconds"))?,
            ),
            None => None,
        };
        let layer = Layer {
            agent: Some(Argv(agent.argv)),
            agent_hooks: Some(true),
            agent_sandbox: self.args.allow_bash.then_some(true),
            agent_env: agent.env,
            workdir: Some(work.to_owned()),
            state_dir: Some(state.to_owned()),
            tmux_socket: given(&self.args.tmux_socket).map(str::to_owned),
            wait_secs,
            ..Layer::default()
        };
        // What the file shows as comments: the shim's defaults, and the
        // protocol's own message limit for the key that has none.
        // The keys the bash installer's files never showed stay out, so
        // those files and setup's stay the same (tests/golden).
        let defaults = Layer {
            max_message_bytes: Some(paliadin_core::request::MAX_ARG_MESSAGE),
            agent_resume: None,
            idle_sleep_secs: None,
            approve_secs: None,
            ..Layer::defaults()
        };
        let config = self.p.config.display().to_string();
        let header = [
            format!("The shim's configuration: paliadin-shim --config {config}"),
            "Remove the line above to keep install/laptop.sh from rewriting this file.".into(),
            format!("Agent: {}", agent.note),
        ];
        let text = shim_toml::render(&header, &layer, &defaults)
            .map_err(|e| Fail::die(format!("cannot write the shim config: {e}")))?;
        say(&format!("agent: {}", agent.note));
        self.c.ensure_dir(&self.p.config_dir, 0o700)?;
        if policy {
            // The protocol the policy's agent line points at: with only
            // Read offered, the skill itself never reaches the model.
            let prompt = self.p.prompt.clone();
            let ours = |p: &Path| has_line(&std::fs::read(p).unwrap_or_default(), skill::MARK);
            if prompt.is_file() && !ours(&prompt) {
                self.c.warn(&format!(
                    "{} exists and was not written by this installer: left as is (the agent's system prompt is read from it)",
                    prompt.display()
                ));
            } else {
                self.c.install_file(
                    &skill::system_prompt(skill),
                    &prompt,
                    0o644,
                    "prompt",
                    "the agent's system prompt",
                )?;
            }
        }
        let path = self.p.config.clone();
        if path.is_file() && !has_line(&std::fs::read(&path).unwrap_or_default(), shim_toml::MARK) {
            say(&format!("kept: {config} was not written by this installer; it stays as it is (check its agent, workdir and state_dir by hand)"));
            return Ok(());
        }
        self.c
            .install_file(text.as_bytes(), &path, 0o600, "config", "the shim config")
    }

    fn trust_workdir(&mut self, work: &Path) -> Result<()> {
        let file = self.p.claude_json.clone();
        let project = work.to_string_lossy().into_owned();
        let mut json = ClaudeJson::read(&file).map_err(|e| match e {
            TrustError::Io(e) => Fail::die(format!("cannot read {}: {e}", file.display())),
            _ => Fail::die(format!(
                "{} is not valid JSON; fix it, then run this again",
                file.display()
            )),
        })?;
        if json.trusted(&project) {
            self.c
                .unchanged(&format!("{project} is trusted in {}", file.display()));
            return Ok(());
        }
        match claude_running(&self.p.home) {
            Ok(false) => {}
            Ok(true) => {
                self.c.warn(&format!("claude is running, so {} is in use: the workdir was NOT marked trusted. Quit every claude, then run this again.", file.display()));
                return Ok(());
            }
            Err(e) => {
                self.c.warn(&format!("nobody can tell whether claude is running ({e}), so {} may be in use: the workdir was NOT marked trusted. Quit every claude, then run this again.", file.display()));
                return Ok(());
            }
        }
        self.c
            .change(&format!("mark {project} trusted in {}", file.display()));
        if self.c.dry_run {
            return Ok(());
        }
        let created = json
            .add(&project)
            .map_err(|e| Fail::die(format!("cannot update {}: {e}", file.display())))?;
        self.c
            .record(&["trust", &file.to_string_lossy(), &project, &created]);
        Ok(())
    }

    /// Takes a trust entry out; `false` when it had to stay (claude runs,
    /// or the file cannot be read or written).
    fn untrust(&mut self, file: &Path, project: &str, flags: &str) -> bool {
        let shown = file.display();
        let running = match claude_running(&self.p.home) {
            Ok(false) => None,
            Ok(true) => Some("claude is running".to_owned()),
            Err(e) => Some(format!("nobody can tell whether claude is running ({e})")),
        };
        if let Some(why) = running {
            self.c.warn(&format!("{why}, so {shown} is in use: its trust entry for {project} stays. Quit every claude, then run --uninstall again."));
            return false;
        }
        let Ok(mut json) = ClaudeJson::read(file) else {
            self.c
                .warn(&format!("{shown} is not valid JSON: its trust entry stays"));
            return false;
        };
        if !json.trusted(project) {
            return true;
        }
        self.c
            .change(&format!("remove the trust entry of {project} from {shown}"));
        if self.c.dry_run {
            return true;
        }
        if json.remove(project, flags).is_err() {
            self.c.warn(&format!("cannot update {shown}"));
            return false;
        }
        true
    }

    fn install_authorized_key(&mut self, arg: &str) -> Result<()> {
        let text = keys::read_pubkey(arg);
        let key = keys::parse(&text).ok_or_else(|| {
            Fail::die(format!(
                "--pubkey: no public key in {arg} (want 'ssh-ed25519 AAAA...' or a .pub file)"
            ))
        })?;
        let shim = self.p.prefix.join("paliadin-shim");
        for p in [&shim, &self.p.config] {
            if !plain_path(p) {
                return Err(Fail::die(format!("{} has characters that sshd's command line would need quoted; choose another --prefix or HOME", p.display())));
            }
        }
        let from = given(&self.args.from);
        if let Some(f) = from {
            if f.contains(|c: char| c == '"' || c.is_ascii_whitespace()) {
                return Err(Fail::die(format!(
                    "--from: no quotes or spaces allowed: {f}"
                )));
            }
        }
        let line = keys::forced_line(&key, &shim, &self.p.config, from);
        self.c.ensure_dir(&self.p.ssh_dir, 0o700)?;
        let file = self.p.auth_keys.clone();
        let read = || std::fs::read(&file).unwrap_or_default();
        let mut replaced = false;
        // A line of an earlier run with other options (--from, --prefix) is
        // replaced by the new one.
        if file.is_file() && !has_line(&read(), &line) {
            let prefix = format!("authline\t{}\t", file.display());
            let old: Vec<String> = self
                .c
                .manifest
                .old
                .split('\n')
                .filter_map(|l| l.strip_prefix(&prefix).map(str::to_owned))
                .collect();
            for old in old {
                if format!(" {old} ").contains(&format!(" {} ", key.blob))
                    && has_line(&read(), &old)
                {
                    self.c.remove_line(&file, &old, "authline")?;
                    replaced = true;
                }
            }
        }
        if !replaced && file.is_file() && keys::holds_blob(&read(), &key.blob) {
            if has_line(&read(), &line) {
                // Recorded by the run that added it, if setup added it at all.
                self.c.unchanged(&format!(
                    "the server's key is authorized in {}",
                    file.display()
                ));
            } else {
                self.c.warn(&format!("the server's key is already in {} on another line: left as is. For paliadin it must read:", file.display()));
                say(&format!("  {line}"));
            }
            return Ok(());
        }
        self.c.append_line(&file, &line, "authline")
    }

    fn check_login_shell(&self) {
        let shell = std::env::var_os("SHELL")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/bin/sh"));
        if !executable(&shell) {
            return;
        }
        let Some(ms) = login_shell::cost_ms(&shell, &self.p.home) else {
            return;
        };
        if ms > login_shell::WORTH_A_GUARD_MS {
            self.c.warn(&format!(
                "your login shell ({}) spends {ms} ms reading its rc files before every turn (sshd runs the shim through it, and bash reads ~/.bashrc for ssh): each turn costs {ms} ms more. Put this at the top of ~/.bashrc to skip the rest when no one types: {}",
                shell.display(),
                login_shell::GUARD
            ));
        } else {
            self.c
                .unchanged(&format!("your login shell starts the shim in {ms} ms"));
        }
    }

    /// Stops the shim's tmux server (and every agent in it) if it runs and
    /// is marked as this state directory's; any other server stays.
    fn stop_shim_server(&mut self) {
        let configured = if self.p.config.is_file() {
            Layer::read(&self.p.config).ok().and_then(|l| l.tmux_socket)
        } else {
            None
        };
        let socket = configured
            .or(Layer::defaults().tmux_socket)
            .unwrap_or_default();
        let tmux = Tmux::new(&socket, Instant::now() + Duration::from_secs(10));
        if !tmux.list_sessions().is_ok_and(|s| !s.is_empty()) {
            return;
        }
        let state = self.p.state_dir.to_string_lossy().into_owned();
        let real = realdir(&self.p.state_dir).to_string_lossy().into_owned();
        match tmux.owner() {
            Ok(Some(owner)) if owner == state || owner == real => {}
            Ok(Some(owner)) => {
                say(&format!(
                    "kept: the tmux server {socket} (it belongs to the state directory {owner})"
                ));
                return;
            }
            _ => {
                say(&format!("kept: the tmux server {socket} (it carries no state directory's mark; stop it with: tmux -L {socket} kill-server)"));
                return;
            }
        }
        self.c.change(&format!(
            "stop the shim's tmux server {socket} and the agents in it"
        ));
        if !self.c.dry_run {
            let _ = tmux.kill_server();
        }
    }

    fn uninstall(&mut self) -> Result<()> {
        let m = self.p.manifest.clone();
        if !m.is_file() {
            say(&format!("nothing to undo: no manifest at {}", m.display()));
            return Ok(());
        }
        self.c.begin(self.args.dry_run);
        self.stop_shim_server();
        let mut kept: Vec<String> = Vec::new();
        let mut dirs: Vec<String> = Vec::new();
        for line in self.c.manifest.reversed() {
            if line.is_empty() {
                continue;
            }
            let e = manifest::parse(&line);
            let a = Path::new(e.a);
            match e.kind {
                "bin" => self.c.remove_file(a, "the shim binary")?,
                kind @ ("config" | "skill" | "prompt") => {
                    let mark = if kind == "config" {
                        shim_toml::MARK
                    } else {
                        skill::MARK
                    };
                    if a.is_file() && !has_line(&std::fs::read(a).unwrap_or_default(), mark) {
                        say(&format!(
                            "kept: {} (no longer marked as written by this installer)",
                            a.display()
                        ));
                    } else {
                        self.c.remove_file(a, &format!("the {kind}"))?;
                    }
                }
                "skill-backup" => {
                    let orig = Path::new(e.rest);
                    if orig.is_file() && !a.exists() {
                        self.c
                            .change(&format!("restore {} from {}", a.display(), orig.display()));
                        if !self.c.dry_run {
                            std::fs::rename(orig, a).map_err(|err| {
                                Fail::die(format!("cannot restore {}: {err}", a.display()))
                            })?;
                        }
                    }
                }
                "authline" => self.c.remove_line(a, e.rest, "authline")?,
                "authline-file" | "authline-newline" => {}
                "trust" => {
                    if !self.untrust(a, e.b, e.c) {
                        kept.insert(0, line.clone());
                    }
                }
                "dir" => dirs.insert(0, line.clone()),
                _ => self.c.warn(&format!("unknown manifest entry: {line}")),
            }
        }
        if !kept.is_empty() {
            if !self.c.dry_run {
                let text: String = dirs.iter().chain(&kept).map(|l| format!("{l}\n")).collect();
                self.c.write_atomic(&m, text.as_bytes(), 0o600)?;
            }
            say(&format!(
                "Some entries could not be undone; they stay in {} for the next --uninstall.",
                m.display()
            ));
            return Ok(());
        }
        self.c.remove_file(&m, "the manifest")?;
        // The directories setup made, newest first, if they are empty now.
        for line in dirs.iter().rev() {
            if let Some(d) = line.strip_prefix("dir\t") {
                self.c.remove_dir(Path::new(d))?;
            }
        }
        let state = &self.p.state_dir;
        if state.is_dir() {
            say(&format!("left: the state directory {0} (the shim's sessions and the replies of the last day); remove it with: rm -rf '{0}'", state.display()));
        }
        Ok(())
    }
}

/// No agent would answer: installing one that cannot start only fails
/// later, on the server, for every turn. Refused before anything changed.
fn no_agent() -> Fail {
    Fail::refuse("claude (Claude Code) is not on PATH. Install it (npm install -g @anthropic-ai/claude-code, then run claude once to log in) and run this again, or give the agent's command line with --agent COMMAND")
}
