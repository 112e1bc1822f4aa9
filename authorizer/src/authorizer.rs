//! `Authorizer`: the issuers, their key-set lifecycles, the verified-token cache and metrics,
//! behind one cheap-to-clone handle.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::task::JoinHandle;

use crate::cache::{self, TokenCache};
use crate::config::{CacheConfig, IssuerConfig, KeepClaims};
use crate::error::{AuthError, ConfigError};
use crate::identity::{Identity, Requirement};
use crate::jose;
use crate::lifecycle::IssuerState;
use crate::metrics::{Metrics, ScrapeCollector};
use crate::verify;

/// Verifies bearer tokens of the configured issuers. Clone it freely (an `Arc` inside).
#[derive(Clone)]
pub struct Authorizer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer")
            .field("issuers", &self.issuer_names())
            .field("cache", &self.inner.cache.is_some())
            .finish_non_exhaustive()
    }
}

struct Inner {
    issuers: Vec<Arc<IssuerState>>,
    by_iss: HashMap<String, usize>,
    max_token_bytes: usize,
    cache: Option<TokenCache>,
    keep_claims: KeepClaims,
    metrics: Metrics,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in self
            .tasks
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            task.abort();
        }
    }
}

/// The state of one issuer, for readiness endpoints and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerStatus {
    /// Configured name.
    pub name: String,
    /// The `iss` it accepts.
    pub issuer: String,
    /// Usable key ids (empty: none loaded, or too stale).
    pub kids: Vec<String>,
    /// Time since the last successful fetch.
    pub age: Option<Duration>,
}

