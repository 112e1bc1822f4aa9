//! `signed_identity:`: the keys poolgate signs backend assertions with, and their settings.
//!
//! The key files are read here, as CA bundles are, so that `poolgate check` reports a missing,
//! unreadable or wrong key where the file is named rather than when the proxy starts.

use super::Ctx;
use super::tls::{read_limited, resolve};
use crate::file::{S, SignedIdentityFile};
use crate::model::{SignedIdentity, SigningKey};
use aws_lc_rs::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use serde_saphyr::Spanned;
use std::time::Duration;

/// Largest key file read: a PEM key is well under 1 KiB.
const MAX_KEY_BYTES: u64 = 64 * 1024;
/// Longest assertion lifetime: a backend should not accept an identity older than this.
const MAX_TTL: Duration = Duration::from_secs(3600);
const DEFAULT_TTL: Duration = Duration::from_secs(60);

pub(super) fn signed_identity(
    ctx: &mut Ctx<'_>,
    f: &Spanned<SignedIdentityFile>,
) -> Option<SignedIdentity> {
    let key = "signed_identity";
    let s = &f.value;
    let mut keys: Vec<SigningKey> = Vec::new();
    let mut ok = true;
    if s.keys.is_empty() {
        ctx.push(
            ctx.diag(&f.referenced, &format!("{key}.keys"), "no signing key")
                .help("list at least one `{ kid: …, file: key.pem }` (a P-256 key in PEM)"),
        );
        ok = false;
    }
    for (i, k) in s.keys.iter().enumerate() {
        let kkey = format!("{key}.keys[{i}]");
        let kid = kid(ctx, &k.value.kid, &format!("{kkey}.kid"));
        if let Some(kid) = &kid
            && keys.iter().any(|k| k.kid == *kid)
        {
            ctx.error(
                &k.value.kid.referenced,
                &format!("{kkey}.kid"),
                format!("kid `{kid}` is listed twice"),
            );
            ok = false;
            continue;
        }
        let file = key_file(ctx, &k.value.file, &format!("{kkey}.file"));
        match (kid, file) {
            (Some(kid), Some((path, pkcs8, file_hash))) => keys.push(SigningKey {
                kid,
                path,
                pkcs8,
                file_hash,
            }),
            _ => ok = false,
        }
    }
    let signer = match &s.signer {
        None => Some("poolgate".to_owned()),
        Some(t) => ctx.text(t, &format!("{key}.signer")).filter(|v| {
            let fine = !v.is_empty() && v.len() <= 512 && v.bytes().all(|b| (0x20..0x7f).contains(&b));
            if !fine {
                ctx.push(
                    ctx.diag(&t.referenced, &format!("{key}.signer"), format!("invalid signer `{v}`"))
                        .help("1 to 512 visible ASCII characters, e.g. the ARN a backend written for ALB expects"),
                );
            }
            fine
        }),
    };
    let ttl = match &s.ttl {
        None => Some(DEFAULT_TTL),
        Some(t) => ctx.duration(Some(t), &format!("{key}.ttl")).filter(|d| {
            let fine = *d >= Duration::from_secs(1) && *d <= MAX_TTL;
            if !fine {
                ctx.push(
                    ctx.diag(&t.referenced, &format!("{key}.ttl"), "ttl out of range")
                        .help("between 1s and 1h"),
                );
            }
            fine
        }),
    };
    let publish_path = match &s.publish_path {
        None => Some(None),
        Some(p) => publish_path(ctx, p, &format!("{key}.publish_path")).map(Some),
    };
    Some(SignedIdentity {
        keys: ok.then_some(keys)?,
        signer: signer?,
        ttl: ttl?,
        publish_path: publish_path?,
    })
}

/// A key id: it is a URL path segment (`{publish_path}/{kid}`), so unreserved characters only.
fn kid(ctx: &mut Ctx<'_>, s: &S, key: &str) -> Option<String> {
    let text = ctx.text(s, key)?;
    let fine = !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        && text != "."
        && text != ".."
        && text != "jwks.json";
    if !fine {
        ctx.push(
            ctx.diag(&s.referenced, key, format!("invalid kid `{text}`"))
                .help("1 to 64 letters, digits, `-`, `.`, `_` or `~` (it is a path segment of the key URL)"),
        );
        return None;
    }
    Some(text)
}

fn publish_path(ctx: &mut Ctx<'_>, s: &S, key: &str) -> Option<String> {
    let text = ctx.text(s, key)?;
    let segments_fine = text.strip_prefix('/').is_some_and(|rest| {
        rest.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        })
    });
    if !segments_fine {
        ctx.push(
            ctx.diag(&s.referenced, key, format!("invalid publish_path `{text}`"))
                .help("an absolute path without a trailing `/`, e.g. `/.well-known/poolgate-identity`"),
        );
        return None;
    }
    Some(text)
}

/// The key file: resolved, read, and checked to hold a P-256 private key. Returns the path,
/// the key as PKCS#8 DER and the hash of the file's bytes.
fn key_file(ctx: &mut Ctx<'_>, s: &S, key: &str) -> Option<(std::path::PathBuf, Vec<u8>, u64)> {
    let written = ctx.text(s, key)?;
    let path = resolve(&ctx.file, &written);
    let result = read_limited(&path, MAX_KEY_BYTES).and_then(|bytes| {
        let hash = crate::content_hash(&bytes);
        p256_pkcs8(&bytes).map(|der| (der, hash))
    });
    match result {
        Ok((der, hash)) => Some((path, der, hash)),
        Err(problem) => {
            ctx.push(
                ctx.diag(
                    &s.referenced,
                    key,
                    format!("signing key `{}`: {problem}", path.display()),
                )
                .help(
                    "name a PEM file with an unencrypted P-256 private key (`openssl ecparam \
                     -name prime256v1 -genkey -noout -out key.pem`); a relative path is read \
                     from the directory of this policy file",
                ),
            );
            None
        }
    }
}

/// The P-256 private key in `pem` (SEC1 `EC PRIVATE KEY` or PKCS#8 `PRIVATE KEY`) as PKCS#8
/// DER, or what the file holds instead.
pub(crate) fn p256_pkcs8(pem: &[u8]) -> Result<Vec<u8>, String> {
    let key = PrivateKeyDer::from_pem_slice(pem)
        .map_err(|_| "no unencrypted private key in it".to_owned())?;
    let der = key.secret_der();
    if let Ok(pair) = EcdsaKeyPair::from_private_key_der(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, der)
    {
        return pair
            .to_pkcs8v1()
            .map(|d| d.as_ref().to_vec())
            .map_err(|_| "the key cannot be exported".to_owned());
    }
    let other = [
        ("P-384", &sig::ECDSA_P384_SHA384_FIXED_SIGNING),
        ("P-521", &sig::ECDSA_P521_SHA512_FIXED_SIGNING),
    ]
    .into_iter()
    .find(|(_, alg)| EcdsaKeyPair::from_private_key_der(alg, der).is_ok())
    .map(|(curve, _)| format!("an EC key on {curve}"));
    let found = other.or_else(|| {
        if matches!(key, PrivateKeyDer::Pkcs1(_)) || RsaKeyPair::from_pkcs8(der).is_ok() {
            Some("an RSA key".to_owned())
        } else if Ed25519KeyPair::from_pkcs8(der).is_ok() {
            Some("an Ed25519 key".to_owned())
        } else {
            None
        }
    });
    Err(match found {
        Some(found) => format!("{found}, not P-256: ES256 signs with P-256 (prime256v1) only"),
        None => "an unreadable private key".to_owned(),
    })
}
