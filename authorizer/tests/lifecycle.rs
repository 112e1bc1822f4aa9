//! The JWKS lifecycle against a real JWKS server on 127.0.0.1: readiness, the cache, rotation,
//! removal, max-age refreshes, discovery, several issuers, configuration errors.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::{metric, setup, wait_for};
use std::sync::Arc;
use std::time::Duration;

use poolgate_authorizer::testutil::{TestIssuer, TestKey, unix_now};
use poolgate_authorizer::{
    AuthError, Authorizer, CacheConfig, IssuerConfig, KeySource, Requirement, TokenUse,
    TokenUseRequirement,
};
use serde_json::json;
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetch_readiness_and_both_token_kinds() {
    let (pool, auth) = setup(|_| {}).await;
    assert!(auth.wait_ready(Duration::from_secs(5)).await);
    assert_eq!(pool.fetches(), 1);
    let status = auth.status();
    assert_eq!(status[0].kids, ["access-1", "id-1"]);

    let access = pool.mint_access("alice", &["admins"], &["orders/read"]);
    let who = auth
        .verify(&access, &Requirement::access("shop"))
        .await
        .unwrap();
    assert_eq!(&*who.issuer, "shop");
    assert_eq!(who.token_use, TokenUse::Access);
    assert_eq!(who.groups, ["admins"]);
    assert_eq!(who.scopes, ["orders/read"]);
    assert_eq!(who.username.as_deref(), Some("alice"));

    let id = pool.mint_id("alice", &[]);
    let who_id = auth.verify(&id, &Requirement::id("shop")).await.unwrap();
    assert_eq!(who_id.token_use, TokenUse::Id);
    assert_eq!(who_id.sub, who.sub);
    assert_eq!(pool.fetches(), 1, "known kids never fetch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_hits_still_check_route_and_time() {
    let (pool, auth) = setup(|_| {}).await;
    let registry = prometheus::Registry::new();
    auth.register_metrics(&registry).unwrap();
    assert!(auth.wait_ready(Duration::from_secs(5)).await);
    let token = pool.mint_access("alice", &["admins"], &["orders/read"]);
    let a = auth
        .verify(&token, &Requirement::access("shop"))
        .await
        .unwrap();
    let b = auth
        .verify(&token, &Requirement::access("shop"))
        .await
        .unwrap();
    assert!(Arc::ptr_eq(&a, &b), "second verification is a cache hit");
    assert_eq!(
        metric(&registry, "poolgate_token_cache_hits_total", &[]),
        1.0
    );
    assert_eq!(
        metric(&registry, "poolgate_token_cache_misses_total", &[]),
        1.0
    );

    // A hit is still refused when the route wants something else.
    assert_eq!(
        auth.verify(&token, &Requirement::id("shop")).await,
        Err(AuthError::WrongTokenUse)
    );
    assert_eq!(
        auth.verify(&token, &Requirement::access("other")).await,
        Err(AuthError::WrongIssuer)
    );
    let clients = Requirement {
        clients: Some(Arc::from(vec!["another-client".to_owned()])),
        ..Requirement::access("shop")
    };
    assert_eq!(
        auth.verify(&token, &clients).await,
        Err(AuthError::WrongAudience)
    );
    // And when time has passed its `exp`.
    assert_eq!(
        auth.verify_at(&token, &Requirement::any(), a.exp),
        Err(AuthError::Expired)
    );
    assert_eq!(
        metric(
            &registry,
            "poolgate_token_verifications_total",
            &[("result", "ok")]
        ),
        2.0
    );
    assert_eq!(
        metric(
            &registry,
            "poolgate_token_verifications_total",
            &[("result", "wrong_token_use")]
        ),
        1.0
    );
    assert_eq!(
        metric(&registry, "poolgate_jwks_keys", &[("issuer", "shop")]),
        2.0
    );
    assert_eq!(
        metric(
            &registry,
            "poolgate_jwks_fetches_total",
            &[("issuer", "shop"), ("result", "ok")]
        ),
        1.0
    );
    let age = metric(
        &registry,
        "poolgate_jwks_age_seconds",
        &[("issuer", "shop")],
    );
    assert!((0.0..60.0).contains(&age), "age {age}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_expiring_soon_is_cached_no_longer_than_exp() {
    let (pool, auth) = setup(|_| {}).await;
    assert!(auth.wait_ready(Duration::from_secs(5)).await);
    let now = unix_now();
    let token = pool.sign_access(
        pool.access_claims("alice", &[], &[])
            .set("exp", json!(now + 1)),
    );
    assert!(auth.verify(&token, &Requirement::any()).await.is_ok());
    assert_eq!(auth.cache_len(), 1);
    // Past `exp` the entry is gone and the token refused.
    assert_eq!(
        auth.verify_at(&token, &Requirement::any(), now + 1),
        Err(AuthError::Expired)
    );
    assert_eq!(auth.cache_len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_kid_is_accepted_without_restart() {
    let (pool, auth) =
        setup(|c| c.jwks.unknown_kid_min_interval = Duration::from_millis(100)).await;
    assert!(auth.wait_ready(Duration::from_secs(5)).await);
    let old = pool.mint_access("alice", &[], &[]);
    let kid = pool.rotate().unwrap();
    assert_eq!(kid, "access-2");
    tokio::time::sleep(Duration::from_millis(150)).await;
    let new = pool.mint_access("alice", &[], &[]);
    assert_eq!(
        auth.verify_now(&new, &Requirement::any()),
        Err(AuthError::UnknownKid)
    );
    assert!(auth.verify(&new, &Requirement::any()).await.is_ok());
    assert_eq!(pool.fetches(), 2);
    assert!(
        auth.verify(&old, &Requirement::any()).await.is_ok(),
        "old key still published"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_kid_stops_verifying_after_the_next_refresh() {
    let (pool, auth) =
        setup(|c| c.jwks.unknown_kid_min_interval = Duration::from_millis(100)).await;
    assert!(auth.wait_ready(Duration::from_secs(5)).await);
    let old = pool.mint_access("alice", &[], &[]);
    assert!(auth.verify(&old, &Requirement::any()).await.is_ok());
    pool.rotate().unwrap();
    pool.remove_key("access-1");
    // Still accepted (cached, and the key set has not been refreshed yet).
    assert!(auth.verify(&old, &Requirement::any()).await.is_ok());
    // A token with the new kid triggers the refresh...
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(
        auth.verify(&pool.mint_access("bob", &[], &[]), &Requirement::any())
            .await
            .is_ok()
    );
    assert!(!auth.status()[0].kids.contains(&"access-1".to_owned()));
    // ...after which the old key's token is refused, cache or not.
    assert_eq!(
        auth.verify_now(&old, &Requirement::any()),
        Err(AuthError::UnknownKid)
    );
    let fresh_old = pool.sign_raw(
        &json!({"alg": "RS256", "kid": "access-1"}),
        &pool.access_claims("carol", &[], &[]).into_value(),
    );
    assert_eq!(
        auth.verify_now(&fresh_old, &Requirement::any()),
        Err(AuthError::UnknownKid)
    );
}

/// A key replaced under the same `kid` (a re-keyed IdP, or a JWKS that was wrong): tokens that
/// were cached as verified by the old key stop being accepted once the new set is fetched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_changed_under_the_same_kid_drops_the_tokens_cached_with_it() {
    let (pool, auth) =
        setup(|c| c.jwks.unknown_kid_min_interval = Duration::from_millis(100)).await;
    assert!(auth.wait_ready(Duration::from_secs(5)).await);
    let old = pool.mint_access("alice", &[], &[]);
    assert!(auth.verify(&old, &Requirement::any()).await.is_ok());
    assert!(auth.verify_now(&old, &Requirement::any()).is_ok(), "cached");
    pool.remove_key("access-1");
    pool.add_key(Arc::new(TestKey::rsa("access-1").unwrap()));
    pool.rotate().unwrap();
    // A token with the new kid brings the new set.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let fetches = pool.fetches();
    assert!(
        auth.verify(&pool.mint_access("bob", &[], &[]), &Requirement::any())
            .await
            .is_ok()
    );
    assert!(pool.fetches() > fetches);
    assert!(auth.status()[0].kids.contains(&"access-1".to_owned()));
    assert_eq!(
        auth.verify_now(&old, &Requirement::any()),
        Err(AuthError::BadSignature),
        "a token verified by the replaced key is still accepted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_age_drives_background_refresh() {
    let pool = TestIssuer::start().await.unwrap();
    pool.server.set_max_age(Some(1));
    let auth = Authorizer::new(vec![pool.config("shop")], CacheConfig::default()).unwrap();
    auth.start();
    assert!(auth.wait_ready(Duration::from_secs(5)).await);
    // max-age=1 (clamped to refresh_min = 1 s): refreshes keep coming.
    assert!(wait_for(|| pool.fetches() >= 3, Duration::from_secs(10)).await);
    // max-age=3600 is clamped to refresh_max (60 s in the test config): after the fetch that
    // brings it, no further fetch for a while.
    pool.server.set_max_age(Some(3600));
    let n = pool.fetches();
    assert!(wait_for(|| pool.fetches() > n, Duration::from_secs(10)).await);
    let m = pool.fetches();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(pool.fetches(), m);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_finds_the_jwks() {
    let pool = TestIssuer::start().await.unwrap();
    let mut cfg = pool.config("shop");
    cfg.source = KeySource::Discovery {
        issuer: pool.issuer.clone(),
    };
    let auth = Authorizer::new(vec![cfg], CacheConfig::default()).unwrap();
    auth.start();
    assert!(auth.wait_ready(Duration::from_secs(5)).await);
    assert_eq!(pool.server.discovery_fetches(), 1);
    assert!(
        auth.verify(&pool.mint_access("alice", &[], &[]), &Requirement::any())
            .await
            .is_ok()
    );

    // A discovery document naming another issuer is refused.
    let mut wrong = pool.config("other");
    wrong.source = KeySource::Discovery {
        issuer: format!("{}/", pool.issuer),
    };
    let auth = Authorizer::new(vec![wrong], CacheConfig::default()).unwrap();
    auth.start();
    assert!(!auth.wait_ready(Duration::from_millis(300)).await);
    assert!(
        auth.last_fetch_error("other")
            .await
            .unwrap()
            .contains("discovery")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_issuers_are_told_apart_by_iss() {
    let a = TestIssuer::start_with_pool("us-east-1_A").await.unwrap();
    let b = TestIssuer::start_with_pool("us-east-1_B").await.unwrap();
    let mut cb = b.config("b");
    cb.token_use = TokenUseRequirement::Id;
    let auth = Authorizer::new(vec![a.config("a"), cb], CacheConfig::default()).unwrap();
    auth.start();
    assert!(auth.wait_ready(Duration::from_secs(5)).await);
    let ta = a.mint_access("alice", &[], &[]);
    let tb = b.mint_id("bob", &[]);
    assert_eq!(
        &*auth.verify(&ta, &Requirement::any()).await.unwrap().issuer,
        "a"
    );
    assert_eq!(
        &*auth.verify(&tb, &Requirement::any()).await.unwrap().issuer,
        "b"
    );
    assert_eq!(
        auth.verify(&tb, &Requirement::access("a")).await,
        Err(AuthError::WrongIssuer)
    );
    assert_eq!(
        auth.verify(&b.mint_access("bob", &[], &[]), &Requirement::any())
            .await,
        Err(AuthError::WrongTokenUse)
    );
    // A token signed by a's key but claiming b's iss is checked with b's key of the same kid.
    let forged = a.sign_access(
        a.access_claims("mallory", &[], &[])
            .set("iss", json!(b.issuer)),
    );
    assert_eq!(
        auth.verify(&forged, &Requirement::any()).await,
        Err(AuthError::BadSignature)
    );
}

#[test]
fn config_errors_are_reported() {
    let bad_pool = IssuerConfig::cognito("x", "eu-west-1", "us-east-1_Abc", &[]);
    assert!(Authorizer::new(vec![bad_pool], CacheConfig::default()).is_err());
    let ok = IssuerConfig::cognito("x", "eu-west-1", "eu-west-1_Abc", &[]);
    let dup_name = Authorizer::new(vec![ok.clone(), ok.clone()], CacheConfig::default());
    assert!(matches!(
        dup_name,
        Err(poolgate_authorizer::ConfigError::DuplicateName(_))
    ));
    let mut other = ok.clone();
    other.name = "y".into();
    let dup_iss = Authorizer::new(vec![ok, other], CacheConfig::default());
    assert!(matches!(
        dup_iss,
        Err(poolgate_authorizer::ConfigError::DuplicateIssuer(..))
    ));
    let no_algs = IssuerConfig {
        algorithms: vec![],
        ..IssuerConfig::cognito("x", "eu-west-1", "eu-west-1_Abc", &[])
    };
    assert!(Authorizer::new(vec![no_algs], CacheConfig::default()).is_err());
    let bad_url = IssuerConfig {
        source: KeySource::Explicit {
            issuer: "ftp://x".into(),
            jwks_url: "https://x/j".into(),
        },
        ..IssuerConfig::default()
    };
    assert!(
        Authorizer::new(
            vec![IssuerConfig {
                name: "z".into(),
                ..bad_url
            }],
            CacheConfig::default()
        )
        .is_err()
    );
    let mut missing_ca = IssuerConfig::cognito("x", "eu-west-1", "eu-west-1_Abc", &[]);
    missing_ca.extra_ca_file = Some("/nonexistent/ca.pem".into());
    let err = Authorizer::new(vec![missing_ca], CacheConfig::default())
        .err()
        .unwrap();
    assert!(err.to_string().contains("cannot read CA file"), "{err}");
    assert_eq!(
        IssuerConfig::cognito("x", "eu-west-1", "eu-west-1_Abc", &[])
            .source
            .issuer_url(),
        "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Abc"
    );
}

#[test]
fn start_outside_a_runtime_fails_closed() {
    let cfg = IssuerConfig::cognito("x", "eu-west-1", "eu-west-1_Abc", &["c"]);
    let auth = Authorizer::new(vec![cfg], CacheConfig::default()).unwrap();
    auth.start();
    assert!(!auth.is_ready());
    assert_eq!(auth.issuer_names(), ["x"]);
    let key = TestKey::rsa("k").unwrap();
    let claims = poolgate_authorizer::testutil::Claims::access(
        "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Abc",
        "c",
        "alice",
        &[],
        &[],
        unix_now(),
    );
    let token = key.sign_claims(&claims.into_value());
    assert_eq!(
        auth.verify_now(&token, &Requirement::any()),
        Err(AuthError::KeysUnavailable)
    );
    assert_eq!(
        auth.verify_now("", &Requirement::any()),
        Err(AuthError::Missing)
    );
}
