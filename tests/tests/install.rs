//! `install/laptop.sh` and `install/server.sh`, run for real in a temp HOME
//! with a cleared environment: every file and mode they write, a second run
//! that changes nothing, a dry run that changes nothing, and an uninstall
//! that gives back the HOME it found, byte for byte. `laptop.sh` is a
//! bootstrap of `paliadin-shim setup` now; the recordings under
//! `tests/golden/` hold what the bash installer it replaced made of four
//! HOMEs, and setup must make the same, with python3 or without.

use paliadin_tests::{bin, bin_dir, keep_tmux_tmpdir, run, Run, ScratchDir, TmuxServer, Value};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .to_path_buf()
}

/// One test's machine: a temp HOME and a directory of stubs first on PATH.
struct World {
    _tmp: ScratchDir,
    home: PathBuf,
    stub: PathBuf,
    extra_path: Option<PathBuf>,
    scratch: PathBuf,
    /// More environment for the scripts (`SHELL`, say).
    extra_env: Vec<(String, String)>,
}

impl World {
    fn new() -> World {
        let tmp = ScratchDir::new("paliadin-install-");
        // Real paths, so that the trust entry's key is predictable.
        let root = tmp.path().canonicalize().expect("canonical temp dir");
        let home = root.join("home");
        let stub = root.join("stub");
        let scratch = root.join("scratch");
        let sysbin = root.join("sysbin");
        for d in [&home, &stub, &scratch, &sysbin] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        // The system's programs, but never a claude someone installed on
        // this machine: each test says whether the laptop has one.
        for dir in ["/usr/bin", "/bin"] {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let name = e.file_name();
                let link = sysbin.join(&name);
                if name != "claude" && !link.exists() {
                    let _ = std::os::unix::fs::symlink(e.path(), link);
                }
            }
        }
        World {
            _tmp: tmp,
            home,
            stub,
            extra_path: None,
            extra_env: Vec::new(),
            scratch,
        }
    }

    fn h(&self, rel: &str) -> PathBuf {
        self.home.join(rel)
    }

    fn script(&self, name: &str, args: &[&str]) -> Run {
        let mut path = self.stub.to_string_lossy().into_owned();
        if let Some(p) = &self.extra_path {
            path = format!("{}:{path}", p.display());
        }
        path.push_str(&format!(
            ":{}",
            self.stub.with_file_name("sysbin").display()
        ));
        let mut c = Command::new("bash");
        c.arg(repo().join("install").join(name))
            .args(args)
            .env_clear()
            .env("HOME", &self.home)
            .env("PATH", path)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("XDG_STATE_HOME", self.home.join(".local/state"))
            .env("XDG_DATA_HOME", self.home.join(".local/share"))
            .env("TMPDIR", &self.scratch)
            .env("LC_ALL", "C")
            .envs(self.extra_env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.scratch);
        keep_tmux_tmpdir(&mut c);
        run(&mut c, None, Duration::from_secs(60))
    }

    /// Runs the laptop installer with the test agent as `--agent`, unless
    /// the test gives its own or puts a claude on PATH, and with `--yes`
    /// (there is no terminal to ask on).
    fn laptop(&self, args: &[&str]) -> Run {
        let shim = bin("paliadin-shim");
        let agent = bin("paliadin-test-agent");
        let mut all = vec!["--shim-bin", shim.to_str().expect("utf-8 path"), "--yes"];
        if self.extra_path.is_none() && !args.contains(&"--agent") && !args.contains(&"--uninstall")
        {
            all.extend(["--agent", agent.to_str().expect("utf-8 path")]);
        }
        all.extend_from_slice(args);
        self.script("laptop.sh", &all)
    }

    /// The laptop installer exactly as given.
    fn laptop_bare(&self, args: &[&str]) -> Run {
        let shim = bin("paliadin-shim");
        let mut all = vec!["--shim-bin", shim.to_str().expect("utf-8 path")];
        all.extend_from_slice(args);
        self.script("laptop.sh", &all)
    }

    /// server.sh with `--yes`: without a terminal it changes nothing otherwise.
    fn server(&self, args: &[&str]) -> Run {
        let cli = bin("paliadin-cli");
        let mut all = vec!["--yes", "--cli-bin", cli.to_str().expect("utf-8 path")];
        all.extend_from_slice(args);
        self.script("server.sh", &all)
    }

    /// Every path under HOME with its mode and, for files, its content.
    fn snapshot(&self) -> BTreeMap<PathBuf, (u32, Option<Vec<u8>>)> {
        paths_under(&self.home)
            .into_iter()
            .map(|p| {
                let m = std::fs::symlink_metadata(&p).expect("metadata");
                let mode = m.permissions().mode() & 0o7777;
                let content = (!m.is_dir()).then(|| std::fs::read(&p).expect("read"));
                (p, (mode, content))
            })
            .collect()
    }
}

/// Every path below `dir`, sorted, each directory before what it holds.
fn paths_under(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    let mut out = Vec::new();
    for p in entries {
        out.push(p.clone());
        if std::fs::symlink_metadata(&p).expect("metadata").is_dir() {
            out.extend(paths_under(&p));
        }
    }
    out
}

fn write_mode(path: &Path, text: &str, mode: u32) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[track_caller]
fn same(
    a: &BTreeMap<PathBuf, (u32, Option<Vec<u8>>)>,
    b: &BTreeMap<PathBuf, (u32, Option<Vec<u8>>)>,
    what: &str,
) {
    if a == b {
        return;
    }
    let mut diff = String::new();
    for (p, v) in a {
        match b.get(p) {
            None => diff.push_str(&format!("  only before: {}\n", p.display())),
            Some(w) if w != v => diff.push_str(&format!(
                "  differs: {} (mode {:o} -> {:o})\n",
                p.display(),
                v.0,
                w.0
            )),
            _ => {}
        }
    }
    for p in b.keys().filter(|p| !a.contains_key(*p)) {
        diff.push_str(&format!("  only after: {}\n", p.display()));
    }
    panic!("{what}: HOME changed\n{diff}");
}

/// A fresh ed25519 public key, "ssh-ed25519 AAAA... comment".
fn keygen(dir: &Path, name: &str) -> String {
    let path = dir.join(name);
    run(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(&path),
        None,
        Duration::from_secs(20),
    )
    .ok();
    read(&path.with_extension("pub")).trim().to_owned()
}

