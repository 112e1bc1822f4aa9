//! The result of a successful verification, and what a route requires of it.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::config::TokenUseRequirement;
use crate::error::AuthError;
use crate::memo::Memo;

/// What kind of token was verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenUse {
    /// An access token (`token_use: access`, or `typ: at+jwt`).
    Access,
    /// An ID token (`token_use: id`).
    Id,
    /// An OIDC token that says neither (only possible for non-Cognito issuers).
    Unknown,
}

impl TokenUse {
    /// `access`, `id` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenUse::Access => "access",
            TokenUse::Id => "id",
            TokenUse::Unknown => "unknown",
        }
    }

    /// Whether this kind satisfies a requirement.
    pub fn satisfies(self, req: TokenUseRequirement) -> bool {
        matches!(
            (req, self),
            (TokenUseRequirement::Any, _)
                | (TokenUseRequirement::Access, TokenUse::Access)
                | (TokenUseRequirement::Id, TokenUse::Id)
        )
    }
}

/// A verified caller. Shared (`Arc`) between the cache and requests.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// The configured name of the issuer (not its url).
    pub issuer: Arc<str>,
    /// The verified `iss`: the issuer's URL.
    pub iss: Arc<str>,
    /// Whether the token had its groups and scopes claims at all (an absent claim matches no
    /// claim rule, not even `not_equals`).
    pub claimed: ClaimedLists,
    /// `sub`.
    pub sub: String,
    /// `username` (access tokens) or `cognito:username` (ID tokens); for OIDC also
    /// `preferred_username`.
    pub username: Option<String>,
    /// `cognito:groups` (empty when absent).
    pub groups: Vec<String>,
    /// `scope`, split on spaces (empty when absent).
    pub scopes: Vec<String>,
    /// Access or ID token.
    pub token_use: TokenUse,
    /// `client_id` (access tokens) or the matching `aud` (ID tokens).
    pub client_id: Option<String>,
    /// `exp`, seconds since the Unix epoch.
    pub exp: u64,
    /// The token's claims (all, or those `KeepClaims` names), for claim rules and headers.
    pub claims: Claims,
    /// What the consumer derived from this identity, kept while it is cached.
    pub memo: Memo,
}

/// Whether the groups and scopes claims were in the token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClaimedLists {
    pub groups: bool,
    pub scopes: bool,
}

/// A verified token's claims, compact: one boxed slice sorted by name. A cached identity holds
/// it for the token's lifetime, and a map's node would cost several times the bytes of a few
/// claims.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Claims(Box<[(Box<str>, Value)]>);

impl Claims {
    /// The claims of `map` (its names are unique and already sorted).
    pub fn from_map(map: Map<String, Value>) -> Claims {
        Claims(
            map.into_iter()
                .map(|(name, value)| (name.into_boxed_str(), value))
                .collect(),
        )
    }

    /// The value of claim `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0
            .binary_search_by(|(n, _)| (**n).cmp(name))
            .ok()
            .and_then(|i| self.0.get(i))
            .map(|(_, v)| v)
    }

    /// `(name, value)` pairs in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(n, v)| (&**n, v))
    }

    /// Claim names in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(n, _)| &**n)
    }
}

impl std::ops::Index<&str> for Claims {
    type Output = Value;

    /// `Value::Null` for an absent claim, as `serde_json::Map` indexing through a `Value` does.
    fn index(&self, name: &str) -> &Value {
        self.get(name).unwrap_or(&Value::Null)
    }
}

/// What a route asks of a verified identity. Checked on every request, cache hit or not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requirement {
    /// The issuer's configured name; `None`: any configured issuer.
    pub issuer: Option<Arc<str>>,
    /// Access, ID or either.
    pub token_use: TokenUseRequirement,
    /// Accepted client ids; `None`: whatever the issuer accepts.
    pub clients: Option<Arc<[String]>>,
}

impl Requirement {
    /// Any issuer, any token kind, any client the issuer accepts.
    pub fn any() -> Self {
        Requirement {
            issuer: None,
            token_use: TokenUseRequirement::Any,
            clients: None,
        }
    }

    /// Access tokens of the named issuer.
    pub fn access(issuer: &str) -> Self {
        Requirement {
            issuer: Some(Arc::from(issuer)),
            token_use: TokenUseRequirement::Access,
            clients: None,
        }
    }

    /// ID tokens of the named issuer.
    pub fn id(issuer: &str) -> Self {
        Requirement {
            issuer: Some(Arc::from(issuer)),
            token_use: TokenUseRequirement::Id,
            clients: None,
        }
    }

    /// Checks a verified identity against this requirement. Allocation-free.
    pub fn check(&self, id: &Identity) -> Result<(), AuthError> {
        if let Some(issuer) = &self.issuer
            && **issuer != *id.issuer
        {
            return Err(AuthError::WrongIssuer);
        }
        if !id.token_use.satisfies(self.token_use) {
            return Err(AuthError::WrongTokenUse);
        }
        if let Some(clients) = &self.clients {
            let ok = id
                .client_id
                .as_deref()
                .is_some_and(|c| clients.iter().any(|x| x == c));
            if !ok {
                return Err(AuthError::WrongAudience);
            }
        }
        Ok(())
    }
}
