//! Upstream trouble through the real proxy: down, slow, unhealthy.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use poolgate_authorizer::testutil::TestIssuer;
use poolgate_proxy::config::HealthCheckSpec;
use support::backend::{EchoBackend, raw_backend, read_head};
use support::client::get;
use support::harness::{Proxy, free_port, policy_config, sample, simple_config};
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn upstream_down_is_a_fast_502() {
    let dead = free_port(); // nothing listens here
    let proxy = Proxy::start(simple_config(vec![dead.to_string()]));
    let t = Instant::now();
    let r = get(proxy.addr, "/x", &[]).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["reason"], "upstream_unreachable");
    assert!(r.header("x-request-id").is_some());
    // connection refused is immediate; a generous bound keeps this stable on a busy machine
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t.elapsed()
    );
    let m = proxy.metrics().await;
    assert!(
        sample(
            &m,
            r#"poolgate_upstream_errors_total{kind="connect_refused",upstream="app"}"#
        )
        .unwrap()
            >= 1.0,
        "{m}"
    );
}

#[tokio::test]
async fn slow_upstream_is_504_within_the_read_timeout() {
    let be = EchoBackend::start("slow");
    let mut cfg = simple_config(vec![be.target()]);
    cfg.upstreams[0].timeouts.read = Duration::from_millis(300);
    let proxy = Proxy::start(cfg);
    let t = Instant::now();
    let r = get(proxy.addr, "/slow?ms=3000", &[]).await;
    assert_eq!(r.status, 504);
    assert_eq!(r.json()["reason"], "upstream_timeout");
    assert!(
        t.elapsed() < Duration::from_millis(2500),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(be.count(), 1, "the request did reach the backend");
    // a fast request on the same route still works
    assert_eq!(get(proxy.addr, "/slow?ms=10", &[]).await.status, 200);
}

#[tokio::test]
async fn dead_target_is_retried_on_the_live_one() {
    let be = EchoBackend::start("live");
    let dead = free_port();
    let proxy = Proxy::start(simple_config(vec![dead.to_string(), be.target()]));
    for _ in 0..6 {
        assert_eq!(get(proxy.addr, "/", &[]).await.status, 200);
    }
    assert_eq!(be.count(), 6);
}

#[tokio::test]
async fn health_check_takes_an_unhealthy_target_out_and_back() {
    let (a, b) = (EchoBackend::start("a"), EchoBackend::start("b"));
    let mut cfg = simple_config(vec![a.target(), b.target()]);
    cfg.upstreams[0].health_check = Some(HealthCheckSpec {
        path: "/healthz".into(),
        interval: Duration::from_millis(100),
        ..HealthCheckSpec::default()
    });
    b.set_unhealthy(true);
    let proxy = Proxy::start(cfg);
    wait_for(|| b.health_probes() >= 2 && a.health_probes() >= 2);
    for _ in 0..8 {
        let r = get(proxy.addr, "/", &[]).await;
        assert_eq!(r.header("x-backend"), Some("a"));
    }
    assert_eq!(b.count(), 0, "the unhealthy target got traffic");
    let m = proxy.metrics().await;
    assert_eq!(
        sample(&m, r#"poolgate_upstream_healthy_targets{upstream="app"}"#),
        Some(1.0),
        "{m}"
    );

    b.set_unhealthy(false);
    let probes = b.health_probes();
    wait_for(|| b.health_probes() >= probes + 2);
    for _ in 0..8 {
        assert_eq!(get(proxy.addr, "/", &[]).await.status, 200);
    }
    assert!(
        b.count() >= 3,
        "recovered target got {} requests",
        b.count()
    );
}

#[tokio::test]
async fn all_targets_unhealthy_is_503_with_retry_after() {
    let a = EchoBackend::start("a");
    let mut cfg = simple_config(vec![a.target()]);
    cfg.upstreams[0].health_check = Some(HealthCheckSpec {
        path: "/healthz".into(),
        interval: Duration::from_millis(100),
        ..HealthCheckSpec::default()
    });
    a.set_unhealthy(true);
    let proxy = Proxy::start(cfg);
    wait_for(|| a.health_probes() >= 2);
    let r = get(proxy.addr, "/", &[]).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("5"));
    assert_eq!(r.json()["reason"], "no_healthy_upstream");
    assert_eq!(a.count(), 0);
}

fn wait_for(cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "condition not met in time");
        std::thread::sleep(Duration::from_millis(20));
    }
    // one more interval so the last probe's result is applied
    std::thread::sleep(Duration::from_millis(150));
}

