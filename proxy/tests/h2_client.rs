//! HTTP/2 clients on the TLS listener: the same gate as HTTP/1.1 (token, identity headers,
//! path normalisation) and bodies streamed intact. The backend speaks HTTP/1.1 and records
//! what reached it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use bytes::Bytes;
use poolgate_authorizer::testutil::TestIssuer;
use support::backend::{EchoBackend, sha256_hex};
use support::certs::certificates;
use support::h2::H2Client;
use support::harness::{Proxy, policy_config};

const POLICY: &str = r#"version: 1
issuers:
  shop:
    issuer: "ISS"
    jwks_url: "JWKS"
    cognito_style: true
    app_clients: ["CLIENT"]
    token_use: access
upstreams:
  app:
    targets: ["BACKEND"]
roles:
  clerk:
    allow: [ { methods: [GET, POST], paths: ["/orders/**"] } ]
identity_headers:
  send: [sub, username, groups, roles, token-use]
role_mapping:
  groups: { clerks: [clerk] }
routes:
  - name: orders
    match: { path: "/orders/**" }
    upstream: app
    auth: { issuer: shop }
"#;

struct Env {
    issuer: TestIssuer,
    be: EchoBackend,
    proxy: Proxy,
    client: H2Client,
    dir: std::path::PathBuf,
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn env() -> Env {
    let (ca, cert, key) = certificates();
    let issuer = TestIssuer::start().await.unwrap();
    let be = EchoBackend::start("app");
    let yaml = POLICY
        .replace("ISS", &issuer.issuer)
        .replace("JWKS", &issuer.jwks_url)
        .replace("CLIENT", &issuer.client_id)
        .replace("BACKEND", &be.target());
    let proxy = Proxy::start_tls(policy_config(&yaml), &cert, &key);
    proxy.wait_ready().await;
    let client = H2Client::new(proxy.addr, &ca);
    Env {
        issuer,
        be,
        proxy,
        client,
        dir: ca.parent().unwrap().to_path_buf(),
    }
}

#[tokio::test]
async fn h2_valid_token_reaches_backend_with_verified_identity_only() {
    let e = env().await;
    let token = e.issuer.mint_access("alice", &["clerks"], &[]);
    let auth = format!("Bearer {token}");
    let r = e
        .client
        .send(
            "GET",
            "/orders/1?x=2",
            &[("authorization", &auth), ("x-auth-sub", "root")],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "ok app");
    let seen = e.be.requests();
    assert_eq!(seen.len(), 1);
    let seen = &seen[0];
    assert_eq!(seen.path, "/orders/1?x=2");
    let sub = e.issuer.access_claims("alice", &[], &[]).0["sub"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(sub, "root");
    assert_eq!(seen.headers_named("x-auth-sub"), vec![sub.as_str()]);
    assert_eq!(seen.header("x-auth-username"), Some("alice"));
    assert_eq!(seen.header("x-auth-groups"), Some(r#"["clerks"]"#));
    assert_eq!(seen.header("x-auth-roles"), Some(r#"["clerk"]"#));
    assert_eq!(seen.header("x-auth-token-use"), Some("access"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    assert_eq!(seen.header("host"), Some("localhost"));
    e.proxy.wait_for_log(1);
    let line = &e.proxy.log_lines()[0];
    assert_eq!(line["status"], 200, "{line}");
    assert_eq!(line["sub"], sub.as_str(), "{line}");
}

#[tokio::test]
async fn h2_missing_token_is_challenged_and_backend_not_reached() {
    let e = env().await;
    let r = e
        .client
        .send("GET", "/orders/1", &[("x-auth-sub", "root")], Bytes::new())
        .await;
    assert_eq!(r.status, 401, "{}", r.text());
    let challenge = r.header("www-authenticate").unwrap();
    assert!(challenge.starts_with("Bearer realm="), "{challenge}");
    assert!(!challenge.contains("error="), "{challenge}");
    assert_eq!(r.json()["reason"], "missing_token");
    assert_eq!(e.be.count(), 0);
}

#[tokio::test]
async fn h2_one_mib_body_arrives_intact() {
    let e = env().await;
    let token = e.issuer.mint_access("alice", &["clerks"], &[]);
    let auth = format!("Bearer {token}");
    let body: Vec<u8> = (0..1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let want = sha256_hex(&body);
    let r = e
        .client
        .send(
            "POST",
            "/orders/upload",
            &[
                ("authorization", &auth),
                ("content-type", "application/octet-stream"),
            ],
            Bytes::from(body),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = &e.be.requests()[0];
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.body_len, 1024 * 1024);
    assert_eq!(seen.body_sha256, want);
    assert_eq!(r.header("x-body-sha256"), Some(want.as_str()));
}

#[tokio::test]
async fn h2_encoded_dot_segments_are_refused_before_the_backend() {
    let e = env().await;
    let token = e.issuer.mint_access("alice", &["clerks"], &[]);
    let auth = format!("Bearer {token}");
    for path in [
        "/orders/%2e%2e/admin",
        "/orders/%2E%2e/admin",
        "/orders/.%2e/admin",
    ] {
        let r = e
            .client
            .send("GET", path, &[("authorization", &auth)], Bytes::new())
            .await;
        assert_eq!(r.status, 400, "{path}: {}", r.text());
    }
    assert_eq!(e.be.count(), 0);
}

/// A request whose `host` field names another site than its `:authority` is refused before the
/// backend (RFC 9113 §8.3.1): routes are judged by one and a backend could read the other.
#[tokio::test]
async fn h2_a_host_field_that_contradicts_the_authority_is_refused() {
    let e = env().await;
    let token = e.issuer.mint_access("alice", &["clerks"], &[]);
    let auth = format!("Bearer {token}");
    let ca = e.dir.join("ca.pem");
    let request = |host: Option<&str>| {
        let mut b = http::Request::builder()
            .method("GET")
            .uri("https://localhost/orders/1")
            .header("authorization", &auth);
        if let Some(host) = host {
            b = b.header("host", host);
        }
        b.body(()).unwrap()
    };
    // The same request with an agreeing `host`, or none, is served: the client works.
    for host in [None, Some("localhost")] {
        let answer = support::h2::send_raw(e.proxy.addr, &ca, request(host)).await;
        assert_eq!(answer.unwrap(), 200, "host {host:?}");
    }
    assert_eq!(e.be.count(), 2);
    for host in ["admin.internal", "localhost.evil", "localhost:1"] {
        let answer = support::h2::send_raw(e.proxy.addr, &ca, request(Some(host))).await;
        assert_eq!(answer.unwrap(), 400, "host {host}");
    }
    assert_eq!(e.be.count(), 2);
    for seen in e.be.requests() {
        assert_eq!(seen.header("host"), Some("localhost"));
    }
}

/// Several `cookie` fields of an HTTP/2 request reach an HTTP/1.1 backend as one, joined with
/// `; ` (RFC 9113 §8.2.3); a body shorter than its `content-length` is the client's error.
#[tokio::test]
async fn h2_cookies_are_joined_and_a_wrong_content_length_is_a_client_error() {
    let e = env().await;
    let token = e.issuer.mint_access("alice", &["clerks"], &[]);
    let auth = format!("Bearer {token}");
    let ca = e.dir.join("ca.pem");
    let req = http::Request::builder()
        .method("GET")
        .uri("https://localhost/orders/1")
        .header("authorization", &auth)
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .header("cookie", "c=3")
        .body(())
        .unwrap();
    let status = support::h2::send_raw(e.proxy.addr, &ca, req).await.unwrap();
    assert_eq!(status, 200);
    let seen = e.be.requests().pop().unwrap();
    assert_eq!(seen.headers_named("cookie"), ["a=1; b=2; c=3"]);

    // Declared 100 bytes, sent 10; declared 5, sent 10: the stream is reset, nothing reaches
    // the backend, and the access log and metrics say it was the client's request.
    for declared in ["100", "5"] {
        let before = e.be.requests().len();
        let req = http::Request::builder()
            .method("POST")
            .uri("https://localhost/orders/1")
            .header("authorization", &auth)
            .header("content-length", declared)
            .body(())
            .unwrap();
        let answer = support::h2::send_raw_body(e.proxy.addr, &ca, req, b"only ten b").await;
        assert!(answer.as_ref().map_or(true, |s| *s == 400), "{answer:?}");
        let seen = e.be.requests();
        assert!(
            seen.iter().skip(before).all(|r| r.method != "POST"),
            "a body that broke its content-length reached the backend"
        );
    }
    e.proxy.wait_for_log(3); // the GET and both POSTs
    let log = e.proxy.log_lines();
    for line in log.iter().filter(|l| l["method"] == "POST") {
        assert_eq!(line["status"], 400, "{line}");
        assert_eq!(line["reason"], "malformed_request", "{line}");
        assert_eq!(line["decision"], "deny", "{line}");
    }
    assert_eq!(log.iter().filter(|l| l["method"] == "POST").count(), 2);
    let metrics = e.proxy.metrics().await;
    assert!(!metrics.contains("upstream_unreachable"), "{metrics}");
}
