//! Pure header work on the request sent upstream: identity scrubbing and injection,
//! request ids, `X-Forwarded-*`, and the request-head size.
//!
//! Nothing here does I/O; the gate calls these from `upstream_request_filter`.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
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
const OVERRIDE_HEADERS: [&str; 12] = [
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "forwarded",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
    "x-forwarded-prefix",
    "x-forwarded-port",
    "x-forwarded-server",
];

/// The forwarding headers poolgate sets itself. Their `-` spelling is replaced (or appended
/// to); any spelling with `_`, which CGI-style backends read as the same header, is removed.
const SET_HEADERS: [&str; 3] = ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"];

/// Removes every header named `prefix…` in any mix of `-` and `_` (case-insensitive), the
/// route's claim headers (`(header, claim)` pairs) under the same folding, the
/// path/method/origin override headers, and `_` spellings of the forwarding headers poolgate
/// sets, so a client can neither pose as a verified identity nor redirect what was judged.
/// Returns how many names were removed.
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
                || (n.contains('_') && SET_HEADERS.iter().any(|o| same(o)))
        })
        .cloned()
        .collect();
    for name in &doomed {
        req.remove_header(name);
    }
    doomed.len()
}

/// The identity header names of one configuration, built once (not per request). A name is
/// addressed by its slot: the built-ins first (`Builtin`), then the claim mappings in order.
#[derive(Debug, Clone)]
pub struct IdentityNames {
    names: Box<[HeaderName]>,
    /// The same names as bytes: what pingora's `insert_header` takes without copying.
    wire: Box<[Bytes]>,
    /// `(claim, slot, replaces)`: a present claim replaces the built-in header of the same
    /// name (its bit in `replaces`, see [`Builtin`]), which is then not built at all.
    claims: Vec<(String, u16, u8)>,
}

/// Slots and bits of the built-in identity headers.
struct Builtin;

impl Builtin {
    /// Name suffixes, by slot.
    const SUFFIXES: [&str; 8] = [
        "issuer",
        "sub",
        "username",
        "groups",
        "roles",
        "scopes",
        "client-id",
        "token-use",
    ];
    const ISSUER: u16 = 0;
    const SUB: u16 = 1;
    const USERNAME: u16 = 2;
    const GROUPS: u16 = 3;
    const ROLES: u16 = 4;
    const SCOPES: u16 = 5;
    const CLIENT_ID: u16 = 6;
    const TOKEN_USE: u16 = 7;

    /// The replacement bit of a built-in slot (0 for any other slot).
    fn bit(slot: u16) -> u8 {
        1u8.checked_shl(u32::from(slot)).unwrap_or(0)
    }
}

impl IdentityNames {
    /// Names under `settings.prefix`; a prefix or suffix that cannot make a header name is an error.
    pub fn new(settings: &IdentitySettings) -> Result<Self, HeaderError> {
        let p = settings.prefix.to_ascii_lowercase();
        let name = |suffix: &str| {
            let full = format!("{p}{}", suffix.to_ascii_lowercase());
            HeaderName::from_bytes(full.as_bytes()).map_err(|_| HeaderError { header: full })
        };
        let mut names = Builtin::SUFFIXES
            .iter()
            .map(|s| name(s))
            .collect::<Result<Vec<_>, _>>()?;
        let mut claims = Vec::with_capacity(settings.claim_headers.len());
        for (claim, suffix) in &settings.claim_headers {
            let header = name(suffix)?;
            let replaces = names
                .iter()
                .take(Builtin::SUFFIXES.len())
                .position(|n| *n == header)
                .map_or(0, |slot| Builtin::bit(slot as u16));
            let slot = u16::try_from(names.len()).map_err(|_| HeaderError {
                header: header.as_str().to_owned(),
            })?;
            names.push(header);
            claims.push((claim.clone(), slot, replaces));
        }
        let wire = names
            .iter()
            .map(|n| Bytes::copy_from_slice(n.as_str().as_bytes()))
            .collect();
        Ok(Self {
            names: names.into_boxed_slice(),
            wire,
            claims,
        })
    }

    fn name(&self, slot: u16) -> &str {
        self.names
            .get(usize::from(slot))
            .map_or("", HeaderName::as_str)
    }
}

/// The identity headers of one request: every value in one buffer (one allocation, however
/// many headers), each with the slot of its name.
#[derive(Debug)]
pub struct IdentityHeaders {
    values: Bytes,
    /// `(name slot, end of its value in values)`, in order; a value starts where the last ended.
    spans: Box<[(u16, u32)]>,
}