fn type_blob(pubkey: &str) -> String {
    pubkey
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

const CLAUDE_JSON: &str = "{\n  \"numStartups\": 3,\n  \"projects\": {\n    \"/elsewhere\": {\n      \"allowedTools\": [],\n      \"hasTrustDialogAccepted\": false\n    }\n  },\n  \"theme\": \"dark\"\n}\n";

/// A HOME someone already lives in.
fn seed_laptop(w: &World) {
    std::fs::create_dir_all(w.h(".ssh")).expect("mkdir");
    std::fs::set_permissions(w.h(".ssh"), std::fs::Permissions::from_mode(0o700)).expect("chmod");
    write_mode(
        &w.h(".ssh/authorized_keys"),
        "# mine\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExistingExistingExistingExistingExist me@desk",
        0o600,
    );
    write_mode(
        &w.h(".claude/skills/other/SKILL.md"),
        "---\nname: other\ndescription: x\n---\nhi\n",
        0o644,
    );
    write_mode(&w.h(".claude.json"), CLAUDE_JSON, 0o640);
}

#[test]
fn laptop_installs_once_and_uninstalls_to_the_home_it_found() {
    let w = World::new();
    seed_laptop(&w);
    let server_key = keygen(&w.scratch, "server");
    let before = w.snapshot();
    let args = ["--pubkey", &server_key, "--from", "10.1.2.3,192.168.0.0/24"];

    // A dry run lists every change and makes none.
    let dry = w.laptop(&[&args[..], &["--dry-run"]].concat());
    let out = dry.ok();
    same(&before, &w.snapshot(), "--dry-run");
    for p in [
        ".local/bin/paliadin-shim",
        ".claude/skills/paliadin/SKILL.md",
        ".config/paliadin/shim.toml",
        ".ssh/authorized_keys",
        ".claude.json",
        "paliadin-work",
    ] {
        let line = "would: ";
        assert!(
            out.lines()
                .any(|l| l.starts_with(line) && l.contains(&w.h(p).to_string_lossy().into_owned())),
            "the dry run should list {p}\n{dry}"
        );
    }

    let first = w.laptop(&args);
    let out = first.ok();
    assert!(
        out.contains("paliadin-shim health") || out.contains("health <session>"),
        "{first}"
    );
    assert!(out.contains("attach <session>"), "{first}");
    assert!(
        out.contains("paliadin-test-agent"),
        "should say which agent\n{first}"
    );

    // The binary.
    let shim = w.h(".local/bin/paliadin-shim");
    assert_eq!(mode(&shim), 0o755);
    assert_eq!(
        std::fs::read(&shim).expect("shim"),
        std::fs::read(bin("paliadin-shim")).expect("built shim")
    );

    // The skill: the repository's, marked, frontmatter first.
    let skill = read(&w.h(".claude/skills/paliadin/SKILL.md"));
    assert_eq!(mode(&w.h(".claude/skills/paliadin/SKILL.md")), 0o644);
    assert!(skill.starts_with("---\nname: paliadin\n"), "{skill}");
    assert!(
        skill.lines().any(|l| l == "<!-- installed by paliadin -->"),
        "{skill}"
    );
    let source = read(&repo().join("skills/paliadin/SKILL.md"));
    assert_eq!(
        skill.replace("<!-- installed by paliadin -->\n", ""),
        source
    );

    // The config: private, marked, and one the shim accepts.
    let config = w.h(".config/paliadin/shim.toml");
    assert_eq!(mode(&config), 0o600);
    assert_eq!(mode(&w.h(".config/paliadin")), 0o700);
    let text = read(&config);
    assert!(
        text.starts_with("# written by paliadin install/laptop.sh\n"),
        "{text}"
    );
    let agent = bin("paliadin-test-agent");
    assert!(
        text.contains(&format!("agent = [\"{}\"]", agent.display())),
        "{text}"
    );
    let workdir = w.h("paliadin-work");
    let state = w.h(".local/state/paliadin");
    assert!(
        text.contains(&format!("workdir = \"{}\"", workdir.display())),
        "{text}"
    );
    assert!(
        text.contains(&format!("state_dir = \"{}\"", state.display())),
        "{text}"
    );
    assert!(workdir.is_dir());
    assert_eq!(mode(&state), 0o700);
    let mut c = Command::new(&shim);
    c.arg("--config")
        .arg(&config)
        .arg("sessions")
        .env("HOME", &w.home);
    run(&mut c, None, Duration::from_secs(20)).ok();

    // authorized_keys: the old lines untouched, ours appended in its exact form.
    let keys = read(&w.h(".ssh/authorized_keys"));
    let want = format!(
        "from=\"10.1.2.3,192.168.0.0/24\",restrict,command=\"{} --config {}\" {server_key}",
        shim.display(),
        config.display()
    );
    assert_eq!(
        keys,
        format!("# mine\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExistingExistingExistingExistingExist me@desk\n{want}\n")
    );
    assert_eq!(mode(&w.h(".ssh/authorized_keys")), 0o600);

    // ~/.claude.json: the workdir trusted, the rest as it was, mode kept.
    let json: Value = serde_json::from_str(&read(&w.h(".claude.json"))).expect("json");
    let key = workdir.to_string_lossy().into_owned();
    assert_eq!(
        json["projects"][&key]["hasTrustDialogAccepted"],
        Value::Bool(true),
        "{json}"
    );
    assert_eq!(json["numStartups"], 3);
    assert_eq!(json["theme"], "dark");
    assert_eq!(
        json["projects"]["/elsewhere"]["hasTrustDialogAccepted"],
        false
    );
    assert_eq!(mode(&w.h(".claude.json")), 0o640);
    assert!(w.h(".config/paliadin/install-laptop.manifest").is_file());

    // A second run changes nothing and says so; so does a dry run now.
    let installed = w.snapshot();
    let again = w.laptop(&args);
    assert!(again.ok().contains("Nothing changed"), "{again}");
    same(&installed, &w.snapshot(), "second run");
    let dry = w.laptop(&[&args[..], &["--dry-run"]].concat());
    assert!(!dry.ok().contains("would:"), "{dry}");
    same(&installed, &w.snapshot(), "dry run after install");

    // Uninstall: a dry run first, then the real thing gives HOME back.
    let dry = w.laptop(&["--uninstall", "--dry-run"]);
    assert!(dry.ok().contains("would: remove"), "{dry}");
    same(&installed, &w.snapshot(), "--uninstall --dry-run");
    let un = w.laptop(&["--uninstall"]);
    un.ok();
    same(&before, &w.snapshot(), "--uninstall");
    // And a second uninstall has nothing to do.
    assert!(w.laptop(&["--uninstall"]).ok().contains("nothing to undo"));
}

#[test]
fn laptop_leaves_what_it_did_not_write() {
    let w = World::new();
    let foreign_config = "# my own\nagent = [\"my-agent\"]\n";
    let foreign_skill = "---\nname: paliadin\ndescription: mine\n---\nmine\n";
    write_mode(&w.h(".config/paliadin/shim.toml"), foreign_config, 0o644);
    write_mode(
        &w.h(".claude/skills/paliadin/SKILL.md"),
        foreign_skill,
        0o644,
    );
    // The server's key is already there, on a line of the user's own.
    let server_key = keygen(&w.scratch, "server");
    let own_line = format!("restrict {server_key}\n");
    write_mode(&w.h(".ssh/authorized_keys"), &own_line, 0o600);
    let before = w.snapshot();

    let r = w.laptop(&["--pubkey", &server_key]);
    let out = r.ok();
    assert_eq!(read(&w.h(".config/paliadin/shim.toml")), foreign_config);
    assert_eq!(mode(&w.h(".config/paliadin/shim.toml")), 0o644);
    assert_eq!(
        read(&w.h(".claude/skills/paliadin/SKILL.md")),
        foreign_skill
    );
    assert_eq!(read(&w.h(".ssh/authorized_keys")), own_line);
    assert!(out.contains("kept:") && out.contains("shim.toml"), "{r}");
    assert!(r.stderr.contains("--force"), "{r}");
    assert!(r.stderr.contains("already in"), "{r}");

    // --force moves the foreign skill aside; uninstall puts it back.
    w.laptop(&["--force"]).ok();
    let skill = read(&w.h(".claude/skills/paliadin/SKILL.md"));
    assert!(skill.contains("<!-- installed by paliadin -->"), "{skill}");
    assert_eq!(
        read(&w.h(".claude/skills/paliadin/SKILL.md.orig")),
        foreign_skill
    );

    w.laptop(&["--uninstall"]).ok();
    same(&before, &w.snapshot(), "--uninstall");
}

/// A real process named `claude` (`sleep` started as `claude`) with `home` as HOME.
fn fake_claude(w: &World, home: &Path) -> std::process::Child {
    let dir = w.scratch.join("claude-proc");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let exe = dir.join("claude");
    if !exe.exists() {
        // A symlink: the process is named by the path it was started as,
        // and no copy is open for writing while another test forks (which
        // would make starting it fail with "text file busy").
        std::os::unix::fs::symlink("/bin/sleep", &exe).expect("link sleep");
    }
    Command::new(&exe)
        .arg("600")
        .env_clear()
        .env("HOME", home)
        .spawn()
        .expect("start a process named claude")
}

#[test]
fn laptop_does_not_touch_claude_json_while_claude_runs() {
    let w = World::new();
    write_mode(&w.h(".claude.json"), CLAUDE_JSON, 0o600);
    let mut claude = fake_claude(&w, &w.home);
    let r = w.laptop(&[]);
    r.ok();
    assert_eq!(read(&w.h(".claude.json")), CLAUDE_JSON);
    assert!(r.stderr.contains("claude is running"), "{r}");
    assert!(r.stderr.contains("run this again"), "{r}");

    // A dead claude not yet reaped (a zombie) and a claude of another HOME
    // do not use this ~/.claude.json: a second run adds the trust entry.
    claude.kill().expect("kill");
    let other_home = w.scratch.join("other-home");
    let mut other = fake_claude(&w, &other_home);
    let r = w.laptop(&[]);
    assert!(r.ok().contains("trusted"), "{r}");
    let json: Value = serde_json::from_str(&read(&w.h(".claude.json"))).expect("json");
    let key = w.h("paliadin-work").to_string_lossy().into_owned();
    assert_eq!(json["projects"][&key]["hasTrustDialogAccepted"], true);
    claude.wait().expect("reap");

    // The uninstall waits for claude too, and keeps its manifest until it can.
    let mut claude = fake_claude(&w, &w.home);
    let r = w.laptop(&["--uninstall"]);
    r.ok();
    assert!(
        w.h(".config/paliadin/install-laptop.manifest").is_file(),
        "{r}"
    );
    claude.kill().expect("kill");
    claude.wait().expect("reap");
    w.laptop(&["--uninstall"]).ok();
    assert_eq!(read(&w.h(".claude.json")), CLAUDE_JSON);
    assert!(!w.h(".config").exists());
    other.kill().expect("kill");
    other.wait().expect("reap");
}

#[test]
fn laptop_persona_replaces_the_persona_section() {
    let w = World::new();
    let persona = w.scratch.join("persona.md");
    std::fs::write(&persona, "You are Paladin, a terse billing expert.\n").expect("persona");
    w.laptop(&["--persona", persona.to_str().expect("utf-8")])
        .ok();
    let skill = read(&w.h(".claude/skills/paliadin/SKILL.md"));
    assert!(
        skill.contains("<!-- persona:begin -->\nYou are Paladin, a terse billing expert.\n<!-- persona:end -->\n"),
        "{skill}"
    );
    assert!(!skill.contains("concise, helpful assistant"), "{skill}");
    assert!(skill.contains("[PALIADIN:"), "{skill}");
}

#[test]
fn laptop_refuses_without_claude_and_without_agent() {
    let w = World::new();
    let r = w.laptop_bare(&["--yes"]);
    r.code(2);
    assert!(
        r.stderr.contains("claude (Claude Code) is not on PATH")
            && r.stderr
                .contains("npm install -g @anthropic-ai/claude-code")
            && r.stderr.contains("--agent COMMAND")
            && r.stderr.lines().count() == 1,
        "one line that says what to do\n{r}"
    );
    assert!(
        w.snapshot().is_empty(),
        "nothing changed: {:?}",
        w.snapshot()
    );
}

#[test]
fn laptop_without_a_terminal_changes_nothing_unless_yes() {
    let w = World::new();
    let agent = bin("paliadin-test-agent");
    let r = w.laptop_bare(&["--agent", agent.to_str().expect("utf-8")]);
    r.code(2);
    assert!(r.stderr.contains("--yes"), "{r}");
    assert!(w.snapshot().is_empty(), "nothing changed");
    // A dry run needs no --yes.
    w.laptop_bare(&["--agent", agent.to_str().expect("utf-8"), "--dry-run"])
        .ok();
    w.laptop(&[]).ok();
    let installed = w.snapshot();
    w.laptop_bare(&["--uninstall"]).code(2);
    same(&installed, &w.snapshot(), "--uninstall without --yes");
}

#[test]
fn laptop_uninstall_stops_the_shims_tmux_server_and_names_the_state_it_leaves() {
    let w = World::new();
    // Its guard stops the server (and removes its socket) if the uninstall does not.
    let server = TmuxServer::new(format!("paliadin-install-{}", std::process::id()));
    let socket = server.name.clone();
    w.laptop(&["--tmux-socket", &socket]).ok();
    // The shim, as the installer configured it, starts its server.
    let mut c = Command::new(w.h(".local/bin/paliadin-shim"));
    c.arg("--config")
        .arg(w.h(".config/paliadin/shim.toml"))
        .args(["health", "me"])
        .env_clear()
        .env("HOME", &w.home)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    keep_tmux_tmpdir(&mut c);
    run(&mut c, None, Duration::from_secs(30)).ok();
    let alive = || {
        server
            .command()
            .arg("list-sessions")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    assert!(alive(), "the shim's server runs");
    assert!(
        server.socket_path().exists(),
        "its socket is where the guard looks for it"
    );
    let r = w.laptop(&["--uninstall"]);
    let out = r.ok();
    assert!(!alive(), "the server was stopped\n{r}");
    assert!(
        out.contains(&format!("stop the shim's tmux server {socket}")),
        "{r}"
    );
    let state = w.h(".local/state/paliadin");
    assert!(
        out.contains(&format!("left: the state directory {}", state.display())),
        "{r}"
    );
}

#[test]
fn laptop_says_what_a_slow_login_shell_costs_every_turn() {
    /// The milliseconds the installer reported for the login shell.
    fn reported_ms(r: &Run) -> u64 {
        let text = format!("{}{}", r.stderr, r.out());
        let at = text
            .find("spends ")
            .map(|i| i + "spends ".len())
            .or_else(|| {
                text.find("starts the shim in ")
                    .map(|i| i + "starts the shim in ".len())
            })
            .unwrap_or_else(|| panic!("no login-shell line\n{r}"));
        let digits: String = text[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().unwrap_or_else(|_| panic!("no number\n{r}"))
    }
    let mut w = World::new();
    w.extra_env = vec![("SHELL".into(), "/bin/bash".into())];
    // An rc file with no guard for non-interactive shells, as pyenv or nvm
    // set-ups leave them: sshd's bash reads it before every forced command.
    std::fs::write(w.h(".bashrc"), "sleep 0.3\n").expect("bashrc");
    let r = w.laptop(&[]);
    r.ok();
    assert!(
        r.stderr.contains("each turn costs") && r.stderr.contains("case $- in"),
        "says what it costs and how to guard the file\n{r}"
    );
    // The rc file's 300 ms sleep is what it measured (not a threshold of
    // speed: the sleep is a lower bound the machine cannot beat).
    assert!(reported_ms(&r) >= 150, "{r}");
    // Guarded, the sleep is skipped the way sshd runs the shell: whatever
    // the machine's noise, nowhere near the sleep.
    std::fs::write(
        w.h(".bashrc"),
        "case $- in *i*) ;; *) return ;; esac\nsleep 0.3\n",
    )
    .expect("bashrc");
    let r = w.laptop(&[]);
    r.ok();
    assert!(reported_ms(&r) < 150, "{r}");
}

#[test]
fn laptop_starts_claude_unattended() {
    let mut w = World::new();
    let claude_dir = w.scratch.join("claude-bin");
    write_mode(&claude_dir.join("claude"), "#!/bin/sh\nexit 0\n", 0o755);
    w.extra_path = Some(claude_dir.clone());
    let r = w.laptop(&[]);
    assert!(r.ok().contains("Claude Code"), "{r}");
    let config = w.h(".config/paliadin/shim.toml");
    let text = read(&config);
    let work = w.h("paliadin-work").display().to_string();
    // The protocol is the skill's, without the frontmatter the skill list
    // alone reads (only Read is offered: no Skill tool, no skill list).
    let prompt = w.h(".config/paliadin/agent-prompt.md");
    let body = read(&prompt);
    let skill = read(&repo().join("skills/paliadin/SKILL.md"));
    let after_front = skill.splitn(3, "---\n").nth(2).expect("frontmatter");
    assert_eq!(
        body,
        format!("<!-- installed by paliadin -->\n{after_front}")
    );
    assert!(
        text.contains("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC = \"1\""),
        "{text}"
    );
    // The agent reads the workdir and nothing else: no --add-dir (its
    // dialog would stop the pane) and no rule that names the shim's state.
    let want = [
        claude_dir.join("claude").display().to_string(),
        "--permission-mode".into(),
        "dontAsk".into(),
        "--strict-mcp-config".into(),
        "--tools".into(),
        "Read".into(),
        "--allowedTools".into(),
        format!("Read(/{work}/**)"),
        "--disallowedTools".into(),
        "AskUserQuestion".into(),
        "--append-system-prompt-file".into(),
        prompt.display().to_string(),
    ];
    let want: Vec<String> = want
        .iter()
        .map(|s| serde_json::to_string(s).expect("json"))
        .collect();
    assert!(
        text.contains(&format!("agent = [{}]", want.join(", "))),
        "{text}"
    );
    // Absolute rules start with "//": a single "/" is relative to the settings source.
    assert!(text.contains("\"Read(//"), "{text}");
    assert!(
        !text.contains("add-dir") && !text.contains("sessions/"),
        "{text}"
    );
    let mut c = Command::new(bin("paliadin-shim"));
    c.arg("--config")
        .arg(&config)
        .arg("sessions")
        .env("HOME", &w.home);
    run(&mut c, None, Duration::from_secs(20)).ok();

    // --agent overrides, used as given.
    let r = w.laptop(&["--agent", "my-agent --flag 'two words'"]);
    r.ok();
    assert!(
        read(&config).contains("agent = [\"my-agent\", \"--flag\", \"two words\"]"),
        "{r}"
    );
}

#[test]
fn server_installs_once_and_uninstalls_to_the_home_it_found() {
    let w = World::new();
    write_mode(
        &w.h(".ssh/known_hosts"),
        "other.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOther\n",
        0o644,
    );
    let before = w.snapshot();
    let host_key = type_blob(&keygen(&w.scratch, "laptop-host"));
    let args = [
        "--host",
        "laptop.test",
        "--port",
        "2222",
        "--ssh-user",
        "alice",
        "--host-key",
        &host_key,
    ];

    let dry = w.server(&[&args[..], &["--dry-run"]].concat());
    let out = dry.ok();
    same(&before, &w.snapshot(), "--dry-run");
    for p in [
        ".local/bin/paliadin-cli",
        ".config/paliadin/id_ed25519",
        ".config/paliadin/known_hosts",
        ".config/paliadin/cli.toml",
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with("would: ")
                    && l.contains(&w.h(p).to_string_lossy().into_owned())),
            "the dry run should list {p}\n{dry}"
        );
    }

    let r = w.server(&args);
    let out = r.ok();
    let cli = w.h(".local/bin/paliadin-cli");
    assert_eq!(mode(&cli), 0o755);
    assert_eq!(
        std::fs::read(&cli).expect("cli"),
        std::fs::read(bin("paliadin-cli")).expect("built cli")
    );
    let key = w.h(".config/paliadin/id_ed25519");
    assert_eq!(mode(&key), 0o600);
    let public = read(&key.with_extension("pub")).trim().to_owned();
    assert!(public.starts_with("ssh-ed25519 AAAA"), "{public}");
    let known = w.h(".config/paliadin/known_hosts");
    assert_eq!(read(&known), format!("[laptop.test]:2222 {host_key}\n"));
    assert_eq!(mode(&known), 0o600);
    let config = w.h(".config/paliadin/cli.toml");
    assert_eq!(mode(&config), 0o600);
    let text = read(&config);
    assert!(
        text.starts_with("# written by paliadin install/server.sh\n"),
        "{text}"
    );
    for line in [
        "host = \"laptop.test\"".to_owned(),
        "port = 2222".into(),
        "ssh_user = \"alice\"".into(),
        format!("key = \"{}\"", key.display()),
        format!("known_hosts = \"{}\"", known.display()),
        "session_prefix = \"paliad-paliadin\"".into(),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "cli.toml should hold {line:?}\n{text}"
        );
    }
    // What the operator needs next.
    assert!(
        out.contains(&format!("install/laptop.sh --pubkey '{public}'")),
        "{r}"
    );
    assert!(
        out.contains(&format!(
            "*/5 * * * * {0} health >/dev/null || logger -t paliadin \"$({0} health)\"",
            cli.display()
        )),
        "{r}"
    );
    assert!(
        out.contains("SHA256:"),
        "the host key's fingerprint should be shown\n{r}"
    );

    let installed = w.snapshot();
    let again = w.server(&args);
    assert!(again.ok().contains("Nothing changed"), "{again}");
    same(&installed, &w.snapshot(), "second run");

    // Another host key for the same host is refused, nothing changed.
    let other = type_blob(&keygen(&w.scratch, "impostor"));
    let r = w.server(&[
        "--host",
        "laptop.test",
        "--port",
        "2222",
        "--ssh-user",
        "alice",
        "--host-key",
        &other,
    ]);
    assert_ne!(r.code, 0, "{r}");
    assert!(r.stderr.contains("another"), "{r}");
    same(&installed, &w.snapshot(), "refused host key");

    let dry = w.server(&["--uninstall", "--dry-run"]);
    assert!(dry.ok().contains("would: remove"), "{dry}");
    same(&installed, &w.snapshot(), "--uninstall --dry-run");
    w.server(&["--uninstall"]).ok();
    same(&before, &w.snapshot(), "--uninstall");
}

