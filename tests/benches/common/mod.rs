//! What the benches share: the iteration count, timing of interleaved
//! alternatives, median and p95, and the check that the release binaries
//! exist. No dependencies beyond std and the suite's fixtures.

#![allow(dead_code)]

use std::time::{Duration, Instant};

/// Timed iterations: `PALIADIN_BENCH_N`, else `default`.
pub fn iterations(default: usize) -> usize {
    std::env::var("PALIADIN_BENCH_N")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or(default)
}

/// Warm-up iterations for `n` timed ones.
pub fn warmups(n: usize) -> usize {
    (n / 10).clamp(2, 10)
}

/// Exits with a clear message unless every workspace binary in `names` was
/// built next to this bench (in release: `target/release`).
pub fn require_bins(names: &[&str]) {
    let dir = paliadin_tests::bin_dir();
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !dir.join(n).exists())
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "missing {} in {}: run `cargo build --release --workspace` first, then the bench again",
            missing.join(", "),
            dir.display()
        );
        std::process::exit(2);
    }
}

/// Median and 95th percentile (nearest rank) of some samples.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub median: Duration,
    pub p95: Duration,
    pub n: usize,
}

pub fn summary(samples: &[Duration]) -> Summary {
    assert!(!samples.is_empty(), "no samples");
    let mut s = samples.to_vec();
    s.sort();
    let rank = |p: usize| s[((p * s.len()).div_ceil(100)).clamp(1, s.len()) - 1];
    Summary {
        median: rank(50),
        p95: rank(95),
        n: s.len(),
    }
}

/// Milliseconds with one or two decimals.
pub fn ms(d: Duration) -> String {
    let v = d.as_secs_f64() * 1e3;
    if v < 10.0 {
        format!("{v:.2} ms")
    } else {
        format!("{v:.1} ms")
    }
}

/// A signed difference in milliseconds: `+2.10 ms`.
pub fn diff_ms(a: Duration, b: Duration) -> String {
    let v = (a.as_secs_f64() - b.as_secs_f64()) * 1e3;
    format!("{v:+.2} ms")
}

/// `a / b` as `x1.23`.
pub fn ratio(a: Duration, b: Duration) -> String {
    format!("x{:.2}", a.as_secs_f64() / b.as_secs_f64().max(1e-9))
}

/// `median 4.10 ms p95 6.00 ms`.
pub fn med_p95(s: &Summary) -> String {
    format!("median {} p95 {}", ms(s.median), ms(s.p95))
}

/// `OK` or `MISSED`.
pub fn verdict(ok: bool) -> &'static str {
    if ok {
        "OK"
    } else {
        "MISSED"
    }
}

/// Times one call of `f`.
pub fn timed(f: impl FnOnce()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

/// Runs every alternative `warm` times, then `n` rounds in which each runs
/// once, in a rotating order so that no alternative always follows another
/// (the machine is shared; interleaving spreads its noise over all of them).
/// Each closure returns how long its own measured part took.
pub fn interleaved(
    warm: usize,
    n: usize,
    alts: &mut [&mut dyn FnMut() -> Duration],
) -> Vec<Vec<Duration>> {
    for _ in 0..warm {
        for f in alts.iter_mut() {
            f();
        }
    }
    let k = alts.len();
    let mut out: Vec<Vec<Duration>> = (0..k).map(|_| Vec::with_capacity(n)).collect();
    for round in 0..n {
        for j in 0..k {
            let i = (round + j) % k;
            out[i].push(alts[i]());
        }
    }
    out
}
