//! The whole path as it runs in production, nothing stubbed: a laptop HOME
//! set up by `install/laptop.sh`, whose `authorized_keys` line a private sshd
//! on loopback serves; a server HOME set up by `install/server.sh`, whose
//! `paliadin-cli` talks to it; the test agent in place of `claude`. Every turn
//! is checked in the server's SQLite log. The Go service's exact ssh call
//! runs against the same installation.

use paliadin_tests::{bin, run, Run, Sshd, TestEnv, Value};
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

struct World {
    env: TestEnv,
    laptop: PathBuf,
    server: PathBuf,
    sshd: Sshd,
}

fn home_command(home: &Path, program: &Path, runtime: &Path) -> Command {
    let mut c = Command::new(program);
    c.env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_STATE_HOME", home.join(".local/state"))
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .env("XDG_RUNTIME_DIR", runtime)
        // Temp files in the test's own private directory too.
        .env("TMPDIR", runtime)
        .current_dir(home);
    paliadin_tests::keep_tmux_tmpdir(&mut c);
    c
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../install")
        .join(name)
}

impl World {
    /// Both installers, run for real in their own HOMEs.
    fn new() -> World {
        let env = TestEnv::new();
        let laptop = env.tmp.path().join("laptop");
        let server = env.tmp.path().join("server");
        std::fs::create_dir_all(&laptop).unwrap();
        std::fs::create_dir_all(&server).unwrap();
        let sshd = Sshd::serve(
            &env.tmp.path().join("sshd"),
            &laptop.join(".ssh/authorized_keys"),
        );
        let runtime = env.runtime_dir();

        let mut c = home_command(&server, &script("server.sh"), &runtime);
        c.arg("--cli-bin").arg(bin("paliadin-cli"));
        c.args([
            "--host",
            "127.0.0.1",
            "--port",
            &sshd.port.to_string(),
            "--ssh-user",
            &sshd.user,
        ]);
        c.args(["--host-key", &sshd.host_public_key(), "--yes"]);
        run(&mut c, None, Duration::from_secs(60)).code(0);

        let agent = format!(
            "{} --log {}",
            bin("paliadin-test-agent").display(),
            env.agent_log.display()
        );
        let mut c = home_command(&laptop, &script("laptop.sh"), &runtime);
        c.arg("--shim-bin").arg(bin("paliadin-shim"));
        c.arg("--pubkey")
            .arg(server.join(".config/paliadin/id_ed25519.pub"));
        c.args([
            "--agent",
            &agent,
            "--tmux-socket",
            &env.socket,
            "--wait-secs",
            "3",
            "--yes",
        ]);
        run(&mut c, None, Duration::from_secs(60)).code(0);
        World {
            env,
            laptop,
            server,
            sshd,
        }
    }

    /// The installed paliadin-cli, configured only by the server installer.
    fn cli(&self, args: &[&str], stdin: Option<&[u8]>) -> Run {
        let mut c = home_command(
            &self.server,
            &self.server.join(".local/bin/paliadin-cli"),
            &self.env.runtime_dir(),
        );
        c.args(args);
        run(&mut c, stdin, Duration::from_secs(120))
    }

    fn db(&self) -> Connection {
        Connection::open(self.server.join(".local/share/paliadin/turns.db")).unwrap()
    }

