//! Test support (feature `test-util`): signing keys, Cognito-shaped claims, a JWKS server on
//! 127.0.0.1:0 and `TestIssuer`, which ties them together:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use poolgate_authorizer::testutil::TestIssuer;
//! use poolgate_authorizer::{Authorizer, CacheConfig, Requirement};
//! let pool = TestIssuer::start().await?;
//! let auth = Authorizer::new(vec![pool.config("shop")], CacheConfig::default())?;
//! auth.start();
//! let token = pool.mint_access("alice", &["admins"], &["orders/read"]);
//! let who = auth.verify(&token, &Requirement::access("shop")).await?;
//! assert_eq!(who.groups, ["admins"]);
//! # Ok(()) }
//! ```

mod issuer;
mod key;
mod mint;
mod server;

pub use issuer::{TestIssuer, TestUtilError};
pub use key::{KeyGenError, TestKey, jwks_of, p256_private_key_pem, pem};
pub use mint::Claims;
pub use server::{Behaviour, JwksServer};

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
