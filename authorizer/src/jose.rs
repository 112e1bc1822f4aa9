//! Splitting and decoding a JWS compact token: bounded, strict, no signature check yet.

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::AuthError;
use crate::keys::b64_decode;

/// A token split into its parts, header and claims parsed, signature not yet checked.
#[derive(Debug)]
pub struct Decoded<'a> {
    /// The header's `alg`, as written.
    pub alg: String,
    /// The header's `kid`, if any.
    pub kid: Option<String>,
    /// The header's `typ`, if any.
    pub typ: Option<String>,
    /// The claims object.
    pub claims: Map<String, Value>,
    /// `header.payload`, the bytes the signature covers.
    pub signing_input: &'a [u8],
    /// The decoded signature.
    pub signature: Vec<u8>,
}

impl Decoded<'_> {
    /// The `iss` claim (`decode` guarantees it is a string).
    pub fn iss(&self) -> &str {
        self.claims.get("iss").and_then(Value::as_str).unwrap_or("")
    }
}

/// True for `alg` values that are never accepted from a JWKS issuer, whatever the config:
/// `none` in any casing and every HMAC algorithm.
pub fn is_forbidden_alg(alg: &str) -> bool {
    alg.eq_ignore_ascii_case("none") || alg.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("hs"))
}

/// Splits and decodes a compact JWS. Checks, in order: non-empty (`Missing`), length cap, three
/// non-empty base64url segments, header and claims are JSON objects without duplicate members,
/// header `alg` is a string and not `none`/HMAC (`UnsupportedAlg`), `kid`/`typ` are strings when
/// present, no `crit`, and the claims carry a string `iss`.
pub fn decode(token: &str, max_len: usize) -> Result<Decoded<'_>, AuthError> {
    if token.is_empty() {
        return Err(AuthError::Missing);
    }
    if token.len() > max_len {
        return Err(AuthError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h64), Some(p64), Some(s64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed);
    };
    if h64.is_empty() || p64.is_empty() || s64.is_empty() {
        return Err(AuthError::Malformed);
    }
    let signing_input = token
        .get(..h64.len() + 1 + p64.len())
        .ok_or(AuthError::Malformed)?
        .as_bytes();

    let header = parse_object(&b64_decode(h64).ok_or(AuthError::Malformed)?)?;
    let alg = match header.get("alg") {
        Some(Value::String(a)) => a.clone(),
        _ => return Err(AuthError::Malformed),
    };
    if is_forbidden_alg(&alg) {
        return Err(AuthError::UnsupportedAlg);
    }
    // No JWS extension is understood, so any `crit` must be refused (RFC 7515 §4.1.11).
    if header.contains_key("crit") {
        return Err(AuthError::Malformed);
    }
    let kid = optional_string(&header, "kid")?;
    let typ = optional_string(&header, "typ")?;
    // `jku`, `x5u`, `jwk` and `x5c` are deliberately never read: keys come from the JWKS only.

    let claims = parse_object(&b64_decode(p64).ok_or(AuthError::Malformed)?)?;
    if !matches!(claims.get("iss"), Some(Value::String(_))) {
        return Err(AuthError::Malformed);
    }
    let signature = b64_decode(s64).ok_or(AuthError::Malformed)?;
    Ok(Decoded {
        alg,
        kid,
        typ,
        claims,
        signing_input,
        signature,
    })
}

fn optional_string(map: &Map<String, Value>, name: &str) -> Result<Option<String>, AuthError> {
    match map.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(AuthError::Malformed),
    }
}

/// Parses a JSON object, refusing duplicate top-level members (two parsers could disagree on
/// which one counts). Depth is bounded by serde_json's recursion limit, size by the length cap.
fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, AuthError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let map = (&mut de)
        .deserialize_map(StrictObject)
        .map_err(|_| AuthError::Malformed)?;
    de.end().map_err(|_| AuthError::Malformed)?;
    Ok(map)
}

struct StrictObject;

impl<'de> Visitor<'de> for StrictObject {
    type Value = Map<String, Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object without duplicate members")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        let mut map = Map::new();
        while let Some((key, value)) = access.next_entry::<String, Value>()? {
            match map.entry(key) {
                serde_json::map::Entry::Vacant(slot) => {
                    slot.insert(value);
                }
                serde_json::map::Entry::Occupied(_) => {
                    return Err(serde::de::Error::custom("duplicate member"));
                }
            }
        }
        Ok(map)
    }
}
