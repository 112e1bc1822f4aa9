//! Upstream pools: pingora load balancers with prebuilt peers and active HTTP health checks.
//!
//! Peers are built once, when the pool is built: `HttpPeer::new` resolves its address and
//! panics on failure, so targets are resolved here (errors are returned) and every peer is
//! created from a resolved `SocketAddr`. A request only clones a ready peer.
//!
//! A pool's private CA bundle (`tls.ca`) is read and parsed here too, once per build, and
//! shared by its peers and its health check; pingora's connector trusts only it for them.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pingora::http::RequestHeader;
use pingora::lb::LoadBalancer;
use pingora::lb::health_check::HttpHealthCheck;
use pingora::lb::selection::{Consistent, RoundRobin};
use pingora::protocols::tls::CaType;
use pingora::upstreams::peer::HttpUpstreamRequestPolicy;
use pingora::upstreams::peer::{HttpPeer, PeerOptions};
use pingora::utils::tls::WrappedX509;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::config::{Balance, HashKey, HealthCheckSpec, UpstreamSpec};

/// How many ring steps a consistent-hash lookup may walk to find a healthy target.
const MAX_SELECT_STEPS: usize = 256;

/// Why a pool could not be built.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream `{0}` has no targets")]
    NoTargets(String),
    #[error("upstream `{upstream}`: cannot resolve target `{target}`: {detail}")]
    Resolve {
        upstream: String,
        target: String,
        detail: String,
    },
    #[error("upstream `{upstream}`: invalid health-check request: {detail}")]
    HealthCheck { upstream: String, detail: String },
    #[error("upstream `{0}` is defined twice")]
    Duplicate(String),
    #[error("upstream `{upstream}`: CA bundle `{path}`: {detail}")]
    Ca {
        upstream: String,
        path: String,
        detail: String,
    },
    #[error("upstream `{0}`: TLS verification needs a server name (`sni`)")]
    NoServerName(String),
}

/// A pool's private CA bundle, parsed.
#[derive(Clone)]
struct TrustedCa {
    /// The certificates as read: a reload keeps the pool only if these are unchanged.
    der: Vec<CertificateDer<'static>>,
    /// What pingora's connector takes (`PeerOptions::ca`).
    certs: Arc<CaType>,
    /// Keeps pooled connections apart from those verified against other trust roots: pingora's
    /// connection-reuse hash covers `group_key` but not `ca`.
    group_key: u64,
}

impl TrustedCa {
    fn apply(&self, o: &mut PeerOptions, group_key: &mut u64) {
        o.ca = Some(self.certs.clone());
        *group_key = self.group_key;
    }
}

enum Pool {
    RoundRobin(LoadBalancer<RoundRobin>),
    Consistent(LoadBalancer<Consistent>),
}

