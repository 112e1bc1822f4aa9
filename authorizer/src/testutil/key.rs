//! Signing keys for tests: generation, JWK export, token signing.
//!
//! Ordinary tokens are signed by jsonwebtoken (`encode` with an `EncodingKey` exported from the
//! generated key); hostile ones, whose header jsonwebtoken's typed `Header` cannot express
//! (duplicate members, odd `alg` values, `crit`...), by the hand-made signer of `sign_token`.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, RsaPublicKeyComponents,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};

use crate::config::Algorithm;

enum Inner {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A private signing key with its `kid` and algorithm.
pub struct TestKey {
    /// The key id written in the JWK and in token headers.
    pub kid: String,
    /// The algorithm this key signs with.
    pub alg: Algorithm,
    inner: Inner,
    /// The same private key, for `jsonwebtoken::encode`.
    encoding: EncodingKey,
}

impl std::fmt::Debug for TestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// Errors of key generation (practically never).
#[derive(Debug, thiserror::Error)]
#[error("key generation failed")]
pub struct KeyGenError;

impl TestKey {
    /// A new RSA-2048 key for RS256, like Cognito's.
    pub fn rsa(kid: &str) -> Result<TestKey, KeyGenError> {
        TestKey::generate(kid, Algorithm::RS256)
    }

    /// A new key for `alg` (RSA-2048 for RS*/PS*, P-256/P-384 for ES*, Ed25519 for EdDSA).
    pub fn generate(kid: &str, alg: Algorithm) -> Result<TestKey, KeyGenError> {
        let inner = match alg {
            Algorithm::ES256 => Inner::Ec(
                EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(|_| KeyGenError)?,
            ),
            Algorithm::ES384 => Inner::Ec(
                EcdsaKeyPair::generate(&signature::ECDSA_P384_SHA384_FIXED_SIGNING)
                    .map_err(|_| KeyGenError)?,
            ),
            Algorithm::EdDSA => Inner::Ed(Ed25519KeyPair::generate().map_err(|_| KeyGenError)?),
            _ => Inner::Rsa(
                RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).map_err(|_| KeyGenError)?,
            ),
        };
        let encoding = encoding_key(&inner)?;
        let key = TestKey {
            kid: kid.to_owned(),
            alg,
            inner,
            encoding,
        };
        // jsonwebtoken must accept the exported key: fail here rather than mint empty tokens.
        key.encode(&json!({}))?;
        Ok(key)
    }

    /// The public JWK, as a JWKS would list it (`kid`, `alg`, `use: sig`).
    pub fn jwk(&self) -> Value {
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        match &self.inner {
            Inner::Rsa(kp) => {
                let c = RsaPublicKeyComponents::<Vec<u8>>::from(kp.public_key());
                json!({"kty": "RSA", "kid": self.kid, "alg": self.alg.name(), "use": "sig",
                       "n": b64(&c.n), "e": b64(&c.e)})
            }
            Inner::Ec(kp) => {
                let point = kp.public_key().as_ref();
                let len = (point.len().saturating_sub(1)) / 2;
                let x = point.get(1..1 + len).unwrap_or_default();
                let y = point.get(1 + len..).unwrap_or_default();
                let crv = if self.alg == Algorithm::ES256 {
                    "P-256"
                } else {
                    "P-384"
                };
                json!({"kty": "EC", "kid": self.kid, "alg": self.alg.name(), "use": "sig",
                       "crv": crv, "x": b64(x), "y": b64(y)})
            }
            Inner::Ed(kp) => json!({"kty": "OKP", "kid": self.kid, "alg": "EdDSA", "use": "sig",
                                    "crv": "Ed25519", "x": b64(kp.public_key().as_ref())}),
        }
    }

