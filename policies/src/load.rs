//! Reading the policy: the main file, its includes, and YAML errors turned into diagnostics.

use crate::Config;
use crate::convert::{Ctx, Parts, convert};
use crate::diag::{Diagnostic, Diagnostics, Span, suggest};
use crate::env::substitute;
use crate::keys::Tree;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// Where includes may be read from.
pub(crate) enum Includes<'a> {
    /// Relative to this directory, from the file system.
    From(&'a Path),
    /// Not at all (checking a text on its own, e.g. under a fuzzer).
    Refused,
}

/// Turns serde-saphyr's error into one of ours, in our message style.
fn yaml_error(file: &str, err: &serde_saphyr::Error) -> Diagnostic {
    let loc = err.location();
    let span = Span {
        file: file.to_owned(),
        line: loc
            .map_or(1, |l| u32::try_from(l.line()).unwrap_or(u32::MAX))
            .max(1),
        col: loc
            .map_or(1, |l| u32::try_from(l.column()).unwrap_or(u32::MAX))
            .max(1),
        len: loc
            .map_or(1, |l| u32::try_from(l.span().len()).unwrap_or(1))
            .max(1),
    };
    let raw = err.without_snippet().to_string();
    // Drop a trailing " at line L, column C" (the span says it), but not one inside the
    // message's own parentheses.
    let msg = match raw.rfind(" at line ") {
        Some(i) if !raw.get(i..).unwrap_or_default().contains(')') => {
            raw.get(..i).unwrap_or(&raw).to_owned()
        }
        _ => raw,
    };
    if let Some(rest) = msg.strip_prefix("unknown field `")
        && let Some((field, expected)) = rest.split_once('`')
    {
        let options: Vec<String> = expected
            .trim_start_matches(", expected ")
            .trim_start_matches("one of ")
            .split(", ")
            .map(|o| o.trim_matches('`').to_owned())
            .filter(|o| !o.is_empty() && !o.contains(' '))
            .collect();
        let help = suggest(field, options.iter().map(String::as_str)).or_else(|| {
            (!options.is_empty()).then(|| {
                let list: Vec<String> = options.iter().map(|o| format!("`{o}`")).collect();
                format!("expected one of {}", list.join(", "))
            })
        });
        return Diagnostic::new(span, field, format!("unknown key `{field}`"))
            .label("not part of the policy format here")
            .maybe_help(help);
    }
    if let Some(rest) = msg.strip_prefix("missing field `")
        && let Some((field, _)) = rest.split_once('`')
    {
        return Diagnostic::new(span, field, format!("missing key `{field}`"))
            .label(format!("`{field}` is required in this mapping"));
    }
    if let Some(rest) = msg.strip_prefix("duplicate mapping key: ") {
        let key = rest
            .split(", set DuplicateKeyPolicy")
            .next()
            .unwrap_or(rest);
        return Diagnostic::new(span, key, format!("duplicate key `{key}`"))
            .label("this key appears earlier in the same mapping");
    }
    let (message, help) = match msg.as_str() {
        "expected sequence start" => (
            "expected a list".to_owned(),
            Some("write `[a, b]`, or one `- item` per line"),
        ),
        "expected mapping start" => (
            "expected a mapping".to_owned(),
            Some("write `{ key: value }`, or one `key: value` per line"),
        ),
        "unexpected end of input" => (
            "the policy is empty".to_owned(),
            Some("a policy starts with `version: 1`"),
        ),
        _ => (msg, None),
    };
    Diagnostic::new(span, "", message).maybe_help(help.map(str::to_owned))
}

fn read(path: &Path, diags: &mut Diagnostics, at: Option<(Span, &str)>) -> Option<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) => {
            let (span, key) = at.unwrap_or((
                Span {
                    file: path.display().to_string(),
                    line: 1,
                    col: 1,
                    len: 1,
                },
                "",
            ));
            diags.push(Diagnostic::new(
                span,
                key,
                format!("cannot read `{}`: {e}", path.display()),
            ));
            None
        }
    }
}

/// serde's error as a diagnostic, with the key path found from its position in `tree`.
fn located(file: &str, tree: Option<&Tree>, err: &serde_saphyr::Error) -> Diagnostic {
    let mut d = yaml_error(file, err);
    // serde names no key path: find it from the position.
    let Some(tree) = tree else {
        return d;
    };
    if d.message.starts_with("missing key") {
        // Placed at the mapping's start or at one of its keys: the key path is the mapping's.
        if let Some(at) = tree.mapping_at(d.span.line, d.span.col)
            && !at.is_empty()
        {
            d.key = format!("{at}.{}", d.key);
        }
    } else if d.key.is_empty()
        && let Some(at) = tree.key_at(d.span.line, d.span.col)
    {
        d.key = at;
    }
    d
}

