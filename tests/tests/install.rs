//! `install/laptop.sh` and `install/server.sh`, run for real in a temp HOME
//! with a cleared environment: every file and mode they write, a second run
//! that changes nothing, a dry run that changes nothing, and an uninstall
//! that gives back the HOME it found, byte for byte.

use paliadin_tests::{bin, run, Run, Value};
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
    _tmp: tempfile::TempDir,
    home: PathBuf,
    stub: PathBuf,
    extra_path: Option<PathBuf>,
    scratch: PathBuf,
    /// More environment for the scripts (`SHELL`, say).
    extra_env: Vec<(String, String)>,
}

impl World {
    fn new() -> World {
        let tmp = tempfile::Builder::new()
            .prefix("paliadin-install-")
            .tempdir()
            .expect("temp dir");
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
        fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, (u32, Option<Vec<u8>>)>) {
            let mut entries: Vec<_> = std::fs::read_dir(dir)
                .expect("read_dir")
                .map(|e| e.expect("entry").path())
                .collect();
            entries.sort();
            for p in entries {
                let m = std::fs::symlink_metadata(&p).expect("metadata");
                let mode = m.permissions().mode() & 0o7777;
                if m.is_dir() {
                    out.insert(p.clone(), (mode, None));
                    walk(&p, out);
                } else {
                    out.insert(p.clone(), (mode, Some(std::fs::read(&p).expect("read"))));
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(&self.home, &mut out);
        out
    }
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
    let socket = format!("paliadin-install-{}", std::process::id());
    w.laptop(&["--tmux-socket", &socket]).ok();
    // The shim, as the installer configured it, starts its server.
    let mut c = Command::new(w.h(".local/bin/paliadin-shim"));
    c.arg("--config")
        .arg(w.h(".config/paliadin/shim.toml"))
        .args(["health", "me"])
        .env_clear()
        .env("HOME", &w.home)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    run(&mut c, None, Duration::from_secs(30)).ok();
    let alive = || {
        Command::new("tmux")
            .args(["-L", &socket, "list-sessions"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    assert!(alive(), "the shim's server runs");
    let r = w.laptop(&["--uninstall"]);
    let out = r.ok();
    let killed = !alive();
    let _ = Command::new("tmux")
        .args(["-L", &socket, "kill-server"])
        .status();
    assert!(killed, "the server was stopped\n{r}");
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
    // The agent reads the workdir and nothing else: no --add-dir (its
    // dialog would stop the pane) and no rule that names the shim's state.
    let want = [
        claude_dir.join("claude").display().to_string(),
        "--permission-mode".into(),
        "dontAsk".into(),
        "--strict-mcp-config".into(),
        "--allowedTools".into(),
        format!("Read(/{work}/**)"),
        "--disallowedTools".into(),
        "AskUserQuestion".into(),
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
