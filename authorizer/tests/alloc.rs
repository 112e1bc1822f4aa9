//! A cache hit allocates nothing (counted by a counting global allocator, on this thread).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use poolgate_authorizer::testutil::TestIssuer;
use poolgate_authorizer::{AuthError, Authorizer, CacheConfig, Requirement};

#[test]
fn a_cache_hit_does_not_allocate() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pool = rt.block_on(TestIssuer::start()).unwrap();
    let auth = Authorizer::new(vec![pool.config("shop")], CacheConfig::default()).unwrap();
    rt.block_on(async {
        auth.start();
        assert!(auth.wait_ready(Duration::from_secs(5)).await);
    });
    let token = pool.mint_access("alice", &["admins"], &["orders/read"]);
    let req = Requirement::access("shop");
    let wrong = Requirement::id("shop");
    // The miss (verify and insert), and enough hits for moka's one-time lazy set-up (its first
    // maintenance run allocates its internal structures once), outside the measurement.
    assert!(auth.verify_now(&token, &req).is_ok());
    for _ in 0..1000 {
        assert!(auth.verify_now(&token, &req).is_ok());
    }

    let hit = allocation_counter::measure(|| {
        for _ in 0..2000 {
            assert!(auth.verify_now(&token, &req).is_ok());
        }
    });
    assert_eq!(hit.count_total, 0, "a cache hit allocated: {hit:?}");
    let refused = allocation_counter::measure(|| {
        assert_eq!(
            auth.verify_now(&token, &wrong),
            Err(AuthError::WrongTokenUse)
        );
    });
    assert_eq!(
        refused.count_total, 0,
        "a refused cache hit allocated: {refused:?}"
    );

    // A miss does allocate (decoding, the identity, the cache entry): the counter works.
    let other = pool.mint_access("bob", &[], &[]);
    let miss = allocation_counter::measure(|| {
        assert!(auth.verify_now(&other, &req).is_ok());
    });
    assert!(miss.count_total > 0);
    drop(pool);
}
