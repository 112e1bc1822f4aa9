//! The validated policy: plain types built from the file by [`crate::convert`].
//!
//! Nothing here derives `Deserialize`: the only way in is through validation.

use crate::claim_path::ClaimPath;
use crate::pattern::{HostPattern, PathPattern};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A listening socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    pub address: SocketAddr,
    pub tls: Option<ListenerTls>,
}

/// Certificate chain and private key files (PEM) of a TLS listener; a relative path in the
/// file is taken from the policy file's directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerTls {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

/// Which kind of token an issuer or a route accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TokenUse {
    /// Access tokens only (Cognito `token_use: access`).
    #[default]
    Access,
    /// ID tokens only (Cognito `token_use: id`).
    Id,
    /// Either.
    Any,
}

impl TokenUse {
    /// Whether a token whose `token_use` claim is `actual` is acceptable.
    pub fn accepts(self, actual: Option<&str>) -> bool {
        match self {
            TokenUse::Any => true,
            TokenUse::Access => actual == Some("access"),
            TokenUse::Id => actual == Some("id"),
        }
    }
}

/// Where an issuer's keys come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// A Cognito user pool: issuer and JWKS URL are derived.
    Cognito {
        region: String,
        user_pool_id: String,
    },
    /// An explicit issuer and JWKS URL.
    Explicit { issuer: String, jwks_url: String },
    /// An issuer whose JWKS URL comes from `{issuer}/.well-known/openid-configuration`.
    Discovery { issuer: String },
}

impl KeySource {
    /// The expected `iss` claim.
    pub fn issuer(&self) -> String {
        match self {
            KeySource::Cognito {
                region,
                user_pool_id,
            } => format!("https://cognito-idp.{region}.amazonaws.com/{user_pool_id}"),
            KeySource::Explicit { issuer, .. } | KeySource::Discovery { issuer } => issuer.clone(),
        }
    }
}

/// JWKS fetch timings; `None` keeps the authorizer's default.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct JwksTimings {
    /// Background refresh period.
    pub refresh_interval: Option<Duration>,
    /// Least time between two fetches triggered by unknown `kid`s.
    pub min_refetch_interval: Option<Duration>,
    /// Timeout of one whole fetch.
    pub fetch_timeout: Option<Duration>,
    /// How long the last good keys stay usable while fetches fail.
    pub max_stale: Option<Duration>,
}

/// A token issuer, in the policy file's terms (the proxy converts it to the authorizer's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issuer {
    /// The name routes refer to.
    pub name: String,
    pub source: KeySource,
    /// Cognito token shape (`token_use`, `client_id`, `cognito:groups`); always true for `cognito:`.
    pub cognito_style: bool,
    /// Accepted `client_id` (access tokens) / `aud` (ID tokens); empty accepts any.
    pub app_clients: Vec<String>,
    /// Accepted `aud` values for non-Cognito tokens; empty accepts any.
    pub audiences: Vec<String>,
    pub token_use: TokenUse,
    /// Clock skew tolerated on `exp`/`nbf`/`iat`.
    pub leeway: Duration,
    /// Accepted JWS `alg` values (default `RS256`).
    pub algorithms: Vec<String>,
    pub jwks: JwksTimings,
    /// Where its tokens carry groups (default `/cognito:groups`).
    pub groups_claim: ClaimPath,
    /// Where its tokens carry scopes (default `/scope`).
    pub scopes_claim: ClaimPath,
}

/// The default groups claim, Cognito's.
pub fn default_groups_claim() -> ClaimPath {
    ClaimPath::top("cognito:groups")
}

/// The default scopes claim (Cognito's and RFC 9068's).
pub fn default_scopes_claim() -> ClaimPath {
    ClaimPath::top("scope")
}

/// How requests are spread over an upstream's targets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Balance {
    RoundRobin,
    /// Consistent hashing on a request key.
    ConsistentHash(HashKey),
}

/// The request property consistent hashing uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HashKey {
    /// A request header (lowercase name).
    Header(String),
    /// A claim of the verified token.
    Claim(String),
    /// The normalised path.
    Path,
    /// The client's IP address.
    ClientIp,
}

/// Active health checking of an upstream's targets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
}

/// Upstream connection timeouts; `None` leaves the proxy's default.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Timeouts {
    pub connect: Option<Duration>,
    pub read: Option<Duration>,
    pub write: Option<Duration>,
    pub idle: Option<Duration>,
    /// The whole exchange with the backend: connect, request, response head and body.
    pub total: Option<Duration>,
}

