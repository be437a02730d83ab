//! `sessions`: one status object per line for every session the shim
//! manages (in tmux, on disk, or both). Reads only.

use paliadin_core::SessionName;
use std::collections::BTreeSet;

use crate::agent::{tmux_error, Shim};
use crate::error::{Result, ShimError};

pub fn run(shim: &Shim) -> Result<()> {
    let mut names = BTreeSet::new();
    for key in shim.tmux.list_sessions().map_err(tmux_error)? {
        names.extend(SessionName::from_key(&key));
    }
    if let Ok(entries) = std::fs::read_dir(shim.config.state_dir.join("sessions")) {
        for e in entries.flatten() {
            names.extend(SessionName::from_key(&e.file_name().to_string_lossy()));
        }
    }
    let mut out = String::new();
    for n in names {
        out.push_str(&super::status::object(shim, &n)?.to_string());
        out.push('\n');
    }
    super::print(out.as_bytes()).map_err(|e| ShimError::failure(e.to_string()))
}
