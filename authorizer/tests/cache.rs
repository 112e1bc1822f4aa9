//! The verified-token cache is keyed on the whole token: near-misses of a cached token are
//! verified afresh (and refused), never served from the cache.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::Duration;

use common::{metric, setup};
use poolgate_authorizer::{AuthError, Requirement};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_differing_from_a_cached_one_is_not_a_hit() {
    let (pool, auth) = setup(|_| {}).await;
    let registry = prometheus::Registry::new();
    auth.register_metrics(&registry).unwrap();
    assert!(auth.wait_ready(Duration::from_secs(5)).await);
    let req = Requirement::access("shop");
    let token = pool.mint_access("alice", &["admins"], &["orders/read"]);
    auth.verify_now(&token, &req).unwrap();
    auth.verify_now(&token, &req).unwrap();
    assert_eq!(
        metric(&registry, "poolgate_token_cache_hits_total", &[]),
        1.0
    );

    let flip = |i: usize| {
        let mut b = token.clone().into_bytes();
        b[i] = if b[i] == b'A' { b'B' } else { b'A' };
        String::from_utf8(b).unwrap()
    };
    let (input, _) = token.rsplit_once('.').unwrap();
    let near_misses = [
        flip(token.len() - 2),           // the signature
        flip(input.len() - 5),           // the claims
        format!("{token}A"),             // one byte longer
        token[..token.len() - 1].into(), // one byte shorter
    ];
    for t in &near_misses {
        let refused = auth.verify_now(t, &req).unwrap_err();
        assert!(
            matches!(refused, AuthError::BadSignature | AuthError::Malformed),
            "{refused:?}"
        );
    }
    assert_eq!(
        metric(&registry, "poolgate_token_cache_hits_total", &[]),
        1.0
    );
    assert_eq!(
        metric(&registry, "poolgate_token_cache_misses_total", &[]),
        1.0 + near_misses.len() as f64
    );
    // The genuine token still hits.
    auth.verify_now(&token, &req).unwrap();
    assert_eq!(
        metric(&registry, "poolgate_token_cache_hits_total", &[]),
        2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_keeps_only_the_claims_asked_for_and_every_typed_field() {
    use poolgate_authorizer::testutil::TestIssuer;
    use poolgate_authorizer::{Authorizer, CacheConfig, KeepClaims};
    use std::collections::BTreeSet;
    use std::sync::Arc;

    let pool = TestIssuer::start().await.unwrap();
    let keep: BTreeSet<String> = ["email", "username", "absent"]
        .into_iter()
        .map(String::from)
        .collect();
    let cache = CacheConfig {
        keep_claims: KeepClaims::Only(Arc::new(keep)),
        ..CacheConfig::default()
    };
    let auth = Authorizer::new(vec![pool.config("shop")], cache).unwrap();
    auth.start();
    assert!(auth.wait_ready(Duration::from_secs(5)).await);
    let mut claims = pool
        .access_claims("alice", &["admins"], &["orders/read"])
        .into_value();
    claims["email"] = "alice@example.com".into();
    let token = pool.access_key().sign_claims(&claims);
    let req = Requirement::access("shop");
    for _ in 0..2 {
        // The second time from the cache: the same trimmed identity.
        let id = auth.verify_now(&token, &req).unwrap();
        let names: Vec<&str> = id.claims.names().collect();
        assert_eq!(names, ["email", "username"]);
        assert_eq!(id.username.as_deref(), Some("alice"));
        assert_eq!(id.groups, ["admins"]);
        assert_eq!(id.scopes, ["orders/read"]);
        assert!(!id.sub.is_empty());
        assert!(id.client_id.is_some());
    }
    assert_eq!(auth.cache_len(), 1);
}
