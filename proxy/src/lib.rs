//! poolgate-proxy: the `poolgate` binary's library — a pingora reverse proxy that
//! authorizes every request at the edge before forwarding it to a load-balanced pool.
//!
//! Modules, by concern:
//! - [`config`]: runtime settings (what the policy file converts into)
//! - [`server`]: building the pingora `Server`, listeners, shutdown timings
//! - [`gate`]: the `ProxyHttp` hooks and the per-request context (phase chart there)
//! - [`convert`]: policy file model → runtime settings and authorizer issuers
//! - [`verifier`]: the token-verification seam (the authorizer implements it)
//! - [`explain`]: `poolgate explain`
//! - [`cors`]: preflights answered at the edge, CORS response headers
//! - [`upstreams`]: load-balanced pools, prebuilt peers, health checks
//! - [`headers`]: identity scrubbing/injection, request id, `X-Forwarded-*`
//! - [`respond`]: the one place a denial becomes an HTTP answer
//! - [`admin`], [`metrics`]: `/metrics`, `/healthz`, `/readyz`
//! - [`access_log`]: one JSON line per request

pub mod access_log;
pub mod admin;
pub mod config;
pub mod convert;
pub mod cors;
pub mod explain;
pub mod gate;
pub mod headers;
pub mod metrics;
pub mod respond;
pub mod server;
pub mod upstreams;
pub mod verifier;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use access_log::AccessLog;
use config::ProxyConfig;
use gate::{GateState, Shared};
use metrics::Metrics;

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Upstream(#[from] upstreams::UpstreamError),
    #[error(transparent)]
    Server(#[from] server::ServerError),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// A built server and the state it shares with the caller (metrics, the swappable state).
pub struct Prepared {
    pub server: pingora::server::Server,
    pub shared: Arc<Shared>,
}

/// Builds everything for `cfg`; the caller runs `prepared.server`. `verifier` checks bearer
/// tokens (`None`: every token is refused, only public and guest-allowed routes pass).
pub fn prepare(
    cfg: &ProxyConfig,
    verifier: Option<Arc<dyn verifier::TokenVerifier>>,
    access_log: AccessLog,
) -> Result<Prepared, StartError> {
    server::install_crypto_provider();
    let metrics = Metrics::new()?;
    let state = GateState::build(cfg, verifier)?;
    let shared = Arc::new(Shared::new(state, metrics, access_log));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    shared
        .metrics
        .config_loaded
        .set(i64::try_from(now).unwrap_or(i64::MAX));
    shared.config_ready.store(true, Ordering::Release);
    let server = server::build(cfg, shared.clone())?;
    Ok(Prepared { server, shared })
}
