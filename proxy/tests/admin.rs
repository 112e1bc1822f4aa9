//! The admin listener and the access log, through the real proxy.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::sync::atomic::Ordering;

use support::backend::EchoBackend;
use support::client::get;
use support::harness::{Proxy, policy_config, sample, simple_config};

#[tokio::test]
async fn metrics_count_requests_by_route_status_and_reason() {
    let be = EchoBackend::start("a");
    let proxy = Proxy::start(simple_config(vec![be.target()]));
    for _ in 0..3 {
        assert_eq!(get(proxy.addr, "/a", &[]).await.status, 200);
    }
    assert_eq!(get(proxy.addr, "/private", &[]).await.status, 401);
    proxy.wait_for_log(4);
    let r = get(proxy.admin, "/metrics", &[]).await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    let m = r.text();
    // every non-comment line is `name{labels} value` with a numeric value
    for line in m.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "bad sample line: {line}");
    }
    assert_eq!(
        sample(
            &m,
            r#"poolgate_requests_total{reason="public",route="public",status="200"}"#
        ),
        Some(3.0),
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            r#"poolgate_requests_total{reason="missing_token",route="private",status="401"}"#
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            r#"poolgate_request_duration_seconds_count{route="public"}"#
        ),
        Some(3.0),
        "{m}"
    );
    assert!(m.contains("poolgate_build_info{version="), "{m}");
}

#[tokio::test]
async fn healthz_and_readyz() {
    let be = EchoBackend::start("a");
    // an issuer whose keys cannot be fetched: alive, not ready
    let proxy = Proxy::start(simple_config(vec![be.target()]));
    assert_eq!(get(proxy.admin, "/healthz", &[]).await.status, 200);
    assert_eq!(get(proxy.admin, "/readyz", &[]).await.status, 503);
    drop(proxy);
    // no issuers: ready as soon as the configuration is loaded
    let yaml = format!(
        "version: 1\nupstreams:\n  app:\n    targets: [\"{}\"]\nroutes:\n  - match: {{ path: \"/**\" }}\n    upstream: app\n    public: true\n",
        be.target()
    );
    let proxy = Proxy::start(policy_config(&yaml));
    assert_eq!(get(proxy.admin, "/readyz", &[]).await.status, 200);
    proxy.shared.config_ready.store(false, Ordering::Release);
    assert_eq!(get(proxy.admin, "/readyz", &[]).await.status, 503);
    assert_eq!(get(proxy.admin, "/healthz", &[]).await.status, 200);
    assert_eq!(get(proxy.admin, "/nope", &[]).await.status, 404);
}

#[tokio::test]
async fn access_log_has_one_line_per_request_and_never_the_token() {
    let be = EchoBackend::start("a");
    let proxy = Proxy::start(simple_config(vec![be.target()]));
    let secret = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXBheWxvYWQ.c2lnbmF0dXJl";
    let auth = format!("Bearer {secret}");
    get(
        proxy.addr,
        "/pub?access_token=qs-secret",
        &[("authorization", auth.as_str())],
    )
    .await;
    get(
        proxy.addr,
        "/private/x",
        &[("authorization", auth.as_str())],
    )
    .await;
    proxy.wait_for_log(2);
    let lines = proxy.log_lines();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["status"], 200);
    assert_eq!(lines[0]["route"], "public");
    assert_eq!(lines[0]["decision"], "allow");
    assert_eq!(lines[0]["path"], "/pub");
    // refused (the token is not even verifiable), and the line says why
    assert_eq!(lines[1]["status"], 401);
    assert_eq!(lines[1]["decision"], "deny");
    assert_eq!(lines[1]["route"], "private");
    assert!(
        lines[1]["reason"].as_str().is_some_and(|r| r != "-"),
        "{}",
        lines[1]
    );
    for l in proxy.log.lock().unwrap().iter() {
        assert!(
            !l.contains(secret) && !l.contains("qs-secret"),
            "token leaked into the log: {l}"
        );
    }
}
