//! Pure header work on the request sent upstream: identity scrubbing and injection,
//! request ids, `X-Forwarded-*`, and the request-head size.
//!
//! Nothing here does I/O; the gate calls these from `upstream_request_filter`.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderName, HeaderValue};
use pingora::http::RequestHeader;
use serde_json::Value;

use crate::config::IdentitySettings;

/// Name of the request-id header, kept from the client when well formed.
pub const REQUEST_ID: &str = "x-request-id";

/// Longest client-sent request id that is kept as is.
const MAX_REQUEST_ID_LEN: usize = 128;

/// A verified identity, borrowed, in the shape the backend headers need.
#[derive(Debug, Clone, Copy)]
pub struct IdentityView<'a> {
    pub issuer: &'a str,
    pub sub: &'a str,
    pub username: Option<&'a str>,
    pub groups: &'a [String],
    pub roles: &'a [&'a str],
    pub scopes: &'a [String],
    pub client_id: Option<&'a str>,
    pub token_use: &'a str,
    pub claims: Option<&'a dyn poolgate_policies::Claims>,
}

/// A verified value that cannot travel as a header value; the request is refused rather
/// than sent with a truncated or altered identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("identity value for `{header}` cannot be sent as a header")]
pub struct HeaderError {
    pub header: String,
}

/// Header names equal once `_` is read as `-` (names are lowercase in `http`): many backends
/// (CGI, WSGI, Rack, PHP) map both to `HTTP_X_AUTH_SUB`, so either spelling is the same header.
fn folded_starts_with(name: &str, prefix: &str) -> bool {
    name.len() >= prefix.len()
        && name
            .bytes()
            .zip(prefix.bytes())
            .all(|(a, b)| fold(a) == fold(b.to_ascii_lowercase()))
}

fn fold(b: u8) -> u8 {
    if b == b'_' { b'-' } else { b }
}

/// Client headers that some backends or frameworks treat as overriding the path, the method or
/// the client's origin: the policy judged none of them, so none is forwarded.
const OVERRIDE_HEADERS: [&str; 10] = [
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "forwarded",
    "x-real-ip",
    "x-forwarded-prefix",
    "x-forwarded-port",
    "x-forwarded-server",
];

/// Removes every header named `prefix…` in any mix of `-` and `_` (case-insensitive), the
/// route's claim headers (`(header, claim)` pairs) under the same folding, and the
/// path/method/origin override headers, so a client can neither pose as a verified identity nor
/// redirect what was judged. Returns how many names were removed.
pub fn strip_identity_headers(
    req: &mut RequestHeader,
    prefix: &str,
    claim_headers: &[(String, String)],
) -> usize {
    let doomed: Vec<HeaderName> = req
        .headers
        .keys()
        .filter(|name| {
            let n = name.as_str(); // http::HeaderName is always lowercase
            let same = |other: &str| other.len() == n.len() && folded_starts_with(n, other);
            folded_starts_with(n, prefix)
                || claim_headers.iter().any(|(h, _)| same(h))
                || OVERRIDE_HEADERS.iter().any(|o| same(o))
        })
        .cloned()
        .collect();
    for name in &doomed {
        req.remove_header(name);
    }
    doomed.len()
}

/// The identity header names of one configuration, built once (not per request).
#[derive(Debug, Clone)]
pub struct IdentityNames {
    issuer: HeaderName,
    sub: HeaderName,
    username: HeaderName,
    groups: HeaderName,
    roles: HeaderName,
    scopes: HeaderName,
    client_id: HeaderName,
    token_use: HeaderName,
    /// `(claim, header)` mappings; a present claim replaces the built-in header of the same
    /// name (its bit in the mask, see [`Builtin`]), so that one is not built at all.
    claims: Vec<(String, HeaderName, u8)>,
}

/// Bits of the built-in identity headers, for the claim mappings that replace them.
struct Builtin;

impl Builtin {
    const ISSUER: u8 = 1;
    const SUB: u8 = 1 << 1;
    const USERNAME: u8 = 1 << 2;
    const GROUPS: u8 = 1 << 3;
    const ROLES: u8 = 1 << 4;
    const SCOPES: u8 = 1 << 5;
    const CLIENT_ID: u8 = 1 << 6;
    const TOKEN_USE: u8 = 1 << 7;
}

