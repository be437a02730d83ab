//! `sessions`: the sessions the shim manages, as a table or JSON lines.

use serde_json::Value;

use crate::cli::SessionsArgs;
use crate::cmd::{call_failed, out, App};
use crate::exit;

fn flag(v: &Value, k: &str) -> &'static str {
    if v[k].as_bool() == Some(true) {
        "yes"
    } else {
        "no"
    }
}

/// A session's status for people: `key: value` lines.
pub fn describe(v: &Value) -> String {
    let s = |k: &str| v[k].as_str().unwrap_or("-").to_owned();
    format!(
        "session:       {}\nalive:         {}\nready:         {}\nbusy:          {}\nblocked:       {}\ncurrent turn:  {}\nstarted:       {}\nlast activity: {}\n",
        s("session"),
        flag(v, "alive"),
        flag(v, "ready"),
        flag(v, "busy"),
        flag(v, "blocked"),
        s("current_turn"),
        s("started"),
        s("last_activity"),
    )
}

pub fn run(app: &App, a: &SessionsArgs) -> anyhow::Result<u8> {
    let client = app.client(None)?;
    let all = match client.sessions() {
        Ok(v) => v,
        Err(e) => return call_failed("sessions", &e, a.json),
    };
    let mut text = String::new();
    if a.json {
        for v in &all {
            text.push_str(&format!("{v}\n"));
        }
    } else {
        text.push_str(&format!(
            "{:<40} {:<6} {:<5} {:<8} {}\n",
            "SESSION", "ALIVE", "BUSY", "BLOCKED", "LAST ACTIVITY"
        ));
        for v in &all {
            text.push_str(&format!(
                "{:<40} {:<6} {:<5} {:<8} {}\n",
                v["session"].as_str().unwrap_or("-"),
                flag(v, "alive"),
                flag(v, "busy"),
                flag(v, "blocked"),
                v["last_activity"].as_str().unwrap_or("-")
            ));
        }
    }
    out(&text)?;
    Ok(exit::OK)
}
