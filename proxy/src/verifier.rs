//! The seam between the gate and token verification.
//!
//! The gate needs of a verifier: verify a bearer token against a route's requirement, and say
//! whether it is ready (every issuer has keys). The authorizer crate's `Authorizer` is the real
//! implementation; the trait keeps the gate testable and lets the proxy run with no issuers
//! (then every bearer token is refused with 401).

use std::sync::Arc;

use async_trait::async_trait;
use poolgate_authorizer::{
    AuthError, Authorizer, CacheConfig, Identity, IssuerConfig, KeepClaims, Requirement,
};
use poolgate_policies as pol;

use crate::convert;

/// Verifies bearer tokens.
#[async_trait]
pub trait TokenVerifier: Send + Sync {
    /// The verified identity, or why the token is refused, when that needs no key fetch (a
    /// cache hit, mostly: no boxed future on the hot path); `None`: call `verify_after_fetch`.
    fn verify_without_fetch(
        &self,
        token: &str,
        req: &Requirement,
    ) -> Option<Result<Arc<Identity>, AuthError>>;

    /// For a token `verify_without_fetch` gave `None`: the issuer's keys fetched (shared and
    /// rate-limited), then the answer.
    async fn verify_after_fetch(
        &self,
        token: &str,
        req: &Requirement,
    ) -> Result<Arc<Identity>, AuthError>;

    /// Whether every issuer has usable keys (feeds `/readyz`).
    fn is_ready(&self) -> bool;

    /// Starts background work (key prefetch and refresh) on the current tokio runtime.
    fn start(&self) {}

    /// Waits until ready or `limit` passes; whether it is ready.
    async fn wait_ready(&self, limit: std::time::Duration) -> bool;

    /// Stops background work.
    fn stop(&self) {}
}

#[async_trait]
impl TokenVerifier for Authorizer {
    async fn verify_after_fetch(
        &self,
        token: &str,
        req: &Requirement,
    ) -> Result<Arc<Identity>, AuthError> {
        Authorizer::verify_after_fetch(self, token, req).await
    }

    fn verify_without_fetch(
        &self,
        token: &str,
        req: &Requirement,
    ) -> Option<Result<Arc<Identity>, AuthError>> {
        Authorizer::verify_without_fetch(self, token, req)
    }

    fn is_ready(&self) -> bool {
        Authorizer::is_ready(self)
    }

    fn start(&self) {
        Authorizer::start(self);
    }

    async fn wait_ready(&self, limit: std::time::Duration) -> bool {
        Authorizer::wait_ready(self, limit).await
    }

    fn stop(&self) {
        Authorizer::stop(self);
    }
}

/// Why the verifier for a policy could not be built.
#[derive(Debug, thiserror::Error)]
pub enum VerifierError {
    #[error(transparent)]
    Convert(#[from] convert::ConvertError),
    #[error("issuers: {0}")]
    Config(#[from] poolgate_authorizer::ConfigError),
    #[error("authorizer metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// A policy's verifier with what a reload needs to decide whether to keep it.
#[derive(Clone)]
pub struct VerifierSetup {
    pub verifier: Arc<dyn TokenVerifier>,
    /// The issuers it was built for (a reload with equal issuers keeps it, cache and keys).
    pub issuers: Vec<IssuerConfig>,
    /// Its cache settings, among them the claims its identities keep: those the policy reads.
    /// A reload that reads another claim gets a new verifier, so no cached identity lacks a
    /// claim the new policy needs.
    pub cache: CacheConfig,
    /// Its own metrics registry, rendered by `/metrics` next to the proxy's.
    pub registry: Option<prometheus::Registry>,
}

/// The verifier for `policy`: the `previous` one when the issuers did not change, a new
/// `Authorizer` (not yet started) otherwise, `None` when the policy has no issuers.
pub fn for_policy(
    policy: &pol::Config,
    previous: Option<&VerifierSetup>,
) -> Result<Option<VerifierSetup>, VerifierError> {
    let issuers = convert::issuers(policy)?;
    if issuers.is_empty() {
        return Ok(None);
    }
    let cache = CacheConfig {
        capacity: policy.server.token_cache_capacity,
        keep_claims: if policy.keeps_all_claims() {
            KeepClaims::All
        } else {
            KeepClaims::Only(Arc::new(policy.claims_read()))
        },
        ..CacheConfig::default()
    };
    if let Some(prev) = previous
        && prev.issuers == issuers
        && prev.cache == cache
    {
        return Ok(Some(prev.clone()));
    }
    let authorizer = Authorizer::new(issuers.clone(), cache.clone())?;
    let registry = prometheus::Registry::new();
    authorizer.register_metrics(&registry)?;
    Ok(Some(VerifierSetup {
        verifier: Arc::new(authorizer),
        issuers,
        cache,
        registry: Some(registry),
    }))
}
