//! `log` and its subcommands: the turn table, one turn in full, full-text
//! search, statistics, pruning and the database's path. Reads the store
//! only (prune aside); never calls the shim.

use anyhow::Context as _;
use paliadin_core::timefmt::{now_ms, parse_duration, parse_since, rfc3339_ms};

use crate::cli::{LogArgs, LogCommand, LogList};
use crate::cmd::{out, App};
use crate::exit;
use crate::store::{Filter, Status, TurnRow};

fn when(ms: i64) -> String {
    let t = rfc3339_ms(ms);
    format!("{} {}", &t[..10], &t[11..19])
}

fn one_line(s: &str, width: usize) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let flat = flat.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= width {
        flat
    } else {
        let mut t: String = flat.chars().take(width.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Renders rows as a table, JSON or JSON lines.
fn print_rows(rows: &[TurnRow], json: bool, jsonl: bool) -> anyhow::Result<()> {
    let mut text = String::new();
    if json {
        text = serde_json::to_string_pretty(rows)?;
        text.push('\n');
    } else if jsonl {
        for r in rows {
            text.push_str(&serde_json::to_string(r)?);
            text.push('\n');
        }
    } else {
        text.push_str(&format!(
            "{:<36}  {:<19}  {:<7}  {:<17}  {:>8}  {:<24}  {}\n",
            "TURN", "STARTED (UTC)", "STATUS", "CODE", "MS", "SESSION", "MESSAGE"
        ));
        for r in rows {
            text.push_str(&format!(
                "{:<36}  {:<19}  {:<7}  {:<17}  {:>8}  {:<24}  {}\n",
                r.turn_id,
                when(r.started_ms),
                r.status.as_str(),
                r.error_code.as_deref().unwrap_or("-"),
                r.duration_ms
                    .map(|d| d.to_string())
                    .unwrap_or_else(|| "-".into()),
                one_line(&r.session, 24),
                one_line(&r.message, 60),
            ));
        }
    }
    out(&text)
}

fn filter(l: &LogList) -> anyhow::Result<Filter> {
    Ok(Filter {
        limit: l.limit,
        user_id: l.user,
        session: l.session.clone(),
        status: l
            .status
            .as_deref()
            .map(|s| s.parse::<Status>().map_err(anyhow::Error::msg))
            .transpose()
            .context("--status")?,
        error_code: l.code.clone(),
        since_ms: l
            .since
            .as_deref()
            .map(|s| parse_since(s, now_ms()))
            .transpose()
            .map_err(anyhow::Error::msg)
            .context("--since")?,
    })
}

fn show(r: &TurnRow) -> String {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let num = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_else(|| "-".into());
    format!(
        "turn:           {}\nsession:        {}\nuser:           {}\nhost:           {}\nstarted:        {}\nended:          {}\nduration ms:    {}\nstatus:         {}\nerror:          {}{}\npage origin:    {}\ntokens:         {}\nused tools:     {}\nrows seen:      {}\nclassifier tag: {}\nchips:          {}\n\n--- message ---\n{}\n\n--- response ---\n{}\n",
        r.turn_id,
        r.session,
        r.user_id.map(|u| u.to_string()).unwrap_or_else(|| "-".into()),
        r.host,
        rfc3339_ms(r.started_ms),
        r.ended_ms.map(rfc3339_ms).unwrap_or_else(|| "-".into()),
        num(r.duration_ms),
        r.status.as_str(),
        opt(&r.error_code),
        r.error_detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default(),
        opt(&r.page_origin),
        num(r.tokens),
        if r.used_tools.is_empty() { "-".into() } else { r.used_tools.join(", ") },
        num(r.rows_seen),
        opt(&r.classifier_tag),
        num(r.chip_count),
        r.message,
        r.response.as_deref().unwrap_or("-"),
    )
}

pub fn run(app: &App, a: &LogArgs) -> anyhow::Result<u8> {
    if let Some(LogCommand::Path) = &a.command {
        out(&format!("{}\n", app.settings.db.display()))?;
        return Ok(exit::OK);
    }
    let mut store = app.store()?;
    match &a.command {
        None => {
            let rows = store.list(&filter(&a.list)?)?;
            print_rows(&rows, a.list.json, a.list.jsonl)?;
        }
        Some(LogCommand::Show { turn_id, json }) => match store.get(*turn_id)? {
            Some(r) if *json => out(&format!("{}\n", serde_json::to_string_pretty(&r)?))?,
            Some(r) => out(&show(&r))?,
            None => {
                eprintln!(
                    "paliadin-cli: no turn {turn_id} in the log {}",
                    store.path().display()
                );
                return Ok(exit::FAILURE);
            }
        },
        Some(LogCommand::Search {
            query,
            limit,
            json,
            jsonl,
        }) => {
            let rows = store.search(&query.join(" "), *limit)?;
            print_rows(&rows, *json, *jsonl)?;
        }
        Some(LogCommand::Stats { since, json }) => {
            let since = since
                .as_deref()
                .map(|s| parse_since(s, now_ms()))
                .transpose()
                .map_err(anyhow::Error::msg)
                .context("--since")?;
            let s = store.stats(since)?;
            if *json {
                out(&format!("{}\n", serde_json::to_string_pretty(&s)?))?;
            } else {
                let ms = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_else(|| "-".into());
                let mut t = format!(
                    "turns: {}  ok: {}  errors: {}  pending: {}  running: {}  error rate: {:.1}%\nduration ms: median {}  p95 {}\n",
                    s.total,
                    s.ok,
                    s.errors,
                    s.pending,
                    s.running,
                    s.error_rate * 100.0,
                    ms(s.median_ms),
                    ms(s.p95_ms)
                );
                if !s.by_code.is_empty() {
                    t.push_str("\nby error code:\n");
                    for (code, n) in &s.by_code {
                        t.push_str(&format!("  {code:<18} {n}\n"));
                    }
                }
                t.push_str(&format!(
                    "\n{:<10}  {:>7}  {:>7}  {:>10}  {:>8}\n",
                    "DAY", "TURNS", "ERRORS", "MEDIAN MS", "P95 MS"
                ));
                for d in &s.days {
                    t.push_str(&format!(
                        "{:<10}  {:>7}  {:>7}  {:>10}  {:>8}\n",
                        d.day,
                        d.total,
                        d.errors,
                        ms(d.median_ms),
                        ms(d.p95_ms)
                    ));
                }
                out(&t)?;
            }
        }
        Some(LogCommand::Prune { older_than }) => {
            let d = parse_duration(older_than)
                .map_err(anyhow::Error::msg)
                .context("--older-than")?;
            let n = store.prune(now_ms() - d.as_millis() as i64)?;
            eprintln!("paliadin-cli: pruned {n} turns older than {older_than}");
        }
        Some(LogCommand::Path) => unreachable!("handled above"),
    }
    Ok(exit::OK)
}
