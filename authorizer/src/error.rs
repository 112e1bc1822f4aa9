//! Typed errors: why a token was refused, why a configuration was refused, why a JWKS fetch failed.

/// Why a token was refused. The proxy maps `KeysUnavailable` to 503 and every other variant to 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum AuthError {
    /// No token was presented.
    #[error("no token")]
    Missing,
    /// Not a well-formed JWS compact token, or a claim has the wrong JSON type.
    #[error("malformed token")]
    Malformed,
    /// The `alg` is not in the issuer's allow-list (or is `none`/HMAC, never accepted), or the
    /// key named by `kid` is not for that algorithm.
    #[error("unsupported signing algorithm")]
    UnsupportedAlg,
    /// The `kid` names no key of the issuer, even after a refetch.
    #[error("unknown key id")]
    UnknownKid,
    /// The signature does not verify with the issuer's key.
    #[error("bad signature")]
    BadSignature,
    /// `exp` is past (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// `iat` is in the future (beyond the leeway).
    #[error("token issued in the future")]
    IssuedInFuture,
    /// `iss` names no configured issuer, or not the issuer the route requires.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` / `client_id` is not one of the accepted app clients or audiences.
    #[error("wrong audience or client")]
    WrongAudience,
    /// `token_use` (or `typ`) is not what the issuer or the route requires.
    #[error("wrong token use")]
    WrongTokenUse,
    /// The issuer's keys could not be loaded (or are older than the allowed staleness).
    #[error("issuer keys unavailable")]
    KeysUnavailable,
}

impl AuthError {
    /// Every variant, for tables and metrics initialisation.
    pub const ALL: [AuthError; 12] = [
        AuthError::Missing,
        AuthError::Malformed,
        AuthError::UnsupportedAlg,
        AuthError::UnknownKid,
        AuthError::BadSignature,
        AuthError::Expired,
        AuthError::NotYetValid,
        AuthError::IssuedInFuture,
        AuthError::WrongIssuer,
        AuthError::WrongAudience,
        AuthError::WrongTokenUse,
        AuthError::KeysUnavailable,
    ];

    /// A stable short code for logs and metric labels.
    pub fn code(self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Malformed => "malformed",
            AuthError::UnsupportedAlg => "unsupported_alg",
            AuthError::UnknownKid => "unknown_kid",
            AuthError::BadSignature => "bad_signature",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::IssuedInFuture => "issued_in_future",
            AuthError::WrongIssuer => "wrong_issuer",
            AuthError::WrongAudience => "wrong_audience",
            AuthError::WrongTokenUse => "wrong_token_use",
            AuthError::KeysUnavailable => "keys_unavailable",
        }
    }

    /// True when the fault is on the server side (keys could not be had): the proxy answers 503.
    pub fn is_unavailable(self) -> bool {
        self == AuthError::KeysUnavailable
    }
}

/// Why an issuer or cache configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Two issuers share a name.
    #[error("issuer name `{0}` is used twice")]
    DuplicateName(String),
    /// Two issuers share an `iss` value: a token could not be attributed.
    #[error("issuers `{0}` and `{1}` have the same issuer url `{2}`")]
    DuplicateIssuer(String, String, String),
    /// A field of an issuer is invalid.
    #[error("issuer `{issuer}`: {message}")]
    Invalid {
        /// The issuer's configured name.
        issuer: String,
        /// What is wrong, lowercase, no trailing period.
        message: String,
    },
}

/// Why a JWKS (or discovery document) fetch failed. Counted by `result` label.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL could not be used (scheme, host).
    #[error("bad url `{0}`")]
    BadUrl(String),
    /// TCP connect did not complete within the connect timeout.
    #[error("connect timed out")]
    ConnectTimeout,
    /// The whole fetch did not complete within the total timeout.
    #[error("timed out")]
    Timeout,
    /// Connection, TLS or HTTP protocol failure.
    #[error("transport error: {0}")]
    Transport(String),
    /// The server answered with a non-2xx status.
    #[error("http status {0}")]
    Status(u16),
    /// The body exceeded the size cap.
    #[error("body over {0} bytes")]
    TooLarge(usize),
    /// The body is not the expected JSON document.
    #[error("bad document: {0}")]
    BadDocument(String),
    /// The JWKS parsed but held no key usable for the issuer's algorithms.
    #[error("no usable key in the key set")]
    NoUsableKey,
}

impl FetchError {
    /// A stable short label for the fetch counter.
    pub fn code(&self) -> &'static str {
        match self {
            FetchError::BadUrl(_) => "bad_url",
            FetchError::ConnectTimeout => "connect_timeout",
            FetchError::Timeout => "timeout",
            FetchError::Transport(_) => "transport",
            FetchError::Status(_) => "status",
            FetchError::TooLarge(_) => "too_large",
            FetchError::BadDocument(_) => "bad_document",
            FetchError::NoUsableKey => "no_usable_key",
        }
    }
}