#[test]
fn server_pins_port_22_plainly_and_keeps_a_foreign_config() {
    let w = World::new();
    let host_pub = w.scratch.join("host.pub");
    let host_key = keygen(&w.scratch, "host");
    std::fs::write(&host_pub, format!("{host_key}\n")).expect("host.pub");
    let foreign = "# mine\nhost = \"elsewhere\"\n";
    write_mode(&w.h(".config/paliadin/cli.toml"), foreign, 0o600);
    let known = w.h("kh");
    let r = w.server(&[
        "--host",
        "192.0.2.7",
        "--port",
        "22",
        "--host-key-file",
        host_pub.to_str().expect("utf-8"),
        "--known-hosts",
        known.to_str().expect("utf-8"),
    ]);
    let out = r.ok();
    assert_eq!(
        read(&known),
        format!("192.0.2.7 {}\n", type_blob(&host_key))
    );
    assert_eq!(read(&w.h(".config/paliadin/cli.toml")), foreign);
    assert!(out.contains("kept:"), "{r}");

    // --host is required.
    let r = w.server(&[]);
    assert_ne!(r.code, 0, "{r}");
    assert!(r.stderr.contains("--host"), "{r}");
}

#[test]
fn scripts_have_help() {
    let w = World::new();
    for s in ["laptop.sh", "server.sh"] {
        let r = w.script(s, &["--help"]);
        assert!(r.ok().starts_with("Usage: install/"), "{r}");
        assert!(w.snapshot().is_empty());
        let r = w.script(s, &["--no-such-option"]);
        assert_ne!(r.code, 0, "{r}");
    }
}

