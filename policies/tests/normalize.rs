#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Properties of the path normaliser over generated hostile paths.

use poolgate_policies::normalize_path;
use proptest::prelude::*;

fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("/".to_owned()),
        Just("//".to_owned()),
        Just(".".to_owned()),
        Just("..".to_owned()),
        Just("%2e".to_owned()),
        Just("%2E".to_owned()),
        Just("%25".to_owned()),
        Just("%2f".to_owned()),
        Just("%5C".to_owned()),
        Just("%00".to_owned()),
        Just("%c0%ae".to_owned()),
        Just("%41".to_owned()),
        Just("%7e".to_owned()),
        Just("%3B".to_owned()),
        Just(";".to_owned()),
        Just("\\".to_owned()),
        Just("a".to_owned()),
        Just("B".to_owned()),
        Just("~".to_owned()),
        Just("*".to_owned()),
        "[a-z%0-9A-F.]{1,3}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn output_is_a_safe_fixed_point(pieces in prop::collection::vec(piece(), 0..12)) {
        let input = format!("/{}", pieces.concat());
        if let Ok(out) = normalize_path(&input) {
            prop_assert!(out.starts_with('/'));
            prop_assert!(!out.contains("//"), "{}", out);
            prop_assert!(!out.contains('\\') && !out.contains(';'));
            let upper = out.to_ascii_uppercase();
            prop_assert!(!upper.contains("%2F") && !upper.contains("%5C") && !upper.contains("%00"), "{}", out);
            for seg in out.split('/') {
                prop_assert!(seg != "." && seg != "..", "{}", out);
                prop_assert!(!seg.eq_ignore_ascii_case("%2e") && !seg.eq_ignore_ascii_case("%2e%2e"), "{}", out);
            }
            prop_assert_eq!(normalize_path(&out).unwrap(), out.clone());
        }
    }

    #[test]
    fn never_panics_on_any_text(s in any::<String>()) {
        let _ = normalize_path(&s);
        let _ = normalize_path(&format!("/{s}"));
    }
}
