//! Upstream pools: pingora load balancers with prebuilt peers and active HTTP health checks.
//!
//! Peers are built once, when the pool is built: `HttpPeer::new` resolves its address and
//! panics on failure, so targets are resolved here (errors are returned) and every peer is
//! created from a resolved `SocketAddr`. A request only clones a ready peer.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pingora::http::RequestHeader;
use pingora::lb::LoadBalancer;
use pingora::lb::health_check::HttpHealthCheck;
use pingora::lb::selection::{Consistent, RoundRobin};
use pingora::upstreams::peer::HttpPeer;

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
    /// Resolves the targets and builds the balancer, peers and health check.
    pub fn build(spec: &UpstreamSpec) -> Result<Self, UpstreamError> {
        let addrs = resolve(spec)?;
        let peers = addrs
            .iter()
            .map(|addr| (*addr, make_peer(spec, *addr)))
            .collect::<HashMap<_, _>>();
        let pool = match spec.balance {
            Balance::RoundRobin => {
                let mut lb = new_lb::<RoundRobin>(spec, &addrs)?;
                attach_health_check(&mut lb, spec)?;
                Pool::RoundRobin(lb)
            }
            Balance::ConsistentHash(_) => {
                let mut lb = new_lb::<Consistent>(spec, &addrs)?;
                attach_health_check(&mut lb, spec)?;
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

fn make_peer(spec: &UpstreamSpec, addr: SocketAddr) -> HttpPeer {
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
    if let Some(t) = &spec.tls {
        o.verify_cert = t.verify;
        o.verify_hostname = t.verify;
    }
    if spec.http2 {
        // Over TLS this offers only h2 by ALPN; in plaintext it means prior-knowledge h2c.
        o.set_http_version(2, 2);
    }
    peer
}

fn attach_health_check<S>(
    lb: &mut LoadBalancer<S>,
    spec: &UpstreamSpec,
) -> Result<(), UpstreamError>
where
    S: pingora::lb::selection::BackendSelection + Send + Sync + 'static,
    S::Iter: pingora::lb::selection::BackendIter,
{
    let Some(h) = &spec.health_check else {
        return Ok(());
    };
    lb.set_health_check(Box::new(http_check(spec, h)?));
    lb.health_check_frequency = Some(h.interval);
    lb.parallel_health_check = true;
    Ok(())
}

fn http_check(spec: &UpstreamSpec, h: &HealthCheckSpec) -> Result<HttpHealthCheck, UpstreamError> {
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
            let up = match previous.and_then(|p| p.get(&spec.name)) {
                Some(old) if old.spec == *spec => old.clone(),
                _ => Arc::new(Upstream::build(spec)?),
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
