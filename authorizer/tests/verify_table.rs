//! The pure core, table-driven: one case per rejection reason, and the accepted shapes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use poolgate_authorizer::testutil::{Claims, TestKey, jwks_of};
use poolgate_authorizer::verify::verify;
use poolgate_authorizer::{
    Algorithm, AuthError, IssuerConfig, IssuerRules, KeySet, KeySource, TokenUse,
    TokenUseRequirement,
};
use serde_json::{Value, json};

const ISS: &str = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Test";
const CLIENT: &str = "client-1";
const NOW: u64 = 1_800_000_000;

struct Fixture {
    key: TestKey,
    other: TestKey,
    keys: KeySet,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let key = TestKey::rsa("k1").unwrap();
        // Same kid, different key: its signatures must not verify.
        let other = TestKey::rsa("k1").unwrap();
        let keys =
            KeySet::from_jwks(jwks_of([&key]).to_string().as_bytes(), &[Algorithm::RS256]).unwrap();
        Fixture { key, other, keys }
    })
}

fn cognito_rules() -> IssuerRules {
    let mut c = IssuerConfig::cognito("shop", "eu-west-1", "eu-west-1_Test", &[CLIENT]);
    c.token_use = TokenUseRequirement::Any;
    c.validate().unwrap();
    IssuerRules::from_config(&c)
}

fn access() -> Claims {
    Claims::access(
        ISS,
        CLIENT,
        "alice",
        &["admins", "readers"],
        &["orders/read", "openid"],
        NOW,
    )
}

fn id() -> Claims {
    Claims::id(ISS, CLIENT, "alice", &["admins"], NOW)
}

fn hdr(alg: &str, kid: &str) -> Value {
    json!({"alg": alg, "kid": kid, "typ": "JWT"})
}

fn signed(claims: Claims) -> String {
    fixture().key.sign_claims(&claims.into_value())
}

fn with_header(header: Value, claims: Claims) -> String {
    fixture().key.sign_token(&header, &claims.into_value())
}

fn b64(s: &str) -> String {
    URL_SAFE_NO_PAD.encode(s)
}

fn run(token: &str, rules: &IssuerRules) -> Result<poolgate_authorizer::Identity, AuthError> {
    verify(token, rules, &fixture().keys, NOW)
}

