//! JWKS documents as real issuers write them: exotic and malformed keys beside good ones.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use poolgate_authorizer::testutil::{Claims, TestKey};
use poolgate_authorizer::verify::verify;
use poolgate_authorizer::{Algorithm, AuthError, IssuerConfig, IssuerRules, KeySet};
use serde_json::{Value, json};

const NOW: u64 = 1_800_000_000;

fn parse(keys: &[Value], allowed: &[Algorithm]) -> Option<KeySet> {
    KeySet::from_jwks(json!({ "keys": keys }).to_string().as_bytes(), allowed).ok()
}

fn with(jwk: &Value, kid: &str, member: &str, value: Value) -> Value {
    let mut jwk = jwk.clone();
    jwk["kid"] = json!(kid);
    jwk[member] = value;
    jwk
}

fn rules(algorithms: &[Algorithm]) -> IssuerRules {
    let mut c = IssuerConfig::cognito("shop", "eu-west-1", "eu-west-1_Test", &["c1"]);
    c.algorithms = algorithms.to_vec();
    IssuerRules::from_config(&c)
}

fn token_for(key: &TestKey, rules: &IssuerRules) -> String {
    key.sign_claims(&Claims::access(&rules.iss, "c1", "alice", &[], &[], NOW).into_value())
}

