#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! One bad fixture per kind of problem under `tests/fixtures/`, each with the exact diagnostics
//! it must produce (text and location) in `<name>.expected`. Run with `BLESS=1` to rewrite the
//! expectations, then review the diff.

use poolgate_policies::{Diagnostic, load_with_env};
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn fake_env(name: &str) -> Option<String> {
    (name == "PRESENT").then(|| "idp.example.com".to_owned())
}

fn base(file: &str) -> &str {
    file.rsplit('/').next().unwrap_or(file)
}

/// One diagnostic per paragraph: position, key, message, then label/help/related lines.
fn summary(d: &Diagnostic) -> String {
    let mut s = format!(
        "{}:{}:{} [{}] {}\n",
        base(&d.span.file),
        d.span.line,
        d.span.col,
        d.key,
        d.message
    );
    if let Some(l) = &d.label {
        s.push_str(&format!("  label: {l}\n"));
    }
    if let Some(h) = &d.help {
        s.push_str(&format!("  help: {h}\n"));
    }
    if let Some(r) = &d.related {
        let label = &r.label;
        s.push_str(&format!(
            "  related: {}:{}:{} {label}\n",
            base(&r.span.file),
            r.span.line,
            r.span.col
        ));
    }
    s
}

fn check(name: &str) {
    let path = fixtures().join(format!("{name}.yaml"));
    let diags = match load_with_env(&path, &fake_env) {
        Ok(_) => panic!("{name}: expected diagnostics, the policy loaded"),
        Err(d) => d,
    };
    // The human rendering names every problem and quotes the file.
    let human = diags.to_string();
    assert!(human.ends_with(&format!(
        "error: the policy has {} problem{}",
        diags.len(),
        if diags.len() == 1 { "" } else { "s" }
    )));
    for d in diags.iter() {
        assert!(
            human.contains(&format!(
                "--> {}:{}:{}",
                d.span.file, d.span.line, d.span.col
            )),
            "{human}"
        );
    }
    let json = diags.to_json();
    assert_eq!(json.as_array().unwrap().len(), diags.len());
    let actual: String = diags
        .iter()
        .map(summary)
        .collect::<Vec<_>>()
        .join("\n")
        .replace(&format!("{}/", fixtures().display()), "");
    let expected_path = fixtures().join(format!("{name}.expected"));
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&expected_path, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
    assert_eq!(
        actual, expected,
        "{name}: diagnostics differ\n--- human rendering ---\n{human}"
    );
}

macro_rules! fixture_tests {
    ($($name:ident),* $(,)?) => { $( #[test] fn $name() { check(stringify!($name)); } )* };
}

fixture_tests!(
    syntax,
    unknown_key,
    unknown_nested_key,
    unknown_keys_many,
    missing_key,
    duplicate_key,
    version,
    env,
    durations,
    addresses,
    issuers,
    upstreams,
    roles,
    mapping,
    routes,
    overlap,
    include_main,
    patterns,
    admin_clash,
    empty,
    not_a_list,
    type_errors_many,
    type_errors_flow,
    shape_anchor,
    shape_dash_line,
    shape_flow_lines,
    missing_key_last,
    server,
    connections,
    connections_unknown,
    route_headers,
    identity,
    signed_identity,
    signed_identity_none,
    total_timeout,
);

#[test]
fn a_missing_file_is_a_diagnostic() {
    let d = load_with_env(fixtures().join("does-not-exist.yaml"), &fake_env).unwrap_err();
    let first = d.iter().next().unwrap();
    assert!(
        first.message.starts_with("cannot read `"),
        "{}",
        first.message
    );
    assert_eq!((first.span.line, first.span.col), (1, 1));
}

#[test]
fn text_checks_refuse_includes() {
    let d =
        poolgate_policies::load_str("inline.yaml", "version: 1\ninclude: [x.yaml]\n", &fake_env)
            .unwrap_err();
    let first = d.iter().next().unwrap();
    assert_eq!(
        first.message,
        "includes are not available when checking a text on its own"
    );
    assert_eq!(
        (first.span.file.as_str(), first.span.line, first.span.col),
        ("inline.yaml", 2, 11)
    );
}

#[test]
fn human_rendering_quotes_the_line_with_a_caret() {
    let d = load_with_env(fixtures().join("mapping.yaml"), &fake_env).unwrap_err();
    let text = d.to_string();
    assert!(
        text.contains("error: unknown role `admni`\n --> "),
        "{text}"
    );
    assert!(
        text.contains("6 |   groups: { admins: [admni], readers: [reader] }\n  |                      ^^^^^ not defined under `roles:`\n  = help: did you mean `admin`?"),
        "{text}"
    );
}

/// A policy that loads can still carry warnings: `poolgate check` prints them and exits 0.
#[test]
fn a_wildcard_route_beside_a_host_less_route_of_the_same_upstream_warns() {
    let path = fixtures().join("wildcard_beside_any.yaml");
    let config = load_with_env(&path, &fake_env).unwrap();
    let warnings = &config.warnings;
    assert!(warnings.are_warnings());
    let all: Vec<String> = warnings.iter().map(summary).collect();
    // `tenants` (deeper names) and `fallback` (unlisted hosts): `also-web` has `web`'s target.
    // Not `api`: beside it is only `health`, whose literal path exposes nothing else.
    assert_eq!(
        all,
        [
            "wildcard_beside_any.yaml:8:20 [routes[0].match.host] `*.example.com` matches one label only, but route `fallback` without a host sends deeper names such as `a.b.example.com` to the same backend (upstream `web`)\n  \
             help: if the backend serves `*.example.com` at any depth, give route `fallback` a host: names no route lists then get 404 at the edge\n  \
             related: wildcard_beside_any.yaml:12:20 route `fallback` matches every host\n",
            "wildcard_beside_any.yaml:12:20 [routes[1].match.path] route `fallback` has no host, and its backend also serves host `*.example.com`: a host that no route names reaches that backend through this route, which serves it as its default virtual host\n  \
             help: give this route a host too, or make the backend's default virtual host refuse every request\n  \
             related: wildcard_beside_any.yaml:8:20 route `tenants` guards that host\n",
        ]
    );
    let text = warnings.to_string();
    assert!(
        text.starts_with("warning: `*.example.com` matches one label only"),
        "{text}"
    );
    assert!(
        text.ends_with("warning: the policy has 2 warnings"),
        "{text}"
    );
}
