//! From the policy file's validated model (`poolgate-policies`) to the proxy's runtime
//! settings and the authorizer's issuer configuration.

use std::sync::Arc;

use poolgate_authorizer as authz;
use poolgate_policies as pol;

use crate::config::{
    Balance, HashKey, HealthCheckSpec, ListenerSpec, ProxyConfig, Timeouts, TlsFiles, UpstreamSpec,
    UpstreamTls,
};

/// Listener used when the policy names none.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";

/// Why a policy cannot be turned into a running configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("issuer `{issuer}`: unknown algorithm `{alg}`")]
    Algorithm { issuer: String, alg: String },
}

/// The proxy settings a policy describes.
pub fn proxy_config(policy: Arc<pol::Config>) -> ProxyConfig {
    let mut cfg = ProxyConfig::new(policy.clone());
    cfg.listeners = policy
        .listeners
        .iter()
        .map(|l| ListenerSpec {
            address: l.address,
            tls: l.tls.as_ref().map(|t| TlsFiles {
                cert: t.cert.clone(),
                key: t.key.clone(),
            }),
        })
        .collect();
    if cfg.listeners.is_empty()
        && let Ok(address) = DEFAULT_LISTEN.parse()
    {
        cfg.listeners.push(ListenerSpec { address, tls: None });
    }
    cfg.admin = policy.admin;
    cfg.upstreams = policy.upstreams.iter().map(upstream).collect();
    cfg.identity = policy.identity_headers.clone();
    cfg.max_request_header_bytes =
        usize::try_from(policy.limits.max_request_header_bytes).unwrap_or(usize::MAX);
    // One worker per CPU this process may use (its affinity mask and cgroup quota count).
    cfg.server.threads = policy.server.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    cfg
}

fn upstream(u: &pol::Upstream) -> UpstreamSpec {
    let defaults = Timeouts::default();
    let balance = match &u.balance {
        pol::Balance::RoundRobin => Balance::RoundRobin,
        pol::Balance::ConsistentHash(k) => Balance::ConsistentHash(match k {
            pol::HashKey::ClientIp => HashKey::ClientIp,
            pol::HashKey::Path => HashKey::Path,
            pol::HashKey::Header(h) => HashKey::Header(h.to_ascii_lowercase()),
            pol::HashKey::Claim(c) => HashKey::Claim(c.clone()),
        }),
    };
    let first_host = u
        .targets
        .first()
        .and_then(|t| {
            t.rsplit_once(':')
                .map(|(h, _)| h.trim_matches(['[', ']']).to_owned())
        })
        .unwrap_or_default();
    UpstreamSpec {
        name: u.name.clone(),
        targets: u.targets.clone(),
        balance,
        health_check: u.health_check.as_ref().map(|h| HealthCheckSpec {
            path: h.path.clone(),
            interval: h.interval,
            timeout: h.timeout,
            healthy_after: usize::try_from(h.healthy_threshold).unwrap_or(1),
            unhealthy_after: usize::try_from(h.unhealthy_threshold).unwrap_or(1),
        }),
        timeouts: Timeouts {
            connect: u.timeouts.connect.unwrap_or(defaults.connect),
            read: u.timeouts.read.unwrap_or(defaults.read),
            write: u.timeouts.write.unwrap_or(defaults.write),
            idle: u.timeouts.idle.unwrap_or(defaults.idle),
            total: u.timeouts.total,
        },
        tls: u.tls.as_ref().map(|t| UpstreamTls {
            sni: t.sni.clone().unwrap_or_else(|| first_host.clone()),
            verify: t.verify,
            ca: t.ca.clone(),
        }),
        http2: u.h2,
        host_header: None,
    }
}

/// The authorizer's view of the policy's issuers.
pub fn issuers(policy: &pol::Config) -> Result<Vec<authz::IssuerConfig>, ConvertError> {
    policy.issuers.iter().map(issuer).collect()
}

fn issuer(i: &pol::Issuer) -> Result<authz::IssuerConfig, ConvertError> {
    let mut jwks = authz::JwksTimings::default();
    if let Some(d) = i.jwks.refresh_interval {
        jwks.refresh_default = d;
    }
    if let Some(d) = i.jwks.min_refetch_interval {
        jwks.unknown_kid_min_interval = d;
    }
    if let Some(d) = i.jwks.fetch_timeout {
        jwks.total_timeout = d;
    }
    if let Some(d) = i.jwks.max_stale {
        jwks.max_stale = d;
    }
    let algorithms = i
        .algorithms
        .iter()
        .map(|a| {
            authz::Algorithm::from_name(a).ok_or_else(|| ConvertError::Algorithm {
                issuer: i.name.clone(),
                alg: a.clone(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let defaults = authz::IssuerConfig::default();
    Ok(authz::IssuerConfig {
        name: i.name.clone(),
        source: match &i.source {
            pol::KeySource::Cognito {
                region,
                user_pool_id,
            } => authz::KeySource::Cognito {
                region: region.clone(),
                user_pool_id: user_pool_id.clone(),
            },
            pol::KeySource::Explicit { issuer, jwks_url } => authz::KeySource::Explicit {
                issuer: issuer.clone(),
                jwks_url: jwks_url.clone(),
            },
            pol::KeySource::Discovery { issuer } => authz::KeySource::Discovery {
                issuer: issuer.clone(),
            },
        },
        cognito_style: i.cognito_style,
        app_clients: i.app_clients.clone(),
        audiences: i.audiences.clone(),
        token_use: token_use(i.token_use),
        algorithms: if algorithms.is_empty() {
            defaults.algorithms.clone()
        } else {
            algorithms
        },
        leeway: i.leeway,
        jwks,
        groups_claim: i.groups_claim.segments().to_vec(),
        scopes_claim: i.scopes_claim.segments().to_vec(),
        ..defaults
    })
}

/// The policy's `token_use` as the authorizer's requirement.
pub fn token_use(t: pol::TokenUse) -> authz::TokenUseRequirement {
    match t {
        pol::TokenUse::Access => authz::TokenUseRequirement::Access,
        pol::TokenUse::Id => authz::TokenUseRequirement::Id,
        pol::TokenUse::Any => authz::TokenUseRequirement::Any,
    }
}
