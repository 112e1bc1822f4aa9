//! The key-set lifecycle of one issuer: prefetch, background refresh honouring `max-age`,
//! single-flight rate-limited refetch on unknown `kid`, bounded staleness after failures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use tokio::sync::Mutex;

use crate::cache::TokenCache;
use crate::config::{IssuerConfig, JwksTimings, KeySource};
use crate::error::{ConfigError, FetchError};
use crate::jwks::Fetcher;
use crate::keys::KeySet;
use crate::metrics::Metrics;
use crate::verify::IssuerRules;

/// A key set in service.
pub(crate) struct Loaded {
    pub keys: KeySet,
    /// When it was fetched (the last successful fetch).
    pub fetched_at: Instant,
    /// Increases with every successful fetch.
    pub generation: u64,
    /// The oldest generation whose verifications this set still vouches for: a fetch that lost
    /// or changed a key starts it anew, so verifications made with older keys are redone.
    pub valid_from: u64,
}

struct FetchState {
    last_attempt: Option<Instant>,
    jwks_url: Option<String>,
    last_error: Option<String>,
}

/// One issuer's rules, keys and fetch machinery.
pub(crate) struct IssuerState {
    pub rules: IssuerRules,
    source: KeySource,
    timings: JwksTimings,
    fetcher: Fetcher,
    current: ArcSwapOption<Loaded>,
    /// Held for the duration of a fetch: concurrent refetch requests queue here and find the
    /// fetch already done (single flight).
    fetch: Mutex<FetchState>,
    metrics: Metrics,
    cache: Option<TokenCache>,
}

/// What a caller asking for an early fetch got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refetch {
    Fetched,
    Shared,
    RateLimited,
}

impl IssuerState {
    pub fn new(
        config: &IssuerConfig,
        metrics: Metrics,
        cache: Option<TokenCache>,
    ) -> Result<IssuerState, ConfigError> {
        let jwks_url = match &config.source {
            KeySource::Cognito { .. } => Some(format!(
                "{}/.well-known/jwks.json",
                config.source.issuer_url()
            )),
            KeySource::Explicit { jwks_url, .. } => Some(jwks_url.clone()),
            KeySource::Discovery { .. } => None,
        };
        metrics
            .keys
            .with_label_values(&[config.name.as_str()])
            .set(0);
        Ok(IssuerState {
            rules: IssuerRules::from_config(config),
            source: config.source.clone(),
            timings: config.jwks.clone(),
            fetcher: Fetcher::new(config)?,
            current: ArcSwapOption::empty(),
            fetch: Mutex::new(FetchState {
                last_attempt: None,
                jwks_url,
                last_error: None,
            }),
            metrics,
            cache,
        })
    }

    pub fn name(&self) -> &str {
        &self.rules.name
    }

    /// The current key set, stale or not.
    pub fn loaded(&self) -> Option<Arc<Loaded>> {
        self.current.load_full()
    }

    /// The key set if it may be used at `now` (not older than `max_stale`).
    #[inline]
    pub fn usable(&self, now: Instant) -> Option<arc_swap::Guard<Option<Arc<Loaded>>>> {
        let guard = self.current.load();
        let fresh = guard
            .as_ref()
            .is_some_and(|l| now.saturating_duration_since(l.fetched_at) <= self.timings.max_stale);
        fresh.then_some(guard)
    }

    /// The generation of the current key set (0: none yet).
    pub fn generation(&self) -> u64 {
        self.current.load().as_ref().map_or(0, |l| l.generation)
    }

    /// The message of the last failed fetch, cleared by a success.
    pub async fn last_error(&self) -> Option<String> {
        self.fetch.lock().await.last_error.clone()
    }

