//! End to end through the real proxy: what reaches the backend, and how.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use bytes::Bytes;
use support::backend::{EchoBackend, sha256_hex};
use support::client::{get, send, upgrade};
use support::harness::{Proxy, policy_config, simple_config, simple_yaml};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn public_route_passes_through_with_request_id() {
    let be = EchoBackend::start("a");
    let proxy = Proxy::start(simple_config(vec![be.target()]));
    let r = get(proxy.addr, "/hello/world?x=1&y=2", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "ok a");
    let seen = be.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/hello/world?x=1&y=2");
    let rid = r
        .header("x-request-id")
        .expect("response carries a request id");
    assert_eq!(rid.len(), 32);
    assert_eq!(seen[0].header("x-request-id"), Some(rid));
}

/// `simple_yaml` with `server:` settings.
fn with_server(targets: &[String], server: &str) -> poolgate_proxy::config::ProxyConfig {
    let yaml =
        simple_yaml(targets).replacen("version: 1\n", &format!("version: 1\nserver:\n{server}"), 1);
    policy_config(&yaml)
}

#[tokio::test]
async fn a_client_request_id_is_replaced_unless_the_policy_trusts_it() {
    let be = EchoBackend::start("a");
    let targets = vec![be.target()];
    let sent = [("x-request-id", "trace-42")];
    // Default: replaced.
    let proxy = Proxy::start(simple_config(targets.clone()));
    let r = get(proxy.addr, "/", &sent).await;
    let rid = r.header("x-request-id").unwrap();
    assert_ne!(rid, "trace-42");
    assert_eq!(
        be.requests().pop().unwrap().header("x-request-id"),
        Some(rid)
    );
    drop(proxy);
    // `keep`: kept from anyone; `trusted`: kept from a trusted proxy only.
    for (server, kept) in [
        ("  client_request_id: keep\n", true),
        (
            "  client_request_id: trusted\n  trusted_proxies: [\"127.0.0.1\"]\n",
            true,
        ),
        (
            "  client_request_id: trusted\n  trusted_proxies: [\"10.0.0.0/8\"]\n",
            false,
        ),
    ] {
        let proxy = Proxy::start(with_server(&targets, server));
        let r = get(proxy.addr, "/", &sent).await;
        assert_eq!(
            r.header("x-request-id") == Some("trace-42"),
            kept,
            "{server}"
        );
        let seen = be.requests().pop().unwrap();
        assert_eq!(
            seen.header("x-request-id"),
            r.header("x-request-id"),
            "{server}"
        );
    }
}