    /// Signs `message` with this key's algorithm. Empty on the (never seen) failure.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.inner {
            Inner::Rsa(kp) => {
                let enc: &'static dyn signature::RsaEncoding = match self.alg {
                    Algorithm::RS384 => &signature::RSA_PKCS1_SHA384,
                    Algorithm::RS512 => &signature::RSA_PKCS1_SHA512,
                    Algorithm::PS256 => &signature::RSA_PSS_SHA256,
                    Algorithm::PS384 => &signature::RSA_PSS_SHA384,
                    Algorithm::PS512 => &signature::RSA_PSS_SHA512,
                    _ => &signature::RSA_PKCS1_SHA256,
                };
                let mut sig = vec![0; kp.public_modulus_len()];
                match kp.sign(enc, &rng, message, &mut sig) {
                    Ok(()) => sig,
                    Err(_) => Vec::new(),
                }
            }
            Inner::Ec(kp) => kp
                .sign(&rng, message)
                .map(|s| s.as_ref().to_vec())
                .unwrap_or_default(),
            Inner::Ed(kp) => kp.sign(message).as_ref().to_vec(),
        }
    }

    /// A compact JWS of `claims` under the default header (`typ: JWT`, `alg`, `kid`), signed by
    /// jsonwebtoken. Empty on the (never seen, and checked at key generation) failure.
    pub fn sign_claims(&self, claims: &Value) -> String {
        self.encode(claims).unwrap_or_default()
    }

    fn encode(&self, claims: &Value) -> Result<String, KeyGenError> {
        let mut header = Header::new(jwt_algorithm(self.alg));
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(|_| KeyGenError)
    }

    /// A compact JWS of arbitrary `header` and `claims` JSON, signed with this key whatever the
    /// header says (for hostile-token tests).
    pub fn sign_token(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
}

/// jsonwebtoken's name for an algorithm.
fn jwt_algorithm(alg: Algorithm) -> jsonwebtoken::Algorithm {
    use jsonwebtoken::Algorithm as J;
    match alg {
        Algorithm::RS256 => J::RS256,
        Algorithm::RS384 => J::RS384,
        Algorithm::RS512 => J::RS512,
        Algorithm::PS256 => J::PS256,
        Algorithm::PS384 => J::PS384,
        Algorithm::PS512 => J::PS512,
        Algorithm::ES256 => J::ES256,
        Algorithm::ES384 => J::ES384,
        Algorithm::EdDSA => J::EdDSA,
    }
}

/// The private key as jsonwebtoken takes it: PKCS#8 for EC and Ed25519; for RSA, jsonwebtoken
/// wants PKCS#1 DER, which aws-lc-rs does not export, so the PKCS#8 document goes through its
/// PEM reader (feature `use_pem`), which unwraps it.
fn encoding_key(inner: &Inner) -> Result<EncodingKey, KeyGenError> {
    match inner {
        Inner::Rsa(kp) => {
            let der = kp.as_der().map_err(|_| KeyGenError)?;
            EncodingKey::from_rsa_pem(pem("PRIVATE KEY", der.as_ref()).as_bytes())
                .map_err(|_| KeyGenError)
        }
        Inner::Ec(kp) => {
            let doc = kp.to_pkcs8v1().map_err(|_| KeyGenError)?;
            Ok(EncodingKey::from_ec_der(doc.as_ref()))
        }
        Inner::Ed(kp) => {
            let doc = kp.to_pkcs8().map_err(|_| KeyGenError)?;
            Ok(EncodingKey::from_ed_der(doc.as_ref()))
        }
    }
}

/// `der` as PEM text with the given label (`PRIVATE KEY`, `PUBLIC KEY`…), 64 characters a line.
pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A new P-256 private key as PKCS#8 PEM: a signing key for the signed identity.
pub fn p256_private_key_pem() -> Result<String, KeyGenError> {
    let der = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
        .and_then(|kp| kp.to_pkcs8v1())
        .map_err(|_| KeyGenError)?;
    Ok(pem("PRIVATE KEY", der.as_ref()))
}

/// A JWKS document (`{"keys": [...]}`) of the given keys' public JWKs.
pub fn jwks_of<'a>(keys: impl IntoIterator<Item = &'a TestKey>) -> Value {
    json!({"keys": keys.into_iter().map(TestKey::jwk).collect::<Vec<_>>()})
}
