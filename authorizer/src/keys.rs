//! A key set: a JWKS document parsed once into ready-to-use verification keys.
//!
//! Each JWK is read into jsonwebtoken's typed [`Jwk`], then becomes an aws-lc-rs
//! `ParsedPublicKey` per algorithm it may verify, so a request pays for the signature check only,
//! never for key parsing.

use std::collections::HashMap;

use aws_lc_rs::signature::{self, ParsedPublicKey, RsaPublicKeyComponents};
use base64::Engine;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use serde_json::value::RawValue;

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
    /// The public key's members as published (type, curve, coordinates or modulus and
    /// exponent), to tell a key that changed under the same `kid`.
    material: String,
}

impl Key {
    /// Whether `other` verifies exactly what `self` does.
    fn same_as(&self, other: &Key) -> bool {
        self.material == other.material
            && self
                .verifiers
                .iter()
                .map(|(a, _)| a)
                .eq(other.verifiers.iter().map(|(a, _)| a))
    }
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
    ///
    /// Each member of `keys` is read into a [`Jwk`] on its own: jsonwebtoken's `JwkSet` refuses
    /// the whole document when one key has a member of an unexpected JSON type (`"alg": 7`),
    /// where a JWKS reader must skip that key and keep the others.
    pub fn from_jwks(document: &[u8], allowed: &[Algorithm]) -> Result<KeySet, FetchError> {
        #[derive(serde::Deserialize)]
        struct Jwks<'a> {
            #[serde(borrow)]
            keys: Vec<&'a RawValue>,
        }
        let jwks: Jwks<'_> = serde_json::from_slice(document)
            .map_err(|e| FetchError::BadDocument(format!("not a JWKS document: {e}")))?;
        let mut set = KeySet::default();
        let mut duplicated: Vec<String> = Vec::new();
        for raw in jwks.keys {
            let usable = serde_json::from_str::<Jwk>(raw.get())
                .ok()
                .and_then(|jwk| parse_jwk(jwk, allowed));
            match usable {
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

    /// True when a token `self` accepts may be refused by `newer`: some `kid` of `self` is
    /// missing from `newer`, or names other key material or other algorithms there.
    pub fn loses_keys_in(&self, newer: &KeySet) -> bool {
        self.keys
            .iter()
            .any(|(kid, key)| newer.keys.get(kid).is_none_or(|n| !key.same_as(n)))
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

fn decode_member(value: &str) -> Option<Vec<u8>> {
    JWK_B64.decode(value).ok()
}

/// Our algorithm for a JWK `alg`; `None` for everything else (HMAC, encryption, unknown names).
fn algorithm_of(alg: KeyAlgorithm) -> Option<Algorithm> {
    Some(match alg {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

/// Whether a key of this type (`kty`) and curve (`crv`) can verify `alg`.
fn fits(alg: Algorithm, params: &AlgorithmParameters) -> bool {
    match params {
        AlgorithmParameters::RSA(_) => alg.key_type() == "RSA",
        AlgorithmParameters::EllipticCurve(ec) => matches!(
            (alg, &ec.curve),
            (Algorithm::ES256, EllipticCurve::P256) | (Algorithm::ES384, EllipticCurve::P384)
        ),
        AlgorithmParameters::OctetKeyPair(okp) => {
            alg == Algorithm::EdDSA && okp.curve == EllipticCurve::Ed25519
        }
        // Symmetric (`oct`) keys and key types jsonwebtoken does not know.
        _ => false,
    }
}

fn parse_jwk(jwk: Jwk, allowed: &[Algorithm]) -> Option<(String, Key)> {
    let common = jwk.common;
    let kid = common.key_id?;
    // `use` other than `sig`, or `key_ops` without `verify`, mean: not a signature key.
    match common.public_key_use {
        None | Some(PublicKeyUse::Signature) => {}
        Some(_) => return None,
    }
    if let Some(ops) = &common.key_operations
        && !ops.contains(&KeyOperations::Verify)
    {
        return None;
    }
    // A JWK that names its algorithm may verify that one only, and only if it is allowed and fits
    // the key's type and curve; otherwise every allowed algorithm that fits the key.
    let candidates: Vec<Algorithm> = match common.key_algorithm {
        None => allowed
            .iter()
            .copied()
            .filter(|a| fits(*a, &jwk.algorithm))
            .collect(),
        Some(named) => {
            let alg = algorithm_of(named)?;
            if !fits(alg, &jwk.algorithm) || !allowed.contains(&alg) {
                return None;
            }
            vec![alg]
        }
    };
    let mut verifiers = Vec::with_capacity(candidates.len());
    for alg in candidates {
        verifiers.push((alg, parse_key(&jwk.algorithm, alg)?));
    }
    if verifiers.is_empty() {
        return None;
    }
    let material = match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => format!("RSA {} {}", rsa.n, rsa.e),
        AlgorithmParameters::EllipticCurve(ec) => format!("EC {:?} {} {}", ec.curve, ec.x, ec.y),
        AlgorithmParameters::OctetKeyPair(okp) => format!("OKP {:?} {}", okp.curve, okp.x),
        _ => return None,
    };
    Some((
        kid,
        Key {
            verifiers,
            material,
        },
    ))
}

/// Builds the verification key for `alg` (which `fits` the parameters) from the JWK material.
fn parse_key(params: &AlgorithmParameters, alg: Algorithm) -> Option<ParsedPublicKey> {
    match params {
        AlgorithmParameters::RSA(rsa) => {
            let params: &'static signature::RsaParameters = match alg {
                Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
                Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
                Algorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
                _ => return None,
            };
            let n = decode_member(&rsa.n)?;
            let e = decode_member(&rsa.e)?;
            // Below 2048 bits is refused outright rather than at each verification.
            let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
            if bits < 2048 {
                return None;
            }
            RsaPublicKeyComponents { n: &n, e: &e }
                .to_parsed_public_key(params)
                .ok()
        }
        AlgorithmParameters::EllipticCurve(ec) => {
            let (len, verifier): (usize, &'static dyn signature::VerificationAlgorithm) = match alg
            {
                Algorithm::ES256 => (32, &signature::ECDSA_P256_SHA256_FIXED),
                Algorithm::ES384 => (48, &signature::ECDSA_P384_SHA384_FIXED),
                _ => return None,
            };
            let x = decode_member(&ec.x)?;
            let y = decode_member(&ec.y)?;
            if x.len() != len || y.len() != len {
                return None;
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            ParsedPublicKey::new(verifier, point).ok()
        }
        AlgorithmParameters::OctetKeyPair(okp) if alg == Algorithm::EdDSA => {
            let x = decode_member(&okp.x)?;
            if x.len() != 32 {
                return None;
            }
            ParsedPublicKey::new(&signature::ED25519, x).ok()
        }
        _ => None,
    }
}

/// Base64url without padding, strict (tokens).
pub(crate) fn b64_decode(input: &str) -> Option<Vec<u8>> {
    general_purpose::URL_SAFE_NO_PAD.decode(input).ok()
}
