//! A reply's Markdown made readable in a terminal: headings and `**bold**`
//! in bold, code dimmed (blocks indented), bullets as `•`, chips
//! `[Label](chip:kind/id)` as `Label ⟨kind/id⟩`, other links as
//! `text <url>`. Pure functions over strings; colour only when the caller
//! says so. Never wraps (the terminal does) and never prints.

use crate::client::TurnResult;

const BOLD: &str = "\x1b[1m";
const DIM: &str = "\x1b[2m";
/// Ends bold and dim alike.
const NORMAL: &str = "\x1b[22m";
const CHIP: &str = "\x1b[36m";
const DEFAULT_FG: &str = "\x1b[39m";

/// A reply body for the terminal, ending in a newline.
pub fn reply(body: &str, color: bool) -> String {
    let mut out = String::new();
    let mut in_fence = false;
    for line in body.trim_end_matches('\n').lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            out.push_str(&paint(&format!("    {line}"), DIM, NORMAL, color));
        } else if let Some(text) = heading(trimmed) {
            out.push_str(&paint(&inline(text, color, true), BOLD, NORMAL, color));
        } else if let Some(item) = bullet(trimmed) {
            let indent = &line[..line.len() - trimmed.len()];
            out.push_str(&format!("{indent}• {}", inline(item, color, false)));
        } else {
            out.push_str(&inline(line, color, false));
        }
        out.push('\n');
    }
    out
}

/// The line after a reply: `— 1.2 s · 3 chips · tools: sql` (dim in colour).
pub fn status_line(r: &TurnResult, color: bool) -> String {
    let mut parts = vec![format!("— {:.1} s", r.duration_ms as f64 / 1000.0)];
    match r.chip_count {
        Some(1) => parts.push("1 chip".to_owned()),
        Some(n) if n > 1 => parts.push(format!("{n} chips")),
        _ => {}
    }
    if !r.used_tools.is_empty() {
        parts.push(format!("tools: {}", r.used_tools.join(", ")));
    }
    format!("{}\n", paint(&parts.join(" · "), DIM, NORMAL, color))
}

fn paint(text: &str, on: &str, off: &str, color: bool) -> String {
    if color {
        format!("{on}{text}{off}")
    } else {
        text.to_owned()
    }
}

/// The text of an ATX heading (`# ` to `###### `).
fn heading(line: &str) -> Option<&str> {
    let hashes = line.len() - line.trim_start_matches('#').len();
    if (1..=6).contains(&hashes) {
        line[hashes..].strip_prefix(' ').map(str::trim)
    } else {
        None
    }
}

/// The text of a bullet item (`- `, `* ` or `+ `).
fn bullet(line: &str) -> Option<&str> {
    ["- ", "* ", "+ "].iter().find_map(|p| line.strip_prefix(p))
}

