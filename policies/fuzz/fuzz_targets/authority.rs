//! The authority parse never panics; what it accepts is visible ASCII without anything a
//! backend could cut differently, its canonical form parses to itself, and "canonical" input
//! is forwarded byte for byte.
//!   cd policies && RUSTC_BOOTSTRAP=1 cargo fuzz run authority -- -max_total_time=120
#![no_main]

use libfuzzer_sys::fuzz_target;
use poolgate_policies::Authority;

fuzz_target!(|data: &[u8]| {
    let Ok(a) = Authority::parse(data) else {
        return;
    };
    let text = a.to_string();
    assert!(text.bytes().all(|b| b.is_ascii_graphic()), "{text:?}");
    assert!(!text.contains([',', '/', '%', '@', '\\', ';', ' ']), "{text:?}");
    assert!(!a.host().contains(".."), "{text:?}");
    assert!(!a.host().bytes().any(|b| b.is_ascii_uppercase()), "{text:?}");
    if !a.host().starts_with('[') {
        assert!(!a.host().contains(':') && !a.host().ends_with('.'), "{text:?}");
    }
    let again = Authority::parse(text.as_bytes()).expect("the canonical form parses");
    assert_eq!((again.host(), again.port()), (a.host(), a.port()));
    assert!(again.is_canonical(), "{text:?}");
    if a.is_canonical() {
        assert_eq!(text.as_bytes(), data);
    }
});