#[test]
fn laptop_rerun_with_other_options_replaces_its_own_line() {
    let w = World::new();
    write_mode(
        &w.h(".ssh/authorized_keys"),
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMine me\n",
        0o600,
    );
    let before = w.snapshot();
    let server_key = keygen(&w.scratch, "server");
    w.laptop(&["--pubkey", &server_key]).ok();
    let r = w.laptop(&["--pubkey", &server_key, "--from", "198.51.100.4"]);
    r.ok();
    let keys = read(&w.h(".ssh/authorized_keys"));
    let lines: Vec<&str> = keys.lines().collect();
    assert_eq!(lines.len(), 2, "{keys}");
    assert_eq!(lines[0], "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMine me");
    assert!(
        lines[1].starts_with("from=\"198.51.100.4\",restrict,command=\""),
        "{keys}"
    );
    assert!(lines[1].ends_with(&server_key), "{keys}");
    w.laptop(&["--uninstall"]).ok();
    same(&before, &w.snapshot(), "--uninstall");
}

#[test]
fn laptop_keeps_symlinked_files_as_symlinks() {
    let w = World::new();
    // authorized_keys and ~/.claude.json kept in a dotfiles directory.
    let dotfiles = w.h("dotfiles");
    std::fs::create_dir_all(&dotfiles).unwrap();
    std::fs::create_dir_all(w.h(".ssh")).unwrap();
    write_mode(
        &dotfiles.join("authorized_keys"),
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOwn own@laptop\n",
        0o600,
    );
    write_mode(
        &dotfiles.join("claude.json"),
        "{\n  \"projects\": {}\n}\n",
        0o600,
    );
    std::os::unix::fs::symlink(
        dotfiles.join("authorized_keys"),
        w.h(".ssh/authorized_keys"),
    )
    .unwrap();
    std::os::unix::fs::symlink(dotfiles.join("claude.json"), w.h(".claude.json")).unwrap();
    let server_key = keygen(&w.scratch, "server");
    w.laptop(&["--pubkey", &server_key]).ok();
    for (link, target) in [
        (".ssh/authorized_keys", "authorized_keys"),
        (".claude.json", "claude.json"),
    ] {
        let meta = std::fs::symlink_metadata(w.h(link)).unwrap();
        assert!(meta.file_type().is_symlink(), "{link} is still a symlink");
        assert_eq!(
            mode(&dotfiles.join(target)),
            0o600,
            "{target} keeps its mode"
        );
    }
    let keys = read(&dotfiles.join("authorized_keys"));
    assert!(
        keys.starts_with("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOwn own@laptop\n"),
        "{keys}"
    );
    assert!(keys.contains("restrict,command="), "{keys}");
    assert!(read(&dotfiles.join("claude.json")).contains("hasTrustDialogAccepted"));
}

