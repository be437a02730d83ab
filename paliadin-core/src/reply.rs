//! The reply rules of PROTOCOL section 4: the optional trailer on the last
//! line, chips, and the token estimate. Pure functions over text; never
//! reads a file.

use serde::{Deserialize, Serialize};

/// How a trailer line opens.
pub const TRAILER_OPEN: &str = "<!-- paliadin-meta:";
/// How a trailer line closes.
pub const TRAILER_CLOSE: &str = "-->";

/// The fields a trailer may carry; each is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub used_tools: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_seen: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classifier_tag: Option<String>,
}

/// A reply split into its body and what its trailer said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    pub body: String,
    pub meta: Meta,
    pub chip_count: usize,
    pub tokens: usize,
}

/// Splits a reply into body and trailer. A malformed trailer leaves the
/// body whole (trailer line included) and the fields empty.
pub fn split_trailer(reply: &str) -> (String, Meta) {
    let trimmed = reply.trim_end();
    let (head, last) = match trimmed.rfind('\n') {
        Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
        None => ("", trimmed),
    };
    let line = last.trim();
    if let Some(inner) = line
        .strip_prefix(TRAILER_OPEN)
        .and_then(|r| r.strip_suffix(TRAILER_CLOSE))
    {
        if let Ok(meta) = serde_json::from_str::<Meta>(inner.trim()) {
            return (head.trim_end().to_owned(), meta);
        }
    }
    (reply.to_owned(), Meta::default())
}

/// The number of Markdown links whose target uses the `chip:` scheme.
pub fn chip_count(body: &str) -> usize {
    let mut count = 0;
    let mut rest = body;
    while let Some(i) = rest.find("](chip:") {
        let before = &rest[..i];
        let after = &rest[i + 7..];
        // A link needs its opening bracket on the same line and a closing
        // parenthesis after a non-empty target.
        let opened = before
            .rfind('[')
            .is_some_and(|o| !before[o..].contains('\n'));
        let closed = after
            .find(')')
            .is_some_and(|c| c > 0 && !after[..c].contains(char::is_whitespace));
        if opened && closed {
            count += 1;
        }
        rest = after;
    }
    count
}

/// The body's length in characters divided by 4, rounded up.
pub fn tokens(body: &str) -> usize {
    body.chars().count().div_ceil(4)
}

/// Everything the client derives from a raw reply.
pub fn parse(reply: &str) -> Parsed {
    let (body, meta) = split_trailer(reply);
    Parsed {
        chip_count: chip_count(&body),
        tokens: tokens(&body),
        body,
        meta,
    }
}

/// Renders a trailer line for `meta` (used by the test agent and docs).
pub fn render_trailer(meta: &Meta) -> String {
    format!(
        "{TRAILER_OPEN} {} {TRAILER_CLOSE}",
        serde_json::to_string(meta).unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailer_is_stripped_and_parsed() {
        let r = "Hello [Invoice 42](chip:invoice/42) and [x](chip:a)\n\n<!-- paliadin-meta: {\"used_tools\":[\"sql\"],\"rows_seen\":12,\"classifier_tag\":\"billing\"} -->\n";
        let p = parse(r);
        assert_eq!(
            p.body,
            "Hello [Invoice 42](chip:invoice/42) and [x](chip:a)"
        );
        assert_eq!(p.meta.used_tools, vec!["sql"]);
        assert_eq!(p.meta.rows_seen, Some(12));
        assert_eq!(p.meta.classifier_tag.as_deref(), Some("billing"));
        assert_eq!(p.chip_count, 2);
        assert_eq!(p.tokens, p.body.chars().count().div_ceil(4));
    }

    #[test]
    fn malformed_trailer_leaves_body_whole() {
        for r in [
            "a\n<!-- paliadin-meta: {oops} -->",
            "a\n<!-- paliadin-meta: {\"rows_seen\":\"x\"} -->",
            "a\n<!-- other -->",
        ] {
            let (body, meta) = split_trailer(r);
            assert_eq!(body, r);
            assert_eq!(meta, Meta::default());
        }
        let (body, meta) = split_trailer("<!-- paliadin-meta: {} -->");
        assert_eq!((body.as_str(), meta), ("", Meta::default()));
    }

    #[test]
    fn chips_need_link_form() {
        assert_eq!(
            chip_count("see (chip:x) and [a](http://x) and [b](chip:) [c]\n(chip:y)"),
            0
        );
        assert_eq!(chip_count("[ä](chip:ü/1)[b](chip:2)"), 2);
        assert_eq!(tokens("ü"), 1);
        assert_eq!(tokens(""), 0);
        assert_eq!(tokens("12345"), 2);
    }

    #[test]
    fn rendered_trailer_parses_back() {
        let m = Meta {
            used_tools: vec!["sql".into()],
            rows_seen: Some(3),
            classifier_tag: None,
        };
        let (body, got) = split_trailer(&format!("body\n{}", render_trailer(&m)));
        assert_eq!((body.as_str(), got), ("body", m));
    }
}
