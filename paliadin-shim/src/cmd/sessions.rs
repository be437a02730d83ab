//! `sessions`: one status object per line for every session the shim
//! manages (in tmux, on disk, or both). Reads only.

use paliadin_core::SessionName;
use std::collections::BTreeSet;

use crate::agent::{tmux_error, Shim};
use crate::error::Result;
use crate::output::print_or_fail;

pub fn run(shim: &Shim) -> Result<()> {
    let mut names = BTreeSet::new();
    for key in shim.tmux.list_sessions().map_err(tmux_error)? {
        names.extend(SessionName::from_key(&key));
    }
    let sessions = crate::state::open_root(&shim.config.state_dir, false)?
        .map(|root| root.child("sessions", false))
        .transpose()?
        .flatten();
    for key in sessions.map(|d| d.names()).unwrap_or_default() {
        names.extend(SessionName::from_key(&key));
    }
    let mut out = String::new();
    for n in names {
        let json = crate::status::object(shim, &n)?.to_string();
        out.push_str(&paliadin_core::text::json_safe(json));
        out.push('\n');
    }
    print_or_fail(out.as_bytes())
}