impl IdentityHeaders {
    /// `(name, value)` pairs, in order.
    pub fn pairs<'a>(
        &'a self,
        names: &'a IdentityNames,
    ) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        let mut start = 0;
        self.spans.iter().map(move |&(slot, end)| {
            let value = self.values.get(start..end as usize).unwrap_or_default();
            start = end as usize;
            (names.name(slot), value)
        })
    }

    /// Sets every header on `req`, replacing any of the same name. `names` must be the
    /// configuration's these were built with.
    pub fn apply(&self, req: &mut RequestHeader, names: &IdentityNames) -> Result<(), HeaderError> {
        let mut start = 0;
        for &(slot, end) in &self.spans {
            let end = end as usize;
            let refused = || HeaderError {
                header: names.name(slot).to_owned(),
            };
            if start > end || end > self.values.len() {
                return Err(refused());
            }
            // Checked as header text when built; `http` checks again and cannot refuse it.
            let value = HeaderValue::from_maybe_shared(self.values.slice(start..end))
                .map_err(|_| refused())?;
            let name = names.wire.get(usize::from(slot)).ok_or_else(refused)?;
            req.insert_header(name.clone(), value)
                .map_err(|_| refused())?;
            start = end;
        }
        Ok(())
    }
}

/// Writes identity header values into one buffer.
struct Builder<'n> {
    names: &'n IdentityNames,
    buf: Vec<u8>,
    spans: Vec<(u16, u32)>,
}

impl Builder<'_> {
    /// Ends the value written since the last one: it must be header text.
    fn end(&mut self, slot: u16, start: usize) -> Result<(), HeaderError> {
        let refused = || HeaderError {
            header: self.names.name(slot).to_owned(),
        };
        let value = self.buf.get(start..).ok_or_else(refused)?;
        if !is_header_text(value) {
            return Err(refused());
        }
        let end = u32::try_from(self.buf.len()).map_err(|_| refused())?;
        self.spans.push((slot, end));
        Ok(())
    }

    fn text(&mut self, slot: u16, text: &str) -> Result<(), HeaderError> {
        let start = self.buf.len();
        self.buf.extend_from_slice(text.as_bytes());
        self.end(slot, start)
    }

    /// A JSON array of strings, as `serde_json` writes it.
    fn array<'s>(
        &mut self,
        slot: u16,
        items: impl Iterator<Item = &'s str>,
    ) -> Result<(), HeaderError> {
        let start = self.buf.len();
        self.buf.push(b'[');
        for (i, item) in items.enumerate() {
            if i > 0 {
                self.buf.push(b',');
            }
            json_string(&mut self.buf, item);
        }
        self.buf.push(b']');
        self.end(slot, start)
    }

    /// A claim: a string raw, anything else as JSON.
    fn claim(&mut self, slot: u16, value: &Value) -> Result<(), HeaderError> {
        match value {
            Value::String(s) => self.text(slot, s),
            // The usual array claim (`cognito:groups`): strings only, written as `array` does.
            Value::Array(items) if items.iter().all(Value::is_string) => {
                self.array(slot, items.iter().filter_map(Value::as_str))
            }
            other => {
                let start = self.buf.len();
                if serde_json::to_writer(&mut self.buf, other).is_err() {
                    return Err(HeaderError {
                        header: self.names.name(slot).to_owned(),
                    });
                }
                self.end(slot, start)
            }
        }
    }
}

/// `text` as a JSON string. Text with nothing to escape (the usual group, role and scope name)
/// is copied between quotes; anything else goes through `serde_json`.
fn json_string(buf: &mut Vec<u8>, text: &str) {
    let plain = text
        .bytes()
        .fold(true, |ok, b| ok & (b >= 0x20) & (b != b'"') & (b != b'\\'));
    if plain {
        buf.push(b'"');
        buf.extend_from_slice(text.as_bytes());
        buf.push(b'"');
    } else if serde_json::to_writer(&mut *buf, text).is_err() {
        // Writing to a Vec cannot fail; should it, the value is refused as not header text.
        buf.push(0);
    }
}

/// The identity headers for `id`, in a stable order. Arrays are JSON arrays (kept intact, no
/// `"[a b]"` flattening); a string claim is sent raw, any other claim as JSON.
pub fn identity_headers(
    id: &IdentityView<'_>,
    names: &IdentityNames,
) -> Result<IdentityHeaders, HeaderError> {
    let mut b = Builder {
        names,
        buf: Vec::with_capacity(256),
        spans: Vec::with_capacity(8 + names.claims.len()),
    };
    // Claim headers first: a present claim replaces the built-in header of its name, which is
    // then not built (by default `sub`, `issuer` and `groups` come from claims).
    let mut replaced = 0u8;
    for (claim, slot, bit) in &names.claims {
        let Some(value) = id.claims.and_then(|c| c.claim(claim)) else {
            continue; // an absent claim is an absent header (the built-in one stays)
        };
        b.claim(*slot, value)?;
        replaced |= bit;
    }
    let wanted = |slot: u16| replaced & Builtin::bit(slot) == 0;
    if wanted(Builtin::ISSUER) {
        b.text(Builtin::ISSUER, id.issuer)?;
    }
    if wanted(Builtin::SUB) {
        b.text(Builtin::SUB, id.sub)?;
    }
    if let Some(username) = id.username.filter(|_| wanted(Builtin::USERNAME)) {
        b.text(Builtin::USERNAME, username)?;
    }
    if wanted(Builtin::GROUPS) {
        b.array(Builtin::GROUPS, id.groups.iter().map(String::as_str))?;
    }
    if wanted(Builtin::ROLES) {
        b.array(Builtin::ROLES, id.roles.iter().copied())?;
    }
    if wanted(Builtin::SCOPES) {
        b.array(Builtin::SCOPES, id.scopes.iter().map(String::as_str))?;
    }
    if let Some(client_id) = id.client_id.filter(|_| wanted(Builtin::CLIENT_ID)) {
        b.text(Builtin::CLIENT_ID, client_id)?;
    }
    if wanted(Builtin::TOKEN_USE) {
        b.text(Builtin::TOKEN_USE, id.token_use)?;
    }
    Ok(IdentityHeaders {
        values: Bytes::from(b.buf),
        spans: b.spans.into_boxed_slice(),
    })
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
    if !is_header_text(value.as_bytes()) {
        return Err(refused());
    }
    let value = HeaderValue::from_maybe_shared(bytes::Bytes::from(value)).map_err(|_| refused())?;
    out.push((name.clone(), value));
    Ok(())
}

