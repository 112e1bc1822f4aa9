//! JWKS failures against a real server on 127.0.0.1: 500, garbage, hang, oversize bodies, no usable
//! key, connection refused, outages after start, and a burst of unknown kids.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::{metric, setup};
use std::sync::Arc;
use std::time::{Duration, Instant};

use poolgate_authorizer::testutil::{Behaviour, TestIssuer, TestKey};
use poolgate_authorizer::{
    AuthError, Authorizer, CacheConfig, IssuerConfig, KeySource, Requirement,
};
use serde_json::json;
async fn failing_at_start(behaviour: Behaviour, code: &str, tweak: impl FnOnce(&mut IssuerConfig)) {
    let pool = TestIssuer::start().await.unwrap();
    pool.set_behaviour(behaviour.clone());
    let mut cfg = pool.config("shop");
    cfg.jwks.total_timeout = Duration::from_millis(300);
    cfg.jwks.unknown_kid_min_interval = Duration::from_millis(50);
    tweak(&mut cfg);
    let auth = Authorizer::new(vec![cfg], CacheConfig::default()).unwrap();
    let registry = prometheus::Registry::new();
    auth.register_metrics(&registry).unwrap();
    auth.start();
    let token = pool.mint_access("alice", &[], &[]);
    assert!(
        !auth.wait_ready(Duration::from_millis(400)).await,
        "{behaviour:?}"
    );
    assert_eq!(
        auth.verify(&token, &Requirement::any()).await,
        Err(AuthError::KeysUnavailable),
        "{behaviour:?}"
    );
    let failures = metric(
        &registry,
        "poolgate_jwks_fetches_total",
        &[("result", code)],
    );
    assert!(
        failures >= 1.0,
        "{behaviour:?}: no `{code}` failure counted"
    );
    assert!(auth.last_fetch_error("shop").await.is_some());
    // The endpoint comes back: keys load by themselves and the token verifies.
    pool.set_behaviour(Behaviour::Normal);
    assert!(
        auth.wait_ready(Duration::from_secs(5)).await,
        "{behaviour:?}: no recovery"
    );
    assert!(auth.verify(&token, &Requirement::any()).await.is_ok());
    assert!(auth.last_fetch_error("shop").await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_at_start_500_then_recovery() {
    failing_at_start(Behaviour::Status(500), "status", |_| {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_at_start_garbage_json() {
    failing_at_start(Behaviour::Garbage, "bad_document", |_| {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_at_start_hang_times_out() {
    failing_at_start(Behaviour::Hang, "timeout", |_| {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_at_start_oversize_body() {
    failing_at_start(Behaviour::Oversize(2 * 1024 * 1024), "too_large", |_| {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_at_start_oversize_chunked_body() {
    failing_at_start(
        Behaviour::OversizeChunked(2 * 1024 * 1024),
        "too_large",
        |_| {},
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_at_start_key_set_without_usable_keys() {
    let pool = TestIssuer::start().await.unwrap();
    // The issuer allows only ES256, the JWKS has RSA keys only.
    let mut cfg = pool.config("shop");
    cfg.algorithms = vec![poolgate_authorizer::Algorithm::ES256];
    let auth = Authorizer::new(vec![cfg], CacheConfig::default()).unwrap();
    let registry = prometheus::Registry::new();
    auth.register_metrics(&registry).unwrap();
    auth.start();
    assert!(!auth.wait_ready(Duration::from_millis(300)).await);
    assert!(
        metric(
            &registry,
            "poolgate_jwks_fetches_total",
            &[("result", "no_usable_key")]
        ) >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_at_start_connection_refused() {
    // A port nobody listens on (bound then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let pool = TestIssuer::start().await.unwrap();
    let mut cfg = pool.config("shop");
    cfg.source = KeySource::Explicit {
        issuer: pool.issuer.clone(),
        jwks_url: format!("http://127.0.0.1:{port}/jwks.json"),
    };
    let auth = Authorizer::new(vec![cfg], CacheConfig::default()).unwrap();
    auth.start();
    let token = pool.mint_access("alice", &[], &[]);
    assert_eq!(
        auth.verify(&token, &Requirement::any()).await,
        Err(AuthError::KeysUnavailable)
    );
    assert!(
        auth.last_fetch_error("shop")
            .await
            .unwrap()
            .contains("transport")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_after_start_keeps_the_last_good_keys_for_bounded_staleness() {
    let (pool, auth) = setup(|c| {
        c.jwks.total_timeout = Duration::from_millis(200);
        c.jwks.unknown_kid_min_interval = Duration::from_millis(50);
        c.jwks.max_stale = Duration::from_millis(1500);
    })
    .await;
    assert!(auth.wait_ready(Duration::from_secs(5)).await);
    pool.set_behaviour(Behaviour::Status(503));
    // Unknown kid → a failed fetch; the known keys keep working.
    let stranger = TestKey::rsa("stranger").unwrap();
    let odd = stranger.sign_claims(&pool.access_claims("eve", &[], &[]).into_value());
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(
        auth.verify(&odd, &Requirement::any()).await,
        Err(AuthError::UnknownKid)
    );
    assert!(auth.last_fetch_error("shop").await.is_some());
    let alice = pool.mint_access("alice", &[], &[]);
    assert!(auth.verify(&alice, &Requirement::any()).await.is_ok());
    assert_eq!(auth.cache_len(), 1, "alice's verification is cached");
    assert!(auth.is_ready());
    // Past max_stale the keys are no longer trusted: not for new tokens, nor for cached ones.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert!(!auth.is_ready());
    assert_eq!(
        auth.verify(&pool.mint_access("bob", &[], &[]), &Requirement::any())
            .await,
        Err(AuthError::KeysUnavailable)
    );
    assert_eq!(
        auth.verify_now(&alice, &Requirement::any()),
        Err(AuthError::KeysUnavailable)
    );
    pool.set_behaviour(Behaviour::Normal);
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert!(
        auth.verify(&pool.mint_access("bob", &[], &[]), &Requirement::any())
            .await
            .is_ok()
    );
    assert!(auth.verify(&alice, &Requirement::any()).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_unknown_kids_fetches_at_most_once_per_interval() {
    let interval = Duration::from_secs(2);
    let (pool, auth) = setup(|c| c.jwks.unknown_kid_min_interval = interval).await;
    let registry = prometheus::Registry::new();
    auth.register_metrics(&registry).unwrap();
    assert!(auth.wait_ready(Duration::from_secs(5)).await);
    tokio::time::sleep(interval).await; // the prefetch no longer rate-limits
    let before = pool.fetches();
    let stranger = TestKey::rsa("stranger").unwrap();
    let tokens: Vec<Arc<str>> = (0..8)
        .map(|i| {
            let claims = pool
                .access_claims(&format!("user{i}"), &[], &[])
                .into_value();
            let header = json!({"alg": "RS256", "kid": format!("unknown-{i}")});
            Arc::from(stranger.sign_token(&header, &claims))
        })
        .collect();
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(10_000);
    for i in 0..10_000usize {
        let auth = auth.clone();
        let token = tokens[i % tokens.len()].clone();
        tasks.push(tokio::spawn(async move {
            auth.verify(&token, &Requirement::any()).await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), Err(AuthError::UnknownKid));
    }
    let elapsed = started.elapsed();
    let burst = pool.fetches() - before;
    let allowed = (elapsed.as_secs_f64() / interval.as_secs_f64()).floor() as usize + 1;
    assert!(burst >= 1, "the burst must trigger a fetch");
    assert!(
        burst <= allowed,
        "{burst} fetches in {elapsed:?} (allowed {allowed})"
    );
    let fetched = metric(
        &registry,
        "poolgate_jwks_refetch_requests_total",
        &[("outcome", "fetched")],
    );
    let rest = metric(
        &registry,
        "poolgate_jwks_refetch_requests_total",
        &[("outcome", "rate_limited")],
    ) + metric(
        &registry,
        "poolgate_jwks_refetch_requests_total",
        &[("outcome", "shared")],
    );
    assert_eq!(fetched + rest, 10_000.0);
    eprintln!("burst of 10000 unknown kids: {burst} fetch(es) in {elapsed:?}");
}