#[tokio::test]
async fn consistent_hash_on_a_header_is_sticky_across_targets() {
    let (a, b, c) = (
        EchoBackend::start("a"),
        EchoBackend::start("b"),
        EchoBackend::start("c"),
    );
    let yaml = format!(
        "version: 1\nupstreams:\n  app:\n    targets: [\"{}\", \"{}\", \"{}\"]\n    balance: consistent_hash\n    hash_key: \"header:x-tenant\"\nroutes:\n  - match: {{ path: \"/**\" }}\n    upstream: app\n    public: true\n",
        a.target(),
        b.target(),
        c.target()
    );
    let proxy = Proxy::start(support::harness::policy_config(&yaml));
    let mut owners = std::collections::HashMap::new();
    for round in 0..3 {
        for tenant in 0..12 {
            let t = format!("tenant-{tenant}");
            let r = get(proxy.addr, "/", &[("x-tenant", t.as_str())]).await;
            let backend = r.header("x-backend").unwrap().to_owned();
            let first = owners.entry(t.clone()).or_insert_with(|| backend.clone());
            assert_eq!(*first, backend, "round {round}: {t} moved");
        }
    }
    let used: std::collections::HashSet<_> = owners.values().collect();
    assert!(used.len() >= 2, "12 tenants all on one target: {owners:?}");
}

/// A keep-alive backend that answers the first request of each connection and closes the
/// connection, unanswered, on its second: what a backend's idle timeout looks like to a proxy
/// that reuses the connection. Returns its address and how many requests it left unanswered.
async fn closes_reused_connections() -> (String, Arc<AtomicUsize>) {
    let dropped = Arc::new(AtomicUsize::new(0));
    let counter = dropped.clone();
    let addr = raw_backend(move |mut sock| {
        let counter = counter.clone();
        async move {
            for answered in [true, false] {
                if !read_head(&mut sock).await {
                    return;
                }
                if !answered {
                    counter.fetch_add(1, Ordering::SeqCst);
                    return; // closed without an answer
                }
                let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                if sock.write_all(ok).await.is_err() {
                    return;
                }
            }
        }
    })
    .await;
    (addr, dropped)
}

