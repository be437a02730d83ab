//! `version`: paliadin-cli's version, as `--version` prints it (every
//! subcommand takes `--version` too). The shim's is `doctor`'s.

use crate::cli::VersionArgs;
use crate::cmd::{out, out_json};
use paliadin_cli::{exit, Failure};

pub fn run(a: &VersionArgs) -> Result<u8, Failure> {
    let version = env!("CARGO_PKG_VERSION");
    if a.json {
        out_json(&serde_json::json!({ "version": version }))?;
    } else {
        out(&format!("paliadin-cli {version}\n"))?;
    }
    Ok(exit::OK)
}
