//! `log stats` and `log probes`: totals, error codes and duration
//! percentiles per period and per UTC day, read from the aggregates the
//! schema's triggers keep (or from the turns when filtered by more than a
//! period), and the probes' availability and latency. Reads only.

use paliadin_core::timefmt::day_of_ms;
use rusqlite::params;
use rusqlite::params_from_iter;
use rusqlite::types::Value;
use serde::Serialize;

use super::schema::bucket;
use super::{conditions, Filter, ProbeScope, Status, Store, StoreError, DAY_MS};

/// Totals over the turns in a time range, from [`Store::stats`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    /// All turns.
    pub total: i64,
    /// Turns with status `ok`.
    pub ok: i64,
    /// Turns with status `error`.
    pub errors: i64,
    /// Turns with status `pending`.
    pub pending: i64,
    /// Turns with status `running`.
    pub running: i64,
    /// `errors / total`, 0 when there are no turns.
    pub error_rate: f64,
    /// Turns per error code (any status), most frequent first.
    pub by_code: Vec<CodeCount>,
    /// Median duration of finished turns (nearest rank).
    pub median_ms: Option<i64>,
    /// 95th percentile duration of finished turns (nearest rank).
    pub p95_ms: Option<i64>,
    /// One entry per UTC day that has turns, oldest first.
    pub days: Vec<DayStats>,
    /// What the measured turns' model requests used.
    pub usage: UsageTotals,
}

/// The usage of the turns whose usage was measured (PROTOCOL section 7's
/// `usage` event); the other turns count in none of it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UsageTotals {
    /// Turns with a measured usage.
    pub measured_turns: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_input_tokens: i64,
    pub cache_creation_input_tokens: i64,
    /// Model requests.
    pub requests: i64,
}

impl UsageTotals {
    fn add(&mut self, o: &UsageTotals) {
        self.measured_turns += o.measured_turns;
        self.input_tokens += o.input_tokens;
        self.output_tokens += o.output_tokens;
        self.cache_read_input_tokens += o.cache_read_input_tokens;
        self.cache_creation_input_tokens += o.cache_creation_input_tokens;
        self.requests += o.requests;
    }

    fn of_row(r: &rusqlite::Row<'_>, from: usize) -> rusqlite::Result<UsageTotals> {
        Ok(UsageTotals {
            measured_turns: r.get(from)?,
            input_tokens: r.get(from + 1)?,
            output_tokens: r.get(from + 2)?,
            cache_read_input_tokens: r.get(from + 3)?,
            cache_creation_input_tokens: r.get(from + 4)?,
            requests: r.get(from + 5)?,
        })
    }
}

/// The usage sums of a `SELECT` over turns, from `COUNT(input_tokens)` on.
const USAGE_SUMS: &str = "COUNT(input_tokens), COALESCE(SUM(input_tokens), 0), \
     COALESCE(SUM(output_tokens), 0), COALESCE(SUM(cache_read_tokens), 0), \
     COALESCE(SUM(cache_creation_tokens), 0), COALESCE(SUM(model_requests), 0)";

impl Stats {
    /// The totals of turns counted per status (in [`Status::ALL`]'s order).
    fn new(
        [running, ok, errors, pending]: [i64; 4],
        by_code: Vec<CodeCount>,
        (median_ms, p95_ms): (Option<i64>, Option<i64>),
        days: Vec<DayStats>,
    ) -> Stats {
        let total = running + ok + errors + pending;
        Stats {
            total,
            ok,
            errors,
            pending,
            running,
            error_rate: rate(errors, total),
            by_code,
            median_ms,
            p95_ms,
            days,
            usage: UsageTotals::default(),
        }
    }

    /// Adds the usage of each UTC day (`day` = ms / [`DAY_MS`]).
    fn with_usage(mut self, per_day: std::collections::BTreeMap<i64, UsageTotals>) -> Stats {
        for (day, u) in per_day {
            self.usage.add(&u);
            let name = day_of_ms(day * DAY_MS);
            if let Some(d) = self.days.iter_mut().find(|d| d.day == name) {
                d.usage.add(&u);
            }
        }
        self
    }
}

/// How many turns carried one error code, in [`Stats`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CodeCount {
    /// The error code (PROTOCOL section 6).
    pub code: String,
    /// How many turns carry it.
    pub turns: i64,
}

