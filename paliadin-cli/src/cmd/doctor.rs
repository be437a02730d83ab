//! `doctor`: checks the whole path from this machine to the agent on the
//! laptop and prints one line per check, `ok`, `warn` or `FAIL`, each failure
//! with what to do: the config, the key and known_hosts files and their
//! modes, the host's port, the shim's version, the agent, and where a health
//! call's time goes (connect, login shell and shim start-up, shim work),
//! pointing at the login shell when it is slow. Reads the configuration
//! itself, since a broken one is among the things it reports. Exit 0 when
//! nothing failed, 1 otherwise.

use paliadin_core::Request;
use std::net::ToSocketAddrs as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::cli::{DoctorArgs, Global};
use crate::cmd::{out, App};
use crate::config::Kind;
use crate::exit;
use crate::transport::Transport;

/// What the login shell may cost a call before doctor says so.
const SLOW_SHELL_MS: f64 = 20.0;

#[derive(Default)]
struct Report {
    lines: String,
    failed: bool,
}

impl Report {
    fn ok(&mut self, what: &str, text: &str) {
        self.lines.push_str(&format!("ok    {what:<12} {text}\n"));
    }
    fn warn(&mut self, what: &str, text: &str) {
        self.lines.push_str(&format!("warn  {what:<12} {text}\n"));
    }
    fn fail(&mut self, what: &str, text: &str) {
        self.failed = true;
        self.lines.push_str(&format!("FAIL  {what:<12} {text}\n"));
    }
}

/// A private file's check: present, and not readable (key) or writable
/// (known_hosts) by others.
fn file_check(r: &mut Report, what: &str, path: Option<&Path>, secret: bool) -> bool {
    let Some(path) = path else {
        r.warn(what, "not set: ssh's default is used");
        return true;
    };
    match std::fs::metadata(path) {
        Err(e) => {
            r.fail(
                what,
                &format!(
                    "{}: {e}: check the path, or run install/server.sh",
                    path.display()
                ),
            );
            false
        }
        Ok(m) => {
            let mode = m.permissions().mode() & 0o777;
            let bad = if secret {
                mode & 0o077 != 0
            } else {
                mode & 0o022 != 0
            };
            if bad {
                let want = if secret { "600" } else { "644" };
                r.fail(
                    what,
                    &format!(
                        "{} has mode {mode:03o}: run chmod {want} {} (ssh refuses a key others can read)",
                        path.display(),
                        path.display()
                    ),
                );
                false
            } else {
                r.ok(what, &format!("{} (mode {mode:03o})", path.display()));
                true
            }
        }
    }
}

