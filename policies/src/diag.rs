//! Diagnostics: every problem found in a policy file, each pointing at the input.
//!
//! Messages follow cedar's style (lowercase, no trailing period, input in backticks); the human
//! rendering follows rustc's (`error: …`, `--> file:line:col`, a source line and a caret).

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// A position in one of the files that make up a policy.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Span {
    /// The file as it was named (the main file's path, or an include's path as resolved).
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub col: u32,
    /// Width of the caret, in characters (at least 1 when rendered).
    pub len: u32,
}

/// One problem in the policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Where the problem is.
    #[serde(flatten)]
    pub span: Span,
    /// The key the problem concerns, as a path such as `routes[2].upstream`.
    pub key: String,
    /// What is wrong (cedar style).
    pub message: String,
    /// A short label printed beside the caret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// How to fix it, e.g. ``did you mean `admin`?``.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// A second place involved (the other route of a conflict, the first of a duplicate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub related: Option<Related>,
}

/// The second location of a diagnostic that involves two places.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Related {
    /// Where.
    #[serde(flatten)]
    pub span: Span,
    /// What is there.
    pub label: String,
}

impl Diagnostic {
    /// A diagnostic with a message and no label, help or related place.
    pub fn new(span: Span, key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            span,
            key: key.into(),
            message: message.into(),
            label: None,
            help: None,
            related: None,
        }
    }

    /// Adds the label printed beside the caret.
    #[must_use]
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Adds a help line.
    #[must_use]
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Adds a help line only when there is one.
    #[must_use]
    pub fn maybe_help(mut self, help: Option<String>) -> Self {
        if help.is_some() {
            self.help = help;
        }
        self
    }

    /// Adds the second place involved.
    #[must_use]
    pub fn related(mut self, span: Span, label: impl Into<String>) -> Self {
        self.related = Some(Related {
            span,
            label: label.into(),
        });
        self
    }
}

/// Every problem found while loading a policy, with the sources needed to render them.
#[derive(Clone, Debug, Default)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
    sources: BTreeMap<String, String>,
    /// Advice on a policy that loads, rendered as `warning:` rather than `error:`.
    warning: bool,
}

impl Diagnostics {
    /// No problems yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Remembers a file's text so that rendering can quote it.
    pub fn add_source(&mut self, file: &str, text: &str) {
        self.sources.insert(file.to_owned(), text.to_owned());
    }

    /// Records a problem.
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.items.push(diagnostic);
    }

    /// No warnings yet, with the sources of `self` to quote.
    pub(crate) fn warnings_sharing_sources(&self) -> Self {
        Self {
            items: Vec::new(),
            sources: self.sources.clone(),
            warning: true,
        }
    }

    /// Whether these are warnings (the policy loaded) rather than errors.
    pub fn are_warnings(&self) -> bool {
        self.warning
    }

    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// How many problems.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// The problems, in file and position order once loading has finished.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.items.iter()
    }

    /// Orders the problems by file, line and column (stable for equal positions).
    pub(crate) fn sort(&mut self) {
        self.items.sort_by(|a, b| a.span.cmp(&b.span));
    }

    /// The problems as a JSON array (each: file, line, col, len, key, message, label?, help?, related?).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.items).unwrap_or(serde_json::Value::Null)
    }

    fn source_line(&self, span: &Span) -> Option<&str> {
        let text = self.sources.get(&span.file)?;
        text.lines().nth(span.line.checked_sub(1)? as usize)
    }

    /// The gutter width: the widest line number this diagnostic prints.
    fn gutter(d: &Diagnostic) -> usize {
        let related = d.related.as_ref().map_or(0, |r| r.span.line);
        d.span.line.max(related).to_string().len()
    }

    fn render_snippet(
        &self,
        f: &mut fmt::Formatter<'_>,
        span: &Span,
        key: &str,
        label: Option<&str>,
        width: usize,
    ) -> fmt::Result {
        let pad = " ".repeat(width);
        write!(f, "{pad}--> {}:{}:{}", span.file, span.line, span.col)?;
        if key.is_empty() {
            writeln!(f)?;
        } else {
            writeln!(f, " (key `{key}`)")?;
        }
        let Some(line) = self.source_line(span) else {
            return Ok(());
        };
        writeln!(f, "{pad} |")?;
        writeln!(f, "{:>width$} | {line}", span.line)?;
        // The caret sits under the column counted in characters; tabs are kept so it lines up.
        let before = span.col.saturating_sub(1) as usize;
        let indent: String = line
            .chars()
            .take(before)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        let room = line.chars().count().saturating_sub(before).max(1);
        let carets = "^".repeat((span.len.max(1) as usize).min(room));
        match label {
            Some(label) => writeln!(f, "{pad} | {indent}{carets} {label}"),
            None => writeln!(f, "{pad} | {indent}{carets}"),
        }
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.items {
            let width = Self::gutter(d);
            let pad = " ".repeat(width);
            let word = if self.warning { "warning" } else { "error" };
            writeln!(f, "{word}: {}", d.message)?;
            self.render_snippet(f, &d.span, &d.key, d.label.as_deref(), width)?;
            if let Some(related) = &d.related {
                writeln!(f, "{pad} = note: {}", related.label)?;
                self.render_snippet(f, &related.span, "", None, width)?;
            }
            if let Some(help) = &d.help {
                writeln!(f, "{pad} = help: {help}")?;
            }
            writeln!(f)?;
        }
        let n = self.items.len();
        let plural = if n == 1 { "" } else { "s" };
        if self.warning {
            write!(f, "warning: the policy has {n} warning{plural}")
        } else {
            write!(f, "error: the policy has {n} problem{plural}")
        }
    }
}

