//! Every shape error of a file, not just the first.
//!
//! serde stops at the first value of the wrong shape (a string where a list is expected, a
//! missing required key). To find the next one, the element of a top-level section that holds
//! the error (`routes[3]`, `roles.admin`) is blanked — its lines emptied, so every other position
//! stays — and the file is read again. A pass counts only if blanking removed that element and
//! nothing else: the rest of the file must read as the same tree at the same places. Files with
//! anchors or aliases or lone carriage returns, and errors in flow-style sections, get the first
//! error only: blanking cannot follow them.

use crate::diag::Diagnostic;
use crate::keys::{Mark, Pos, Section, Tree};
use serde::de::DeserializeOwned;

/// How many times a file is read again past an element at fault, and how many bytes those
/// readings may cover in all, two per pass (a file over 64 KiB gets fewer passes).
const MAX_PASSES: usize = 64;
const MAX_REREAD_BYTES: usize = 8 << 20;

/// Said on the last error when more may follow it.
const STOPPED: &str = "poolgate stopped reading the file here: check again once these are fixed";

/// The lines of one section element, 1-based and inclusive, and what stands in for the section
/// once its last element is gone.
#[derive(Debug, PartialEq, Eq)]
struct Item {
    first: u64,
    last: u64,
    /// `[]` or `{}` (indented) when this is the section's only element left, so the section
    /// keeps its type.
    placeholder: Option<String>,
}

/// The text of line `line` (1-based) before column `col` (1-based, in characters).
fn before(lines: &[&str], (line, col): Pos) -> Option<String> {
    let text = lines.get(usize::try_from(line).ok()?.checked_sub(1)?)?;
    Some(
        text.chars()
            .take(usize::try_from(col).ok()?.saturating_sub(1))
            .collect(),
    )
}

/// The character at a position.
fn char_at(lines: &[&str], pos: Pos) -> Option<char> {
    let text = lines.get(usize::try_from(pos.0).ok()?.checked_sub(1)?)?;
    text.chars()
        .nth(usize::try_from(pos.1).ok()?.checked_sub(1)?)
}

/// The element of a block-style section that holds `line`: every element starts a line of its
/// own (a list item with its `- ` before it, nothing else), after the section's key.
fn item_at(sections: &[Section], lines: &[&str], line: u64, removed: &[u64]) -> Option<Item> {
    let s = sections
        .iter()
        .rev()
        .find(|s| s.key.0 <= line && line <= s.end)?;
    if matches!(char_at(lines, s.value), Some('[' | '{')) {
        return None; // flow style: elements share lines with brackets and commas
    }
    let own_line = |&p: &Pos| {
        before(lines, p).is_some_and(|b| {
            let b = b.trim();
            if s.list { b == "-" } else { b.is_empty() }
        })
    };
    let starts: Vec<u64> = s.elements.iter().map(|p| p.0).collect();
    let block = starts.first().is_some_and(|&f| f > s.key.0)
        && starts.windows(2).all(|w| w.first() < w.get(1))
        && s.elements.iter().all(own_line);
    if !block {
        return None;
    }
    let at = starts.iter().rposition(|&f| f <= line)?;
    let first = *starts.get(at)?;
    if removed.contains(&first) {
        return None;
    }
    let last = starts
        .get(at + 1)
        .map_or(s.end, |next| next.saturating_sub(1));
    let left = starts.iter().filter(|f| !removed.contains(f)).count();
    let indent = " ".repeat(usize::try_from(s.key.1).unwrap_or(1) + 1);
    let empty = if s.list { "[]" } else { "{}" };
    Some(Item {
        first,
        last,
        placeholder: (left == 1).then(|| format!("{indent}{empty}")),
    })
}

