//! A reply's Markdown made readable in a terminal, parsed by
//! `pulldown-cmark` (CommonMark with tables, task lists, strikethrough):
//! headings and bold in bold, code dimmed (blocks indented), bullets as `•`
//! and numbered items as `1.` at any depth, tables drawn by `comfy-table`
//! to fit `width`, chips `[Label](chip:kind/id)` as `Label ⟨kind/id⟩`, other
//! links as `text <url>`. Line breaks inside a paragraph are kept as the
//! agent wrote them. The body's own control characters are made visible
//! first (`paliadin_core::text::for_terminal`): the only escapes that reach
//! the terminal are ours. Pure functions over strings; colour only when the
//! caller says so. Never prints.

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

use paliadin_cli::store::TurnRow;
use paliadin_core::text::{for_terminal, one_line};

const BOLD: &str = "\x1b[1m";
const DIM: &str = "\x1b[2m";
/// Ends bold and dim alike.
const NORMAL: &str = "\x1b[22m";
const CHIP: &str = "\x1b[36m";
const DEFAULT_FG: &str = "\x1b[39m";

/// A reply body for the terminal, ending in a newline (empty for an empty
/// body). Tables fit `width` columns when given.
pub fn reply_width(body: &str, color: bool, width: Option<usize>) -> String {
    let mut r = Renderer {
        color,
        width,
        line_start: true,
        ..Renderer::default()
    };
    let opts = Options::ENABLE_TABLES | Options::ENABLE_TASKLISTS | Options::ENABLE_STRIKETHROUGH;
    let body = for_terminal(body);
    for event in Parser::new_ext(&body, opts) {
        r.event(visible(event));
    }
    r.out.truncate(r.out.trim_end_matches('\n').len());
    if !r.out.is_empty() {
        r.out.push('\n');
    }
    r.out
}

/// An event of the parser with its text made safe again: the parser
/// decodes character references (`&#x1b;` is ESC), so the body's own
/// cleaning is not enough.
fn visible(e: Event<'_>) -> Event<'_> {
    let safe = |t: pulldown_cmark::CowStr<'_>| -> pulldown_cmark::CowStr<'static> {
        for_terminal(&t).into_owned().into()
    };
    match e {
        Event::Text(t) => Event::Text(safe(t)),
        Event::Code(t) => Event::Code(safe(t)),
        Event::Html(t) => Event::Html(safe(t)),
        Event::InlineHtml(t) => Event::InlineHtml(safe(t)),
        Event::FootnoteReference(t) => Event::FootnoteReference(safe(t)),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Link {
            link_type,
            dest_url: safe(dest_url),
            title: safe(title),
            id: safe(id),
        }),
        e => e,
    }
}

/// One list being rendered: the next number of an ordered list.
struct List {
    next: Option<u64>,
}

#[derive(Default)]
struct Renderer {
    color: bool,
    width: Option<usize>,
    out: String,
    /// Open lists, outermost first.
    lists: Vec<List>,
    /// Inside a heading or `**strong**` (depth).
    bold: usize,
    /// Inside a fenced or indented code block.
    code_block: bool,
    /// A link being read: its destination and its text so far.
    link: Option<(String, String)>,
    /// A table being read: rows of cells, and the cell being read.
    table: Option<Vec<Vec<String>>>,
    cell: Option<String>,
    /// Block quote depth.
    quote: usize,
    /// At the start of a line (the indentation and quote marks are due).
    line_start: bool,
}

impl Renderer {
    fn indent(&self) -> String {
        let mut s = "│ ".repeat(self.quote);
        s.push_str(&"  ".repeat(self.lists.len().saturating_sub(1)));
        s
    }

    /// Text into the link, the table cell or the output.
    fn text(&mut self, t: &str) {
        if let Some((_, label)) = &mut self.link {
            label.push_str(t);
        } else if let Some(cell) = &mut self.cell {
            cell.push_str(t);
        } else {
            for (i, part) in t.split('\n').enumerate() {
                if i > 0 {
                    self.newline();
                }
                if part.is_empty() {
                    continue;
                }
                if self.line_start {
                    let ind = self.indent();
                    self.out.push_str(&ind);
                    if self.code_block {
                        self.out.push_str("    ");
                    }
                    self.line_start = false;
                }
                self.out.push_str(part);
            }
        }
    }

