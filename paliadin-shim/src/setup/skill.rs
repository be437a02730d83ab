//! The Claude Code skill as setup installs it: the repository's
//! `skills/paliadin/SKILL.md` (built into this binary, so that the shim
//! installs the skill of its own version), marked as installed right after
//! its frontmatter (which must stay first), its persona section replaced
//! by `--persona`'s text when given. Builds bytes only.

/// The skill as the repository has it.
pub const SOURCE: &str = include_str!("../../../skills/paliadin/SKILL.md");
/// The line that says setup wrote the file (and may rewrite or remove it).
pub const MARK: &str = "<!-- installed by paliadin -->";
const PERSONA_BEGIN: &str = "<!-- persona:begin -->";
const PERSONA_END: &str = "<!-- persona:end -->";

/// The lines of `text`, split at `\n` (a `\r` stays part of its line).
fn lines(text: &[u8]) -> Vec<&[u8]> {
    super::lines(text).collect()
}

/// The skill to install, with `persona` (a file's bytes) in place of its
/// persona section; `Err` when the source has no persona section to replace.
pub fn render(source: &str, persona: Option<&[u8]>) -> Result<Vec<u8>, &'static str> {
    let src = lines(source.as_bytes());
    if persona.is_some()
        && !(src.contains(&PERSONA_BEGIN.as_bytes()) && src.contains(&PERSONA_END.as_bytes()))
    {
        return Err("the skill has no persona section to replace");
    }
    let mut out = Vec::new();
    let mut push = |l: &[u8]| {
        out.extend_from_slice(l);
        out.push(b'\n');
    };
    let (mut front, mut skip) = (false, false);
    for (i, &line) in src.iter().enumerate() {
        if i == 0 && line == b"---" {
            front = true;
            push(line);
            continue;
        }
        if front && line == b"---" {
            front = false;
            push(line);
            push(MARK.as_bytes());
            continue;
        }
        if let (true, Some(p)) = (line == PERSONA_BEGIN.as_bytes(), persona) {
            push(line);
            for l in lines(p) {
                push(l);
            }
            skip = true;
            continue;
        }
        if line == PERSONA_END.as_bytes() {
            skip = false;
        }
        if !skip {
            push(line);
        }
    }
    Ok(out)
}

/// The agent's system prompt (`--append-system-prompt-file`): the
/// installed skill `rendered` without its frontmatter, which is the skill
/// list's and would only cost bytes in every request; the mark stays first.
pub fn system_prompt(rendered: &[u8]) -> Vec<u8> {
    let all = lines(rendered);
    let start = match all.first() {
        Some(&first) if first == b"---" => all
            .iter()
            .skip(1)
            .position(|l| *l == b"---")
            .map_or(0, |end| end + 2),
        _ => 0,
    };
    let mut out = Vec::new();
    for l in &all[start..] {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_after_the_frontmatter_and_swaps_the_persona() {
        let src = "---\nname: x\n---\nbody\n<!-- persona:begin -->\nold\n<!-- persona:end -->\nend";
        let plain = String::from_utf8(render(src, None).expect("render")).expect("utf-8");
        assert_eq!(
            plain,
            "---\nname: x\n---\n<!-- installed by paliadin -->\nbody\n<!-- persona:begin -->\nold\n<!-- persona:end -->\nend\n"
        );
        let swapped = render(src, Some(b"new\r\nlast")).expect("render");
        assert!(String::from_utf8(swapped)
            .expect("utf-8")
            .contains("<!-- persona:begin -->\nnew\r\nlast\n<!-- persona:end -->\n"));
        assert!(render("no section\n", Some(b"p")).is_err());
        let prompt = system_prompt(plain.as_bytes());
        assert_eq!(
            String::from_utf8(prompt).expect("utf-8"),
            "<!-- installed by paliadin -->\nbody\n<!-- persona:begin -->\nold\n<!-- persona:end -->\nend\n"
        );
        assert_eq!(system_prompt(b"no front\n"), b"no front\n");
        assert!(SOURCE.starts_with("---\nname: paliadin\n"));
    }
}