impl IdentityNames {
    /// Names under `settings.prefix`; a prefix or suffix that cannot make a header name is an error.
    pub fn new(settings: &IdentitySettings) -> Result<Self, HeaderError> {
        let p = settings.prefix.to_ascii_lowercase();
        let name = |suffix: &str| {
            let full = format!("{p}{}", suffix.to_ascii_lowercase());
            HeaderName::from_bytes(full.as_bytes()).map_err(|_| HeaderError { header: full })
        };
        let mut names = Self {
            issuer: name("issuer")?,
            sub: name("sub")?,
            username: name("username")?,
            groups: name("groups")?,
            roles: name("roles")?,
            scopes: name("scopes")?,
            client_id: name("client-id")?,
            token_use: name("token-use")?,
            claims: Vec::with_capacity(settings.claim_headers.len()),
        };
        for (claim, suffix) in &settings.claim_headers {
            let header = name(suffix)?;
            let replaces = names.builtin_bit(&header);
            names.claims.push((claim.clone(), header, replaces));
        }
        Ok(names)
    }

    /// The bit of the built-in header named `header` (0 for none).
    fn builtin_bit(&self, header: &HeaderName) -> u8 {
        [
            (&self.issuer, Builtin::ISSUER),
            (&self.sub, Builtin::SUB),
            (&self.username, Builtin::USERNAME),
            (&self.groups, Builtin::GROUPS),
            (&self.roles, Builtin::ROLES),
            (&self.scopes, Builtin::SCOPES),
            (&self.client_id, Builtin::CLIENT_ID),
            (&self.token_use, Builtin::TOKEN_USE),
        ]
        .into_iter()
        .find(|(n, _)| *n == header)
        .map_or(0, |(_, bit)| bit)
    }
}

/// The identity headers for `id`, in a stable order. Arrays are JSON arrays (kept intact, no
/// `"[a b]"` flattening); a string claim is sent raw, any other claim as JSON.
pub fn identity_headers(
    id: &IdentityView<'_>,
    names: &IdentityNames,
) -> Result<Vec<(HeaderName, HeaderValue)>, HeaderError> {
    let mut out = Vec::with_capacity(8 + names.claims.len());
    // Claim headers first: a present claim replaces the built-in header of its name, which is
    // then not built (by default `sub`, `issuer` and `groups` come from claims).
    let mut replaced = 0u8;
    for (claim, name, bit) in &names.claims {
        let Some(value) = id.claims.and_then(|c| c.claim(claim)) else {
            continue; // an absent claim is an absent header (the built-in one stays)
        };
        match value {
            Value::String(s) => push(&mut out, name, s)?,
            other => push_owned(&mut out, name, other.to_string())?,
        }
        replaced |= bit;
    }
    let wanted = |bit: u8| replaced & bit == 0;
    if wanted(Builtin::ISSUER) {
        push(&mut out, &names.issuer, id.issuer)?;
    }
    if wanted(Builtin::SUB) {
        push(&mut out, &names.sub, id.sub)?;
    }
    if let Some(username) = id.username.filter(|_| wanted(Builtin::USERNAME)) {
        push(&mut out, &names.username, username)?;
    }
    if wanted(Builtin::GROUPS) {
        push_owned(&mut out, &names.groups, json_array(id.groups))?;
    }
    if wanted(Builtin::ROLES) {
        push_owned(&mut out, &names.roles, json_array(id.roles))?;
    }
    if wanted(Builtin::SCOPES) {
        push_owned(&mut out, &names.scopes, json_array(id.scopes))?;
    }
    if let Some(client_id) = id.client_id.filter(|_| wanted(Builtin::CLIENT_ID)) {
        push(&mut out, &names.client_id, client_id)?;
    }
    if wanted(Builtin::TOKEN_USE) {
        push(&mut out, &names.token_use, id.token_use)?;
    }
    Ok(out)
}

/// Route-specific `(full header name, claim)` headers; an absent claim gives no header
/// (the gate removes any client-sent header of that name regardless).
pub fn route_claim_headers(
    pairs: &[(String, String)],
    claims: &dyn poolgate_policies::Claims,
) -> Result<Vec<(HeaderName, HeaderValue)>, HeaderError> {
    let mut out = Vec::with_capacity(pairs.len());
    for (header, claim) in pairs {
        let Some(value) = claims.claim(claim) else {
            continue;
        };
        let name =
            HeaderName::from_bytes(header.to_ascii_lowercase().as_bytes()).map_err(|_| {
                HeaderError {
                    header: header.clone(),
                }
            })?;
        match value {
            Value::String(s) => push(&mut out, &name, s)?,
            other => push_owned(&mut out, &name, other.to_string())?,
        }
    }
    Ok(out)
}

