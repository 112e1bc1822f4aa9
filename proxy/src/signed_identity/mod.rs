//! The ALB-compatible signed identity: `x-amzn-oidc-data` (an ES256 assertion of the verified
//! claims, signed by poolgate), `x-amzn-oidc-identity` (`sub`) and `x-amzn-oidc-accesstoken`
//! (the verified token), for backends written to sit behind an ALB with Cognito.
//!
//! Signing costs far more than the rest of an authorized request, so an assertion is made once
//! per cached identity (per token) and kept with it for half its lifetime (`crate::kept`):
//! every assertion sent has at least half of it left.

mod assertion;
mod keys;

use std::sync::Arc;

use bytes::Bytes;
use http::HeaderValue;
use pingora::http::RequestHeader;
use poolgate_authorizer::Identity;

pub use keys::KeyError;
use keys::Keys;

/// Why no assertion could be made: the request is refused rather than sent without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("the identity cannot be written as the signed identity headers")]
    Unrepresentable,
    #[error("signing failed")]
    Signing,
}

/// Keys, settings and the cache of assertions of one configuration.
pub struct SignedIdentity {
    keys: Keys,
    signer: String,
    ttl: u64,
    publish_path: Option<String>,
}

impl std::fmt::Debug for SignedIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedIdentity")
            .field("kid", &self.keys.kid())
            .field("signer", &self.signer)
            .finish_non_exhaustive()
    }
}

/// The three headers for one request.
#[derive(Debug, Clone)]
pub struct SignedHeaders {
    pub(crate) values: Arc<Values>,
    /// `false` on a route with `forward_token: false`: the token stays at the edge.
    pub(crate) forward_token: bool,
}

/// The three values for one token, made once and kept with its identity: a request that reuses
/// them copies no kilobyte-long token or assertion, it only counts references.
#[derive(Debug)]
pub struct Values {
    data: HeaderValue,
    identity: HeaderValue,
    token: HeaderValue,
    /// Until when (seconds since the epoch) they may be sent: half the assertion's lifetime.
    fresh_until: u64,
}

impl Values {
    /// Whether these may be sent for `token` at `now`.
    pub fn fit(&self, token: &str, now: u64) -> bool {
        now < self.fresh_until && self.token.as_bytes() == token.as_bytes()
    }
}

impl SignedHeaders {
    /// Sets the three on `req`, replacing any of the same name.
    pub fn apply(&self, req: &mut RequestHeader) -> pingora::Result<()> {
        let v = &*self.values;
        req.insert_header("x-amzn-oidc-data", v.data.clone())?;
        req.insert_header("x-amzn-oidc-identity", v.identity.clone())?;
        if self.forward_token {
            req.insert_header("x-amzn-oidc-accesstoken", v.token.clone())?;
        }
        Ok(())
    }
}

impl SignedIdentity {
    /// From the policy's settings.
    pub fn new(cfg: &poolgate_policies::model::SignedIdentity) -> Result<Self, KeyError> {
        let ttl = cfg.ttl.as_secs().max(1);
        let keys = Keys::new(&cfg.keys)?;
        // The first signature of a process seeds aws-lc's random generator (about 30 ms here):
        // pay it when the keys load, not on a request.
        let _ = keys.sign(b"poolgate");
        Ok(SignedIdentity {
            keys,
            signer: cfg.signer.clone(),
            ttl,
            publish_path: cfg.publish_path.clone(),
        })
    }

    /// New values for `id`, verified from `token`, at `now` (seconds since the epoch): a new
    /// assertion, fresh for half its lifetime.
    pub fn values(&self, token: &str, id: &Identity, now: u64) -> Result<Values, SignError> {
        Ok(Values {
            data: self.assertion(id, now)?,
            identity: crate::headers::header_value(&id.sub).ok_or(SignError::Unrepresentable)?,
            token: HeaderValue::from_str(token).map_err(|_| SignError::Unrepresentable)?,
            fresh_until: now.saturating_add(self.ttl.div_ceil(2)),
        })
    }

    /// A new assertion: it expires `ttl` from now, or with the token if that is sooner.
    fn assertion(&self, id: &Identity, now: u64) -> Result<HeaderValue, SignError> {
        let header = assertion::Header {
            typ: "JWT",
            kid: self.keys.kid(),
            alg: "ES256",
            iss: &id.iss,
            client: id.client_id.as_deref().unwrap_or_default(),
            signer: &self.signer,
            exp: now.saturating_add(self.ttl).min(id.exp.max(now)),
        };
        let input = assertion::signing_input(&header, id.claims.iter())
            .map_err(|_| SignError::Unrepresentable)?;
        let signature = self.keys.sign(input.as_bytes()).ok_or(SignError::Signing)?;
        HeaderValue::from_maybe_shared(Bytes::from(assertion::assemble(&input, &signature)))
            .map_err(|_| SignError::Unrepresentable)
    }

    /// A public key document at `path` under `base`: `{base}/jwks.json` or `{base}/{kid}`.
    fn document(&self, base: &str, path: &str) -> Option<(&'static str, Bytes)> {
        let rest = path.strip_prefix(base)?.strip_prefix('/')?;
        if rest == "jwks.json" {
            Some(("application/json", self.keys.jwks()))
        } else {
            self.keys
                .pem(rest)
                .map(|pem| ("application/x-pem-file", pem))
        }
    }

    /// The public keys on the admin listener: `/identity/jwks.json`, `/identity/{kid}`.
    pub fn admin_document(&self, path: &str) -> Option<(&'static str, Bytes)> {
        self.document("/identity", path)
    }

    /// The public keys on the proxy's listeners, at `publish_path` when one is set: the
    /// answer to a `GET` or `HEAD` of `path` (already normalised), if it names one.
    pub fn published(&self, method: &http::Method, path: &str) -> Option<crate::respond::Answer> {
        let base = self.publish_path.as_deref()?;
        if method != http::Method::GET && method != http::Method::HEAD {
            return None;
        }
        let (content_type, body) = self.document(base, path)?;
        Some(crate::respond::Answer {
            status: 200,
            headers: vec![
                ("content-type", content_type.to_owned()),
                ("cache-control", "max-age=300".to_owned()),
            ],
            body,
        })
    }
}

/// Shared with the gate state.
pub type Shared = Option<Arc<SignedIdentity>>;