    /// Styled text: `on`/`off` only in colour.
    fn styled(&mut self, t: &str, on: &str, off: &str) {
        if self.color && self.link.is_none() && self.cell.is_none() {
            self.text(on);
            self.out.push_str(t);
            self.out.push_str(off);
        } else {
            self.text(t);
        }
    }

    fn newline(&mut self) {
        self.out.push('\n');
        self.line_start = true;
    }

    /// Ends the current line and leaves one blank line, once.
    fn block_end(&mut self) {
        if !self.line_start {
            self.newline();
        }
        if self.lists.is_empty() && !self.out.ends_with("\n\n") && !self.out.is_empty() {
            self.newline();
        }
    }

    fn restore_bold(&self) -> &'static str {
        if self.bold > 0 {
            BOLD
        } else {
            ""
        }
    }

    fn event(&mut self, e: Event<'_>) {
        match e {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(t) => {
                if self.code_block && self.color {
                    let lines: Vec<&str> = t.split_inclusive('\n').collect();
                    for l in lines {
                        let (body, nl) = match l.strip_suffix('\n') {
                            Some(b) => (b, true),
                            None => (l, false),
                        };
                        self.styled(body, DIM, NORMAL);
                        if nl {
                            self.newline();
                        }
                    }
                } else {
                    self.text(&t)
                }
            }
            Event::Code(c) => {
                if self.color && self.link.is_none() && self.cell.is_none() {
                    let restore = self.restore_bold();
                    self.text(DIM);
                    self.out.push_str(&c);
                    self.out.push_str(NORMAL);
                    self.out.push_str(restore);
                } else if self.link.is_some() || self.cell.is_some() {
                    self.text(&c);
                } else {
                    self.text(&format!("`{c}`"));
                }
            }
            Event::Html(h) | Event::InlineHtml(h) => self.text(&h),
            Event::SoftBreak | Event::HardBreak => {
                if let Some(cell) = &mut self.cell {
                    cell.push(' ');
                } else if let Some((_, label)) = &mut self.link {
                    label.push(' ');
                } else {
                    self.newline();
                }
            }
            Event::Rule => {
                self.text("────────");
                self.block_end();
            }
            Event::TaskListMarker(done) => self.text(if done { "[x] " } else { "[ ] " }),
            Event::FootnoteReference(f) => self.text(&format!("[{f}]")),
            _ => {}
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Heading { .. } => {
                self.bold += 1;
                if self.color {
                    self.text(BOLD);
                }
            }
            Tag::Strong => {
                self.bold += 1;
                if self.color && self.bold == 1 && self.link.is_none() && self.cell.is_none() {
                    self.text(BOLD);
                }
            }
            Tag::CodeBlock(_) => self.code_block = true,
            Tag::List(first) => {
                if !self.line_start {
                    self.newline();
                }
                self.lists.push(List { next: first });
            }
            Tag::Item => {
                if !self.line_start {
                    self.newline();
                }
                let marker = match self.lists.last_mut().and_then(|l| l.next.as_mut()) {
                    Some(n) => {
                        *n += 1;
                        format!("{}. ", *n - 1)
                    }
                    None => "• ".to_owned(),
                };
                self.text(&marker);
            }
            Tag::BlockQuote(..) => self.quote += 1,
            Tag::Link { dest_url, .. } => self.link = Some((dest_url.to_string(), String::new())),
            Tag::Table(_) => self.table = Some(Vec::new()),
            Tag::TableHead | Tag::TableRow => {
                if let Some(t) = &mut self.table {
                    t.push(Vec::new());
                }
            }
            Tag::TableCell => self.cell = Some(String::new()),
            _ => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Paragraph => self.block_end(),
            TagEnd::Heading(_) => {
                self.bold = self.bold.saturating_sub(1);
                if self.color {
                    self.out.push_str(NORMAL);
                }
                self.block_end();
            }
            TagEnd::Strong => {
                self.bold = self.bold.saturating_sub(1);
                if self.color && self.bold == 0 && self.link.is_none() && self.cell.is_none() {
                    self.out.push_str(NORMAL);
                }
            }
            TagEnd::CodeBlock => {
                self.code_block = false;
                self.block_end();
            }
            TagEnd::List(_) => {
                self.lists.pop();
                if !self.line_start {
                    self.newline();
                }
                if self.lists.is_empty() {
                    self.block_end();
                }
            }
            TagEnd::Item if !self.line_start => self.newline(),
            TagEnd::BlockQuote(..) => {
                self.quote = self.quote.saturating_sub(1);
                self.block_end();
            }
            TagEnd::Link => {
                if let Some((url, label)) = self.link.take() {
                    match url.strip_prefix("chip:") {
                        Some(chip) => {
                            let t = format!("{label} ⟨{chip}⟩");
                            self.styled(&t, CHIP, DEFAULT_FG);
                        }
                        None if url == label => self.text(&format!("<{url}>")),
                        None => self.text(&format!("{label} <{url}>")),
                    }
                }
            }
            TagEnd::TableCell => {
                if let (Some(cell), Some(t)) = (self.cell.take(), self.table.as_mut()) {
                    if let Some(row) = t.last_mut() {
                        row.push(cell.trim().to_owned());
                    }
                }
            }
            TagEnd::Table => {
                if let Some(rows) = self.table.take() {
                    let drawn = table(&rows, self.width);
                    if !self.line_start {
                        self.newline();
                    }
                    for l in drawn.lines() {
                        self.text(l);
                        self.newline();
                    }
                    self.block_end();
                }
            }
            _ => {}
        }
    }
}

