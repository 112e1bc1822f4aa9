//! The seam between the gate and token verification.
//!
//! The gate needs two things of a verifier: verify a bearer token against a route's
//! requirement, and say whether it is ready (every issuer has keys). The authorizer crate's
//! `Authorizer` is the real implementation; the trait keeps the gate testable and lets the
//! proxy run with no issuers configured (then every protected route answers 401).

use std::sync::Arc;

use async_trait::async_trait;
use poolgate_authorizer::{AuthError, Identity, Requirement};

/// Verifies bearer tokens.
#[async_trait]
pub trait TokenVerifier: Send + Sync {
    /// The verified identity, or why the token is refused.
    async fn verify(&self, token: &str, req: &Requirement) -> Result<Arc<Identity>, AuthError>;

    /// Whether every issuer has usable keys (feeds `/readyz`).
    fn is_ready(&self) -> bool;
}