#[test]
fn exotic_and_malformed_keys_are_skipped_and_the_good_ones_kept() {
    let good = TestKey::rsa("good").unwrap();
    let jwk = good.jwk();
    let keys = [
        // Unknown members are tolerated (RFC 7517 section 4).
        with(&jwk, "good", "x5t", json!("abc")),
        // A post-quantum key type and algorithm jsonwebtoken does not know.
        json!({"kty": "AKP", "alg": "ML-DSA-44", "kid": "pq", "pub": "AAAA"}),
        // A curve it does not know.
        json!({"kty": "EC", "crv": "secp256k1", "kid": "k256", "x": "AAAA", "y": "AAAA"}),
        // Members of the wrong JSON type.
        with(&jwk, "alg-number", "alg", json!(7)),
        with(&jwk, "use-array", "use", json!(["sig"])),
        with(&jwk, "ops-string", "key_ops", json!("verify")),
        with(&jwk, "n-number", "n", json!(1)),
        with(&jwk, "kid-number", "kid", json!(5)),
        // Not for signatures, not for this algorithm, not an algorithm of ours.
        with(&jwk, "ops-sign", "key_ops", json!(["sign"])),
        with(&jwk, "hmac", "alg", json!("HS256")),
        with(&jwk, "oaep", "alg", json!("RSA-OAEP")),
        with(&jwk, "unknown-alg", "alg", json!("RS257")),
        // Not even an object.
        json!(42),
        json!("key"),
    ];
    // A member given twice (which value counts?) skips the key; written by hand, as a
    // `serde_json::Value` cannot hold it.
    let twice = jwk.to_string().replacen('{', r#"{"kid":"first","#, 1);
    let twice = twice.replacen(r#""kid":"good""#, r#""kid":"second""#, 1);
    let document = format!(
        r#"{{"keys": [{}, {twice}]}}"#,
        keys.iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join(",")
    );
    let set = KeySet::from_jwks(document.as_bytes(), &[Algorithm::RS256]).unwrap();
    assert_eq!(set.kids(), ["good"]);
    assert_eq!(set.skipped(), keys.len());
    let rules = rules(&[Algorithm::RS256]);
    assert!(verify(&token_for(&good, &rules), &rules, &set, NOW).is_ok());

    // Why each key is read on its own: jsonwebtoken's `JwkSet` refuses the whole document.
    let whole = json!({ "keys": keys }).to_string();
    assert!(serde_json::from_str::<jsonwebtoken::jwk::JwkSet>(&whole).is_err());
}

#[test]
fn key_ops_with_verify_and_padded_members_are_accepted() {
    let key = TestKey::rsa("k").unwrap();
    let mut jwk = with(&key.jwk(), "k", "key_ops", json!(["verify"]));
    jwk.as_object_mut().unwrap().remove("use");
    jwk["e"] = json!("AQAB"); // 65537, already unpadded; pad the modulus instead
    let n = jwk["n"].as_str().unwrap().to_owned();
    let pad = "=".repeat((4 - n.len() % 4) % 4);
    jwk["n"] = json!(format!("{n}{pad}"));
    let set = parse(&[jwk], &[Algorithm::RS256]).unwrap();
    let rules = rules(&[Algorithm::RS256]);
    assert!(verify(&token_for(&key, &rules), &rules, &set, NOW).is_ok());
}

#[test]
fn a_key_without_alg_serves_the_allowed_algorithms_its_curve_fits() {
    let both = [Algorithm::ES256, Algorithm::ES384];
    let p256 = TestKey::generate("p256", Algorithm::ES256).unwrap();
    let mut jwk = p256.jwk();
    jwk.as_object_mut().unwrap().remove("alg");
    let set = parse(&[jwk], &both).unwrap();
    let es256 = rules(&both);
    assert!(verify(&token_for(&p256, &es256), &es256, &set, NOW).is_ok());

    // The same kid presented with ES384 is refused: a P-256 key cannot verify it.
    let p384 = TestKey::generate("p256", Algorithm::ES384).unwrap();
    assert_eq!(
        verify(&token_for(&p384, &es256), &es256, &set, NOW),
        Err(AuthError::UnsupportedAlg)
    );

    // An Ed25519 key claiming a P-256 curve, or an EC key claiming Ed25519, is skipped.
    let ed = TestKey::generate("ed", Algorithm::EdDSA).unwrap();
    let ed_wrong = with(&ed.jwk(), "ed", "crv", json!("P-256"));
    let ec_wrong = with(&p256.jwk(), "p256", "crv", json!("Ed25519"));
    assert!(parse(&[ed_wrong, ec_wrong], &Algorithm::ALL).is_none());
}

#[test]
fn duplicate_kids_are_both_unusable_even_when_one_is_skipped_for_another_reason() {
    let a = TestKey::rsa("same").unwrap();
    let b = TestKey::rsa("same").unwrap();
    // Two usable keys with one kid: neither is kept, so the document has no usable key.
    assert!(parse(&[a.jwk(), b.jwk()], &[Algorithm::RS256]).is_none());
    // A skipped key does not make its kid ambiguous.
    let enc = with(&b.jwk(), "same", "use", json!("enc"));
    let set = parse(&[a.jwk(), enc], &[Algorithm::RS256]).unwrap();
    assert_eq!(set.kids(), ["same"]);
    assert_eq!(set.skipped(), 1);
}

#[test]
fn minted_tokens_carry_an_ordinary_header_and_verify_for_every_algorithm() {
    for alg in Algorithm::ALL {
        let key = TestKey::generate("m", alg).unwrap();
        let set = parse(&[key.jwk()], &[alg]).unwrap();
        let rules = rules(&[alg]);
        let token = token_for(&key, &rules);
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(format!("{:?}", header.alg), alg.name());
        assert_eq!(header.kid.as_deref(), Some("m"));
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        assert!(verify(&token, &rules, &set, NOW).is_ok(), "{alg:?}");
    }
}

#[test]
fn a_changed_key_under_the_same_kid_counts_as_lost() {
    let a = TestKey::rsa("k").unwrap();
    let b = TestKey::rsa("k").unwrap();
    let rs = [Algorithm::RS256];
    let one = parse(&[a.jwk()], &rs).unwrap();
    let same = parse(&[a.jwk()], &rs).unwrap();
    let other = parse(&[b.jwk()], &rs).unwrap();
    assert!(!one.loses_keys_in(&same));
    assert!(one.loses_keys_in(&other));
    // The same material for fewer algorithms also counts.
    let both = [Algorithm::RS256, Algorithm::PS256];
    let mut unnamed = a.jwk();
    unnamed.as_object_mut().unwrap().remove("alg");
    let wide = parse(std::slice::from_ref(&unnamed), &both).unwrap();
    let narrow = parse(&[unnamed], &rs).unwrap();
    assert!(wide.loses_keys_in(&narrow));
    assert!(!narrow.loses_keys_in(&narrow));
}
