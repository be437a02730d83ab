//! `config path|show|get|set|unset`: the settings as `paliadin-cli` sees
//! them, like `gh config`. `show` lists every setting in force with where
//! it came from (flag, env, file, default); `get` prints one (exit 1 when
//! unset, as `git config --get`); `set` and `unset` change one key of the
//! file, checked as its flag would be, the file's other lines kept. All of
//! it from the one list of settings in `config.rs`.

use serde::Serialize;

use crate::cli::{ConfigArgs, ConfigCommand};
use crate::cmd::{out, out_json, Ctx};
use crate::table::Table;
use paliadin_cli::config::{self, KEYS};
use paliadin_cli::{exit, Failure};

/// One line of `config show --json`.
#[derive(Serialize)]
struct Entry {
    key: &'static str,
    value: Option<String>,
    source: String,
}

pub fn run(ctx: &Ctx<'_>, a: &ConfigArgs) -> Result<u8, Failure> {
    let (path, _) = config::config_path(ctx.global.config.as_deref());
    match &a.command {
        ConfigCommand::Path => out(&format!("{}\n", path.display()))?,
        ConfigCommand::Show { json } => show(ctx, *json)?,
        ConfigCommand::Get { key } => {
            config::key(key)?;
            match ctx.app()?.settings.get(key) {
                Some(v) => out(&format!("{v}\n"))?,
                None => return Ok(exit::FAILURE),
            }
        }
        ConfigCommand::Set { key, value } => {
            config::write_key(&path, config::key(key)?, Some(value))?;
            eprintln!("paliadin-cli: {key} = {value} in {}", path.display());
        }
        ConfigCommand::Unset { key } => {
            config::write_key(&path, config::key(key)?, None)?;
            eprintln!("paliadin-cli: {key} removed from {}", path.display());
        }
    }
    Ok(exit::OK)
}

fn show(ctx: &Ctx<'_>, json: bool) -> Result<(), Failure> {
    let layers = ctx.layers()?;
    let settings = layers.settings();
    let entries: Vec<Entry> = KEYS
        .iter()
        .map(|k| Entry {
            key: k.name,
            value: settings.get(k.name),
            source: layers.source(k.name).to_string(),
        })
        .collect();
    if json {
        return out_json(&entries);
    }
    let mut t = Table::new(&["KEY", "VALUE", "SOURCE"]);
    for e in &entries {
        t.row(vec![
            e.key.to_owned(),
            e.value.clone().unwrap_or_else(|| "-".into()),
            e.source.clone(),
        ]);
    }
    out(&t.render(None))
}
