//! Configuration: plain structs with defaults. The proxy converts its policy-file types into these.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::error::ConfigError;

/// A JWS signature algorithm that can be allowed for an issuer. `none` and HMAC do not exist here:
/// they can never be configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (Cognito's only algorithm).
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// ECDSA P-384 with SHA-384.
    ES384,
    /// Ed25519.
    EdDSA,
}

impl Algorithm {
    /// Every algorithm, in a fixed order.
    pub const ALL: [Algorithm; 9] = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];

    /// The JOSE name (`RS256`...). Header matching is exact and case-sensitive (RFC 7515).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    /// Parses a JOSE name exactly; `none`, `HS*` and anything unknown give `None`.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The JWK `kty` a key for this algorithm has.
    pub fn key_type(self) -> &'static str {
        match self {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => "RSA",
            Algorithm::ES256 | Algorithm::ES384 => "EC",
            Algorithm::EdDSA => "OKP",
        }
    }
}

/// Which kind of token an issuer or a route accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TokenUseRequirement {
    /// Access tokens only (`token_use: access`; or `typ: at+jwt` for OIDC issuers).
    #[default]
    Access,
    /// ID tokens only (`token_use: id`).
    Id,
    /// Either.
    Any,
}

/// Where an issuer's `iss` value and JWKS come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// An Amazon Cognito user pool: issuer `https://cognito-idp.{region}.amazonaws.com/{pool}`,
    /// JWKS `{issuer}/.well-known/jwks.json`.
    Cognito {
        /// AWS region, e.g. `eu-west-1`.
        region: String,
        /// User pool id, e.g. `eu-west-1_AbCdEf`.
        user_pool_id: String,
    },
    /// An issuer whose JWKS is served elsewhere (emulators, custom IdPs).
    Explicit {
        /// The exact `iss` value of its tokens.
        issuer: String,
        /// The JWKS URL.
        jwks_url: String,
    },
    /// An OIDC issuer: `{issuer}/.well-known/openid-configuration` names the `jwks_uri`.
    Discovery {
        /// The exact `iss` value of its tokens.
        issuer: String,
    },
}

impl KeySource {
    /// The exact `iss` value tokens of this issuer carry.
    pub fn issuer_url(&self) -> String {
        match self {
            KeySource::Cognito {
                region,
                user_pool_id,
            } => format!("https://cognito-idp.{region}.amazonaws.com/{user_pool_id}"),
            KeySource::Explicit { issuer, .. } | KeySource::Discovery { issuer } => issuer.clone(),
        }
    }
}

/// How keys are fetched and refreshed for one issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksTimings {
    /// Refresh interval when the response has no `Cache-Control: max-age`. Default 5 min.
    pub refresh_default: Duration,
    /// Lower clamp for `max-age`. Default 1 min.
    pub refresh_min: Duration,
    /// Upper clamp for `max-age`. Default 1 h.
    pub refresh_max: Duration,
    /// Delay before the background task retries after a failed fetch. Default 10 s.
    pub retry_interval: Duration,
    /// At most one fetch per this interval is triggered by unknown `kid`s or missing keys.
    /// Default 10 s.
    pub unknown_kid_min_interval: Duration,
    /// Keys older than this (since the last successful fetch) are no longer used: verification
    /// answers `KeysUnavailable` until a fetch succeeds. Default 24 h.
    pub max_stale: Duration,
    /// TCP (and TLS) connect timeout. Default 2 s.
    pub connect_timeout: Duration,
    /// Timeout for the whole fetch. Default 5 s.
    pub total_timeout: Duration,
    /// Body size cap. Default 1 MiB.
    pub max_body_bytes: usize,
}

