//! Requests crafted to make the policy judge one thing while the backend receives another:
//! each must be refused before any byte reaches the backend.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::net::SocketAddr;

use support::backend::EchoBackend;
use support::client::{get, raw_answer};
use support::harness::{Proxy, UNREACHABLE_ISSUER as ISSUER, policy_config};

/// Guests may read everything but `/admin/**`; nothing else is allowed.
fn guest_policy(backend: &str) -> String {
    format!(
        r#"version: 1
{ISSUER}upstreams:
  app:
    targets: ["{backend}"]
roles:
  visitor:
    allow: [ {{ methods: [GET, HEAD], paths: ["/**"] }} ]
    deny: [ {{ methods: ["*"], paths: ["/admin/**"] }} ]
  everything:
    allow: [ {{ methods: ["*"], paths: ["/open/**"] }} ]
    deny: [ {{ methods: [DELETE], paths: ["/open/**"] }} ]
role_mapping:
  guest: [visitor, everything]
routes:
  - name: all
    match: {{ path: "/**" }}
    upstream: app
"#
    )
}

/// The status code of the answer to `head`.
async fn raw_status(addr: SocketAddr, head: &str) -> u16 {
    let text = raw_answer(addr, head).await;
    let status = text.split(' ').nth(1).unwrap_or("0");
    status.parse().unwrap_or(0)
}

#[tokio::test]
async fn guest_baseline_allows_reads_and_denies_admin() {
    let be = EchoBackend::start("a");
    let proxy = Proxy::start(policy_config(&guest_policy(&be.target())));
    assert_eq!(get(proxy.addr, "/x", &[]).await.status, 200);
    // Guests cannot: authenticating is the way forward.
    assert_eq!(get(proxy.addr, "/admin/users", &[]).await.status, 401);
    assert_eq!(be.count(), 1);
}

/// A deny covers the spellings backends read as the same name: trailing dots and spaces,
/// extensions, encoded separators, NTFS streams, any letter case.
#[tokio::test]
async fn a_deny_covers_suffixes_backends_drop() {
    let be = EchoBackend::start("a");
    let proxy = Proxy::start(policy_config(&guest_policy(&be.target())));
    for path in [
        "/admin",
        "/admin.",
        "/admin..",
        "/admin%20",
        "/admin.json",
        "/admin%3Busers",
        "/admin%3busers",
        "/admin::$DATA",
        "/ADMIN.",
        "/admin%2E",
        "/admin./users",
        "/admin%20/users",
    ] {
        let status = get(proxy.addr, path, &[]).await.status;
        assert!(status == 401 || status == 400, "{path}: {status}");
    }
    assert_eq!(be.count(), 0, "a denied spelling reached the backend");
    assert_eq!(get(proxy.addr, "/administrator", &[]).await.status, 200);
}

/// Another spelling of a path that a more specific route judges never falls to a looser route:
/// `/ADMIN/x` or `/admin.json/x` is not served by the public catch-all.
#[tokio::test]
async fn a_path_spelled_to_miss_its_route_is_refused_not_served_by_a_looser_one() {
    let be = EchoBackend::start("a");
    let yaml = format!(
        r#"version: 1
{ISSUER}upstreams:
  app:
    targets: ["{}"]
routes:
  - name: admin
    match: {{ path: "/admin/**" }}
    upstream: app
    auth: {{ issuer: test }}
  - name: all
    match: {{ path: "/**" }}
    upstream: app
    public: true
"#,
        be.target()
    );
    let proxy = Proxy::start(policy_config(&yaml));
    assert_eq!(get(proxy.addr, "/admin/x", &[]).await.status, 401);
    for path in [
        "/ADMIN/x",
        "/Admin",
        "/admin.json/x",
        "/admin%20/x",
        "/admin./x",
        "/admin::$DATA",
    ] {
        let r = get(proxy.addr, path, &[]).await;
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        assert_eq!(r.json()["reason"], "path_ambiguous", "{path}");
    }
    assert_eq!(be.count(), 0, "a spelling of /admin reached the backend");
    for path in ["/administrator", "/static/App.JS", "/x.json", "/"] {
        assert_eq!(get(proxy.addr, path, &[]).await.status, 200, "{path}");
    }
}

