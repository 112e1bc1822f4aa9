//! The swappable per-configuration state and what every request shares.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use poolgate_authorizer::Requirement;
use poolgate_policies as pol;

use crate::access_log::AccessLog;
use crate::config::{IdentitySettings, ProxyConfig};
use crate::convert;
use crate::headers;
use crate::metrics::Metrics;
use crate::upstreams::{UpstreamError, Upstreams};
use crate::verifier::{TokenVerifier, VerifierSetup};

/// Why a gate state could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("identity headers: {0}")]
    Identity(#[from] headers::HeaderError),
    #[error("route `{route}`: `{header}` cannot be a header name")]
    RouteHeader { route: String, header: String },
    #[error(transparent)]
    SigningKey(#[from] crate::signed_identity::KeyError),
}

/// The part of the configuration a reload swaps, read once per request.
pub struct GateState {
    /// Unique to this state in the process: what a cached identity keeps (its headers, its
    /// signed assertion) is reused only by the state that made it.
    pub(crate) generation: u64,
    pub policy: Arc<pol::Config>,
    pub upstreams: Upstreams,
    /// What each route (by index) asks of a token, built once.
    pub(crate) requirements: Vec<Requirement>,
    pub verifier: Option<VerifierSetup>,
    pub identity: IdentitySettings,
    pub(crate) identity_names: headers::IdentityNames,
    /// Each route's own claim headers (by index), parsed once.
    pub(crate) route_headers: Box<[headers::RouteHeaderNames]>,
    /// Keys and cached assertions of the signed identity, when configured.
    pub signed_identity: crate::signed_identity::Shared,
    pub realm: String,
    pub max_request_header_bytes: usize,
    /// Listener and admin addresses the process was started with (fixed until restart).
    pub listeners: Vec<SocketAddr>,
    pub admin: Option<SocketAddr>,
}

impl std::fmt::Debug for GateState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GateState")
            .field("routes", &self.policy.routes.len())
            .field("upstreams", &self.upstreams)
            .field("verifier", &self.verifier.is_some())
            .finish()
    }
}

impl GateState {
    /// Builds every upstream pool and the per-route token requirements.
    /// Pools whose settings did not change are taken over from `previous` (health state kept).
    pub fn build(
        cfg: &ProxyConfig,
        verifier: Option<VerifierSetup>,
        previous: Option<&GateState>,
    ) -> Result<Self, StateError> {
        let policy = cfg.policy.clone();
        let requirements = policy
            .routes
            .iter()
            .map(|r| Requirement {
                issuer: r.auth.issuer.as_deref().map(Arc::from),
                token_use: convert::token_use(policy.token_use_for(r)),
                clients: None,
            })
            .collect();
        let route_headers = policy
            .routes
            .iter()
            .map(|r| {
                headers::RouteHeaderNames::new(&r.headers, r.header_encoding).map_err(|e| {
                    StateError::RouteHeader {
                        route: r.name.clone(),
                        header: e.header,
                    }
                })
            })
            .collect::<Result<_, _>>()?;
        static GENERATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        Ok(Self {
            generation: GENERATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            upstreams: Upstreams::build(&cfg.upstreams, previous.map(|p| &p.upstreams))?,
            requirements,
            verifier,
            identity: cfg.identity.clone(),
            identity_names: headers::IdentityNames::new(&cfg.identity)?,
            signed_identity: policy
                .signed_identity
                .as_ref()
                .map(|s| crate::signed_identity::SignedIdentity::new(s).map(Arc::new))
                .transpose()?,
            route_headers,
            realm: cfg.realm.clone(),
            max_request_header_bytes: cfg.max_request_header_bytes,
            listeners: cfg.listeners.iter().map(|l| l.address).collect(),
            admin: cfg.admin,
            policy,
        })
    }

    /// The verifier, if the policy has issuers.
    pub fn token_verifier(&self) -> Option<&Arc<dyn TokenVerifier>> {
        self.verifier.as_ref().map(|v| &v.verifier)
    }

    pub(crate) fn route(&self, index: usize) -> Option<&pol::Route> {
        self.policy.routes.get(index)
    }
}

/// State shared by every request, the admin listener and the background tasks.
pub struct Shared {
    pub state: ArcSwap<GateState>,
    pub metrics: Metrics,
    pub access_log: AccessLog,
    /// Set once the configuration is loaded and serving can start.
    pub config_ready: AtomicBool,
}

impl Shared {
    pub fn new(state: GateState, metrics: Metrics, access_log: AccessLog) -> Self {
        Self {
            state: ArcSwap::from_pointee(state),
            metrics,
            access_log,
            config_ready: AtomicBool::new(false),
        }
    }

    /// What `/readyz` reports: configuration loaded and every issuer has keys.
    pub fn is_ready(&self) -> bool {
        self.config_ready.load(Ordering::Acquire)
            && self
                .state
                .load()
                .token_verifier()
                .is_none_or(|v| v.is_ready())
    }
}