/// Visible ASCII, space and tab. Folded without an early exit, so it runs on whole vectors.
fn is_header_text(text: &[u8]) -> bool {
    text.iter().fold(true, |ok, &b| {
        ok & ((0x20..=0x7e).contains(&b) | (b == b'\t'))
    })
}

/// A header value from text, or `None` if any byte is outside visible ASCII, space and tab
/// (control characters, line breaks and non-ASCII are refused, never stripped).
pub fn header_value(text: &str) -> Option<HeaderValue> {
    if is_header_text(text.as_bytes()) {
        HeaderValue::from_str(text).ok()
    } else {
        None
    }
}

/// Replaces any header of the same name with the given identity headers.
pub fn apply_headers(req: &mut RequestHeader, headers: &[(HeaderName, HeaderValue)]) {
    for (name, value) in headers {
        // insert_header only fails on invalid names/values, which these are not.
        let _ = req.insert_header(name, value.clone());
    }
}

/// The request id to use: the client's when it is short, visible ASCII (kept without a copy),
/// else a fresh one.
pub fn request_id(client: Option<&HeaderValue>) -> HeaderValue {
    match client {
        Some(v)
            if !v.is_empty()
                && v.len() <= MAX_REQUEST_ID_LEN
                && v.as_bytes().iter().all(|b| (0x21..=0x7e).contains(b)) =>
        {
            v.clone()
        }
        _ => new_request_id(),
    }
}

/// A request id as text (it is visible ASCII by construction).
pub fn request_id_str(id: &HeaderValue) -> &str {
    id.to_str().unwrap_or("-")
}

static SEED: LazyLock<RandomState> = LazyLock::new(RandomState::new);
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// 128 bits of hex, unique per process (random seed + counter); not a secret.
pub fn new_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut a = SEED.build_hasher();
    a.write_u64(n);
    let mut b = SEED.build_hasher();
    b.write_u64(!n);
    let bits = (u128::from(a.finish()) << 64) | u128::from(b.finish());
    let mut text = [0u8; 32];
    for (i, c) in text.iter_mut().enumerate() {
        let nibble = (bits >> (124 - 4 * i)) & 0xf;
        *c = HEX.get(nibble as usize).copied().unwrap_or(b'0');
    }
    HeaderValue::from_maybe_shared(Bytes::copy_from_slice(&text))
        .unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// The client address as a header value; IPv4 is written by hand (the usual case, and
/// `Display` for addresses is slow).
fn ip_value(ip: IpAddr) -> Option<HeaderValue> {
    let IpAddr::V4(v4) = ip else {
        return header_value(&ip.to_string());
    };
    let mut text = [0u8; 15];
    let mut len = 0;
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            *text.get_mut(len)? = b'.';
            len += 1;
        }
        let digits = [octet / 100, octet / 10 % 10, octet % 10];
        let skip = if octet >= 100 {
            0
        } else if octet >= 10 {
            1
        } else {
            2
        };
        for d in digits.iter().skip(skip) {
            *text.get_mut(len)? = b'0' + d;
            len += 1;
        }
    }
    HeaderValue::from_maybe_shared(Bytes::copy_from_slice(text.get(..len)?)).ok()
}

/// Sets `X-Forwarded-For` (client address appended to any existing list),
/// `X-Forwarded-Proto` and `X-Forwarded-Host` (both replaced).
pub fn set_forwarded(req: &mut RequestHeader, client: Option<IpAddr>, tls: bool) {
    if let Some(ip) = client {
        let prior = req.headers.get_all("x-forwarded-for");
        let prior: Vec<&str> = prior.iter().filter_map(|v| v.to_str().ok()).collect();
        let xff = if prior.is_empty() {
            ip_value(ip)
        } else {
            header_value(&format!("{}, {ip}", prior.join(", ")))
        };
        if let Some(v) = xff {
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

/// Whether a response switches to WebSocket: its `Upgrade` is exactly one protocol, `websocket`
/// (case-insensitive, any version suffix refused).
pub fn upgrades_to_websocket(resp: &pingora::http::ResponseHeader) -> bool {
    let mut values = resp.headers.get_all(http::header::UPGRADE).iter();
    match (values.next(), values.next()) {
        (Some(v), None) => v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"websocket"),
        _ => false,
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
