//! What starting the forced command costs before the shim runs: sshd runs
//! it through the user's login shell, and Debian's bash then reads
//! `~/.bashrc` (it sees `SSH_CLIENT`). Timed the way sshd runs it
//! (`$SHELL -c true` in HOME, a bare environment), with `SSH_CLIENT` and
//! without, the median of five each; the difference is what every turn
//! pays. Runs the shell only; changes nothing.

use paliadin_core::child::{self, Call};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Above this many milliseconds the rc file is worth a guard.
pub const WORTH_A_GUARD_MS: u64 = 20;

/// The line that skips the rest of `~/.bashrc` when no one types.
pub const GUARD: &str = "case $- in *i*) ;; *) return ;; esac";

/// The median of five runs of `shell -c true` with `env`, in seconds.
fn median(shell: &Path, home: &Path, env: &[(&str, String)]) -> Option<f64> {
    let mut times = Vec::with_capacity(5);
    for _ in 0..5 {
        let mut c = Command::new(shell);
        c.args(["-c", "true"])
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(home);
        let t = Instant::now();
        child::run(
            &mut c,
            Call {
                stdin: None,
                deadline: t + Duration::from_secs(20),
                cancel: None,
            },
        )
        .ok()?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Some(times[2])
}

/// The milliseconds the shell spends on its rc files for an ssh login,
/// `None` when it could not be run.
pub fn cost_ms(shell: &Path, home: &Path) -> Option<u64> {
    let var = |k: &str, default: &str| std::env::var(k).unwrap_or_else(|_| default.to_owned());
    let base = vec![
        ("HOME", home.display().to_string()),
        ("PATH", var("PATH", "/usr/bin:/bin")),
        ("USER", var("USER", "")),
        ("SHELL", shell.display().to_string()),
    ];
    let mut ssh = base.clone();
    ssh.push(("SSH_CLIENT", "127.0.0.1 50000 22".into()));
    ssh.push(("SSH_CONNECTION", "127.0.0.1 50000 127.0.0.1 22".into()));
    let with = median(shell, home, &ssh)?;
    let without = median(shell, home, &base)?;
    Some(((with - without) * 1000.0).round_ties_even().max(0.0) as u64)
}