/// TLS towards an upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamTls {
    /// Server name sent and verified; defaults to the target's host.
    pub sni: Option<String>,
    /// Whether the certificate is verified (default true).
    pub verify: bool,
    /// PEM bundle of the CAs trusted instead of the system's, resolved against the directory
    /// of the file that names it; checked to be readable PEM certificates when loaded.
    pub ca: Option<PathBuf>,
}

/// A pool of backends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    pub name: String,
    /// `host:port` strings (hosts may be names; the proxy resolves them).
    pub targets: Vec<String>,
    pub balance: Balance,
    pub health_check: Option<HealthCheck>,
    pub timeouts: Timeouts,
    pub tls: Option<UpstreamTls>,
    /// Speak HTTP/2 to the backend.
    pub h2: bool,
}

/// CORS preflight answered by the proxy for a route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cors {
    /// Exact origins, or `*`.
    pub allow_origins: Vec<String>,
    pub allow_methods: Vec<String>,
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub allow_credentials: bool,
    pub max_age: Option<Duration>,
}

/// What a non-public route asks of the token before roles are consulted.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct AuthRequirement {
    /// The issuer (by name) the token must come from; `None` accepts any configured issuer.
    pub issuer: Option<String>,
    /// `None` defers to the issuer's `token_use`.
    pub token_use: Option<TokenUse>,
    /// At least one of these scopes (if any are listed).
    pub scopes_any_of: Vec<String>,
    /// Every one of these scopes.
    pub scopes_all_of: Vec<String>,
    /// The identity must hold at least one of these roles (indices into `Config::roles`).
    pub roles: Vec<usize>,
}

/// A route: where matching requests go and what they need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The route's name (`name:`, or `routes[i]` of its file).
    pub name: String,
    pub host: HostPattern,
    pub path: PathPattern,
    pub methods: crate::method::MethodSet,
    /// The upstream's name and its index in `Config::upstreams`.
    pub upstream: String,
    pub upstream_index: usize,
    /// Allowed without a token (no roles consulted).
    pub public: bool,
    pub auth: AuthRequirement,
    pub cors: Option<Cors>,
    /// Whether the `Authorization` header is passed to the backend (default true).
    pub forward_token: bool,
    /// Extra headers set from claims for this route: (header name, claim name).
    pub headers: Vec<(String, String)>,
    /// How array values in `headers` are written (default: `identity_headers.encoding`).
    pub header_encoding: ArrayEncoding,
    /// Whether the backend gets the ALB-compatible `x-amzn-oidc-*` headers.
    pub signed_identity: bool,
    /// The whole exchange with the backend, for this route (else the upstream's `total`).
    pub total_timeout: Option<Duration>,
}

/// Keys and settings of the signed identity (`x-amzn-oidc-data`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedIdentity {
    /// The first signs; every one is published.
    pub keys: Vec<SigningKey>,
    /// The header's `signer` (ALB puts its ARN there).
    pub signer: String,
    /// Lifetime of an assertion (never past the token's own `exp`).
    pub ttl: Duration,
    /// Where the proxy's listeners publish the public keys, if anywhere
    /// (`{path}/jwks.json`, `{path}/{kid}`).
    pub publish_path: Option<String>,
}

/// A P-256 signing key read from a PEM file.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    pub kid: String,
    pub path: std::path::PathBuf,
    /// The private key as PKCS#8 DER, checked to be P-256.
    pub pkcs8: Vec<u8>,
    /// Hash of the file's bytes, for the reload watcher.
    pub file_hash: u64,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key itself: configurations are logged.
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// How an array of strings is written as one header value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ArrayEncoding {
    /// A JSON array: `["users","analysts"]`.
    #[default]
    Json,
    /// Comma-separated: `users,analysts`.
    Csv,
    /// An RFC 8941 structured-field list of strings: `"users", "analysts"`.
    SfList,
}

impl ArrayEncoding {
    /// Every encoding, with its name in the policy file.
    pub const ALL: [(&'static str, ArrayEncoding); 3] = [
        ("json", ArrayEncoding::Json),
        ("csv", ArrayEncoding::Csv),
        ("sf-list", ArrayEncoding::SfList),
    ];

    /// The encoding named `name` in the policy file.
    pub fn from_name(name: &str) -> Option<ArrayEncoding> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, e)| *e)
    }
}

