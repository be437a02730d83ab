//! `doctor`: checks the whole path from this machine to the agent on the
//! laptop and prints one line per check, `ok`, `warn`, `FAIL` or `skip`,
//! each failure with what to do: the config, the key and known_hosts files
//! and their modes, the host's port, the shim's version (a refused login
//! says which side is wrong and its fix), the agent, and where a health
//! call's time goes (connect, ssh's start here, login shell and shim
//! start-up, shim work), pointing at the login shell when it costs more
//! than the laptop installer allows. After a failed check, the checks it could not run are listed as
//! `skip`. Reads the configuration itself, since a broken one is among the
//! things it reports. Exit 0 when nothing failed, 1 otherwise.

use paliadin_core::Request;
use std::net::ToSocketAddrs as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::cli::DoctorArgs;
use crate::cmd::{out, App, Ctx};
use paliadin_cli::config::{Kind, Settings};
use paliadin_cli::transport::{Answer, Transport};
use paliadin_cli::{exit, Failure};

/// What the laptop's login shell may cost a call before doctor says so:
/// the threshold of the laptop installer's login-shell check, which times
/// `$SHELL -c true` on the laptop with and without ssh's variables (median
/// of five each) and judges the difference. From here only whole calls can
/// be timed, so doctor's figure is a reused call's time less what it can
/// time apart, each the median of five: ssh's own start on this machine
/// (`ssh -O check` against the same master, which reaches no laptop) and
/// two network round trips (opening the channel, starting the command).
/// What is left is the rc files' cost plus a bare shell's and the shim's
/// start, which the installer's difference leaves out. Measured over
/// loopback on a loaded two-core machine (debug builds), the same
/// `~/.bashrc` read: empty, doctor 5-7 ms and the installer 0; `sleep
/// 0.01`, 18 and 14; `sleep 0.02`, 27-29 and 29; `sleep 0.1`, 110-120 and
/// 111. With ssh's start (5-10 ms) left in, doctor read an empty rc file
/// as 15-19 ms and warned on the 14 ms one.
pub const LOGIN_SHELL_BUDGET_MS: i64 = 20;

/// Timed rounds, as the installer's median of five.
const ROUNDS: usize = 5;

/// The checks, in the order they run.
const SSH_CHECKS: &[&str] = &[
    "config",
    "key",
    "known_hosts",
    "host",
    "shim",
    "agent",
    "plan",
    "timing",
];
const LOCAL_CHECKS: &[&str] = &["config", "transport", "shim", "agent", "plan", "timing"];

struct Report {
    lines: String,
    /// The checks this run means to make.
    planned: &'static [&'static str],
    done: Vec<&'static str>,
    /// The first check that failed.
    failed: Option<&'static str>,
}

impl Report {
    fn line(&mut self, state: &str, what: &'static str, text: &str) {
        let text = paliadin_core::text::one_line(text, None);
        self.lines
            .push_str(&format!("{state:<5} {what:<12} {text}\n"));
        self.done.push(what);
    }
    fn ok(&mut self, what: &'static str, text: &str) {
        self.line("ok", what, text);
    }
    fn warn(&mut self, what: &'static str, text: &str) {
        self.line("warn", what, text);
    }
    fn fail(&mut self, what: &'static str, text: &str) {
        self.failed.get_or_insert(what);
        self.line("FAIL", what, text);
    }

    /// Prints every line, a `skip` line for each check not made, and
    /// gives the exit status.
    fn finish(mut self) -> Result<u8, Failure> {
        if let Some(failed) = self.failed {
            for what in self.planned.iter().filter(|w| !self.done.contains(w)) {
                self.lines.push_str(&format!(
                    "skip  {what:<12} not checked: the {failed} check failed\n"
                ));
            }
        }
        out(&self.lines)?;
        Ok(if self.failed.is_some() {
            exit::FAILURE
        } else {
            exit::OK
        })
    }
}

/// A private file's check: present, and not readable (key) or writable
/// (known_hosts) by others.
fn file_check(r: &mut Report, what: &'static str, path: Option<&Path>, secret: bool) -> bool {
    let Some(path) = path else {
        r.warn(what, "not set: ssh's default is used");
        return true;
    };
    let p = path.display();
    let m = match std::fs::metadata(path) {
        Err(e) => {
            r.fail(
                what,
                &format!("{p}: {e}: check the path, or run install/server.sh"),
            );
            return false;
        }
        Ok(m) => m,
    };
    let mode = m.permissions().mode() & 0o777;
    let (bad, want) = if secret {
        (mode & 0o077 != 0, "600")
    } else {
        (mode & 0o022 != 0, "644")
    };
    if bad {
        r.fail(
            what,
            &format!(
                "{p} has mode {mode:03o}: run chmod {want} {p} (ssh refuses a key others can read)"
            ),
        );
        return false;
    }
    r.ok(what, &format!("{p} (mode {mode:03o})"));
    true
}