/// Health probes over a period, from [`Store::probe_stats`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeStats {
    /// All probes.
    pub probes: i64,
    /// Probes that found the shim healthy.
    pub ok: i64,
    /// `ok / probes`; `None` without probes.
    pub availability: Option<f64>,
    /// Median duration of all probes (nearest rank).
    pub median_ms: Option<i64>,
    /// 95th percentile duration (nearest rank).
    pub p95_ms: Option<i64>,
    /// Failed probes per error code, most frequent first.
    pub by_code: Vec<CodeCount>,
}

/// One UTC day of [`Stats`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayStats {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    /// Turns started that day.
    pub total: i64,
    /// Of those, turns with status `error`.
    pub errors: i64,
    /// Median duration of that day's finished turns (nearest rank).
    pub median_ms: Option<i64>,
    /// 95th percentile duration of that day's finished turns (nearest rank).
    pub p95_ms: Option<i64>,
    /// What that day's measured turns used.
    pub usage: UsageTotals,
}

impl Store {
    /// Totals, error codes and durations of the turns started at or after
    /// `since_ms` (all turns when `None`), overall and per UTC day.
    pub fn stats(&self, since_ms: Option<i64>) -> Result<Stats, StoreError> {
        self.stats_in(&Filter {
            since_ms,
            ..Filter::default()
        })
    }

    /// [`Store::stats`] of the turns `filter` selects (its limit aside).
    /// A period alone is read from the aggregates the triggers keep (whole
    /// days) plus the turns of the part of a day before them, so its cost
    /// does not grow with the number of turns; durations of 1 s and more are
    /// then given within 2.5 % (rounded down). Any other filter reads the turns.
    pub fn stats_in(&self, filter: &Filter) -> Result<Stats, StoreError> {
        let by_period_only = filter.user_id.is_none()
            && filter.session.is_none()
            && filter.status.is_none()
            && filter.error_code.is_none();
        if by_period_only {
            let usage = self.usage_from_aggregates(filter.since_ms)?;
            Ok(self
                .stats_from_aggregates(filter.since_ms)?
                .with_usage(usage))
        } else {
            let usage = self.usage_from_turns(filter)?;
            Ok(self.stats_from_turns(filter)?.with_usage(usage))
        }
    }

    /// The usage per UTC day since `since_ms`: whole days from the
    /// aggregate the triggers keep, the part of a day before them from the
    /// turns.
    fn usage_from_aggregates(
        &self,
        since_ms: Option<i64>,
    ) -> Result<std::collections::BTreeMap<i64, UsageTotals>, StoreError> {
        let mut out: std::collections::BTreeMap<i64, UsageTotals> = Default::default();
        let first_day = since_ms.map_or(i64::MIN, |t| {
            t.div_euclid(DAY_MS) + i64::from(t.rem_euclid(DAY_MS) != 0)
        });
        if let Some(t) = since_ms.filter(|&t| t < first_day * DAY_MS) {
            let u = self
                .conn
                .prepare_cached(&format!(
                    "SELECT {USAGE_SUMS} FROM turns WHERE started_ms >= ?1 AND started_ms < ?2"
                ))?
                .query_row(params![t, first_day * DAY_MS], |r| {
                    UsageTotals::of_row(r, 0)
                })?;
            if u.measured_turns > 0 {
                out.entry(t.div_euclid(DAY_MS)).or_default().add(&u);
            }
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT day, turns, input_tokens, output_tokens, cache_read_tokens, \
             cache_creation_tokens, model_requests FROM turn_usage WHERE day >= ?1 AND turns > 0",
        )?;
        let mut rows = stmt.query([first_day])?;
        while let Some(r) = rows.next()? {
            out.entry(r.get(0)?)
                .or_default()
                .add(&UsageTotals::of_row(r, 1)?);
        }
        Ok(out)
    }

