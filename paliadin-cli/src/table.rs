//! Aligned tables for people (`log`, `log probes`, `sessions`): each
//! column as wide as its widest cell, every cell one line of safe text
//! (`paliadin_core::text::one_line`). On a terminal the last column takes
//! what is left of the width: columns are capped, then dropped in the
//! order given until it has room, and long cells are cut with `…`; piped,
//! nothing is cut. Pure: never prints.

use paliadin_core::text::{cut, one_line};

/// The room the last column needs before no more columns are dropped.
const LAST_ROOM: usize = 16;

/// A table being built.
#[derive(Debug, Clone)]
pub struct Table {
    head: Vec<String>,
    rows: Vec<Vec<String>>,
    right: Vec<bool>,
    caps: Vec<Option<usize>>,
    drops: Vec<usize>,
}

impl Table {
    /// A table with these column headings.
    pub fn new(head: &[&str]) -> Table {
        Table {
            head: head.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
            right: vec![false; head.len()],
            caps: vec![None; head.len()],
            drops: Vec::new(),
        }
    }

    /// Column `col` aligned right (numbers).
    pub fn right(mut self, col: usize) -> Table {
        self.right[col] = true;
        self
    }

    /// Column `col` at most `max` characters wide on a terminal.
    pub fn cap(mut self, col: usize, max: usize) -> Table {
        self.caps[col] = Some(max);
        self
    }

    /// The columns to drop on a narrow terminal, least useful first.
    pub fn drops(mut self, order: &[usize]) -> Table {
        self.drops = order.to_vec();
        self
    }

    /// Adds a row (missing cells are empty); each cell is made one line.
    pub fn row(&mut self, cells: Vec<String>) {
        let mut r: Vec<String> = cells.iter().map(|c| one_line(c, None)).collect();
        r.resize(self.head.len(), String::new());
        self.rows.push(r);
    }

    /// The table's text, fitted to `width` columns when given.
    pub fn render(&self, width: Option<usize>) -> String {
        let n = self.head.len();
        let count = |s: &String| s.chars().count();
        let mut widths: Vec<usize> = (0..n)
            .map(|i| {
                self.rows
                    .iter()
                    .map(|r| count(&r[i]))
                    .chain([count(&self.head[i])])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut shown = vec![true; n];
        if let Some(total) = width {
            for (w, cap) in widths.iter_mut().zip(&self.caps) {
                if let Some(c) = cap {
                    *w = (*w).min(*c);
                }
            }
            let natural = widths[n - 1];
            let mut drops = self.drops.iter();
            let used = loop {
                let used: usize = (0..n - 1)
                    .filter(|&i| shown[i])
                    .map(|i| widths[i] + 2)
                    .sum();
                if total >= used + LAST_ROOM.min(natural) {
                    break used;
                }
                match drops.next() {
                    Some(&d) => shown[d] = false,
                    None => break used,
                }
            };
            widths[n - 1] = natural.min(total.saturating_sub(used).max(8));
        }
        let line = |cells: &[String]| {
            let mut l = String::new();
            for i in (0..n).filter(|&i| shown[i]) {
                let cell = match width {
                    Some(_) => cut(&cells[i], widths[i]),
                    None => cells[i].clone(),
                };
                let pad = " ".repeat(widths[i].saturating_sub(cell.chars().count()));
                if self.right[i] {
                    l.push_str(&pad);
                    l.push_str(&cell);
                } else {
                    l.push_str(&cell);
                    l.push_str(&pad);
                }
                l.push_str("  ");
            }
            l.trim_end().to_owned() + "\n"
        };
        let mut text = line(&self.head);
        for r in &self.rows {
            text.push_str(&line(r));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        let mut t = Table::new(&["ID", "MS", "SESSION", "MESSAGE"])
            .right(1)
            .cap(2, 6)
            .drops(&[1, 2]);
        t.row(vec![
            "a1".into(),
            "5".into(),
            "a-long-session".into(),
            "hello\nthere \u{1b}[2J world".into(),
        ]);
        t.row(vec!["b2".into(), "1234".into(), "s".into(), "hi".into()]);
        t
    }

    #[test]
    fn piped_nothing_is_cut_and_columns_align() {
        let text = table().render(None);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "ID    MS  SESSION         MESSAGE");
        assert_eq!(lines[1], "a1     5  a-long-session  hello there [2J world");
        assert_eq!(lines[2], "b2  1234  s               hi");
    }

    #[test]
    fn on_a_terminal_the_last_column_fits_and_columns_go_when_short() {
        let text = table().render(Some(30));
        assert!(text.lines().all(|l| l.chars().count() <= 30), "{text}");
        assert!(text.contains("a-lon…"), "capped: {text}");
        assert!(text.contains('…'), "{text}");
        let narrow = table().render(Some(24));
        assert!(!narrow.contains("MS"), "dropped first: {narrow}");
        assert!(narrow.lines().all(|l| l.chars().count() <= 24), "{narrow}");
    }
}
