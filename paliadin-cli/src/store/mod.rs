//! The turn log: the SQLite database in which `paliadin-cli` records every
//! turn (PROTOCOL section 6) and every reachability probe.
//!
//! This module owns the database: the file and its pragmas, the schema and its
//! append-only migrations (`schema.rs`), the turns' and probes' writes and
//! queries (here) and the statistics (`stats.rs`), so every SQL statement the
//! client runs. Nothing else in the crate writes SQL.
//!
//! It must never run ssh (or any other program), and never hold a transaction
//! across anything slow: a turn's row is written in one short `BEGIN
//! IMMEDIATE` transaction before the ssh call and completed in another after
//! it, so a turn that takes minutes holds no lock while it runs and a crash
//! mid-turn still leaves a `running` row behind.

mod dbfile;
mod schema;
mod stats;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, Type, Value, ValueRef};
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row, ToSql};
use rusqlite::{Transaction, TransactionBehavior};
use serde::{Serialize, Serializer};
use uuid::Uuid;

pub use paliadin_core::error_code::ErrorCode;
pub use paliadin_core::event::{Event, Kind as EventKind, Usage};
pub use paliadin_core::subscription::{WindowUse, Windows};
pub use stats::{CodeCount, DayStats, HostProbes, ProbeStats, Stats, UsageTotals};

const DAY_MS: i64 = 86_400_000;

/// Every column of `turns`, in the order [`turn_from_row`] reads them.
const TURN_COLUMNS: &str = "turn_id, user_id, session, host, started_ms, ended_ms, \
     duration_ms, message, page_origin, response, tokens, used_tools, rows_seen, \
     classifier_tag, chip_count, status, error_code, error_detail, claimed_tools, \
     input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens, model, model_requests, \
     resets_at_ms";

/// What can go wrong with the turn log.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused a statement (locked past the busy timeout, disk full,
    /// corrupt file, ...).
    #[error("turn log: {0}: check the disk, the database file's permissions, and that no other process holds it locked")]
    Sqlite(#[from] rusqlite::Error),
    /// The database was written by a newer `paliadin-cli`; nothing was changed.
    #[error("database {} has schema version {found}, newer than this paliadin-cli knows ({known}): upgrade paliadin-cli", path.display())]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// Its `user_version`.
        found: i64,
        /// The newest version this binary can migrate to.
        known: i64,
    },
    /// No turn has this id.
    #[error("no turn {0} in the turn log: check the turn id")]
    UnknownTurn(Uuid),
    /// A search query with no words in it.
    #[error("empty search query: give at least one word to search for")]
    EmptyQuery,
    /// A file of the turn log is a symlink, not a regular file, or another
    /// user's: refused before SQLite could follow it.
    #[error("turn log: {} is refused: {why}: remove it (paliadin-cli makes its own files, never through a symlink)", path.display())]
    Unsafe {
        /// The refused file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// The database file or its directory could not be created.
    #[error("turn log: {0}: check that the data directory exists and is writable")]
    Io(#[from] io::Error),
}

/// Where a turn stands (PROTOCOL section 6). A stopped turn is `Error` with
/// error code `interrupted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Written before the ssh call; not finished (or the client died).
    Running,
    /// The agent replied.
    Ok,
    /// The turn failed; `error_code` says how.
    Error,
    /// The shim accepted the turn but the reply is still to be collected.
    Pending,
}

impl Status {
    /// All statuses, in the order they are listed in PROTOCOL section 6.
    pub const ALL: [Status; 4] = [Status::Running, Status::Ok, Status::Error, Status::Pending];

    /// The status of a finished turn with error code `code`: `ok` without
    /// one; `pending` for the codes after which the turn goes on on the
    /// laptop (`timeout`, `connection_lost`: `poll` collects it); `error`
    /// for every other code.
    pub fn of(code: Option<ErrorCode>) -> Status {
        match code {
            None => Status::Ok,
            Some(ErrorCode::Timeout | ErrorCode::ConnectionLost) => Status::Pending,
            Some(_) => Status::Error,
        }
    }

    /// The stored (and printed) name: `running`, `ok`, `error`, `pending`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Ok => "ok",
            Status::Error => "error",
            Status::Pending => "pending",
        }
    }
}

impl FromStr for Status {
    type Err = String;

    /// Parses the name [`Status::as_str`] gives.
    fn from_str(s: &str) -> Result<Status, String> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown status `{s}`: expected running, ok, error or pending"))
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ToSql for Status {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for Status {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Status> {
        value
            .as_str()?
            .parse()
            .map_err(|e: String| FromSqlError::Other(e.into()))
    }
}

/// A turn about to be sent: the row written before the ssh call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewTurn {
    /// The id the client made for this turn.
    #[serde(serialize_with = "ser_uuid")]
    pub turn_id: Uuid,
    /// The user the turn was run for, if known.
    #[serde(serialize_with = "ser_opt_uuid")]
    pub user_id: Option<Uuid>,
    /// The shim session name.
    pub session: String,
    /// The ssh destination.
    pub host: String,
    /// When the turn started, ms since the epoch; in JSON `started`, RFC 3339.
    #[serde(rename = "started", serialize_with = "ser_time")]
    pub started_ms: i64,
    /// The user's message.
    pub message: String,
    /// The origin of the page the user was on, if any.
    pub page_origin: Option<String>,
}

/// How a turn ended: what completes its row after the ssh call (and, in a
/// [`TurnRow`] still running, status `running` and nothing else).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    /// When the turn ended, ms since the epoch; in JSON `ended`, RFC 3339.
    /// `None` only while running ([`Store::finish_turn`] takes now then).
    #[serde(rename = "ended", serialize_with = "ser_opt_time")]
    pub ended_ms: Option<i64>,
    /// The final status.
    pub status: Status,
    /// The response without its trailer.
    pub response: Option<String>,
    /// An estimate, not a count: the reply's length in characters / 4. In
    /// JSON `estimated_tokens`; what the turn used is [`Outcome::usage`].
    #[serde(rename = "estimated_tokens")]
    pub tokens: Option<i64>,
    /// What the turn's model requests used, from the agent's transcript
    /// (the stream's `usage` event); `None` when not measured (no hooks, a
    /// plain `run-turn`, older rows), never an estimate.
    pub usage: Option<Usage>,
    /// Tools the agent used: from its events (distinct tool names, in the
    /// order first seen) when the turn streamed any, else the trailer's claim.
    pub used_tools: Vec<String>,
    /// The tools the trailer claims; `None` for a turn without a reply and
    /// for rows written before the log kept the claim.
    pub claimed_tools: Option<Vec<String>>,
    /// Rows the agent saw, from the trailer.
    pub rows_seen: Option<i64>,
    /// The classifier's tag, from the trailer.
    pub classifier_tag: Option<String>,
    /// How many chips the reply carried.
    pub chip_count: Option<i64>,
    /// A stable error code (PROTOCOL section 6) when the turn failed.
    pub error_code: Option<ErrorCode>,
    /// What went wrong, for people.
    pub error_detail: Option<String>,
    /// For `usage_limit`: when the subscription's limit resets, ms since
    /// the epoch; in JSON `resets_at`, RFC 3339. `None` when not known.
    #[serde(rename = "resets_at", serialize_with = "ser_opt_time")]
    pub resets_at_ms: Option<i64>,
}

impl Outcome {
    /// The outcome of a turn still running: nothing known yet.
    pub fn running() -> Outcome {
        Outcome {
            ended_ms: None,
            status: Status::Running,
            response: None,
            tokens: None,
            usage: None,
            used_tools: Vec::new(),
            claimed_tools: None,
            rows_seen: None,
            classifier_tag: None,
            chip_count: None,
            error_code: None,
            error_detail: None,
            resets_at_ms: None,
        }
    }

    /// A turn that ended at `ended_ms` with `code`: its status follows from
    /// the code ([`Status::of`]).
    pub fn failed(ended_ms: i64, code: ErrorCode, detail: impl Into<String>) -> Outcome {
        Outcome {
            ended_ms: Some(ended_ms),
            status: Status::of(Some(code)),
            error_code: Some(code),
            error_detail: Some(detail.into()),
            ..Outcome::running()
        }
    }
}

/// One row of `turns`: the turn as it was sent and how it ended (one flat
/// object in JSON). Times are ms since the epoch; JSON has them in RFC 3339.
/// The only description of a turn: `turn`, `poll`, `log` and the library's
/// [`crate::Client`] all give it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TurnRow {
    /// What [`Store::begin_turn`] wrote.
    #[serde(flatten)]
    pub turn: NewTurn,
    /// `ended_ms - started_ms`; `None` while running.
    pub duration_ms: Option<i64>,
    /// What [`Store::finish_turn`] wrote; status `running` until then.
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl TurnRow {
    /// The row that `turn` and `outcome` make, as the log keeps it.
    pub fn new(turn: NewTurn, outcome: Outcome) -> TurnRow {
        TurnRow {
            duration_ms: outcome.ended_ms.map(|e| e - turn.started_ms),
            turn,
            outcome,
        }
    }
}

/// A turn in full: its row and what the agent did, in order (the JSON of
/// `turn --json`, `poll --json` and `log show --json`, one object).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Turn {
    #[serde(flatten)]
    pub row: TurnRow,
    /// The agent's events (PROTOCOL section 7), never the `reply` line.
    pub events: Vec<Event>,
    /// Why the log could not keep this turn, if it could not: never part of
    /// the record (never in JSON), said once as a warning.
    #[serde(skip)]
    pub log_error: Option<String>,
}