fn parse<T: DeserializeOwned>(
    file: &str,
    text: &str,
    diags: &mut Diagnostics,
    include: bool,
) -> Option<T> {
    diags.add_source(file, text);
    let err = match serde_saphyr::from_str::<T>(text) {
        Ok(v) => return Some(v),
        Err(e) => e,
    };
    // serde stops at the first problem. Unknown keys: a sweep finds them all; other shape
    // errors: as many as the file's form lets `shape_errors` reach.
    let tree = Tree::parse(text, include);
    let unknown = tree
        .as_ref()
        .map_or_else(Vec::new, |t| t.unknown_keys(file));
    let found = crate::shape_errors::shape_errors::<T>(text, tree.as_ref(), &err, |e| {
        located(file, tree.as_ref(), e)
    });
    for d in found {
        if !unknown.iter().any(|u| u.span == d.span) {
            diags.push(d);
        }
    }
    for d in unknown {
        diags.push(d);
    }
    None
}

/// A hash of a policy file's bytes: [`Config::read`] records one for each file a load read,
/// so a watcher can tell whether the files on disk are still the ones in force. It detects
/// change, not tampering.
pub fn content_hash(bytes: &[u8]) -> u64 {
    use std::hash::{DefaultHasher, Hasher};
    let mut h = DefaultHasher::new();
    h.write(bytes);
    h.finish()
}

/// Parses `text` (named `file`), reads its includes, validates and compiles.
pub(crate) fn load_text(
    file: &str,
    text: &str,
    includes: Includes<'_>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Diagnostics> {
    let mut diags = Diagnostics::new();
    let main: Option<crate::file::FileConfig> = parse(file, text, &mut diags, false);
    let Some(main) = main else {
        diags.sort();
        return Err(diags);
    };
    let mut parts = Vec::new();
    let mut seen: Vec<PathBuf> = Vec::new();
    let mut read_hashes = vec![(PathBuf::from(file), content_hash(text.as_bytes()))];
    for (i, inc) in main.include.iter().enumerate() {
        let key = format!("include[{i}]");
        let mut ctx = Ctx::new(Diagnostics::new(), env);
        ctx.file = file.to_owned();
        let span = ctx.span(&inc.referenced);
        let name = substitute(&inc.value, env).ok();
        let dir = match &includes {
            Includes::From(dir) => *dir,
            Includes::Refused => {
                diags.push(Diagnostic::new(
                    span,
                    key,
                    "includes are not available when checking a text on its own",
                ));
                continue;
            }
        };
        let Some(name) = name else {
            // Report the substitution problem through the usual path.
            let _ = ctx.text(inc, &key);
            for d in ctx.diags {
                diags.push(d);
            }
            continue;
        };
        let path = dir.join(&name);
        if seen.contains(&path) {
            diags.push(Diagnostic::new(
                span,
                key,
                format!("`{name}` is included twice"),
            ));
            continue;
        }
        seen.push(path.clone());
        let Some(inc_text) = read(&path, &mut diags, Some((span, &key))) else {
            continue;
        };
        read_hashes.push((path.clone(), content_hash(inc_text.as_bytes())));
        let inc_file = path.display().to_string();
        if let Some(parsed) = parse(&inc_file, &inc_text, &mut diags, true) {
            parts.push((inc_file, parsed));
        }
    }
    let ctx = Ctx::new(diags, env);
    let mut config = convert(
        Parts {
            main: (file.to_owned(), main),
            includes: parts,
        },
        ctx,
    )?;
    // Key files are watched as policy files are: a rotated key is a reload.
    for k in config.signed_identity.iter().flat_map(|s| &s.keys) {
        read_hashes.push((k.path.clone(), k.file_hash));
        config.files.push(k.path.clone());
    }
    config.read = read_hashes;
    Ok(config)
}

/// Reads a policy file from disk.
pub(crate) fn load_file(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Diagnostics> {
    let mut diags = Diagnostics::new();
    let Some(text) = read(path, &mut diags, None) else {
        return Err(diags);
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    load_text(&path.display().to_string(), &text, Includes::From(dir), env)
}
