//! Prometheus counters and gauges of the authorizer. Created unregistered; the proxy registers
//! them with `Authorizer::register_metrics`.

use std::sync::Arc;
use std::time::Instant;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{GaugeVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts};

use crate::error::AuthError;
use crate::lifecycle::IssuerState;

/// Every metric of one `Authorizer`.
#[derive(Clone)]
pub(crate) struct Metrics {
    /// `poolgate_jwks_fetches_total{issuer,result}`.
    pub fetches: IntCounterVec,
    /// `poolgate_jwks_refetch_requests_total{issuer,outcome}`.
    pub refetch_requests: IntCounterVec,
    /// `poolgate_jwks_keys{issuer}`.
    pub keys: IntGaugeVec,
    /// `poolgate_jwks_age_seconds{issuer}`, computed at scrape time.
    pub age: GaugeVec,
    /// `poolgate_token_cache_hits_total`.
    pub cache_hits: IntCounter,
    /// `poolgate_token_cache_misses_total`.
    pub cache_misses: IntCounter,
    /// `poolgate_token_cache_entries`, computed at scrape time.
    pub cache_entries: IntGauge,
    /// `poolgate_token_verifications_total{result}`; `ok` first, then `AuthError::ALL` order.
    pub results: Arc<[IntCounter; 13]>,
    results_vec: IntCounterVec,
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> prometheus::Result<IntCounterVec> {
    IntCounterVec::new(Opts::new(name, help), labels)
}

impl Metrics {
    pub fn new() -> prometheus::Result<Metrics> {
        let results_vec = counter_vec(
            "poolgate_token_verifications_total",
            "Token verifications by result (ok or the refusal code), cache hits included",
            &["result"],
        )?;
        let ok = results_vec.get_metric_with_label_values(&["ok"])?;
        let mut results = vec![ok];
        for e in AuthError::ALL {
            results.push(results_vec.get_metric_with_label_values(&[e.code()])?);
        }
        let results: [IntCounter; 13] = results
            .try_into()
            .map_err(|_| prometheus::Error::Msg("result counters".into()))?;
        Ok(Metrics {
            fetches: counter_vec(
                "poolgate_jwks_fetches_total",
                "JWKS fetches by issuer and result (ok or the failure kind)",
                &["issuer", "result"],
            )?,
            refetch_requests: counter_vec(
                "poolgate_jwks_refetch_requests_total",
                "Requests for an early JWKS fetch (unknown kid or no keys) by outcome: fetched, shared (another fetch answered), rate_limited",
                &["issuer", "outcome"],
            )?,
            keys: IntGaugeVec::new(
                Opts::new(
                    "poolgate_jwks_keys",
                    "Usable keys in the issuer's current key set",
                ),
                &["issuer"],
            )?,
            age: GaugeVec::new(
                Opts::new(
                    "poolgate_jwks_age_seconds",
                    "Seconds since the issuer's keys were last fetched successfully (+Inf: never)",
                ),
                &["issuer"],
            )?,
            cache_hits: IntCounter::new(
                "poolgate_token_cache_hits_total",
                "Verified-token cache hits",
            )?,
            cache_misses: IntCounter::new(
                "poolgate_token_cache_misses_total",
                "Verified-token cache misses",
            )?,
            cache_entries: IntGauge::new(
                "poolgate_token_cache_entries",
                "Tokens in the verified-token cache (approximate)",
            )?,
            results: Arc::new(results),
            results_vec,
        })
    }

    /// Counts a verification outcome.
    #[inline]
    pub fn count(&self, result: Result<(), AuthError>) {
        let idx = match result {
            Ok(()) => 0,
            Err(e) => 1 + AuthError::ALL.iter().position(|x| *x == e).unwrap_or(0),
        };
        if let Some(c) = self.results.get(idx) {
            c.inc();
        }
    }
}

/// Registers everything; scrape-time gauges are refreshed by a collector over the live state.
pub(crate) struct ScrapeCollector {
    pub metrics: Metrics,
    pub issuers: Vec<Arc<IssuerState>>,
    pub cache_entries: Box<dyn Fn() -> u64 + Send + Sync>,
}

impl Collector for ScrapeCollector {
    fn desc(&self) -> Vec<&Desc> {
        let m = &self.metrics;
        let mut d = Vec::new();
        d.extend(m.fetches.desc());
        d.extend(m.refetch_requests.desc());
        d.extend(m.keys.desc());
        d.extend(m.age.desc());
        d.extend(m.cache_hits.desc());
        d.extend(m.cache_misses.desc());
        d.extend(m.cache_entries.desc());
        d.extend(m.results_vec.desc());
        d
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let m = &self.metrics;
        let now = Instant::now();
        for issuer in &self.issuers {
            let age = issuer.loaded().map_or(f64::INFINITY, |l| {
                now.duration_since(l.fetched_at).as_secs_f64()
            });
            m.age.with_label_values(&[issuer.name()]).set(age);
        }
        m.cache_entries
            .set(i64::try_from((self.cache_entries)()).unwrap_or(i64::MAX));
        let mut out = Vec::new();
        out.extend(m.fetches.collect());
        out.extend(m.refetch_requests.collect());
        out.extend(m.keys.collect());
        out.extend(m.age.collect());
        out.extend(m.cache_hits.collect());
        out.extend(m.cache_misses.collect());
        out.extend(m.cache_entries.collect());
        out.extend(m.results_vec.collect());
        out
    }
}