/// Inline Markdown: code spans, `**bold**`, links and chips. `bold_base`
/// says the whole line is bold already (a heading), so bold is restored
/// after a dimmed span instead of ended.
fn inline(text: &str, color: bool, bold_base: bool) -> String {
    let restore = if bold_base { BOLD } else { "" };
    let mut out = String::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c == '`' {
            if let Some(end) = rest[1..].find('`') {
                let code = &rest[1..1 + end];
                if color {
                    out.push_str(&format!("{DIM}{code}{NORMAL}{restore}"));
                } else {
                    out.push_str(&format!("`{code}`"));
                }
                rest = &rest[end + 2..];
                continue;
            }
        } else if let Some(after) = rest.strip_prefix("**") {
            // As in Markdown: no space just inside the markers.
            let end = after.find("**").filter(|&e| {
                let inner = &after[..e];
                !inner.is_empty() && inner.trim() == inner
            });
            if let Some(end) = end {
                let inner = &after[..end];
                if color && !bold_base {
                    out.push_str(&format!("{BOLD}{inner}{NORMAL}"));
                } else {
                    out.push_str(inner);
                }
                rest = &after[end + 2..];
                continue;
            }
        } else if c == '[' {
            if let Some((label, url, used)) = link(rest) {
                match url.strip_prefix("chip:") {
                    Some(chip) if color => {
                        out.push_str(&format!("{CHIP}{label} ⟨{chip}⟩{DEFAULT_FG}"));
                    }
                    Some(chip) => out.push_str(&format!("{label} ⟨{chip}⟩")),
                    None => out.push_str(&format!("{label} <{url}>")),
                }
                rest = &rest[used..];
                continue;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// `[label](url)` at the start of `s`: the label, the url and the bytes used.
fn link(s: &str) -> Option<(&str, &str, usize)> {
    let close = s.find("](")?;
    let label = &s[1..close];
    if label.contains(['[', ']']) {
        return None;
    }
    let after = &s[close + 2..];
    let end = after.find(')')?;
    let url = &after[..end];
    if url.is_empty() || url.contains(char::is_whitespace) {
        return None;
    }
    Some((label, url, close + 2 + end + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Status;

    #[test]
    fn plain_text_passes_unchanged() {
        assert_eq!(reply("Hello there.", false), "Hello there.\n");
        assert_eq!(reply("a\n\nb\n", false), "a\n\nb\n");
        assert_eq!(reply("", false), "");
    }

    #[test]
    fn chips_and_links() {
        assert_eq!(
            reply("See [Invoice 42](chip:invoice/42).", false),
            "See Invoice 42 ⟨invoice/42⟩.\n"
        );
        assert_eq!(
            reply("See [Invoice 42](chip:invoice/42).", true),
            "See \x1b[36mInvoice 42 ⟨invoice/42⟩\x1b[39m.\n"
        );
        assert_eq!(
            reply("[docs](https://example.com/a)", false),
            "docs <https://example.com/a>\n"
        );
        // Not links: left as written.
        assert_eq!(reply("[a] (b) [c](d e)", false), "[a] (b) [c](d e)\n");
        assert_eq!(reply("[unclosed](x", false), "[unclosed](x\n");
    }

    #[test]
    fn bold_and_code() {
        assert_eq!(reply("a **b** c", false), "a b c\n");
        assert_eq!(reply("a **b** c", true), "a \x1b[1mb\x1b[22m c\n");
        assert_eq!(reply("2 ** 3 and **", false), "2 ** 3 and **\n");
        assert_eq!(reply("run `ls -l` now", false), "run `ls -l` now\n");
        assert_eq!(reply("run `ls` now", true), "run \x1b[2mls\x1b[22m now\n");
        // Markup inside code is literal.
        assert_eq!(reply("`**x**`", true), "\x1b[2m**x**\x1b[22m\n");
        assert_eq!(reply("a ` b", false), "a ` b\n");
    }

    #[test]
    fn headings_bullets_and_fences() {
        assert_eq!(reply("## Totals", false), "Totals\n");
        assert_eq!(reply("# A **b**", true), "\x1b[1mA b\x1b[22m\n");
        assert_eq!(reply("#hashtag", false), "#hashtag\n");
        assert_eq!(
            reply("- one\n* two\n  + [x](chip:k/1)", false),
            "• one\n• two\n  • x ⟨k/1⟩\n"
        );
        assert_eq!(
            reply("text\n```sql\nselect **1**;\n```\nafter", false),
            "text\n    select **1**;\nafter\n"
        );
        assert_eq!(reply("```\nx\n```", true), "\x1b[2m    x\x1b[22m\n");
    }

    #[test]
    fn multibyte_text_is_kept() {
        assert_eq!(reply("Grüße – **schön** ✓", false), "Grüße – schön ✓\n");
    }

    fn result(duration_ms: i64, chips: Option<i64>, tools: &[&str]) -> TurnResult {
        TurnResult {
            turn_id: "t".into(),
            session: "s".into(),
            host: "local".into(),
            status: Status::Ok,
            response: Some(String::new()),
            used_tools: tools.iter().map(|t| t.to_string()).collect(),
            rows_seen: None,
            chip_count: chips,
            classifier_tag: None,
            tokens: None,
            duration_ms,
            error_code: None,
            error_detail: None,
            log_error: None,
            still_running: false,
        }
    }

    #[test]
    fn status_lines() {
        assert_eq!(
            status_line(&result(1234, Some(3), &["sql"]), false),
            "— 1.2 s · 3 chips · tools: sql\n"
        );
        assert_eq!(
            status_line(&result(50, Some(1), &["sql", "web"]), false),
            "— 0.1 s · 1 chip · tools: sql, web\n"
        );
        assert_eq!(status_line(&result(2000, Some(0), &[]), false), "— 2.0 s\n");
        assert_eq!(
            status_line(&result(2000, None, &[]), true),
            "\x1b[2m— 2.0 s\x1b[22m\n"
        );
    }
}
