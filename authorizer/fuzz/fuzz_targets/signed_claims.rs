//! Arbitrary bytes as the header and claims of a token that is then genuinely signed (Ed25519,
//! cheap to sign), so fuzzing reaches the claim checks behind the signature: never a panic, and a
//! verified identity is consistent with its claims.
#![no_main]

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use poolgate_authorizer::testutil::{TestKey, jwks_of};
use poolgate_authorizer::verify::verify;
use poolgate_authorizer::{Algorithm, IssuerConfig, IssuerRules, KeySet, TokenUseRequirement};

const NOW: u64 = 1_800_000_000;

struct Fx {
    key: TestKey,
    keys: KeySet,
    rules: IssuerRules,
}

fn fx() -> Option<&'static Fx> {
    static F: OnceLock<Option<Fx>> = OnceLock::new();
    F.get_or_init(|| {
        let key = TestKey::generate("k1", Algorithm::EdDSA).ok()?;
        let keys =
            KeySet::from_jwks(jwks_of([&key]).to_string().as_bytes(), &[Algorithm::EdDSA]).ok()?;
        let mut config = IssuerConfig::cognito("shop", "eu-west-1", "eu-west-1_Fuzz", &["c1"]);
        config.algorithms = vec![Algorithm::EdDSA];
        config.token_use = TokenUseRequirement::Any;
        let rules = IssuerRules::from_config(&config);
        Some(Fx { key, keys, rules })
    })
    .as_ref()
}

fuzz_target!(|data: &[u8]| {
    let Some(fx) = fx() else { return };
    // Split the input: a header (default if absent) and the claims.
    let (header, claims) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&br#"{"alg":"EdDSA","kid":"k1"}"#[..], data),
    };
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let sig = fx.key.sign(input.as_bytes());
    let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig));
    if let Ok(id) = verify(&token, &fx.rules, &fx.keys, NOW) {
        assert!(id.exp > NOW);
        assert_eq!(
            id.claims.get("iss").and_then(|v| v.as_str()),
            Some(&*fx.rules.iss)
        );
        assert!(id.client_id.as_deref() == Some("c1"));
    }
});
