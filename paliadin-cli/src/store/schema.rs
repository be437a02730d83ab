//! The turn log's file and schema: opening (file and directory modes,
//! pragmas, write-ahead logging), the append-only migrations, and in Rust the
//! duration bucket the aggregates' triggers compute in SQL ([`bucket`]).
//! Never reads or writes a turn.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use paliadin_core::fsutil;
use rusqlite::{Connection, ErrorCode, TransactionBehavior};

use super::{Store, StoreError};

/// How long a statement waits for another process's write lock before it
/// gives up with "database is locked". Set explicitly: rusqlite's default
/// is the same today, but the promise is ours, not theirs.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The schema, one entry per `user_version`: entry `i` takes the database
/// from version `i` to `i + 1`. Append only: never edit, reorder or remove an
/// entry once a binary with it has been released, because databases in the
/// field have already run it. Each entry is literal SQL, run as it stands:
/// nothing in Rust may change what a released migration runs (the test
/// `released_migrations_are_unchanged` holds each one's digest).
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: turns with full-text search over message and response, and probes.
    r#"
    CREATE TABLE turns (
        id             INTEGER PRIMARY KEY,
        turn_id        TEXT NOT NULL UNIQUE,
        user_id        TEXT,
        session        TEXT NOT NULL,
        host           TEXT NOT NULL,
        started_ms     INTEGER NOT NULL,
        ended_ms       INTEGER,
        duration_ms    INTEGER,
        message        TEXT NOT NULL,
        page_origin    TEXT,
        response       TEXT,
        tokens         INTEGER,
        used_tools     TEXT,
        rows_seen      INTEGER,
        classifier_tag TEXT,
        chip_count     INTEGER,
        status         TEXT NOT NULL
                       CHECK (status IN ('running', 'ok', 'error', 'pending')),
        error_code     TEXT,
        error_detail   TEXT
    );
    CREATE INDEX turns_started ON turns (started_ms);
    CREATE INDEX turns_session_started ON turns (session, started_ms);
    CREATE INDEX turns_user_started ON turns (user_id, started_ms);
    CREATE INDEX turns_status_started ON turns (status, started_ms);
    -- Partial: only failed turns carry a code, so this stays small, and
    -- `list --error-code` need not walk every turn to find a rare one.
    CREATE INDEX turns_error_code_started ON turns (error_code, started_ms)
        WHERE error_code IS NOT NULL;

    CREATE VIRTUAL TABLE turns_fts USING fts5(
        message, response,
        content = 'turns', content_rowid = 'id',
        tokenize = 'unicode61 remove_diacritics 2'
    );
    CREATE TRIGGER turns_fts_insert AFTER INSERT ON turns BEGIN
        INSERT INTO turns_fts (rowid, message, response)
        VALUES (new.id, new.message, new.response);
    END;
    CREATE TRIGGER turns_fts_delete AFTER DELETE ON turns BEGIN
        INSERT INTO turns_fts (turns_fts, rowid, message, response)
        VALUES ('delete', old.id, old.message, old.response);
    END;
    CREATE TRIGGER turns_fts_update AFTER UPDATE OF message, response ON turns BEGIN
        INSERT INTO turns_fts (turns_fts, rowid, message, response)
        VALUES ('delete', old.id, old.message, old.response);
        INSERT INTO turns_fts (rowid, message, response)
        VALUES (new.id, new.message, new.response);
    END;

    CREATE TABLE probes (
        id          INTEGER PRIMARY KEY,
        session     TEXT NOT NULL,
        host        TEXT NOT NULL,
        at_ms       INTEGER NOT NULL,
        duration_ms INTEGER NOT NULL,
        ok          INTEGER NOT NULL,
        error_code  TEXT,
        detail      TEXT
    );
    CREATE INDEX probes_at ON probes (at_ms);
    "#,
    // 2: aggregates for `log stats`, kept by triggers so that any writer
    // (this client, an older one, a bulk import in SQL) keeps them right:
    // finished turns (any status but `running`, which `log stats` counts
    // from the turns, so that starting a turn costs nothing more) per UTC
    // day, status and error code, and a duration histogram per day (exact
    // below 1 s, above in steps of at most 2.5 %, a 1-2-5 series: 160
    // buckets a decade). Filled from the turns already there. The UTC day
    // is `(t / 86400000 - (t % 86400000 < 0))` (floor division); the bucket
    // formula is [`bucket`]'s, tested against it (`sql_bucket`).
    r#"
    CREATE TABLE turn_counts (
        day        INTEGER NOT NULL,
        status     TEXT NOT NULL,
        error_code TEXT NOT NULL,
        turns      INTEGER NOT NULL,
        PRIMARY KEY (day, status, error_code)
    ) WITHOUT ROWID;
    CREATE TABLE turn_durations (
        day    INTEGER NOT NULL,
        bucket INTEGER NOT NULL,
        turns  INTEGER NOT NULL,
        PRIMARY KEY (day, bucket)
    ) WITHOUT ROWID;
    INSERT INTO turn_counts
        SELECT (started_ms / 86400000 - (started_ms % 86400000 < 0)), status, COALESCE(error_code, ''), COUNT(*)
        FROM turns WHERE status != 'running' GROUP BY 1, 2, 3;
    INSERT INTO turn_durations
        SELECT (started_ms / 86400000 - (started_ms % 86400000 < 0)), (CASE WHEN duration_ms < 1000 THEN duration_ms ELSE duration_ms / (CAST(substr('1000000000000000000', 1, length(duration_ms) - 2) AS INTEGER) * (CASE WHEN substr(duration_ms, 1, 1) = '1' THEN 2 WHEN substr(duration_ms, 1, 1) < '5' THEN 5 ELSE 10 END)) * (CAST(substr('1000000000000000000', 1, length(duration_ms) - 2) AS INTEGER) * (CASE WHEN substr(duration_ms, 1, 1) = '1' THEN 2 WHEN substr(duration_ms, 1, 1) < '5' THEN 5 ELSE 10 END)) END), COUNT(*)
        FROM turns WHERE status != 'running' AND duration_ms IS NOT NULL GROUP BY 1, 2;
    CREATE TRIGGER turns_agg_insert AFTER INSERT ON turns
    WHEN new.status != 'running' BEGIN
        INSERT INTO turn_counts VALUES
            ((new.started_ms / 86400000 - (new.started_ms % 86400000 < 0)), new.status, COALESCE(new.error_code, ''), 1)
            ON CONFLICT DO UPDATE SET turns = turns + 1;
        INSERT INTO turn_durations
            SELECT (new.started_ms / 86400000 - (new.started_ms % 86400000 < 0)), (CASE WHEN new.duration_ms < 1000 THEN new.duration_ms ELSE new.duration_ms / (CAST(substr('1000000000000000000', 1, length(new.duration_ms) - 2) AS INTEGER) * (CASE WHEN substr(new.duration_ms, 1, 1) = '1' THEN 2 WHEN substr(new.duration_ms, 1, 1) < '5' THEN 5 ELSE 10 END)) * (CAST(substr('1000000000000000000', 1, length(new.duration_ms) - 2) AS INTEGER) * (CASE WHEN substr(new.duration_ms, 1, 1) = '1' THEN 2 WHEN substr(new.duration_ms, 1, 1) < '5' THEN 5 ELSE 10 END)) END), 1
            WHERE new.duration_ms IS NOT NULL
            ON CONFLICT DO UPDATE SET turns = turns + 1;
    END;
    CREATE TRIGGER turns_agg_delete AFTER DELETE ON turns
    WHEN old.status != 'running' BEGIN
        UPDATE turn_counts SET turns = turns - 1
            WHERE day = (old.started_ms / 86400000 - (old.started_ms % 86400000 < 0)) AND status = old.status
            AND error_code = COALESCE(old.error_code, '');
        UPDATE turn_durations SET turns = turns - 1
            WHERE old.duration_ms IS NOT NULL AND day = (old.started_ms / 86400000 - (old.started_ms % 86400000 < 0))
            AND bucket = (CASE WHEN old.duration_ms < 1000 THEN old.duration_ms ELSE old.duration_ms / (CAST(substr('1000000000000000000', 1, length(old.duration_ms) - 2) AS INTEGER) * (CASE WHEN substr(old.duration_ms, 1, 1) = '1' THEN 2 WHEN substr(old.duration_ms, 1, 1) < '5' THEN 5 ELSE 10 END)) * (CAST(substr('1000000000000000000', 1, length(old.duration_ms) - 2) AS INTEGER) * (CASE WHEN substr(old.duration_ms, 1, 1) = '1' THEN 2 WHEN substr(old.duration_ms, 1, 1) < '5' THEN 5 ELSE 10 END)) END);
    END;
    CREATE TRIGGER turns_agg_update
    AFTER UPDATE OF started_ms, status, error_code, duration_ms ON turns BEGIN
        UPDATE turn_counts SET turns = turns - 1
            WHERE old.status != 'running' AND day = (old.started_ms / 86400000 - (old.started_ms % 86400000 < 0))
            AND status = old.status AND error_code = COALESCE(old.error_code, '');
        UPDATE turn_durations SET turns = turns - 1
            WHERE old.status != 'running' AND old.duration_ms IS NOT NULL
            AND day = (old.started_ms / 86400000 - (old.started_ms % 86400000 < 0)) AND bucket = (CASE WHEN old.duration_ms < 1000 THEN old.duration_ms ELSE old.duration_ms / (CAST(substr('1000000000000000000', 1, length(old.duration_ms) - 2) AS INTEGER) * (CASE WHEN substr(old.duration_ms, 1, 1) = '1' THEN 2 WHEN substr(old.duration_ms, 1, 1) < '5' THEN 5 ELSE 10 END)) * (CAST(substr('1000000000000000000', 1, length(old.duration_ms) - 2) AS INTEGER) * (CASE WHEN substr(old.duration_ms, 1, 1) = '1' THEN 2 WHEN substr(old.duration_ms, 1, 1) < '5' THEN 5 ELSE 10 END)) END);
        INSERT INTO turn_counts
            SELECT (new.started_ms / 86400000 - (new.started_ms % 86400000 < 0)), new.status, COALESCE(new.error_code, ''), 1
            WHERE new.status != 'running'
            ON CONFLICT DO UPDATE SET turns = turns + 1;
        INSERT INTO turn_durations
            SELECT (new.started_ms / 86400000 - (new.started_ms % 86400000 < 0)), (CASE WHEN new.duration_ms < 1000 THEN new.duration_ms ELSE new.duration_ms / (CAST(substr('1000000000000000000', 1, length(new.duration_ms) - 2) AS INTEGER) * (CASE WHEN substr(new.duration_ms, 1, 1) = '1' THEN 2 WHEN substr(new.duration_ms, 1, 1) < '5' THEN 5 ELSE 10 END)) * (CAST(substr('1000000000000000000', 1, length(new.duration_ms) - 2) AS INTEGER) * (CASE WHEN substr(new.duration_ms, 1, 1) = '1' THEN 2 WHEN substr(new.duration_ms, 1, 1) < '5' THEN 5 ELSE 10 END)) END), 1
            WHERE new.status != 'running' AND new.duration_ms IS NOT NULL
            ON CONFLICT DO UPDATE SET turns = turns + 1;
    END;
    "#,
    // 3 (issue 8): who wrote a turn's row, so that a row left `running` by a
    // process that is gone can be told from one still in flight: the pid,
    // its start time (clock ticks after boot, field 22 of /proc/PID/stat,
    // so a reused pid is not taken for the writer) and the boot id. NULL in
    // rows written before (never taken for stale). `turns_status_started`
    // already finds the running rows.
    r#"
    ALTER TABLE turns ADD COLUMN owner_pid INTEGER;
    ALTER TABLE turns ADD COLUMN owner_start INTEGER;
    ALTER TABLE turns ADD COLUMN owner_boot TEXT;
    "#,
    // 4 (issue 10): what the agent did during each turn (PROTOCOL section 7), one row
    // per event in the order it came, deleted with its turn; and beside
    // `used_tools` (now the tools the events show, when there are events)
    // the trailer's own claim. Older rows keep `claimed_tools` NULL.
    r#"
    CREATE TABLE turn_events (
        turn   INTEGER NOT NULL REFERENCES turns (id) ON DELETE CASCADE,
        seq    INTEGER NOT NULL,
        kind   TEXT NOT NULL,
        at     TEXT NOT NULL,
        tool   TEXT,
        target TEXT,
        detail TEXT,
        PRIMARY KEY (turn, seq)
    ) WITHOUT ROWID;
    ALTER TABLE turns ADD COLUMN claimed_tools TEXT;
    "#,
    // 5 (issue 13): what each turn's model requests really used, from the
    // agent's transcript (PROTOCOL section 7's `usage` event): tokens in,
    // out, read from and written to the prompt cache, the model and the
    // number of requests. NULL in a row whose usage was not measured (no
    // hooks, a plain `run-turn`, older rows): never an estimate. Summed per
    // UTC day by triggers, as the counts of migration 2 are, so that
    // `log stats` stays as cheap.
    r#"
    ALTER TABLE turns ADD COLUMN input_tokens INTEGER;
    ALTER TABLE turns ADD COLUMN output_tokens INTEGER;
    ALTER TABLE turns ADD COLUMN cache_read_tokens INTEGER;
    ALTER TABLE turns ADD COLUMN cache_creation_tokens INTEGER;
    ALTER TABLE turns ADD COLUMN model TEXT;
    ALTER TABLE turns ADD COLUMN model_requests INTEGER;
    CREATE TABLE turn_usage (
        day                   INTEGER PRIMARY KEY,
        turns                 INTEGER NOT NULL,
        input_tokens          INTEGER NOT NULL,
        output_tokens         INTEGER NOT NULL,
        cache_read_tokens     INTEGER NOT NULL,
        cache_creation_tokens INTEGER NOT NULL,
        model_requests        INTEGER NOT NULL
    );
    CREATE TRIGGER turns_usage_insert AFTER INSERT ON turns
    WHEN new.input_tokens IS NOT NULL BEGIN
        INSERT INTO turn_usage VALUES
            ((new.started_ms / 86400000 - (new.started_ms % 86400000 < 0)), 1,
             new.input_tokens, COALESCE(new.output_tokens, 0), COALESCE(new.cache_read_tokens, 0),
             COALESCE(new.cache_creation_tokens, 0), COALESCE(new.model_requests, 0))
            ON CONFLICT DO UPDATE SET turns = turns + 1,
            input_tokens = input_tokens + excluded.input_tokens,
            output_tokens = output_tokens + excluded.output_tokens,
            cache_read_tokens = cache_read_tokens + excluded.cache_read_tokens,
            cache_creation_tokens = cache_creation_tokens + excluded.cache_creation_tokens,
            model_requests = model_requests + excluded.model_requests;
    END;
    CREATE TRIGGER turns_usage_delete AFTER DELETE ON turns
    WHEN old.input_tokens IS NOT NULL BEGIN
        UPDATE turn_usage SET turns = turns - 1,
            input_tokens = input_tokens - old.input_tokens,
            output_tokens = output_tokens - COALESCE(old.output_tokens, 0),
            cache_read_tokens = cache_read_tokens - COALESCE(old.cache_read_tokens, 0),
            cache_creation_tokens = cache_creation_tokens - COALESCE(old.cache_creation_tokens, 0),
            model_requests = model_requests - COALESCE(old.model_requests, 0)
            WHERE day = (old.started_ms / 86400000 - (old.started_ms % 86400000 < 0));
    END;
    CREATE TRIGGER turns_usage_update
    AFTER UPDATE OF started_ms, input_tokens, output_tokens, cache_read_tokens,
        cache_creation_tokens, model_requests ON turns BEGIN
        UPDATE turn_usage SET turns = turns - 1,
            input_tokens = input_tokens - old.input_tokens,
            output_tokens = output_tokens - COALESCE(old.output_tokens, 0),
            cache_read_tokens = cache_read_tokens - COALESCE(old.cache_read_tokens, 0),
            cache_creation_tokens = cache_creation_tokens - COALESCE(old.cache_creation_tokens, 0),
            model_requests = model_requests - COALESCE(old.model_requests, 0)
            WHERE old.input_tokens IS NOT NULL
            AND day = (old.started_ms / 86400000 - (old.started_ms % 86400000 < 0));
        INSERT INTO turn_usage
            SELECT (new.started_ms / 86400000 - (new.started_ms % 86400000 < 0)), 1,
             new.input_tokens, COALESCE(new.output_tokens, 0), COALESCE(new.cache_read_tokens, 0),
             COALESCE(new.cache_creation_tokens, 0), COALESCE(new.model_requests, 0)
            WHERE new.input_tokens IS NOT NULL
            ON CONFLICT DO UPDATE SET turns = turns + 1,
            input_tokens = input_tokens + excluded.input_tokens,
            output_tokens = output_tokens + excluded.output_tokens,
            cache_read_tokens = cache_read_tokens + excluded.cache_read_tokens,
            cache_creation_tokens = cache_creation_tokens + excluded.cache_creation_tokens,
            model_requests = model_requests + excluded.model_requests;
    END;
    "#,
    // 6 (issue 13): when the subscription's usage limit a turn hit resets
    // (`usage_limit` turns only), and the plan's windows each probe saw
    // (used percentage, reset), so that `log probes` shows a limit coming.
    // NULL where not known and in older rows.
    r#"
    ALTER TABLE turns ADD COLUMN resets_at_ms INTEGER;
    ALTER TABLE probes ADD COLUMN five_hour_used REAL;
    ALTER TABLE probes ADD COLUMN five_hour_resets_ms INTEGER;
    ALTER TABLE probes ADD COLUMN seven_day_used REAL;
    ALTER TABLE probes ADD COLUMN seven_day_resets_ms INTEGER;
    "#,
];

