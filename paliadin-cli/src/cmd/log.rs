//! `log` and its subcommands: the turn table, one turn in full, full-text
//! search, statistics, health probes, pruning and the database's path.
//! Reads the store only (prune aside); never calls the shim.

use paliadin_core::error_code::ErrorCode;
use paliadin_core::timefmt::{now_ms, parse_since, rfc3339_ms};
use std::io::{BufRead as _, Write as _};
use uuid::Uuid;

use crate::cli::{LogArgs, LogCommand, LogList, Scope};
use crate::cmd::{out, session_name, stdout_width, App, NotFound, Usage};
use crate::exit;
use crate::store::{Event, Filter, Probe, Status, Store, TurnRow};

/// The short id the table shows; `log show` and `poll` take it back.
pub const SHORT_ID: usize = 8;

fn when(ms: i64) -> String {
    let t = rfc3339_ms(ms);
    format!("{} {}", &t[..10], &t[11..19])
}

/// `s` on one line (control characters and runs of blanks as one space),
/// cut to `width` characters with `…` when a width is given.
fn one_line(s: &str, width: Option<usize>) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let flat = flat.split_whitespace().collect::<Vec<_>>().join(" ");
    match width {
        Some(w) if flat.chars().count() > w => {
            let mut t: String = flat.chars().take(w.saturating_sub(1)).collect();
            t.push('…');
            t
        }
        _ => flat,
    }
}

