//! The signing keys: the first signs, every one is published (JWKS and per-`kid` PEM), so a
//! backend already holds a new key when it starts signing.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use poolgate_policies::model::SigningKey;
use serde_json::json;

/// A key that cannot sign (the policy checked it; a file changed between check and start).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("signing key `{kid}`: {why}")]
pub struct KeyError {
    pub kid: String,
    pub why: &'static str,
}

/// A published public key.
#[derive(Debug)]
struct Published {
    kid: String,
    pem: Bytes,
}

/// The keys of one configuration.
#[derive(Debug)]
pub struct Keys {
    kid: String,
    pair: EcdsaKeyPair,
    published: Vec<Published>,
    jwks: Bytes,
}

impl Keys {
    /// From the policy's keys; the first signs. `keys` must not be empty.
    pub fn new(keys: &[SigningKey]) -> Result<Keys, KeyError> {
        let mut pairs = Vec::with_capacity(keys.len());
        let mut jwks = Vec::with_capacity(keys.len());
        let mut published = Vec::with_capacity(keys.len());
        for k in keys {
            let err = |why| KeyError {
                kid: k.kid.clone(),
                why,
            };
            let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &k.pkcs8)
                .map_err(|_| err("not a P-256 PKCS#8 key"))?;
            let point = pair.public_key().as_ref();
            let (Some(x), Some(y)) = (point.get(1..33), point.get(33..65)) else {
                return Err(err("not an uncompressed P-256 point"));
            };
            jwks.push(json!({
                "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": k.kid,
                "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
            }));
            let spki = pair
                .public_key()
                .as_der()
                .map_err(|_| err("the public key cannot be exported"))?;
            published.push(Published {
                kid: k.kid.clone(),
                pem: Bytes::from(pem("PUBLIC KEY", spki.as_ref())),
            });
            pairs.push(pair);
        }
        let (Some(first), Some(pair)) = (keys.first(), pairs.into_iter().next()) else {
            return Err(KeyError {
                kid: String::new(),
                why: "no key",
            });
        };
        Ok(Keys {
            kid: first.kid.clone(),
            pair,
            published,
            jwks: Bytes::from(json!({ "keys": jwks }).to_string()),
        })
    }

    /// The `kid` that signs.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// ES256 over `message`: the 64-byte `R‖S` form JOSE uses.
    pub fn sign(&self, message: &[u8]) -> Option<Vec<u8>> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        self.pair
            .sign(&rng, message)
            .ok()
            .map(|s| s.as_ref().to_vec())
    }

    /// Every published key as a JWKS.
    pub fn jwks(&self) -> Bytes {
        self.jwks.clone()
    }

    /// The public key `kid` as a PEM `SubjectPublicKeyInfo`, as ALB's key endpoint serves it.
    pub fn pem(&self, kid: &str) -> Option<Bytes> {
        self.published
            .iter()
            .find(|p| p.kid == kid)
            .map(|p| p.pem.clone())
    }
}

/// `der` as PEM with the given label, 64 characters a line.
fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