impl Store {
    /// Opens the turn log at `path`, creating its directory (0700) and the
    /// file (0600) if missing, and migrates it to the newest schema. Refuses,
    /// without changing anything, a database from a newer `paliadin-cli`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fsutil::private_dir(dir)?;
        }
        // Our own files, private from the first byte, none of them a
        // symlink; SQLite is told not to follow one either.
        super::dbfile::prepare(path)?;
        let flags = rusqlite::OpenFlags::default() | rusqlite::OpenFlags::SQLITE_OPEN_NOFOLLOW;
        let conn = Connection::open_with_flags(path, flags)?;
        Store::setup(conn, path.to_path_buf(), true)
    }

    /// A fresh, migrated database in memory, for tests.
    pub fn open_in_memory() -> Result<Store, StoreError> {
        Store::setup(
            Connection::open_in_memory()?,
            PathBuf::from(":memory:"),
            false,
        )
    }

    fn setup(conn: Connection, path: PathBuf, wal: bool) -> Result<Store, StoreError> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // Read the version before any pragma that writes (journal_mode does),
        // so a newer binary's database is refused untouched.
        check_version(user_version(&conn)?, &path)?;
        if wal {
            enable_wal(&conn)?;
            // Each command is a short process: without this, every exit
            // would checkpoint the WAL into the database and delete it (four
            // disk flushes, measured). SQLite's auto-checkpoint still runs
            // every 1000 pages, in whichever process crosses the mark.
            conn.set_db_config(
                rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
                true,
            )?;
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let mut store = Store { conn, path };
        store.migrate()?;
        Ok(store)
    }

    /// Applies the missing [`MIGRATIONS`] in one `BEGIN IMMEDIATE`
    /// transaction. The version is read again inside it: another process may
    /// have migrated between our first look and our taking the write lock.
    pub(super) fn migrate(&mut self) -> Result<(), StoreError> {
        let known = MIGRATIONS.len();
        if user_version(&self.conn)? == known as i64 {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let found = user_version(&tx)?;
        check_version(found, &self.path)?;
        let from = usize::try_from(found).unwrap_or(0);
        for sql in &MIGRATIONS[from..] {
            tx.execute_batch(sql)?;
        }
        tx.pragma_update(None, "user_version", known as i64)?;
        tx.commit()?;
        Ok(())
    }
}

