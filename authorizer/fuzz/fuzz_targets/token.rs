//! Arbitrary bytes as a token, against a real RS256 key set: never a panic, and nothing but the
//! one genuinely signed token ever verifies.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use poolgate_authorizer::testutil::{Claims, TestKey, jwks_of};
use poolgate_authorizer::verify::verify;
use poolgate_authorizer::{Algorithm, IssuerConfig, IssuerRules, KeySet};

const NOW: u64 = 1_800_000_000;

struct Fx {
    keys: KeySet,
    rules: IssuerRules,
    valid: String,
}

fn fx() -> Option<&'static Fx> {
    static F: OnceLock<Option<Fx>> = OnceLock::new();
    F.get_or_init(|| {
        let key = TestKey::rsa("k1").ok()?;
        let keys =
            KeySet::from_jwks(jwks_of([&key]).to_string().as_bytes(), &[Algorithm::RS256]).ok()?;
        let config = IssuerConfig::cognito("shop", "eu-west-1", "eu-west-1_Fuzz", &["c1"]);
        let rules = IssuerRules::from_config(&config);
        let claims = Claims::access(&rules.iss, "c1", "alice", &["g"], &["s"], NOW);
        let valid = key.sign_claims(&claims.into_value());
        Some(Fx { keys, rules, valid })
    })
    .as_ref()
}

fuzz_target!(|data: &[u8]| {
    let Some(fx) = fx() else { return };
    let token = String::from_utf8_lossy(data);
    if let Ok(id) = verify(&token, &fx.rules, &fx.keys, NOW) {
        assert_eq!(
            token, fx.valid,
            "a token other than the signed one verified: {id:?}"
        );
    }
});
