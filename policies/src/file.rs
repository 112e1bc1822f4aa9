//! The policy file as written: serde structs, every key spanned, unknown keys refused.
//!
//! These types are the documented, stable format (`docs/policies.md`). They are only ever
//! converted, through [`crate::convert`], into the internal types of [`crate::model`], which
//! never derive `Deserialize`.

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_saphyr::Spanned;
use std::fmt;

/// A string scalar with its location (env substitution happens at conversion).
pub type S = Spanned<String>;

/// A mapping whose order is kept (diagnostics and role order follow the file).
#[derive(Debug)]
pub struct Named<T>(pub Vec<(S, T)>);

impl<T> Default for Named<T> {
    fn default() -> Self {
        Named(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Named<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Named<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping of names")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<S, T>()? {
                    out.push((k, v));
                }
                Ok(Named(out))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(Named(Vec::new()))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// The main policy file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub version: Spanned<u32>,
    #[serde(default)]
    pub include: Vec<S>,
    #[serde(default)]
    pub listen: Vec<Spanned<ListenerFile>>,
    #[serde(default)]
    pub admin: Option<S>,
    #[serde(default)]
    pub issuers: Named<IssuerFile>,
    #[serde(default)]
    pub upstreams: Named<UpstreamFile>,
    #[serde(default)]
    pub roles: Named<RoleFile>,
    #[serde(default)]
    pub role_mapping: Option<RoleMappingFile>,
    #[serde(default)]
    pub routes: Vec<Spanned<RouteFile>>,
    #[serde(default)]
    pub identity_headers: Option<IdentityHeadersFile>,
    #[serde(default)]
    pub signed_identity: Option<Spanned<SignedIdentityFile>>,
    #[serde(default)]
    pub limits: Option<LimitsFile>,
    #[serde(default)]
    pub server: Option<ServerFile>,
}

/// A file named under `include:`: more issuers, upstreams, roles and routes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncludeFile {
    #[serde(default)]
    pub issuers: Named<IssuerFile>,
    #[serde(default)]
    pub upstreams: Named<UpstreamFile>,
    #[serde(default)]
    pub roles: Named<RoleFile>,
    #[serde(default)]
    pub routes: Vec<Spanned<RouteFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerFile {
    pub address: S,
    #[serde(default)]
    pub tls: Option<ListenerTlsFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTlsFile {
    pub cert: S,
    pub key: S,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerFile {
    #[serde(default)]
    pub cognito: Option<Spanned<CognitoFile>>,
    #[serde(default)]
    pub issuer: Option<S>,
    #[serde(default)]
    pub jwks_url: Option<S>,
    #[serde(default)]
    pub cognito_style: Option<Spanned<bool>>,
    #[serde(default)]
    pub app_clients: Vec<S>,
    #[serde(default)]
    pub audiences: Vec<S>,
    #[serde(default)]
    pub token_use: Option<S>,
    #[serde(default)]
    pub leeway: Option<S>,
    #[serde(default)]
    pub algorithms: Vec<S>,
    #[serde(default)]
    pub jwks: Option<JwksFile>,
    #[serde(default)]
    pub claims: Option<IssuerClaimsFile>,
}

/// Where an issuer's tokens carry groups and scopes (JSON Pointers).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerClaimsFile {
    #[serde(default)]
    pub groups: Option<S>,
    #[serde(default)]
    pub scopes: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CognitoFile {
    pub region: S,
    pub user_pool_id: S,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwksFile {
    #[serde(default)]
    pub refresh_interval: Option<S>,
    #[serde(default)]
    pub min_refetch_interval: Option<S>,
    #[serde(default)]
    pub fetch_timeout: Option<S>,
    #[serde(default)]
    pub max_stale: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamFile {
    pub targets: Spanned<Vec<S>>,
    #[serde(default)]
    pub balance: Option<S>,
    #[serde(default)]
    pub hash_key: Option<S>,
    #[serde(default)]
    pub health_check: Option<HealthCheckFile>,
    #[serde(default)]
    pub timeouts: Option<TimeoutsFile>,
    #[serde(default)]
    pub tls: Option<UpstreamTlsFile>,
    #[serde(default)]
    pub h2: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckFile {
    pub path: S,
    #[serde(default)]
    pub interval: Option<S>,
    #[serde(default)]
    pub timeout: Option<S>,
    #[serde(default)]
    pub healthy_threshold: Option<Spanned<u32>>,
    #[serde(default)]
    pub unhealthy_threshold: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsFile {
    #[serde(default)]
    pub connect: Option<S>,
    #[serde(default)]
    pub read: Option<S>,
    #[serde(default)]
    pub write: Option<S>,
    #[serde(default)]
    pub idle: Option<S>,
    #[serde(default)]
    pub total: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTlsFile {
    #[serde(default)]
    pub sni: Option<S>,
    #[serde(default)]
    pub verify: Option<Spanned<bool>>,
    /// PEM bundle of the CAs trusted for this upstream (instead of the system's).
    #[serde(default)]
    pub ca: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleFile {
    #[serde(default)]
    pub description: Option<S>,
    #[serde(default)]
    pub allow: Vec<Spanned<StatementFile>>,
    #[serde(default)]
    pub deny: Vec<Spanned<StatementFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatementFile {
    pub methods: Spanned<Vec<S>>,
    pub paths: Spanned<Vec<S>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleMappingFile {
    #[serde(default)]
    pub groups: Named<Vec<S>>,
    #[serde(default)]
    pub rules: Vec<Spanned<RuleFile>>,
    #[serde(default)]
    pub rule_match: Option<S>,
    #[serde(default)]
    pub preferred_role: Named<Vec<S>>,
    #[serde(default)]
    pub authenticated: Vec<S>,
    #[serde(default)]
    pub guest: Vec<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    pub claim: S,
    #[serde(default)]
    pub equals: Option<S>,
    #[serde(default)]
    pub not_equals: Option<S>,
    #[serde(default)]
    pub starts_with: Option<S>,
    #[serde(default)]
    pub contains: Option<S>,
    pub roles: Spanned<Vec<S>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    #[serde(default)]
    pub name: Option<S>,
    #[serde(rename = "match")]
    pub matcher: MatchFile,
    pub upstream: S,
    #[serde(default)]
    pub public: Option<Spanned<bool>>,
    #[serde(default)]
    pub auth: Option<Spanned<AuthFile>>,
    #[serde(default)]
    pub cors: Option<CorsFile>,
    #[serde(default)]
    pub forward_token: Option<Spanned<bool>>,
    #[serde(default)]
    pub headers: Named<S>,
    #[serde(default)]
    pub header_encoding: Option<S>,
    #[serde(default)]
    pub signed_identity: Option<Spanned<bool>>,
    #[serde(default)]
    pub total_timeout: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchFile {
    #[serde(default)]
    pub host: Option<S>,
    pub path: S,
    #[serde(default)]
    pub methods: Vec<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    #[serde(default)]
    pub issuer: Option<S>,
    #[serde(default)]
    pub token_use: Option<S>,
    #[serde(default)]
    pub scopes: Option<ScopesFile>,
    #[serde(default)]
    pub roles: Vec<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopesFile {
    #[serde(default)]
    pub any_of: Vec<S>,
    #[serde(default)]
    pub all_of: Vec<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsFile {
    pub allow_origins: Vec<S>,
    #[serde(default)]
    pub allow_methods: Vec<S>,
    #[serde(default)]
    pub allow_headers: Vec<S>,
    #[serde(default)]
    pub expose_headers: Vec<S>,
    #[serde(default)]
    pub allow_credentials: Option<Spanned<bool>>,
    #[serde(default)]
    pub max_age: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityHeadersFile {
    #[serde(default)]
    pub prefix: Option<S>,
    #[serde(default)]
    pub send: Option<Vec<S>>,
    #[serde(default)]
    pub encoding: Option<S>,
    #[serde(default)]
    pub encodings: Option<Named<S>>,
    #[serde(default)]
    pub claims: Option<Named<S>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedIdentityFile {
    pub keys: Vec<Spanned<SigningKeyFile>>,
    #[serde(default)]
    pub signer: Option<S>,
    #[serde(default)]
    pub ttl: Option<S>,
    #[serde(default)]
    pub publish_path: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningKeyFile {
    pub kid: S,
    pub file: S,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    #[serde(default)]
    pub threads: Option<Spanned<u64>>,
    #[serde(default)]
    pub access_log: Option<S>,
    #[serde(default)]
    pub token_cache: Option<TokenCacheFile>,
    #[serde(default)]
    pub connections: Option<ConnectionsFile>,
    #[serde(default)]
    pub trusted_proxies: Vec<S>,
    #[serde(default)]
    pub client_request_id: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionsFile {
    #[serde(default)]
    pub max: Option<Spanned<u64>>,
    #[serde(default)]
    pub header_timeout: Option<S>,
    #[serde(default)]
    pub keepalive_timeout: Option<S>,
    #[serde(default)]
    pub body_timeout: Option<S>,
    #[serde(default)]
    pub send_timeout: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenCacheFile {
    #[serde(default)]
    pub capacity: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    #[serde(default)]
    pub max_request_header_bytes: Option<Spanned<u64>>,
}
