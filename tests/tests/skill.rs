//! The skill `skills/paliadin/SKILL.md` against the rules the shim and the
//! client rely on (PROTOCOL sections 3 and 4). Every literal comes from
//! `paliadin_core` where one exists, so the skill cannot drift from the code.

use paliadin_core::envelope::TAG;
use paliadin_core::reply::{split_trailer, Meta, TRAILER_CLOSE, TRAILER_OPEN};

fn skill_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../skills/paliadin/SKILL.md")
}

fn skill() -> String {
    let p = skill_path();
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The frontmatter's `key: value` pairs and the body after it.
fn frontmatter(text: &str) -> (Vec<(String, String)>, String) {
    let rest = text
        .strip_prefix("---\n")
        .expect("SKILL.md must start with a `---` frontmatter line");
    let end = rest
        .find("\n---\n")
        .expect("the frontmatter must close with a `---` line");
    let fields = rest[..end]
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    (fields, rest[end + 5..].to_owned())
}

fn field<'a>(fields: &'a [(String, String)], key: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("frontmatter has no `{key}`"))
}

#[track_caller]
fn says(text: &str, what: &str) {
    assert!(
        text.contains(what),
        "SKILL.md should say {what:?}\n--- SKILL.md ---\n{text}"
    );
}

#[test]
fn frontmatter_names_the_skill_and_matches_the_envelope() {
    let text = skill();
    let (fields, _) = frontmatter(&text);
    let name = field(&fields, "name");
    assert_eq!(name, "paliadin");
    assert!(
        !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
        "name must be lowercase letters, digits and hyphens: {name:?}"
    );
    let description = field(&fields, "description");
    assert!(
        description.contains(TAG),
        "description must mention {TAG:?} so automatic invocation matches: {description:?}"
    );
    assert!(
        description.len() <= 1024,
        "description is {} characters, more than 1024",
        description.len()
    );
    // Unquoted YAML: a `: ` inside the value would end it early.
    assert!(
        !description.contains(": "),
        "description must not contain `: ` (it would break YAML): {description:?}"
    );
}

#[test]
fn body_states_the_envelope_and_the_reply_rules() {
    let text = skill();
    let (_, body) = frontmatter(&text);
    says(&body, TAG);
    // With hooks (Claude's default) the reply is the final message: one
    // model call per turn, nothing written anywhere.
    says(&body, "final message");
    says(&body, "nothing before or after it");
    says(&body, "do not write the answer to");
    // Without hooks, the reply file of PROTOCOL section 4.
    says(&body, "reply-to:");
    says(&body, "<reply-to>.tmp");
    says(&body, "rename it once");
    says(&body, "mv <reply-to>.tmp <reply-to>");
    says(&body, "WHOLE reply");
    says(&body, "Markdown");
    says(&body, "chip:");
    says(&body, "(chip:kind/id)");
    says(&body, "last line");
    for f in ["used_tools", "rows_seen", "classifier_tag"] {
        says(&body, &format!("\"{f}\""));
    }
    says(&body, TRAILER_OPEN);
    says(&body, TRAILER_CLOSE);
    says(&body, "Never ask");
    says(&body, "never wait for input");
}

#[test]
fn trailer_example_parses() {
    let text = skill();
    let examples: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with(TRAILER_OPEN) && l.ends_with(TRAILER_CLOSE))
        .collect();
    assert!(!examples.is_empty(), "SKILL.md has no trailer line");
    let parsed: Vec<Meta> = examples
        .iter()
        .map(|l| split_trailer(&format!("Body text.\n{l}\n")))
        .filter(|(body, _)| body == "Body text.")
        .map(|(_, meta)| meta)
        .filter(|m| *m != Meta::default())
        .collect();
    assert!(
        !parsed.is_empty(),
        "no trailer example in SKILL.md parses with split_trailer: {examples:#?}"
    );
    let m = &parsed[0];
    assert!(!m.used_tools.is_empty() && m.rows_seen.is_some() && m.classifier_tag.is_some());
    // The complete example reply counts one chip in its body.
    let example = text
        .split("```markdown\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("SKILL.md has a ```markdown example reply");
    let reply = paliadin_core::reply::parse(example);
    assert_eq!(reply.chip_count, 1, "example reply: {example}");
    assert_eq!(reply.meta, *m);
}

#[test]
fn persona_section_is_marked_once() {
    let text = skill();
    let begin = "<!-- persona:begin -->";
    let end = "<!-- persona:end -->";
    assert_eq!(text.matches(begin).count(), 1);
    assert_eq!(text.matches(end).count(), 1);
    let b = text.find(begin).expect("begin");
    let e = text.find(end).expect("end");
    assert!(b < e, "persona:begin must come before persona:end");
    assert!(text.lines().any(|l| l == begin) && text.lines().any(|l| l == end),
        "the persona markers must stand on lines of their own (the installer replaces between them)");
    assert!(
        !text[b + begin.len()..e].trim().is_empty(),
        "default persona is empty"
    );
}