#[test]
fn server_without_a_terminal_changes_nothing_unless_yes_and_lists_what_uninstall_removes() {
    let w = World::new();
    let host_key = type_blob(&keygen(&w.scratch, "laptop-host"));
    let cli = bin("paliadin-cli");
    let args = [
        "--cli-bin",
        cli.to_str().unwrap(),
        "--host",
        "laptop.test",
        "--host-key",
        &host_key,
    ];
    let before = w.snapshot();
    let r = w.script("server.sh", &args);
    r.code(2);
    assert!(r.stderr.contains("run again with --yes"), "{r}");
    assert!(r.out().contains("would: "), "the changes are listed\n{r}");
    same(&before, &w.snapshot(), "no terminal, no --yes");
    w.server(&args[2..]).ok();
    let installed = w.snapshot();
    // --uninstall lists exactly what it removes, then (no terminal) stops.
    let r = w.script("server.sh", &["--uninstall"]);
    r.code(2);
    for p in [
        ".local/bin/paliadin-cli",
        ".config/paliadin/cli.toml",
        ".config/paliadin/id_ed25519",
    ] {
        assert!(
            r.out()
                .lines()
                .any(|l| l.starts_with("would: remove") && l.contains(p)),
            "{p} not listed\n{r}"
        );
    }
    same(&installed, &w.snapshot(), "--uninstall without --yes");
    // What paliadin-cli made, the installer did not: named, and left.
    let db = w.h(".local/share/paliadin/turns.db");
    let history = w.h(".local/state/paliadin/chat_history");
    for f in [&db, &history] {
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, "").unwrap();
    }
    let r = w.script("server.sh", &["--uninstall", "--yes"]);
    r.ok();
    assert!(!w.h(".local/bin/paliadin-cli").exists(), "{r}");
    for (what, f) in [("the turn log", &db), ("the chat history", &history)] {
        let line = format!("left: {what} {}", f.display());
        assert_eq!(r.out().matches(&line).count(), 1, "{line}\n{r}");
        assert!(f.exists());
    }
}

