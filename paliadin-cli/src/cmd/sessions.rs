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

/// A session's status for people: `key: value` lines.
pub fn describe(v: &Value) -> String {
    format!(
        "session:       {}\nalive:         {}\nready:         {}\nbusy:          {}\nblocked:       {}\ncurrent turn:  {}\nstarted:       {}\nlast activity: {}\n",
        text(v, "session"),
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
    let mut t = Table::new(&["SESSION", "ALIVE", "BUSY", "BLOCKED", "LAST ACTIVITY"]);
    for v in &all {
        t.row(vec![
            text(v, "session"),
            flag(v, "alive").into(),
            flag(v, "busy").into(),
            flag(v, "blocked").into(),
            text(v, "last_activity"),
        ]);
    }
    out(&t.render(super::stdout_width()))?;
    Ok(exit::OK)
}
