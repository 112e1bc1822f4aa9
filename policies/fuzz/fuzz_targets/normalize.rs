//! The normaliser never panics, and its output is a fixed point that is free of dot-segments,
//! repeated slashes, backslashes, control bytes and encoded slashes.
//!   cd policies && RUSTC_BOOTSTRAP=1 cargo fuzz run normalize -- -max_total_time=120
#![no_main]

use libfuzzer_sys::fuzz_target;
use poolgate_policies::normalize_path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(out) = normalize_path(text) else {
        return;
    };
    assert!(out.starts_with('/'));
    assert!(!out.contains("//"), "{out}");
    assert!(!out.contains('\\'));
    assert!(!out.bytes().any(|b| b < 0x20 || b == 0x7f));
    let upper = out.to_ascii_uppercase();
    assert!(!upper.contains("%2F") && !upper.contains("%5C"), "{out}");
    for seg in out.split('/') {
        assert!(seg != "." && seg != "..", "{out}");
    }
    assert_eq!(normalize_path(&out).as_deref(), Ok(out.as_ref()), "not idempotent");
});
