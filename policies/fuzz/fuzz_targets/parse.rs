//! Any text given as a policy yields a config or diagnostics, never a panic; a config that
//! loads answers requests without panicking either.
//!   cd policies && RUSTC_BOOTSTRAP=1 cargo fuzz run parse -- -max_total_time=120
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match poolgate_policies::load_str("fuzz.yaml", text, &|_| None) {
        Ok(config) => {
            for (host, method, path) in [("a.example.com", "GET", "/"), ("x", "POST", "/a/b/c"), ("h:1", "PUT", "/users/x/")] {
                if let Ok(host) = poolgate_policies::Authority::parse(host.as_bytes()) {
                    let _ = config.decide_request(&host, method, path, None);
                }
            }
        }
        Err(diags) => {
            // Rendering must cope with any location.
            let _ = diags.to_string();
            let _ = diags.to_json();
        }
    }
});