    fn row(&self, turn_id: &str) -> (String, Option<String>, Option<String>, String) {
        self.db()
            .query_row(
                "SELECT status, error_code, response, message FROM turns WHERE turn_id = ?1",
                [turn_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap_or_else(|e| panic!("no row for {turn_id}: {e}"))
    }

    /// A turn with --json; its record (inside the error object when it
    /// failed), checked against its row.
    fn turn(&self, user: &str, msg: &str, stdin: bool, exit: i32) -> Value {
        let r = if stdin {
            self.cli(&["turn", "--json", "--user", user], Some(msg.as_bytes()))
        } else {
            self.cli(&["turn", "--json", "--user", user, msg], None)
        };
        r.code(exit);
        let out: Value =
            serde_json::from_str(r.out().trim()).unwrap_or_else(|e| panic!("{e}\n{r}"));
        let v = if exit == 0 {
            out
        } else {
            assert_eq!(out["error_code"], out["turn"]["error_code"], "{r}");
            out["turn"].clone()
        };
        let (status, code, response, message) = self.row(v["turn_id"].as_str().unwrap());
        assert_eq!(message, msg, "the message is logged as sent");
        assert_eq!(status, v["status"].as_str().unwrap());
        assert_eq!(code.as_deref(), v["error_code"].as_str());
        assert_eq!(response.as_deref(), v["response"].as_str());
        v
    }
}

const USER: &str = "0123abcd-1111-4222-8333-444455556666";

#[test]
fn installed_pair_runs_the_whole_path() {
    let w = World::new();
    // health
    let r = w.cli(&["health"], None);
    assert!(
        r.ok()
            .starts_with("OK paliadin 127.0.0.1 session paliad-paliadin-health "),
        "{r}"
    );
    // a turn, 60 KiB, 1 MiB
    let v = w.turn(USER, "Hello laptop", false, 0);
    assert_eq!(v["response"], "Hello laptop");
    assert_eq!(v["session"], "paliad-paliadin-0123abcd");
    let line = "Sixty kilobytes of text, ünïcödé included — 0123456789\n";
    let kib60 = line.repeat(60 * 1024 / line.len());
    assert_eq!(w.turn(USER, &kib60, false, 0)["response"], kib60.trim_end());
    let mib1 = line.repeat(1024 * 1024 / line.len());
    assert_eq!(w.turn(USER, &mib1, true, 0)["response"], mib1.trim_end());
    // reset, then a turn after reset
    assert_eq!(
        w.cli(&["reset", "--user", USER], None).ok(),
        "reset paliad-paliadin-0123abcd\n"
    );
    assert_eq!(
        w.turn(USER, "after reset", false, 0)["response"],
        "after reset"
    );
    // a silent agent: timeout, and poll says it is still pending
    let v = w.turn(USER, "paliadin-test: silent\nhello?", false, 124);
    assert_eq!(v["status"], "pending");
    let id = v["turn_id"].as_str().unwrap();
    w.cli(&["poll", id], None).code(124);
    assert_eq!(w.row(id).0, "pending");
    // a slow one: timeout, then poll collects it
    let other = "99999999-1111-4222-8333-444455556666";
    let v = w.turn(
        other,
        "paliadin-test: slow:4500\nworth the wait",
        false,
        124,
    );
    let id = v["turn_id"].as_str().unwrap().to_owned();
    let until = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = w.cli(&["poll", &id], None);
        if r.code == 0 {
            assert_eq!(r.out(), "paliadin-test: slow:4500\nworth the wait\n");
            break;
        }
        r.code(124);
        assert!(
            std::time::Instant::now() < until,
            "the late reply never came"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(w.row(&id).0, "ok");
    // a permission prompt: blocked
    let v = w.turn(
        "77777777-1111-4222-8333-444455556666",
        "paliadin-test: permission\ndelete it",
        false,
        75,
    );
    assert_eq!(v["error_code"], "blocked");
    // everything logged
    let n: i64 = w
        .db()
        .query_row("SELECT count(*) FROM turns", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        n, 7,
        "hello, 60 KiB, 1 MiB, after reset, silent, slow, permission"
    );
    let probes: i64 = w
        .db()
        .query_row("SELECT count(*) FROM probes WHERE ok = 1", [], |r| r.get(0))
        .unwrap();
    assert_eq!(probes, 1);
    let _ = &w.laptop;
}

#[test]
fn eight_users_at_once() {
    let w = World::new();
    std::thread::scope(|s| {
        for i in 0..8 {
            let w = &w;
            s.spawn(move || {
                let user = format!("{i:08x}-1111-4222-8333-444455556666");
                let msg = format!("hello from user {i}");
                let v = w.turn(&user, &msg, false, 0);
                assert_eq!(v["response"], msg.as_str());
                assert_eq!(v["session"], format!("paliad-paliadin-{i:08x}"));
            });
        }
    });
    let ok: i64 = w
        .db()
        .query_row(
            "SELECT count(DISTINCT session) FROM turns WHERE status = 'ok'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(ok, 8);
}

#[test]
fn the_go_service_against_the_installed_shim() {
    let mut w = World::new();
    w.sshd.client_key = w.server.join(".config/paliadin/id_ed25519");
    w.sshd.known_hosts = w.server.join(".config/paliadin/known_hosts");
    let session = "paliad-paliadin-0123abcd";
    let r = w
        .sshd
        .go_client(&["health", session], None, Duration::from_secs(30));
    assert_eq!(r.ok().trim(), "ok");
    let msg = "Go says hi";
    let r = w.sshd.go_client(
        &[
            "run-turn",
            session,
            &paliadin_tests::turn_id(),
            &paliadin_tests::b64(msg),
        ],
        None,
        Duration::from_secs(70),
    );
    assert_eq!(paliadin_core::reply::split_trailer(&r.ok()).0, msg);
    let r = w.sshd.go_client(
        &[
            "run-turn",
            session,
            &paliadin_tests::turn_id(),
            &paliadin_tests::b64("paliadin-test: silent\n..."),
        ],
        None,
        Duration::from_secs(70),
    );
    r.code(124);
}