/// A Markdown table drawn with `comfy-table`: the first row is the header;
/// cells wrap to fit `width` when given.
fn table(rows: &[Vec<String>], width: Option<usize>) -> String {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    if let Some(w) = width {
        t.set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
        t.set_width(u16::try_from(w).unwrap_or(u16::MAX));
    }
    let mut it = rows.iter();
    if let Some(head) = it.next() {
        t.set_header(head.clone());
    }
    for r in it {
        t.add_row(r.clone());
    }
    t.to_string()
}

/// The line after a reply: `— 1.2 s · 3 chips · tools: sql` (dim in colour).
pub fn status_line(r: &TurnRow, color: bool) -> String {
    let ms = r.duration_ms.unwrap_or(0);
    let mut parts = vec![format!("— {:.1} s", ms as f64 / 1000.0)];
    match r.outcome.chip_count {
        Some(1) => parts.push("1 chip".to_owned()),
        Some(n) if n > 1 => parts.push(format!("{n} chips")),
        _ => {}
    }
    if !r.outcome.used_tools.is_empty() {
        let tools = one_line(&r.outcome.used_tools.join(", "), None);
        parts.push(format!("tools: {tools}"));
    }
    format!("{}\n", paint(&parts.join(" · "), DIM, NORMAL, color))
}

/// A step of the agent's work in a few words, as the spinner and `chat`
/// show it: "Reading invoices.csv", "Running psql", "Read failed: a.csv".
/// `None` for an event that is no step of its own (a tool that finished,
/// the reply). The event's fields were cleaned by the shim; they are
/// cleaned again here, since they reach a terminal.
pub fn step(e: &paliadin_core::event::Event) -> Option<String> {
    use paliadin_core::event::Kind;
    let clean = |s: &str| one_line(s, Some(paliadin_core::event::MAX_SUMMARY));
    let tool = e.tool.as_deref().map(clean).unwrap_or_default();
    let target = e.target.as_deref().map(clean).filter(|t| !t.is_empty());
    let detail = e.detail.as_deref().map(clean).filter(|d| !d.is_empty());
    let with = |verb: &str| match &target {
        Some(t) => format!("{verb} {t}"),
        None => verb.to_owned(),
    };
    Some(match e.kind {
        Kind::ToolStarted => match tool.as_str() {
            "Read" | "NotebookRead" => with("Reading"),
            "Write" => with("Writing"),
            "Edit" | "MultiEdit" | "NotebookEdit" => with("Editing"),
            "Bash" => with("Running"),
            "Grep" | "Glob" => with("Searching"),
            "LS" => with("Listing"),
            "WebFetch" => with("Fetching"),
            "WebSearch" => "Searching the web".to_owned(),
            _ => with(&format!("Using {tool}")),
        },
        Kind::ToolFailed => match &target {
            Some(t) => format!("{tool} failed: {t}"),
            None => format!("{tool} failed"),
        },
        Kind::Compacting => "Compacting the conversation".to_owned(),
        Kind::Blocked => match detail {
            Some(d) => format!("Waiting on a person: {d}"),
            None => "Waiting on a person".to_owned(),
        },
        Kind::Failed => match detail {
            Some(d) => format!("Failed: {d}"),
            None => "Failed".to_owned(),
        },
        Kind::PermissionRequest => {
            let id = e.id.as_deref().map(clean).unwrap_or_default();
            match &target {
                Some(t) => format!("Asking to allow {tool}: {t} (request {id})"),
                None => format!("Asking to allow {tool} (request {id})"),
            }
        }
        Kind::Woke => match detail {
            Some(d) => format!("Waking the agent: {d}"),
            None => "Waking the agent".to_owned(),
        },
        Kind::Submitted
        | Kind::ToolFinished
        | Kind::Replied
        | Kind::Idle
        | Kind::Usage
        | Kind::Reply
        | Kind::Other => return None,
    })
}