impl std::error::Error for Diagnostics {}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

/// Edit distance counting an adjacent transposition as one edit (optimal string alignment),
/// for ``did you mean `x`?``.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    let at = |i: usize, j: usize| i * w + j;
    for i in 0..=a.len() {
        if let Some(x) = d.get_mut(at(i, 0)) {
            *x = i;
        }
    }
    for j in 0..=b.len() {
        if let Some(x) = d.get_mut(at(0, j)) {
            *x = j;
        }
    }
    let get =
        |d: &Vec<usize>, i: usize, j: usize| d.get(at(i, j)).copied().unwrap_or(usize::MAX / 2);
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let (ca, cb) = (a.get(i - 1), b.get(j - 1));
            let cost = usize::from(ca != cb);
            let mut v = (get(&d, i - 1, j) + 1)
                .min(get(&d, i, j - 1) + 1)
                .min(get(&d, i - 1, j - 1) + cost);
            if i > 1 && j > 1 && ca == b.get(j - 2) && a.get(i - 2) == cb {
                v = v.min(get(&d, i - 2, j - 2) + 1);
            }
            if let Some(x) = d.get_mut(at(i, j)) {
                *x = v;
            }
        }
    }
    get(&d, a.len(), b.len())
}

/// The closest candidate within a third of the word's length (at least 1 edit), if any.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let limit = word.chars().count().div_ceil(3).max(1);
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_and_suggestion() {
        assert_eq!(edit_distance("admni", "admin"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("rotues", "routes"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(
            suggest("admni", ["reader", "admin"]).as_deref(),
            Some("did you mean `admin`?")
        );
        assert_eq!(suggest("zzz", ["reader", "admin"]), None);
    }

    #[test]
    fn renders_like_rustc() {
        let mut d = Diagnostics::new();
        d.add_source("p.yaml", "routes:\n  - roles: [admni]\n");
        let span = Span {
            file: "p.yaml".into(),
            line: 2,
            col: 14,
            len: 5,
        };
        d.push(
            Diagnostic::new(span, "routes[0].roles[0]", "unknown role `admni`")
                .label("not defined under `roles:`")
                .help("did you mean `admin`?"),
        );
        let text = d.to_string();
        assert_eq!(
            text,
            "error: unknown role `admni`\n --> p.yaml:2:14 (key `routes[0].roles[0]`)\n  |\n2 |   - roles: [admni]\n  |              ^^^^^ not defined under `roles:`\n  = help: did you mean `admin`?\n\nerror: the policy has 1 problem"
        );
        let json = d.to_json();
        assert_eq!(json[0]["line"], 2);
        assert_eq!(json[0]["col"], 14);
        assert_eq!(json[0]["help"], "did you mean `admin`?");
    }
}