    /// One fetch (discovery first when needed); swaps the key set in on success. Caller holds
    /// the fetch lock. Returns the `max-age` of the response.
    async fn fetch_locked(&self, state: &mut FetchState) -> Result<Option<Duration>, FetchError> {
        state.last_attempt = Some(Instant::now());
        let result = self.fetch_inner(state).await;
        let label = match &result {
            Ok(_) => "ok",
            Err(e) => e.code(),
        };
        self.metrics
            .fetches
            .with_label_values(&[self.name(), label])
            .inc();
        match &result {
            Ok(_) => state.last_error = None,
            Err(e) => {
                log::warn!("jwks fetch for issuer `{}` failed: {e}", self.name());
                state.last_error = Some(e.to_string());
            }
        }
        result
    }

    async fn fetch_inner(&self, state: &mut FetchState) -> Result<Option<Duration>, FetchError> {
        let url = match (&state.jwks_url, &self.source) {
            (Some(url), _) => url.clone(),
            (None, KeySource::Discovery { issuer }) => {
                let url = self.fetcher.discover(issuer).await?;
                state.jwks_url = Some(url.clone());
                url
            }
            (None, _) => return Err(FetchError::BadUrl(String::new())),
        };
        let fetched = match self.fetcher.get(&url).await {
            Ok(f) => f,
            Err(e) => {
                // A discovered url may have moved: discover again next time.
                if matches!(self.source, KeySource::Discovery { .. }) {
                    state.jwks_url = None;
                }
                return Err(e);
            }
        };
        let keys = KeySet::from_jwks(&fetched.body, &self.rules.algorithms)?;
        let count = i64::try_from(keys.len()).unwrap_or(i64::MAX);
        let previous = self.current.load_full();
        let generation = previous.as_ref().map_or(0, |p| p.generation) + 1;
        let removed = previous
            .as_ref()
            .is_some_and(|p| p.keys.loses_keys_in(&keys));
        let valid_from = match &previous {
            Some(p) if !removed => p.valid_from,
            _ => generation,
        };
        self.current.store(Some(Arc::new(Loaded {
            keys,
            fetched_at: Instant::now(),
            generation,
            valid_from,
        })));
        // Cached tokens may have been verified with a key that is gone: forget them all
        // (rare; they re-verify against the new set).
        if removed && let Some(cache) = &self.cache {
            cache.clear();
        }
        self.metrics
            .keys
            .with_label_values(&[self.name()])
            .set(count);
        Ok(fetched.max_age)
    }

    /// Asks for an early fetch because a token named an unknown `kid` or no keys are usable.
    /// Concurrent callers share one fetch; at most one such fetch per `unknown_kid_min_interval`
    /// (the background refresh counts as one).
    pub async fn refetch(&self, seen_generation: u64) -> Refetch {
        let mut state = self.fetch.lock().await;
        let outcome = if self.generation() != seen_generation {
            Refetch::Shared
        } else if state
            .last_attempt
            .is_some_and(|t| t.elapsed() < self.timings.unknown_kid_min_interval)
        {
            Refetch::RateLimited
        } else {
            let _ = self.fetch_locked(&mut state).await;
            Refetch::Fetched
        };
        let label = match outcome {
            Refetch::Fetched => "fetched",
            Refetch::Shared => "shared",
            Refetch::RateLimited => "rate_limited",
        };
        self.metrics
            .refetch_requests
            .with_label_values(&[self.name(), label])
            .inc();
        outcome
    }

    /// The background task: fetch now (prefetch), then again after the response's `max-age`
    /// clamped to [min, max] (or the default), or after `retry_interval` when a fetch failed.
    pub async fn run(self: Arc<Self>) {
        loop {
            let delay = {
                let mut state = self.fetch.lock().await;
                match self.fetch_locked(&mut state).await {
                    Ok(max_age) => self.refresh_delay(max_age),
                    Err(_) => self.timings.retry_interval,
                }
            };
            tokio::time::sleep(delay).await;
        }
    }

    fn refresh_delay(&self, max_age: Option<Duration>) -> Duration {
        let t = &self.timings;
        max_age
            .unwrap_or(t.refresh_default)
            .max(t.refresh_min)
            .min(t.refresh_max)
    }
}