#[test]
fn quickstart_parses_its_options_and_cleans_twice() {
    let w = World::new();
    let r = w.script("quickstart.sh", &["--help"]);
    assert!(r.ok().starts_with("Usage: install/quickstart.sh"), "{r}");
    let r = w.script("quickstart.sh", &["-h"]);
    assert!(r.ok().starts_with("Usage: install/quickstart.sh"), "{r}");
    let r = w.script("quickstart.sh", &["--no-such-option"]);
    r.code(2);
    assert!(r.stderr.contains("unknown option --no-such-option"), "{r}");
    w.script("quickstart.sh", &["one", "two"]).code(2);
    // Neither built nor ran a turn: nothing under HOME.
    assert!(w.snapshot().is_empty(), "{:?}", w.snapshot().keys());
    // --clean with nothing there says so, twice; its tmux server is this
    // HOME's own.
    let state = w.h(".local/state/paliadin-quickstart");
    std::fs::create_dir_all(state.join("work")).unwrap();
    let r = w.script("quickstart.sh", &["--clean"]);
    assert!(r.ok().contains("removed "), "{r}");
    assert!(!state.exists());
    let first = w.script("quickstart.sh", &["--clean"]).ok();
    assert!(first.starts_with("nothing to remove: "), "{first}");
    let other = World::new();
    let second = other.script("quickstart.sh", &["--clean"]).ok();
    let socket = |s: &str| s.split("tmux server ").nth(1).unwrap().trim().to_owned();
    assert!(
        socket(&first).starts_with("paliadin-quickstart-"),
        "{first}"
    );
    assert_ne!(socket(&first), socket(&second), "one tmux server per HOME");
}

#[test]
fn quickstart_clean_stops_its_server_and_removes_the_socket_file() {
    let w = World::new();
    let out = w.script("quickstart.sh", &["--clean"]).ok();
    let name = out.rsplit("tmux server ").next().unwrap().trim().to_owned();
    assert!(name.starts_with("paliadin-quickstart-"), "{out}");
    // The quickstart's server, as its shim would have started it.
    let server = TmuxServer::new(name);
    let mut c = server.command();
    c.args(["new-session", "-d", "--", "sleep", "600"]);
    run(&mut c, None, Duration::from_secs(10)).ok();
    assert!(server.socket_path().exists());
    let r = w.script("quickstart.sh", &["--clean"]);
    let out = r.ok();
    assert!(out.contains("stopped the quickstart's tmux server"), "{r}");
    assert!(!server.socket_path().exists(), "{r}");
    // A socket file a server left when it ended by itself goes too.
    let stale = std::os::unix::net::UnixListener::bind(server.socket_path()).unwrap();
    drop(stale);
    let out = w.script("quickstart.sh", &["--clean"]).ok();
    assert!(out.starts_with("removed "), "{out}");
    assert!(!server.socket_path().exists(), "{out}");
}

// --- The same HOME as the bash installer made ---------------------------------
//
// `tests/golden/laptop-*.txt` were written by the bash `install/laptop.sh`
// (before `paliadin-shim setup` took its work over) from the runs below:
// every run's exit status, stdout and stderr, and every file of HOME with
// its mode and bytes. Each test replays its runs and must match byte for
// byte. `PALIADIN_BLESS=1` rewrites them instead (only on purpose, with the
// reason in the commit).

/// A fixed server key (the goldens cannot hold a fresh one).
const GOLDEN_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGoldenGoldenGoldenGoldenGoldenGoldenGold server@golden";
const GOLDEN_KEY_2: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAISecondSecondSecondSecondSecondSecondSeco";

/// One scenario's record: its runs and the HOME they leave.
struct Golden<'a> {
    w: &'a World,
    name: &'static str,
    text: String,
}

impl<'a> Golden<'a> {
    fn new(w: &'a World, name: &'static str) -> Golden<'a> {
        Golden {
            w,
            name,
            text: String::new(),
        }
    }

    /// What a path or an output says, without this machine's paths in it.
    fn clean(&self, s: &str) -> String {
        let root = self.w.home.parent().expect("root").display().to_string();
        s.replace(&root, "@ROOT@")
            .replace(&bin_dir().display().to_string(), "@BIN@")
    }

    fn run(&mut self, title: &str, r: &Run) {
        self.text.push_str(&format!(
            "== {title}\n-- exit {}\n-- stdout\n{}-- stderr\n{}",
            r.code,
            self.clean(&r.out()),
            self.clean(&r.stderr)
        ));
    }

    /// Every path under HOME: kind, mode, and a file's bytes line by line.
    fn home(&mut self, title: &str) {
        let shim = std::fs::read(bin("paliadin-shim")).expect("built shim");
        self.text.push_str(&format!("== HOME {title}\n"));
        for p in paths_under(&self.w.home) {
            let rel = p.strip_prefix(&self.w.home).expect("under HOME").display();
            let m = std::fs::symlink_metadata(&p).expect("metadata");
            let mode = m.permissions().mode() & 0o7777;
            if m.file_type().is_symlink() {
                let to = std::fs::read_link(&p).expect("readlink");
                let to = self.clean(&to.display().to_string());
                self.text.push_str(&format!("l {rel} -> {to}\n"));
            } else if m.is_dir() {
                self.text.push_str(&format!("d {mode:o} {rel}/\n"));
            } else {
                let bytes = std::fs::read(&p).expect("read");
                self.text.push_str(&format!("f {mode:o} {rel}\n"));
                if bytes == shim {
                    self.text.push_str("  (the built paliadin-shim)\n");
                    continue;
                }
                let body = self.clean(&String::from_utf8(bytes).expect("utf-8 file"));
                for line in body.split_inclusive('\n') {
                    match line.strip_suffix('\n') {
                        Some(l) => self.text.push_str(&format!("  |{l}\n")),
                        None => self
                            .text
                            .push_str(&format!("  |{line}\n  (no newline at the end)\n")),
                    }
                }
            }
        }
    }

    /// Ends the scenario: `--uninstall`, the HOME it leaves, the comparison.
    #[track_caller]
    fn uninstall_and_check(mut self) {
        self.run("--uninstall", &self.w.laptop(&["--uninstall"]));
        self.home("uninstalled");
        self.check();
    }

    #[track_caller]
    fn check(self) {
        let path = repo()
            .join("tests/golden")
            .join(format!("laptop-{}.txt", self.name));
        if std::env::var_os("PALIADIN_BLESS").is_some() {
            std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
            std::fs::write(&path, &self.text).expect("write golden");
            return;
        }
        let want = read(&path);
        if want == self.text {
            return;
        }
        let (mut a, mut b) = (want.lines(), self.text.lines());
        let mut n = 1;
        loop {
            match (a.next(), b.next()) {
                (Some(x), Some(y)) if x == y => n += 1,
                (x, y) => panic!(
                    "{}: line {n} differs\n  want: {x:?}\n  got:  {y:?}\n--- got in full:\n{}",
                    path.display(),
                    self.text
                ),
            }
        }
    }
}

/// Kills and reaps a process the test started.
fn end(mut child: std::process::Child) {
    child.kill().expect("kill");
    child.wait().expect("reap");
}

impl World {
    /// Files someone already has under HOME: path, text, mode.
    fn files(&self, files: &[(&str, &str, u32)]) {
        for (path, text, mode) in files {
            write_mode(&self.h(path), text, *mode);
        }
    }

