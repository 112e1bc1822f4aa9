//! Property: no mutation of a valid token (its text, header, claims or signature) verifies.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use poolgate_authorizer::testutil::{Claims, TestKey, jwks_of};
use poolgate_authorizer::verify::verify;
use poolgate_authorizer::{Algorithm, IssuerConfig, IssuerRules, KeySet};
use proptest::prelude::*;
use serde_json::{Value, json};

const ISS: &str = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Test";
const NOW: u64 = 1_800_000_000;

struct Fx {
    token: String,
    keys: KeySet,
    rules: IssuerRules,
}

fn fx() -> &'static Fx {
    static F: OnceLock<Fx> = OnceLock::new();
    F.get_or_init(|| {
        let key = TestKey::rsa("k1").unwrap();
        let keys =
            KeySet::from_jwks(jwks_of([&key]).to_string().as_bytes(), &[Algorithm::RS256]).unwrap();
        let claims = Claims::access(ISS, "c1", "alice", &["admins"], &["a/b"], NOW).into_value();
        let token = key.sign_claims(&claims);
        let rules = IssuerRules::from_config(&IssuerConfig::cognito(
            "shop",
            "eu-west-1",
            "eu-west-1_Test",
            &["c1"],
        ));
        assert!(verify(&token, &rules, &keys, NOW).is_ok());
        Fx { token, keys, rules }
    })
}

fn parts() -> (Value, Value, Vec<u8>) {
    let mut it = fx().token.split('.');
    let h = URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap();
    let p = URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap();
    let s = URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap();
    (
        serde_json::from_slice(&h).unwrap(),
        serde_json::from_slice(&p).unwrap(),
        s,
    )
}

fn assemble(h: &Value, p: &Value, s: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(h.to_string()),
        URL_SAFE_NO_PAD.encode(p.to_string()),
        URL_SAFE_NO_PAD.encode(s)
    )
}

fn refused(token: &str) -> bool {
    token == fx().token || verify(token, &fx().rules, &fx().keys, NOW).is_err()
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[a-zA-Z0-9 _:/.+-]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,4}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const CLAIMS: &[&str] = &[
    "iss",
    "sub",
    "exp",
    "iat",
    "nbf",
    "token_use",
    "client_id",
    "aud",
    "scope",
    "username",
    "cognito:groups",
    "jti",
    "new",
];
const HEADERS: &[&str] = &[
    "alg", "kid", "typ", "jku", "jwk", "x5u", "x5c", "crit", "b64", "zip",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn text_mutations_never_verify(pos in any::<prop::sample::Index>(), c in prop::char::range('!', '~')) {
        let mut bytes = fx().token.clone().into_bytes();
        let i = pos.index(bytes.len());
        bytes[i] = c as u8;
        let t = String::from_utf8(bytes).unwrap();
        prop_assert!(refused(&t), "{t}");
    }

    #[test]
    fn truncations_and_insertions_never_verify(pos in any::<prop::sample::Index>(), ins in "[A-Za-z0-9_.=-]{1,3}", cut in any::<bool>()) {
        let t = &fx().token;
        let i = pos.index(t.len());
        let m = if cut { t[..i].to_owned() } else { format!("{}{ins}{}", &t[..i], &t[i..]) };
        prop_assert!(refused(&m));
    }

    #[test]
    fn claim_mutations_never_verify(name in prop::sample::select(CLAIMS), value in json_value(), remove in any::<bool>()) {
        let (h, mut p, s) = parts();
        if remove {
            p.as_object_mut().unwrap().remove(name);
        } else {
            p[name] = value;
        }
        prop_assert!(refused(&assemble(&h, &p, &s)));
    }

    #[test]
    fn header_mutations_never_verify(name in prop::sample::select(HEADERS), value in json_value(), alg in prop::sample::select(&["none", "None", "HS256", "RS256", "RS384", "PS256", "ES256", "EdDSA", ""][..])) {
        let (mut h, p, s) = parts();
        h[name] = value;
        if name != "alg" {
            h["alg"] = json!(alg);
        }
        // Same header and claims but a re-serialised header is a different signing input too.
        prop_assert!(refused(&assemble(&h, &p, &s)));
    }

    #[test]
    fn signature_mutations_never_verify(pos in any::<prop::sample::Index>(), bit in 0u8..8, extra in prop::collection::vec(any::<u8>(), 0..4)) {
        let (h, p, mut s) = parts();
        let i = pos.index(s.len());
        s[i] ^= 1 << bit;
        prop_assert!(refused(&assemble(&h, &p, &s)));
        let (_, _, mut s2) = parts();
        s2.extend_from_slice(&extra);
        prop_assert!(refused(&assemble(&h, &p, &s2)));
    }

    #[test]
    fn arbitrary_strings_never_verify(t in "\\PC{0,200}") {
        prop_assert!(refused(&t));
    }
}
