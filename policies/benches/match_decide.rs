//! Route match + decision with 1,000 routes and 50 roles.
//!   CARGO_TARGET_DIR=target-pol cargo bench -p poolgate-policies --bench match_decide
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{Criterion, criterion_group, criterion_main};
use poolgate_policies::{Authority, Principal, load_str, normalize_path};
use serde_json::json;
use std::fmt::Write;
use std::hint::black_box;

/// 1,000 routes over 10 hosts and 100 services, 50 roles, 50 groups.
fn policy() -> String {
    let mut y = String::from(
        "version: 1\nissuers:\n  shop: { cognito: { region: eu-west-1, user_pool_id: eu-west-1_AbC }, app_clients: [c1] }\nupstreams:\n  app: { targets: [\"127.0.0.1:3000\"] }\nroles:\n",
    );
    for r in 0..50 {
        let _ = writeln!(
            y,
            "  role{r}:\n    allow:\n      - {{ methods: [GET, HEAD], paths: [\"/svc{a}/**\", \"/svc{b}/items/*\"] }}\n      - {{ methods: [PUT], paths: [\"/svc{a}/users/{{sub}}/**\"] }}\n    deny:\n      - {{ methods: [DELETE], paths: [\"/svc{a}/admin/**\"] }}",
            a = r * 2,
            b = r * 2 + 1
        );
    }
    y.push_str("role_mapping:\n  groups:\n");
    for g in 0..50 {
        let _ = writeln!(y, "    group{g}: [role{g}]");
    }
    y.push_str("  authenticated: [role0]\nroutes:\n");
    for i in 0..1000 {
        let host = i % 10;
        let svc = i / 10;
        let path = match i % 4 {
            0 => format!("/svc{svc}/**"),
            1 => format!("/svc{svc}/items/{{id}}"),
            2 => format!("/svc{svc}/users/{{user}}/**"),
            _ => format!("/svc{svc}/admin/**"),
        };
        let _ = writeln!(
            y,
            "  - {{ match: {{ host: h{host}.example.com, path: \"{path}\" }}, upstream: app, auth: {{ issuer: shop }} }}"
        );
    }
    y
}

fn bench(c: &mut Criterion) {
    let text = policy();
    let config = load_str("bench.yaml", &text, &|_| None).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(config.routes.len(), 1000);
    assert_eq!(config.roles.len(), 50);
    let claims = json!({"sub": "user-123", "cognito:groups": ["group7", "group40", "group12"]})
        .as_object()
        .cloned()
        .unwrap();
    let groups: Vec<String> = vec!["group7".into(), "group40".into(), "group12".into()];
    let scopes: Vec<String> = vec![];
    let principal = Principal {
        issuer: "shop",
        token_use: Some("access"),
        groups: &groups,
        scopes: &scopes,
        has_groups_claim: true,
        has_scopes_claim: true,
        claims: &claims,
    };

    // A request allowed by a role reached through a group (role40 → svc80/svc81).
    let host = &Authority::parse(b"h3.example.com").unwrap();
    let raw = "/svc81/items/42";
    let d = config.decide_request(host, "GET", raw, Some(&principal));
    assert!(d.allowed, "{d:?}");

    c.bench_function("normalize+match+decide (1000 routes, 50 roles)", |b| {
        b.iter(|| {
            let path = normalize_path(black_box(raw)).unwrap();
            let m = config.match_route(black_box(host), "GET", &path).unwrap();
            let d = config.decide(&m, "GET", &path, Some(black_box(&principal)));
            black_box(d.allowed)
        })
    });
    c.bench_function("match only", |b| {
        b.iter(|| {
            config
                .match_route(black_box(host), "GET", black_box(raw))
                .map(|m| m.index)
        })
    });
    c.bench_function("owner rule with claim variable", |b| {
        b.iter(|| {
            config
                .decide_request(
                    black_box(&Authority::parse(b"h2.example.com").unwrap()),
                    "PUT",
                    black_box("/svc14/users/user-123/profile"),
                    Some(&principal),
                )
                .allowed
        })
    });
    c.bench_function("load 1000-route policy", |b| {
        b.iter(|| {
            load_str("bench.yaml", black_box(&text), &|_| None)
                .map(|c| c.routes.len())
                .unwrap_or(0)
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3)).warm_up_time(std::time::Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