/// Times one call; its answer when it failed.
fn timed(t: &Transport, req: &Request) -> Result<(f64, Vec<u8>), Answer> {
    let start = Instant::now();
    let result = t.call(req, None, Instant::now() + Duration::from_secs(20), None);
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    let a = t.answer(&result);
    match a.code {
        None => Ok((ms, a.stdout)),
        Some(_) => Err(a),
    }
}

/// A failed call in words, with the fix its answer names or `fallback`.
fn failed_call(a: &Answer, fallback: &str) -> String {
    let code = a.code.map(|c| c.as_str()).unwrap_or("shim_error");
    format!(
        "{code}: {}: {}",
        a.detail,
        a.hint.as_deref().unwrap_or(fallback)
    )
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

/// The config check: the settings, or `None` after a FAIL line.
fn check_config(ctx: &Ctx<'_>, r: &mut Report) -> Option<App> {
    match ctx.app() {
        Ok(app) => {
            let path = &app.layers.file_path;
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
            Some(app)
        }
        Err(f) => {
            let hint = f.hint.as_deref().unwrap_or("fix that setting, or unset it");
            r.fail("config", &format!("{}: {hint}", f.detail));
            None
        }
    }
}

/// The files and the host's port over ssh; the network's round trip (ms)
/// when all is well.
fn check_ssh(r: &mut Report, s: &Settings) -> Option<f64> {
    let key_ok = file_check(r, "key", s.key.as_deref(), true);
    let hosts_ok = file_check(r, "known_hosts", s.known_hosts.as_deref(), false);
    let Some(host) = s.host.clone() else {
        r.fail(
            "host",
            "none configured: run paliadin-cli config set host <laptop> (or install/server.sh)",
        );
        return None;
    };
    let addr = (host.as_str(), s.port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next());
    let Some(addr) = addr else {
        r.fail(
            "host",
            &format!("{host}: the name does not resolve: check --host"),
        );
        return None;
    };
    // One round trip on the network, to tell it from the rest.
    let start = Instant::now();
    match std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
        Err(e) => {
            r.fail(
                "host",
                &format!(
                    "{host} port {}: {e}: is sshd running there, and the port right?",
                    s.port
                ),
            );
            None
        }
        Ok(_) => {
            let ms = start.elapsed().as_secs_f64() * 1000.0;
            r.ok(
                "host",
                &format!("{host} port {} reachable ({ms:.1} ms)", s.port),
            );
            (key_ok && hosts_ok).then_some(ms)
        }
    }
}

/// How long ssh takes to start and ask its master on this machine (`ssh -O
/// check`): its share of a reused call. `None` without a master.
fn time_ssh_start(t: &Transport) -> Option<f64> {
    let Transport::Ssh(c) = t else { return None };
    let once = || {
        let start = Instant::now();
        c.master_running(start + Duration::from_secs(10))
            .then(|| start.elapsed().as_secs_f64() * 1000.0)
    };
    let times: Option<Vec<f64>> = (0..ROUNDS).map(|_| once()).collect();
    median(times?)
}

/// Where a call's time goes: a fresh connection's `version` less a reused
/// one's is the connection; a reused `version` less ssh's start here and
/// the network's round trips is the login shell and the shim's start;
/// `health` less `version` is the shim's own work.
/// The subscription's windows and limit, as the shim's status has them
/// (PROTOCOL section 8): a warning while a usage limit holds.
fn check_plan(r: &mut Report, t: &Transport, session: &paliadin_core::SessionName) {
    use paliadin_core::subscription::Windows;
    let status = Request::Status {
        session: session.clone(),
    };
    let Ok((_, out)) = timed(t, &status) else {
        r.warn(
            "plan",
            "the shim's status failed: the plan's windows are not known",
        );
        return;
    };
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap_or_default();
    let w: Windows = serde_json::from_value(v["windows"].clone()).unwrap_or_default();
    let now = paliadin_core::timefmt::now_ms();
    let mut parts = Vec::new();
    for (name, use_) in [("five-hour", w.five_hour), ("seven-day", w.seven_day)] {
        if let Some(u) = use_ {
            parts.push(format!(
                "{name} window {}% used, resets at {}",
                u.used_percentage,
                paliadin_cli::localtime::for_people(u.resets_at * 1000, now)
            ));
        }
    }
    let windows = if parts.is_empty() {
        "no windows known yet (claude reports them after its first answer as a claude.ai subscriber; none with an API key)".to_owned()
    } else {
        parts.join("; ")
    };
    match v["usage_limit"]["resets_at"].as_str() {
        Some(at) => r.warn(
            "plan",
            &format!(
                "the subscription's {} limit is reached until {at}: every turn is refused until then; {windows}",
                paliadin_core::subscription::window_words(v["usage_limit"]["window"].as_str())
            ),
        ),
        None => r.ok("plan", &windows),
    }
}

