//! The proxy's runtime settings: plain structs with defaults.
//!
//! These are what the rest of `poolgate-proxy` consumes. The policy file (crate
//! `poolgate-policies`) is converted into them; tests build them directly. Nothing here
//! derives `Deserialize`: the documented file format lives in the policies crate.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Everything the server needs at start-up. Listeners and the admin address are fixed for the
/// life of the process; the rest can be swapped by a reload (see [`crate::gate::GateState`]).
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The compiled policy: routes, roles, role mapping, issuers.
    pub policy: Arc<poolgate_policies::Config>,
    pub listeners: Vec<ListenerSpec>,
    /// Address of the admin listener (`/metrics`, `/healthz`, `/readyz`); `None` disables it.
    pub admin: Option<SocketAddr>,
    pub server: ServerSpec,
    pub upstreams: Vec<UpstreamSpec>,
    pub identity: IdentitySettings,
    /// `realm` of the `WWW-Authenticate` challenge.
    pub realm: String,
    /// Largest request head (request line + headers) accepted, in bytes; larger is a 431.
    pub max_request_header_bytes: usize,
}

impl ProxyConfig {
    /// Defaults around `policy`, with nothing converted from it yet (see [`crate::convert`]).
    pub fn new(policy: Arc<poolgate_policies::Config>) -> Self {
        Self {
            policy,
            listeners: Vec::new(),
            admin: None,
            server: ServerSpec::default(),
            upstreams: Vec::new(),
            identity: IdentitySettings::default(),
            realm: "poolgate".to_owned(),
            max_request_header_bytes: 32 * 1024,
        }
    }
}

/// One listening socket.
#[derive(Debug, Clone)]
pub struct ListenerSpec {
    pub address: SocketAddr,
    pub tls: Option<TlsFiles>,
}

/// PEM certificate chain and private key of a TLS listener.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Process-level settings handed to pingora's `ServerConf`.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    /// Worker threads per service.
    pub threads: usize,
    /// After SIGTERM, how long listeners keep serving before shutdown starts (pingora's
    /// default is 300 s, far longer than a container orchestrator waits).
    pub grace_period: Duration,
    /// How long in-flight work may run once shutdown has started.
    pub shutdown_timeout: Duration,
    /// Unix socket used to hand listening sockets to a new binary on graceful upgrade.
    pub upgrade_sock: PathBuf,
    /// Take the listening sockets over from a running instance (`run --upgrade`).
    pub upgrade: bool,
}

impl Default for ServerSpec {
    fn default() -> Self {
        Self {
            threads: 2,
            grace_period: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(5),
            upgrade_sock: PathBuf::from("/tmp/poolgate_upgrade.sock"),
            upgrade: false,
        }
    }
}

/// How a pool picks a target.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Balance {
    #[default]
    RoundRobin,
    /// Consistent hashing (Ketama) on [`HashKey`].
    ConsistentHash(HashKey),
}

/// What consistent hashing hashes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum HashKey {
    #[default]
    ClientIp,
    /// The (normalised) path.
    Path,
    /// A request header (lowercase name); falls back to the client address when absent.
    Header(String),
    /// A claim of the verified token, e.g. `sub`; falls back to the client address.
    Claim(String),
}

/// One upstream pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSpec {
    pub name: String,
    /// `host:port` targets; names are resolved once when the pool is built.
    pub targets: Vec<String>,
    pub balance: Balance,
    pub health_check: Option<HealthCheckSpec>,
    pub timeouts: Timeouts,
    pub tls: Option<UpstreamTls>,
    /// Speak HTTP/2 to the targets (h2 over TLS via ALPN, or prior-knowledge h2c in plaintext).
    pub http2: bool,
    /// Replace the `Host` header sent upstream; by default the client's is kept.
    pub host_header: Option<String>,
}

impl UpstreamSpec {
    /// A plain round-robin pool with default timeouts and no health check.
    pub fn new(name: impl Into<String>, targets: Vec<String>) -> Self {
        Self {
            name: name.into(),
            targets,
            balance: Balance::RoundRobin,
            health_check: None,
            timeouts: Timeouts::default(),
            tls: None,
            http2: false,
            host_header: None,
        }
    }
}

/// Active HTTP health check: `GET path` must answer 200.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckSpec {
    pub path: String,
    pub interval: Duration,
    /// Connect and read timeout of one probe.
    pub timeout: Duration,
    /// Consecutive results needed to flip a target's state.
    pub healthy_after: usize,
    pub unhealthy_after: usize,
}

impl Default for HealthCheckSpec {
    fn default() -> Self {
        Self {
            path: "/healthz".to_owned(),
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(1),
            healthy_after: 1,
            unhealthy_after: 1,
        }
    }
}

/// Upstream timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    /// Longest wait for each read from the upstream (the response head included).
    pub read: Duration,
    pub write: Duration,
    /// How long an idle keep-alive connection to the upstream stays pooled.
    pub idle: Duration,
    /// The whole exchange (connect, request, response head and body); `None`: only the
    /// per-read and per-write timeouts bound it.
    pub total: Option<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(1),
            read: Duration::from_secs(30),
            write: Duration::from_secs(30),
            idle: Duration::from_secs(60),
            total: None,
        }
    }
}

/// TLS towards the upstream targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTls {
    /// Server name sent in SNI and checked against the certificate.
    pub sni: String,
    /// Verify the target's certificate chain and name (on unless explicitly turned off).
    pub verify: bool,
    /// PEM bundle of the CAs trusted for these targets instead of the system's; read when the
    /// pool is built.
    pub ca: Option<PathBuf>,
}

/// Identity headers sent to backends: the policy's settings as they are.
pub type IdentitySettings = poolgate_policies::model::IdentityHeaders;