#[test]
fn every_rejection_reason_has_its_case() {
    let f = fixture();
    let valid = signed(access());
    let (h, rest) = valid.split_once('.').unwrap();
    let (p, s) = rest.split_once('.').unwrap();
    let flip_sig = {
        let mut sig: Vec<char> = s.chars().collect();
        sig[10] = if sig[10] == 'A' { 'B' } else { 'A' };
        format!("{h}.{p}.{}", sig.into_iter().collect::<String>())
    };
    let tampered_claims = format!(
        "{h}.{}.{s}",
        b64(&access()
            .set("username", json!("mallory"))
            .into_value()
            .to_string())
    );
    let long = signed(access().set("pad", json!("x".repeat(17 * 1024))));
    let dup = format!("{h}.{}.{s}", b64(r#"{"iss":"x","iss":"y"}"#));

    let cases: Vec<(&str, String, AuthError)> = vec![
        ("empty", String::new(), AuthError::Missing),
        ("one segment", "abc".into(), AuthError::Malformed),
        ("two segments", "abc.def".into(), AuthError::Malformed),
        ("four segments", format!("{valid}.x"), AuthError::Malformed),
        ("empty signature", format!("{h}.{p}."), AuthError::Malformed),
        ("bad base64", format!("{h}.{p}.!!!"), AuthError::Malformed),
        (
            "padded base64",
            format!("{h}.{p}.{s}="),
            AuthError::Malformed,
        ),
        (
            "header not json",
            format!("{}.{p}.{s}", b64("nope")),
            AuthError::Malformed,
        ),
        (
            "header an array",
            format!("{}.{p}.{s}", b64("[1]")),
            AuthError::Malformed,
        ),
        (
            "claims an array",
            format!("{h}.{}.{s}", b64("[1]")),
            AuthError::Malformed,
        ),
        ("duplicate claim", dup, AuthError::Malformed),
        ("over the length cap", long, AuthError::Malformed),
        (
            "no iss",
            signed(access().remove("iss")),
            AuthError::Malformed,
        ),
        (
            "iss a number",
            signed(access().set("iss", json!(1))),
            AuthError::Malformed,
        ),
        (
            "no kid",
            with_header(json!({"alg": "RS256"}), access()),
            AuthError::Malformed,
        ),
        (
            "kid a number",
            with_header(json!({"alg": "RS256", "kid": 1}), access()),
            AuthError::Malformed,
        ),
        (
            "crit header",
            with_header(
                json!({"alg": "RS256", "kid": "k1", "crit": ["b64"], "b64": false}),
                access(),
            ),
            AuthError::Malformed,
        ),
        (
            "no alg",
            with_header(json!({"kid": "k1"}), access()),
            AuthError::Malformed,
        ),
        (
            "no exp",
            signed(access().remove("exp")),
            AuthError::Malformed,
        ),
        (
            "exp a string",
            signed(access().set("exp", json!("1900000000"))),
            AuthError::Malformed,
        ),
        (
            "nbf a bool",
            signed(access().set("nbf", json!(true))),
            AuthError::Malformed,
        ),
        (
            "groups a string",
            signed(access().set("cognito:groups", json!("admins"))),
            AuthError::Malformed,
        ),
        (
            "groups of numbers",
            signed(access().set("cognito:groups", json!([1, 2]))),
            AuthError::Malformed,
        ),
        (
            "scope a number",
            signed(access().set("scope", json!(7))),
            AuthError::Malformed,
        ),
        (
            // An array of strings is a list of scopes (Okta's `scp`); anything else in it is not.
            "scope an array with a number",
            signed(access().set("scope", json!(["a", 1]))),
            AuthError::Malformed,
        ),
        (
            "groups a string",
            signed(access().set("cognito:groups", json!("admins"))),
            AuthError::Malformed,
        ),
        (
            "no sub",
            signed(access().remove("sub")),
            AuthError::Malformed,
        ),
        (
            "token_use a number",
            signed(access().set("token_use", json!(1))),
            AuthError::Malformed,
        ),
        (
            "client_id a number",
            signed(access().set("client_id", json!(1))),
            AuthError::Malformed,
        ),
        (
            "aud an object",
            signed(id().set("aud", json!({"a": 1}))),
            AuthError::Malformed,
        ),
        (
            "username an array",
            signed(access().set("username", json!(["a"]))),
            AuthError::Malformed,
        ),
        (
            "alg none",
            with_header(hdr("none", "k1"), access()),
            AuthError::UnsupportedAlg,
        ),
        (
            "alg NoNe",
            with_header(hdr("NoNe", "k1"), access()),
            AuthError::UnsupportedAlg,
        ),
        (
            "alg none, empty sig",
            format!("{}.{p}.", b64(r#"{"alg":"none"}"#)),
            AuthError::Malformed,
        ),
        (
            "alg HS256",
            with_header(hdr("HS256", "k1"), access()),
            AuthError::UnsupportedAlg,
        ),
        (
            "alg hs512",
            with_header(hdr("hs512", "k1"), access()),
            AuthError::UnsupportedAlg,
        ),
        (
            "alg rs256 lowercase",
            with_header(hdr("rs256", "k1"), access()),
            AuthError::UnsupportedAlg,
        ),
        (
            "alg not allowed",
            with_header(hdr("RS512", "k1"), access()),
            AuthError::UnsupportedAlg,
        ),
        (
            "alg a number",
            with_header(json!({"alg": 256, "kid": "k1"}), access()),
            AuthError::Malformed,
        ),
        (
            "unknown kid",
            with_header(hdr("RS256", "k2"), access()),
            AuthError::UnknownKid,
        ),
        (
            "jku ignored",
            with_header(
                json!({"alg": "RS256", "kid": "k2", "jku": "http://127.0.0.1:1/jwks"}),
                access(),
            ),
            AuthError::UnknownKid,
        ),
        (
            "other key, same kid",
            f.other.sign_claims(&access().into_value()),
            AuthError::BadSignature,
        ),
        ("signature flipped", flip_sig, AuthError::BadSignature),
        ("claims tampered", tampered_claims, AuthError::BadSignature),
        (
            "expired",
            signed(access().set("exp", json!(NOW - 1))),
            AuthError::Expired,
        ),
        (
            "expires now",
            signed(access().set("exp", json!(NOW))),
            AuthError::Expired,
        ),
        (
            "not yet valid",
            signed(access().set("nbf", json!(NOW + 60))),
            AuthError::NotYetValid,
        ),
        (
            "issued in the future",
            signed(access().set("iat", json!(NOW + 60))),
            AuthError::IssuedInFuture,
        ),
        (
            "other issuer",
            signed(access().set("iss", json!("https://evil.example"))),
            AuthError::WrongIssuer,
        ),
        (
            "issuer with trailing slash",
            signed(access().set("iss", json!(format!("{ISS}/")))),
            AuthError::WrongIssuer,
        ),
        (
            "access, other client",
            signed(access().set("client_id", json!("client-2"))),
            AuthError::WrongAudience,
        ),
        (
            "access, no client_id",
            signed(access().remove("client_id")),
            AuthError::WrongAudience,
        ),
        (
            "id, other aud",
            signed(id().set("aud", json!("client-2"))),
            AuthError::WrongAudience,
        ),
        (
            "id, no aud",
            signed(id().remove("aud")),
            AuthError::WrongAudience,
        ),
        (
            "no token_use (refresh)",
            signed(access().remove("token_use")),
            AuthError::WrongTokenUse,
        ),
        (
            "token_use refresh",
            signed(access().set("token_use", json!("refresh"))),
            AuthError::WrongTokenUse,
        ),
    ];
    let rules = cognito_rules();
    let mut failures = Vec::new();
    for (name, token, want) in &cases {
        match run(token, &rules) {
            Err(got) if got == *want => {}
            other => failures.push(format!("{name}: want {want:?}, got {other:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every variant but the network-level ones appears in the table.
    for e in AuthError::ALL {
        if e != AuthError::KeysUnavailable {
            assert!(cases.iter().any(|(_, _, w)| *w == e), "no case for {e:?}");
        }
    }
}

#[test]
fn accepts_cognito_access_and_id_tokens() {
    let rules = cognito_rules();
    let a = run(&signed(access()), &rules).unwrap();
    assert_eq!(&*a.issuer, "shop");
    assert_eq!(a.token_use, TokenUse::Access);
    assert_eq!(a.username.as_deref(), Some("alice"));
    assert_eq!(a.groups, ["admins", "readers"]);
    assert_eq!(a.scopes, ["orders/read", "openid"]);
    assert_eq!(a.client_id.as_deref(), Some(CLIENT));
    assert_eq!(a.exp, NOW + 3600);
    assert_eq!(a.claims["version"], json!(2));

    let i = run(&signed(id()), &rules).unwrap();
    assert_eq!(i.token_use, TokenUse::Id);
    assert_eq!(i.username.as_deref(), Some("alice"));
    assert_eq!(i.groups, ["admins"]);
    assert!(i.scopes.is_empty());
    assert_eq!(i.client_id.as_deref(), Some(CLIENT));
    assert_eq!(a.sub, i.sub);

    // No `cognito:groups` (a user in no group) means no groups, not an error.
    let none = run(&signed(access().remove("cognito:groups")), &rules).unwrap();
    assert!(none.groups.is_empty());
    // Fractional NumericDates are floored.
    let frac = run(
        &signed(access().set("exp", json!(NOW as f64 + 10.5))),
        &rules,
    )
    .unwrap();
    assert_eq!(frac.exp, NOW + 10);
}

#[test]
fn leeway_tolerates_skew_both_ways() {
    let mut c = IssuerConfig::cognito("shop", "eu-west-1", "eu-west-1_Test", &[CLIENT]);
    c.leeway = Duration::from_secs(30);
    let rules = IssuerRules::from_config(&c);
    assert!(run(&signed(access().set("exp", json!(NOW - 10))), &rules).is_ok());
    assert!(run(&signed(access().set("nbf", json!(NOW + 10))), &rules).is_ok());
    assert!(run(&signed(access().set("iat", json!(NOW + 10))), &rules).is_ok());
    assert_eq!(
        run(&signed(access().set("exp", json!(NOW - 30))), &rules),
        Err(AuthError::Expired)
    );
    assert_eq!(
        run(&signed(access().set("nbf", json!(NOW + 31))), &rules),
        Err(AuthError::NotYetValid)
    );
}

#[test]
fn issuer_token_use_setting_is_enforced() {
    let mut c = IssuerConfig::cognito("shop", "eu-west-1", "eu-west-1_Test", &[CLIENT]);
    c.token_use = TokenUseRequirement::Access;
    let rules = IssuerRules::from_config(&c);
    assert!(run(&signed(access()), &rules).is_ok());
    assert_eq!(run(&signed(id()), &rules), Err(AuthError::WrongTokenUse));
    c.token_use = TokenUseRequirement::Id;
    let rules = IssuerRules::from_config(&c);
    assert_eq!(
        run(&signed(access()), &rules),
        Err(AuthError::WrongTokenUse)
    );
}

fn oidc_rules(audiences: &[&str], require_at_jwt: bool) -> IssuerRules {
    let c = IssuerConfig {
        name: "idp".into(),
        source: KeySource::Explicit {
            issuer: "https://idp.example".into(),
            jwks_url: "https://idp.example/jwks".into(),
        },
        cognito_style: false,
        audiences: audiences.iter().map(|s| (*s).to_owned()).collect(),
        require_at_jwt,
        ..IssuerConfig::default()
    };
    c.validate().unwrap();
    IssuerRules::from_config(&c)
}

fn oidc_claims(aud: Value) -> Value {
    json!({"iss": "https://idp.example", "sub": "u1", "aud": aud, "exp": NOW + 60, "iat": NOW,
           "preferred_username": "bob", "scope": "read write"})
}

#[test]
fn oidc_audiences_and_at_jwt() {
    let k = &fixture().key;
    let rules = oidc_rules(&["api"], false);
    let ok = verify(
        &k.sign_claims(&oidc_claims(json!(["web", "api"]))),
        &rules,
        &fixture().keys,
        NOW,
    )
    .unwrap();
    assert_eq!(ok.token_use, TokenUse::Access);
    assert_eq!(ok.username.as_deref(), Some("bob"));
    assert_eq!(ok.scopes, ["read", "write"]);
    let single = verify(
        &k.sign_claims(&oidc_claims(json!("api"))),
        &rules,
        &fixture().keys,
        NOW,
    );
    assert!(single.is_ok());
    let wrong = verify(
        &k.sign_claims(&oidc_claims(json!(["web"]))),
        &rules,
        &fixture().keys,
        NOW,
    );
    assert_eq!(wrong, Err(AuthError::WrongAudience));
    let bad_type = verify(
        &k.sign_claims(&oidc_claims(json!([1]))),
        &rules,
        &fixture().keys,
        NOW,
    );
    assert_eq!(bad_type, Err(AuthError::Malformed));

    let strict = oidc_rules(&["api"], true);
    let jwt_typ = verify(
        &k.sign_claims(&oidc_claims(json!("api"))),
        &strict,
        &fixture().keys,
        NOW,
    );
    assert_eq!(jwt_typ, Err(AuthError::WrongTokenUse));
    let at = k.sign_token(
        &json!({"alg": "RS256", "kid": "k1", "typ": "at+jwt"}),
        &oidc_claims(json!("api")),
    );
    let at = verify(&at, &strict, &fixture().keys, NOW).unwrap();
    assert_eq!(at.token_use, TokenUse::Access);
}

#[test]
fn other_algorithms_verify_when_allowed() {
    for alg in [
        Algorithm::PS256,
        Algorithm::RS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ] {
        let key = TestKey::generate("x", alg).unwrap();
        let keys = KeySet::from_jwks(jwks_of([&key]).to_string().as_bytes(), &[alg]).unwrap();
        let mut c = IssuerConfig::cognito("shop", "eu-west-1", "eu-west-1_Test", &[CLIENT]);
        c.algorithms = vec![alg];
        let rules = IssuerRules::from_config(&c);
        let token = key.sign_claims(&access().into_value());
        assert!(verify(&token, &rules, &keys, NOW).is_ok(), "{alg:?}");
        // The default allow-list (RS256) refuses it.
        let default = IssuerRules::from_config(&IssuerConfig::cognito(
            "shop",
            "eu-west-1",
            "eu-west-1_Test",
            &[CLIENT],
        ));
        assert_eq!(
            verify(&token, &default, &keys, NOW),
            Err(AuthError::UnsupportedAlg),
            "{alg:?}"
        );
    }
}

#[test]
fn key_set_parsing_skips_what_it_cannot_use() {
    let k = &fixture().key;
    let mut enc = k.jwk();
    enc["use"] = json!("enc");
    enc["kid"] = json!("enc");
    let mut wrong_alg = k.jwk();
    wrong_alg["alg"] = json!("ES256");
    wrong_alg["kid"] = json!("wrong");
    let mut dup = k.jwk();
    dup["kid"] = json!("dup");
    let mut no_kid = k.jwk();
    no_kid.as_object_mut().unwrap().remove("kid");
    let doc = json!({"keys": [k.jwk(), enc, wrong_alg, dup.clone(), dup, no_kid, {"kty": "oct", "kid": "h", "k": "AAAA"}]});
    let set = KeySet::from_jwks(doc.to_string().as_bytes(), &[Algorithm::RS256]).unwrap();
    assert_eq!(set.kids(), ["k1"]);
    assert_eq!(set.skipped(), 6);

    assert!(KeySet::from_jwks(b"{\"keys\": []}", &[Algorithm::RS256]).is_err());
    assert!(KeySet::from_jwks(b"garbage", &[Algorithm::RS256]).is_err());
    // A 1024-bit modulus is refused.
    let mut small = k.jwk();
    let n = small["n"].as_str().unwrap().to_owned();
    small["n"] = json!(n[..n.len() / 2]);
    assert!(
        KeySet::from_jwks(
            json!({"keys": [small]}).to_string().as_bytes(),
            &[Algorithm::RS256]
        )
        .is_err()
    );
}

#[test]
fn a_jwk_without_alg_serves_every_allowed_algorithm_of_its_type() {
    let rsa = TestKey::generate("r", Algorithm::PS256).unwrap();
    let mut jwk = rsa.jwk();
    jwk.as_object_mut().unwrap().remove("alg");
    let doc = json!({"keys": [jwk]}).to_string();
    let mut c = IssuerConfig::cognito("shop", "eu-west-1", "eu-west-1_Test", &[CLIENT]);
    c.algorithms = vec![Algorithm::RS256, Algorithm::PS256];
    let rules = IssuerRules::from_config(&c);
    let keys = KeySet::from_jwks(doc.as_bytes(), &c.algorithms).unwrap();
    let token = rsa.sign_claims(&access().into_value());
    assert!(verify(&token, &rules, &keys, NOW).is_ok());
    // The same key set built for RS256 only cannot verify a PS256 token.
    let rs_only = KeySet::from_jwks(doc.as_bytes(), &[Algorithm::RS256]).unwrap();
    assert_eq!(
        verify(&token, &rules, &rs_only, NOW),
        Err(AuthError::UnsupportedAlg)
    );

    // An EC key on the wrong curve for its algorithm is skipped.
    let ec = TestKey::generate("e", Algorithm::ES256).unwrap();
    let mut bad = ec.jwk();
    bad["crv"] = json!("P-384");
    assert!(
        KeySet::from_jwks(
            json!({"keys": [bad]}).to_string().as_bytes(),
            &[Algorithm::ES256]
        )
        .is_err()
    );
    // A truncated ES256 signature is a bad signature, not a crash.
    let mut ec_cfg = c.clone();
    ec_cfg.algorithms = vec![Algorithm::ES256];
    let ec_rules = IssuerRules::from_config(&ec_cfg);
    let ec_keys =
        KeySet::from_jwks(jwks_of([&ec]).to_string().as_bytes(), &[Algorithm::ES256]).unwrap();
    let good = ec.sign_claims(&access().into_value());
    assert!(verify(&good, &ec_rules, &ec_keys, NOW).is_ok());
    let (input, sig) = good.rsplit_once('.').unwrap();
    let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    sig.truncate(60);
    let cut = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig));
    assert_eq!(
        verify(&cut, &ec_rules, &ec_keys, NOW),
        Err(AuthError::BadSignature)
    );
}
