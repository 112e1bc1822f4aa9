#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Every example policy loads without a single diagnostic.

use std::path::Path;

fn no_env(_: &str) -> Option<String> {
    None
}

#[test]
fn every_example_loads_cleanly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml")
            || path.to_string_lossy().contains("include")
        {
            continue;
        }
        // Examples must load with the variables they use either set or defaulted.
        let env = |name: &str| match name {
            "SHOP_POOL_ID" => Some("eu-west-1_AbCdEf123".to_owned()),
            "SHOP_CLIENT_ID" => Some("3n4b5urk1ft4fl3mg5e62d9ado".to_owned()),
            _ => no_env(name),
        };
        match poolgate_policies::load_with_env(&path, &env) {
            Ok(c) => assert!(!c.routes.is_empty(), "{}", path.display()),
            Err(d) => panic!("{}:\n{d}", path.display()),
        }
        seen += 1;
    }
    assert!(seen >= 1);
}
