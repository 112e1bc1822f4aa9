//! The identity headers of one request: built from a verified identity, then set on the
//! request pingora sends upstream (a head parsed with its header case kept, as pingora does).
//!   cargo bench -p poolgate-proxy --bench identity_headers
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use pingora::http::RequestHeader;
use poolgate_proxy::config::IdentitySettings;
use poolgate_proxy::headers::{IdentityNames, IdentityView, identity_headers};

fn client_request() -> RequestHeader {
    let mut r = RequestHeader::build("GET", b"/articles/1", None).unwrap();
    for (n, v) in [
        ("Host", "127.0.0.1:8080"),
        ("Authorization", "Bearer eyJ..."),
        ("Accept", "*/*"),
        ("User-Agent", "poolgate-bench"),
    ] {
        r.append_header(n, v).unwrap();
    }
    r
}

fn bench(c: &mut Criterion) {
    let default = IdentityNames::new(&IdentitySettings::default()).unwrap();
    let all = IdentityNames::new(&IdentitySettings {
        send: poolgate_policies::model::BUILTIN_IDENTITY_HEADERS
            .map(str::to_owned)
            .to_vec(),
        ..IdentitySettings::default()
    })
    .unwrap();
    let groups = vec!["editors".to_owned()];
    let scopes = vec!["openid".to_owned(), "profile".to_owned()];
    let view = IdentityView {
        iss: "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123",
        sub: "7f3c2a9e-41b6-4c0d-9b1e-2f6a8d5c3e10",
        username: Some("user-0417"),
        groups: &groups,
        roles: &["editor", "reader"],
        scopes: &scopes,
        client_id: Some("5r8j2kq1v7m3n9p4s6t0w2x8yz"),
        token_use: "access",
        claims: None,
    };
    let base = client_request();
    for (set, names) in [("default three", &default), ("all eight", &all)] {
        c.bench_function(&format!("identity headers ({set}): build"), |b| {
            b.iter(|| identity_headers(black_box(&view), names).unwrap())
        });
        c.bench_function(&format!("identity headers ({set}): build and set"), |b| {
            b.iter_batched_ref(
                || base.clone(),
                |req| {
                    identity_headers(black_box(&view), names)
                        .unwrap()
                        .apply(req, names)
                        .unwrap()
                },
                criterion::BatchSize::SmallInput,
            )
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
