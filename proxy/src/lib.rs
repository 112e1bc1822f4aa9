//! poolgate-proxy: the `poolgate` binary's library — a pingora reverse proxy that
//! authorizes every request at the edge before forwarding it to a load-balanced pool.
//!
//! Modules, by concern:
//! - [`config`]: runtime settings (what the policy file converts into)
//! - [`server`]: building the pingora `Server`, listeners, shutdown timings
//! - [`gate`]: the `ProxyHttp` hooks and the per-request context (phase chart there)
//! - [`admission`]: normalise, match, verify, roles, decide; refusals as denials
//! - [`state`]: the swappable per-configuration state and what requests share
//! - [`convert`]: policy file model → runtime settings and authorizer issuers
//! - [`verifier`]: the token-verification seam (the authorizer implements it)
//! - `demo` (feature `demo`): `poolgate demo` and `poolgate token`
//! - [`explain`]: `poolgate explain`
//! - [`cors`]: preflights answered at the edge, CORS response headers
//! - [`upstreams`]: load-balanced pools, prebuilt peers, health checks
//! - [`headers`]: identity scrubbing/injection, request id, `X-Forwarded-*`
//! - `kept`: identity headers and signed assertions kept with a cached identity
//! - [`respond`]: the one place a denial becomes an HTTP answer
//! - [`admin`], [`metrics`]: `/metrics`, `/healthz`, `/readyz`
//! - [`reload`]: SIGHUP / file-change reload with atomic swap; key lifecycle service
//! - [`access_log`]: one JSON line per request

pub mod access_log;
pub mod admin;
pub mod admission;
pub mod config;
pub mod connections;
pub mod convert;
pub mod cors;
pub mod deadline;
#[cfg(feature = "demo")]
pub mod demo;
pub mod explain;
pub mod file_state;
pub mod gate;
pub mod headers;
mod kept;
pub mod metrics;
pub mod reload;
pub mod respond;
pub mod server;
pub mod signed_identity;
pub mod state;
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
    State(#[from] gate::StateError),
    #[error(transparent)]
    Server(#[from] server::ServerError),
    #[error(transparent)]
    Verifier(#[from] verifier::VerifierError),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// A built server and the state it shares with the caller (metrics, the swappable state).
pub struct Prepared {
    pub server: pingora::server::Server,
    pub shared: Arc<Shared>,
}

impl Prepared {
    /// Serves until a stop signal and the shutdown that follows, writes the access-log lines
    /// still waiting, and exits the process.
    pub fn run_until_stopped(self) -> ! {
        self.server.run(pingora::server::RunArgs::default());
        self.shared.access_log.flush();
        std::process::exit(0)
    }
}

/// How to start, besides the configuration.
#[derive(Clone, Default)]
pub struct StartOptions {
    pub access_log: AccessLog,
    /// Use this verifier instead of building one from the policy's issuers.
    pub verifier: Option<verifier::VerifierSetup>,
    /// Watch this policy file (and its includes) and reload on change and on SIGHUP.
    pub reload_from: Option<std::path::PathBuf>,
    /// How often watched files are checked (default 1 s).
    pub reload_poll: Option<std::time::Duration>,
    /// How long a changed file must stay unchanged before it is loaded (default 500 ms).
    pub reload_settle: Option<std::time::Duration>,
}

/// Builds everything for `cfg`; the caller runs `prepared.server`.
pub fn prepare(cfg: &ProxyConfig, opts: StartOptions) -> Result<Prepared, StartError> {
    server::install_crypto_provider();
    let metrics = Metrics::new()?;
    let setup = match opts.verifier {
        Some(v) => Some(v),
        None => verifier::for_policy(&cfg.policy, None)?,
    };
    let state = GateState::build(cfg, setup, None)?;
    let shared = Arc::new(Shared::new(state, metrics, opts.access_log));
    shared
        .metrics
        .config_loaded
        .set(i64::try_from(unix_now()).unwrap_or(i64::MAX));
    shared.config_ready.store(true, Ordering::Release);
    let reload = opts.reload_from.map(|path| reload::Reloader {
        shared: shared.clone(),
        path,
        poll: opts
            .reload_poll
            .unwrap_or(std::time::Duration::from_secs(1)),
        settle: opts.reload_settle.unwrap_or(reload::DEFAULT_SETTLE),
    });
    let server = server::build(cfg, shared.clone(), reload)?;
    Ok(Prepared { server, shared })
}

/// Seconds since the Unix epoch (0 before it).
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
