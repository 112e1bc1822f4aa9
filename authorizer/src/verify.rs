//! The pure core: a token, an issuer's rules, its key set and the time in, an `Identity` or the
//! reason for refusal out. No I/O, no clock, no allocation beyond the result.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::config::{Algorithm, IssuerConfig, KeepClaims, TokenUseRequirement};
use crate::error::AuthError;
use crate::identity::{Identity, TokenUse};
use crate::jose::{Decoded, decode};
use crate::keys::KeySet;
use crate::memo::Memo;

/// The claim rules of one issuer, compiled from its `IssuerConfig`.
#[derive(Debug, Clone)]
pub struct IssuerRules {
    /// Configured name.
    pub name: Arc<str>,
    /// Exact `iss`.
    pub iss: Arc<str>,
    /// Cognito claim rules (`token_use`, `client_id`/`aud` against app clients).
    pub cognito_style: bool,
    /// Accepted app clients (empty: any).
    pub app_clients: Vec<String>,
    /// OIDC accepted audiences (empty: not checked).
    pub audiences: Vec<String>,
    /// Token kinds accepted.
    pub token_use: TokenUseRequirement,
    /// OIDC access tokens must have `typ: at+jwt`.
    pub require_at_jwt: bool,
    /// Allowed algorithms.
    pub algorithms: Vec<Algorithm>,
    /// Clock skew tolerance in seconds.
    pub leeway: u64,
    /// Token length cap in bytes.
    pub max_token_bytes: usize,
    /// Where groups and scopes are (see [`crate::claims`]).
    pub groups_claim: Vec<String>,
    pub scopes_claim: Vec<String>,
}

impl IssuerRules {
    /// Compiles the claim rules of an issuer.
    pub fn from_config(config: &IssuerConfig) -> IssuerRules {
        IssuerRules {
            name: Arc::from(config.name.as_str()),
            iss: Arc::from(config.source.issuer_url()),
            cognito_style: config.is_cognito_style(),
            app_clients: config.app_clients.clone(),
            audiences: config.audiences.clone(),
            token_use: config.token_use,
            require_at_jwt: config.require_at_jwt,
            algorithms: config.algorithms.clone(),
            leeway: config.leeway.as_secs(),
            max_token_bytes: config.max_token_bytes,
            groups_claim: config.groups_claim.clone(),
            scopes_claim: config.scopes_claim.clone(),
        }
    }
}

/// Verifies a token against one issuer: `decode`, then `check`.
pub fn verify(
    token: &str,
    rules: &IssuerRules,
    keys: &KeySet,
    now: u64,
) -> Result<Identity, AuthError> {
    let decoded = decode(token, rules.max_token_bytes)?;
    if decoded.iss() != &*rules.iss {
        return Err(AuthError::WrongIssuer);
    }
    check(decoded, rules, keys, now, &KeepClaims::All)
}

/// Checks a decoded token whose `iss` selected `rules`, in this order: `alg` allowed, `kid`
/// present and known, signature, `exp`, `nbf`, `iat`, token use, client/audience, claim types.
pub fn check(
    decoded: Decoded<'_>,
    rules: &IssuerRules,
    keys: &KeySet,
    now: u64,
    keep: &KeepClaims,
) -> Result<Identity, AuthError> {
    let alg = Algorithm::from_name(&decoded.alg)
        .filter(|a| rules.algorithms.contains(a))
        .ok_or(AuthError::UnsupportedAlg)?;
    let kid = decoded.kid.as_deref().ok_or(AuthError::Malformed)?;
    keys.verify(kid, alg, decoded.signing_input, &decoded.signature)?;

    let claims = decoded.claims;
    check_times(&claims, rules.leeway, now)?;
    let token_use = token_use_of(&claims, decoded.typ.as_deref(), rules)?;
    let client_id = client_of(&claims, token_use, rules)?;

    let sub = match claims.get("sub") {
        Some(Value::String(s)) => s.clone(),
        _ => return Err(AuthError::Malformed),
    };
    let username = match token_use {
        TokenUse::Access => opt_str(&claims, "username")?,
        TokenUse::Id => opt_str(&claims, "cognito:username")?,
        TokenUse::Unknown => None,
    };
    let username = match username {
        Some(u) => Some(u),
        None if !rules.cognito_style => opt_str(&claims, "preferred_username")?,
        None => None,
    };
    // Where this issuer puts them; a value of another shape is a malformed token (401), never
    // an empty list.
    let crate::claims::Lists {
        groups,
        scopes,
        claimed,
    } = crate::claims::lists(&claims, &rules.groups_claim, &rules.scopes_claim)
        .map_err(|_| AuthError::Malformed)?;
    let exp = numeric_date(claims.get("exp"))?.unwrap_or(0).max(0) as u64;
    Ok(Identity {
        issuer: rules.name.clone(),
        iss: rules.iss.clone(),
        claimed,
        sub,
        username,
        groups,
        scopes,
        token_use,
        client_id,
        exp,
        claims: keep.keep(claims),
        memo: Memo::default(),
    })
}

