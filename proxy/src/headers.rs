//! Pure header work on the request sent upstream: identity scrubbing and injection
//! ([`identity`]), request ids, `X-Forwarded-*`, and the request-head size.
//!
//! Nothing here does I/O; the gate calls these from `upstream_request_filter`.

mod identity;

pub use identity::{
    HeaderError, IdentityHeaders, IdentityNames, IdentityView, RouteHeaderNames, SlotNames,
    identity_headers, route_claim_headers,
};

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use pingora::http::RequestHeader;

/// Name of the request-id header, kept from the client when well formed.
pub const REQUEST_ID: &str = poolgate_policies::reserved::REQUEST_ID;

/// Parsed names for lookups (by `&str` the name is parsed on every call). pingora's
/// `insert_header` takes the `&'static str`: from a `HeaderName` it would build a title-cased
/// copy.
pub const REQUEST_ID_NAME: HeaderName = HeaderName::from_static(REQUEST_ID);
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Longest client-sent request id that is kept as is.
const MAX_REQUEST_ID_LEN: usize = 128;

// Header names equal once `_` is read as `-`: many backends (CGI, WSGI, Rack, PHP) map both
// to `HTTP_X_AUTH_SUB`, so either spelling is the same header. The forwarding headers' `-`
// spelling is replaced (or appended to); any spelling with `_` is removed.
use poolgate_policies::reserved::{
    OVERRIDE_HEADERS, SET_HEADERS, SIGNED_IDENTITY_PREFIX, folded_eq, folded_starts_with,
};

/// Removes every header named `prefix…` in any mix of `-` and `_` (case-insensitive), the
/// route's claim headers (`(header, claim)` pairs) under the same folding, every
/// `x-amzn-oidc-*` header (poolgate's signed identity is the only one a backend may get), the
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
            let same = |other: &str| folded_eq(n, other);
            folded_starts_with(n, prefix)
                || folded_starts_with(n, SIGNED_IDENTITY_PREFIX)
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

/// Sets `X-Forwarded-For` (the client address, appended to the list a trusted proxy sent, else
/// replacing whatever the client sent), `X-Forwarded-Proto` and `X-Forwarded-Host` (both
/// replaced; the host is the judged one).
pub fn set_forwarded(
    req: &mut RequestHeader,
    client: Option<IpAddr>,
    tls: bool,
    host: HeaderValue,
    trusted_peer: bool,
) {
    if !trusted_peer && req.headers.contains_key(&X_FORWARDED_FOR) {
        req.remove_header(&X_FORWARDED_FOR);
    }
    if let Some(ip) = client {
        let prior = req.headers.get_all(&X_FORWARDED_FOR);
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
    // A trusted proxy that terminated TLS says so (`http` or `https`, one value); anyone
    // else's claim, or anything else, is replaced.
    let mut protos = req.headers.get_all(&X_FORWARDED_PROTO).iter();
    let trusted_proto = match (protos.next(), protos.next()) {
        (Some(v), None) => {
            v.as_bytes().eq_ignore_ascii_case(b"https")
                || v.as_bytes().eq_ignore_ascii_case(b"http")
        }
        _ => false,
    };
    if !(trusted_peer && trusted_proto) {
        let _ = req.insert_header("x-forwarded-proto", if tls { "https" } else { "http" });
    }
    let _ = req.insert_header("x-forwarded-host", host);
}

/// Joins several `cookie` fields into one, separated by `; ` (RFC 9113 §8.2.3): HTTP/2 clients
/// split cookies into fields of their own, and an HTTP/1.1 backend may read only the first.
pub fn join_cookies(req: &mut RequestHeader) {
    let mut fields = req.headers.get_all(http::header::COOKIE).iter();
    if fields.next().is_none() || fields.next().is_none() {
        return;
    }
    let mut joined = Vec::new();
    for (i, v) in req.headers.get_all(http::header::COOKIE).iter().enumerate() {
        if i > 0 {
            joined.extend_from_slice(b"; ");
        }
        joined.extend_from_slice(v.as_bytes());
    }
    if let Ok(v) = HeaderValue::from_maybe_shared(Bytes::from(joined)) {
        let _ = req.insert_header(http::header::COOKIE, v);
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
    // On bytes: the header is about a kilobyte, and this runs on every request.
    let raw = authorization?.trim_ascii();
    let split = raw.iter().position(|b| *b == b' ')?;
    let (scheme, token) = (raw.get(..split)?, raw.get(split + 1..)?.trim_ascii());
    if !scheme.eq_ignore_ascii_case(b"bearer") || token.is_empty() || !token.is_ascii() {
        return None;
    }
    std::str::from_utf8(token).ok()
}

#[cfg(test)]
mod tests;