/// The line `turn` shows on a terminal for a permission request: the
/// command that answers it from another shell, the turn named `turn` (a
/// unique prefix of its id, or the whole id). `None` for another event.
pub fn approve_hint(e: &paliadin_core::event::Event, turn: &str) -> Option<String> {
    if e.kind != paliadin_core::event::Kind::PermissionRequest {
        return None;
    }
    let id = one_line(e.id.as_deref().unwrap_or_default(), Some(16));
    let turn = one_line(turn, Some(40));
    Some(format!(
        "{} answer from another shell: paliadin-cli approve {turn} {id} allow|deny",
        question(e)
    ))
}

/// The question of a permission request, as `chat` asks it and `turn`
/// names it: "Allow Bash: git?" (tool and safe target, made visible text).
pub fn question(e: &paliadin_core::event::Event) -> String {
    let clean = |s: &str| one_line(s, Some(paliadin_core::event::MAX_SUMMARY));
    let tool = e.tool.as_deref().map(clean).unwrap_or_default();
    match e.target.as_deref().map(clean).filter(|t| !t.is_empty()) {
        Some(t) => format!("Allow {tool}: {t}?"),
        None => format!("Allow {tool}?"),
    }
}

/// A step as a line above the reply in `chat`: dim in colour.
pub fn step_line(step: &str, color: bool) -> String {
    paint(&format!("· {step}"), DIM, NORMAL, color)
}

