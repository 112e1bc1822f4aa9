//! A key set: a JWKS document parsed once into ready-to-use verification keys.
//!
//! Each JWK becomes an aws-lc-rs `ParsedPublicKey` per algorithm it may verify, so a request pays
//! for the signature check only, never for key parsing.

use std::collections::HashMap;

use aws_lc_rs::signature::{self, ParsedPublicKey, RsaPublicKeyComponents};
use base64::Engine;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use serde_json::Value;

use crate::config::Algorithm;
use crate::error::{AuthError, FetchError};

/// JWK members are base64url; tolerate padding there (some IdPs add it). Tokens are strict.
const JWK_B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// One key of the set: the algorithms it may verify, each with its parsed key.
struct Key {
    verifiers: Vec<(Algorithm, ParsedPublicKey)>,
}

/// The usable keys of one JWKS document, by `kid`.
#[derive(Default)]
pub struct KeySet {
    keys: HashMap<String, Key>,
    skipped: usize,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kids: Vec<&String> = self.keys.keys().collect();
        kids.sort();
        f.debug_struct("KeySet")
            .field("kids", &kids)
            .field("skipped", &self.skipped)
            .finish()
    }
}

impl KeySet {
    /// Parses a JWKS document (`{"keys": [...]}`), keeping the keys usable with `allowed`.
    ///
    /// Keys that are not for signatures, of an unknown type or algorithm, malformed, without a
    /// `kid`, or sharing a `kid` with another key are skipped (a shared `kid` is ambiguous, so
    /// neither key is used). A document with no usable key is an error.
    pub fn from_jwks(document: &[u8], allowed: &[Algorithm]) -> Result<KeySet, FetchError> {
        #[derive(serde::Deserialize)]
        struct Jwks {
            keys: Vec<Value>,
        }
        let jwks: Jwks = serde_json::from_slice(document)
            .map_err(|e| FetchError::BadDocument(format!("not a JWKS document: {e}")))?;
        let mut set = KeySet::default();
        let mut duplicated: Vec<String> = Vec::new();
        for jwk in &jwks.keys {
            match parse_jwk(jwk, allowed) {
                Some((kid, key)) => {
                    if set.keys.contains_key(&kid) || duplicated.contains(&kid) {
                        set.keys.remove(&kid);
                        set.skipped += 2;
                        duplicated.push(kid);
                    } else {
                        set.keys.insert(kid, key);
                    }
                }
                None => set.skipped += 1,
            }
        }
        if set.keys.is_empty() {
            return Err(FetchError::NoUsableKey);
        }
        Ok(set)
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no key is usable (never the case for a set built by `from_jwks`).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Number of JWKs that were skipped.
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// Whether a `kid` is in the set.
    pub fn contains(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    /// The key ids, sorted.
    pub fn kids(&self) -> Vec<&str> {
        let mut kids: Vec<&str> = self.keys.keys().map(String::as_str).collect();
        kids.sort_unstable();
        kids
    }

    /// True when some `kid` of `self` is missing from `newer`.
    pub fn loses_keys_in(&self, newer: &KeySet) -> bool {
        self.keys.keys().any(|k| !newer.keys.contains_key(k))
    }

    /// Verifies `signature` over `message` with the key `kid` for `alg`.
    pub fn verify(
        &self,
        kid: &str,
        alg: Algorithm,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), AuthError> {
        let key = self.keys.get(kid).ok_or(AuthError::UnknownKid)?;
        let (_, parsed) = key
            .verifiers
            .iter()
            .find(|(a, _)| *a == alg)
            .ok_or(AuthError::UnsupportedAlg)?;
        parsed
            .verify_sig(message, signature)
            .map_err(|_| AuthError::BadSignature)
    }
}

fn str_member<'a>(jwk: &'a Value, name: &str) -> Option<&'a str> {
    jwk.get(name).and_then(Value::as_str)
}

fn bytes_member(jwk: &Value, name: &str) -> Option<Vec<u8>> {
    JWK_B64.decode(str_member(jwk, name)?).ok()
}

fn parse_jwk(jwk: &Value, allowed: &[Algorithm]) -> Option<(String, Key)> {
    let kid = str_member(jwk, "kid")?.to_owned();
    let kty = str_member(jwk, "kty")?;
    // `use` other than `sig`, or `key_ops` without `verify`, mean: not a signature key.
    match jwk.get("use") {
        None => {}
        Some(Value::String(u)) if u == "sig" => {}
        Some(_) => return None,
    }
    if let Some(ops) = jwk.get("key_ops") {
        let verify = ops
            .as_array()
            .is_some_and(|ops| ops.iter().any(|o| o.as_str() == Some("verify")));
        if !verify {
            return None;
        }
    }
    // A JWK that names its algorithm may verify that one only; otherwise every allowed
    // algorithm of its key type.
    let candidates: Vec<Algorithm> = match jwk.get("alg") {
        None => allowed
            .iter()
            .copied()
            .filter(|a| a.key_type() == kty)
            .collect(),
        Some(Value::String(name)) => {
            let alg = Algorithm::from_name(name)?;
            if alg.key_type() != kty || !allowed.contains(&alg) {
                return None;
            }
            vec![alg]
        }
        Some(_) => return None,
    };
    let mut verifiers = Vec::with_capacity(candidates.len());
    for alg in candidates {
        verifiers.push((alg, parse_key(jwk, alg)?));
    }
    if verifiers.is_empty() {
        return None;
    }
    Some((kid, Key { verifiers }))
}

fn parse_key(jwk: &Value, alg: Algorithm) -> Option<ParsedPublicKey> {
    match alg {
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => {
            let params: &'static signature::RsaParameters = match alg {
                Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
                Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
                _ => &signature::RSA_PSS_2048_8192_SHA512,
            };
            let n = bytes_member(jwk, "n")?;
            let e = bytes_member(jwk, "e")?;
            // Below 2048 bits is refused outright rather than at each verification.
            let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
            if bits < 2048 {
                return None;
            }
            RsaPublicKeyComponents { n: &n, e: &e }
                .to_parsed_public_key(params)
                .ok()
        }
        Algorithm::ES256 | Algorithm::ES384 => {
            let (crv, len, verifier): (&str, usize, &'static dyn signature::VerificationAlgorithm) =
                if alg == Algorithm::ES256 {
                    ("P-256", 32, &signature::ECDSA_P256_SHA256_FIXED)
                } else {
                    ("P-384", 48, &signature::ECDSA_P384_SHA384_FIXED)
                };
            if str_member(jwk, "crv")? != crv {
                return None;
            }
            let x = bytes_member(jwk, "x")?;
            let y = bytes_member(jwk, "y")?;
            if x.len() != len || y.len() != len {
                return None;
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            ParsedPublicKey::new(verifier, point).ok()
        }
        Algorithm::EdDSA => {
            if str_member(jwk, "crv")? != "Ed25519" {
                return None;
            }
            let x = bytes_member(jwk, "x")?;
            if x.len() != 32 {
                return None;
            }
            ParsedPublicKey::new(&signature::ED25519, x).ok()
        }
    }
}

/// Base64url without padding, strict (tokens).
pub(crate) fn b64_decode(input: &str) -> Option<Vec<u8>> {
    general_purpose::URL_SAFE_NO_PAD.decode(input).ok()
}
