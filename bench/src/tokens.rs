//! Minting: users spread over groups, tokens signed by the local test issuer's key or by a key
//! file (`--issuer-key`, for a poolgate that is already running), many at once on every core,
//! and the issuer's public key as PEM for HAProxy's `jwt_verify`.

use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_SHA256, RsaKeyPair, RsaPublicKeyComponents};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use poolgate_authorizer::testutil::{Claims, TestKey, unix_now};
use serde_json::{Value, json};

/// The groups of user `i`: mostly readers, some editors, a few admins and some in two groups,
/// as a user pool would have them. Every one of these groups may read `/articles/**`.
pub fn groups_of(i: usize) -> &'static [&'static str] {
    match i % 10 {
        0..=5 => &["readers"],
        6 | 7 => &["editors"],
        8 => &["admin"],
        _ => &["readers", "editors"],
    }
}

pub fn user_name(i: usize) -> String {
    format!("user{i:06}")
}

enum Signer {
    Test(Arc<TestKey>),
    File { key: RsaKeyPair, kid: String },
}

/// Signs Cognito-shaped access tokens for one issuer and app client.
pub struct Minter {
    pub issuer: String,
    pub client_id: String,
    signer: Signer,
}

impl Minter {
    /// Mints with a test key (the local issuer's, or one it does not publish).
    pub fn with_test_key(issuer: &str, client_id: &str, key: Arc<TestKey>) -> Minter {
        Minter {
            issuer: issuer.to_owned(),
            client_id: client_id.to_owned(),
            signer: Signer::Test(key),
        }
    }

    /// Mints RS256 with a PEM private key file (PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`).
    pub fn from_key_file(
        path: &std::path::Path,
        kid: &str,
        issuer: &str,
        client_id: &str,
    ) -> Result<Minter, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let body: String = text
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<Vec<_>>()
            .concat();
        let der = STANDARD
            .decode(body.trim())
            .map_err(|e| format!("{}: not PEM: {e}", path.display()))?;
        let key = if text.contains("BEGIN RSA PRIVATE KEY") {
            RsaKeyPair::from_der(&der)
        } else {
            RsaKeyPair::from_pkcs8(&der)
        }
        .map_err(|e| format!("{}: not an RSA private key: {e}", path.display()))?;
        Ok(Minter {
            issuer: issuer.to_owned(),
            client_id: client_id.to_owned(),
            signer: Signer::File {
                key,
                kid: kid.to_owned(),
            },
        })
    }

    pub fn kid(&self) -> &str {
        match &self.signer {
            Signer::Test(k) => &k.kid,
            Signer::File { kid, .. } => kid,
        }
    }

    /// Access-token claims of user `i` (valid for an hour from now).
    pub fn claims(&self, i: usize) -> Claims {
        Claims::access(
            &self.issuer,
            &self.client_id,
            &user_name(i),
            groups_of(i),
            &["bench/read"],
            unix_now(),
        )
    }

    /// A valid access token of user `i` (a new `jti` each call: never the same token twice).
    pub fn access(&self, i: usize) -> String {
        self.sign(&self.claims(i).into_value())
    }

    /// User `i`'s token, expired a minute ago.
    pub fn expired(&self, i: usize) -> String {
        let now = unix_now();
        let c = self
            .claims(i)
            .set("exp", json!(now.saturating_sub(60)))
            .set("iat", json!(now.saturating_sub(3660)))
            .set("auth_time", json!(now.saturating_sub(3660)));
        self.sign(&c.into_value())
    }

    pub fn sign(&self, claims: &Value) -> String {
        match &self.signer {
            Signer::Test(k) => k.sign_claims(claims),
            Signer::File { key, kid } => {
                let header = json!({"alg": "RS256", "kid": kid, "typ": "JWT"});
                let input = format!(
                    "{}.{}",
                    URL_SAFE_NO_PAD.encode(header.to_string()),
                    URL_SAFE_NO_PAD.encode(claims.to_string())
                );
                let mut sig = vec![0; key.public_modulus_len()];
                let _ = key.sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    input.as_bytes(),
                    &mut sig,
                );
                format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
            }
        }
    }

    /// The public key as a PEM `PUBLIC KEY` (X.509 SubjectPublicKeyInfo), as HAProxy reads it.
    pub fn public_pem(&self) -> Result<String, String> {
        let (n, e) = match &self.signer {
            Signer::Test(k) => {
                let jwk = k.jwk();
                let field = |f: &str| {
                    jwk.get(f)
                        .and_then(Value::as_str)
                        .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
                        .ok_or_else(|| format!("test key has no RSA `{f}`"))
                };
                (field("n")?, field("e")?)
            }
            Signer::File { key, .. } => {
                let c = RsaPublicKeyComponents::<Vec<u8>>::from(key.public_key());
                (c.n, c.e)
            }
        };
        let der = RsaPublicKeyComponents { n, e }
            .as_der()
            .map_err(|_| "cannot encode the public key".to_owned())?;
        Ok(poolgate_authorizer::testutil::pem(
            "PUBLIC KEY",
            der.as_ref(),
        ))
    }
}

/// Makes `n` items with `f(i)` on every core (RSA signing is ~1 ms a token).
pub fn par_map<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |t| t.get())
        .min(n.max(1));
    let chunk = n.div_ceil(threads);
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let lo = t * chunk;
                    let hi = (lo + chunk).min(n);
                    (lo..hi).map(f).collect::<Vec<T>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// Flips a character of the signature: a well-formed token that fails verification.
pub fn tamper(token: &str) -> String {
    let mut t = token.to_owned();
    // The third-to-last character is fully inside the signature; A<->B keeps it base64url.
    let at = t.len().saturating_sub(3);
    if let Some(c) = t.get(at..=at) {
        let swapped = if c == "A" { "B" } else { "A" };
        t.replace_range(at..=at, swapped);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};

    fn minter() -> Minter {
        let key = Arc::new(TestKey::rsa("k1").unwrap());
        Minter::with_test_key("http://127.0.0.1:1/pool", "client", key)
    }

    #[test]
    fn tokens_are_distinct_and_carry_groups() {
        let m = minter();
        let (a, b) = (m.access(8), m.access(8));
        assert_ne!(a, b);
        let payload = a.split('.').nth(1).unwrap();
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert_eq!(claims["cognito:groups"], json!(["admin"]));
        assert_eq!(claims["iss"], "http://127.0.0.1:1/pool");
        assert_ne!(tamper(&a), a);
        assert_eq!(tamper(&a).len(), a.len());
    }

    #[test]
    fn public_pem_verifies_the_tokens_signature() {
        let m = minter();
        let pem_text = m.public_pem().unwrap();
        assert!(pem_text.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        let body: String = pem_text
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let spki = STANDARD.decode(body).unwrap();
        let t = m.access(1);
        let (input, sig) = t.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        let key = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &spki);
        assert!(key.verify(input.as_bytes(), &sig).is_ok());
        assert!(key.verify(b"other", &sig).is_err());
    }

    #[test]
    fn par_map_keeps_order() {
        assert_eq!(par_map(7, |i| i * 2), vec![0, 2, 4, 6, 8, 10, 12]);
        assert!(par_map(0, |i| i).is_empty());
    }
}