#[tokio::test]
async fn a_retried_attempt_carries_the_verified_identity_and_the_normalised_path() {
    let issuer = TestIssuer::start().await.unwrap();
    let (flaky, dropped) = closes_reused_connections().await;
    let echo = EchoBackend::start("echo");
    let yaml = format!(
        r#"version: 1
issuers:
  shop:
    issuer: "{iss}"
    jwks_url: "{jwks}"
    cognito_style: true
    app_clients: ["{client}"]
    token_use: access
upstreams:
  app:
    targets: ["{flaky}", "{echo}"]
    balance: round_robin
roles:
  reader:
    allow: [ {{ methods: [GET], paths: ["/orders/**"] }} ]
identity_headers: {{ send: [sub, roles] }}
role_mapping:
  groups: {{ readers: [reader] }}
routes:
  - name: orders
    match: {{ path: "/orders/**" }}
    upstream: app
    auth: {{ issuer: shop }}
  - name: public
    match: {{ path: "/public/**" }}
    upstream: app
    public: true
"#,
        iss = issuer.issuer,
        jwks = issuer.jwks_url,
        client = issuer.client_id,
        echo = echo.target(),
    );
    let proxy = Proxy::start(policy_config(&yaml));
    proxy.wait_ready().await;
    let auth = format!("Bearer {}", issuer.mint_access("alice", &["readers"], &[]));
    // Round robin alternates the targets, so the flaky one is picked every other request: first
    // on a new connection (answered and pooled), then on that pooled connection, which it
    // closes; pingora retries that attempt, and poolgate sends the retry to the echo backend.
    for _ in 0..8 {
        let r = get(
            proxy.addr,
            "/public/../orders/1",
            &[("authorization", &auth), ("x-auth-sub", "mallory")],
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert!(
        dropped.load(Ordering::SeqCst) >= 1,
        "no attempt was retried"
    );
    let seen = echo.requests();
    assert!(seen.len() > 4, "the retries reached the echo backend");
    for r in &seen {
        assert_eq!(r.path, "/orders/1", "{r:?}");
        let sub = r.header("x-auth-sub");
        assert!(sub.is_some_and(|s| s != "mallory"), "{r:?}");
        assert_eq!(r.header("x-auth-roles"), Some(r#"["reader"]"#), "{r:?}");
    }
}

/// A backend that writes `head` at once, then `trickle` a byte at a time, `gap` apart.
async fn trickler(head: &'static [u8], trickle: &'static [u8], gap: Duration) -> String {
    raw_backend(move |mut sock| async move {
        if !read_head(&mut sock).await || sock.write_all(head).await.is_err() {
            return;
        }
        for b in trickle {
            tokio::time::sleep(gap).await;
            if sock.write_all(&[*b]).await.is_err() {
                return;
            }
        }
    })
    .await
}

#[tokio::test]
async fn a_backend_that_trickles_its_head_is_cut_at_the_total_deadline_with_504() {
    // 38 bytes 150 ms apart: every read is well within the read timeout, the whole takes 5.7 s.
    let addr = trickler(
        b"",
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
        Duration::from_millis(150),
    )
    .await;
    let mut cfg = simple_config(vec![addr]);
    cfg.upstreams[0].timeouts.read = Duration::from_secs(5);
    cfg.upstreams[0].timeouts.total = Some(Duration::from_millis(800));
    let proxy = Proxy::start(cfg);
    let t = Instant::now();
    let r = get(proxy.addr, "/x", &[]).await;
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(r.json()["reason"], "upstream_timeout");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_millis(2500),
        "took {took:?}"
    );
}

#[tokio::test]
async fn a_trickled_body_is_cut_at_a_routes_deadline_and_never_looks_complete() {
    let addr = trickler(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
        b"1\r\na\r\n1\r\nb\r\n1\r\nc\r\n1\r\nd\r\n1\r\ne\r\n1\r\nf\r\n1\r\ng\r\n0\r\n\r\n",
        Duration::from_millis(150),
    )
    .await;
    let yaml = format!(
        r#"version: 1
upstreams:
  app: {{ targets: ["{addr}"], timeouts: {{ read: 5s }} }}
routes:
  - name: slow
    match: {{ path: "/**" }}
    upstream: app
    public: true
    total_timeout: 800ms
"#
    );
    let proxy = Proxy::start(policy_config(&yaml));
    let t = Instant::now();
    let answer =
        support::client::raw_answer(proxy.addr, "GET /x HTTP/1.1\r\nhost: localhost\r\n\r\n").await;
    let took = t.elapsed();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // The head went out; the body was cut: no last chunk, the connection closed early.
    assert!(!answer.ends_with("0\r\n\r\n"), "{answer}");
    assert!(took < Duration::from_millis(2500), "took {took:?}");
}

#[tokio::test]
async fn an_exchange_done_in_time_leaves_its_pooled_connection_alone() {
    let be = EchoBackend::start("pooled");
    let mut cfg = simple_config(vec![be.target()]);
    cfg.upstreams[0].timeouts.total = Some(Duration::from_millis(300));
    let proxy = Proxy::start(cfg);
    let post = |path: &'static str| {
        support::client::send(
            proxy.addr,
            "POST",
            path,
            &[],
            bytes::Bytes::from_static(b"x"),
        )
    };
    assert_eq!(post("/a").await.status, 200);
    assert_eq!(
        support::client::send(proxy.addr, "HEAD", "/h", &[], bytes::Bytes::new())
            .await
            .status,
        200
    );
    // Past both deadlines: a timer left armed would have shut the pooled connection, and a
    // POST on it is not retried.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(post("/b").await.status, 200);
    assert_eq!(post("/c").await.status, 200);
}