/// One reachability check of a host's shim (`health`; `log probes` reads
/// them back): the only description of a probe.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Probe {
    /// The shim session name.
    pub session: String,
    /// The ssh destination.
    pub host: String,
    /// When the probe started, ms since the epoch; in JSON `at`, RFC 3339.
    #[serde(rename = "at", serialize_with = "ser_time")]
    pub at_ms: i64,
    /// How long it took.
    pub duration_ms: i64,
    /// Whether the shim answered.
    pub ok: bool,
    /// A stable error code (PROTOCOL section 6) when it did not.
    pub error_code: Option<ErrorCode>,
    /// What went wrong, for people.
    pub detail: Option<String>,
    /// The plan's windows the shim's status showed, when it did.
    #[serde(skip_serializing_if = "Windows::is_empty")]
    pub windows: Windows,
}

/// Which turns [`Store::list`] returns: all conditions must hold; newest
/// first, at most `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// At most this many rows.
    pub limit: usize,
    /// Only this user's turns.
    pub user_id: Option<Uuid>,
    /// Only this session's turns.
    pub session: Option<String>,
    /// Only turns with this status.
    pub status: Option<Status>,
    /// Only turns with this error code.
    pub error_code: Option<ErrorCode>,
    /// Only turns started at or after this time (ms since the epoch).
    pub since_ms: Option<i64>,
}

impl Filter {
    /// The limit of [`Filter::default`].
    pub const DEFAULT_LIMIT: usize = 20;
}

impl Default for Filter {
    /// Every turn, newest [`Filter::DEFAULT_LIMIT`] first.
    fn default() -> Filter {
        Filter {
            limit: Filter::DEFAULT_LIMIT,
            user_id: None,
            session: None,
            status: None,
            error_code: None,
            since_ms: None,
        }
    }
}

/// The process that writes a turn's row: what tells, later, whether it is
/// still there (PROTOCOL section 6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Its pid.
    pub pid: u32,
    /// Its start time ([`paliadin_core::process::start_time`]).
    pub start: u64,
    /// The boot it ran in ([`paliadin_core::process::boot_id`]).
    pub boot: String,
}

impl Owner {
    /// This process; `None` when the system does not tell (its rows are never taken for stale).
    pub fn current() -> Option<Owner> {
        let pid = std::process::id();
        Some(Owner {
            pid,
            start: paliadin_core::process::start_time(pid)?,
            boot: paliadin_core::process::boot_id()?,
        })
    }

    /// Whether this process still runs: same boot, and the pid is the same
    /// process (not one that reused it).
    pub fn alive(&self) -> bool {
        match paliadin_core::process::boot_id() {
            Some(b) if b == self.boot => {
                paliadin_core::process::start_time(self.pid) == Some(self.start)
            }
            // Another boot: nothing of it runs now. No boot id: cannot tell.
            Some(_) => false,
            None => true,
        }
    }
}

/// A row left `running` by a process that is gone ([`Store::stale_turns`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleTurn {
    pub turn_id: Uuid,
    pub session: String,
    pub owner: Owner,
}

