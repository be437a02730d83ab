//! `log` and its subcommands: the turn table, one turn in full, full-text
//! search, statistics, health probes, pruning and the database's path.
//! Reads the store only (prune aside), and never creates it: without a
//! database yet, the log reads as empty. Never calls the shim.
//!
//! JSON: a list of turns is an array (`--jsonl`: one turn a line, for logs
//! too long to hold); one turn, the stats and the probes are one object.

use paliadin_core::error_code::ErrorCode;
use paliadin_core::text::{for_terminal, one_line};
use paliadin_core::timefmt::{now_ms, parse_since, rfc3339_ms};
use std::io::{BufRead as _, Write as _};
use std::path::Path;
use uuid::Uuid;

use crate::cli::{LogArgs, LogCommand, LogList, Scope};
use crate::cmd::{out, out_json, session_name, stdout_width, App, Ctx};
use crate::table::Table;
use paliadin_cli::store::{Event, Filter, ProbeScope, Status, Store, Turn, TurnRow};
use paliadin_cli::{exit, Failure};

/// The short id the table shows; `log show` and `poll` take it back.
pub const SHORT_ID: usize = 8;

fn when(ms: i64) -> String {
    let t = rfc3339_ms(ms);
    format!("{} {}", &t[..10], &t[11..19])
}

fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

/// The turn table: on a terminal the message takes what is left of the
/// width (the least useful columns go first), piped nothing is cut.
pub fn table(rows: &[TurnRow], width: Option<usize>) -> String {
    let head = [
        "TURN",
        "STARTED (UTC)",
        "STATUS",
        "CODE",
        "MS",
        "SESSION",
        "MESSAGE",
    ];
    let mut t = Table::new(&head).right(4).cap(5, 24).drops(&[4, 5, 3, 1]);
    for r in rows {
        t.row(vec![
            r.turn.turn_id.to_string()[..SHORT_ID].to_owned(),
            when(r.turn.started_ms),
            r.outcome.status.as_str().to_owned(),
            or_dash(r.outcome.error_code),
            or_dash(r.duration_ms),
            r.turn.session.clone(),
            r.turn.message.clone(),
        ]);
    }
    t.render(width)
}

/// Rows as a table, a JSON array or JSON lines.
fn print_rows(rows: &[TurnRow], json: bool, jsonl: bool) -> Result<(), Failure> {
    if json {
        return out_json(rows);
    }
    if jsonl {
        return rows.iter().try_for_each(out_json);
    }
    out(&table(rows, stdout_width()))
}

/// A time on the command line (`--since`, `--older-than`); a bad one is a
/// usage error.
fn time_arg(flag: &str, s: &str) -> Result<i64, Failure> {
    parse_since(s, now_ms()).map_err(|e| Failure::usage(format!("{flag}: {e}")))
}

