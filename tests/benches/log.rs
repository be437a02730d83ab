//! The turn log's speed, measured in one run:
//!
//! 1. Turns written per second through `paliadin_cli::store::Store`
//!    (`begin_turn` + `finish_turn`, two transactions per turn, one process)
//!    beside bare rusqlite writing the same rows into a plain table (no index,
//!    no FTS, no trigger) with the same pragmas (WAL, synchronous=NORMAL).
//! 2. The real `paliadin-cli log` commands as processes against a database of
//!    one million turns (`PALIADIN_BENCH_ROWS` overrides), beside `log path`
//!    (the process start, no database): the table, search, and `log stats`
//!    over all time, the last 7 days, and a period starting mid-day (read
//!    from the aggregates the store's triggers keep, plus the turns of the
//!    part-day). Aim: every one under 100 ms.
//!
//! The big database is built once through the store's own schema (made by
//! `Store::open`; rows inserted with its FTS trigger in place, so the index
//! is consistent) and cached in `target/bench-data/turns-<rows>.db`.
//! `PALIADIN_BENCH_N` sets the timed rounds (and 100 x N turns written).

mod common;

use common::*;
use paliadin_cli::store::{ErrorCode, NewTurn, Outcome, Status, Store};
use paliadin_tests::{bin, bin_dir, run};
use rusqlite::{params, Connection};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use uuid::Uuid;

const T0: i64 = 1_700_000_000_000;
/// One word in every message: the worst case for a search.
const COMMON: &str = "the";
/// In one message of every 100,000: the best case.
const RARE: &str = "zanzibar";
const RARE_EVERY: u64 = 100_000;
const USERS: u64 = 200;

/// A small deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

const SYLLABLES: [&str; 20] = [
    "ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "de", "ga", "pe", "qui", "ro", "sun", "ter",
    "ul", "ven", "wa", "xo", "ya",
];

/// One of 8000 made-up words, small indexes (frequent words) more likely.
fn word(rng: &mut Rng) -> String {
    let a = rng.next() % 8000;
    let b = rng.next() % 8000;
    let n = (a * b / 8000) as usize;
    format!(
        "{}{}{}",
        SYLLABLES[n % 20],
        SYLLABLES[(n / 20) % 20],
        SYLLABLES[(n / 400) % 20]
    )
}

fn words(rng: &mut Rng, n: usize) -> String {
    (0..n).map(|_| word(rng)).collect::<Vec<_>>().join(" ")
}

fn user(i: u64) -> Uuid {
    Uuid::from_u64_pair(0x00c0_ffee_0000_0000, i % USERS)
}

fn session_of(u: &Uuid) -> String {
    format!("paliad-paliadin-{}", &u.simple().to_string()[..8])
}

/// The `i`th turn of the big database.
struct Row {
    turn_id: Uuid,
    user_id: Uuid,
    session: String,
    started_ms: i64,
    ended_ms: i64,
    message: String,
    response: String,
    status: Status,
    error_code: Option<&'static str>,
}

fn row(i: u64, rng: &mut Rng) -> Row {
    let u = user(i);
    let mut message = format!("what is {COMMON} {}", words(rng, 6));
    if i % RARE_EVERY == RARE_EVERY / 2 {
        message.push_str(&format!(" {RARE}"));
    }
    let r = rng.next() % 100;
    let (status, error_code) = match r {
        0..=2 => (Status::Error, Some("timeout")),
        3 => (Status::Error, Some("agent_error")),
        _ => (Status::Ok, None),
    };
    let response = if status == Status::Ok {
        words(rng, 20)
    } else {
        String::new()
    };
    let started_ms = T0 + i as i64 * 30_000;
    Row {
        turn_id: Uuid::from_u64_pair(0x5eed_0000_0000_0000, i),
        user_id: u,
        session: session_of(&u),
        started_ms,
        ended_ms: started_ms + 1_000 + (rng.next() % 60_000) as i64,
        message,
        response,
        status,
        error_code,
    }
}

// ---------------------------------------------------------------------------
// 1. Writes

const PLAIN: &str = "CREATE TABLE turns (
    id INTEGER PRIMARY KEY, turn_id TEXT NOT NULL, user_id TEXT, session TEXT NOT NULL,
    host TEXT NOT NULL, started_ms INTEGER NOT NULL, ended_ms INTEGER, duration_ms INTEGER,
    message TEXT NOT NULL, page_origin TEXT, response TEXT, tokens INTEGER, used_tools TEXT,
    rows_seen INTEGER, classifier_tag TEXT, chip_count INTEGER, status TEXT NOT NULL,
    error_code TEXT, error_detail TEXT)";