impl Default for JwksTimings {
    fn default() -> Self {
        JwksTimings {
            refresh_default: Duration::from_secs(300),
            refresh_min: Duration::from_secs(60),
            refresh_max: Duration::from_secs(3600),
            retry_interval: Duration::from_secs(10),
            unknown_kid_min_interval: Duration::from_secs(10),
            max_stale: Duration::from_secs(24 * 3600),
            connect_timeout: Duration::from_secs(2),
            total_timeout: Duration::from_secs(5),
            max_body_bytes: 1024 * 1024,
        }
    }
}

/// One trusted token issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerConfig {
    /// The name routes refer to (and `Identity::issuer`).
    pub name: String,
    /// Where `iss` and the keys come from.
    pub source: KeySource,
    /// Apply Cognito's rules: `token_use` must be `access` or `id`; access tokens' `client_id`
    /// and ID tokens' `aud` must be in `app_clients`. Default true (`Cognito` sources are always
    /// Cognito-style; set it for emulators behind `Explicit`).
    pub cognito_style: bool,
    /// Accepted app client ids. Cognito-style: matched against `client_id` (access) or `aud` (id).
    /// OIDC: matched against `client_id` when the token has one. Empty: any client.
    pub app_clients: Vec<String>,
    /// OIDC only: accepted audiences, matched against `aud` (a string or an array). Empty: not
    /// checked.
    pub audiences: Vec<String>,
    /// Which token kinds this issuer accepts at all. Default access.
    pub token_use: TokenUseRequirement,
    /// OIDC only: access tokens must carry the RFC 9068 header `typ: at+jwt`. Default false.
    pub require_at_jwt: bool,
    /// Allowed signature algorithms. Default `[RS256]`.
    pub algorithms: Vec<Algorithm>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`. Default 0.
    pub leeway: Duration,
    /// Longest token accepted, in bytes. Default 16 KiB.
    pub max_token_bytes: usize,
    /// PEM file of extra CA certificates trusted for this issuer's HTTPS, besides the web roots.
    pub extra_ca_file: Option<PathBuf>,
    /// Fetch and refresh timings.
    pub jwks: JwksTimings,
    /// Where tokens carry groups: member names, outermost first. Default `cognito:groups`.
    pub groups_claim: Vec<String>,
    /// Where tokens carry scopes. Default `scope`.
    pub scopes_claim: Vec<String>,
}

impl Default for IssuerConfig {
    fn default() -> Self {
        IssuerConfig {
            name: String::new(),
            source: KeySource::Explicit {
                issuer: String::new(),
                jwks_url: String::new(),
            },
            cognito_style: true,
            app_clients: Vec::new(),
            audiences: Vec::new(),
            token_use: TokenUseRequirement::Access,
            require_at_jwt: false,
            algorithms: vec![Algorithm::RS256],
            leeway: Duration::ZERO,
            max_token_bytes: 16 * 1024,
            extra_ca_file: None,
            jwks: JwksTimings::default(),
            groups_claim: vec!["cognito:groups".to_owned()],
            scopes_claim: vec!["scope".to_owned()],
        }
    }
}

impl IssuerConfig {
    /// A Cognito user pool issuer with defaults.
    pub fn cognito(name: &str, region: &str, user_pool_id: &str, app_clients: &[&str]) -> Self {
        IssuerConfig {
            name: name.to_owned(),
            source: KeySource::Cognito {
                region: region.to_owned(),
                user_pool_id: user_pool_id.to_owned(),
            },
            app_clients: app_clients.iter().map(|c| (*c).to_owned()).collect(),
            ..IssuerConfig::default()
        }
    }

    /// True when Cognito's claim rules apply.
    pub fn is_cognito_style(&self) -> bool {
        self.cognito_style || matches!(self.source, KeySource::Cognito { .. })
    }

    /// Checks the fields that can be checked without network.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            issuer: self.name.clone(),
            message,
        };
        if self.name.is_empty() {
            return Err(invalid("the issuer name is empty".into()));
        }
        if self.groups_claim.is_empty() || self.scopes_claim.is_empty() {
            return Err(invalid("a groups or scopes claim path is empty".into()));
        }
        match &self.source {
            KeySource::Cognito {
                region,
                user_pool_id,
            } => {
                let region_ok = !region.is_empty()
                    && region
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                if !region_ok {
                    return Err(invalid(format!("`{region}` is not an AWS region")));
                }
                let pool_ok = match user_pool_id.split_once('_') {
                    Some((r, id)) => {
                        r == region
                            && !id.is_empty()
                            && id.bytes().all(|b| b.is_ascii_alphanumeric())
                    }
                    None => false,
                };
                if !pool_ok {
                    return Err(invalid(format!(
                        "`{user_pool_id}` is not a user pool id of region `{region}` (expected `{region}_<alphanumerics>`)"
                    )));
                }
            }
            KeySource::Explicit { issuer, jwks_url } => {
                check_url(issuer).map_err(|m| invalid(format!("issuer {m}")))?;
                check_url(jwks_url).map_err(|m| invalid(format!("jwks_url {m}")))?;
            }
            KeySource::Discovery { issuer } => {
                check_url(issuer).map_err(|m| invalid(format!("issuer {m}")))?;
            }
        }
        if self.algorithms.is_empty() {
            return Err(invalid("the algorithm allow-list is empty".into()));
        }
        if self.max_token_bytes == 0 {
            return Err(invalid("max_token_bytes is 0".into()));
        }
        let t = &self.jwks;
        if t.refresh_min > t.refresh_max {
            return Err(invalid("jwks refresh_min is above refresh_max".into()));
        }
        if t.refresh_min.is_zero() || t.retry_interval.is_zero() {
            return Err(invalid(
                "jwks refresh_min and retry_interval must be above 0".into(),
            ));
        }
        if t.connect_timeout.is_zero() || t.total_timeout.is_zero() || t.max_body_bytes == 0 {
            return Err(invalid("jwks timeouts and body cap must be above 0".into()));
        }
        Ok(())
    }
}

fn check_url(url: &str) -> Result<(), String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|_| format!("`{url}` is not a valid url"))?;
    match uri.scheme_str() {
        Some("https" | "http") => {}
        _ => return Err(format!("`{url}` must start with https:// or http://")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("`{url}` has no host"));
    }
    Ok(())
}

/// The verified-token cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// Maximum number of cached tokens; 0 disables the cache. Default 100,000. An entry of a
    /// Cognito access token costs about 2.0 KB of heap (2.8 KB of RSS) with every claim kept,
    /// 1.2 KB (1.6 KB of RSS) with only the four claims a typical policy reads: see
    /// `benches/cache_memory.rs`.
    pub capacity: u64,
    /// Entries are dropped this long before the token's `exp`. Default 0.
    pub expire_margin: Duration,
    /// Upper bound on an entry's lifetime whatever its `exp`. Default 1 h.
    pub max_ttl: Duration,
    /// Which claims an identity keeps in `Identity::claims`. Default: all of them.
    pub keep_claims: KeepClaims,
}

/// Which claims a verified identity keeps in `Identity::claims`; the typed fields (`sub`,
/// username, groups, scopes, client id, `token_use`, `exp`) are always set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum KeepClaims {
    /// Every claim of the token.
    #[default]
    All,
    /// Only these: the claims the caller's configuration reads. A cached Cognito access token
    /// then costs about 40 % less memory (see `benches/cache_memory.rs`).
    Only(Arc<BTreeSet<String>>),
}

impl KeepClaims {
    /// The kept claims of `claims`, compact.
    pub(crate) fn keep(
        &self,
        mut claims: serde_json::Map<String, serde_json::Value>,
    ) -> crate::identity::Claims {
        if let KeepClaims::Only(kept) = self {
            claims.retain(|name, _| kept.contains(name));
        }
        crate::identity::Claims::from_map(claims)
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            capacity: 100_000,
            expire_margin: Duration::ZERO,
            max_ttl: Duration::from_secs(3600),
            keep_claims: KeepClaims::All,
        }
    }
}
