//! Test support (feature `test-util`): signing keys, Cognito-shaped claims, and a JWKS server.

mod key;
mod mint;

pub use key::{KeyGenError, TestKey, jwks_of};
pub use mint::Claims;

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