fn bare_conn(path: &Path) -> Connection {
    let c = Connection::open(path).expect("open");
    c.busy_timeout(Duration::from_secs(5)).expect("busy");
    let _: String = c
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .expect("wal");
    c.pragma_update(None, "synchronous", "NORMAL")
        .expect("sync");
    c.pragma_update(None, "foreign_keys", "ON").expect("fk");
    c.execute_batch(PLAIN).expect("plain table");
    c
}

fn outcome(r: &Row) -> Outcome {
    Outcome {
        ended_ms: Some(r.ended_ms),
        status: r.status,
        response: Some(r.response.clone()),
        tokens: Some(1234),
        usage: None,
        used_tools: vec!["sql".into()],
        claimed_tools: Some(vec!["sql".into()]),
        rows_seen: Some(12),
        classifier_tag: Some("question".into()),
        chip_count: Some(2),
        error_code: r.error_code.and_then(ErrorCode::parse),
        error_detail: r.error_code.map(|c| format!("{c}: detail")),
        resets_at_ms: None,
    }
}

fn write_store(store: &mut Store, rows: &[Row]) {
    for r in rows {
        store
            .begin_turn(&NewTurn {
                turn_id: r.turn_id,
                user_id: Some(r.user_id),
                session: r.session.clone(),
                host: "laptop".into(),
                started_ms: r.started_ms,
                message: r.message.clone(),
                page_origin: Some("https://example.test/page".into()),
            })
            .expect("begin");
        store.finish_turn(r.turn_id, &outcome(r)).expect("finish");
    }
}

const INSERT_ALL: &str = "INSERT INTO turns (turn_id, user_id, session, host, started_ms, \
    ended_ms, duration_ms, message, page_origin, response, tokens, used_tools, rows_seen, \
    classifier_tag, chip_count, status, error_code, error_detail) VALUES \
    (?1, ?2, ?3, 'laptop', ?4, ?5, ?5 - ?4, ?6, 'https://example.test/page', ?7, 1234, \
    '[\"sql\"]', 12, 'question', 2, ?8, ?9, ?10)";

fn insert_all(c: &Connection, r: &Row) {
    c.prepare_cached(INSERT_ALL)
        .expect("prepare")
        .execute(params![
            r.turn_id.to_string(),
            r.user_id.to_string(),
            r.session,
            r.started_ms,
            r.ended_ms,
            r.message,
            r.response,
            r.status.as_str(),
            r.error_code,
            r.error_code.map(|c| format!("{c}: detail")),
        ])
        .expect("insert");
}

/// One autocommit INSERT of the complete row per turn.
fn write_bare(c: &Connection, rows: &[Row]) {
    for r in rows {
        insert_all(c, r);
    }
}

/// The store's pattern on the plain table: INSERT, then UPDATE, two transactions.
fn write_bare_two(c: &mut Connection, rows: &[Row]) {
    for r in rows {
        let tx = c
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .expect("tx");
        tx.prepare_cached(
            "INSERT INTO turns (turn_id, user_id, session, host, started_ms, message, \
             page_origin, status) VALUES (?1, ?2, ?3, 'laptop', ?4, ?5, 'https://example.test/page', 'running')",
        )
        .expect("prepare")
        .execute(params![
            r.turn_id.to_string(),
            r.user_id.to_string(),
            r.session,
            r.started_ms,
            r.message
        ])
        .expect("insert");
        tx.commit().expect("commit");
        let tx = c
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .expect("tx");
        tx.prepare_cached(
            "UPDATE turns SET ended_ms = ?2, duration_ms = ?2 - started_ms, status = ?3, \
             response = ?4, tokens = 1234, used_tools = '[\"sql\"]', rows_seen = 12, \
             classifier_tag = 'question', chip_count = 2, error_code = ?5, error_detail = ?6 \
             WHERE turn_id = ?1",
        )
        .expect("prepare")
        .execute(params![
            r.turn_id.to_string(),
            r.ended_ms,
            r.status.as_str(),
            r.response,
            r.error_code,
            r.error_code.map(|c| format!("{c}: detail")),
        ])
        .expect("update");
        tx.commit().expect("commit");
    }
}