/// Switches a database to write-ahead logging (a no-op once it is: the mode
/// is stored in the file). The switch needs an exclusive lock, and SQLite
/// skips the busy handler when waiting could deadlock, e.g. when two
/// processes open a fresh file at once; so retry until the busy timeout.
fn enable_wal(conn: &Connection) -> Result<(), StoreError> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        // Returns the resulting mode; a file system without shared memory
        // keeps the old one, which is slower but still correct.
        match conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0)) {
            Ok(_mode) => return Ok(()),
            Err(e)
                if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy)
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

pub(super) fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
}

fn check_version(found: i64, path: &Path) -> Result<(), StoreError> {
    let known = MIGRATIONS.len() as i64;
    if found > known {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found,
            known,
        });
    }
    Ok(())
}

/// A duration's histogram bucket in SQL, as migration 2 writes it out for
/// `x`: exact below 1000 ms; above, cut to a step of 2, 5 or 10 units of
/// the third significant digit as the first digit is 1, 2 to 4, or 5 to 9
/// (so within 2.5 % of the duration). SQLite has no `log`, so the power of
/// ten comes from the number's length. For tests only: the migration holds
/// the formula literally, and [`bucket`] is the same in Rust.
#[cfg(test)]
pub(super) fn sql_bucket(x: &str) -> String {
    let step = format!(
        "(CAST(substr('1000000000000000000', 1, length({x}) - 2) AS INTEGER) * \
         (CASE WHEN substr({x}, 1, 1) = '1' THEN 2 WHEN substr({x}, 1, 1) < '5' THEN 5 ELSE 10 END))"
    );
    format!("(CASE WHEN {x} < 1000 THEN {x} ELSE {x} / {step} * {step} END)")
}

