//! `sessions`: the sessions the shim manages, as a table or a JSON array.

use serde_json::Value;

use crate::cli::SessionsArgs;
use crate::cmd::{out, out_json, Ctx};
use crate::table::Table;
use paliadin_cli::{exit, Failure};

fn flag(v: &Value, k: &str) -> &'static str {
    if v[k].as_bool() == Some(true) {
        "yes"
    } else {
        "no"
    }
}

fn text(v: &Value, k: &str) -> String {
    paliadin_core::text::one_line(v[k].as_str().unwrap_or("-"), None)
}

/// Bytes for people: `183 MB` (decimal, as `ps` and Activity Monitor).
fn megabytes(n: u64) -> String {
    format!("{} MB", (n + 500_000) / 1_000_000)
}

/// What the session's agent holds: its own memory (resident when the
/// system does not say), or what sleeping freed; `-` for a shim too old to say.
fn memory(v: &Value) -> String {
    let own = |o: &Value| o["private_bytes"].as_u64().or(o["rss_bytes"].as_u64());
    match (own(v), own(&v["freed"])) {
        (Some(n), _) => megabytes(n),
        (None, Some(n)) => format!("{} freed", megabytes(n)),
        (None, None) => "-".into(),
    }
}

/// A session's status for people: `key: value` lines.
pub fn describe(v: &Value) -> String {
    format!(
        "session:       {}\nstate:         {}\nmemory:        {}\nalive:         {}\nready:         {}\nbusy:          {}\nblocked:       {}\ncurrent turn:  {}\nstarted:       {}\nlast activity: {}\n",
        text(v, "session"),
        text(v, "state"),
        memory(v),
        flag(v, "alive"),
        flag(v, "ready"),
        flag(v, "busy"),
        flag(v, "blocked"),
        text(v, "current_turn"),
        text(v, "started"),
        text(v, "last_activity"),
    )
}

pub fn run(ctx: &Ctx<'_>, a: &SessionsArgs) -> Result<u8, Failure> {
    let all = ctx.app()?.client(None)?.sessions()?;
    if a.json {
        out_json(&all)?;
        return Ok(exit::OK);
    }
    let mut t = Table::new(&[
        "SESSION",
        "STATE",
        "MEMORY",
        "ALIVE",
        "BUSY",
        "BLOCKED",
        "LAST ACTIVITY",
    ]);
    for v in &all {
        t.row(vec![
            text(v, "session"),
            text(v, "state"),
            memory(v),
            flag(v, "alive").into(),
            flag(v, "busy").into(),
            flag(v, "blocked").into(),
            text(v, "last_activity"),
        ]);
    }
    out(&t.render(super::stdout_width()))?;
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn memory_is_the_agents_own_or_what_sleeping_freed() {
        let running = json!({"state": "running", "rss_bytes": 201_000_000u64, "private_bytes": 124_400_000u64});
        assert_eq!(memory(&running), "124 MB");
        assert_eq!(
            memory(&json!({"rss_bytes": 201_000_000u64, "private_bytes": null})),
            "201 MB"
        );
        let asleep = json!({"state": "asleep", "freed": {"rss_bytes": 250_000_000u64, "private_bytes": 151_000_000u64}});
        assert_eq!(memory(&asleep), "151 MB freed");
        assert_eq!(memory(&json!({"alive": true})), "-", "an older shim");
        assert!(describe(&asleep).contains("state:         asleep\nmemory:        151 MB freed\n"));
    }
}