fn paint(text: &str, on: &str, off: &str, color: bool) -> String {
    if color {
        format!("{on}{text}{off}")
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paliadin_cli::store::Status;

    fn reply(body: &str, color: bool) -> String {
        reply_width(body, color, None)
    }

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
        // `-` then `*`: two lists, as CommonMark has it.
        assert_eq!(
            reply("- one\n* two\n  + [x](chip:k/1)", false),
            "• one\n\n• two\n  • x ⟨k/1⟩\n"
        );
        assert_eq!(
            reply("text\n```sql\nselect **1**;\n```\nafter", false),
            "text\n\n    select **1**;\n\nafter\n"
        );
        assert_eq!(reply("```\nx\n```", true), "    \x1b[2mx\x1b[22m\n");
    }

    #[test]
    fn numbered_and_nested_lists_tables_and_quotes() {
        assert_eq!(
            reply(
                "1. first\n2. second\n   - inner **b**\n     1. deep\n3. third",
                false
            ),
            "1. first\n2. second\n  • inner b\n    1. deep\n3. third\n"
        );
        assert_eq!(reply("7. seven\n8. eight", false), "7. seven\n8. eight\n");
        let t = reply(
            "Totals:\n\n| region | sales |\n| --- | ---: |\n| Europe | 12 |\n| [Asia](chip:region/asia) | 7 |\n\nDone.",
            false,
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "Totals:");
        assert!(
            lines
                .iter()
                .any(|l| l.contains("region") && l.contains("sales")),
            "{t}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.contains("Asia ⟨region/asia⟩") && l.contains('7')),
            "{t}"
        );
        assert_eq!(*lines.last().unwrap(), "Done.");
        // A table fits the width it is given: every line, by wrapping cells.
        let wide = format!("| a | b |\n|---|---|\n| {} | x |", "word ".repeat(30));
        let t = reply_width(&wide, false, Some(40));
        assert!(t.lines().all(|l| l.chars().count() <= 40), "{t}");
        assert_eq!(reply("> quoted\n> twice", false), "│ quoted\n│ twice\n");
        assert_eq!(
            reply("- [x] done\n- [ ] todo", false),
            "• [x] done\n• [ ] todo\n"
        );
    }

    /// Issue 17: no payload reaches the terminal raw, also when it is
    /// spelled as a Markdown character reference (`&#x1b;`, which the
    /// parser decodes) or hidden in a link, a chip, code or a table.
    #[test]
    fn no_control_of_the_body_survives_rendering() {
        let raw = |s: &str| {
            s.chars()
                .any(|c| paliadin_core::text::is_unsafe(c) && c != '\n' && c != '\t')
        };
        let refs = [
            "&#x1b;]0;PWNED-TITLE&#x7;",
            "&#27;[2J",
            "&#x9b;2J and &#157;0;T&#156;",
            "abc&#x202e;fed pay&#8203;pal",
            "[x&#x1b;[2J](chip:k/&#x1b;]0;T&#7;)",
            "[docs](https://e.example/&#x1b;]0;T&#7;)",
            "`&#x1b;`",
            "| a |\n|---|\n| &#x1b;[2J |",
            "<b>&#x1b;[2J</b>",
        ];
        for body in refs {
            for color in [false, true] {
                let shown = reply(body, color);
                let ours = shown
                    .replace(BOLD, "")
                    .replace(DIM, "")
                    .replace(NORMAL, "")
                    .replace(CHIP, "")
                    .replace(DEFAULT_FG, "");
                assert!(!raw(&ours), "{body:?} -> {shown:?}");
            }
        }
    }

    #[test]
    fn multibyte_text_is_kept() {
        assert_eq!(reply("Grüße – **schön** ✓", false), "Grüße – schön ✓\n");
    }

    #[test]
    fn steps_say_what_the_agent_does_in_a_few_clean_words() {
        use paliadin_core::event::{Event, Kind};
        let e = |kind, tool: Option<&str>, target: Option<&str>| Event {
            tool: tool.map(str::to_owned),
            target: target.map(str::to_owned),
            ..Event::new(kind, "t")
        };
        let read = e(Kind::ToolStarted, Some("Read"), Some("invoices.csv"));
        assert_eq!(step(&read).as_deref(), Some("Reading invoices.csv"));
        let bash = e(Kind::ToolStarted, Some("Bash"), Some("psql"));
        assert_eq!(step(&bash).as_deref(), Some("Running psql"));
        let odd = e(Kind::ToolStarted, Some("mcp__db__q"), None);
        assert_eq!(step(&odd).as_deref(), Some("Using mcp__db__q"));
        let failed = e(Kind::ToolFailed, Some("Read"), Some("\u{1b}[2Jx.csv"));
        assert_eq!(step(&failed).as_deref(), Some("Read failed: [2Jx.csv"));
        assert_eq!(step(&e(Kind::ToolFinished, Some("Read"), None)), None);
        assert_eq!(step(&e(Kind::Submitted, None, None)), None);
        let ask = Event {
            id: Some("1".into()),
            ..e(
                Kind::PermissionRequest,
                Some("Bash"),
                Some("git\u{1b}]0;T\u{7}"),
            )
        };
        assert_eq!(question(&ask), "Allow Bash: git ]0;T?");
        assert_eq!(
            approve_hint(&ask, "3f2a9c1e").as_deref(),
            Some("Allow Bash: git ]0;T? answer from another shell: paliadin-cli approve 3f2a9c1e 1 allow|deny")
        );
        assert_eq!(approve_hint(&read, "3f2a9c1e"), None);
        assert_eq!(step_line("Reading a", false), "· Reading a");
        assert_eq!(step_line("Reading a", true), "\x1b[2m· Reading a\x1b[22m");
    }

    fn result(duration_ms: i64, chips: Option<i64>, tools: &[&str]) -> TurnRow {
        use paliadin_cli::store::{NewTurn, Outcome};
        let turn = NewTurn {
            turn_id: uuid::Uuid::nil(),
            user_id: None,
            session: "s".into(),
            host: "local".into(),
            started_ms: 0,
            message: "m".into(),
            page_origin: None,
        };
        let outcome = Outcome {
            ended_ms: Some(duration_ms),
            status: Status::Ok,
            response: Some(String::new()),
            used_tools: tools.iter().map(|t| t.to_string()).collect(),
            chip_count: chips,
            ..Outcome::running()
        };
        TurnRow::new(turn, outcome)
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