/// The built-in identity headers, by suffix: what `identity_headers.send` may name.
pub const BUILTIN_IDENTITY_HEADERS: [&str; 8] = [
    "issuer",
    "sub",
    "username",
    "groups",
    "roles",
    "scopes",
    "client-id",
    "token-use",
];

/// Headers carrying the verified identity to backends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityHeaders {
    /// Prefix of every identity header; client headers with it are removed (default `x-auth-`).
    pub prefix: String,
    /// The built-in headers sent (suffixes from [`BUILTIN_IDENTITY_HEADERS`]); default `sub`,
    /// `issuer`, `groups`.
    pub send: Vec<String>,
    /// How array values are written, unless `encodings` names the header.
    pub encoding: ArrayEncoding,
    /// (header suffix, encoding) for headers written otherwise.
    pub encodings: Vec<(String, ArrayEncoding)>,
    /// (header suffix, claim name): `x-auth-tenant: <custom:tenant>`; a present claim replaces
    /// the built-in header of the same suffix.
    pub claims: Vec<(String, String)>,
}

impl IdentityHeaders {
    /// The encoding of the header with this suffix.
    pub fn encoding_of(&self, suffix: &str) -> ArrayEncoding {
        self.encodings
            .iter()
            .find(|(s, _)| s == suffix)
            .map_or(self.encoding, |(_, e)| *e)
    }
}

impl Default for IdentityHeaders {
    fn default() -> Self {
        Self {
            prefix: "x-auth-".into(),
            send: vec!["sub".into(), "issuer".into(), "groups".into()],
            encoding: ArrayEncoding::Json,
            encodings: Vec::new(),
            claims: Vec::new(),
        }
    }
}

/// Request limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest total size of request headers accepted (default 32 KiB).
    pub max_request_header_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_header_bytes: 32 * 1024,
        }
    }
}

/// Process settings: they take effect when poolgate starts (a reload keeps the running ones),
/// except the token cache's capacity, which a reload applies with a new cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    /// Worker threads; `None`: one per CPU the process may run on.
    pub threads: Option<usize>,
    /// Where the JSON access log goes.
    pub access_log: AccessLogTarget,
    /// Verified tokens kept in the cache; 0 turns the cache off.
    pub token_cache_capacity: u64,
    /// Bounds on client connections.
    pub connections: Connections,
    /// Peers whose `X-Forwarded-For` is kept (and appended to); from anyone else it is replaced.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// What becomes of a request id the client sends.
    pub client_request_id: ClientRequestId,
}

impl Server {
    /// Whether `peer` is one of the trusted proxies.
    pub fn trusts(&self, peer: std::net::IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.trusted_proxies.iter().any(|net| net.contains(&peer))
    }
}

/// What becomes of the `x-request-id` a client sends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientRequestId {
    /// Always a fresh id: clients cannot choose the id that the logs of poolgate and the
    /// backends are joined on.
    #[default]
    Replace,
    /// Kept when it comes from a trusted proxy, else replaced.
    Trusted,
    /// Kept from anyone (when well formed).
    Keep,
}

impl Default for Server {
    fn default() -> Self {
        Self {
            threads: None,
            access_log: AccessLogTarget::Stdout,
            token_cache_capacity: 100_000,
            connections: Connections::default(),
            trusted_proxies: Vec::new(),
            client_request_id: ClientRequestId::default(),
        }
    }
}

/// Bounds on client (downstream) connections, so that slow or idle clients cannot hold them
/// without end. The timeouts apply to connections accepted after a reload; `max` takes effect
/// at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connections {
    /// Open client connections at most (per process); further ones are closed on accept.
    pub max: usize,
    /// Total time to read a request head (HTTP/1.x), from the connection's start or, on a
    /// kept-alive connection, from the request's first byte; also the time an HTTP/2 client has
    /// to send its connection preface.
    pub header_timeout: Duration,
    /// How long a connection may sit idle between requests (HTTP/1.1 keep-alive, HTTP/2 with
    /// no open stream); whole seconds.
    pub keepalive_timeout: Duration,
    /// Longest wait for the next piece of a request body.
    pub body_timeout: Duration,
    /// Longest wait for the client to take the next piece of an answer.
    pub send_timeout: Duration,
}

impl Default for Connections {
    fn default() -> Self {
        Self {
            max: 10_000,
            header_timeout: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(75),
            body_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
        }
    }
}

/// Where the access log goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessLogTarget {
    /// One JSON line per request on standard output.
    Stdout,
    /// No access log.
    Off,
}
