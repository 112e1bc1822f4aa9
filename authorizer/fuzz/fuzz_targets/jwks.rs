//! Arbitrary bytes as a JWKS document: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use poolgate_authorizer::{Algorithm, KeySet};

fuzz_target!(|data: &[u8]| {
    if let Ok(set) = KeySet::from_jwks(data, &Algorithm::ALL) {
        assert!(!set.is_empty());
    }
});