    /// The usage per UTC day of the turns `filter` selects.
    fn usage_from_turns(
        &self,
        filter: &Filter,
    ) -> Result<std::collections::BTreeMap<i64, UsageTotals>, StoreError> {
        let (where_, args) = conditions(filter, "");
        let cond = where_.strip_prefix(" WHERE ").unwrap_or("1").to_owned();
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT started_ms / {DAY_MS} - (started_ms % {DAY_MS} < 0), {USAGE_SUMS} \
             FROM turns WHERE input_tokens IS NOT NULL AND {cond} GROUP BY 1"
        ))?;
        let mut rows = stmt.query(params_from_iter(&args))?;
        let mut out = std::collections::BTreeMap::new();
        while let Some(r) = rows.next()? {
            out.insert(r.get::<_, i64>(0)?, UsageTotals::of_row(r, 1)?);
        }
        Ok(out)
    }

    pub(super) fn stats_from_aggregates(&self, since_ms: Option<i64>) -> Result<Stats, StoreError> {
        let mut acc = StatsAcc::default();
        // The first day the aggregates count whole.
        let first_day = since_ms.map_or(i64::MIN, |t| {
            t.div_euclid(DAY_MS) + i64::from(t.rem_euclid(DAY_MS) != 0)
        });
        if let Some(t) = since_ms.filter(|&t| t < first_day * DAY_MS) {
            let mut stmt = self.conn.prepare_cached(
                "SELECT status, error_code, duration_ms FROM turns \
                 WHERE started_ms >= ?1 AND started_ms < ?2",
            )?;
            let mut rows = stmt.query(params![t, first_day * DAY_MS])?;
            let day = t.div_euclid(DAY_MS);
            let mut hist: std::collections::BTreeMap<i64, i64> = Default::default();
            while let Some(r) = rows.next()? {
                let status: Status = r.get(0)?;
                let code: Option<String> = r.get(1)?;
                acc.count(day, status, code.as_deref().unwrap_or(""), 1);
                if let Some(d) = r.get::<_, Option<i64>>(2)? {
                    *hist.entry(bucket(d)).or_default() += 1;
                }
            }
            for (b, n) in hist {
                acc.duration(day, b, n);
            }
        }
        // Running turns are few and not in the aggregates: from the turns.
        let whole_days_from = first_day.saturating_mul(DAY_MS);
        let mut stmt = self.conn.prepare_cached(
            "SELECT started_ms FROM turns WHERE status = 'running' AND started_ms >= ?1",
        )?;
        let mut rows = stmt.query([whole_days_from])?;
        while let Some(r) = rows.next()? {
            let t: i64 = r.get(0)?;
            acc.count(t.div_euclid(DAY_MS), Status::Running, "", 1);
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT day, status, error_code, turns FROM turn_counts \
             WHERE day >= ?1 AND turns > 0",
        )?;
        let mut rows = stmt.query([first_day])?;
        while let Some(r) = rows.next()? {
            let code: String = r.get(2)?;
            acc.count(r.get(0)?, r.get(1)?, &code, r.get(3)?);
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT day, bucket, turns FROM turn_durations \
             WHERE day >= ?1 AND turns > 0 ORDER BY day, bucket",
        )?;
        let mut rows = stmt.query([first_day])?;
        while let Some(r) = rows.next()? {
            acc.duration(r.get(0)?, r.get(1)?, r.get(2)?);
        }
        Ok(acc.finish())
    }

    pub(super) fn stats_from_turns(&self, filter: &Filter) -> Result<Stats, StoreError> {
        let (where_, args) = conditions(filter, "");
        let cond = where_.strip_prefix(" WHERE ").unwrap_or("1").to_owned();
        let (ok, errors, pending, running, finished): (i64, i64, i64, i64, i64) = self
            .conn
            .prepare_cached(&format!(
                "SELECT COALESCE(SUM(status = 'ok'), 0), \
                 COALESCE(SUM(status = 'error'), 0), COALESCE(SUM(status = 'pending'), 0), \
                 COALESCE(SUM(status = 'running'), 0), COUNT(duration_ms) \
                 FROM turns WHERE {cond}"
            ))?
            .query_row(params_from_iter(&args), |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?;

        let by_code = self
            .conn
            .prepare_cached(&format!(
                "SELECT error_code, COUNT(*) FROM turns \
                 WHERE error_code IS NOT NULL AND {cond} \
                 GROUP BY error_code ORDER BY COUNT(*) DESC, error_code"
            ))?
            .query_map(params_from_iter(&args), |r| {
                Ok(CodeCount {
                    code: r.get(0)?,
                    turns: r.get(1)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;

        let (median_ms, p95_ms) = self.percentiles_of_turns(&cond, &args, finished)?;
        let days = self.days_of_turns(&cond, &args)?;

        Ok(Stats::new(
            [running, ok, errors, pending],
            by_code,
            (median_ms, p95_ms),
            days,
        ))
    }

    /// The median and 95th percentile duration of the turns `cond` selects.
    fn percentiles_of_turns(
        &self,
        cond: &str,
        args: &[Value],
        finished: i64,
    ) -> Result<(Option<i64>, Option<i64>), StoreError> {
        // Nearest rank: the smallest value with at least p% of the values at
        // or below it, i.e. the ceil(p * n / 100)-th in ascending order.
        let (mut median_ms, mut p95_ms) = (None, None);
        if finished > 0 {
            let (k50, k95) = (rank(50, finished), rank(95, finished));
            let mut stmt = self.conn.prepare_cached(&format!(
                "SELECT rn, x FROM (SELECT duration_ms AS x, \
                 ROW_NUMBER() OVER (ORDER BY duration_ms) AS rn \
                 FROM turns WHERE duration_ms IS NOT NULL AND {cond}) \
                 WHERE rn IN (?{a}, ?{b})",
                a = args.len() + 1,
                b = args.len() + 2,
            ))?;
            let all = args
                .iter()
                .cloned()
                .chain([Value::Integer(k50), Value::Integer(k95)]);
            let mut rows = stmt.query(params_from_iter(all))?;
            while let Some(row) = rows.next()? {
                let (rn, x): (i64, i64) = (row.get(0)?, row.get(1)?);
                if rn == k50 {
                    median_ms = Some(x);
                }
                if rn == k95 {
                    p95_ms = Some(x);
                }
            }
        }

        Ok((median_ms, p95_ms))
    }

    /// Per UTC day, the totals and durations of the turns `cond` selects.
    fn days_of_turns(&self, cond: &str, args: &[Value]) -> Result<Vec<DayStats>, StoreError> {
        // Per day, all in SQL so only one row per day comes back. NULL
        // durations sort first, so a finished turn's rank within its day is
        // its row number minus the day's unfinished turns. The rank formula
        // is `rank` below, in integers.
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT d, COUNT(*), COALESCE(SUM(status = 'error'), 0), \
                 MAX(CASE WHEN rn = (50 * n + 99) / 100 THEN x END), \
                 MAX(CASE WHEN rn = (95 * n + 99) / 100 THEN x END) \
                 FROM (SELECT d, status, x, n, \
                   ROW_NUMBER() OVER (PARTITION BY d ORDER BY x) - (all_n - n) AS rn \
                   FROM (SELECT d, status, x, \
                     COUNT(x) OVER (PARTITION BY d) AS n, \
                     COUNT(*) OVER (PARTITION BY d) AS all_n \
                     FROM (SELECT started_ms / {DAY_MS} - (started_ms % {DAY_MS} < 0) AS d, \
                       status, duration_ms AS x FROM turns WHERE {cond}))) \
                 GROUP BY d ORDER BY d"
            ))?
            .query_map(params_from_iter(args), |r| {
                Ok(DayStats {
                    day: day_of_ms(r.get::<_, i64>(0)? * DAY_MS),
                    total: r.get(1)?,
                    errors: r.get(2)?,
                    median_ms: r.get(3)?,
                    p95_ms: r.get(4)?,
                    usage: UsageTotals::default(),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?)
    }

    /// Availability and latency of the probes `scope` selects, one entry
    /// per host (in host order): two laptops are never averaged together.
    pub fn probe_stats(&self, scope: &ProbeScope) -> Result<Vec<HostProbes>, StoreError> {
        let mut hosts: std::collections::BTreeMap<String, ProbeAcc> = Default::default();
        let mut stmt = self.conn.prepare_cached(
            "SELECT host, duration_ms, ok, error_code FROM probes \
             WHERE at_ms >= ?1 AND (?2 IS NULL OR session = ?2) AND (?3 IS NULL OR host = ?3)",
        )?;
        let mut rows = stmt.query(params![
            scope.since_ms.unwrap_or(i64::MIN),
            scope.session,
            scope.host
        ])?;
        while let Some(r) = rows.next()? {
            let acc = hosts.entry(r.get(0)?).or_default();
            acc.durations.push(r.get(1)?);
            if r.get::<_, bool>(2)? {
                acc.ok += 1;
            } else {
                let code: Option<String> = r.get(3)?;
                *acc.codes
                    .entry(code.unwrap_or_else(|| "shim_error".into()))
                    .or_default() += 1;
            }
        }
        Ok(hosts
            .into_iter()
            .map(|(host, acc)| HostProbes {
                host,
                stats: acc.finish(),
            })
            .collect())
    }
}

/// The probes of one host, in [`Store::probe_stats`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostProbes {
    /// The ssh destination (`local` for the local transport).
    pub host: String,
    #[serde(flatten)]
    pub stats: ProbeStats,
}

#[derive(Default)]
struct ProbeAcc {
    durations: Vec<i64>,
    ok: i64,
    codes: std::collections::BTreeMap<String, i64>,
}

impl ProbeAcc {
    fn finish(mut self) -> ProbeStats {
        self.durations.sort_unstable();
        let n = self.durations.len() as i64;
        let at = |p: i64| (n > 0).then(|| self.durations[(rank(p, n) - 1) as usize]);
        ProbeStats {
            probes: n,
            ok: self.ok,
            availability: (n > 0).then(|| self.ok as f64 / n as f64),
            median_ms: at(50),
            p95_ms: at(95),
            by_code: by_count(self.codes),
        }
    }
}

/// Code counts, most frequent first (then by code), without zero counts.
fn by_count(codes: impl IntoIterator<Item = (String, i64)>) -> Vec<CodeCount> {
    let mut by_code: Vec<CodeCount> = codes
        .into_iter()
        .filter(|&(_, n)| n > 0)
        .map(|(code, turns)| CodeCount { code, turns })
        .collect();
    by_code.sort_by(|a, b| b.turns.cmp(&a.turns).then(a.code.cmp(&b.code)));
    by_code
}

/// Sums of aggregate rows into [`Stats`]. Durations arrive per day in
/// ascending bucket order.
#[derive(Default)]
struct StatsAcc {
    by_status: [i64; 4],
    codes: std::collections::HashMap<String, i64>,
    days: std::collections::BTreeMap<i64, DayAcc>,
    hist: std::collections::HashMap<i64, i64>,
}

#[derive(Default)]
struct DayAcc {
    total: i64,
    errors: i64,
    hist: Vec<(i64, i64)>,
}

/// The nearest-rank percentiles (50th, 95th) of a histogram in ascending order.
fn hist_percentiles(hist: &[(i64, i64)]) -> (Option<i64>, Option<i64>) {
    let n: i64 = hist.iter().map(|&(_, c)| c).sum();
    if n == 0 {
        return (None, None);
    }
    let at = |k: i64| {
        let mut seen = 0;
        hist.iter()
            .find(|&&(_, c)| {
                seen += c;
                seen >= k
            })
            .map(|&(b, _)| b)
    };
    (at(rank(50, n)), at(rank(95, n)))
}

impl StatsAcc {
    fn count(&mut self, day: i64, status: Status, code: &str, n: i64) {
        let i = Status::ALL.iter().position(|s| *s == status).unwrap_or(0);
        self.by_status[i] += n;
        if !code.is_empty() {
            *self.codes.entry(code.to_owned()).or_default() += n;
        }
        let d = self.days.entry(day).or_default();
        d.total += n;
        if status == Status::Error {
            d.errors += n;
        }
    }

    fn duration(&mut self, day: i64, bucket: i64, n: i64) {
        *self.hist.entry(bucket).or_default() += n;
        let h = &mut self.days.entry(day).or_default().hist;
        match h.last_mut() {
            Some((b, c)) if *b == bucket => *c += n,
            _ => h.push((bucket, n)),
        }
    }

    fn finish(self) -> Stats {
        let by_code = by_count(self.codes);
        let mut hist: Vec<(i64, i64)> = self.hist.into_iter().collect();
        hist.sort_unstable();
        let (median_ms, p95_ms) = hist_percentiles(&hist);
        let days = self
            .days
            .into_iter()
            .filter(|(_, d)| d.total > 0)
            .map(|(day, d)| {
                let (median_ms, p95_ms) = hist_percentiles(&d.hist);
                DayStats {
                    day: day_of_ms(day * DAY_MS),
                    total: d.total,
                    errors: d.errors,
                    median_ms,
                    p95_ms,
                    usage: UsageTotals::default(),
                }
            })
            .collect();
        Stats::new(self.by_status, by_code, (median_ms, p95_ms), days)
    }
}

/// `part / total`, 0 when there is nothing.
fn rate(part: i64, total: i64) -> f64 {
    if total == 0 {
        0.0
    } else {
        part as f64 / total as f64
    }
}

/// The 1-based nearest rank of the `percent`th percentile among `n` values.
pub(super) fn rank(percent: i64, n: i64) -> i64 {
    (percent * n + 99) / 100
}