/// The open turn log. One per process; not shared between threads.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    fn write(&mut self) -> Result<Transaction<'_>, StoreError> {
        Ok(self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?)
    }

    /// The database file (`:memory:` for [`Store::open_in_memory`]).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records a turn as `running`, written by this process ([`Owner`]).
    /// Call before the ssh call, so a crash leaves a trace.
    pub fn begin_turn(&mut self, turn: &NewTurn) -> Result<(), StoreError> {
        let owner = Owner::current();
        let tx = self.write()?;
        tx.execute(
            "INSERT INTO turns (turn_id, user_id, session, host, started_ms, message, \
             page_origin, status, owner_pid, owner_start, owner_boot) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                turn.turn_id.to_string(),
                turn.user_id.map(|u| u.to_string()),
                turn.session,
                turn.host,
                turn.started_ms,
                turn.message,
                turn.page_origin,
                Status::Running,
                owner.as_ref().map(|o| o.pid),
                owner.as_ref().map(|o| o.start as i64),
                owner.as_ref().map(|o| o.boot.clone()),
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Completes a turn: its end, duration (`ended_ms - started_ms`) and
    /// everything in `outcome`. May be called again (a `timeout` turn later
    /// collected by `poll` becomes `ok`); the last call wins.
    pub fn finish_turn(&mut self, turn_id: Uuid, outcome: &Outcome) -> Result<(), StoreError> {
        let tools = serde_json::to_string(&outcome.used_tools).unwrap_or_else(|_| "[]".into());
        let claimed = outcome
            .claimed_tools
            .as_ref()
            .map(|c| serde_json::to_string(c).unwrap_or_else(|_| "[]".into()));
        let ended = outcome
            .ended_ms
            .unwrap_or_else(paliadin_core::timefmt::now_ms);
        let u = outcome.usage.as_ref();
        let tx = self.write()?;
        let changed = tx.execute(
            "UPDATE turns SET ended_ms = ?2, duration_ms = ?2 - started_ms, status = ?3, \
             response = ?4, tokens = ?5, used_tools = ?6, rows_seen = ?7, \
             classifier_tag = ?8, chip_count = ?9, error_code = ?10, error_detail = ?11, \
             claimed_tools = ?12, input_tokens = ?13, output_tokens = ?14, \
             cache_read_tokens = ?15, cache_creation_tokens = ?16, model = ?17, \
             model_requests = ?18, resets_at_ms = ?19 WHERE turn_id = ?1",
            params![
                turn_id.to_string(),
                ended,
                outcome.status,
                outcome.response,
                outcome.tokens,
                tools,
                outcome.rows_seen,
                outcome.classifier_tag,
                outcome.chip_count,
                outcome.error_code.map(ErrorCode::as_str),
                outcome.error_detail,
                claimed,
                u.map(|u| u.input_tokens as i64),
                u.map(|u| u.output_tokens as i64),
                u.map(|u| u.cache_read_input_tokens as i64),
                u.map(|u| u.cache_creation_input_tokens as i64),
                u.and_then(|u| u.model.clone()),
                u.map(|u| u.requests as i64),
                outcome.resets_at_ms,
            ],
        )?;
        if changed == 0 {
            return Err(StoreError::UnknownTurn(turn_id));
        }
        tx.commit()?;
        Ok(())
    }

    /// The rows of `host` still `running` whose writer is gone (another
    /// boot, or no process with its pid and start time), oldest first. One
    /// query on the `(status, started_ms)` index; rows without an owner
    /// (written before schema 3) are never stale.
    pub fn stale_turns(&self, host: &str) -> Result<Vec<StaleTurn>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT turn_id, session, owner_pid, owner_start, owner_boot FROM turns \
             WHERE status = 'running' AND host = ?1 AND owner_pid IS NOT NULL \
             ORDER BY started_ms",
        )?;
        let rows = stmt.query_map([host], |r| {
            Ok((
                uuid_at(r, 0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<i64>>(3)?,
                r.get::<_, Option<String>>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, session, pid, start, boot) = row?;
            let (Some(turn_id), Ok(pid)) = (id, u32::try_from(pid)) else {
                continue;
            };
            let owner = Owner {
                pid,
                start: start.unwrap_or(0) as u64,
                boot: boot.unwrap_or_default(),
            };
            if !owner.alive() {
                out.push(StaleTurn {
                    turn_id,
                    session,
                    owner,
                });
            }
        }
        Ok(out)
    }

    /// Takes a stale row over: `running` becomes `pending` with
    /// `interrupted` and `detail`, so no other process takes it too and no
    /// later run asks for it again unasked. `false` when it is no longer
    /// `running` (another process took it first).
    pub fn claim_stale(&mut self, turn_id: Uuid, detail: &str) -> Result<bool, StoreError> {
        let now = paliadin_core::timefmt::now_ms();
        let tx = self.write()?;
        let changed = tx.execute(
            "UPDATE turns SET status = 'pending', error_code = 'interrupted', \
             error_detail = ?2, ended_ms = ?3, duration_ms = ?3 - started_ms \
             WHERE turn_id = ?1 AND status = 'running'",
            params![turn_id.to_string(), detail, now],
        )?;
        tx.commit()?;
        Ok(changed == 1)
    }

    /// Records what the agent did during a turn, in the order it came
    /// (after any events already recorded for it), in one transaction.
    pub fn record_events(&mut self, turn_id: Uuid, events: &[Event]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let tx = self.write()?;
        let (id, next): (i64, i64) = tx
            .query_row(
                "SELECT id, (SELECT COALESCE(MAX(seq) + 1, 0) FROM turn_events WHERE turn = turns.id) \
                 FROM turns WHERE turn_id = ?1",
                [turn_id.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?
            .ok_or(StoreError::UnknownTurn(turn_id))?;
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO turn_events (turn, seq, kind, at, tool, target, detail) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for (i, e) in events.iter().enumerate() {
                st.execute(params![
                    id,
                    next + i as i64,
                    e.kind.as_str(),
                    e.at,
                    e.tool,
                    e.target,
                    e.detail,
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The events recorded for a turn, in the order they came (empty for a
    /// turn without any, or one not in the log).
    pub fn events(&self, turn_id: Uuid) -> Result<Vec<Event>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT kind, at, tool, target, detail FROM turn_events \
             WHERE turn = (SELECT id FROM turns WHERE turn_id = ?1) ORDER BY seq",
        )?;
        let rows = st.query_map([turn_id.to_string()], |r| {
            Ok(Event {
                tool: r.get(2)?,
                target: r.get(3)?,
                detail: r.get(4)?,
                ..Event::new(
                    EventKind::parse(&r.get::<_, String>(0)?),
                    r.get::<_, String>(1)?,
                )
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// The turn with this id, if any.
    pub fn get(&self, turn_id: Uuid) -> Result<Option<TurnRow>, StoreError> {
        let sql = format!("SELECT {TURN_COLUMNS} FROM turns WHERE turn_id = ?1");
        Ok(self
            .conn
            .prepare_cached(&sql)?
            .query_row([turn_id.to_string()], turn_from_row)
            .optional()?)
    }

    /// The turn with this id in full: its row and its events.
    pub fn turn(&self, turn_id: Uuid) -> Result<Option<Turn>, StoreError> {
        let Some(row) = self.get(turn_id)? else {
            return Ok(None);
        };
        Ok(Some(Turn {
            row,
            events: self.events(turn_id)?,
            log_error: None,
        }))
    }

    /// The turns `filter` selects, newest first.
    pub fn list(&self, filter: &Filter) -> Result<Vec<TurnRow>, StoreError> {
        let (sql, args) = list_query(filter);
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params_from_iter(args), turn_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Full-text search over messages and responses, newest first. Any text
    /// is a safe query: each whitespace-separated word is matched as a
    /// literal phrase (case and diacritics ignored), and a turn must match
    /// every word.
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<TurnRow>, StoreError> {
        self.search_in(
            query,
            &Filter {
                limit,
                ..Filter::default()
            },
        )
    }

    /// [`Store::search`] among the turns `filter` selects, at most
    /// `filter.limit`. A word ending in `*` matches words that start with it.
    pub fn search_in(&self, query: &str, filter: &Filter) -> Result<Vec<TurnRow>, StoreError> {
        let fts = fts_query(query).ok_or(StoreError::EmptyQuery)?;
        let (where_, mut args) = conditions(filter, "");
        args.push(Value::Text(fts));
        args.push(Value::Integer(sql_limit(filter.limit)));
        let (m, l) = (args.len() - 1, args.len());
        // FTS5 walks its index backwards for `ORDER BY rowid DESC` and stops
        // at the limit, so a common word costs no more than a rare one.
        let sql = if where_.is_empty() {
            format!(
                "SELECT {TURN_COLUMNS} FROM turns JOIN (SELECT rowid AS hit FROM turns_fts \
                 WHERE turns_fts MATCH ?{m} ORDER BY rowid DESC LIMIT ?{l}) ON id = hit \
                 ORDER BY id DESC"
            )
        } else {
            format!(
                "SELECT {TURN_COLUMNS} FROM turns{where_} AND id IN (SELECT rowid FROM turns_fts \
                 WHERE turns_fts MATCH ?{m}) ORDER BY id DESC LIMIT ?{l}"
            )
        };
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params_from_iter(args), turn_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The ids of the turns whose id starts with `prefix` (lower-case hex
    /// and hyphens), at most `limit`, in id order.
    pub fn turn_ids_with_prefix(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<Uuid>, StoreError> {
        let prefix = prefix.to_ascii_lowercase();
        if prefix.is_empty() || !prefix.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            return Ok(Vec::new());
        }
        // A range on the unique index: every id with the prefix sorts
        // between the prefix and the prefix followed by the highest digit.
        let mut stmt = self.conn.prepare_cached(
            "SELECT turn_id FROM turns WHERE turn_id >= ?1 AND turn_id < ?2 \
             ORDER BY turn_id LIMIT ?3",
        )?;
        let ids = stmt
            .query_map(
                params![prefix, format!("{prefix}~"), sql_limit(limit)],
                |r| r.get::<_, String>(0),
            )?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ids.iter().filter_map(|s| Uuid::parse_str(s).ok()).collect())
    }

    /// How many turns and probes [`Store::prune`] would delete.
    pub fn prune_count(&self, older_than_ms: i64) -> Result<(i64, i64), StoreError> {
        let turns = self.conn.query_row(
            "SELECT count(*) FROM turns WHERE started_ms < ?1 AND status NOT IN ('running', 'pending')",
            [older_than_ms],
            |r| r.get(0),
        )?;
        let probes = self.conn.query_row(
            "SELECT count(*) FROM probes WHERE at_ms < ?1",
            [older_than_ms],
            |r| r.get(0),
        )?;
        Ok((turns, probes))
    }

    /// Deletes the turns started and the probes taken before `older_than_ms`
    /// (and the turns' search index entries), in one transaction. Returns
    /// the number of turns deleted.
    pub fn prune(&mut self, older_than_ms: i64) -> Result<(usize, usize), StoreError> {
        let tx = self.write()?;
        // Never a turn still running or pending: its client (or `poll`)
        // still writes its outcome.
        let turns = tx.execute(
            "DELETE FROM turns WHERE started_ms < ?1 AND status NOT IN ('running', 'pending')",
            [older_than_ms],
        )?;
        let probes = tx.execute("DELETE FROM probes WHERE at_ms < ?1", [older_than_ms])?;
        tx.commit()?;
        Ok((turns, probes))
    }

    /// Records one probe.
    pub fn record_probe(&mut self, probe: &Probe) -> Result<(), StoreError> {
        let tx = self.write()?;
        tx.execute(
            "INSERT INTO probes (session, host, at_ms, duration_ms, ok, error_code, detail, \
             five_hour_used, five_hour_resets_ms, seven_day_used, seven_day_resets_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                probe.session,
                probe.host,
                probe.at_ms,
                probe.duration_ms,
                probe.ok,
                probe.error_code.map(ErrorCode::as_str),
                probe.detail,
                probe.windows.five_hour.map(|w| w.used_percentage),
                probe.windows.five_hour.map(|w| w.resets_at * 1000),
                probe.windows.seven_day.map(|w| w.used_percentage),
                probe.windows.seven_day.map(|w| w.resets_at * 1000),
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The newest `limit` probes, newest first.
    pub fn probes(&self, limit: usize) -> Result<Vec<Probe>, StoreError> {
        self.probes_in(&ProbeScope::default(), limit)
    }

    /// The newest `limit` probes `scope` selects, newest first.
    pub fn probes_in(&self, scope: &ProbeScope, limit: usize) -> Result<Vec<Probe>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT session, host, at_ms, duration_ms, ok, error_code, detail, five_hour_used, \
             five_hour_resets_ms, seven_day_used, seven_day_resets_ms FROM probes \
             WHERE at_ms >= ?1 AND (?2 IS NULL OR session = ?2) AND (?3 IS NULL OR host = ?3) \
             ORDER BY at_ms DESC, id DESC LIMIT ?4",
        )?;
        let rows = stmt.query_map(
            params![
                scope.since_ms.unwrap_or(i64::MIN),
                scope.session,
                scope.host,
                sql_limit(limit)
            ],
            |r| {
                Ok(Probe {
                    session: r.get(0)?,
                    host: r.get(1)?,
                    at_ms: r.get(2)?,
                    duration_ms: r.get(3)?,
                    ok: r.get(4)?,
                    error_code: code_at(r, 5)?,
                    detail: r.get(6)?,
                    windows: Windows {
                        five_hour: window_at(r, 7)?,
                        seven_day: window_at(r, 9)?,
                    },
                })
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Which probes `log probes` reads: all conditions must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeScope {
    /// Only probes taken at or after this time (ms since the epoch).
    pub since_ms: Option<i64>,
    /// Only this session's probes.
    pub session: Option<String>,
    /// Only this host's probes.
    pub host: Option<String>,
}

fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// The SQL and arguments of [`Store::list`]. Every combination of filters is
/// served by an index in `started_ms` order, so no sort and no full scan:
/// see the test `every_filter_combination_uses_an_index`.
fn list_query(filter: &Filter) -> (String, Vec<Value>) {
    let (where_, mut args) = conditions(filter, "");
    args.push(Value::Integer(sql_limit(filter.limit)));
    let sql = format!(
        "SELECT {TURN_COLUMNS} FROM turns{where_} ORDER BY started_ms DESC, id DESC LIMIT ?{}",
        args.len()
    );
    (sql, args)
}

/// The ` WHERE ...` clause (empty without conditions) and its arguments for
/// `filter`'s conditions, numbered from `?1`; `prefix` qualifies columns.
fn conditions(filter: &Filter, prefix: &str) -> (String, Vec<Value>) {
    let mut conds: Vec<String> = Vec::new();
    let mut args: Vec<Value> = Vec::new();
    let mut push = |cond: &str, value: Value| {
        args.push(value);
        conds.push(format!("{prefix}{cond} ?{}", args.len()));
    };
    if let Some(user) = filter.user_id {
        push("user_id =", Value::Text(user.to_string()));
    }
    if let Some(session) = &filter.session {
        push("session =", Value::Text(session.clone()));
    }
    if let Some(status) = filter.status {
        push("status =", Value::Text(status.as_str().into()));
    }
    if let Some(code) = filter.error_code {
        push("error_code =", Value::Text(code.as_str().into()));
    }
    if let Some(since) = filter.since_ms {
        push("started_ms >=", Value::Integer(since));
    }
    let where_ = if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    };
    (where_, args)
}

/// Turns any user text into an FTS5 query that cannot be a syntax error:
/// each word (separated by whitespace or NUL) becomes a quoted string (embedded `"`
/// doubled), joined by spaces, which FTS5 reads as AND. `None` if blank.
fn fts_query(query: &str) -> Option<String> {
    // A NUL would end the query string early inside FTS5 (an "unterminated
    // string" error), so it separates words like whitespace does. A trailing
    // `*` after a word is FTS5's prefix query, outside the quotes.
    let terms: Vec<String> = query
        .split(|c: char| c.is_whitespace() || c == '\0')
        .filter(|t| !t.is_empty())
        .map(|t| match t.strip_suffix('*').filter(|w| !w.is_empty()) {
            Some(w) => format!("\"{}\"*", w.replace('"', "\"\"")),
            None => format!("\"{}\"", t.replace('"', "\"\"")),
        })
        .collect();
    (!terms.is_empty()).then(|| terms.join(" "))
}

fn conversion_error(
    col: usize,
    e: impl std::error::Error + Send + Sync + 'static,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(col, Type::Text, Box::new(e))
}

fn uuid_at(row: &Row<'_>, col: usize) -> rusqlite::Result<Option<Uuid>> {
    row.get::<_, Option<String>>(col)?
        .map(|s| Uuid::parse_str(&s).map_err(|e| conversion_error(col, e)))
        .transpose()
}

/// A stored error code. One this version does not know (written by a newer
/// client) reads as `shim_error` rather than making the whole row unreadable.
fn code_at(row: &Row<'_>, col: usize) -> rusqlite::Result<Option<ErrorCode>> {
    Ok(row
        .get::<_, Option<String>>(col)?
        .map(|c| ErrorCode::parse(&c).unwrap_or(ErrorCode::ShimError)))
}

/// The usage columns from `col` on (input, output, cache read, cache
/// creation, model, requests); `None` when the turn was not measured.
fn usage_at(row: &Row<'_>, col: usize) -> rusqlite::Result<Option<Usage>> {
    let Some(input) = row.get::<_, Option<i64>>(col)? else {
        return Ok(None);
    };
    let n = |k: usize| -> rusqlite::Result<u64> {
        Ok(row.get::<_, Option<i64>>(col + k)?.unwrap_or(0).max(0) as u64)
    };
    Ok(Some(Usage {
        input_tokens: input.max(0) as u64,
        output_tokens: n(1)?,
        cache_read_input_tokens: n(2)?,
        cache_creation_input_tokens: n(3)?,
        model: row.get(col + 4)?,
        requests: n(5)?,
    }))
}

/// A window of a probe's row: used percentage at `col`, reset (ms) after it.
fn window_at(row: &Row<'_>, col: usize) -> rusqlite::Result<Option<WindowUse>> {
    let used: Option<f64> = row.get(col)?;
    let resets: Option<i64> = row.get(col + 1)?;
    Ok(used.zip(resets).map(|(used_percentage, ms)| WindowUse {
        used_percentage,
        resets_at: ms.div_euclid(1000),
    }))
}

fn turn_from_row(row: &Row<'_>) -> rusqlite::Result<TurnRow> {
    let used_tools = match row.get::<_, Option<String>>(11)? {
        Some(json) => serde_json::from_str(&json).map_err(|e| conversion_error(11, e))?,
        None => Vec::new(),
    };
    let claimed_tools = row
        .get::<_, Option<String>>(18)?
        .map(|json| serde_json::from_str(&json).map_err(|e| conversion_error(18, e)))
        .transpose()?;
    Ok(TurnRow {
        turn: NewTurn {
            turn_id: uuid_at(row, 0)?.ok_or(rusqlite::Error::InvalidColumnType(
                0,
                "turn_id".into(),
                Type::Null,
            ))?,
            user_id: uuid_at(row, 1)?,
            session: row.get(2)?,
            host: row.get(3)?,
            started_ms: row.get(4)?,
            message: row.get(7)?,
            page_origin: row.get(8)?,
        },
        duration_ms: row.get(6)?,
        outcome: Outcome {
            ended_ms: row.get(5)?,
            status: row.get(15)?,
            response: row.get(9)?,
            tokens: row.get(10)?,
            used_tools,
            claimed_tools,
            rows_seen: row.get(12)?,
            classifier_tag: row.get(13)?,
            chip_count: row.get(14)?,
            error_code: code_at(row, 16)?,
            error_detail: row.get(17)?,
            usage: usage_at(row, 19)?,
            resets_at_ms: row.get(25)?,
        },
    })
}

// uuid is built without its `serde` feature; serialize ids as their
// hyphenated text, the same text the database holds.
fn ser_uuid<S: Serializer>(id: &Uuid, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(id)
}

// One timestamp form in all JSON output: RFC 3339, UTC, milliseconds.
fn ser_time<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&paliadin_core::timefmt::rfc3339_ms(*ms))
}

fn ser_opt_time<S: Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match ms {
        Some(ms) => ser_time(ms, s),
        None => s.serialize_none(),
    }
}

fn ser_opt_uuid<S: Serializer>(id: &Option<Uuid>, s: S) -> Result<S::Ok, S::Error> {
    match id {
        Some(id) => s.collect_str(id),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::schema::{bucket, sql_bucket, user_version, MIGRATIONS};
    use super::stats::rank;
    use super::*;
    use paliadin_core::timefmt::day_of_ms;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::{Arc, Barrier};
    use std::time::Duration;

    const T0: i64 = 1_700_000_000_000; // 2023-11-14T22:13:20Z

    fn new_turn(n: u128, session: &str, started_ms: i64, message: &str) -> NewTurn {
        NewTurn {
            turn_id: Uuid::from_u128(n),
            user_id: None,
            session: session.into(),
            host: "host-a".into(),
            started_ms,
            message: message.into(),
            page_origin: None,
        }
    }

    #[test]
    fn rows_of_a_process_that_is_gone_are_stale_once() {
        let mut store = Store::open_in_memory().unwrap();
        let me = Owner::current().expect("this test needs /proc");
        assert!(me.alive());
        for n in 1..=5 {
            store
                .begin_turn(&new_turn(n, "s", T0 + n as i64, "m"))
                .unwrap();
        }
        // 1: ours, alive. 2: another boot. 3: our pid, another start time
        // (a reused pid). 4: no owner (written before schema 3). 5: done.
        fn set(store: &Store, n: u128, sql: &str) {
            store
                .conn
                .execute(sql, [Uuid::from_u128(n).to_string()])
                .unwrap();
        }
        set(
            &store,
            2,
            "UPDATE turns SET owner_boot = 'another-boot' WHERE turn_id = ?1",
        );
        set(
            &store,
            3,
            "UPDATE turns SET owner_start = owner_start + 1 WHERE turn_id = ?1",
        );
        set(
            &store,
            4,
            "UPDATE turns SET owner_pid = NULL WHERE turn_id = ?1",
        );
        store
            .finish_turn(Uuid::from_u128(5), &outcome(T0 + 9, Status::Ok))
            .unwrap();
        let mut other_host = new_turn(6, "s", T0 + 6, "m");
        other_host.host = "host-b".into();
        store.begin_turn(&other_host).unwrap();
        set(
            &store,
            6,
            "UPDATE turns SET owner_boot = 'another-boot' WHERE turn_id = ?1",
        );
        let stale: Vec<u128> = store
            .stale_turns("host-a")
            .unwrap()
            .iter()
            .map(|t| t.turn_id.as_u128())
            .collect();
        assert_eq!(stale, [2, 3]);
        assert!(store.claim_stale(Uuid::from_u128(2), "gone").unwrap());
        assert!(!store.claim_stale(Uuid::from_u128(2), "gone").unwrap());
        let row = store.get(Uuid::from_u128(2)).unwrap().unwrap();
        assert_eq!(
            (row.outcome.status, row.outcome.error_code),
            (Status::Pending, Some(ErrorCode::Interrupted))
        );
        assert_eq!(store.stale_turns("host-a").unwrap().len(), 1);
    }

    #[test]
    fn usage_is_kept_per_turn_and_summed_per_day_alike_from_aggregates_and_turns() {
        let mut store = Store::open_in_memory().unwrap();
        let used = |input: u64, requests: u64| Usage {
            input_tokens: input,
            output_tokens: 2,
            cache_read_input_tokens: 30,
            cache_creation_input_tokens: 4,
            model: Some("m".into()),
            requests,
        };
        let day2 = T0 + DAY_MS;
        for (n, at, usage) in [
            (1, T0, Some(used(100, 1))),
            (2, T0 + 10, Some(used(50, 2))),
            (3, T0 + 20, None),
            (4, day2, Some(used(7, 1))),
        ] {
            store.begin_turn(&new_turn(n, "s", at, "m")).unwrap();
            let done = Outcome {
                usage,
                ..outcome(at + 5, Status::Ok)
            };
            store.finish_turn(Uuid::from_u128(n), &done).unwrap();
        }
        // A row not measured stays so: never an estimate.
        let row = store.get(Uuid::from_u128(3)).unwrap().unwrap();
        assert_eq!(row.outcome.usage, None);
        assert!(serde_json::to_value(&row).unwrap()["usage"].is_null());
        let all = store.stats(None).unwrap();
        let by_session = store
            .stats_in(&Filter {
                session: Some("s".into()),
                ..Filter::default()
            })
            .unwrap();
        for s in [&all, &by_session] {
            assert_eq!(
                s.usage,
                UsageTotals {
                    measured_turns: 3,
                    input_tokens: 157,
                    output_tokens: 6,
                    cache_read_input_tokens: 90,
                    cache_creation_input_tokens: 12,
                    requests: 4,
                }
            );
            assert_eq!(s.days[0].usage.input_tokens, 150);
            assert_eq!(s.days[0].usage.measured_turns, 2);
            assert_eq!(s.days[1].usage.input_tokens, 7);
        }
        // Mid-day: the part of the day before the aggregates, from the turns.
        let since = store.stats(Some(T0 + 5)).unwrap();
        assert_eq!(since.usage.input_tokens, 57);
        // A turn finished again (a poll) and one pruned: the sums follow.
        let again = Outcome {
            usage: Some(used(1, 1)),
            ..outcome(T0 + 50, Status::Ok)
        };
        store.finish_turn(Uuid::from_u128(1), &again).unwrap();
        assert_eq!(store.stats(None).unwrap().usage.input_tokens, 58);
        store.prune(day2).unwrap();
        let left = store.stats(None).unwrap().usage;
        assert_eq!((left.measured_turns, left.input_tokens), (1, 7));
    }

    fn outcome(ended_ms: i64, status: Status) -> Outcome {
        Outcome {
            ended_ms: Some(ended_ms),
            status,
            ..Outcome::running()
        }
    }

    fn failed(ended_ms: i64, code: &str) -> Outcome {
        Outcome {
            error_code: Some(ErrorCode::parse(code).expect("a known code")),
            ..outcome(ended_ms, Status::Error)
        }
    }

    fn cc(code: &str, turns: i64) -> CodeCount {
        CodeCount {
            code: code.into(),
            turns,
        }
    }

    fn ids(rows: &[TurnRow]) -> Vec<u128> {
        rows.iter().map(|r| r.turn.turn_id.as_u128()).collect()
    }

    fn fts_integrity(store: &Store) {
        store
            .conn
            .execute(
                "INSERT INTO turns_fts (turns_fts, rank) VALUES ('integrity-check', 1)",
                [],
            )
            .expect("the search index matches the turns table");
    }

    fn ev(kind: EventKind, tool: Option<&str>) -> Event {
        Event {
            tool: tool.map(str::to_owned),
            target: tool.map(|_| "a.csv".to_owned()),
            ..Event::new(kind, "2026-11-30T12:00:00.000Z")
        }
    }

    #[test]
    fn events_and_the_claim_are_kept_in_order_and_go_with_their_turn() {
        let mut store = Store::open_in_memory().unwrap();
        let t = new_turn(1, "s", T0, "hello");
        store.begin_turn(&t).unwrap();
        let first = [
            ev(EventKind::Submitted, None),
            ev(EventKind::ToolStarted, Some("Read")),
        ];
        let second = [
            ev(EventKind::ToolFinished, Some("Read")),
            ev(EventKind::Replied, None),
        ];
        store.record_events(t.turn_id, &first).unwrap();
        store.record_events(t.turn_id, &second).unwrap();
        let out = Outcome {
            used_tools: vec!["Read".into()],
            claimed_tools: Some(vec!["sql".into()]),
            ..outcome(T0 + 5, Status::Ok)
        };
        store.finish_turn(t.turn_id, &out).unwrap();
        let got = store.events(t.turn_id).unwrap();
        assert_eq!(got, [first.to_vec(), second.to_vec()].concat());
        let row = store.get(t.turn_id).unwrap().unwrap();
        assert_eq!(row.outcome.used_tools, ["Read"]);
        assert_eq!(row.outcome.claimed_tools, Some(vec!["sql".to_owned()]));
        let json = serde_json::to_value(&row).unwrap();
        assert_eq!(json["claimed_tools"], serde_json::json!(["sql"]));
        assert!(matches!(
            store.record_events(Uuid::from_u128(9), &first),
            Err(StoreError::UnknownTurn(_))
        ));
        // Pruning the turn takes its events with it.
        assert_eq!(store.prune(T0 + 1).unwrap().0, 1);
        let left: i64 = store
            .conn
            .query_row("SELECT count(*) FROM turn_events", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0);
    }

    #[test]
    fn rows_from_before_the_events_stay_readable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("turns.db");
        {
            // A database at schema 2, with a finished turn in it.
            let conn = Connection::open(&path).unwrap();
            let tx = conn.unchecked_transaction().unwrap();
            for sql in &MIGRATIONS[..2] {
                tx.execute_batch(sql).unwrap();
            }
            tx.pragma_update(None, "user_version", 2).unwrap();
            tx.execute(
                "INSERT INTO turns (turn_id, session, host, started_ms, ended_ms, duration_ms, \
                 message, response, used_tools, status) \
                 VALUES (?1, 's', 'h', 1, 2, 1, 'm', 'r', '[\"sql\"]', 'ok')",
                [Uuid::from_u128(7).to_string()],
            )
            .unwrap();
            tx.commit().unwrap();
        }
        let store = Store::open(&path).unwrap();
        let row = store.get(Uuid::from_u128(7)).unwrap().unwrap();
        assert_eq!(row.outcome.used_tools, ["sql"]);
        assert_eq!(row.outcome.claimed_tools, None);
        assert!(store.events(Uuid::from_u128(7)).unwrap().is_empty());
    }

    #[test]
    fn open_creates_private_files_and_migrates_twice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data/paliadin/turns.db");
        {
            let mut store = Store::open(&path).unwrap();
            assert_eq!(store.path(), path);
            store.begin_turn(&new_turn(1, "s", T0, "hello")).unwrap();
        }
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);

        let store = Store::open(&path).unwrap();
        assert_eq!(user_version(&store.conn).unwrap(), MIGRATIONS.len() as i64);
        assert!(store.get(Uuid::from_u128(1)).unwrap().is_some());
        let mode: String = store
            .conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let timeout: i64 = store
            .conn
            .pragma_query_value(None, "busy_timeout", |r| r.get(0))
            .unwrap();
        assert_eq!(timeout, 5000);
        let fk: i64 = store
            .conn
            .pragma_query_value(None, "foreign_keys", |r| r.get(0))
            .unwrap();
        assert_eq!(fk, 1);
        drop(store);

        // Migrating an up-to-date database again, inside the transaction,
        // is a no-op too.
        let mut store = Store::open(&path).unwrap();
        store.migrate().unwrap();
        store.conn.pragma_update(None, "user_version", 0).unwrap();
        assert!(
            store.migrate().is_err(),
            "re-running migration 1 must not silently pass"
        );
    }

    #[test]
    fn concurrent_first_open_of_a_fresh_file() {
        for round in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = Arc::new(dir.path().join("turns.db"));
            let threads = 6;
            let barrier = Arc::new(Barrier::new(threads));
            let handles: Vec<_> = (0..threads)
                .map(|i| {
                    let (path, barrier) = (Arc::clone(&path), Arc::clone(&barrier));
                    std::thread::spawn(move || {
                        barrier.wait();
                        let mut store = Store::open(&path)?;
                        store.begin_turn(&new_turn(i as u128 + 1, "s", T0 + i as i64, "hi"))
                    })
                })
                .collect();
            for h in handles {
                h.join()
                    .unwrap()
                    .unwrap_or_else(|e| panic!("round {round}: {e}"));
            }
            let store = Store::open(&path).unwrap();
            assert_eq!(store.list(&Filter::default()).unwrap().len(), threads);
        }
    }

    #[test]
    fn too_new_database_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("turns.db");
        let future = MIGRATIONS.len() as i64 + 1;
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE from_the_future (x); INSERT INTO from_the_future VALUES (1);",
            )
            .unwrap();
            conn.pragma_update(None, "user_version", future).unwrap();
        }
        let before = std::fs::read(&path).unwrap();
        let err = Store::open(&path).unwrap_err();
        match &err {
            StoreError::TooNew { found, known, .. } => {
                assert_eq!((*found, *known), (future, MIGRATIONS.len() as i64));
            }
            other => panic!("expected TooNew, got {other:?}"),
        }
        assert_eq!(
            err.to_string(),
            format!(
                "database {} has schema version {future}, newer than this paliadin-cli knows ({}): upgrade paliadin-cli",
                path.display(),
                MIGRATIONS.len()
            )
        );
        assert_eq!(std::fs::read(&path).unwrap(), before);
        let conn = Connection::open(&path).unwrap();
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "delete", "the journal mode was not switched");
    }

    #[test]
    fn begin_finish_get_round_trip() {
        let mut store = Store::open_in_memory().unwrap();
        let user = Uuid::from_u128(0xabc);
        let turn = NewTurn {
            user_id: Some(user),
            page_origin: Some("https://example.com".into()),
            ..new_turn(7, "sess", T0, "how were sales?")
        };
        store.begin_turn(&turn).unwrap();
        let row = store.get(turn.turn_id).unwrap().unwrap();
        assert_eq!(row.outcome.status, Status::Running);
        assert_eq!(
            (
                row.outcome.ended_ms,
                row.duration_ms,
                row.outcome.response.as_deref()
            ),
            (None, None, None)
        );
        assert!(row.outcome.used_tools.is_empty());
        assert_eq!(row.turn, turn, "the row holds the turn as it was begun");
        assert!(store.begin_turn(&turn).is_err(), "turn ids are unique");

        let done = Outcome {
            response: Some("up 3%".into()),
            tokens: Some(1234),
            usage: Some(Usage {
                input_tokens: 100,
                output_tokens: 20,
                cache_read_input_tokens: 5000,
                cache_creation_input_tokens: 300,
                model: Some("claude-opus-5-5".into()),
                requests: 2,
            }),
            used_tools: vec!["sql".into(), "chart".into()],
            rows_seen: Some(42),
            classifier_tag: Some("sales".into()),
            chip_count: Some(2),
            ..outcome(T0 + 1500, Status::Ok)
        };
        store.finish_turn(turn.turn_id, &done).unwrap();
        let row = store.get(turn.turn_id).unwrap().unwrap();
        let expected = TurnRow {
            turn: turn.clone(),
            duration_ms: Some(1500),
            outcome: done.clone(),
        };
        assert_eq!(row, expected);

        // In JSON, one flat object; times in RFC 3339.
        let json = serde_json::to_value(&row).unwrap();
        assert_eq!(json["turn_id"], turn.turn_id.to_string());
        assert_eq!(json["status"], "ok");
        assert_eq!(json["used_tools"], serde_json::json!(["sql", "chart"]));
        assert_eq!(json["started"], "2023-11-14T22:13:20.000Z");
        assert_eq!(json["ended"], "2023-11-14T22:13:21.500Z");
        assert_eq!(json["duration_ms"], 1500);
        assert_eq!(json["user_id"], user.to_string());

        let nobody = Uuid::from_u128(999);
        assert!(store.get(nobody).unwrap().is_none());
        let err = store.finish_turn(nobody, &done).unwrap_err();
        assert!(
            matches!(err, StoreError::UnknownTurn(id) if id == nobody),
            "{err:?}"
        );
    }

    #[test]
    fn status_names() {
        for st in Status::ALL {
            assert_eq!(st.as_str().parse::<Status>().unwrap(), st);
            assert_eq!(serde_json::to_value(st).unwrap(), st.as_str());
        }
        assert!("interrupted".parse::<Status>().is_err());
        assert!("OK".parse::<Status>().is_err());
    }

    #[test]
    fn check_constraint_refuses_unknown_status() {
        let store = Store::open_in_memory().unwrap();
        let res = store.conn.execute(
            "INSERT INTO turns (turn_id, session, host, started_ms, message, status) \
             VALUES ('x', 's', 'h', 0, 'm', 'interrupted')",
            [],
        );
        assert!(res.is_err());
    }

    fn filter_fixture() -> Store {
        let mut store = Store::open_in_memory().unwrap();
        let (u1, u2) = (Uuid::from_u128(0x100), Uuid::from_u128(0x200));
        // (n, user, session, start offset, outcome)
        let turns = [
            (1, Some(u1), "a", 0, Some(outcome(10, Status::Ok))),
            (2, Some(u2), "a", 1000, Some(failed(1010, "timeout"))),
            (3, Some(u1), "b", 2000, Some(failed(2010, "unreachable"))),
            (4, None, "b", 3000, Some(outcome(3010, Status::Pending))),
            (5, Some(u2), "a", 4000, None),
            (6, Some(u1), "a", 5000, Some(failed(5010, "timeout"))),
        ];
        for (n, user, session, off, out) in turns {
            let t = NewTurn {
                user_id: user,
                ..new_turn(n, session, T0 + off, "m")
            };
            store.begin_turn(&t).unwrap();
            if let Some(mut o) = out {
                o.ended_ms = o.ended_ms.map(|e| e + T0);
                store.finish_turn(t.turn_id, &o).unwrap();
            }
        }
        store
    }

    #[test]
    fn list_filters_newest_first() {
        let store = filter_fixture();
        let list = |f: Filter| ids(&store.list(&f).unwrap());
        assert_eq!(list(Filter::default()), [6, 5, 4, 3, 2, 1]);
        assert_eq!(
            list(Filter {
                limit: 2,
                ..Filter::default()
            }),
            [6, 5]
        );
        assert_eq!(
            list(Filter {
                limit: 0,
                ..Filter::default()
            }),
            Vec::<u128>::new()
        );
        assert_eq!(
            list(Filter {
                user_id: Some(Uuid::from_u128(0x100)),
                ..Filter::default()
            }),
            [6, 3, 1]
        );
        assert_eq!(
            list(Filter {
                session: Some("b".into()),
                ..Filter::default()
            }),
            [4, 3]
        );
        assert_eq!(
            list(Filter {
                status: Some(Status::Error),
                ..Filter::default()
            }),
            [6, 3, 2]
        );
        assert_eq!(
            list(Filter {
                status: Some(Status::Running),
                ..Filter::default()
            }),
            [5]
        );
        assert_eq!(
            list(Filter {
                error_code: Some(ErrorCode::Timeout),
                ..Filter::default()
            }),
            [6, 2]
        );
        assert_eq!(
            list(Filter {
                since_ms: Some(T0 + 3000),
                ..Filter::default()
            }),
            [6, 5, 4]
        );
        let all = Filter {
            limit: 10,
            user_id: Some(Uuid::from_u128(0x100)),
            session: Some("a".into()),
            status: Some(Status::Error),
            error_code: Some(ErrorCode::Timeout),
            since_ms: Some(T0 + 1),
        };
        assert_eq!(list(all), [6]);
        assert_eq!(
            list(Filter {
                session: Some("nope".into()),
                ..Filter::default()
            }),
            Vec::<u128>::new()
        );
    }

    #[test]
    fn every_filter_combination_uses_an_index() {
        let store = filter_fixture();
        for mask in 0..32u32 {
            let on = |bit: u32| mask & (1 << bit) != 0;
            let filter = Filter {
                limit: 20,
                user_id: on(0).then(|| Uuid::from_u128(1)),
                session: on(1).then(|| "a".to_string()),
                status: on(2).then_some(Status::Error),
                error_code: on(3).then_some(ErrorCode::Timeout),
                since_ms: on(4).then_some(T0),
            };
            let (sql, args) = list_query(&filter);
            let mut stmt = store
                .conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap();
            let plan: Vec<String> = stmt
                .query_map(params_from_iter(args), |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let text = plan.join("; ");
            assert!(!text.contains("TEMP B-TREE"), "{filter:?} sorts: {text}");
            assert!(
                plan.iter().all(|p| p.contains("INDEX")),
                "{filter:?} scans: {text}"
            );
        }
    }

    #[test]
    fn search_finds_words_newest_first() {
        let mut store = Store::open_in_memory().unwrap();
        store
            .begin_turn(&new_turn(1, "s", T0, "Umsätze im Mai für Zürich"))
            .unwrap();
        store
            .begin_turn(&new_turn(2, "s", T0 + 1, "revenue in May for Zurich"))
            .unwrap();
        store
            .begin_turn(&new_turn(3, "s", T0 + 2, "日本 の 売上"))
            .unwrap();
        store
            .begin_turn(&new_turn(4, "s", T0 + 3, "what is \"churn\"? (-rate)"))
            .unwrap();
        let done = Outcome {
            response: Some("Churn fell in Zurich".into()),
            ..outcome(T0 + 10, Status::Ok)
        };
        store.finish_turn(Uuid::from_u128(2), &done).unwrap();

        let search = |store: &Store, q: &str| ids(&store.search(q, 10).unwrap());
        assert_eq!(
            search(&store, "zurich"),
            [2, 1],
            "diacritics and case are ignored"
        );
        assert_eq!(search(&store, "ZÜRICH"), [2, 1]);
        assert_eq!(search(&store, "umsatze"), [1]);
        assert_eq!(
            search(&store, "churn"),
            [4, 2],
            "responses are searched too"
        );
        assert_eq!(search(&store, "churn zurich"), [2], "words are ANDed");
        assert_eq!(search(&store, "zurich   may\t"), [2]);
        assert_eq!(search(&store, "日本"), [3]);
        assert_eq!(search(&store, "\"churn\"?"), [4, 2]);
        assert_eq!(store.search("zurich", 1).unwrap().len(), 1);
        assert_eq!(search(&store, "absent"), Vec::<u128>::new());

        // A response replaced later is searched by its new text only.
        let again = Outcome {
            response: Some("nothing to see".into()),
            ..done
        };
        store.finish_turn(Uuid::from_u128(2), &again).unwrap();
        assert_eq!(search(&store, "churn"), [4]);
        fts_integrity(&store);
    }

    #[test]
    fn search_accepts_any_text() {
        let mut store = Store::open_in_memory().unwrap();
        store
            .begin_turn(&new_turn(
                1,
                "s",
                T0,
                "AND OR NOT ( ) * - \" ü 日本 NEAR(a b)",
            ))
            .unwrap();
        for q in [
            "-",
            "\"",
            "AND",
            "*",
            "OR NOT",
            "(",
            "ü",
            "日本",
            ")",
            "NEAR(",
            "a:b",
            "message:x",
            "^",
            "\"\"",
            "'",
            "a*",
            "-x",
            "{message}",
            "+",
            "a OR",
            "NOT",
            ":",
            "\\",
            "%",
            "a\u{0}b",
            "\u{7f}",
        ] {
            if let Err(e) = store.search(q, 10) {
                panic!("query {q:?}: {e}");
            }
        }
        assert_eq!(ids(&store.search("ü", 10).unwrap()), [1]);
        assert_eq!(ids(&store.search("日本", 10).unwrap()), [1]);
        assert_eq!(
            ids(&store.search("OR NOT", 10).unwrap()),
            [1],
            "operators are plain words"
        );
        for q in ["", " ", "\t\n ", "\u{0}"] {
            assert!(
                matches!(store.search(q, 10), Err(StoreError::EmptyQuery)),
                "{q:?}"
            );
        }
    }

    #[test]
    fn fts_query_quotes_every_word() {
        assert_eq!(fts_query("a \"b\" c").unwrap(), r#""a" """b""" "c""#);
        assert_eq!(fts_query("  x  ").unwrap(), "\"x\"");
        assert_eq!(fts_query(" \t"), None);
    }

    #[test]
    fn stats_on_a_known_set() {
        let mut store = Store::open_in_memory().unwrap();
        let day2 = T0 - T0.rem_euclid(DAY_MS) + DAY_MS; // midnight after T0
                                                        // Day 1: ten finished turns of 100..1000 ms, two errors; one running.
        for i in 0..10i64 {
            let t = new_turn(i as u128 + 1, "s", T0 + i, "m");
            store.begin_turn(&t).unwrap();
            let end = T0 + i + (i + 1) * 100;
            let out = match i {
                3 => failed(end, "timeout"),
                7 => failed(end, "unreachable"),
                _ => outcome(end, Status::Ok),
            };
            store.finish_turn(t.turn_id, &out).unwrap();
        }
        store.begin_turn(&new_turn(11, "s", T0 + 20, "m")).unwrap();
        // Day 2: one pending turn of 50 ms, one timeout of 5000 ms.
        let t = new_turn(12, "s", day2 + 5, "m");
        store.begin_turn(&t).unwrap();
        store
            .finish_turn(t.turn_id, &outcome(day2 + 55, Status::Pending))
            .unwrap();
        let t = new_turn(13, "s", day2 + 6, "m");
        store.begin_turn(&t).unwrap();
        store
            .finish_turn(t.turn_id, &failed(day2 + 5006, "timeout"))
            .unwrap();

        let s = store.stats(None).unwrap();
        assert_eq!(
            (s.total, s.ok, s.errors, s.pending, s.running),
            (13, 8, 3, 1, 1)
        );
        assert!((s.error_rate - 3.0 / 13.0).abs() < 1e-12);
        assert_eq!(s.by_code, [cc("timeout", 2), cc("unreachable", 1)]);
        // Finished durations: 50, 100..1000, 5000 (12 values). Median: 6th =
        // 500; p95: ceil(11.4) = 12th = 5000.
        assert_eq!((s.median_ms, s.p95_ms), (Some(500), Some(5000)));
        assert_eq!(
            s.days,
            [
                DayStats {
                    day: day_of_ms(T0),
                    total: 11,
                    errors: 2,
                    median_ms: Some(500), // 5th of 10
                    p95_ms: Some(1000),   // 10th of 10
                    usage: UsageTotals::default(),
                },
                DayStats {
                    day: day_of_ms(day2),
                    total: 2,
                    errors: 1,
                    median_ms: Some(50),
                    p95_ms: Some(5000),
                    usage: UsageTotals::default(),
                },
            ]
        );
        assert_eq!(s.days[0].day, "2023-11-14");

        let s = store.stats(Some(day2)).unwrap();
        assert_eq!(
            (s.total, s.ok, s.errors, s.pending, s.running),
            (2, 0, 1, 1, 0)
        );
        assert_eq!(s.by_code, [cc("timeout", 1)]);
        assert_eq!((s.median_ms, s.p95_ms), (Some(50), Some(5000)));
        assert_eq!(s.days.len(), 1);

        let s = store.stats(Some(day2 + DAY_MS)).unwrap();
        assert_eq!(
            (s.total, s.error_rate, s.median_ms, s.p95_ms),
            (0, 0.0, None, None)
        );
        assert!(s.by_code.is_empty() && s.days.is_empty());

        let empty = Store::open_in_memory().unwrap().stats(None).unwrap();
        assert_eq!((empty.total, empty.median_ms), (0, None));
    }

    #[test]
    fn aggregates_agree_with_the_turns_through_updates_and_prunes() {
        let mut store = Store::open_in_memory().unwrap();
        let mut rng = Lcg(3);
        for i in 0..600i64 {
            let started = T0 + i * 3_600_000 / 7 - 40 * DAY_MS / 10;
            let t = new_turn(i as u128 + 1, "s", started, "m");
            store.begin_turn(&t).unwrap();
            if i % 9 == 0 {
                continue; // stays running
            }
            let d = [3, 999, 1000, 1234, 99_999, 123_456][rng.below(6) as usize]
                + rng.below(5000) as i64;
            let out = match i % 5 {
                0 => failed(started + d, ["timeout", "blocked"][rng.below(2) as usize]),
                1 => outcome(started + d, Status::Pending),
                _ => outcome(started + d, Status::Ok),
            };
            store.finish_turn(t.turn_id, &out).unwrap();
            if i % 5 == 1 && i % 2 == 0 {
                // A pending turn collected later: its row is finished again.
                store
                    .finish_turn(t.turn_id, &outcome(started + d + 7, Status::Ok))
                    .unwrap();
            }
        }
        store.prune(T0 - 3 * DAY_MS).unwrap();
        let midnight = T0 - T0.rem_euclid(DAY_MS);
        for since in [
            None,
            Some(midnight - 2 * DAY_MS),
            Some(T0 - 2 * DAY_MS + 12_345_678),
            Some(T0 - DAY_MS),
        ] {
            let agg = store.stats_from_aggregates(since).unwrap();
            let mut scan = store
                .stats_from_turns(&Filter {
                    since_ms: since,
                    ..Filter::default()
                })
                .unwrap();
            // Bucketing is monotone: the bucket of a percentile is the
            // percentile of the buckets.
            scan.median_ms = scan.median_ms.map(bucket);
            scan.p95_ms = scan.p95_ms.map(bucket);
            for d in &mut scan.days {
                d.median_ms = d.median_ms.map(bucket);
                d.p95_ms = d.p95_ms.map(bucket);
            }
            assert!(agg.total > 0);
            assert_eq!(agg, scan, "since {since:?}");
        }
    }

    #[test]
    fn buckets_in_sql_and_rust_agree() {
        let store = Store::open_in_memory().unwrap();
        for x in [
            0i64,
            5,
            999,
            1000,
            1001,
            1239,
            9999,
            10_000,
            12_345,
            987_654,
            12_345_678_901,
        ] {
            let sql: i64 = store
                .conn
                .query_row(&format!("SELECT {}", sql_bucket("?1")), [x], |r| r.get(0))
                .unwrap();
            assert_eq!(sql, bucket(x), "{x}");
            assert!(bucket(x) <= x && (x - bucket(x)) * 1000 <= x * 25, "{x}");
        }
        assert_eq!(
            [1_234, 12_345, 23_456, 56_789, 999].map(bucket),
            [1_220, 12_200, 23_000, 56_000, 999]
        );
    }

    #[test]
    fn percentile_ranks() {
        assert_eq!([1, 2, 3, 4, 5].map(|n| rank(50, n)), [1, 1, 2, 2, 3]);
        assert_eq!(
            [1, 19, 20, 21, 100].map(|n| rank(95, n)),
            [1, 19, 19, 20, 95]
        );
    }

    #[test]
    fn prune_deletes_old_turns_probes_and_index_entries() {
        let mut store = Store::open_in_memory().unwrap();
        for i in 0..6i64 {
            let t = new_turn(
                i as u128 + 1,
                "s",
                T0 + i * 1000,
                &format!("word{i} common"),
            );
            store.begin_turn(&t).unwrap();
            let out = Outcome {
                response: Some("answer common".into()),
                ..outcome(T0 + i * 1000 + 5, Status::Ok)
            };
            store.finish_turn(t.turn_id, &out).unwrap();
            let probe = Probe {
                session: "s".into(),
                host: "h".into(),
                at_ms: T0 + i * 1000,
                duration_ms: 3,
                ok: i % 2 == 0,
                error_code: (i % 2 == 1).then_some(ErrorCode::Unreachable),
                detail: None,
                windows: Windows::default(),
            };
            store.record_probe(&probe).unwrap();
        }
        assert_eq!(store.prune(T0 + 3000).unwrap().0, 3);
        assert_eq!(store.prune(T0 + 3000).unwrap().0, 0);
        assert_eq!(ids(&store.list(&Filter::default()).unwrap()), [6, 5, 4]);
        assert_eq!(ids(&store.search("common", 10).unwrap()), [6, 5, 4]);
        assert!(store.search("word1", 10).unwrap().is_empty());
        let probes = store.probes(10).unwrap();
        assert_eq!(
            probes.iter().map(|p| p.at_ms - T0).collect::<Vec<_>>(),
            [5000, 4000, 3000]
        );
        fts_integrity(&store);
    }

    /// Issue 17: a prune during turns never deletes a row still running or
    /// pending (its client or `poll` still writes its outcome).
    #[test]
    fn prune_keeps_running_and_pending_turns() {
        let mut store = Store::open_in_memory().unwrap();
        let running = new_turn(1, "s", T0, "running");
        store.begin_turn(&running).unwrap();
        let pending = new_turn(2, "s", T0 + 1, "pending");
        store.begin_turn(&pending).unwrap();
        store
            .finish_turn(pending.turn_id, &outcome(T0 + 2, Status::Pending))
            .unwrap();
        let done = new_turn(3, "s", T0 + 2, "done");
        store.begin_turn(&done).unwrap();
        store
            .finish_turn(done.turn_id, &outcome(T0 + 3, Status::Ok))
            .unwrap();
        assert_eq!(store.prune_count(T0 + 10).unwrap().0, 1);
        assert_eq!(store.prune(T0 + 10).unwrap().0, 1);
        assert_eq!(ids(&store.list(&Filter::default()).unwrap()), [2, 1]);
    }

    #[test]
    fn probes_round_trip_newest_first() {
        let mut store = Store::open_in_memory().unwrap();
        let probe = |at: i64, ok: bool| Probe {
            session: "s".into(),
            host: "user@box".into(),
            at_ms: at,
            duration_ms: 12,
            ok,
            error_code: (!ok).then_some(ErrorCode::AuthFailed),
            detail: (!ok).then(|| "Permission denied (publickey)".into()),
            windows: Windows::default(),
        };
        store.record_probe(&probe(T0, true)).unwrap();
        store.record_probe(&probe(T0 + 2, false)).unwrap();
        store.record_probe(&probe(T0 + 1, true)).unwrap();
        assert_eq!(
            store.probes(10).unwrap(),
            [probe(T0 + 2, false), probe(T0 + 1, true), probe(T0, true)]
        );
        assert_eq!(store.probes(1).unwrap(), [probe(T0 + 2, false)]);
    }

    /// A deterministic generator, so the benchmark needs no `rand`.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            self.0 >> 33
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn vocabulary() -> Vec<String> {
        let common = "the of and to in for on with what how many which show me last week month \
            year sales revenue orders customers top products region total average by per compare \
            trend growth churn margin cost price store daily report list count new returning users \
            why did drop increase chart table filter between q1 q2 q3 q4 europe asia america";
        let mut words: Vec<String> = common.split_whitespace().map(String::from).collect();
        let syllables = [
            "ka", "lo", "mi", "ne", "ru", "ta", "vo", "shi", "den", "gar", "pel", "quo", "zen",
            "bri",
        ];
        let mut rng = Lcg(7);
        while words.len() < 5000 {
            let n = 2 + rng.below(3);
            let w: String = (0..n)
                .map(|_| syllables[rng.below(syllables.len() as u64) as usize])
                .collect();
            words.push(w);
        }
        words
    }

    fn sentence(rng: &mut Lcg, words: &[String], target: usize) -> String {
        let mut s = String::with_capacity(target + 16);
        while s.len() < target {
            // Skewed towards the first (common) words, with a long tail.
            let r = rng.below(1 << 20) as f64 / (1 << 20) as f64;
            let i = ((r * r * r) * words.len() as f64) as usize;
            if !s.is_empty() {
                s.push(' ');
            }
            s.push_str(&words[i.min(words.len() - 1)]);
        }
        s
    }

    #[test]
    #[ignore = "fills a database with a million turns; run in release with --ignored --nocapture"]
    fn million_rows_speed() {
        use std::time::Instant;
        const N: i64 = 1_000_000;
        const SPAN_MS: i64 = 90 * DAY_MS;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("turns.db");
        let mut store = Store::open(&path).unwrap();
        let words = vocabulary();
        let codes = [
            "timeout",
            "unreachable",
            "agent_error",
            "auth_failed",
            "blocked",
        ];
        let statuses = [Status::Ok, Status::Error, Status::Pending, Status::Running];
        let users: Vec<String> = (0..200u128)
            .map(|u| Uuid::from_u128(u + 1).to_string())
            .collect();
        let mut rng = Lcg(42);
        let fill = Instant::now();
        for batch in 0..(N / 100_000) {
            let tx = store.write().unwrap();
            {
                let mut ins = tx
                    .prepare(
                        "INSERT INTO turns (turn_id, user_id, session, host, started_ms, ended_ms, \
                         duration_ms, message, response, tokens, used_tools, status, error_code) \
                         VALUES (?1, ?2, ?3, 'host-a', ?4, ?5, ?6, ?7, ?8, ?9, '[\"sql\"]', ?10, ?11)",
                    )
                    .unwrap();
                for j in 0..100_000 {
                    let i = batch * 100_000 + j;
                    let started = T0 + i * (SPAN_MS / N);
                    let roll = rng.below(100);
                    let status = statuses[match roll {
                        0..=89 => 0,
                        90..=95 => 1,
                        96..=97 => 2,
                        _ => 3,
                    }];
                    let duration =
                        (status != Status::Running).then(|| 500 + rng.below(60_000) as i64);
                    let mut message = sentence(&mut rng, &words, 95);
                    if i % 100_000 == 777 {
                        message.push_str(" xylophonic");
                    }
                    let response = (status == Status::Ok).then(|| sentence(&mut rng, &words, 160));
                    let code = (status == Status::Error).then(|| codes[rng.below(5) as usize]);
                    ins.execute(params![
                        Uuid::from_u128(i as u128 + 1).to_string(),
                        users[rng.below(200) as usize],
                        format!("sess-{}", rng.below(50)),
                        started,
                        duration.map(|d| started + d),
                        duration,
                        message,
                        response,
                        duration.map(|d| d / 10),
                        status,
                        code,
                    ])
                    .unwrap();
                }
            }
            tx.commit().unwrap();
        }
        println!("fill: {:?} for {N} turns", fill.elapsed());
        drop(store);
        let size = std::fs::metadata(&path).unwrap().len();
        println!("database: {} MB", size / 1_000_000);

        let t = Instant::now();
        let store = Store::open(&path).unwrap();
        println!("open: {:?}", t.elapsed());
        let mut slow = Vec::new();
        let mut time = |name: &str, f: &mut dyn FnMut() -> usize| {
            f(); // warm the page cache and the statement cache once
            let t = Instant::now();
            let n = f();
            let el = t.elapsed();
            println!(
                "{name:<40} {:>10.3} ms  ({n} rows)",
                el.as_secs_f64() * 1000.0
            );
            if el > Duration::from_millis(100) {
                slow.push(name.to_string());
            }
        };
        let last = T0 + SPAN_MS;
        let filters = [
            ("list default", Filter::default()),
            (
                "list limit 1000",
                Filter {
                    limit: 1000,
                    ..Filter::default()
                },
            ),
            (
                "list session",
                Filter {
                    session: Some("sess-7".into()),
                    ..Filter::default()
                },
            ),
            (
                "list user",
                Filter {
                    user_id: Some(Uuid::from_u128(5)),
                    ..Filter::default()
                },
            ),
            (
                "list status=error",
                Filter {
                    status: Some(Status::Error),
                    ..Filter::default()
                },
            ),
            (
                "list status=running",
                Filter {
                    status: Some(Status::Running),
                    ..Filter::default()
                },
            ),
            (
                "list error_code=blocked",
                Filter {
                    error_code: Some(ErrorCode::Blocked),
                    ..Filter::default()
                },
            ),
            (
                "list since last day",
                Filter {
                    since_ms: Some(last - DAY_MS),
                    ..Filter::default()
                },
            ),
            (
                "list session+status=error",
                Filter {
                    session: Some("sess-7".into()),
                    status: Some(Status::Error),
                    ..Filter::default()
                },
            ),
            (
                "list user+error_code+since 30d",
                Filter {
                    user_id: Some(Uuid::from_u128(5)),
                    error_code: Some(ErrorCode::Timeout),
                    since_ms: Some(last - 30 * DAY_MS),
                    ..Filter::default()
                },
            ),
            (
                "list absent session",
                Filter {
                    session: Some("nope".into()),
                    ..Filter::default()
                },
            ),
        ];
        for (name, f) in &filters {
            time(name, &mut || store.list(f).unwrap().len());
        }
        for q in [
            "xylophonic",
            "the",
            "sales",
            "revenue europe",
            "the of and",
            "nonexistentword",
        ] {
            time(&format!("search {q:?} limit 20"), &mut || {
                store.search(q, 20).unwrap().len()
            });
        }
        let stats_time = |name: &str, since: Option<i64>| {
            let t = Instant::now();
            let s = store.stats(since).unwrap();
            println!(
                "{name:<40} {:>10.3} ms  (total {}, median {:?}, p95 {:?}, {} days)",
                t.elapsed().as_secs_f64() * 1000.0,
                s.total,
                s.median_ms,
                s.p95_ms,
                s.days.len()
            );
        };
        stats_time("stats all", None);
        stats_time("stats last 7 days", Some(last - 7 * DAY_MS));
        stats_time("stats last day", Some(last - DAY_MS));
        if !cfg!(debug_assertions) {
            assert!(slow.is_empty(), "over 100 ms: {slow:?}");
        }
    }
}
