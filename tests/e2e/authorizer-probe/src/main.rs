//! Verifies an emulator's tokens (the JSON written by tests/e2e/provision.py) with poolgate's
//! authorizer, configured as the e2e policy configures it: explicit issuer + JWKS URL,
//! Cognito-style checks, access tokens of the pool's app client.
//!
//!     authorizer-probe tokens.json
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use poolgate_authorizer::{
    AuthError, Authorizer, CacheConfig, Identity, IssuerConfig, KeySource, Requirement,
    TokenUseRequirement,
};
use serde_json::Value;

fn field<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter()
        .fold(v, |v, k| &v[*k])
        .as_str()
        .unwrap_or_default()
}

fn issuer(tokens: &Value, token_use: TokenUseRequirement) -> IssuerConfig {
    IssuerConfig {
        name: "pool".into(),
        source: KeySource::Explicit {
            issuer: field(tokens, &["issuer"]).into(),
            jwks_url: field(tokens, &["jwks_url"]).into(),
        },
        cognito_style: true,
        app_clients: vec![field(tokens, &["client_id"]).into()],
        token_use,
        ..IssuerConfig::default()
    }
}

/// Swaps the token's payload for `payload` (JSON), keeping header and signature.
fn with_payload(token: &str, payload: &Value) -> String {
    use std::fmt::Write;
    let parts: Vec<&str> = token.split('.').collect();
    let json = payload.to_string();
    // base64url without padding, by hand: no extra dependency for one test value.
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in json.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            let _ = write!(out, "{}", A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    format!("{}.{}.{}", parts[0], out, parts.get(2).unwrap_or(&""))
}

struct Tally {
    passed: u32,
    failed: u32,
}

impl Tally {
    fn expect_ok(
        &mut self,
        name: &str,
        r: Result<Arc<Identity>, AuthError>,
        check: impl Fn(&Identity) -> Option<String>,
    ) {
        match r {
            Ok(id) => match check(&id) {
                None => self.ok(&format!("{name}: accepted (sub {}, username {:?}, groups {:?}, client {:?}, scopes {:?})", id.sub, id.username, id.groups, id.client_id, id.scopes)),
                Some(why) => self.fail(&format!("{name}: accepted but {why}")),
            },
            Err(e) => self.fail(&format!("{name}: rejected with {}", e.code())),
        }
    }
    fn expect_err(&mut self, name: &str, r: Result<Arc<Identity>, AuthError>, want: &[&str]) {
        match r {
            Ok(id) => self.fail(&format!("{name}: ACCEPTED (sub {})", id.sub)),
            Err(e) if want.is_empty() || want.contains(&e.code()) => {
                self.ok(&format!("{name}: rejected with {}", e.code()))
            }
            Err(e) => self.fail(&format!(
                "{name}: rejected with {}, expected one of {want:?}",
                e.code()
            )),
        }
    }
    fn ok(&mut self, msg: &str) {
        self.passed += 1;
        println!("  ok   {msg}");
    }
    fn fail(&mut self, msg: &str) {
        self.failed += 1;
        println!("  FAIL {msg}");
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: authorizer-probe tokens.json");
        return ExitCode::from(2);
    };
    let tokens: Value = match std::fs::read_to_string(&path).map(|s| serde_json::from_str(&s)) {
        Ok(Ok(v)) => v,
        _ => {
            eprintln!("cannot read {path}");
            return ExitCode::from(2);
        }
    };
    let mut t = Tally {
        passed: 0,
        failed: 0,
    };
    let access = match Authorizer::new(
        vec![issuer(&tokens, TokenUseRequirement::Access)],
        CacheConfig::default(),
    ) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("issuer config refused: {e}");
            return ExitCode::FAILURE;
        }
    };
    access.start();
    if !access.wait_ready(Duration::from_secs(10)).await {
        eprintln!("no keys from {} within 10 s", field(&tokens, &["jwks_url"]));
        return ExitCode::FAILURE;
    }
    let req = Requirement::access("pool");
    let users = &tokens["users"];
    for (user, group) in [
        ("alice", Some("admin")),
        ("bob", Some("editors")),
        ("carol", Some("readers")),
        ("dave", None),
    ] {
        let want_groups: Vec<String> = group.iter().map(|g| (*g).to_owned()).collect();
        let want_sub = field(users, &[user, "sub"]).to_owned();
        let want_client = field(&tokens, &["client_id"]).to_owned();
        let r = access.verify(field(users, &[user, "access"]), &req).await;
        t.expect_ok(&format!("{user} access token"), r, |id| {
            if id.sub != want_sub {
                Some(format!("sub {} != {want_sub}", id.sub))
            } else if id.groups != want_groups {
                Some(format!("groups {:?} != {want_groups:?}", id.groups))
            } else if id.username.as_deref() != Some(user) {
                Some(format!("username {:?}", id.username))
            } else if id.client_id.as_deref() != Some(want_client.as_str()) {
                Some(format!("client {:?}", id.client_id))
            } else {
                None
            }
        });
    }
    let again = access
        .verify(field(users, &["alice", "access"]), &req)
        .await;
    t.expect_ok("alice access token again (cache)", again, |_| None);
    let refreshed = access
        .verify(field(&tokens, &["refreshed_access"]), &req)
        .await;
    t.expect_ok(
        "alice access token from REFRESH_TOKEN_AUTH",
        refreshed,
        |_| None,
    );
    let r = access.verify(field(users, &["alice", "id"]), &req).await;
    t.expect_err(
        "alice ID token where access is required",
        r,
        &["wrong_token_use"],
    );
    let r = access
        .verify(field(users, &["alice", "refresh"]), &req)
        .await;
    t.expect_err("alice refresh token", r, &[]);
    let r = access
        .verify(
            field(&tokens, &["other_pool", "users", "erin", "access"]),
            &req,
        )
        .await;
    t.expect_err(
        "erin access token from another pool",
        r,
        &["wrong_issuer", "wrong_audience"],
    );
    let dave = field(users, &["dave", "access"]);
    let mut claims: Value = dave
        .split('.')
        .nth(1)
        .and_then(|p| {
            let pad = "=".repeat((4 - p.len() % 4) % 4);
            let std = format!("{p}{pad}").replace('-', "+").replace('_', "/");
            decode_b64(&std)
        })
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    claims["cognito:groups"] = serde_json::json!(["admin"]);
    let r = access.verify(&with_payload(dave, &claims), &req).await;
    t.expect_err(
        "dave token with cognito:groups rewritten",
        r,
        &["bad_signature"],
    );

    // ID tokens, when a route asks for them: `aud` is matched against the app client.
    let ids = match Authorizer::new(
        vec![issuer(&tokens, TokenUseRequirement::Any)],
        CacheConfig::default(),
    ) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("issuer config refused: {e}");
            return ExitCode::FAILURE;
        }
    };
    ids.start();
    if ids.wait_ready(Duration::from_secs(10)).await {
        let want_client = field(&tokens, &["client_id"]).to_owned();
        let r = ids
            .verify(field(users, &["bob", "id"]), &Requirement::id("pool"))
            .await;
        t.expect_ok("bob ID token where an ID token is required", r, |id| {
            (id.client_id.as_deref() != Some(want_client.as_str()))
                .then(|| format!("client {:?}", id.client_id))
        });
        let r = ids
            .verify(field(users, &["bob", "access"]), &Requirement::id("pool"))
            .await;
        t.expect_err(
            "bob access token where an ID token is required",
            r,
            &["wrong_token_use"],
        );
    } else {
        t.fail("second authorizer never became ready");
    }

    println!(
        "authorizer {}: {} passed, {} failed",
        field(&tokens, &["emulator"]),
        t.passed,
        t.failed
    );
    if t.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Standard base64 decoding (with padding), enough for one JWT payload.
fn decode_b64(s: &str) -> Option<Vec<u8>> {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut buf = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|c| *c != b'=') {
        buf = (buf << 6) | A.iter().position(|x| *x == c)? as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
    }
    Some(out)
}
