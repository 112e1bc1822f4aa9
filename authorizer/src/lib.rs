//! poolgate-authorizer: verifies Cognito user-pool and OIDC tokens against cached JWKS key sets.
//!
//! - [`verify`]: the pure core, a sync function of (token, issuer rules, key set, now).
//! - [`keys`]: a JWKS document parsed once into ready aws-lc-rs verification keys.
//! - [`jose`]: bounded, strict splitting and decoding of compact JWS tokens.
//! - [`jwks`]: the only network code (HTTPS fetch of JWKS and discovery documents).
//! - [`Memo`]: what a consumer derives from a cached identity, kept with it.
//! - [`Authorizer`]: issuers, key-set lifecycle (prefetch, refresh, unknown-kid refetch), the
//!   verified-token cache and metrics.
//! - `testutil` (feature `test-util`): keys, a JWKS server on 127.0.0.1:0 and a token minter.

mod authorizer;
mod cache;
pub mod claims;
pub mod config;
pub mod error;
pub mod identity;
pub mod jose;
pub mod jwks;
pub mod keys;
mod lifecycle;
pub mod memo;
mod metrics;
pub mod verify;

#[cfg(feature = "test-util")]
pub mod testutil;

pub use authorizer::{Authorizer, IssuerStatus};
pub use config::{
    Algorithm, CacheConfig, IssuerConfig, JwksTimings, KeepClaims, KeySource, TokenUseRequirement,
};
pub use error::{AuthError, ConfigError, FetchError};
pub use identity::{ClaimedLists, Claims, Identity, Requirement, TokenUse};
pub use keys::KeySet;
pub use memo::Memo;
pub use verify::IssuerRules;
