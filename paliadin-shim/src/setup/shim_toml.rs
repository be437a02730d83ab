//! `shim.toml` as setup writes it: the shim's own config type serialized
//! (its keys and values come from that type and the `toml` crate, never
//! from a template), a key per line in the order a person reads them, the
//! defaults of the keys left out shown as comments, under a header that
//! marks the file as setup's. Builds text only.

use serde::Serialize;

/// The first line: the file is setup's, to rewrite or remove. The bash
/// installer wrote the same line, so either recognises the other's file.
pub const MARK: &str = "# written by paliadin install/laptop.sh";

/// The order keys are written in; a key of the config type missing here
/// comes after them, so that none is ever lost.
const ORDER: [&str; 12] = [
    "agent",
    "agent_hooks",
    "agent_sandbox",
    "agent_env",
    "workdir",
    "state_dir",
    "tmux_socket",
    "wait_secs",
    "ready_timeout_secs",
    "max_message_bytes",
    "ready_pattern",
    "submit_retry_ms",
];

/// The file: `header` comment lines after [`MARK`], then every key `layer`
/// sets, and `# key = default` for each of `defaults` it leaves out.
pub fn render(
    header: &[String],
    layer: &impl Serialize,
    defaults: &impl Serialize,
) -> Result<String, toml::ser::Error> {
    let set = toml::Table::try_from(layer)?;
    let defaults = toml::Table::try_from(defaults)?;
    let mut out = format!("{MARK}\n");
    for h in header {
        // A comment stays one comment line whatever it quotes.
        let h: String = h
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        out.push_str(&format!("# {h}\n"));
    }
    let rest = set.keys().filter(|k| !ORDER.contains(&k.as_str()));
    for key in ORDER.iter().copied().chain(rest.map(String::as_str)) {
        if let Some(v) = set.get(key) {
            out.push_str(&format!("{key} = {v}\n"));
        } else if let Some(v) = defaults.get(key) {
            out.push_str(&format!("# {key} = {v}\n"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(Serialize, serde::Deserialize, Debug, PartialEq, Default)]
    struct Layer {
        agent: Option<Vec<String>>,
        agent_env: Option<BTreeMap<String, String>>,
        workdir: Option<String>,
        wait_secs: Option<u64>,
        zzz: Option<bool>,
    }

    #[test]
    fn writes_what_is_set_and_comments_the_defaults() {
        let layer = Layer {
            agent: Some(vec!["a b".into(), "q\"uote".into(), "back\\slash".into()]),
            agent_env: Some([("K".to_owned(), "v".to_owned())].into()),
            workdir: Some("/w".into()),
            wait_secs: None,
            zzz: Some(true),
        };
        let defaults = Layer {
            wait_secs: Some(60),
            ..Layer::default()
        };
        let text = render(&["Agent: x\ny".into()], &layer, &defaults).expect("render");
        assert_eq!(
            text.lines().collect::<Vec<_>>(),
            [
                MARK,
                "# Agent: x y",
                r#"agent = ["a b", 'q"uote', 'back\slash']"#,
                r#"agent_env = { K = "v" }"#,
                r#"workdir = "/w""#,
                "# wait_secs = 60",
                "zzz = true",
            ]
        );
        let back: Layer = toml::from_str(&text).expect("parses");
        assert_eq!(back, layer);
    }
}