fn writes(tmp: &Path, n: usize) {
    let chunk = 100;
    let total = n * 100;
    let mut rng = Rng(42);
    let rows: Vec<Row> = (0..total as u64).map(|i| row(i, &mut rng)).collect();
    let mut store = Store::open(&tmp.join("store.db")).expect("store");
    let bare = bare_conn(&tmp.join("bare.db"));
    let mut bare2 = bare_conn(&tmp.join("bare2.db"));
    // Warm-up on rows of their own (turn ids must be new).
    let mut wrng = Rng(7);
    let warm: Vec<Row> = (0..chunk as u64)
        .map(|i| row(10_000_000 + i, &mut wrng))
        .collect();
    write_store(&mut store, &warm);
    write_bare(&bare, &warm);
    write_bare_two(&mut bare2, &warm);
    let mut t = [Duration::ZERO; 3];
    for (k, part) in rows.chunks(chunk).enumerate() {
        for j in 0..3 {
            let which = (k + j) % 3;
            let d = match which {
                0 => timed(|| write_store(&mut store, part)),
                1 => timed(|| write_bare(&bare, part)),
                _ => timed(|| write_bare_two(&mut bare2, part)),
            };
            t[which] += d;
        }
    }
    let rate = |d: Duration| total as f64 / d.as_secs_f64();
    let aim = 1000.0;
    println!(
        "writes: {total} turns each, in chunks of {chunk} interleaved, one process, WAL + synchronous=NORMAL"
    );
    println!(
        "store begin_turn+finish_turn  {:.0} turns/s ({:.3} ms/turn) | bare rusqlite, 1 INSERT/row into a plain table {:.0} rows/s ({:.3} ms/row) | x{:.2} slower (aim: >= {aim:.0} turns/s, ours) {}",
        rate(t[0]),
        t[0].as_secs_f64() * 1e3 / total as f64,
        rate(t[1]),
        t[1].as_secs_f64() * 1e3 / total as f64,
        t[0].as_secs_f64() / t[1].as_secs_f64(),
        verdict(rate(t[0]) >= aim)
    );
    println!(
        "store begin_turn+finish_turn  {:.0} turns/s | bare rusqlite, INSERT then UPDATE in 2 transactions (the store's pattern) on a plain table {:.0} rows/s | x{:.2} slower: the cost of the store's 5 indexes, FTS and the aggregates' triggers",
        rate(t[0]),
        rate(t[2]),
        t[0].as_secs_f64() / t[2].as_secs_f64(),
    );
}

// ---------------------------------------------------------------------------
// 2. Reads at a million turns

/// `target/bench-data/turns-<rows>.db`, built if missing.
fn big_db(rows: u64) -> PathBuf {
    let target = bin_dir()
        .parent()
        .map(Path::to_path_buf)
        .expect("target dir");
    let dir = target.join("bench-data");
    std::fs::create_dir_all(&dir).expect("bench-data dir");
    let path = dir.join(format!("turns-{rows}.db"));
    if path.exists() {
        return path;
    }
    let tmp = dir.join(format!("turns-{rows}.db.building-{}", std::process::id()));
    for ext in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{}{ext}", tmp.display()));
    }
    let t = Instant::now();
    eprintln!(
        "building {} ({rows} turns, once; cached for later runs)...",
        path.display()
    );
    drop(Store::open(&tmp).expect("schema"));
    let mut c = Connection::open(&tmp).expect("open");
    // Bulk: no journal, no syncs, a big cache; the store's own triggers
    // keep turns_fts consistent with every row inserted.
    let _: String = c
        .pragma_update_and_check(None, "journal_mode", "OFF", |r| r.get(0))
        .expect("journal off");
    c.pragma_update(None, "synchronous", "OFF")
        .expect("sync off");
    c.pragma_update(None, "cache_size", -262_144)
        .expect("cache");
    let mut rng = Rng(1);
    let batch = 100_000;
    let mut i = 0;
    while i < rows {
        let tx = c.transaction().expect("tx");
        for k in i..(i + batch).min(rows) {
            insert_all(&tx, &row(k, &mut rng));
        }
        tx.commit().expect("commit");
        i += batch;
    }
    let rare: i64 = c
        .query_row(
            "SELECT count(*) FROM turns_fts WHERE turns_fts MATCH ?1",
            [RARE],
            |r| r.get(0),
        )
        .expect("fts count");
    let want = (0..rows)
        .filter(|k| k % RARE_EVERY == RARE_EVERY / 2)
        .count() as i64;
    assert_eq!(rare, want, "the FTS index disagrees with the rows");
    let _: String = c
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .expect("wal");
    drop(c);
    std::fs::rename(&tmp, &path).expect("rename");
    eprintln!(
        "built in {:.0} s, {} MB",
        t.elapsed().as_secs_f64(),
        std::fs::metadata(&path).map(|m| m.len() >> 20).unwrap_or(0)
    );
    path
}