/// One pool of targets.
pub struct Upstream {
    pub name: String,
    /// What it was built from (a reload with the same spec keeps this pool and its health).
    spec: UpstreamSpec,
    pool: Pool,
    peers: HashMap<SocketAddr, HttpPeer>,
    ca: Option<TrustedCa>,
    pub hash_key: HashKey,
    pub host_header: Option<String>,
    health_interval: Option<Duration>,
    next_check: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("targets", &self.peers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Upstream {
    /// The deadline of a whole exchange with this pool, if it has one.
    pub fn total_timeout(&self) -> Option<Duration> {
        self.spec.timeouts.total
    }

    /// Resolves the targets, reads the CA bundle, and builds the balancer, peers and health
    /// check.
    pub fn build(spec: &UpstreamSpec) -> Result<Self, UpstreamError> {
        Self::build_with(spec, load_ca(spec)?)
    }

    fn build_with(spec: &UpstreamSpec, ca: Option<TrustedCa>) -> Result<Self, UpstreamError> {
        if spec
            .tls
            .as_ref()
            .is_some_and(|t| t.verify && t.sni.is_empty())
        {
            // pingora skips every certificate check when the server name is empty.
            return Err(UpstreamError::NoServerName(spec.name.clone()));
        }
        let addrs = resolve(spec)?;
        let peers = addrs
            .iter()
            .map(|addr| (*addr, make_peer(spec, *addr, ca.as_ref())))
            .collect::<HashMap<_, _>>();
        let pool = match spec.balance {
            Balance::RoundRobin => {
                let mut lb = new_lb::<RoundRobin>(spec, &addrs)?;
                attach_health_check(&mut lb, spec, ca.as_ref())?;
                Pool::RoundRobin(lb)
            }
            Balance::ConsistentHash(_) => {
                let mut lb = new_lb::<Consistent>(spec, &addrs)?;
                attach_health_check(&mut lb, spec, ca.as_ref())?;
                Pool::Consistent(lb)
            }
        };
        let hash_key = match &spec.balance {
            Balance::ConsistentHash(k) => k.clone(),
            Balance::RoundRobin => HashKey::ClientIp,
        };
        Ok(Self {
            name: spec.name.clone(),
            spec: spec.clone(),
            pool,
            peers,
            ca,
            hash_key,
            host_header: spec.host_header.clone(),
            health_interval: spec.health_check.as_ref().map(|h| h.interval),
            next_check: Mutex::new(None),
        })
    }

    /// Whether consistent hashing is in use (so the caller computes a key).
    pub fn hashes(&self) -> bool {
        matches!(self.pool, Pool::Consistent(_))
    }

    /// A healthy target's peer, skipping the `exclude`d addresses (targets that already
    /// failed for this request). `key` matters only for consistent hashing.
    pub fn select(&self, key: &[u8], exclude: &[SocketAddr]) -> Option<Box<HttpPeer>> {
        let accept = |b: &pingora::lb::Backend, healthy: bool| {
            healthy && b.addr.as_inet().is_some_and(|a| !exclude.contains(a))
        };
        let backend = match &self.pool {
            Pool::RoundRobin(lb) => lb.select_with(key, MAX_SELECT_STEPS, accept),
            Pool::Consistent(lb) => lb.select_with(key, MAX_SELECT_STEPS, accept),
        }?;
        let addr = backend.addr.as_inet()?;
        self.peers.get(addr).map(|p| Box::new(p.clone()))
    }

    pub fn target_count(&self) -> usize {
        self.peers.len()
    }

    /// Targets currently considered healthy (all of them before the first check).
    pub fn healthy_targets(&self) -> usize {
        fn healthy(b: &pingora::lb::Backends) -> usize {
            b.get_backend().iter().filter(|t| b.ready(t)).count()
        }
        match &self.pool {
            Pool::RoundRobin(lb) => healthy(lb.backends()),
            Pool::Consistent(lb) => healthy(lb.backends()),
        }
    }

    /// Runs one health-check pass if it is due; returns whether it ran.
    pub async fn check_health_if_due(&self, now: Instant) -> bool {
        let Some(interval) = self.health_interval else {
            return false;
        };
        {
            let Ok(mut next) = self.next_check.lock() else {
                return false;
            };
            if next.is_some_and(|at| at > now) {
                return false;
            }
            *next = Some(now + interval);
        }
        match &self.pool {
            Pool::RoundRobin(lb) => lb.backends().run_health_check(true).await,
            Pool::Consistent(lb) => lb.backends().run_health_check(true).await,
        }
        true
    }
}

fn resolve(spec: &UpstreamSpec) -> Result<Vec<SocketAddr>, UpstreamError> {
    if spec.targets.is_empty() {
        return Err(UpstreamError::NoTargets(spec.name.clone()));
    }
    let mut out = Vec::new();
    for target in &spec.targets {
        let resolved = target
            .to_socket_addrs()
            .map_err(|e| UpstreamError::Resolve {
                upstream: spec.name.clone(),
                target: target.clone(),
                detail: e.to_string(),
            })?
            .next()
            .ok_or_else(|| UpstreamError::Resolve {
                upstream: spec.name.clone(),
                target: target.clone(),
                detail: "no address".to_owned(),
            })?;
        if !out.contains(&resolved) {
            out.push(resolved);
        }
    }
    Ok(out)
}

fn new_lb<S>(spec: &UpstreamSpec, addrs: &[SocketAddr]) -> Result<LoadBalancer<S>, UpstreamError>
where
    S: pingora::lb::selection::BackendSelection + Send + Sync + 'static,
    S::Iter: pingora::lb::selection::BackendIter,
{
    LoadBalancer::<S>::try_from_iter(addrs.iter().copied()).map_err(|e| UpstreamError::Resolve {
        upstream: spec.name.clone(),
        target: format!("{addrs:?}"),
        detail: e.to_string(),
    })
}

/// The pool's CA bundle, read and parsed (`None` without `tls.ca`).
fn load_ca(spec: &UpstreamSpec) -> Result<Option<TrustedCa>, UpstreamError> {
    let Some(path) = spec.tls.as_ref().and_then(|t| t.ca.as_ref()) else {
        return Ok(None);
    };
    let err = |detail: String| UpstreamError::Ca {
        upstream: spec.name.clone(),
        path: path.display().to_string(),
        detail,
    };
    let der = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if der.is_empty() {
        return Err(err("no certificate in it".to_owned()));
    }
    // The check pingora's connector makes on every connection: fail here, not per request.
    let mut store = rustls::RootCertStore::empty();
    for (i, cert) in der.iter().enumerate() {
        store
            .add(cert.clone())
            .map_err(|e| err(format!("certificate {}: {e}", i + 1)))?;
    }
    let certs = der
        .iter()
        .enumerate()
        .map(|(i, cert)| {
            // The fallible constructor: pingora's `parse_x509` panics on what x509-parser refuses.
            WrappedX509::try_new(cert.as_ref().to_vec(), |raw| {
                x509_parser::parse_x509_certificate(raw).map(|(_, c)| c)
            })
            .map_err(|e| err(format!("certificate {}: {e}", i + 1)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    der.hash(&mut hasher);
    Ok(Some(TrustedCa {
        der,
        certs: Arc::from(certs),
        group_key: hasher.finish(),
    }))
}

fn make_peer(spec: &UpstreamSpec, addr: SocketAddr, ca: Option<&TrustedCa>) -> HttpPeer {
    let (tls, sni) = match &spec.tls {
        Some(t) => (true, t.sni.clone()),
        None => (false, String::new()),
    };
    // `addr` is already resolved, so HttpPeer::new cannot fail here.
    let mut peer = HttpPeer::new(addr, tls, sni);
    let o = &mut peer.options;
    o.connection_timeout = Some(spec.timeouts.connect);
    o.total_connection_timeout = Some(spec.timeouts.connect * 2);
    o.read_timeout = Some(spec.timeouts.read);
    o.write_timeout = Some(spec.timeouts.write);
    o.idle_timeout = Some(spec.timeouts.idle);
    // Pinned rather than inherited from pingora's default: hop-by-hop fields and any field the
    // client's `Connection` names are dropped before poolgate's hooks run (so a client cannot
    // have the verified identity removed), a nomination of `Host` or `X-Forwarded-*` is
    // refused, and only WebSocket upgrades are forwarded.
    o.http_upstream_request_policy = HttpUpstreamRequestPolicy::standard();
    if let Some(t) = &spec.tls {
        o.verify_cert = t.verify;
        o.verify_hostname = t.verify;
    }
    if spec.http2 {
        // Over TLS this offers only h2 by ALPN; in plaintext it means prior-knowledge h2c.
        o.set_http_version(2, 2);
    }
    if let Some(ca) = ca {
        ca.apply(&mut peer.options, &mut peer.group_key);
    }
    peer
}

fn attach_health_check<S>(
    lb: &mut LoadBalancer<S>,
    spec: &UpstreamSpec,
    ca: Option<&TrustedCa>,
) -> Result<(), UpstreamError>
where
    S: pingora::lb::selection::BackendSelection + Send + Sync + 'static,
    S::Iter: pingora::lb::selection::BackendIter,
{
    let Some(h) = &spec.health_check else {
        return Ok(());
    };
    lb.set_health_check(Box::new(http_check(spec, h, ca)?));
    lb.health_check_frequency = Some(h.interval);
    lb.parallel_health_check = true;
    Ok(())
}

fn http_check(
    spec: &UpstreamSpec,
    h: &HealthCheckSpec,
    ca: Option<&TrustedCa>,
) -> Result<HttpHealthCheck, UpstreamError> {
    let err = |detail: String| UpstreamError::HealthCheck {
        upstream: spec.name.clone(),
        detail,
    };
    let host = spec
        .host_header
        .clone()
        .or_else(|| spec.tls.as_ref().map(|t| t.sni.clone()))
        .unwrap_or_else(|| "localhost".to_owned());
    let mut check = HttpHealthCheck::new(&host, spec.tls.is_some());
    let mut req =
        RequestHeader::build("GET", h.path.as_bytes(), None).map_err(|e| err(e.to_string()))?;
    req.insert_header("host", host.as_str())
        .map_err(|e| err(e.to_string()))?;
    req.insert_header("user-agent", "poolgate-health-check")
        .map_err(|e| err(e.to_string()))?;
    check.req = req;
    check.consecutive_success = h.healthy_after.max(1);
    check.consecutive_failure = h.unhealthy_after.max(1);
    let probe_timeout = spec
        .timeouts
        .connect
        .min(h.interval)
        .max(Duration::from_millis(100));
    check.peer_template.options.connection_timeout = Some(probe_timeout);
    check.peer_template.options.read_timeout = Some(probe_timeout * 2);
    if let Some(t) = &spec.tls {
        check.peer_template.options.verify_cert = t.verify;
        check.peer_template.options.verify_hostname = t.verify;
    }
    if let Some(ca) = ca {
        let template = &mut check.peer_template;
        ca.apply(&mut template.options, &mut template.group_key);
    }
    Ok(check)
}

/// Every pool of one configuration, by name.
#[derive(Debug, Default)]
pub struct Upstreams {
    by_name: HashMap<String, Arc<Upstream>>,
}

impl Upstreams {
    /// Builds every pool, taking over unchanged ones from `previous`; the first failure is
    /// returned.
    pub fn build(
        specs: &[UpstreamSpec],
        previous: Option<&Upstreams>,
    ) -> Result<Self, UpstreamError> {
        let mut by_name = HashMap::new();
        for spec in specs {
            // Read again on every build: a reload picks up a renewed bundle at the same path.
            let ca = load_ca(spec)?;
            let same_ca =
                |old: &Upstream| old.ca.as_ref().map(|c| &c.der) == ca.as_ref().map(|c| &c.der);
            let up = match previous.and_then(|p| p.get(&spec.name)) {
                Some(old) if old.spec == *spec && same_ca(old) => old.clone(),
                _ => Arc::new(Upstream::build_with(spec, ca)?),
            };
            if by_name.insert(spec.name.clone(), up).is_some() {
                return Err(UpstreamError::Duplicate(spec.name.clone()));
            }
        }
        Ok(Self { by_name })
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Upstream>> {
        self.by_name.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Upstream>> {
        self.by_name.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_peers_with_timeouts_and_rejects_bad_targets() {
        let mut spec = UpstreamSpec::new("app", vec!["127.0.0.1:1".into(), "127.0.0.1:2".into()]);
        spec.timeouts.connect = Duration::from_millis(250);
        spec.http2 = true;
        let up = Upstream::build(&spec).unwrap();
        assert_eq!(up.target_count(), 2);
        let peer = up.select(b"", &[]).unwrap();
        assert_eq!(
            peer.options.connection_timeout,
            Some(Duration::from_millis(250))
        );
        assert_eq!(peer.options.alpn, pingora::protocols::ALPN::H2);

        let bad = UpstreamSpec::new("bad", vec!["no-such-host.invalid:80".into()]);
        assert!(matches!(
            Upstream::build(&bad),
            Err(UpstreamError::Resolve { .. })
        ));
        let empty = UpstreamSpec::new("empty", vec![]);
        assert!(matches!(
            Upstream::build(&empty),
            Err(UpstreamError::NoTargets(_))
        ));
        let noport = UpstreamSpec::new("noport", vec!["127.0.0.1".into()]);
        assert!(Upstream::build(&noport).is_err());
    }

    #[test]
    fn round_robin_alternates_and_exclusion_skips() {
        let spec = UpstreamSpec::new("app", vec!["127.0.0.1:1".into(), "127.0.0.1:2".into()]);
        let up = Upstream::build(&spec).unwrap();
        let a = up.select(b"", &[]).unwrap()._address.to_string();
        let b = up.select(b"", &[]).unwrap()._address.to_string();
        assert_ne!(a, b);
        let only: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let other: SocketAddr = "127.0.0.1:1".parse().unwrap();
        for _ in 0..4 {
            let p = up.select(b"", &[other]).unwrap();
            assert_eq!(p._address.as_inet(), Some(&only));
        }
        assert!(up.select(b"", &[only, other]).is_none());
    }

    #[test]
    fn consistent_hash_is_sticky() {
        let mut spec =
            UpstreamSpec::new("app", (1..=5).map(|p| format!("127.0.0.1:{p}")).collect());
        spec.balance = Balance::ConsistentHash(HashKey::Claim("sub".into()));
        let up = Upstream::build(&spec).unwrap();
        assert!(up.hashes());
        let first = up.select(b"user-1", &[]).unwrap()._address.to_string();
        for _ in 0..10 {
            assert_eq!(
                up.select(b"user-1", &[]).unwrap()._address.to_string(),
                first
            );
        }
        let spread: std::collections::HashSet<String> = (0..50)
            .map(|i| {
                up.select(format!("user-{i}").as_bytes(), &[])
                    .unwrap()
                    ._address
                    .to_string()
            })
            .collect();
        assert!(spread.len() > 1);
    }
}