/// Times one call; `None` with the failure's text.
fn timed(t: &Transport, req: &Request) -> Result<(f64, Vec<u8>), String> {
    let start = Instant::now();
    let result = t.call(req, None, Instant::now() + Duration::from_secs(20), None);
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    match t.error_code(&result) {
        None => Ok((ms, result.map(|r| r.stdout).unwrap_or_default())),
        Some(code) => Err(match &result {
            Ok(r) => format!("{code}: {}", r.detail().unwrap_or_default()),
            Err(e) => format!("{code}: {e}"),
        }),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn run(g: &Global, a: &DoctorArgs) -> anyhow::Result<u8> {
    let mut r = Report::default();
    let app = match App::new(g, None) {
        Ok(app) => {
            let path = g
                .config
                .clone()
                .or_else(|| std::env::var_os("PALIADIN_CONFIG").map(Into::into))
                .unwrap_or_else(crate::config::default_config_path);
            if path.exists() {
                r.ok("config", &format!("{} is valid", path.display()));
            } else {
                r.warn(
                    "config",
                    &format!(
                        "{} not found: defaults, environment and flags only",
                        path.display()
                    ),
                );
            }
            app
        }
        Err(e) => {
            r.fail(
                "config",
                &format!("{e:#}: fix the file (every key is in the README)"),
            );
            out(&r.lines)?;
            return Ok(exit::FAILURE);
        }
    };
    let s = &app.settings;
    if s.kind == Kind::Local {
        r.ok("transport", &format!("local: {}", s.shim.display()));
    } else {
        let key_ok = file_check(&mut r, "key", s.key.as_deref(), true);
        let hosts_ok = file_check(&mut r, "known_hosts", s.known_hosts.as_deref(), false);
        let Some(host) = s.host.clone() else {
            r.fail(
                "host",
                "none configured: set --host, PALIADIN_HOST or `host` in cli.toml",
            );
            out(&r.lines)?;
            return Ok(exit::FAILURE);
        };
        // One round trip on the network, to tell it from the rest.
        let addr = (host.as_str(), s.port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next());
        let tcp = addr.map(|addr| {
            let start = Instant::now();
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3))
                .map(|_| start.elapsed().as_secs_f64() * 1000.0)
        });
        match &tcp {
            None => r.fail(
                "host",
                &format!("{host}: the name does not resolve: check --host"),
            ),
            Some(Err(e)) => r.fail(
                "host",
                &format!(
                    "{host} port {}: {e}: is sshd running there, and the port right?",
                    s.port
                ),
            ),
            Some(Ok(ms)) => r.ok(
                "host",
                &format!("{host} port {} reachable ({ms:.1} ms)", s.port),
            ),
        }
        if !(key_ok && hosts_ok && matches!(tcp, Some(Ok(_)))) {
            out(&r.lines)?;
            return Ok(exit::FAILURE);
        }
    }
    let session = app.session(&a.target, "health")?;
    let reused = app.transport()?;
    let fresh = match &reused {
        Transport::Ssh(c) => {
            let mut c = c.clone();
            c.mux = false;
            Transport::Ssh(c)
        }
        other => other.clone(),
    };
    match timed(&reused, &Request::Version) {
        Ok((_, v)) => r.ok(
            "shim",
            &format!("version {}", String::from_utf8_lossy(&v).trim()),
        ),
        Err(e) => {
            r.fail(
                "shim",
                &format!("{e}: check the laptop's authorized_keys line (install/laptop.sh)"),
            );
            out(&r.lines)?;
            return Ok(exit::FAILURE);
        }
    }
    let health = Request::Health {
        session: session.clone(),
    };
    match timed(&reused, &health) {
        Ok(_) => r.ok("agent", &format!("session {session} is ready")),
        Err(e) => r.fail(
            "agent",
            &format!("session {session}: {e}: see `paliadin-shim attach` on the laptop"),
        ),
    }
    // Where a call's time goes: a fresh connection's `version` less a reused
    // one's is the connection; a reused `version` is the login shell and the
    // shim's start; `health` less `version` is the shim's own work.
    let rounds = 3;
    let mut v_fresh = Vec::new();
    let mut v_reused = Vec::new();
    let mut h_reused = Vec::new();
    for _ in 0..rounds {
        if let Ok((ms, _)) = timed(&fresh, &Request::Version) {
            v_fresh.push(ms);
        }
        if let Ok((ms, _)) = timed(&reused, &Request::Version) {
            v_reused.push(ms);
        }
        if let Ok((ms, _)) = timed(&reused, &health) {
            h_reused.push(ms);
        }
    }
    if v_fresh.is_empty() || v_reused.is_empty() || h_reused.is_empty() {
        r.warn("timing", "some calls failed: no breakdown");
    } else {
        let (vf, vr, hr) = (median(v_fresh), median(v_reused), median(h_reused));
        let connect = (vf - vr).max(0.0);
        let work = (hr - vr).max(0.0);
        let line = format!(
            "health {hr:.0} ms on a reused connection: connect {connect:.0} ms (fresh only), login shell and shim start {vr:.0} ms, shim work {work:.0} ms"
        );
        if s.kind == Kind::Ssh && vr > SLOW_SHELL_MS {
            r.warn(
                "timing",
                &format!(
                    "{line}: the laptop's login shell costs about {vr:.0} ms per call; guard ~/.bashrc for non-interactive shells (first line: case $- in *i*) ;; *) return;; esac)"
                ),
            );
        } else {
            r.ok("timing", &line);
        }
    }
    out(&r.lines)?;
    Ok(if r.failed { exit::FAILURE } else { exit::OK })
}