    /// This machine without python3 on PATH.
    fn without_python(self) -> World {
        let sysbin = self.stub.with_file_name("sysbin");
        for e in std::fs::read_dir(&sysbin).expect("sysbin").flatten() {
            if e.file_name().to_string_lossy().starts_with("python") {
                std::fs::remove_file(e.path()).expect("unlink");
            }
        }
        let mut c = Command::new("bash");
        c.args(["-c", "command -v python3 || echo none"])
            .env_clear()
            .env("PATH", &sysbin);
        assert_eq!(run(&mut c, None, Duration::from_secs(10)).ok(), "none\n");
        self
    }

    /// A world whose login shell is not measured (its milliseconds are
    /// this machine's, not the installer's) and, when `claude`, with a
    /// claude on PATH (so that the agent is the policy's argv).
    fn golden(claude: bool) -> World {
        let mut w = World::new();
        w.extra_env = vec![("SHELL".into(), "/nonexistent/sh".into())];
        if claude {
            let dir = w.scratch.join("claude-bin");
            write_mode(&dir.join("claude"), "#!/bin/sh\nexit 0\n", 0o755);
            w.extra_path = Some(dir);
        }
        w
    }
}

#[test]
fn golden_laptop_in_a_lived_in_home() {
    lived_in(World::golden(true));
}

/// The bash installer needed python3 for the trust entry, for `--agent`
/// with quotes and for the login-shell check, and quietly did less
/// without it; setup needs it for nothing.
#[test]
fn golden_laptop_without_python3_does_every_step() {
    lived_in(World::golden(true).without_python());
    every_option(World::golden(false).without_python());
    // And measures the login shell.
    let mut w = World::new().without_python();
    w.extra_env = vec![("SHELL".into(), "/bin/bash".into())];
    let r = w.laptop(&[]);
    assert!(
        r.ok().contains("ok: your login shell starts the shim in ") || r.stderr.contains("spends "),
        "{r}"
    );
}

fn lived_in(w: World) {
    seed_laptop(&w);
    let mut g = Golden::new(&w, "lived-in");
    let args = ["--pubkey", GOLDEN_KEY, "--from", "10.1.2.3,192.168.0.0/24"];
    g.home("before");
    g.run(
        "--dry-run",
        &w.laptop(&[&args[..], &["--dry-run"]].concat()),
    );
    g.run("install", &w.laptop(&args));
    g.home("installed");
    g.run("again", &w.laptop(&args));
    g.run(
        "--dry-run again",
        &w.laptop(&[&args[..], &["--dry-run"]].concat()),
    );
    g.run(
        "--uninstall --dry-run",
        &w.laptop(&["--uninstall", "--dry-run"]),
    );
    g.run("--uninstall", &w.laptop(&["--uninstall"]));
    g.home("uninstalled");
    g.run("--uninstall again", &w.laptop(&["--uninstall"]));
    g.check();
}

#[test]
fn golden_laptop_with_every_option() {
    every_option(World::golden(false));
}

fn every_option(w: World) {
    let persona = w.scratch.join("persona.md");
    std::fs::write(&persona, "You are Paladin.\nTerse, exact.\n").expect("persona");
    let pubfile = w.scratch.join("server.pub");
    std::fs::write(
        &pubfile,
        format!("# the server\n\n{GOLDEN_KEY_2} paliadin-cli  of  prod\n"),
    )
    .expect("pub");
    // authorized_keys without its last newline, ~/.claude.json compact.
    w.files(&[
        (
            ".ssh/authorized_keys",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMine me",
            0o644,
        ),
        (
            ".claude.json",
            "{\"a\":[1,2.5,\"é\"],\"projects\":{}}",
            0o600,
        ),
    ]);
    let mut g = Golden::new(&w, "every-option");
    g.home("before");
    let args = [
        "--prefix",
        "~/bin",
        "--pubkey",
        pubfile.to_str().expect("utf-8"),
        "--workdir",
        "w2",
        "--agent",
        "my-agent --flag 'two words' \"x y\"",
        "--persona",
        persona.to_str().expect("utf-8"),
        "--tmux-socket",
        "s.1",
        "--wait-secs",
        "5",
    ];
    g.run(
        "--dry-run",
        &w.laptop(&[&args[..], &["--dry-run"]].concat()),
    );
    g.run("install", &w.laptop(&args));
    g.home("installed");
    let moved = [&args[..], &["--from", "198.51.100.4"]].concat();
    g.run("--from added", &w.laptop(&moved));
    g.home("moved");
    g.uninstall_and_check();
}

#[test]
fn golden_laptop_next_to_what_it_did_not_write() {
    let w = World::golden(true);
    let own_line = format!("restrict {GOLDEN_KEY}\n");
    w.files(&[
        (
            ".config/paliadin/shim.toml",
            "# my own\nagent = [\"my-agent\"]\ntmux_socket = \"mine\"\n",
            0o644,
        ),
        (
            ".claude/skills/paliadin/SKILL.md",
            "---\nname: paliadin\ndescription: mine\n---\nmine\n",
            0o644,
        ),
        (".ssh/authorized_keys", &own_line, 0o600),
        (
            ".claude.json",
            "{\n    \"projects\": {\n        \"/x\": {}\n    }\n}",
            0o600,
        ),
    ]);
    let mut g = Golden::new(&w, "foreign");
    g.home("before");
    g.run("install", &w.laptop(&["--pubkey", GOLDEN_KEY]));
    g.home("installed");
    g.run("--force", &w.laptop(&["--force", "--pubkey", GOLDEN_KEY]));
    g.home("forced");
    g.uninstall_and_check();
}

#[test]
fn golden_laptop_with_symlinks_and_a_running_claude() {
    let w = World::golden(true);
    let dotfiles = w.h("dotfiles");
    w.files(&[
        (
            "dotfiles/authorized_keys",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOwn own@laptop\n",
            0o600,
        ),
        ("dotfiles/claude.json", "{\n  \"projects\": {}\n}\n", 0o644),
    ]);
    std::fs::create_dir_all(w.h(".ssh")).expect("mkdir");
    std::os::unix::fs::symlink(
        dotfiles.join("authorized_keys"),
        w.h(".ssh/authorized_keys"),
    )
    .expect("link");
    std::os::unix::fs::symlink(dotfiles.join("claude.json"), w.h(".claude.json")).expect("link");
    let mut g = Golden::new(&w, "symlinks");
    g.home("before");
    let claude = fake_claude(&w, &w.home);
    g.run("claude running", &w.laptop(&["--pubkey", GOLDEN_KEY]));
    end(claude);
    g.run("claude gone", &w.laptop(&["--pubkey", GOLDEN_KEY]));
    g.home("installed");
    let claude = fake_claude(&w, &w.home);
    g.run("--uninstall, claude running", &w.laptop(&["--uninstall"]));
    end(claude);
    g.home("half uninstalled");
    g.run("--uninstall, claude gone", &w.laptop(&["--uninstall"]));
    g.home("uninstalled");
    g.check();
}