/// The turn table: every column's width is its widest cell; on a terminal
/// the message takes what is left of the width (columns are dropped, least
/// useful first, until it has room), piped nothing is cut.
pub fn table(rows: &[TurnRow], width: Option<usize>) -> String {
    const HEAD: [&str; 7] = [
        "TURN",
        "STARTED (UTC)",
        "STATUS",
        "CODE",
        "MS",
        "SESSION",
        "MESSAGE",
    ];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            [
                r.turn.turn_id.to_string()[..SHORT_ID].to_owned(),
                when(r.turn.started_ms),
                r.outcome.status.as_str().to_owned(),
                r.outcome.error_code.clone().unwrap_or_else(|| "-".into()),
                r.duration_ms
                    .map(|d| d.to_string())
                    .unwrap_or_else(|| "-".into()),
                one_line(&r.turn.session, None),
                one_line(&r.turn.message, None),
            ]
        })
        .collect();
    let mut widths: Vec<usize> = (0..7)
        .map(|i| {
            cells
                .iter()
                .map(|c| c[i].chars().count())
                .chain([HEAD[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    // Which columns are shown; dropped in this order when space is short.
    let mut shown = [true; 7];
    let mut msg_width = None;
    if let Some(total) = width {
        widths[5] = widths[5].min(24);
        for drop in [None, Some(4), Some(5), Some(3), Some(1)] {
            if let Some(d) = drop {
                shown[d] = false;
            }
            let used: usize = (0..6).filter(|&i| shown[i]).map(|i| widths[i] + 2).sum();
            msg_width = Some(total.saturating_sub(used).max(8));
            if total >= used + 16 {
                break;
            }
        }
    }
    let line = |c: &[String; 7]| {
        let mut l = String::new();
        for i in 0..6 {
            if !shown[i] {
                continue;
            }
            let cell = if i == 5 {
                one_line(&c[i], width.map(|_| widths[5]))
            } else {
                c[i].clone()
            };
            let pad = widths[i].saturating_sub(cell.chars().count());
            if i == 4 {
                l.push_str(&" ".repeat(pad));
                l.push_str(&cell);
            } else {
                l.push_str(&cell);
                l.push_str(&" ".repeat(pad));
            }
            l.push_str("  ");
        }
        l.push_str(&one_line(&c[6], msg_width));
        l.trim_end().to_owned() + "\n"
    };
    let mut text = line(&HEAD.map(String::from));
    for c in &cells {
        text.push_str(&line(c));
    }
    text
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
        text = table(rows, stdout_width());
    }
    out(&text)
}

/// A time on the command line (`--since`, `--older-than`); a bad one is a
/// usage error.
fn time_arg(flag: &str, s: &str) -> anyhow::Result<i64> {
    parse_since(s, now_ms()).map_err(|e| Usage(format!("{flag}: {e}")).into())
}

fn scope_filter(s: &Scope, limit: usize) -> anyhow::Result<Filter> {
    Ok(Filter {
        limit,
        user_id: s.user,
        session: s
            .session
            .as_deref()
            .map(|n| session_name(n).map(|n| n.as_str().to_owned()))
            .transpose()?,
        since_ms: s
            .since
            .as_deref()
            .map(|t| time_arg("--since", t))
            .transpose()?,
        ..Filter::default()
    })
}

fn filter(l: &LogList) -> anyhow::Result<Filter> {
    let mut f = scope_filter(&l.scope, l.limit)?;
    f.status = l
        .status
        .as_deref()
        .map(|s| {
            s.parse::<Status>()
                .map_err(|e| Usage(format!("--status: {e}")))
        })
        .transpose()?;
    f.error_code = l
        .code
        .as_deref()
        .map(|c| match ErrorCode::parse(c) {
            Some(c) => Ok(c.as_str().to_owned()),
            None => Err(Usage(format!(
                "--code: unknown error code `{c}`: expected one of {}",
                ErrorCode::ALL.map(|c| c.as_str()).join(", ")
            ))),
        })
        .transpose()?;
    Ok(f)
}

/// The turn a full id or a unique prefix names (git-style). An ambiguous
/// prefix is a usage error listing the candidates; none is [`NotFound`].
pub fn resolve(store: &Store, arg: &str) -> anyhow::Result<Uuid> {
    if let Ok(id) = Uuid::parse_str(arg) {
        return Ok(id);
    }
    let ids = store.turn_ids_with_prefix(arg, 10)?;
    match ids.as_slice() {
        [one] => Ok(*one),
        [] => Err(NotFound(format!(
            "no turn {arg} in the log {}: check the turn id (`paliadin-cli log` lists them)",
            store.path().display()
        ))
        .into()),
        many => Err(Usage(format!(
            "turn id prefix {arg} is ambiguous: it matches {}{}",
            many.iter()
                .map(Uuid::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            if many.len() == 10 { ", ..." } else { "" }
        ))
        .into()),
    }
}

/// A turn's events, one line each: time of day, kind, tool, target, detail.
fn show_events(events: &[Event]) -> String {
    if events.is_empty() {
        return "-\n".into();
    }
    let mut s = String::new();
    for e in events {
        let time = e.at.get(11..23).unwrap_or(&e.at);
        let kind = serde_json::to_value(e.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| "other".into());
        let mut line = format!("{time}  {kind:<13}");
        for f in [&e.tool, &e.target, &e.detail].into_iter().flatten() {
            line.push_str("  ");
            line.push_str(&one_line(f, Some(80)));
        }
        s.push_str(line.trim_end());
        s.push('\n');
    }
    s
}

fn show(r: &TurnRow, events: &[Event]) -> String {
    let (t, o) = (&r.turn, &r.outcome);
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let num = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_else(|| "-".into());
    format!(
        "turn:           {}\nsession:        {}\nuser:           {}\nhost:           {}\nstarted:        {}\nended:          {}\nduration ms:    {}\nstatus:         {}\nerror:          {}{}\npage origin:    {}\ntokens:         {}\nused tools:     {}\nclaimed tools:  {}\nrows seen:      {}\nclassifier tag: {}\nchips:          {}\n\n--- events ---\n{}\n--- message ---\n{}\n\n--- response ---\n{}\n",
        t.turn_id,
        t.session,
        t.user_id.map(|u| u.to_string()).unwrap_or_else(|| "-".into()),
        t.host,
        rfc3339_ms(t.started_ms),
        o.ended_ms.map(rfc3339_ms).unwrap_or_else(|| "-".into()),
        num(r.duration_ms),
        o.status.as_str(),
        opt(&o.error_code),
        o.error_detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default(),
        opt(&t.page_origin),
        num(o.tokens),
        if o.used_tools.is_empty() { "-".into() } else { o.used_tools.join(", ") },
        match &o.claimed_tools {
            None => "-".into(),
            Some(c) if c.is_empty() => "none".into(),
            Some(c) => c.join(", "),
        },
        num(o.rows_seen),
        opt(&o.classifier_tag),
        num(o.chip_count),
        show_events(events),
        t.message,
        o.response.as_deref().unwrap_or("-"),
    )
}

fn ms(v: Option<i64>) -> String {
    v.map(|n| n.to_string()).unwrap_or_else(|| "-".into())
}

fn stats(store: &Store, scope: &Scope, json: bool) -> anyhow::Result<()> {
    let f = scope_filter(scope, 0)?;
    let s = store.stats_in(&f)?;
    if json {
        let mut v = serde_json::to_value(&s)?;
        v["since"] = f.since_ms.map(rfc3339_ms).into();
        return out(&format!("{}\n", serde_json::to_string_pretty(&v)?));
    }
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
        for c in &s.by_code {
            t.push_str(&format!("  {:<18} {}\n", c.code, c.turns));
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
    out(&t)
}

fn probes(
    store: &Store,
    since: &str,
    session: Option<&str>,
    limit: usize,
    json: bool,
) -> anyhow::Result<()> {
    let since_ms = time_arg("--since", since)?;
    let session = session.map(session_name).transpose()?;
    let session = session.as_ref().map(|s| s.as_str());
    let s = store.probe_stats(Some(since_ms), session)?;
    let recent: Vec<Probe> = store.probes_since(Some(since_ms), session, limit)?;
    if json {
        let mut v = serde_json::to_value(&s)?;
        v["since"] = rfc3339_ms(since_ms).into();
        v["recent"] = serde_json::to_value(&recent)?;
        return out(&format!("{}\n", serde_json::to_string_pretty(&v)?));
    }
    let mut t = format!(
        "probes since {}: {}  ok: {}  availability: {}\nlatency ms: median {}  p95 {}\n",
        rfc3339_ms(since_ms),
        s.probes,
        s.ok,
        s.availability
            .map(|a| format!("{:.2}%", a * 100.0))
            .unwrap_or_else(|| "-".into()),
        ms(s.median_ms),
        ms(s.p95_ms)
    );
    if !s.by_code.is_empty() {
        t.push_str("\nfailed by error code:\n");
        for c in &s.by_code {
            t.push_str(&format!("  {:<18} {}\n", c.code, c.turns));
        }
    }
    if !recent.is_empty() {
        t.push_str(&format!(
            "\n{:<19}  {:<8}  {:>6}  {:<24}  {}\n",
            "AT (UTC)", "RESULT", "MS", "SESSION", "HOST"
        ));
        for p in &recent {
            let result = if p.ok {
                "ok"
            } else {
                p.error_code.as_deref().unwrap_or("failed")
            };
            t.push_str(&format!(
                "{:<19}  {:<8}  {:>6}  {:<24}  {}\n",
                when(p.at_ms),
                result,
                p.duration_ms,
                p.session,
                p.host
            ));
        }
    }
    out(&t)
}

/// Asks on the terminal; true for yes.
fn confirm(question: &str) -> anyhow::Result<bool> {
    let mut err = std::io::stderr().lock();
    write!(err, "{question} [y/N] ")?;
    err.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes"))
}

fn prune(store: &mut Store, older_than: &str, dry_run: bool, yes: bool) -> anyhow::Result<u8> {
    let cutoff = time_arg("--older-than", older_than)?;
    let (turns, probes) = store.prune_count(cutoff)?;
    let what = format!(
        "{turns} turns and {probes} probes started before {}",
        rfc3339_ms(cutoff)
    );
    if dry_run {
        out(&format!("would delete {what}\n"))?;
        return Ok(exit::OK);
    }
    if turns == 0 && probes == 0 {
        eprintln!(
            "paliadin-cli: nothing to prune: no turn or probe before {}",
            rfc3339_ms(cutoff)
        );
        return Ok(exit::OK);
    }
    if !yes {
        let tty = rustix::termios::isatty(rustix::stdio::stdin()) && crate::cmd::stderr_is_tty();
        if !tty {
            return Err(Usage(format!(
                "log prune would delete {what}: without a terminal to ask, add --yes (or see with --dry-run)"
            ))
            .into());
        }
        if !confirm(&format!("delete {what}?"))? {
            eprintln!("paliadin-cli: nothing deleted");
            return Ok(exit::FAILURE);
        }
    }
    let n = store.prune(cutoff)?;
    eprintln!(
        "paliadin-cli: deleted {n} turns and {probes} probes started before {}",
        rfc3339_ms(cutoff)
    );
    Ok(exit::OK)
}

pub fn run(app: &App, a: &LogArgs) -> anyhow::Result<u8> {
    if let Some(LogCommand::Path) = &a.command {
        out(&format!("{}\n", app.settings.db.display()))?;
        return Ok(exit::OK);
    }
    // Arguments first: a usage error must not wait for (or create) the log.
    let list_filter = match &a.command {
        None => Some(filter(&a.list)?),
        _ => None,
    };
    let mut store = app.store()?;
    match &a.command {
        None => {
            let rows = store.list(&list_filter.unwrap_or_default())?;
            print_rows(&rows, a.list.json, a.list.jsonl)?;
        }
        Some(LogCommand::Show { turn_id, json }) => {
            let id = resolve(&store, turn_id)?;
            let events = store.events(id)?;
            match store.get(id)? {
                Some(r) if *json => {
                    let mut v = serde_json::to_value(&r)?;
                    v["events"] = serde_json::to_value(&events)?;
                    out(&format!("{}\n", serde_json::to_string_pretty(&v)?))?
                }
                Some(r) => out(&show(&r, &events))?,
                None => {
                    return Err(NotFound(format!(
                        "no turn {id} in the log {}: check the turn id",
                        store.path().display()
                    ))
                    .into())
                }
            }
        }
        Some(LogCommand::Search {
            query,
            scope,
            limit,
            json,
            jsonl,
        }) => {
            let q = query.join(" ");
            if q.trim().is_empty() {
                return Err(
                    Usage("empty search: give at least one word to search for".into()).into(),
                );
            }
            let rows = store.search_in(&q, &scope_filter(scope, *limit)?)?;
            if rows.is_empty() {
                // Like grep: no match prints nothing (an empty array for
                // --json, so jq still reads it) and exits 1.
                if *json {
                    out("[]\n")?;
                }
                return Ok(exit::FAILURE);
            }
            print_rows(&rows, *json, *jsonl)?;
        }
        Some(LogCommand::Stats { scope, json }) => stats(&store, scope, *json)?,
        Some(LogCommand::Probes {
            since,
            session,
            limit,
            json,
        }) => probes(&store, since, session.as_deref(), *limit, *json)?,
        Some(LogCommand::Prune {
            older_than,
            dry_run,
            yes,
        }) => return prune(&mut store, older_than, *dry_run, *yes),
        Some(LogCommand::Path) => unreachable!("handled above"),
    }
    Ok(exit::OK)
}