#[tokio::test]
async fn target_that_is_not_origin_form_is_refused() {
    let be = EchoBackend::start("a");
    let proxy = Proxy::start(policy_config(&guest_policy(&be.target())));
    // pingora parses this target as `/`, but would forward the bytes `admin/users` verbatim.
    let answer = raw_answer(
        proxy.addr,
        "GET admin/users HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    // poolgate's own refusal, not the backend's.
    assert!(answer.contains("path_not_origin_form"), "{answer}");
    assert_eq!(be.count(), 0, "nothing may reach the backend");
}

#[tokio::test]
async fn a_request_without_host_is_refused_in_every_version() {
    let be = EchoBackend::start("a");
    let proxy = Proxy::start(policy_config(&guest_policy(&be.target())));
    let answer = raw_answer(proxy.addr, "GET /x HTTP/1.1\r\nConnection: close\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("missing_host"), "{answer}");
    assert_eq!(be.count(), 0, "nothing may reach the backend");
    // HTTP/1.0 has no Host requirement, but without one the backend would answer as its
    // default virtual host, which no host-bound route judged.
    let answer = raw_answer(proxy.addr, "GET /x HTTP/1.0\r\n\r\n").await;
    assert!(answer.contains(" 400 "), "{answer}");
    assert!(answer.contains("missing_host"), "{answer}");
    assert_eq!(be.count(), 0, "nothing may reach the backend");
    let status = raw_status(proxy.addr, "GET /x HTTP/1.0\r\nHost: localhost\r\n\r\n").await;
    assert_eq!(status, 200);
    let status = raw_status(
        proxy.addr,
        "GET /x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);
}

/// Heads pingora refuses before any poolgate code runs: a bare answer, and no backend contact.
#[tokio::test]
async fn heads_pingora_refuses_itself_never_reach_the_backend() {
    let be = EchoBackend::start("a");
    let proxy = Proxy::start(policy_config(&guest_policy(&be.target())));
    for (head, want) in [
        (
            "POST /open/a HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
            400,
        ),
        (
            "GET /x HTTP/1.1\r\nHost: localhost\r\nHost: admin.internal\r\nConnection: close\r\n\r\n",
            400,
        ),
        (
            "GET /x HTTP/1.1\r\nHost: localhost\r\nx-auth-sub: a\x00b\r\nConnection: close\r\n\r\n",
            400,
        ),
        (
            "CONNECT internal.example:443 HTTP/1.1\r\nHost: internal.example:443\r\n\r\n",
            405,
        ),
    ] {
        assert_eq!(raw_status(proxy.addr, head).await, want, "{head:?}");
    }
    assert_eq!(be.count(), 0, "nothing may reach the backend");
    // The same connection shape with one Content-Length is served.
    let head = "POST /open/a HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
    assert_eq!(raw_status(proxy.addr, head).await, 200);
    assert_eq!(be.count(), 1);
}

/// Requests written back to back on one connection, before the first is answered: pipelining is
/// off (pingora's default), so the first is answered and the connection closed; what followed is
/// dropped unread (clients retry, RFC 9112 §9.3.2), never forwarded on the first's judgement.
#[tokio::test]
async fn pipelined_requests_are_dropped_never_forwarded_unjudged() {
    let be = EchoBackend::start("a");
    let proxy = Proxy::start(policy_config(&guest_policy(&be.target())));
    let allowed = "GET /x HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let denied = "DELETE /admin/users HTTP/1.1\r\nHost: localhost\r\nx-auth-sub: admin\r\nContent-Length: 0\r\n\r\n";
    let statuses = |answer: &str| -> Vec<String> {
        answer
            .lines()
            .filter_map(|l| l.strip_prefix("HTTP/1.1 "))
            .map(|s| s.get(..3).unwrap_or(s).to_owned())
            .collect()
    };
    let answer = raw_answer(proxy.addr, &format!("{allowed}{denied}{allowed}")).await;
    assert_eq!(statuses(&answer), ["200"], "{answer}");
    let seen = be.requests();
    assert_eq!(
        seen.len(),
        1,
        "only the first request may reach the backend"
    );
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("GET", "/x")
    );
    // A refusal first: nothing after it is read either.
    let answer = raw_answer(proxy.addr, &format!("{denied}{allowed}")).await;
    assert_eq!(statuses(&answer), ["401"], "{answer}");
    assert_eq!(be.count(), 1);
}

#[tokio::test]
async fn client_ip_and_underscored_forwarding_headers_never_reach_the_backend() {
    let be = EchoBackend::start("a");
    let proxy = Proxy::start(policy_config(&guest_policy(&be.target())));
    let answer = raw_answer(
        proxy.addr,
        "GET /x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         x_forwarded_for: 7.7.7.7\r\nx_forwarded_host: evil.example\r\n\
         X_Forwarded_Proto: https\r\nTrue-Client-IP: 7.7.7.7\r\nX-Client-IP: 7.7.7.7\r\n\
         CF-Connecting-IP: 7.7.7.7\r\nFastly-Client-IP: 7.7.7.7\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let seen = be.requests().pop().unwrap();
    for (name, value) in &seen.headers {
        assert!(
            !value.contains("7.7.7.7") && !value.contains("evil"),
            "{name}: {value}"
        );
    }
    assert_eq!(seen.header("x-forwarded-host"), Some("localhost"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
}

#[tokio::test]
async fn known_method_in_another_case_is_refused() {
    let be = EchoBackend::start("a");
    let proxy = Proxy::start(policy_config(&guest_policy(&be.target())));
    // `delete` would match `*` but not the `DELETE` deny, and many backends upper-case it.
    let status = raw_status(
        proxy.addr,
        "delete /open/1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 400);
    let status = raw_status(
        proxy.addr,
        "DELETE /open/1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 401, "guests may not DELETE");
    assert_eq!(be.count(), 0);
}

#[tokio::test]
async fn unusable_credentials_never_fall_back_to_guest() {
    let be = EchoBackend::start("a");
    let proxy = Proxy::start(policy_config(&guest_policy(&be.target())));
    for value in ["Basic Zm9vOmJhcg==", "Bearer", "Bearer ", "token abc"] {
        let r = get(proxy.addr, "/x", &[("authorization", value)]).await;
        assert_eq!(r.status, 401, "{value}");
        let www = r.header("www-authenticate").unwrap_or_default().to_owned();
        assert!(www.starts_with("Bearer"), "{www}");
        assert_eq!(r.json()["reason"], "invalid_request", "{value}");
    }
    let status = raw_status(
        proxy.addr,
        "GET /x HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer a.b.c\r\n\
         Authorization: Bearer d.e.f\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(be.count(), 0);
}

#[tokio::test]
async fn options_on_a_route_without_cors_is_judged_as_options() {
    let be = EchoBackend::start("a");
    let proxy = Proxy::start(policy_config(&guest_policy(&be.target())));
    // Guests may GET `/x` but not send OPTIONS: announcing a GET must not lend its permission.
    let status = raw_status(
        proxy.addr,
        "OPTIONS /x HTTP/1.1\r\nHost: localhost\r\nOrigin: https://app.example\r\n\
         Access-Control-Request-Method: GET\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 401, "guests may not send OPTIONS");
    assert_eq!(be.count(), 0);
}

#[tokio::test]
async fn percent_encoding_nested_more_than_eight_times_is_refused() {
    let be = EchoBackend::start("a");
    let proxy = Proxy::start(policy_config(&guest_policy(&be.target())));
    // Eight times over still decodes to `..` and is refused as such; nine is refused unread.
    let eight = format!("/x/%25{}2e%25{}2e/admin", "25".repeat(6), "25".repeat(6));
    let r = get(proxy.addr, &eight, &[]).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["reason"], "path_encoded_dot_segment");
    // Nested thousands of times over, a segment would cost a pass over itself per level, and
    // what it finally decodes to (`A`) would pass: it is refused after eight.
    let deep = format!("/x/%{}41", "25".repeat(4000));
    let r = get(proxy.addr, &deep, &[]).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["reason"], "path_encoded_too_deep");
    assert_eq!(be.count(), 0, "nothing may reach the backend");
}