/// Issue 17: the agent may read all of its workdir, so a workdir that holds
/// HOME, `~/.ssh`, `~/.claude` or the shim's state, or lies inside one of
/// them, is refused: one line, exit 2, nothing changed.
#[test]
fn laptop_refuses_a_workdir_that_holds_home_ssh_or_the_state() {
    let w = World::new();
    std::fs::create_dir_all(w.h(".ssh")).expect("mkdir");
    let link = w.scratch.join("home-link");
    std::os::unix::fs::symlink(&w.home, &link).expect("link");
    let before = w.snapshot();
    let root = w.home.parent().expect("root").to_path_buf();
    for (workdir, says) in [
        (w.home.clone(), "holds your whole HOME"),
        (root, "holds your whole HOME"),
        (link, "holds your whole HOME"),
        (w.h(".ssh"), "holds"),
        (w.h(".local"), "holds the shim's state directory"),
        (
            w.h(".local/state/paliadin"),
            "holds the shim's state directory",
        ),
        (w.h(".claude"), "your Claude Code credentials"),
        (w.h(".ssh/work"), "is inside"),
        (w.h(".local/state/paliadin/sessions"), "is inside"),
        (w.h(".claude/work"), "is inside"),
    ] {
        let shown = workdir.display().to_string();
        for extra in [&[][..], &["--dry-run"][..]] {
            let r = w.laptop(&[&["--workdir", shown.as_str()][..], extra].concat());
            r.code(2);
            assert!(
                r.stderr.starts_with("laptop.sh: error: --workdir ")
                    && r.stderr.contains(says)
                    && r.stderr.lines().count() == 1,
                "one line that says why\n{r}"
            );
            assert!(r.stdout.is_empty(), "{r}");
            same(&before, &w.snapshot(), &shown);
        }
    }
    // A directory of its own inside HOME is fine.
    w.laptop(&["--workdir", &w.h("work").display().to_string()])
        .ok();
}

#[test]
fn laptop_setup_is_refused_over_ssh() {
    let w = World::new();
    let mut c = Command::new(bin("paliadin-shim"));
    c.env_clear()
        .env("HOME", &w.home)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("SSH_ORIGINAL_COMMAND", "setup --yes --agent x");
    let r = run(&mut c, None, Duration::from_secs(20));
    r.code(2);
    assert!(
        r.stderr
            .contains("setup is only available locally, not over ssh"),
        "{r}"
    );
    assert!(w.snapshot().is_empty(), "nothing changed");
}

/// `--uninstall` stops only a tmux server marked with this state directory:
/// an unmarked one, or another state's, may be someone else's agents.
#[test]
fn laptop_uninstall_leaves_a_tmux_server_it_cannot_call_its_own() {
    let w = World::new();
    // Its guard removes the socket file (and the server, if a check fails).
    let server = TmuxServer::new(format!("paliadin-install-keep-{}", std::process::id()));
    let socket = server.name.clone();
    let tmux = |args: &[&str]| {
        server
            .command()
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    for mark in [None, Some("/elsewhere/paliadin")] {
        w.laptop(&["--tmux-socket", &socket]).ok();
        assert!(tmux(&["new-session", "-d", "-s", "x", "sleep", "600"]));
        if let Some(m) = mark {
            assert!(tmux(&["set-option", "-g", "@paliadin-state", m]));
        }
        let r = w.laptop(&["--uninstall"]);
        let out = r.ok();
        let alive = tmux(&["has-session", "-t", "=x"]);
        tmux(&["kill-server"]);
        assert!(alive, "the server was left running\n{r}");
        assert!(
            out.contains(&format!("kept: the tmux server {socket}")),
            "{r}"
        );
        if let Some(m) = mark {
            assert!(out.contains(m), "says whose it is\n{r}");
        }
        assert!(!w.h(".config").exists(), "the rest was undone\n{r}");
    }
}

/// Runs the laptop installer in a real terminal (a tmux pane of its own
/// server), `keys` typed ahead (the terminal keeps them until it reads);
/// returns its exit status and what the pane showed.
fn laptop_in_a_terminal(w: &World, args: &[&str], keys: &str) -> (String, String) {
    // Stops the pane's server and removes its socket however the test ends.
    let server = TmuxServer::new(format!("paliadin-install-tty-{}", std::process::id()));
    let socket = server.name.clone();
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let agent = bin("paliadin-test-agent");
    let shim = bin("paliadin-shim");
    let mut line = format!(
        "env -i HOME={} PATH={} XDG_CONFIG_HOME={} XDG_STATE_HOME={} SHELL=/nonexistent bash {} --shim-bin {} --agent {}",
        quote(&w.home.display().to_string()),
        quote(&format!("{}:/usr/bin:/bin", w.stub.display())),
        quote(&w.h(".config").display().to_string()),
        quote(&w.h(".local/state").display().to_string()),
        quote(&repo().join("install/laptop.sh").display().to_string()),
        quote(&shim.display().to_string()),
        quote(&agent.display().to_string()),
    );
    for a in args {
        line.push(' ');
        line.push_str(&quote(a));
    }
    let status = w.scratch.join("tty-status");
    let _ = std::fs::remove_file(&status);
    let script = format!(
        "cd {}; {line}; echo $? > {}; tmux -L {socket} wait-for -S done; sleep 600",
        quote(&w.scratch.display().to_string()),
        quote(&status.display().to_string())
    );
    let tmux = |args: &[&str]| run(server.command().args(args), None, Duration::from_secs(60));
    tmux(&[
        "new-session",
        "-d",
        "-x",
        "250",
        "-y",
        "80",
        "sh",
        "-c",
        &script,
    ])
    .ok();
    tmux(&["set-option", "-g", "history-limit", "5000"]).ok();
    tmux(&["send-keys", "-t", "=0:", "-l", "--", keys]).ok();
    tmux(&["send-keys", "-t", "=0:", "Enter"]).ok();
    let waited = tmux(&["wait-for", "done"]);
    let screen = tmux(&["capture-pane", "-p", "-J", "-S", "-", "-t", "=0:"]).out();
    waited.ok();
    (read(&status).trim().to_owned(), screen)
}

/// On a terminal, without `--yes`, setup lists the changes, asks once, and
/// makes them only on yes; `--uninstall` asks first too.
#[test]
fn laptop_on_a_terminal_asks_before_it_changes_anything() {
    let w = World::new();
    let (code, screen) = laptop_in_a_terminal(&w, &[], "y");
    assert_eq!(code, "0", "{screen}");
    assert!(
        screen.contains("would: install the shim config"),
        "{screen}"
    );
    assert!(screen.contains("changes? [y/N]"), "{screen}");
    assert!(screen.contains("done: install the shim config"), "{screen}");
    assert!(w.h(".config/paliadin/shim.toml").is_file(), "{screen}");

    let installed = w.snapshot();
    let (code, screen) = laptop_in_a_terminal(&w, &[], "y");
    assert_eq!(code, "0", "{screen}");
    assert!(
        screen.contains("Nothing to change: this laptop is set up.") && !screen.contains("[y/N]"),
        "{screen}"
    );

    let (code, screen) = laptop_in_a_terminal(&w, &["--uninstall"], "n");
    assert_eq!(code, "1", "{screen}");
    assert!(screen.contains("Undo everything"), "{screen}");
    assert!(screen.contains("stopped; nothing changed"), "{screen}");
    same(&installed, &w.snapshot(), "--uninstall answered no");
}