fn json_array<S: serde::Serialize>(items: &[S]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
}

fn push(
    out: &mut Vec<(HeaderName, HeaderValue)>,
    name: &HeaderName,
    value: &str,
) -> Result<(), HeaderError> {
    let value = header_value(value).ok_or_else(|| HeaderError {
        header: name.as_str().to_owned(),
    })?;
    out.push((name.clone(), value));
    Ok(())
}

/// As [`push`], taking the text's buffer instead of copying it.
fn push_owned(
    out: &mut Vec<(HeaderName, HeaderValue)>,
    name: &HeaderName,
    value: String,
) -> Result<(), HeaderError> {
    let refused = || HeaderError {
        header: name.as_str().to_owned(),
    };
    if !is_header_text(&value) {
        return Err(refused());
    }
    let value = HeaderValue::from_maybe_shared(bytes::Bytes::from(value)).map_err(|_| refused())?;
    out.push((name.clone(), value));
    Ok(())
}

fn is_header_text(text: &str) -> bool {
    text.bytes()
        .all(|b| b == b'\t' || (0x20..=0x7e).contains(&b))
}

/// A header value from text, or `None` if any byte is outside visible ASCII, space and tab
/// (control characters, line breaks and non-ASCII are refused, never stripped).
pub fn header_value(text: &str) -> Option<HeaderValue> {
    if is_header_text(text) {
        HeaderValue::from_str(text).ok()
    } else {
        None
    }
}

/// Replaces any header of the same name with the given identity headers.
pub fn apply_headers(req: &mut RequestHeader, headers: Vec<(HeaderName, HeaderValue)>) {
    for (name, value) in headers {
        // insert_header only fails on invalid names/values, which these are not.
        let _ = req.insert_header(name, value);
    }
}

/// The request id to use: the client's when it is short, visible ASCII, else a fresh one.
pub fn request_id(client: Option<&[u8]>) -> String {
    match client {
        Some(v)
            if !v.is_empty()
                && v.len() <= MAX_REQUEST_ID_LEN
                && v.iter().all(|b| (0x21..=0x7e).contains(b)) =>
        {
            String::from_utf8_lossy(v).into_owned()
        }
        _ => new_request_id(),
    }
}

static SEED: LazyLock<RandomState> = LazyLock::new(RandomState::new);
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// 128 bits of hex, unique per process (random seed + counter); not a secret.
pub fn new_request_id() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut a = SEED.build_hasher();
    a.write_u64(n);
    let mut b = SEED.build_hasher();
    b.write_u64(!n);
    format!("{:016x}{:016x}", a.finish(), b.finish())
}

/// Sets `X-Forwarded-For` (client address appended to any existing list),
/// `X-Forwarded-Proto` and `X-Forwarded-Host` (both replaced).
pub fn set_forwarded(req: &mut RequestHeader, client: Option<IpAddr>, tls: bool) {
    if let Some(ip) = client {
        let ip = ip.to_string();
        let xff = match req
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
        {
            prior if prior.is_empty() => ip,
            prior => format!("{}, {ip}", prior.join(", ")),
        };
        if let Some(v) = header_value(&xff) {
            let _ = req.insert_header("x-forwarded-for", v);
        }
    }
    let _ = req.insert_header("x-forwarded-proto", if tls { "https" } else { "http" });
    let host = req.headers.get(http::header::HOST).cloned().or_else(|| {
        req.uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    match host {
        Some(h) => {
            let _ = req.insert_header("x-forwarded-host", h);
        }
        None => {
            req.remove_header("x-forwarded-host");
        }
    }
}

/// Approximate size of the request head: request target plus every `name: value\r\n`.
pub fn request_head_size(req: &RequestHeader) -> usize {
    let target = req.uri.path_and_query().map_or(1, |p| p.as_str().len());
    req.headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum::<usize>()
        + target
        + req.method.as_str().len()
        + 12
}

/// The bearer token of an `Authorization` header, if it has the `Bearer` scheme
/// (case-insensitive) and a non-empty token.
pub fn bearer_token(authorization: Option<&[u8]>) -> Option<&str> {
    let raw = std::str::from_utf8(authorization?).ok()?;
    let (scheme, token) = raw.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests;