/// `text` with the lines of `item` blanked (the placeholder on the first).
fn without(text: &str, item: &Item) -> String {
    let mut out = String::with_capacity(text.len());
    for (n, line) in (1u64..).zip(text.split_inclusive('\n')) {
        if n < item.first || n > item.last {
            out.push_str(line);
            continue;
        }
        if n == item.first
            && let Some(p) = &item.placeholder
        {
            out.push_str(p);
        }
        if line.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// YAML that blanking cannot follow: an anchor or alias (a blanked anchor breaks the aliases to
/// it, and every pass would expand them again), or a carriage return that is not part of CRLF
/// (a line break to YAML, not to `split('\n')`). Quoted text and comments are skipped.
fn unsafe_to_blank(text: &str) -> bool {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut prev = '\n'; // the last character outside quotes that is not a space
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\r' && chars.peek() != Some(&'\n') {
            return true;
        }
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if q == '"' && c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
                prev = c;
            }
            continue;
        }
        match c {
            '"' | '\'' if matches!(prev, '\n' | ':' | '-' | '[' | '{' | ',' | '?') => {
                quote = Some(c);
            }
            '#' => {
                // A comment to the end of the line.
                for n in chars.by_ref() {
                    if n == '\n' {
                        break;
                    }
                }
                prev = '\n';
            }
            '&' | '*' if matches!(prev, '\n' | ':' | '-' | '[' | '{' | ',' | '?') => {
                return true;
            }
            '!' if matches!(prev, '\n' | ':' | '-' | '[' | '{' | ',' | '?') => {
                // A tag (`!!map`): an anchor may follow it.
                while chars.next_if(|n| !n.is_whitespace()).is_some() {}
            }
            ' ' | '\t' => {}
            other => prev = other,
        }
    }
    false
}

/// The marks of `shape` that survive blanking `items`.
fn kept(shape: &[Mark], items: &[Item]) -> Vec<Mark> {
    shape
        .iter()
        .filter(|m| !items.iter().any(|i| i.first <= m.line && m.line <= i.last))
        .copied()
        .collect()
}

/// The diagnostics of `first` (the error serde gave for `text`) and of every later shape error
/// the file's form lets poolgate reach; `report` turns an error into a diagnostic.
pub(crate) fn shape_errors<T: DeserializeOwned>(
    text: &str,
    tree: Option<&Tree>,
    first: &serde_saphyr::Error,
    report: impl Fn(&serde_saphyr::Error) -> Diagnostic,
) -> Vec<Diagnostic> {
    let passes = (MAX_REREAD_BYTES / (2 * text.len()).max(1)).clamp(1, MAX_PASSES);
    reach::<T>(text, tree, first, report, passes)
}

