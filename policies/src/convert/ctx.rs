//! The conversion context: current file, diagnostics so far, environment, and the helpers
//! that turn a spanned value into a checked one or a located diagnostic.

use crate::diag::{Diagnostic, Diagnostics, Span, suggest};
use crate::duration::parse_duration;
use crate::env::{EnvError, substitute};
use crate::file::S;
use serde_saphyr::Location;
use std::time::Duration;

/// Conversion state: the current file, the problems so far and the environment.
pub(crate) struct Ctx<'e> {
    pub file: String,
    pub diags: Diagnostics,
    env: &'e dyn Fn(&str) -> Option<String>,
}

/// A defined name: where it is, for duplicates and for the "first defined here" note.
#[derive(Clone)]
pub(crate) struct Def {
    pub name: String,
    pub span: Span,
}

impl<'e> Ctx<'e> {
    pub fn new(diags: Diagnostics, env: &'e dyn Fn(&str) -> Option<String>) -> Self {
        Self {
            file: String::new(),
            diags,
            env,
        }
    }

    pub fn span(&self, loc: &Location) -> Span {
        Span {
            file: self.file.clone(),
            line: u32::try_from(loc.line()).unwrap_or(u32::MAX),
            col: u32::try_from(loc.column()).unwrap_or(u32::MAX),
            len: u32::try_from(loc.span().len().max(1)).unwrap_or(1),
        }
    }

    pub fn diag(&self, loc: &Location, key: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(self.span(loc), key, message)
    }

    pub fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    pub fn error(&mut self, loc: &Location, key: &str, message: impl Into<String>) {
        self.push(self.diag(loc, key, message));
    }

    /// The value with `${NAME}` substituted; `None` (and a diagnostic) if that fails.
    pub fn text(&mut self, s: &S, key: &str) -> Option<String> {
        match substitute(&s.value, self.env) {
            Ok(v) => Some(v),
            Err(EnvError::Missing(name)) => {
                self.push(
                    self.diag(
                        &s.referenced,
                        key,
                        format!("environment variable `{name}` is not set"),
                    )
                    .label("used here")
                    .help(format!(
                        "set `{name}`, or give a default with `${{{name}:-value}}`"
                    )),
                );
                None
            }
            Err(EnvError::Malformed) => {
                self.push(
                    self.diag(
                        &s.referenced,
                        key,
                        format!("malformed substitution in `{}`", s.value),
                    )
                    .help("write `${NAME}` or `${NAME:-default}`; `$$` is a literal `$`"),
                );
                None
            }
        }
    }

    /// An optional duration; `None` when absent or invalid (the latter with a diagnostic).
    pub fn duration(&mut self, s: Option<&S>, key: &str) -> Option<Duration> {
        let s = s?;
        let text = self.text(s, key)?;
        match parse_duration(&text) {
            Some(d) => Some(d),
            None => {
                self.push(
                    self.diag(&s.referenced, key, format!("invalid duration `{text}`"))
                        .help("write a whole number and a unit: `250ms`, `30s`, `5m`, `1h`, `1d`"),
                );
                None
            }
        }
    }

    /// One word out of a fixed list, with a `did you mean` help.
    pub fn choice<'a>(
        &mut self,
        s: &S,
        key: &str,
        what: &str,
        options: &[&'a str],
    ) -> Option<&'a str> {
        let text = self.text(s, key)?;
        if let Some(found) = options.iter().find(|o| **o == text) {
            return Some(found);
        }
        let help = suggest(&text, options.iter().copied()).unwrap_or_else(|| {
            format!(
                "expected one of {}",
                options
                    .iter()
                    .map(|o| format!("`{o}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        });
        self.push(
            self.diag(&s.referenced, key, format!("unknown {what} `{text}`"))
                .help(help),
        );
        None
    }

    /// Records a definition; reports a duplicate of an earlier one.
    pub fn define(&mut self, defs: &mut Vec<Def>, name: &S, what: &str, key: &str) {
        let span = self.span(&name.referenced);
        if let Some(first) = defs.iter().find(|d| d.name == name.value) {
            let d = Diagnostic::new(span, key, format!("duplicate {what} `{}`", name.value))
                .label(format!("`{}` is defined again here", name.value))
                .related(
                    first.span.clone(),
                    format!("`{}` is first defined here", name.value),
                );
            self.push(d);
            return;
        }
        defs.push(Def {
            name: name.value.clone(),
            span,
        });
    }

    /// A reference to a defined name: its index, or a diagnostic with a suggestion.
    pub fn reference(
        &mut self,
        s: &S,
        key: &str,
        what: &str,
        section: &str,
        defs: &[Def],
    ) -> Option<usize> {
        if let Some(i) = defs.iter().position(|d| d.name == s.value) {
            return Some(i);
        }
        let help = suggest(&s.value, defs.iter().map(|d| d.name.as_str()));
        let d = self
            .diag(&s.referenced, key, format!("unknown {what} `{}`", s.value))
            .label(format!("not defined under `{section}:`"))
            .maybe_help(help);
        self.push(d);
        None
    }
}