fn reads(tmp: &Path, n: usize, rows: u64) {
    let db = big_db(rows);
    let home = tmp.join("home");
    std::fs::create_dir_all(&home).expect("home");
    let cli = |args: &[&str]| {
        let mut c = Command::new(bin("paliadin-cli"));
        c.env_clear()
            .env("HOME", &home)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("NO_COLOR", "1")
            .current_dir(&home)
            .arg("--db")
            .arg(&db)
            .args(args);
        c
    };
    let session = session_of(&user(7));
    // The data's last day, and periods that end with it.
    let last = T0 + rows as i64 * 30_000;
    let week = paliadin_core::timefmt::day_of_ms(last - 7 * 86_400_000);
    let mid_day = paliadin_core::timefmt::rfc3339_ms(last - 30 * 86_400_000 - 43_210_000);
    let mid_day = format!("{}Z", &mid_day[..19]);
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            "log path (process start, baseline)".into(),
            vec!["log", "path"],
        ),
        ("log (default table, newest 20)".into(), vec!["log"]),
        ("log --json -n 20".into(), vec!["log", "--json", "-n", "20"]),
        (
            format!("log --session <one of {USERS}>"),
            vec!["log", "--session", &session],
        ),
        (
            format!("log search {RARE} (rare: {} hits)", rows / RARE_EVERY),
            vec!["log", "search", RARE],
        ),
        (
            format!("log search {COMMON} (in every turn)"),
            vec!["log", "search", COMMON],
        ),
        ("log stats (all time)".into(), vec!["log", "stats"]),
        (
            format!("log stats --since {week} (7 days)"),
            vec!["log", "stats", "--since", &week],
        ),
        (
            format!("log stats --since {mid_day} (30 days from mid-day)"),
            vec!["log", "stats", "--json", "--since", &mid_day],
        ),
    ];
    let mut fns: Vec<Box<dyn FnMut() -> Duration>> = cases
        .iter()
        .map(|(_, args)| {
            let args = args.clone();
            let cli = &cli;
            Box::new(move || {
                let mut out = Vec::new();
                let d = timed(|| out = run(&mut cli(&args), None, Duration::from_secs(60)).stdout);
                assert!(!out.is_empty(), "no output from log {args:?}");
                d
            }) as Box<dyn FnMut() -> Duration>
        })
        .collect();
    let mut alts: Vec<&mut dyn FnMut() -> Duration> = fns
        .iter_mut()
        .map(|f| &mut **f as &mut dyn FnMut() -> Duration)
        .collect();
    let r = interleaved(warmups(n), n, &mut alts);
    let s: Vec<Summary> = r.iter().map(|v| summary(v)).collect();
    let aim = Duration::from_millis(100);
    println!(
        "reads: {rows} turns ({} MB, cached as target/bench-data/{}), each command a process, {n} rounds interleaved after {} warm-up",
        std::fs::metadata(&db).map(|m| m.len() >> 20).unwrap_or(0),
        db.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
        warmups(n)
    );
    println!("{}  {}", cases[0].0, med_p95(&s[0]));
    for (i, (name, _)) in cases.iter().enumerate().skip(1) {
        println!(
            "{name}  {} | log path median {} | {} (aim: under {} ms) {}",
            med_p95(&s[i]),
            ms(s[0].median),
            diff_ms(s[i].median, s[0].median),
            aim.as_millis(),
            verdict(s[i].median < aim)
        );
    }
}

fn main() {
    require_bins(&["paliadin-cli"]);
    let n = iterations(30);
    let rows: u64 = std::env::var("PALIADIN_BENCH_ROWS")
        .ok()
        .and_then(|v| v.trim().replace('_', "").parse().ok())
        .filter(|&r| r > 0)
        .unwrap_or(1_000_000);
    let tmp = tempfile::Builder::new()
        .prefix("paliadin-bench-log-")
        .tempdir()
        .expect("temp dir");
    writes(tmp.path(), n);
    reads(tmp.path(), n, rows);
}