fn check_timing(r: &mut Report, reused: &Transport, health: &Request, rtt: Option<f64>) {
    let fresh = match reused {
        Transport::Ssh(c) => {
            let mut c = c.clone();
            c.mux = false;
            Transport::Ssh(c)
        }
        other => other.clone(),
    };
    let (mut vf, mut vr, mut hr) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let time = |t: &Transport, req: &Request| timed(t, req).ok().map(|(ms, _)| ms);
        vf.extend(time(&fresh, &Request::Version));
        vr.extend(time(reused, &Request::Version));
        hr.extend(time(reused, health));
    }
    let (Some(vf), Some(vr), Some(hr)) = (median(vf), median(vr), median(hr)) else {
        r.warn("timing", "some calls failed: no breakdown");
        return;
    };
    let connect = (vf - vr).max(0.0);
    let work = (hr - vr).max(0.0);
    let Some(rtt) = rtt else {
        // Local: no login shell in the way.
        r.ok(
            "timing",
            &format!("health {hr:.0} ms: shim start {vr:.0} ms, shim work {work:.0} ms"),
        );
        return;
    };
    // Without a master (no connection reuse), ssh's start stays in.
    let ssh = time_ssh_start(reused).unwrap_or(0.0);
    let shell = (vr - ssh - 2.0 * rtt).max(0.0).round() as i64;
    let line = format!(
        "health {hr:.0} ms on a reused connection: connect {connect:.0} ms (fresh only), ssh's start here {ssh:.0} ms, login shell and shim start {shell} ms, shim work {work:.0} ms"
    );
    if shell > LOGIN_SHELL_BUDGET_MS {
        r.warn(
            "timing",
            &format!(
                "{line}: the laptop's login shell costs about {shell} ms per call (sshd runs the shim through it); put this at the top of ~/.bashrc to skip the rest when no one types: case $- in *i*) ;; *) return ;; esac"
            ),
        );
    } else {
        r.ok("timing", &line);
    }
}

pub fn run(ctx: &Ctx<'_>, a: &DoctorArgs) -> Result<u8, Failure> {
    let mut r = Report {
        lines: String::new(),
        planned: SSH_CHECKS,
        done: Vec::new(),
        failed: None,
    };
    let Some(app) = check_config(ctx, &mut r) else {
        return r.finish();
    };
    let s = &app.settings;
    let rtt = match s.transport {
        Kind::Local => {
            r.planned = LOCAL_CHECKS;
            r.ok("transport", &format!("local: {}", s.shim.display()));
            None
        }
        Kind::Ssh => match check_ssh(&mut r, s) {
            Some(rtt) => Some(rtt),
            None => return r.finish(),
        },
    };
    let session = app.session(&a.target, "health")?;
    let reused = app.transport()?;
    match timed(&reused, &Request::Version) {
        Ok((_, v)) => r.ok(
            "shim",
            &format!("version {}", String::from_utf8_lossy(&v).trim()),
        ),
        Err(answer) => {
            let fix = "check the laptop's authorized_keys line (install/laptop.sh)";
            r.fail("shim", &failed_call(&answer, fix));
            return r.finish();
        }
    }
    let health = Request::Health {
        session: session.clone(),
    };
    match timed(&reused, &health) {
        Ok(_) => r.ok("agent", &format!("session {session} is ready")),
        Err(answer) => {
            let fix = format!("see it on the laptop with: paliadin-shim attach {session}");
            r.fail(
                "agent",
                &format!("session {session}: {}", failed_call(&answer, &fix)),
            );
            return r.finish();
        }
    }
    check_plan(&mut r, &reused, &session);
    check_timing(&mut r, &reused, &health, rtt);
    r.finish()
}