/// Seconds since the Unix epoch (the shell reads the clock; the core is given it).
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Authorizer {
    /// Validates the issuers and builds their TLS clients. Nothing is fetched until `start`.
    pub fn new(issuers: Vec<IssuerConfig>, cache: CacheConfig) -> Result<Authorizer, ConfigError> {
        let metrics = Metrics::new().map_err(|e| ConfigError::Invalid {
            issuer: String::new(),
            message: format!("metrics: {e}"),
        })?;
        let keep_claims = cache.keep_claims.clone();
        let cache = TokenCache::new(&cache);
        let mut states = Vec::with_capacity(issuers.len());
        let mut by_iss: HashMap<String, usize> = HashMap::new();
        let mut names: HashMap<String, ()> = HashMap::new();
        let mut max_token_bytes = 0;
        for config in &issuers {
            config.validate()?;
            if names.insert(config.name.clone(), ()).is_some() {
                return Err(ConfigError::DuplicateName(config.name.clone()));
            }
            let iss = config.source.issuer_url();
            if let Some(&other) = by_iss.get(&iss) {
                let other = issuers
                    .get(other)
                    .map(|c| c.name.clone())
                    .unwrap_or_default();
                return Err(ConfigError::DuplicateIssuer(
                    other,
                    config.name.clone(),
                    iss,
                ));
            }
            by_iss.insert(iss, states.len());
            max_token_bytes = max_token_bytes.max(config.max_token_bytes);
            states.push(Arc::new(IssuerState::new(
                config,
                metrics.clone(),
                cache.clone(),
            )?));
        }
        Ok(Authorizer {
            inner: Arc::new(Inner {
                issuers: states,
                by_iss,
                max_token_bytes,
                cache,
                keep_claims,
                metrics,
                tasks: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Spawns, on the current tokio runtime, each issuer's task: prefetch now, then background
    /// refresh. Calling it again does nothing. Outside a tokio runtime nothing is spawned, an
    /// error is logged, and verification answers `KeysUnavailable` (fail closed).
    pub fn start(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            log::error!("start() called outside a tokio runtime: no keys will load");
            return;
        };
        let mut tasks = self
            .inner
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !tasks.is_empty() {
            return;
        }
        for issuer in &self.inner.issuers {
            tasks.push(runtime.spawn(issuer.clone().run()));
        }
    }

    /// The configured issuer names, in configuration order.
    pub fn issuer_names(&self) -> Vec<&str> {
        self.inner.issuers.iter().map(|i| i.name()).collect()
    }

    /// Stops the background tasks (also done when the last clone is dropped).
    pub fn stop(&self) {
        for task in self
            .inner
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            task.abort();
        }
    }

    /// True when every issuer has a usable key set.
    pub fn is_ready(&self) -> bool {
        let now = Instant::now();
        self.inner.issuers.iter().all(|i| i.usable(now).is_some())
    }

    /// Waits until `is_ready`, at most `limit`. Returns readiness.
    pub async fn wait_ready(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if self.is_ready() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Per-issuer key state.
    pub fn status(&self) -> Vec<IssuerStatus> {
        let now = Instant::now();
        self.inner
            .issuers
            .iter()
            .map(|i| {
                let usable = i.usable(now);
                let loaded = usable.as_ref().and_then(|g| g.as_ref());
                IssuerStatus {
                    name: i.name().to_owned(),
                    issuer: i.rules.iss.to_string(),
                    kids: loaded.map_or_else(Vec::new, |l| {
                        l.keys.kids().into_iter().map(str::to_owned).collect()
                    }),
                    age: loaded.map(|l| now.saturating_duration_since(l.fetched_at)),
                }
            })
            .collect()
    }

    /// Registers the authorizer's counters and gauges (`poolgate_jwks_*`, `poolgate_token_*`).
    pub fn register_metrics(&self, registry: &prometheus::Registry) -> prometheus::Result<()> {
        let cache = self.inner.cache.clone();
        registry.register(Box::new(ScrapeCollector {
            metrics: self.inner.metrics.clone(),
            issuers: self.inner.issuers.clone(),
            cache_entries: Box::new(move || cache.as_ref().map_or(0, TokenCache::entry_count)),
        }))
    }

    /// Verifies `token` for a route: the cache, then the current keys; on an unknown `kid` or
    /// missing keys, one shared, rate-limited JWKS fetch and a second attempt.
    pub async fn verify(&self, token: &str, req: &Requirement) -> Result<Arc<Identity>, AuthError> {
        match self.verify_without_fetch(token, req) {
            Some(answer) => answer,
            None => self.verify_after_fetch(token, req).await,
        }
    }

    /// The second half of `verify`, for a token `verify_without_fetch` gave `None`: one
    /// shared, rate-limited fetch of its issuer's keys, then a second attempt (counted).
    pub async fn verify_after_fetch(
        &self,
        token: &str,
        req: &Requirement,
    ) -> Result<Arc<Identity>, AuthError> {
        if let Some(issuer) = self.issuer_of(token) {
            issuer.refetch(issuer.generation()).await;
        }
        let result = self.verify_inner(token, req, unix_now());
        self.inner
            .metrics
            .count(result.as_ref().map(|_| ()).map_err(|e| *e));
        result
    }

    /// The answer without awaiting anything, when there is one: a cache hit, a token verified
    /// with the current keys, or a refusal that no key fetch could change. `None` when the
    /// token needs keys poolgate does not hold (an unknown `kid`, keys unavailable): then call
    /// `verify_after_fetch`. Nothing is counted for a `None`, so each token is counted once.
    pub fn verify_without_fetch(
        &self,
        token: &str,
        req: &Requirement,
    ) -> Option<Result<Arc<Identity>, AuthError>> {
        let result = self.verify_inner(token, req, unix_now());
        if matches!(
            result,
            Err(AuthError::UnknownKid | AuthError::KeysUnavailable)
        ) {
            return None;
        }
        self.inner
            .metrics
            .count(result.as_ref().map(|_| ()).map_err(|e| *e));
        Some(result)
    }

    /// The synchronous path: cache, then the current keys, never the network. An unknown `kid`
    /// gives `UnknownKid` without a refetch (use `verify` for that).
    pub fn verify_now(&self, token: &str, req: &Requirement) -> Result<Arc<Identity>, AuthError> {
        self.verify_at(token, req, unix_now())
    }

    /// As `verify_now` with the time given (seconds since the Unix epoch).
    pub fn verify_at(
        &self,
        token: &str,
        req: &Requirement,
        now: u64,
    ) -> Result<Arc<Identity>, AuthError> {
        let result = self.verify_inner(token, req, now);
        self.inner
            .metrics
            .count(result.as_ref().map(|_| ()).map_err(|e| *e));
        result
    }

    fn verify_inner(
        &self,
        token: &str,
        req: &Requirement,
        now: u64,
    ) -> Result<Arc<Identity>, AuthError> {
        let inner = &*self.inner;
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        if token.len() > inner.max_token_bytes {
            return Err(AuthError::Malformed);
        }
        // The cache and this token's key in it (none in the never-seen case the digest fails).
        let cached = inner
            .cache
            .as_ref()
            .and_then(|c| Some((c, cache::key_of(token)?)));
        if let Some((cache, key)) = &cached {
            match cache.get(key) {
                Some(entry) => {
                    if now >= entry.expires_at {
                        inner.metrics.cache_hits.inc();
                        cache.invalidate(key);
                        return Err(AuthError::Expired);
                    }
                    // A verification is only as good as the keys it was made with: once they
                    // are stale past `max_stale`, a cached token is refused like an uncached
                    // one; once one of them was lost or changed (a verification that raced
                    // the new set in), it is made again.
                    let guard = inner
                        .issuers
                        .get(entry.issuer)
                        .and_then(|i| i.usable(Instant::now()))
                        .ok_or(AuthError::KeysUnavailable)?;
                    if guard
                        .as_ref()
                        .is_some_and(|l| entry.generation >= l.valid_from)
                    {
                        inner.metrics.cache_hits.inc();
                        req.check(&entry.identity)?;
                        return Ok(entry.identity);
                    }
                    cache.invalidate(key);
                    inner.metrics.cache_misses.inc();
                }
                None => inner.metrics.cache_misses.inc(),
            }
        }

        let decoded = jose::decode(token, inner.max_token_bytes)?;
        let issuer_index = *inner
            .by_iss
            .get(decoded.iss())
            .ok_or(AuthError::WrongIssuer)?;
        let issuer = inner
            .issuers
            .get(issuer_index)
            .ok_or(AuthError::WrongIssuer)?;
        if token.len() > issuer.rules.max_token_bytes {
            return Err(AuthError::Malformed);
        }
        // The route names another issuer: no need to spend a signature check.
        if req.issuer.as_deref().is_some_and(|n| n != issuer.name()) {
            return Err(AuthError::WrongIssuer);
        }
        let guard = issuer
            .usable(Instant::now())
            .ok_or(AuthError::KeysUnavailable)?;
        let loaded = guard.as_ref().ok_or(AuthError::KeysUnavailable)?;
        let identity = Arc::new(verify::check(
            decoded,
            &issuer.rules,
            &loaded.keys,
            now,
            &inner.keep_claims,
        )?);
        if let Some((cache, key)) = cached {
            let expires_at = identity.exp.saturating_add(issuer.rules.leeway);
            let generation = loaded.generation;
            cache.insert(
                key,
                identity.clone(),
                issuer_index,
                generation,
                expires_at,
                now,
            );
        }
        req.check(&identity)?;
        Ok(identity)
    }

    /// The issuer a token claims (its `iss`), if configured.
    fn issuer_of(&self, token: &str) -> Option<&Arc<IssuerState>> {
        let decoded = jose::decode(token, self.inner.max_token_bytes).ok()?;
        let idx = self.inner.by_iss.get(decoded.iss())?;
        self.inner.issuers.get(*idx)
    }

    /// Drops every cached verification (e.g. after a configuration reload).
    pub fn clear_cache(&self) {
        if let Some(c) = &self.inner.cache {
            c.clear();
        }
    }

    /// Approximate number of cached tokens (after pending maintenance).
    pub fn cache_len(&self) -> u64 {
        self.inner.cache.as_ref().map_or(0, |c| {
            c.sync();
            c.entry_count()
        })
    }

    /// The last fetch error of the named issuer, if its last fetch failed.
    pub async fn last_fetch_error(&self, issuer: &str) -> Option<String> {
        let state = self.inner.issuers.iter().find(|i| i.name() == issuer)?;
        state.last_error().await
    }
}

#[cfg(all(test, feature = "test-util"))]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::testutil::{TestIssuer, TestKey, unix_now};

    /// A verification made with a key that a concurrent fetch replaced can land in the cache
    /// after the fetch emptied it; it must not be served from there.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_verification_cached_after_its_key_was_replaced_is_made_again() {
        let pool = TestIssuer::start().await.unwrap();
        let mut cfg = pool.config("shop");
        cfg.jwks.unknown_kid_min_interval = Duration::from_millis(100);
        let auth = Authorizer::new(vec![cfg], CacheConfig::default()).unwrap();
        auth.start();
        assert!(auth.wait_ready(Duration::from_secs(5)).await);
        let old = pool.mint_access("alice", &[], &[]);
        let identity = auth.verify(&old, &Requirement::any()).await.unwrap();
        // The key behind `old` changes under its kid; a token of a new kid brings the new set.
        pool.remove_key("access-1");
        pool.add_key(Arc::new(TestKey::rsa("access-1").unwrap()));
        pool.rotate().unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        let fresh = pool.mint_access("bob", &[], &[]);
        auth.verify(&fresh, &Requirement::any()).await.unwrap();
        // The race: the old verification (generation 1) is inserted after the clear.
        let cache = auth.inner.cache.as_ref().unwrap();
        let key = cache::key_of(&old).unwrap();
        let exp = identity.exp;
        cache.insert(key, identity, 0, 1, exp, unix_now());
        assert_eq!(
            auth.verify_now(&old, &Requirement::any()),
            Err(AuthError::BadSignature)
        );
    }
}