/// A NumericDate: a JSON number, possibly fractional (floored). Absent: `None`; other types or
/// non-finite values: `Malformed`.
fn numeric_date(v: Option<&Value>) -> Result<Option<i64>, AuthError> {
    let Some(v) = v else { return Ok(None) };
    let Value::Number(n) = v else {
        return Err(AuthError::Malformed);
    };
    if let Some(i) = n.as_i64() {
        return Ok(Some(i));
    }
    if n.as_u64().is_some() {
        return Ok(Some(i64::MAX));
    }
    match n.as_f64() {
        // `as` saturates for out-of-range floats, which is what a date far away should do.
        #[allow(clippy::cast_possible_truncation)]
        Some(f) if f.is_finite() => Ok(Some(f.floor() as i64)),
        _ => Err(AuthError::Malformed),
    }
}

fn check_times(claims: &Map<String, Value>, leeway: u64, now: u64) -> Result<(), AuthError> {
    let now = i64::try_from(now).unwrap_or(i64::MAX);
    let leeway = i64::try_from(leeway).unwrap_or(i64::MAX);
    let exp = numeric_date(claims.get("exp"))?.ok_or(AuthError::Malformed)?;
    let nbf = numeric_date(claims.get("nbf"))?;
    let iat = numeric_date(claims.get("iat"))?;
    if now >= exp.saturating_add(leeway) {
        return Err(AuthError::Expired);
    }
    if nbf.is_some_and(|nbf| now.saturating_add(leeway) < nbf) {
        return Err(AuthError::NotYetValid);
    }
    if iat.is_some_and(|iat| iat > now.saturating_add(leeway)) {
        return Err(AuthError::IssuedInFuture);
    }
    Ok(())
}

fn opt_str(claims: &Map<String, Value>, name: &str) -> Result<Option<String>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(AuthError::Malformed),
    }
}

fn is_at_jwt(typ: Option<&str>) -> bool {
    typ.is_some_and(|t| {
        t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
    })
}

fn token_use_of(
    claims: &Map<String, Value>,
    typ: Option<&str>,
    rules: &IssuerRules,
) -> Result<TokenUse, AuthError> {
    let claimed = match claims.get("token_use") {
        None => None,
        Some(Value::String(s)) => match s.as_str() {
            "access" => Some(TokenUse::Access),
            "id" => Some(TokenUse::Id),
            _ => return Err(AuthError::WrongTokenUse),
        },
        Some(_) => return Err(AuthError::Malformed),
    };
    let kind = if rules.cognito_style {
        // Cognito refresh tokens (emulators) and foreign JWTs carry no `token_use`.
        claimed.ok_or(AuthError::WrongTokenUse)?
    } else {
        match claimed {
            Some(kind) => kind,
            None if is_at_jwt(typ) => TokenUse::Access,
            None => match rules.token_use {
                // The issuer declares the kind it issues; with the RFC 9068 requirement an
                // access token has to say so itself.
                TokenUseRequirement::Access if !rules.require_at_jwt => TokenUse::Access,
                TokenUseRequirement::Id => TokenUse::Id,
                _ => TokenUse::Unknown,
            },
        }
    };
    if !rules.cognito_style && rules.require_at_jwt && kind == TokenUse::Access && !is_at_jwt(typ) {
        return Err(AuthError::WrongTokenUse);
    }
    if !kind.satisfies(rules.token_use) {
        return Err(AuthError::WrongTokenUse);
    }
    Ok(kind)
}

/// The `aud` claim as a list: a string or an array of strings.
fn audiences(claims: &Map<String, Value>) -> Result<Vec<&str>, AuthError> {
    match claims.get("aud") {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.as_str()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(Value::as_str)
            .collect::<Option<Vec<&str>>>()
            .ok_or(AuthError::Malformed),
        Some(_) => Err(AuthError::Malformed),
    }
}

fn client_of(
    claims: &Map<String, Value>,
    kind: TokenUse,
    rules: &IssuerRules,
) -> Result<Option<String>, AuthError> {
    let aud = audiences(claims)?;
    let client_claim = opt_str(claims, "client_id")?;
    let accepted =
        |c: &str| rules.app_clients.is_empty() || rules.app_clients.iter().any(|a| a == c);
    if rules.cognito_style {
        return match kind {
            TokenUse::Access => {
                let c = client_claim.ok_or(AuthError::WrongAudience)?;
                if accepted(&c) {
                    Ok(Some(c))
                } else {
                    Err(AuthError::WrongAudience)
                }
            }
            _ => aud
                .iter()
                .find(|a| accepted(a))
                .map(|a| Some((*a).to_owned()))
                .ok_or(AuthError::WrongAudience),
        };
    }
    if !rules.audiences.is_empty() && !aud.iter().any(|a| rules.audiences.iter().any(|x| x == a)) {
        return Err(AuthError::WrongAudience);
    }
    match client_claim {
        Some(c) if accepted(&c) => Ok(Some(c)),
        Some(_) => Err(AuthError::WrongAudience),
        None if rules.app_clients.is_empty() => Ok(aud.first().map(|a| (*a).to_owned())),
        None => aud
            .iter()
            .find(|a| accepted(a))
            .map(|a| Some((*a).to_owned()))
            .ok_or(AuthError::WrongAudience),
    }
}