#[tokio::test]
async fn client_identity_headers_never_reach_the_backend() {
    let be = EchoBackend::start("a");
    let proxy = Proxy::start(simple_config(vec![be.target()]));
    let r = get(
        proxy.addr,
        "/",
        &[
            ("X-Auth-Sub", "root"),
            ("x-auth-groups", "[\"admins\"]"),
            ("x_auth_roles", "admin"),
            ("X_Auth-Token-Use", "access"),
            ("x-authorization-hint", "kept"),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    let seen = &be.requests()[0];
    let leaked: Vec<_> = seen
        .headers
        .iter()
        .filter(|(n, _)| n.starts_with("x-auth-") || n.starts_with("x_auth_"))
        .collect();
    assert!(leaked.is_empty(), "leaked identity headers: {leaked:?}");
    assert_eq!(seen.header("x-authorization-hint"), Some("kept"));
}

#[tokio::test]
async fn forwarded_headers_are_set() {
    let be = EchoBackend::start("a");
    let targets = vec![be.target()];
    let sent = [
        ("host", "api.example.com"),
        ("x-forwarded-for", "203.0.113.9"),
        ("x-forwarded-proto", "https"),
    ];
    // Default: a client's X-Forwarded-For is not believed; the backend sees the peer only.
    let proxy = Proxy::start(simple_config(targets.clone()));
    get(proxy.addr, "/", &sent).await;
    let seen = be.requests().pop().unwrap();
    assert_eq!(seen.headers_named("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(seen.header("x-forwarded-host"), Some("api.example.com"));
    assert_eq!(seen.header("host"), Some("api.example.com"));
    drop(proxy);
    // From a trusted proxy, its list is kept and the peer appended.
    // A trusted proxy's X-Forwarded-Proto (it terminated TLS) is kept too.
    for (server, want, proto) in [
        (
            "  trusted_proxies: [\"127.0.0.0/8\"]\n",
            "203.0.113.9, 127.0.0.1",
            "https",
        ),
        (
            "  trusted_proxies: [\"192.168.0.1\", \"::1\"]\n",
            "127.0.0.1",
            "http",
        ),
    ] {
        let proxy = Proxy::start(with_server(&targets, server));
        get(proxy.addr, "/", &sent).await;
        let seen = be.requests().pop().unwrap();
        assert_eq!(seen.headers_named("x-forwarded-for"), [want], "{server}");
        assert_eq!(seen.headers_named("x-forwarded-proto"), [proto], "{server}");
    }
}

#[tokio::test]
async fn ten_mib_body_arrives_intact() {
    let be = EchoBackend::start("a");
    let proxy = Proxy::start(simple_config(vec![be.target()]));
    let body: Vec<u8> = (0..10 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let want = sha256_hex(&body);
    let r = send(
        proxy.addr,
        "POST",
        "/upload",
        &[("content-type", "application/octet-stream")],
        Bytes::from(body),
    )
    .await;
    assert_eq!(r.status, 200);
    let seen = &be.requests()[0];
    assert_eq!(seen.body_len, 10 * 1024 * 1024);
    assert_eq!(seen.body_sha256, want);
    assert_eq!(r.header("x-body-sha256"), Some(want.as_str()));
}

#[tokio::test]
async fn round_robin_spreads_over_two_backends() {
    let (a, b) = (EchoBackend::start("a"), EchoBackend::start("b"));
    let proxy = Proxy::start(simple_config(vec![a.target(), b.target()]));
    for _ in 0..10 {
        assert_eq!(get(proxy.addr, "/", &[]).await.status, 200);
    }
    assert_eq!(a.count(), 5);
    assert_eq!(b.count(), 5);
}

#[tokio::test]
async fn protected_route_refuses_missing_and_malformed_tokens_before_the_backend() {
    let be = EchoBackend::start("a");
    let proxy = Proxy::start(simple_config(vec![be.target()]));
    let r = get(proxy.addr, "/private/data", &[]).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"poolgate\"")
    );
    assert_eq!(r.json()["reason"], "missing_token");
    assert_eq!(r.json()["request_id"], r.header("x-request-id").unwrap());
    let r = get(
        proxy.addr,
        "/private/data",
        &[("authorization", "Bearer abc.def.ghi")],
    )
    .await;
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains("error=\"invalid_token\"")
    );
    assert_eq!(be.count(), 0);
}

#[tokio::test]
async fn hostile_paths_are_400_and_never_forwarded() {
    let be = EchoBackend::start("a");
    let proxy = Proxy::start(simple_config(vec![be.target()]));
    for path in [
        "/a/%2e%2e/private",
        "/private%2fx",
        "/../etc/passwd",
        "/a\\b",
        "/a;jsessionid=1",
    ] {
        let r = get(proxy.addr, path, &[]).await;
        assert_eq!(r.status, 400, "{path}");
        assert_eq!(r.json()["error"], "bad_request", "{path}");
    }
    assert_eq!(be.count(), 0);
}

#[tokio::test]
async fn dot_segments_are_resolved_before_matching_and_forwarding() {
    let be = EchoBackend::start("a");
    let proxy = Proxy::start(simple_config(vec![be.target()]));
    // a public-looking prefix cannot smuggle a request onto the protected route
    let r = get(proxy.addr, "/public/../private/x", &[]).await;
    assert_eq!(r.status, 401);
    assert_eq!(be.count(), 0);
    // what is forwarded is the normalised path the decision was made on
    let r = get(proxy.addr, "/a/./b//c?q=1", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(be.requests()[0].path, "/a/b/c?q=1");
}

#[tokio::test]
async fn oversized_request_head_is_431() {
    let be = EchoBackend::start("a");
    let mut cfg = simple_config(vec![be.target()]);
    cfg.max_request_header_bytes = 4096;
    let proxy = Proxy::start(cfg);
    let big = "v".repeat(8000);
    let r = get(proxy.addr, "/", &[("x-big", big.as_str())]).await;
    assert_eq!(r.status, 431);
    assert_eq!(r.json()["reason"], "header_too_large");
    assert_eq!(be.count(), 0);
    assert_eq!(get(proxy.addr, "/", &[("x-small", "v")]).await.status, 200);
}

#[tokio::test]
async fn unknown_host_route_is_404() {
    let be = EchoBackend::start("a");
    let yaml = format!(
        "version: 1\nupstreams:\n  app:\n    targets: [\"{}\"]\nroutes:\n  - name: api\n    match: {{ host: api.example.com, path: \"/**\" }}\n    upstream: app\n    public: true\n",
        be.target()
    );
    let proxy = Proxy::start(policy_config(&yaml));
    let r = get(proxy.addr, "/", &[("host", "other.example.com")]).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["reason"], "no_route");
    assert_eq!(
        get(proxy.addr, "/", &[("host", "API.example.com:8080")])
            .await
            .status,
        200
    );
    assert_eq!(be.count(), 1);
}

#[tokio::test]
async fn websocket_upgrade_passes_on_allowed_route_only() {
    let be = EchoBackend::start("a");
    let proxy = Proxy::start(simple_config(vec![be.target()]));

    let (head, _) = upgrade(proxy.addr, "/private/ws", &[]).await;
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    assert_eq!(be.count(), 0);

    let (head, mut s) = upgrade(proxy.addr, "/ws", &[]).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s.write_all(b"ping-frame").await.unwrap();
    let mut buf = [0u8; 10];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping-frame");
    assert_eq!(be.count(), 1);
}

#[tokio::test]
async fn ten_mib_response_arrives_intact() {
    let be = EchoBackend::start("a");
    let proxy = Proxy::start(simple_config(vec![be.target()]));
    let r = get(proxy.addr, "/big?mb=10", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 10 * 1024 * 1024);
    assert_eq!(
        Some(sha256_hex(&r.body).as_str()),
        r.header("x-response-sha256")
    );
}

#[test]
fn busy_listen_address_is_a_start_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut cfg = simple_config(vec!["127.0.0.1:9".into()]);
    cfg.listeners = vec![poolgate_proxy::config::ListenerSpec {
        address: taken.local_addr().unwrap(),
        tls: None,
    }];
    let err = poolgate_proxy::prepare(&cfg, poolgate_proxy::StartOptions::default())
        .err()
        .expect("a busy address must refuse to start");
    assert!(err.to_string().contains("cannot listen on"), "{err}");
}
