//! `completions <shell>` and `man`: shell completions and a roff manual page
//! generated from the clap definitions, so they never drift from the flags.
//! The two writers take any `clap::Command`, so another binary of the
//! workspace (the shim) can reuse them as they are. Writes to stdout only.

use crate::cli::CompletionsArgs;
use paliadin_cli::{exit, Failure};

/// Writes `shell`'s completion script for `cmd` to `out`.
pub fn write_completions(
    mut cmd: clap::Command,
    shell: clap_complete::Shell,
    out: &mut dyn std::io::Write,
) {
    let name = cmd.get_name().to_owned();
    clap_complete::generate(shell, &mut cmd, name, out);
}

/// Writes the manual page of `cmd` to `out`, in roff: the command, then a
/// section per subcommand (and theirs, depth first) with its synopsis,
/// description, options and examples.
pub fn write_man(cmd: clap::Command, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let man = clap_mangen::Man::new(cmd.clone());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    man.render_subcommands_section(out)?;
    man.render_extra_section(out)?;
    write_subcommands(&cmd, cmd.get_name(), out)?;
    man.render_version_section(out)?;
    Ok(())
}

fn write_subcommands(
    cmd: &clap::Command,
    prefix: &str,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        let full = format!("{prefix} {}", sub.get_name());
        writeln!(out, ".SH \"{}\"", full.to_uppercase())?;
        // clap keeps names as `&'static str`; this runs once per process.
        let name: &'static str = Box::leak(full.clone().into_boxed_str());
        let page = clap_mangen::Man::new(sub.clone().name(name));
        page.render_synopsis_section(out)?;
        page.render_description_section(out)?;
        page.render_options_section(out)?;
        if sub.get_after_help().is_some() {
            page.render_extra_section(out)?;
        }
        write_subcommands(sub, &full, out)?;
    }
    Ok(())
}

pub fn completions(a: &CompletionsArgs) -> Result<u8, Failure> {
    let mut text = Vec::new();
    write_completions(crate::cli::command(), a.shell, &mut text);
    super::out(&String::from_utf8_lossy(&text))?;
    Ok(exit::OK)
}

pub fn man() -> Result<u8, Failure> {
    let mut text = Vec::new();
    write_man(crate::cli::command(), &mut text)?;
    super::out(&String::from_utf8_lossy(&text))?;
    Ok(exit::OK)
}
