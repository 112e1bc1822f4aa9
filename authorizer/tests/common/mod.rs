//! Helpers shared by the integration tests that run a real JWKS server.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::{Duration, Instant};

use poolgate_authorizer::testutil::TestIssuer;
use poolgate_authorizer::{Authorizer, CacheConfig, IssuerConfig};

/// A test issuer and an authorizer for it (started), the config adjusted by `tweak`.
pub async fn setup(tweak: impl FnOnce(&mut IssuerConfig)) -> (TestIssuer, Authorizer) {
    let pool = TestIssuer::start().await.unwrap();
    let mut cfg = pool.config("shop");
    tweak(&mut cfg);
    let auth = Authorizer::new(vec![cfg], CacheConfig::default()).unwrap();
    auth.start();
    (pool, auth)
}

/// Sum of the samples of `name` whose labels include `labels`.
pub fn metric(registry: &prometheus::Registry, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut total = 0.0;
    for family in registry.gather() {
        if family.name() != name {
            continue;
        }
        for m in family.get_metric() {
            let matches = labels.iter().all(|(k, v)| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == *k && l.value() == *v)
            });
            if matches {
                total += if family.get_field_type() == prometheus::proto::MetricType::COUNTER {
                    m.get_counter().get_value()
                } else {
                    m.get_gauge().get_value()
                };
            }
        }
    }
    total
}

/// Polls `cond` every 20 ms until it holds or `limit` passes.
pub async fn wait_for(cond: impl Fn() -> bool, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}