/// The bucket of a duration `x` in ms: the histogram the aggregates keep
/// (migration 2 computes it in SQL; `sql_bucket` is that formula).
pub(super) fn bucket(x: i64) -> i64 {
    if x < 1000 {
        return x;
    }
    let digits = x.to_string();
    let p = 10i64.pow(digits.len() as u32 - 3);
    let step = p * match digits.as_bytes()[0] {
        b'1' => 2,
        b'2'..=b'4' => 5,
        _ => 10,
    };
    x / step * step
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SHA-256 of each released migration's text, as databases in the field
    /// ran it. A new migration adds its line; an old line never changes.
    const RELEASED: [&str; 4] = [
        "82ec3632ddbb35614d97d944fdcd02d1d9a45ec0ef64973b44bab9a78134f600",
        "4dd311af58945e95e8e04bbf019d4fe558d37165a1b4935facc756547cb446a5",
        "fa4284025dc8e2fe913a24e5c47b18218981a9680f801bea519f66adf7469049",
        "e8f7fff881e18456e2493875cbd130b7477d05674fc56ed3a13d9e169c8cbab0",
    ];

    #[test]
    fn released_migrations_are_unchanged() {
        use sha2::{Digest as _, Sha256};
        assert!(MIGRATIONS.len() >= RELEASED.len());
        for (i, want) in RELEASED.iter().enumerate() {
            let got: String = Sha256::digest(MIGRATIONS[i].as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(&got, want, "migration {} changed", i + 1);
        }
    }

    #[test]
    fn migration_2_holds_the_bucket_formula() {
        for x in ["duration_ms", "new.duration_ms", "old.duration_ms"] {
            assert!(MIGRATIONS[1].contains(&sql_bucket(x)), "{x}");
        }
    }
}
