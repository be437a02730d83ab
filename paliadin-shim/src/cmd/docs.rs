//! `completions <shell>` and `man` (local only): shell completions and a
//! roff manual page generated from the shim's clap definitions, so they never
//! drift from its flags. The shim's requests are protocol words, not clap
//! subcommands, so its help text (`AFTER_HELP`) carries them. Writes to
//! stdout only.

use clap::ValueEnum as _;

use crate::cli;
use crate::error::{Result, ShimError};
use crate::output::print_or_fail;

pub fn completions(shell: &str) -> Result<()> {
    let shell = clap_complete::Shell::from_str(shell, true).map_err(|_| {
        ShimError::invalid(format!(
            "completions: unknown shell {shell:?}: one of bash, zsh, fish, elvish, powershell"
        ))
    })?;
    let mut cmd = cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "paliadin-shim", &mut out);
    print_or_fail(&out)
}

pub fn man() -> Result<()> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cli::command())
        .render(&mut out)
        .map_err(|e| ShimError::failure(e.to_string()))?;
    print_or_fail(&out)
}
