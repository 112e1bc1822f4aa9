#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Every example policy loads without a single diagnostic, and behaves as its comments say.

use poolgate_policies::{Authority, Config, Principal, Reason, load_with_env};
use serde_json::json;
use std::path::{Path, PathBuf};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// Examples must load with no variable set: each `${VAR:-default}` has a default.
fn load(name: &str) -> Config {
    let path = examples().join(name);
    load_with_env(&path, &|_| None).unwrap_or_else(|d| panic!("{}:\n{d}", path.display()))
}

#[test]
fn every_example_loads_cleanly() {
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(examples()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) == Some("yaml") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            assert!(!load(&name).routes.is_empty(), "{name}");
            seen.push(name);
        }
    }
    seen.sort();
    assert_eq!(seen, ["demo.yaml", "multi-issuer.yaml", "shop.yaml"]);
}

#[test]
fn demo_behaves_as_documented() {
    let c = load("demo.yaml");
    assert_eq!(c.issuers[0].name, "demo");
    assert_eq!(c.upstreams[0].name, "demo");
    let claims = json!({"sub": "alice-id"}).as_object().cloned().unwrap();
    let groups = vec!["readers".to_owned()];
    let p = Principal {
        issuer: "demo",
        token_use: Some("access"),
        groups: &groups,
        scopes: &[],
        has_groups_claim: true,
        has_scopes_claim: true,
        claims: &claims,
    };
    let r = |m: &str, path: &str, who: Option<&Principal<'_>>| {
        c.decide_request(&Authority::parse(b"localhost:8080").unwrap(), m, path, who)
            .reason
    };
    assert_eq!(r("GET", "/healthz", None), Reason::Public);
    assert_eq!(r("GET", "/articles/1", None), Reason::NoToken);
    assert_eq!(r("GET", "/articles/1", Some(&p)), Reason::Allowed);
    assert_eq!(r("POST", "/articles/1", Some(&p)), Reason::NoRoleAllows);
    assert_eq!(
        r("GET", "/users/alice-id/settings", Some(&p)),
        Reason::Allowed
    );
    assert_eq!(
        r("GET", "/users/bob-id/settings", Some(&p)),
        Reason::NoRoleAllows
    );
    assert_eq!(r("GET", "/admin/x", Some(&p)), Reason::MissingRole);
}

#[test]
fn demo_takes_its_addresses_from_the_environment() {
    let env = |n: &str| match n {
        "POOLGATE_DEMO_ISSUER" => Some("http://127.0.0.1:4455/pool".to_owned()),
        "POOLGATE_DEMO_JWKS_URL" => Some("http://127.0.0.1:4455/pool/jwks.json".to_owned()),
        "POOLGATE_DEMO_UPSTREAM" => Some("127.0.0.1:4456".to_owned()),
        _ => None,
    };
    let c = load_with_env(examples().join("demo.yaml"), &env).unwrap();
    assert_eq!(c.issuers[0].source.issuer(), "http://127.0.0.1:4455/pool");
    assert_eq!(c.upstreams[0].targets, ["127.0.0.1:4456"]);
}

#[test]
fn shop_includes_its_catalogue() {
    let c = load("shop.yaml");
    assert_eq!(c.files.len(), 2);
    let m = c
        .match_route(
            &Authority::parse(b"www.shop.example").unwrap(),
            "GET",
            "/catalog/shoes",
        )
        .unwrap();
    assert_eq!(m.route.name, "catalog");
    assert!(m.route.public);
    assert_eq!(c.upstreams[m.route.upstream_index].name, "catalog");
    assert_eq!(c.identity_headers.prefix, "x-shop-");
}

#[test]
fn shop_reads_exactly_the_claims_its_rules_headers_variables_and_hash_key_name() {
    let read: Vec<String> = load("shop.yaml").claims_read().into_iter().collect();
    // email: the support rule; sub: `{sub}` variables, `x-customer` and `claim:sub` hashing;
    // custom:tier: the `tier` identity header. The built-in identity headers (sub, username,
    // groups…) come from the identity's typed fields and read no claim.
    assert_eq!(read, ["custom:tier", "email", "sub"]);
}

#[test]
fn preferred_role_mapping_reads_cognito_preferred_role() {
    let c = poolgate_policies::load_str(
        "p.yaml",
        r#"
version: 1
roles:
  r: { allow: [{ methods: [GET], paths: ["/x"] }] }
role_mapping:
  preferred_role: { "arn:aws:iam::1:role/r": [r] }
identity_headers: { claims: {} }
routes:
  - { match: { path: /x }, upstream: u }
upstreams:
  u: { targets: [127.0.0.1:1] }
"#,
        &|_| None,
    )
    .unwrap_or_else(|d| panic!("{d}"));
    let read: Vec<String> = c.claims_read().into_iter().collect();
    assert_eq!(read, ["cognito:preferred_role"]);
}

#[test]
fn server_settings_are_read_and_default_sensibly() {
    let text = |server: &str| {
        format!(
            "version: 1\n{server}upstreams:\n  u: {{ targets: [127.0.0.1:1] }}\nroutes:\n  - {{ match: {{ path: /x }}, upstream: u, public: true }}\n"
        )
    };
    let c = poolgate_policies::load_str("p.yaml", &text(""), &|_| None).unwrap();
    assert_eq!(c.server, poolgate_policies::Server::default());
    assert_eq!(c.server.threads, None);
    assert_eq!(c.server.token_cache_capacity, 100_000);
    let c = poolgate_policies::load_str(
        "p.yaml",
        &text("server: { threads: 3, access_log: off, token_cache: { capacity: 0 } }\n"),
        &|_| None,
    )
    .unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(c.server.threads, Some(3));
    assert_eq!(c.server.access_log, poolgate_policies::AccessLogTarget::Off);
    assert_eq!(c.server.token_cache_capacity, 0);
}