/// [`shape_errors`], reading the file at most `passes` times.
fn reach<T: DeserializeOwned>(
    text: &str,
    tree: Option<&Tree>,
    first: &serde_saphyr::Error,
    report: impl Fn(&serde_saphyr::Error) -> Diagnostic,
    passes: usize,
) -> Vec<Diagnostic> {
    let mut found = vec![report(first)];
    let Some(tree) = tree.filter(|_| !unsafe_to_blank(text)) else {
        return found;
    };
    let sections = tree.sections();
    let lines: Vec<&str> = text.split('\n').collect();
    let shape = tree.shape();
    let mut blanked: Vec<Item> = Vec::new();
    let mut patched = text.to_owned();
    let mut more = true; // an error may lie past the last one reported
    for _ in 1..passes {
        let line = found.last().map_or(0, |d| u64::from(d.span.line));
        let removed: Vec<u64> = blanked.iter().map(|b| b.first).collect();
        let Some(item) = item_at(&sections, &lines, line, &removed) else {
            break;
        };
        let next = without(&patched, &item);
        blanked.push(item);
        let err = match serde_saphyr::from_str::<T>(&next) {
            Ok(_) => {
                more = false;
                break;
            }
            Err(e) => e,
        };
        let same = Tree::parse(&next, false).is_some_and(|t| t.shape() == kept(&shape, &blanked));
        if !same {
            break;
        }
        let d = report(&err);
        if found.iter().any(|f| f.span == d.span) {
            break;
        }
        found.push(d);
        patched = next;
    }
    if more
        && found.len() > 1
        && let Some(last) = found.last_mut()
    {
        last.help = Some(match last.help.take() {
            Some(h) => format!("{h}; {STOPPED}"),
            None => STOPPED.to_owned(),
        });
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_section_element_of_a_line() {
        let text = "version: 1\nroles:\n  r:\n    allow: []\nroutes:\n  - name: a\n    upstream: x\n  # note\n  - name: b\n    upstream: y\nlimits: {}\n";
        let tree = Tree::parse(text, false).unwrap();
        let sections = tree.sections();
        let lines: Vec<&str> = text.split('\n').collect();
        let item = |line, removed: &[u64]| item_at(&sections, &lines, line, removed);
        // One role: gone, it leaves an empty mapping behind.
        let only = Item {
            first: 3,
            last: 4,
            placeholder: Some("  {}".into()),
        };
        assert_eq!(item(4, &[]), Some(only));
        // A route runs to the next one (comments included), the last to the next section.
        let a = Item {
            first: 6,
            last: 8,
            placeholder: None,
        };
        assert_eq!(item(7, &[]), Some(a));
        let b = Item {
            first: 9,
            last: 10,
            placeholder: None,
        };
        assert_eq!(item(10, &[]), Some(b));
        // Once the first route is gone, the second is the only one left.
        assert_eq!(
            item(9, &[6]).and_then(|i| i.placeholder),
            Some("  []".into())
        );
        assert_eq!(item(7, &[6]), None);
        // A section key itself and a struct section offer nothing to blank.
        assert_eq!(item(5, &[]), None);
        assert_eq!(item(11, &[]), None);
    }

    #[test]
    fn only_elements_on_lines_of_their_own_are_blanked() {
        for text in [
            // Flow style, on one line or several.
            "version: 1\nroutes: [ { name: a }, { name: b } ]\n",
            "version: 1\nroutes: [\n  { name: a },\n  { name: b }\n]\n",
            // A list item's dash on a line of its own.
            "version: 1\nroutes:\n  - name: a\n  -\n    name: b\n",
        ] {
            let tree = Tree::parse(text, false).unwrap();
            let lines: Vec<&str> = text.split('\n').collect();
            for line in 1..6 {
                assert_eq!(item_at(&tree.sections(), &lines, line, &[]), None, "{text}");
            }
        }
    }

    #[test]
    fn the_last_error_says_when_reading_stopped_early() {
        let text = "version: 1\nroutes:\n  - { public: a }\n  - { public: b }\n  - { public: c }\n";
        let tree = Tree::parse(text, false);
        let first = serde_saphyr::from_str::<crate::file::FileConfig>(text).unwrap_err();
        let report = |e: &serde_saphyr::Error| {
            let line = e
                .location()
                .map_or(0, |l| u32::try_from(l.line()).unwrap_or(0));
            Diagnostic::new(
                crate::diag::Span {
                    file: "f".into(),
                    line,
                    col: 1,
                    len: 1,
                },
                "",
                "shape",
            )
        };
        let lines = |found: &[Diagnostic]| found.iter().map(|d| d.span.line).collect::<Vec<_>>();
        // Every route's error, and nothing said about stopping: the file was read to its end.
        let all = reach::<crate::file::FileConfig>(text, tree.as_ref(), &first, report, 64);
        assert_eq!(lines(&all), [3, 4, 5]);
        assert!(all.iter().all(|d| d.help.is_none()));
        // Two passes: the third route's error is never met, and the second error says so.
        let two = reach::<crate::file::FileConfig>(text, tree.as_ref(), &first, report, 2);
        assert_eq!(lines(&two), [3, 4]);
        assert_eq!(two.last().and_then(|d| d.help.as_deref()), Some(STOPPED));
    }

    #[test]
    fn anchors_aliases_and_lone_carriage_returns_are_not_blanked() {
        for text in [
            "a: &x { b: 1 }\nc: *x\n",
            "a:\n  - &x b\n  - *x\n",
            "a: [*x]\n",
            "a: !!map &x {}\n",
            "a: 1\r# note\rb: 2\n",
        ] {
            assert!(unsafe_to_blank(text), "{text:?}");
        }
        for text in [
            "paths: [\"/**\", '/a/*']\nm: [\"*\"]\n",
            "d: \"a & b\" # *not an alias\n",
            "d: a*b & c\r\nx: 1\r\n",
            "paths: [/a/**]\n",
        ] {
            assert!(!unsafe_to_blank(text), "{text:?}");
        }
    }
}