fn scope_filter(s: &Scope, limit: usize) -> Result<Filter, Failure> {
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

fn filter(l: &LogList) -> Result<Filter, Failure> {
    let mut f = scope_filter(&l.scope, l.limit)?;
    f.status = l
        .status
        .as_deref()
        .map(|s| {
            s.parse::<Status>()
                .map_err(|e| Failure::usage(format!("--status: {e}")))
        })
        .transpose()?;
    f.error_code = l
        .code
        .as_deref()
        .map(|c| {
            ErrorCode::parse(c).ok_or_else(|| {
                Failure::usage(format!(
                    "--code: unknown error code `{c}`: expected one of {}",
                    ErrorCode::ALL.map(|c| c.as_str()).join(", ")
                ))
            })
        })
        .transpose()?;
    Ok(f)
}

/// The turn a full id or a unique prefix names (git-style). An ambiguous
/// prefix is a usage error listing the candidates; none is not found.
pub fn resolve(store: &Store, arg: &str, db: &Path) -> Result<Uuid, Failure> {
    if let Ok(id) = Uuid::parse_str(arg) {
        return Ok(id);
    }
    let ids = store.turn_ids_with_prefix(arg, 10)?;
    match ids.as_slice() {
        [one] => Ok(*one),
        [] => Err(Failure::not_found(format!(
            "no turn {arg} in the log {}: check the turn id",
            db.display()
        ))
        .hint("paliadin-cli log lists the turns")),
        many => Err(Failure::usage(format!(
            "turn id prefix {arg} is ambiguous: it matches {}{}",
            many.iter()
                .map(Uuid::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            if many.len() == 10 { ", ..." } else { "" }
        ))),
    }
}

/// A turn's events, one line each: time of day, kind, tool, target, detail.
fn show_events(events: &[Event]) -> String {
    if events.is_empty() {
        return "-\n".into();
    }
    let mut s = String::new();
    for e in events {
        let time = one_line(e.at.get(11..23).unwrap_or(&e.at), None);
        let mut line = format!("{time}  {:<13}", e.kind.as_str());
        for f in [&e.tool, &e.target, &e.detail].into_iter().flatten() {
            line.push_str("  ");
            line.push_str(&one_line(f, Some(80)));
        }
        s.push_str(line.trim_end());
        s.push('\n');
    }
    s
}

/// A list of names, `none` for an empty one and `-` for none known.
fn names(v: Option<&[String]>) -> String {
    match v {
        None => "-".into(),
        Some([]) => "none".into(),
        Some(v) => one_line(&v.join(", "), None),
    }
}

/// One turn for people: its fields, events, message and response, every
/// text of someone else's made safe for a terminal.
fn show(t: &Turn) -> String {
    let (n, o) = (&t.row.turn, &t.row.outcome);
    let opt = |v: &Option<String>| v.as_deref().map_or("-".into(), |s| one_line(s, None));
    let used = (!o.used_tools.is_empty()).then_some(o.used_tools.as_slice());
    let fields = [
        ("turn", n.turn_id.to_string()),
        ("session", n.session.clone()),
        ("user", or_dash(n.user_id)),
        ("host", n.host.clone()),
        ("started", rfc3339_ms(n.started_ms)),
        ("ended", or_dash(o.ended_ms.map(rfc3339_ms))),
        ("duration ms", or_dash(t.row.duration_ms)),
        ("status", o.status.as_str().into()),
        (
            "error",
            match (&o.error_code, &o.error_detail) {
                (Some(c), Some(d)) => format!("{c}: {}", one_line(d, None)),
                (c, _) => or_dash(*c),
            },
        ),
        ("page origin", opt(&n.page_origin)),
        ("usage", usage_line(o.usage.as_ref())),
        (
            "est. tokens",
            match o.tokens {
                Some(n) => format!("{n} (the reply's length / 4: an estimate)"),
                None => "-".into(),
            },
        ),
        ("used tools", names(used)),
        ("claimed tools", names(o.claimed_tools.as_deref())),
        ("rows seen", or_dash(o.rows_seen)),
        ("classifier tag", opt(&o.classifier_tag)),
        ("chips", or_dash(o.chip_count)),
    ];
    let mut s = String::new();
    for (k, v) in fields {
        s.push_str(&format!("{:<16}{v}\n", format!("{k}:")));
    }
    s.push_str(&format!(
        "\n--- events ---\n{}\n--- message ---\n{}\n\n--- response ---\n{}\n",
        show_events(&t.events),
        for_terminal(&n.message),
        for_terminal(o.response.as_deref().unwrap_or("-")),
    ));
    s
}

/// A turn's usage in one line, or that it was not measured.
fn usage_line(u: Option<&paliadin_core::event::Usage>) -> String {
    let Some(u) = u else {
        return "not measured".into();
    };
    format!(
        "input {}  output {}  cache read {}  cache creation {}  ({} request{}{})",
        u.input_tokens,
        u.output_tokens,
        u.cache_read_input_tokens,
        u.cache_creation_input_tokens,
        u.requests,
        if u.requests == 1 { "" } else { "s" },
        u.model
            .as_deref()
            .map(|m| format!(", {}", one_line(m, Some(60))))
            .unwrap_or_default()
    )
}

fn stats(store: &Store, scope: &Scope, json: bool) -> Result<(), Failure> {
    let f = scope_filter(scope, 0)?;
    let s = store.stats_in(&f)?;
    if json {
        let mut v = serde_json::to_value(&s).unwrap_or_default();
        v["since"] = f.since_ms.map(rfc3339_ms).into();
        return out_json(&v);
    }
    let mut t = format!(
        "turns: {}  ok: {}  errors: {}  pending: {}  running: {}  error rate: {:.1}%\nduration ms: median {}  p95 {}\n",
        s.total,
        s.ok,
        s.errors,
        s.pending,
        s.running,
        s.error_rate * 100.0,
        or_dash(s.median_ms),
        or_dash(s.p95_ms)
    );
    let u = &s.usage;
    if u.measured_turns == 0 {
        t.push_str("usage: not measured\n");
    } else {
        t.push_str(&format!(
            "usage of the {} of {} turns measured: input {}  output {}  cache read {}  cache creation {}  requests {}\n",
            u.measured_turns,
            s.total,
            u.input_tokens,
            u.output_tokens,
            u.cache_read_input_tokens,
            u.cache_creation_input_tokens,
            u.requests
        ));
    }
    if !s.by_code.is_empty() {
        t.push_str("\nby error code:\n");
        for c in &s.by_code {
            t.push_str(&format!("  {:<18} {}\n", c.code, c.turns));
        }
    }
    let mut days = Table::new(&[
        "DAY",
        "TURNS",
        "ERRORS",
        "MEDIAN MS",
        "P95 MS",
        "MEASURED",
        "IN",
        "OUT",
        "CACHE READ",
        "CACHE NEW",
    ]);
    for i in 1..10 {
        days = days.right(i);
    }
    for d in &s.days {
        let u = &d.usage;
        let n = |v: i64| {
            if u.measured_turns == 0 {
                "-".to_owned()
            } else {
                v.to_string()
            }
        };
        days.row(vec![
            d.day.clone(),
            d.total.to_string(),
            d.errors.to_string(),
            or_dash(d.median_ms),
            or_dash(d.p95_ms),
            u.measured_turns.to_string(),
            n(u.input_tokens),
            n(u.output_tokens),
            n(u.cache_read_input_tokens),
            n(u.cache_creation_input_tokens),
        ]);
    }
    t.push('\n');
    t.push_str(&days.render(None));
    out(&t)
}

/// `log probes`: per host, availability and latency; then the newest
/// probes, fitted to the terminal like `log`.
fn probes(store: &Store, scope: &ProbeScope, limit: usize, json: bool) -> Result<(), Failure> {
    let hosts = store.probe_stats(scope)?;
    let recent = store.probes_in(scope, limit)?;
    let since = rfc3339_ms(scope.since_ms.unwrap_or(0));
    if json {
        return out_json(&serde_json::json!({
            "since": since, "hosts": hosts, "recent": recent,
        }));
    }
    let mut t = format!("probes since {since}\n");
    if hosts.is_empty() {
        t.push_str("no probes\n");
    }
    let mut summary = Table::new(&[
        "HOST",
        "PROBES",
        "OK",
        "AVAILABILITY",
        "MEDIAN MS",
        "P95 MS",
    ])
    .right(1)
    .right(2)
    .right(3)
    .right(4)
    .right(5);
    for h in &hosts {
        let s = &h.stats;
        summary.row(vec![
            h.host.clone(),
            s.probes.to_string(),
            s.ok.to_string(),
            or_dash(s.availability.map(|a| format!("{:.2}%", a * 100.0))),
            or_dash(s.median_ms),
            or_dash(s.p95_ms),
        ]);
    }
    if !hosts.is_empty() {
        t.push_str(&summary.render(stdout_width()));
    }
    for h in hosts.iter().filter(|h| !h.stats.by_code.is_empty()) {
        t.push_str(&format!(
            "\nfailed on {} by error code:\n",
            one_line(&h.host, None)
        ));
        for c in &h.stats.by_code {
            t.push_str(&format!("  {:<18} {}\n", c.code, c.turns));
        }
    }
    if !recent.is_empty() {
        let mut r = Table::new(&["AT (UTC)", "RESULT", "MS", "HOST", "SESSION", "DETAIL"])
            .right(2)
            .cap(4, 24)
            .drops(&[4, 3]);
        for p in &recent {
            let result = match (p.ok, p.error_code) {
                (true, _) => "ok".to_owned(),
                (false, c) => c.map_or("failed".into(), |c| c.to_string()),
            };
            r.row(vec![
                when(p.at_ms),
                result,
                p.duration_ms.to_string(),
                p.host.clone(),
                p.session.clone(),
                p.detail.clone().unwrap_or_else(|| p.windows.short()),
            ]);
        }
        t.push('\n');
        t.push_str(&r.render(stdout_width()));
    }
    out(&t)
}

/// Asks on the terminal; true for yes.
fn confirm(question: &str) -> Result<bool, Failure> {
    let mut err = std::io::stderr().lock();
    write!(err, "{question} [y/N] ")?;
    err.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes"))
}

fn prune(app: &App, older_than: &str, dry_run: bool, yes: bool) -> Result<u8, Failure> {
    let cutoff = time_arg("--older-than", older_than)?;
    let mut store = app.existing_store()?;
    let (turns, probes) = store.prune_count(cutoff)?;
    let before = rfc3339_ms(cutoff);
    let what = format!("{turns} turns and {probes} probes started before {before}");
    if dry_run {
        out(&format!("would delete {what}\n"))?;
        return Ok(exit::OK);
    }
    if turns == 0 && probes == 0 {
        eprintln!("paliadin-cli: nothing to prune: no turn or probe before {before}");
        return Ok(exit::OK);
    }
    if !yes {
        let tty = rustix::termios::isatty(rustix::stdio::stdin()) && super::stderr_is_tty();
        if !tty {
            return Err(Failure::usage(format!(
                "log prune would delete {what}: without a terminal to ask, add --yes (or see with --dry-run)"
            )));
        }
        if !confirm(&format!("delete {what}?"))? {
            eprintln!("paliadin-cli: nothing deleted");
            return Ok(exit::FAILURE);
        }
    }
    let (n, probes) = store.prune(cutoff)?;
    eprintln!("paliadin-cli: deleted {n} turns and {probes} probes started before {before}");
    Ok(exit::OK)
}

/// `log show`: one turn in full.
fn show_turn(app: &App, store: &Store, turn_id: &str, json: bool) -> Result<(), Failure> {
    let db = &app.settings.db;
    let id = resolve(store, turn_id, db)?;
    let Some(t) = store.turn(id)? else {
        return Err(Failure::not_found(format!(
            "no turn {id} in the log {}: check the turn id",
            db.display()
        )));
    };
    if json {
        out_json(&t)
    } else {
        out(&show(&t))
    }
}

/// `log search`: like grep, no match prints nothing (an empty array for
/// `--json`, so jq still reads it) and exits 1.
fn search(
    store: &Store,
    query: &[String],
    scope: &Scope,
    limit: usize,
    json: bool,
    jsonl: bool,
) -> Result<u8, Failure> {
    let q = query.join(" ");
    if q.trim().is_empty() {
        return Err(Failure::usage(
            "empty search: give at least one word to search for",
        ));
    }
    let rows = store.search_in(&q, &scope_filter(scope, limit)?)?;
    if rows.is_empty() {
        if json {
            out("[]\n")?;
        }
        return Ok(exit::FAILURE);
    }
    print_rows(&rows, json, jsonl)?;
    Ok(exit::OK)
}

pub fn run(ctx: &Ctx<'_>, a: &LogArgs) -> Result<u8, Failure> {
    let app = ctx.app()?;
    // Arguments first: a usage error must not wait for the log.
    let list_filter = match &a.command {
        None => Some(filter(&a.list)?),
        _ => None,
    };
    match &a.command {
        Some(LogCommand::Path) => out(&format!("{}\n", app.settings.db.display()))?,
        Some(LogCommand::Prune {
            older_than,
            dry_run,
            yes,
        }) => return prune(&app, older_than, *dry_run, *yes),
        None => {
            let rows = app
                .existing_store()?
                .list(&list_filter.unwrap_or_default())?;
            print_rows(&rows, a.list.json, a.list.jsonl)?;
        }
        Some(LogCommand::Show { turn_id, json }) => {
            show_turn(&app, &app.existing_store()?, turn_id, *json)?
        }
        Some(LogCommand::Search {
            query,
            scope,
            limit,
            json,
            jsonl,
        }) => return search(&app.existing_store()?, query, scope, *limit, *json, *jsonl),
        Some(LogCommand::Stats { scope, json }) => stats(&app.existing_store()?, scope, *json)?,
        Some(LogCommand::Probes {
            since,
            session,
            limit,
            json,
        }) => {
            let scope = ProbeScope {
                since_ms: Some(time_arg("--since", since)?),
                session: session
                    .as_deref()
                    .map(session_name)
                    .transpose()?
                    .map(|s| s.as_str().to_owned()),
                // The probes of the host named on the command line only.
                host: app.layers.flags.host.clone(),
            };
            probes(&app.existing_store()?, &scope, *limit, *json)?
        }
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use paliadin_cli::store::EventKind;

    #[test]
    fn events_are_aligned_lines_of_safe_text() {
        let e = |kind, tool: Option<&str>, target: Option<&str>| Event {
            tool: tool.map(str::to_owned),
            target: target.map(str::to_owned),
            ..Event::new(kind, "2026-11-30T12:00:01.250Z")
        };
        let text = show_events(&[
            e(EventKind::Submitted, None, None),
            e(
                EventKind::ToolStarted,
                Some("Bash"),
                Some("ls\u{1b}]0;x\u{7}"),
            ),
        ]);
        assert_eq!(
            text,
            "12:00:01.250  submitted\n12:00:01.250  tool_started   Bash  ls ]0;x\n"
        );
        assert_eq!(show_events(&[]), "-\n");
    }
}
